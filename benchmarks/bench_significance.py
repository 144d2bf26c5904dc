"""Calibration of significance() at NanoSIMS counts, and its false discovery rate.

Homogeneous simulated images (Poisson counts, 13C/12C at VPDB 0.0112372, 12C set so that
the expected 13C counts per pixel are 0.5, 1, 2, 5, 10 and 100) have no enrichment: a
calibrated test flags the nominal fraction 0.00135 of their pixels at p < 0.00135
(z > 3). Prints, per expected count, the nominal rate, the rate of the former normal
approximation (``z = (A - n p0)/sqrt(n p0 (1 - p0))`` on the counts, computed here) and
of the three p-values significance() offers ('randomized', the default; 'mid-p';
'exact'), each also as a multiple of the nominal rate, and the time per 512 x 512 map.

Then the false discovery proportion of Benjamini-Hochberg at fdr=0.05, averaged over
images where a fraction of the pixels is enriched 3x (expected: 0.05 x the null share).

    python benchmarks/bench_significance.py [--quick] [--ratio 0.0036765]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

ALPHA = 0.00135
LEVELS = (0.5, 1.0, 2.0, 5.0, 10.0, 100.0)
METHODS = ("randomized", "mid-p", "exact")


def acquisition(major, minor):
    from napari_nanosims import Acquisition

    return Acquisition.from_arrays(np.stack([major, minor])[None].astype(np.uint32),
                                   ["12C", "13C"])


def old_normal_approximation(minor, major, ratio):
    """The z of significance() before issue 17: normal approximation to the binomial."""
    p0 = ratio / (1 + ratio)
    n = minor + major
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, (minor - n * p0) / np.sqrt(n * p0 * (1 - p0)), np.nan)


def calibration(ratio: float, size: int, repeats: int, seed: int) -> None:
    from napari_nanosims import significance

    rng = np.random.default_rng(seed)
    print(f"Rate of p < {ALPHA} on homogeneous images, minor/major {ratio:g}, "
          f"{repeats} x {size}x{size} pixels per row (rate, and x nominal)")
    header = f"  {'13C/px':>6s} {'nominal':>8s} {'old normal':>17s}"
    for method in METHODS:
        header += f" {method:>17s}"
    print(header + f" {'s per map':>9s}")
    for level in LEVELS:
        flagged = {name: 0 for name in ("old",) + METHODS}
        pixels, seconds = 0, []
        for _ in range(repeats):
            major = rng.poisson(level / ratio, (size, size))
            minor = rng.poisson(level, (size, size))
            acq = acquisition(major, minor)
            z_old = old_normal_approximation(minor, major, ratio)
            flagged["old"] += int(np.sum(z_old > stats.norm.isf(ALPHA)))
            for method in METHODS:
                started = time.perf_counter()
                result = significance(acq, "13C", "12C", ratio, method=method, fdr=None)
                if method == "randomized":
                    seconds.append(time.perf_counter() - started)
                flagged[method] += int(np.sum(result.p_value < ALPHA))
            pixels += size * size
        row = f"  {level:6g} {ALPHA:8.5f}"
        for name in ("old",) + METHODS:
            rate = flagged[name] / pixels
            row += f" {rate:8.5f} ({rate / ALPHA:5.2f}x)"
        print(row + f" {min(seconds):9.3f}")


def false_discoveries(ratio: float, size: int, runs: int, seed: int) -> None:
    from napari_nanosims import significance

    rng = np.random.default_rng(seed)
    print(f"\nBenjamini-Hochberg at fdr=0.05: mean false discovery proportion over {runs} "
          f"images of {size}x{size}, enriched pixels 3x the ratio")
    print(f"  {'13C/px':>6s} {'enriched':>8s} {'bound':>6s} {'FDP':>7s} {'power':>6s}")
    for level in (0.5, 2.0, 10.0):
        for share in (0.05, 0.2):
            proportions, power = [], []
            for _ in range(runs):
                enriched = rng.random((size, size)) < share
                major = rng.poisson(level / ratio, (size, size))
                minor = rng.poisson(np.where(enriched, 3 * level, level))
                result = significance(acquisition(major, minor), "13C", "12C", ratio,
                                      fdr=0.05, seed=int(rng.integers(1 << 30)))
                found = result.discoveries
                proportions.append(np.sum(found & ~enriched) / max(int(found.sum()), 1))
                power.append(np.sum(found & enriched) / max(int(enriched.sum()), 1))
            print(f"  {level:6g} {share:8.0%} {0.05 * (1 - share):6.3f} "
                  f"{np.mean(proportions):7.4f} {np.mean(power):6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and smaller images")
    parser.add_argument("--ratio", type=float, default=0.0112372,
                        help="null ratio minor/major (default VPDB 13C/12C)")
    args = parser.parse_args()
    if args.quick:
        calibration(args.ratio, 256, 2, seed=1)
        false_discoveries(args.ratio, 128, 10, seed=2)
    else:
        calibration(args.ratio, 512, 4, seed=1)
        false_discoveries(args.ratio, 256, 40, seed=2)


if __name__ == "__main__":
    main()
