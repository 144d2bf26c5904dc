"""Fuzz every reader with seeded, structure-aware hostile files and print the contract.

Each case must read, or raise ImFormatError/ValueError naming the file ("refused"); any
other exception is an escape. Printed per reader, side by side: cases, read, refused,
escapes, the slowest case (target: under 1 s), and the largest peak of traced memory
relative to the file's size (target: at most 2x, plus 1 MiB for small files).

    python benchmarks/fuzz_readers.py [--cases 10000] [--seed 1] [--readers nrrd,ome,im]
"""

from __future__ import annotations

import argparse
import collections
import logging
import tempfile
from pathlib import Path

import numpy as np

from napari_nanosims.testing.fuzz import (
    mutate_im,
    mutate_nrrd,
    mutate_ome,
    nrrd_sources,
    ome_sources,
    run_case,
)

MIB = 1 << 20


def read_nrrd_fully(path):
    from napari_nanosims.export.nrrd import read_nrrd

    acquisition = read_nrrd(path)
    int(np.asarray(acquisition.counts).astype(np.float64).sum() >= 0)


def read_ome_as_napari(path):
    """The library reader, then what napari's results reader does with it."""
    from napari_nanosims._napari.layers import result_layer_data
    from napari_nanosims._napari.reader import get_results_reader
    from napari_nanosims.export.ometiff import read_ome_tiff

    get_results_reader(str(path))
    content = read_ome_tiff(path)
    if content["description"] is not None:
        result_layer_data(content, str(path))


def read_im_fully(path):
    from napari_nanosims import load_mims

    mims = load_mims(path)
    int(np.asarray(mims.data).sum(dtype=np.uint64))
    mims.header.to_dict()


def im_sources(folder):
    from napari_nanosims.testing.factory import make_im

    data = np.random.default_rng(0).integers(0, 300, size=(3, 3, 16, 24)).astype(np.uint32)
    options = {"labels": ["12C", "13C", "SE"], "masses_amu": [12, 13, 0]}
    paths = [make_im(Path(folder) / "new.im", data, **options),
             make_im(Path(folder) / "cameca.im", data, signed=False, **options),
             make_im(Path(folder) / "old.im", data, legacy=True, **options)]
    return [Path(p).read_bytes() for p in paths]


def fuzz(name, sources, mutate, read, cases, seed, folder, suffix):
    """Run ``cases`` mutated files through ``read``; the summary row."""
    rng = np.random.default_rng(seed)
    counts = collections.Counter()
    escapes = collections.Counter()
    slowest = (0.0, -1)
    largest = (0.0, -1, 0, 0)  # peak / size, case, peak, size
    most = (0, -1, 0)  # peak, case, size
    over_budget = 0
    path = Path(folder) / f"fuzz{suffix}"
    for case in range(cases):
        raw = mutate(sources[case % len(sources)], rng)
        outcome = run_case(read, path, raw)
        counts[outcome.kind] += 1
        if outcome.kind == "escaped":
            escapes[outcome.message[:140]] += 1
        slowest = max(slowest, (outcome.seconds, case))
        if outcome.size >= 1 << 16:  # below, the allowance of 1 MiB dominates
            largest = max(largest, (outcome.peak / outcome.size, case, outcome.peak,
                                    outcome.size))
        most = max(most, (outcome.peak, case, outcome.size))
        over_budget += outcome.peak > 2 * outcome.size + MIB
    return {"reader": name, "cases": cases, "read": counts["read"],
            "refused": counts["refused"], "escapes": counts["escaped"],
            "slowest": slowest, "largest": largest, "most": most, "over_budget": over_budget,
            "escape_kinds": escapes}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--readers", default="nrrd,ome,im")
    args = parser.parse_args(argv)
    # tifffile logs every defect it meets; the outcome of each case is what counts here.
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder) / "scratch"
        scratch.mkdir()
        plans = {
            "nrrd": ("read_nrrd", lambda: nrrd_sources(scratch), mutate_nrrd,
                     read_nrrd_fully, ".nrrd"),
            "ome": ("read_ome_tiff + napari", lambda: ome_sources(scratch),
                    lambda raw, rng: mutate_ome(raw, rng, scratch), read_ome_as_napari,
                    ".ome.tif"),
            "im": ("load_mims (.im, reference)", lambda: im_sources(scratch), mutate_im,
                   read_im_fully, ".im"),
        }
        for key in args.readers.split(","):
            name, sources, mutate, read, suffix = plans[key]
            rows.append(fuzz(name, sources(), mutate, read, args.cases, args.seed, folder,
                             suffix))
            row = rows[-1]
            ratio, case, peak, size = row["largest"]
            print(f"{row['reader']}: cases {row['cases']}, read {row['read']}, refused "
                  f"{row['refused']}, escapes {row['escapes']}; slowest "
                  f"{row['slowest'][0]:.3f} s (case {row['slowest'][1]}); largest peak "
                  f"{row['most'][0] / MIB:.2f} MiB (case {row['most'][1]}, file "
                  f"{row['most'][2]} B); largest peak / size for files >= 64 KiB: "
                  f"{ratio:.2f} ({peak} B for {size} B, case {case}); over "
                  f"2 x size + 1 MiB: {row['over_budget']}", flush=True)
            for text, number in row["escape_kinds"].most_common(10):
                print(f"    {number:5d} x {text}")
    print("targets: 0 escapes, slowest < 1 s, peak <= 2 x file size + 1 MiB (small files "
          "are dominated by the 1 MiB)")
    return 1 if any(row["escapes"] for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
