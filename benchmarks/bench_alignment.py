"""Alignment accuracy on every class of scene, and its speed beside the seed and the FFT floor.

Accuracy: RMS error (px) of ``method='subpixel'`` per scene class, counts per pixel
and number of frames, beside the noise limit (each noisy frame located in the
noise-free field with the same filtering) and the seed's whole-pixel method; random-walk
and linear drifts of up to 15 px, 256 x 256 frames (192 with --quick).

Speed: milliseconds per frame for 256 x 256 and 512 x 512 frames, quiet and with two
busy processes competing for the two cores, beside the seed's method and one
rfft2 + irfft2 correlation of the padded frame (the FFT floor).

Run: python benchmarks/bench_alignment.py [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import numpy as np


def _busy(stop):
    while not stop.is_set():
        sum(range(10_000))


def accuracy(quick: bool) -> None:
    import openformat.mims as seed

    from napari_nanosims import infer_translations
    from napari_nanosims.testing.simulate import (
        SCENES,
        alignment_error_px,
        registration_noise_limit_px,
        simulate_scene,
    )

    window = 192 if quick else 256
    frame_counts = (10, 40) if quick else (5, 40, 200)
    print(f"accuracy: RMS error (px), {window} x {window} frames, drift up to 15 px; each cell "
          "pools a random walk and a linear drift")
    print(f"  {'scene':9s} {'counts/px':>9s} {'frames':>6s} {'limit':>7s} {'ours':>7s} "
          f"{'ratio':>6s} {'seed':>7s}")
    worst = 0.0
    for kind in SCENES:
        for counts in (0.5, 2.0, 10.0):
            for n_frames in frame_counts:
                ours, limits, seeds = [], [], []
                for seed_value, drift in ((1, "random_walk"), (2, "linear")):
                    sim = simulate_scene(kind, n_frames, counts, window=window, drift=drift,
                                         seed=seed_value)
                    ours.append(alignment_error_px(
                        infer_translations(sim["frames"], method="subpixel"), sim["drift_px"]))
                    limits.append(registration_noise_limit_px(sim))
                    seeds.append(alignment_error_px(
                        seed.infer_translations(sim["frames"].astype(np.int32), padding=16),
                        sim["drift_px"]))
                ours_px, limit_px, seed_px = (float(np.sqrt(np.mean(np.square(v))))
                                              for v in (ours, limits, seeds))
                worst = max(worst, ours_px / limit_px)
                print(f"  {kind:9s} {counts:9.1f} {n_frames:6d} {limit_px:7.3f} {ours_px:7.3f} "
                      f"{ours_px / limit_px:6.2f} {seed_px:7.3f}")
    print(f"  worst ratio to the noise limit: {worst:.2f}\n")


def speed(quick: bool) -> None:
    import openformat.mims as seed
    import scipy.fft

    from napari_nanosims import infer_translations
    from napari_nanosims.testing.simulate import simulate_scene

    print("speed: ms per frame ('subpixel' includes its diagnostics), 2 cores")
    print(f"  {'frames':>12s} {'load':>6s} {'subpixel':>9s} {'seed':>7s} {'FFT floor':>9s} "
          f"{'x floor':>8s}")
    for size, n_frames in ((256, 30 if quick else 100), (512, 10 if quick else 40)):
        sim = simulate_scene("mineral", n_frames, 2.0, window=size, seed=3)
        frames = sim["frames"]
        padded = scipy.fft.next_fast_len(size + size // 4, real=True)
        image = np.random.default_rng(0).random((padded, padded))
        for load in ("quiet", "2 busy"):
            stop = multiprocessing.Event()
            workers = []
            if load != "quiet":
                workers = [multiprocessing.Process(target=_busy, args=(stop,)) for _ in range(2)]
                for worker in workers:
                    worker.start()
                time.sleep(0.5)
            try:
                started = time.perf_counter()
                infer_translations(frames, method="subpixel")
                ours = (time.perf_counter() - started) / n_frames * 1e3
                started = time.perf_counter()
                seed.infer_translations(frames.astype(np.int32), padding=16)
                theirs = (time.perf_counter() - started) / n_frames * 1e3
                started = time.perf_counter()
                for _ in range(20):
                    spectrum = scipy.fft.rfft2(image)
                    scipy.fft.irfft2(spectrum * spectrum.conj(), s=image.shape)
                floor = (time.perf_counter() - started) / 20 * 1e3
            finally:
                stop.set()
                for worker in workers:
                    worker.join()
            print(f"  {n_frames:4d} x {size}² {load:>6s} {ours:9.1f} {theirs:7.1f} {floor:9.2f} "
                  f"{ours / floor:8.0f}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and smaller cases")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--accuracy-only", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores\n")
    if not args.accuracy_only:
        speed(args.quick)
    if not args.speed_only:
        accuracy(args.quick)


if __name__ == "__main__":
    main()
