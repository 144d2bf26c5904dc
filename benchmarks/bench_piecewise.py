"""Accuracy, rigid behaviour and speed of ``method='piecewise'`` (issue 24, part 3).

Accuracy: on 128 x 128 stacks drifting up to 6 px that also deform (shear, scaling, a
local bulge; up to 3 px at the first and last frame, growing linearly), per deformation x
scene x counts per pixel x frames, pooled over seeds: the RMS patch error of the field
(``ours``: the mean of a patch's residual moves, the field at every pixel, weighted by
the squared gradient of the noise-free frame) beside the patch noise limit (what noise
alone costs a perfect rigid registration of the patch:
:func:`napari_nanosims.testing.deform.patch_errors_px`), pooled over the usable patches
(limit < 1 px), the worst patch's ratio to its own limit, and ``pixel``: the RMS of
every pixel's residual move weighted by that squared gradient (px), as the warp uses
the field.

Rigid: stacks that only drift (every scene class of ``testing.simulate.SCENES``, 0.5, 2
and 10 counts per pixel, 10 and 40 frames): how many frames got a field (target 0).

Speed: seconds per frame of piecewise and of subpixel on the same stacks, and the ratio.

Run: python benchmarks/bench_piecewise.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def _register(frames, method):
    from napari_nanosims import register_frames

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        result = register_frames(frames, method=method)
    return result, time.perf_counter() - started


def _pixel_error_px(sim, result) -> float:
    """RMS over the pixels of their residual move (common offset over the frames
    removed), weighted by the squared gradient of the noise-free frames, pixels."""
    from napari_nanosims.testing.deform import moves_at_pixels

    residual = moves_at_pixels(result, sim["frames"].shape[1:]) - sim["displacement_px"]
    residual -= residual.mean(axis=0)
    weight = sum(g ** 2 for g in np.gradient(np.asarray(sim["truth"], float), axis=(1, 2)))
    squared = (residual ** 2).sum(axis=1)  # (frames, H, W): both axes
    return float(np.sqrt((squared * weight).sum() / weight.sum()))


def accuracy(quick: bool) -> None:
    from napari_nanosims.processing.alignment.piecewise import patch_size_px
    from napari_nanosims.testing.deform import DEFORMATIONS, patch_errors_px, simulate_deformation

    seeds = (1, 2) if quick else (1, 2, 3)
    frame_counts = (20,) if quick else (20, 40)
    print(f"accuracy: patch error (px) beside the patch noise limit, 128 x 128, seeds {seeds}; "
          "target: pooled and worst ratio <= 1.5")
    print(f"  {'deform':6s} {'scene':8s} {'counts':>6s} {'frames':>6s} {'limit':>6s} "
          f"{'ours':>6s} {'ratio':>6s} {'worst':>6s} {'usable':>6s} {'pixel':>6s}")
    worst_pooled = worst_patch = 0.0
    for deformation in DEFORMATIONS:
        for scene in ("mineral", "cells"):
            for counts in (2.0, 4.0):
                for n_frames in frame_counts:
                    errors, limits, pixels = [], [], []
                    worst = 0.0
                    for seed in seeds:
                        sim = simulate_deformation(scene, deformation, n_frames, counts,
                                                   window=128, amplitude_px=3.0, seed=seed)
                        result, _ = _register(sim["frames"], "piecewise")
                        side = patch_size_px(float(sim["frames"].mean()), (128, 128))
                        error, limit = patch_errors_px(sim, result, side)
                        pixels.append(_pixel_error_px(sim, result))
                        usable = limit < 1.0
                        errors.append(error[usable])
                        limits.append(limit[usable])
                        worst = max(worst, float(np.max(error[usable] / limit[usable])))
                    error_px = float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))
                    limit_px = float(np.sqrt(np.mean(np.concatenate(limits) ** 2)))
                    usable_share = sum(e.size for e in errors) / (len(seeds) * 25)
                    worst_pooled = max(worst_pooled, error_px / limit_px)
                    worst_patch = max(worst_patch, worst)
                    print(f"  {deformation:6s} {scene:8s} {counts:6.1f} {n_frames:6d} "
                          f"{limit_px:6.3f} {error_px:6.3f} {error_px / limit_px:6.2f} "
                          f"{worst:6.2f} {usable_share:6.2f} "
                          f"{float(np.sqrt(np.mean(np.square(pixels)))):6.3f}", flush=True)
    print(f"  worst pooled ratio {worst_pooled:.2f}, worst patch ratio {worst_patch:.2f}\n")


def rigid(quick: bool) -> None:
    from napari_nanosims.testing.simulate import SCENES, simulate_scene

    seeds = (1,) if quick else (1, 2)
    print("rigid drift only (128 x 128, up to 6 px): frames given a field (target 0), and "
          f"seconds per frame, piecewise beside subpixel; seeds {seeds}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"  {'scene':9s} {'counts':>6s} {'frames':>6s} {'fields':>7s} {'piecewise':>9s} "
          f"{'subpixel':>9s} {'ratio':>6s}")
    total = 0
    for scene in SCENES:
        for counts in (0.5, 2.0, 10.0):
            for n_frames in (10, 40):
                fields = 0
                pieces = subs = 0.0
                for seed in seeds:
                    sim = simulate_scene(scene, n_frames, counts, window=128, max_drift_px=6,
                                         seed=seed)
                    result, piece = _register(sim["frames"], "piecewise")
                    _, sub = _register(sim["frames"], "subpixel")
                    fields += int(np.any(result.displacement_px != 0, axis=(1, 2, 3)).sum())
                    pieces += piece / n_frames / len(seeds)
                    subs += sub / n_frames / len(seeds)
                total += fields
                print(f"  {scene:9s} {counts:6.1f} {n_frames:6d} {fields:7d} {pieces:9.3f} "
                      f"{subs:9.3f} {pieces / subs:6.1f}", flush=True)
    print(f"  frames given a field on rigid stacks: {total} (target 0)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds and frame counts")
    args = parser.parse_args()
    accuracy(args.quick)
    rigid(args.quick)


if __name__ == "__main__":
    main()
