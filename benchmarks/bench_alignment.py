"""Alignment accuracy on every class of scene, and its speed beside the seed and the FFT floor.

Accuracy: RMS error (px) of ``method='subpixel'`` per scene class, counts per pixel
and number of frames, beside the noise limit (each noisy frame located in the
noise-free field with the same filtering) and the seed's whole-pixel method; random-walk
and linear drifts of up to 15 px, 256 x 256 frames (192 with --quick).

Speed: milliseconds per frame for 10, 40 and 200 frames of 256 x 256 and 512 x 512 and
every scene class, beside one FFT correlation (two rfft2 and one irfft2) of the padded
frame measured in the same run (the FFT floor), and their ratio; the first call in a
fresh process against later ones; the peak memory of align_frames on a
(100, 7, 512, 512) stack, sequential, subpixel and piecewise.

Real images: stacks cut from real 12C 14N images of ../shared/data, beside the noise limit
(and, beyond 1.3x, the limit with the other noisy frames as the reference).

Run: python benchmarks/bench_alignment.py [--quick] [--speed-only | --accuracy-only | --real-only]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def accuracy(quick: bool) -> None:
    import openformat.mims as seed

    from napari_nanosims import infer_translations
    from napari_nanosims.testing.simulate import (
        SCENES,
        alignment_error_px,
        registration_noise_limit_px,
        registration_others_limit_px,
        simulate_scene,
    )

    window = 192 if quick else 256
    frame_counts = (10, 40) if quick else (10, 40, 200)
    print(f"accuracy: RMS error (px), {window} x {window} frames, drift up to 15 px; each cell "
          "pools a random walk and a linear drift")
    print("  'others', beyond 1.3x only: the same correlations as the limit with the mean of the "
          "other noisy frames, placed where they truly are, as the reference")
    print(f"  {'scene':9s} {'counts/px':>9s} {'frames':>6s} {'limit':>7s} {'ours':>7s} "
          f"{'ratio':>6s} {'seed':>7s} {'others':>7s}")
    worst = 0.0
    for kind in SCENES:
        for counts in (0.5, 2.0, 10.0):
            for n_frames in frame_counts:
                ours, limits, seeds, sims = [], [], [], []
                for seed_value, drift in ((1, "random_walk"), (2, "linear")):
                    sim = simulate_scene(kind, n_frames, counts, window=window, drift=drift,
                                         seed=seed_value)
                    sims.append(sim)
                    ours.append(alignment_error_px(
                        infer_translations(sim["frames"], method="subpixel"), sim["drift_px"]))
                    limits.append(registration_noise_limit_px(sim))
                    seeds.append(alignment_error_px(
                        seed.infer_translations(sim["frames"].astype(np.int32), padding=16),
                        sim["drift_px"]))
                ours_px, limit_px, seed_px = (float(np.sqrt(np.mean(np.square(v))))
                                              for v in (ours, limits, seeds))
                worst = max(worst, ours_px / limit_px)
                others = ""
                if ours_px > 1.3 * limit_px:
                    others_px = float(np.sqrt(np.mean(np.square(
                        [registration_others_limit_px(sim) for sim in sims]))))
                    others = f" {others_px:7.3f}"
                print(f"  {kind:9s} {counts:9.1f} {n_frames:6d} {limit_px:7.3f} {ours_px:7.3f} "
                      f"{ours_px / limit_px:6.2f} {seed_px:7.3f}{others}", flush=True)
    print(f"  worst ratio to the noise limit: {worst:.2f}\n")


def _fft_floor_ms(size: int, repeats: int = 20) -> float:
    """One FFT correlation (two rfft2 and one irfft2) of the registration's padded size."""
    import scipy.fft

    padded = scipy.fft.next_fast_len(size + size // 4, real=True)
    image = np.random.default_rng(0).random((padded, padded)).astype(np.float32)
    other = np.random.default_rng(1).random((padded, padded)).astype(np.float32)
    started = time.perf_counter()
    for _ in range(repeats):
        scipy.fft.irfft2(scipy.fft.rfft2(image) * scipy.fft.rfft2(other).conj(),
                         s=image.shape)
    return (time.perf_counter() - started) / repeats * 1e3


def speed(quick: bool) -> None:
    from napari_nanosims import register_frames
    from napari_nanosims.processing.alignment import _kernels
    from napari_nanosims.testing.simulate import SCENES, simulate_scene

    print(f"speed: ms per frame of register_frames(method='subpixel') (with its diagnostics) "
          f"beside one FFT correlation (2 rfft2 + 1 irfft2) of the same padded size, measured "
          f"in turn, the faster of two runs each; target <= 6x; load average before: "
          f"{os.getloadavg()[0]:.1f}")
    print(f"  {'scene':9s} {'frames':>6s} {'size':>5s} {'ms/frame':>9s} {'FFT ms':>7s} "
          f"{'ratio':>6s} {'passes':>6s}")
    worst = 0.0
    sizes = (256,) if quick else (256, 512)
    frame_counts = (10, 40) if quick else (10, 40, 200)
    # The canvas arithmetic: the C kernels for every stack where they were built, else
    # the fused kernels (numba) from FUSED_MIN_WORK frames x canvas pixels and the numpy
    # formulas below (_kernels.choose). numba, where used, is loaded here once, so that
    # its start (0.5 s) is not in the first large stack's time.
    started = time.perf_counter()
    if _kernels.compiled_kernels is None:
        _kernels.load_fused()
    register_frames(simulate_scene("cells", 3, 2.0, window=64, seed=1)["frames"])
    choose, kernels_used = _kernels.choose, []

    def recording_choose(work):  # which kernels each stack's full-resolution passes use
        chosen = choose(work)
        kernels_used.append("C" if chosen is _kernels.compiled_kernels else
                            "numpy" if chosen is _kernels else "numba")
        return chosen

    _kernels.choose = recording_choose
    note = ("the C kernels, every stack" if _kernels.compiled_kernels is not None else
            f"no C kernels built: numba's from {_kernels.FUSED_MIN_WORK:.1e} frames x canvas "
            "pixels, numpy below")
    print(f"  (kernels: {note}; loaded and "
          f"first used: {time.perf_counter() - started:.2f} s, once per process, not in the "
          "table; after the passes: the kernels a stack used)")
    for size in sizes:
        # What is done once per frame size and process (the band choice's noise shapes
        # of this canvas), so that the table shows what every later stack costs.
        started = time.perf_counter()
        register_frames(simulate_scene("cells", 3, 2.0, window=size, seed=1)["frames"])
        print(f"  ({size}²: the first stack of this size in the process, 3 frames: "
              f"{(time.perf_counter() - started) * 1e3:.0f} ms, not in the table)")
        for n_frames in frame_counts:
            for kind in SCENES:
                sim = simulate_scene(kind, n_frames, 2.0, window=size, seed=3)
                # Ours measured twice, in turn with the floor, and the faster kept
                # (run-to-run noise here is about 10 %; the floor is the least of three).
                floor, ours = _fft_floor_ms(size), np.inf
                for _ in range(2):
                    started = time.perf_counter()
                    result = register_frames(sim["frames"])
                    ours = min(ours, (time.perf_counter() - started) / n_frames * 1e3)
                    floor = min(floor, _fft_floor_ms(size))
                worst = max(worst, ours / floor)
                print(f"  {kind:9s} {n_frames:6d} {size:5d} {ours:9.1f} {floor:7.2f} "
                      f"{ours / floor:6.1f} {result.passes:6d} {kernels_used[-1]}",
                      flush=True)
    print(f"  worst ratio to the FFT floor: {worst:.1f} (load average after: "
          f"{os.getloadavg()[0]:.1f})\n")


_FIRST_CALL = """
import sys, time, numpy as np
from napari_nanosims.testing.simulate import simulate_scene
frames = simulate_scene("cells", int(sys.argv[2]), 2.0, window=int(sys.argv[1]),
                        seed=1)["frames"]
from napari_nanosims import register_frames
if sys.argv[3] == "without":  # as where no C compiler built them: numba and numpy
    from napari_nanosims.processing.alignment import _kernels
    _kernels.compiled_kernels = None
times = []
for _ in range(3):
    started = time.perf_counter()
    register_frames(frames)
    times.append(time.perf_counter() - started)
print(" ".join(f"{t:.3f}" for t in times))
"""


def first_call() -> None:
    """The first registration in a fresh process against the later ones (same process).

    'cache on disk': the usual case, the user cache holding what earlier processes left
    there (numba's kernels, the band choice's noise shapes; filled by a warm-up run
    first); 'no cache folder': every process computes them (the cache folder is a
    file): the noise shapes measured in every process, as before the tenth round, with
    numba's kernels from their cache still; 'without C kernels': as where no C compiler
    built them (numba's kernels from 1.6e7 frames x canvas pixels, loaded from its disk
    cache), the cache on disk.
    """
    import subprocess
    import sys
    import tempfile

    from napari_nanosims.processing.alignment import _kernels

    print("first call in a fresh process (cells), seconds: first, then the second and third")
    blocked = tempfile.NamedTemporaryFile(prefix="nanosims-no-cache-")  # noqa: SIM115 - a file, no folder
    no_cache = dict(os.environ, NAPARI_NANOSIMS_CACHE=os.path.join(blocked.name, "cache"),
                    NUMBA_CACHE_DIR=_numba_cache_dir())
    cases = {"cache on disk": (dict(os.environ), "with"),
             "no cache folder": (no_cache, "with")}
    if _kernels.compiled_kernels is not None:
        cases["without C kernels"] = (dict(os.environ), "without")
    else:
        print("  (the C kernels were not built: every case uses numba's and numpy's)")

    def run(size, frames, case):
        environment, kernels = cases[case]
        output = subprocess.run([sys.executable, "-c", _FIRST_CALL, str(size), str(frames),
                                 kernels], capture_output=True, text=True, check=True,
                                env=environment).stdout.split()
        return [float(v) for v in output]

    with blocked:
        for size, frames in ((256, 20), (512, 20), (256, 200), (512, 60)):
            for case in ("cache on disk", "without C kernels"):  # fill the caches
                if case in cases:
                    run(size, frames, case)
            excess: dict[str, list[float]] = {case: [] for case in cases}
            for attempt in range(3):  # alternating: this machine's speed wanders
                for case in cases:
                    first, *later = run(size, frames, case)
                    excess[case].append(first - min(later))
                    print(f"  {frames:3d} x {size}², {case:17s} run {attempt + 1}: "
                          f"{first:.3f} then {' '.join(f'{v:.3f}' for v in later)}"
                          f"  (first - later: {first - min(later):+.3f} s)", flush=True)
            print(f"  {frames:3d} x {size}², first - later, median of 3: " + ", ".join(
                f"{case} {np.median(values):+.3f} s" for case, values in excess.items())
                + " (target <= 0.5 s)", flush=True)
    print()


def _numba_cache_dir() -> str:
    """Where numba keeps this package's compiled kernels (the same for both cases)."""
    from napari_nanosims._cache import use_user_numba_cache

    return use_user_numba_cache()


_MEMORY = """
import gc, resource, sys, numpy as np, warnings
from napari_nanosims import Acquisition, run_recipe
from napari_nanosims.testing.deform import simulate_deformation
n, size, method = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
# A drifting mineral that also bulges by up to 3 px, so that 'piecewise' warps.
truth = simulate_deformation("mineral", "bulge", n, 4.0, window=size, amplitude_px=3.0,
                             seed=1)["truth"]
counts = np.empty((n, 7, size, size), np.uint16)
for k in range(n):
    counts[k] = rng.poisson(truth[k], size=(7, size, size))
del truth
acquisition = Acquisition.from_arrays(counts, [f"m{i}" for i in range(6)] + ["SE"],
                                      pixel_size_um=0.1)

def resident():  # (resident, peak resident since the reset) MiB; Linux, else ru_maxrss
    values = {}
    try:
        with open("/proc/self/status") as status:
            values = {line.split(":")[0]: float(line.split()[1]) / 1024 for line in status
                      if line.startswith(("VmRSS:", "VmHWM:"))}
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return values.get("VmRSS", peak), values.get("VmHWM", peak)

with warnings.catch_warnings():  # imports and compilation are not the step's memory
    warnings.simplefilter("ignore")
    # Without the C kernels the step loads numba's (about 100 MiB once per process; a
    # session that removed hot pixels has numba already): loaded here, as the small step
    # won't.
    from napari_nanosims.processing.alignment import _kernels
    if _kernels.compiled_kernels is None:
        _kernels.load_fused()
    run_recipe(Acquisition.from_arrays(counts[:3, :, :48, :48], acquisition.labels),
               [("align_frames", {"method": method, "channel": "m0"})])
gc.collect()
try:  # memory freed after building the input goes back to the system (glibc) ...
    import ctypes
    ctypes.CDLL("libc.so.6").malloc_trim(0)
except (OSError, AttributeError):
    pass
try:  # ... and the peak starts again from here
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
except OSError:
    pass
base = resident()[0]
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    aligned = run_recipe(acquisition, [("align_frames", {"method": method,
                                                         "channel": "m0"})])
peak = resident()[1]
held = sum(array.nbytes for array in (aligned.variance, aligned.raw_counts)
           if isinstance(array, np.ndarray))
field = getattr(aligned.registration, "displacement_px", None)
print(counts.nbytes / 2**20, base, peak, aligned.counts.nbytes / 2**20,
      aligned.coverage.nbytes / 2**20, held / 2**20, int(bool(np.any(field))))
"""


def memory(quick: bool) -> None:
    """Peak resident memory that align_frames adds, against one copy of its result.

    Issue 24: sub-pixel alignment of a (100, 7, 512, 512) acquisition should add at most
    one copy of the aligned counts (float64 after a sub-pixel or piecewise move, the
    input's dtype after whole-pixel moves), plus the small per-frame coverage (float32)
    and per-frame temporaries. Each method runs in a fresh process on a drifting, bulging
    scene; "added" is its peak resident memory (VmHWM, reset before the step) less what
    the process held before the step; "held var/raw" what the result holds as arrays of
    moved variance and raw counts (0: moved on access); "warped" whether piecewise
    found a field (else it moved rigidly).
    """
    import subprocess
    import sys

    n, size = (20, 256) if quick else (100, 512)
    print(f"memory: align_frames on ({n}, 7, {size}, {size}) uint16 counts; MiB of a fresh "
          "process (peak resident less resident before the step); target: added <= 1 copy "
          "of the aligned counts + the coverage (target column: that, as added/aligned)")
    print(f"  {'method':10s} {'input':>6s} {'added':>6s} {'aligned':>8s} {'coverage':>8s} "
          f"{'held var/raw':>12s} {'added/aligned':>13s} {'target':>7s} "
          f"{'(added-coverage)/aligned':>24s} {'warped':>6s}")
    for method in ("sequential", "subpixel", "piecewise"):
        values = subprocess.run([sys.executable, "-c", _MEMORY, str(n), str(size), method],
                                capture_output=True, text=True, check=True).stdout.split()
        size_in, before, peak, result, coverage, held, warped = (float(v) for v in values)
        added = peak - before
        target = 1.0 + coverage / result
        print(f"  {method:10s} {size_in:6.0f} {added:6.0f} {result:8.0f} {coverage:8.0f} "
              f"{held:12.0f} {added / result:13.2f} {target:7.2f} "
              f"{(added - coverage) / result:24.2f} {'yes' if warped else 'no':>6s}",
              flush=True)
    print()


REAL_FILES = ("OpenMIMS_doc_051117_05-32dRe-03b.im", "OpenMIMS_doc_040702_06-05mos-03a.im")


def real_images() -> None:
    """Stacks cut from real 12C 14N images (their summed counts as the noise-free field)."""
    from pathlib import Path

    from napari_nanosims import open_acquisition, register_frames
    from napari_nanosims.testing.simulate import (
        alignment_error_px,
        registration_noise_limit_px,
        registration_others_limit_px,
        simulate_drift,
    )

    folder = Path(__file__).resolve().parents[2] / "shared" / "data"
    print("real images: 12C 14N summed as the field, drift up to 6 px, each cell pools a "
          "random walk and a linear drift")
    for name in REAL_FILES:
        path = folder / name
        if not path.exists():
            print(f"  {name}: not found in {folder}, skipped")
            continue
        acquisition = open_acquisition(path)
        labels = [channel.label for channel in acquisition.channels]
        mass = next((k for k, label in enumerate(labels) if "14N" in label), 0)
        field = np.asarray(acquisition.counts[:, mass], dtype=np.float64).sum(axis=0)
        window = min(field.shape) - 28
        print(f"  {name} ({labels[mass]}, {window} px windows)")
        for counts, n_frames in ((5.0, 20), (2.0, 40), (0.5, 20), (0.5, 10), (2.0, 10)):
            ours, limits, sims = [], [], []
            for seed_value, drift in ((1, "random_walk"), (2, "linear")):
                sim = simulate_drift(field, n_frames, counts, window=window, step_px=None,
                                     seed=seed_value, drift=drift, max_drift_px=6)
                sims.append(sim)
                ours.append(alignment_error_px(register_frames(sim["frames"]).translations,
                                               sim["drift_px"]))
                limits.append(registration_noise_limit_px(sim))
            ours_px, limit_px = (float(np.sqrt(np.mean(np.square(v)))) for v in (ours, limits))
            others = ""
            if ours_px > 1.3 * limit_px:  # as in the accuracy table
                others_px = float(np.sqrt(np.mean(np.square(
                    [registration_others_limit_px(sim) for sim in sims]))))
                others = f" others {others_px:.3f}"
            print(f"    {counts:4.1f} counts/px {n_frames:4d} frames: limit {limit_px:.3f} "
                  f"ours {ours_px:.3f} ratio {ours_px / limit_px:.2f}{others}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and smaller cases")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--accuracy-only", action="store_true")
    parser.add_argument("--real-only", action="store_true",
                        help="only the stacks cut from real images (../shared/data)")
    args = parser.parse_args()
    if args.real_only:
        real_images()
        return
    print(f"{os.cpu_count()} cores\n")
    if not args.accuracy_only:
        print(f"load average (1, 5, 15 min): {os.getloadavg()}")
        first_call()
        speed(args.quick)
        memory(args.quick)
    if not args.speed_only:
        accuracy(args.quick)
        real_images()


if __name__ == "__main__":
    main()
