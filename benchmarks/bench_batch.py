"""Batch processing: 40 demo-sized files one after the other, on a local pool of 2 worker
processes, and on a 2-worker dask.distributed LocalCluster.

Prints wall time, speed-up over the serial run, and the peak resident memory of the
processes that did the work beside the size of one acquisition (the bound a task must
stay within, plus a fixed margin for Python, numpy and the libraries).

Run: python benchmarks/bench_batch.py [--files 40] [--frames 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from napari_nanosims import make_demo_im
    from napari_nanosims.batch.pool import process_one, run_batch
    from napari_nanosims.steps.recipe import default_recipe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nanosims-batch-"))
    paths = [make_demo_im(folder / f"cells_{k:02d}.im", n_frames=args.frames, seed=k)["path"]
             for k in range(args.files)]
    acquisition_mib = args.frames * 7 * 256 * 256 * 4 / 2**20
    recipe = default_recipe()
    print(f"{args.files} files of {args.frames} frames x 7 masses x 256 x 256 "
          f"({acquisition_mib:.0f} MiB each as uint32), default recipe (clean, align, sum), "
          f"{os.cpu_count()} cores\n")
    rows = []

    started = time.perf_counter()
    serial = [process_one(p, recipe.to_dict(), folder / "serial", single_threaded=False)
              for p in paths]
    rows.append(("serial (--workers 1, 2 frame threads)", time.perf_counter() - started,
                 max(r.peak_memory_mib for r in serial), serial))

    started = time.perf_counter()
    pool = run_batch(paths, recipe, folder / "pool", workers=2)
    rows.append(("--workers 2 (local process pool)", time.perf_counter() - started,
                 max(r.peak_memory_mib for r in pool), pool))

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
            remote = run_batch(paths, recipe, folder / "cluster", scheduler=client)
            rows.append(("2-worker LocalCluster (--scheduler)", time.perf_counter() - started,
                         max(r.peak_memory_mib for r in remote), remote))

    base = rows[0][1]
    print(f"  {'how':40s} {'wall s':>7s} {'speed-up':>9s} {'s/file':>7s} "
          f"{'peak RSS MiB':>13s} {'task MiB':>9s} {'failed':>6s}")
    for name, seconds, peak, results in rows:
        # The most one task added to its process's memory (peak during it - memory before).
        task = max(r.peak_memory_mib - r.start_memory_mib for r in results)
        print(f"  {name:40s} {seconds:7.1f} {base / seconds:8.2f}x {seconds / len(paths):7.2f} "
              f"{peak:13.0f} {task:9.0f} {sum(not r.ok for r in results):6d}")
    reference = {Path(p).name: Path(p).read_bytes() for p in (folder / "serial").glob("*_sums*")}
    for name, *_ in rows[1:]:
        sub = "pool" if "pool" in name else "cluster"
        import tifffile

        same = all(np.array_equal(tifffile.imread(folder / "serial" / n),
                                  tifffile.imread(folder / sub / n)) for n in reference)
        print(f"  {name}: sums identical to the serial run: {same}")
    print(f"\n  one acquisition: {acquisition_mib:.0f} MiB. Peak RSS: the largest of the "
          "processes while a task ran, Python, numpy, scipy, numba and dask included; task: "
          "the most one task raised its process's memory above what it started with")


if __name__ == "__main__":
    main()
