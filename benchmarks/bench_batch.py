"""Batch processing: the default ``--workers`` against ``--workers 1`` and ``--workers 2``.

Each run is a fresh ``nanosims process`` command (what a user runs: Python starting,
imports and numba's cache loading included), timed from outside, on three batches: 4 real
files (the two ``.im`` files with pixels in ``../shared/data``, each twice), 6 and 40 demo
files (20 frames x 7 masses x 256 x 256), default recipe. The runs of a batch are
interleaved and repeated; the median is printed beside the reference (``--workers 1``)
with the ratio, and the rule's estimates (:func:`napari_nanosims.batch.workers.choose_workers`)
beside the measured times.

With ``--details``: the memory the tasks need and the 2-worker dask.distributed
LocalCluster, in this process, on the 40 demo files.

Run: python benchmarks/bench_batch.py [--repeat 3] [--details]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_FILES = ["OpenMIMS_doc_040702_06-05mos-03a.im", "OpenMIMS_doc_051117_05-32dRe-03b.im"]


def _batches(folder: Path) -> dict[str, list[str]]:
    from napari_nanosims import make_demo_im

    demo = [str(make_demo_im(folder / f"cells_{k:02d}.im", n_frames=20, seed=k)["path"])
            for k in range(40)]
    batches = {}
    if all((REAL / name).exists() for name in REAL_FILES):
        real = folder / "real"
        real.mkdir()
        for copy in (1, 2):  # links under other names: the data stay where they are
            for name in REAL_FILES:
                (real / f"{Path(name).stem}_{copy}.im").symlink_to(REAL / name)
        batches["4 real files"] = sorted(str(p) for p in real.iterdir())
    else:
        print(f"the real files are not in {REAL}: that batch is skipped")
    batches["6 demo files"] = demo[:6]
    batches["40 demo files"] = demo
    return batches


def _run(files: list[str], out: Path, workers: int | None) -> tuple[float, str]:
    """Wall seconds of one ``nanosims process`` command, and how it said it ran."""
    shutil.rmtree(out, ignore_errors=True)
    options = [] if workers is None else ["--workers", str(workers)]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "napari_nanosims.cli", "process", *files,
                           "--out", str(out), *options], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    how = next((line for line in done.stderr.splitlines() if line.startswith("processing")),
               "processing one after the other")
    return seconds, ("serial" if "one after" in how
                     else how.split(" on ")[-1].replace(" local worker processes", " proc"))


def _estimates(files: list[str]) -> tuple[float, float]:
    """The rule's estimated seconds one after the other and on 2 workers."""
    from napari_nanosims.batch import workers as rule

    costs = [rule.SECONDS_PER_FILE + os.stat(f).st_size / 2**20 * rule.SECONDS_PER_MIB
             for f in files]
    return sum(costs), rule.WORKER_START_S + max(sum(costs) / 2, max(costs))


def compare(folder: Path, repeat: int) -> None:
    from napari_nanosims.batch.workers import default_workers, free_cores

    batches = _batches(folder)
    print(f"{default_workers()} cores, {free_cores()} free (load average "
          f"{os.getloadavg()[0]:.1f} at the start); median of {repeat} interleaved runs, "
          "wall seconds of the whole command\n")
    print(f"  {'batch':14s} {'default':>16s} {'--workers 1':>12s} {'--workers 2':>12s} "
          f"{'default/w1':>11s} {'w1/w2':>7s} {'est. w1':>8s} {'est. w2':>8s}")
    for name, files in batches.items():
        times: dict = {None: [], 1: [], 2: []}
        how = ""
        for _ in range(repeat):
            for workers in times:
                seconds, said = _run(files, folder / "out", workers)
                times[workers].append(seconds)
                if workers is None:
                    how = said
        default, one, two = (statistics.median(times[w]) for w in (None, 1, 2))
        serial_estimate, pool_estimate = _estimates(files)
        print(f"  {name:14s} {default:7.2f} ({how:6s}) {one:12.2f} {two:12.2f} "
              f"{default / one:10.2f}x {one / two:6.2f}x {serial_estimate:8.2f} "
              f"{pool_estimate:8.2f}", flush=True)
    print(f"\n  default/w1: at most 1 (never slower); w1/w2: the gain of 2 workers (goal for "
          f"40 demo files: 1.3x or more). est.: the rule's estimates (default workers: "
          f"2 when est. w2 <= 0.75 est. w1, on 2 free cores). Load average at the end: "
          f"{os.getloadavg()[0]:.1f}")


def details(folder: Path, files: list[str]) -> None:
    """Memory of the tasks, and the dask.distributed LocalCluster, in this process."""
    import tifffile

    from napari_nanosims.batch.pool import process_one, run_batch
    from napari_nanosims.steps.recipe import default_recipe

    acquisition_mib = 20 * 7 * 256 * 256 * 4 / 2**20
    recipe = default_recipe()
    rows = []
    started = time.perf_counter()
    serial = [process_one(p, recipe.to_dict(), folder / "serial", single_threaded=False)
              for p in files]
    rows.append(("serial (--workers 1, 2 frame threads)", time.perf_counter() - started, serial))
    started = time.perf_counter()
    pool = run_batch(files, recipe, folder / "pool", workers=2)
    rows.append(("--workers 2 (local process pool)", time.perf_counter() - started, pool))
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print("dask.distributed is not installed: the cluster row is skipped")
    else:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster, \
                Client(cluster) as client:
            client.run(lambda: None)  # workers up before the clock starts
            started = time.perf_counter()
            remote = run_batch(files, recipe, folder / "cluster", scheduler=client)
            rows.append(("2-worker LocalCluster (--scheduler)", time.perf_counter() - started,
                         remote))
    base = rows[0][1]
    print(f"\n  {'how (in this process, warm)':40s} {'wall s':>7s} {'speed-up':>9s} "
          f"{'peak RSS MiB':>13s} {'task MiB':>9s} {'failed':>6s}")
    for name, seconds, results in rows:
        # The most one task added to its process's memory (peak during it - memory before).
        task = max(r.peak_memory_mib - r.start_memory_mib for r in results)
        print(f"  {name:40s} {seconds:7.1f} {base / seconds:8.2f}x "
              f"{max(r.peak_memory_mib for r in results):13.0f} {task:9.0f} "
              f"{sum(not r.ok for r in results):6d}")
    for name, sub in (("pool", "pool"), ("cluster", "cluster")):
        if (folder / sub).exists():
            same = all(np.array_equal(tifffile.imread(p), tifffile.imread(folder / sub / p.name))
                       for p in (folder / "serial").glob("*_sums*"))
            print(f"  {name}: sums identical to the serial run: {same}")
    print(f"\n  one acquisition: {acquisition_mib:.0f} MiB. Peak RSS: the largest of the "
          "processes while a task ran; task: the most one task raised its process's memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--details", action="store_true",
                        help="also memory and the dask LocalCluster (40 demo files)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nanosims-batch-"))
    try:
        compare(folder, args.repeat)
        if args.details:
            details(folder, sorted(str(p) for p in folder.glob("cells_*.im")))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
