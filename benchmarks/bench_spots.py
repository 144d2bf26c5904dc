"""Read 100 isotope (spot) files, ``.is``, into one table with ``spot_table``: time per file.

The package cannot write ``.is`` files, so the 100 files are symbolic links (with their
``.chk_is`` companions) to each real shared file in turn, in a temporary folder; each real
file is measured on its own, as the files differ (150 to 3900 cycles, 2 to 7 masses), with
its own ratio. Beside it: reading the bytes alone (the floor) and ``open_isotope`` alone,
and ``sims.SIMS`` (2.0.2, reads the header and no data from ``.is`` files, and fails when
the ``.chk_is`` sits beside the file) when installed.

    python benchmarks/bench_spots.py [--files 100] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL = {  # file -> a ratio it was set up to measure
    "2018-01-19-GLENDON_1_2.is": "13C/12C",
    "2020-01-17-TREASURE_2.is": "34S/32S",
    "is01 R1 KH03-27 01.is": "2H/1H",
}


def links(source: Path, folder: Path, count: int) -> list[str]:
    """``count`` symbolic links to ``source`` (and its .chk_is) under distinct names."""
    companion = source.with_suffix(".chk_is")
    paths = []
    for k in range(count):
        target = folder / f"{k:03d}_{source.name}"
        target.symlink_to(source)
        if companion.exists():
            target.with_suffix(".chk_is").symlink_to(companion)
        paths.append(str(target))
    return paths


def per_file(work, paths) -> float:
    """Milliseconds per file of ``work(paths)``, best of 3."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        work(paths)
        best = min(best, time.perf_counter() - started)
    return 1000 * best / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()

    from napari_nanosims import open_isotope, spot_table

    try:
        import sims
    except ImportError:
        sims = None

    def read_bytes(paths):
        for path in paths:
            with open(path, "rb") as handle:
                handle.read()

    def open_all(paths):
        for path in paths:
            open_isotope(path)

    def sims_all(paths):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for path in paths:
                sims.SIMS(path)

    found = [name for name in REAL if (Path(args.data) / name).exists()]
    if not found:
        raise SystemExit(f"no real .is file in {args.data}")
    print(f"{args.files} files each; milliseconds per file, best of 3")
    print(f"{'file':28s} {'cycles':>6s} {'rows':>5s} {'bytes':>7s} {'open':>7s} "
          f"{'table':>7s} {'sims hdr':>8s}")
    folder = Path(tempfile.mkdtemp(prefix="nanosims-bench-spots-"))
    try:
        everything = []
        for name in found:
            sub = folder / name.replace(" ", "_")
            sub.mkdir()
            paths = links(Path(args.data) / name, sub, args.files)
            everything.append((paths, REAL[name]))
            table = spot_table(paths, REAL[name])
            assert table["file"].nunique() == args.files
            floor = per_file(read_bytes, paths)
            opened = per_file(open_all, paths)
            tabled = per_file(lambda p, e=REAL[name]: spot_table(p, e), paths)
            reference = "n/a"
            if sims is not None:
                try:
                    reference = f"{per_file(sims_all, paths):7.3f}"
                except Exception:  # noqa: BLE001 - sims fails on files with a .chk_is
                    reference = "fails"
            cycles = open_isotope(paths[0]).n_cycles
            print(f"{name[:28]:28s} {cycles:6d} {len(table) // args.files:5d} "
                  f"{floor:7.3f} {opened:7.3f} {tabled:7.3f} {reference:>8s}")
        # One table over every file, as `nanosims spots` builds it (one ratio per file kind).
        started = time.perf_counter()
        import pandas as pd

        table = pd.concat([spot_table(p, e) for p, e in everything], ignore_index=True)
        elapsed = time.perf_counter() - started
        n_files = sum(len(p) for p, _ in everything)
        print(f"\nall {n_files} files into one table ({len(table)} rows, a row per file, "
              f"ratio and block): {elapsed:.2f} s, {1000 * elapsed / n_files:.2f} ms per file")
        print("bytes: reading the file alone; open: open_isotope; table: spot_table (open, "
              "dead-time correction, whole-run and per-block ratios); sims hdr: sims.SIMS "
              "(header only; 'fails': it raises on this file's .chk_is)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
