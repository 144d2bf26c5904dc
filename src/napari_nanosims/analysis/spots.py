"""Isotope ratios of spot (``.is``) measurements: corrections per cycle, per-block and
whole-run ratios with their errors, MSWD, outlier cycles, delta values, and one tidy table
over many files.

Definitions (``docs/ratios.md``, "Spot files"), for a ratio ``n/d`` of two masses with
ions ``n_i`` and ``d_i`` in cycle ``i`` of ``k`` cycles:

* ratio ``R = sum(n) / sum(d)``; Poisson error ``R sqrt(1/sum(n) + 1/sum(d))``;
* cycle ratios ``r_i = n_i / d_i`` with Poisson errors ``s_i = r_i sqrt(1/n_i + 1/d_i)``;
  standard error of the cycles ``std(r, ddof=1) / sqrt(k)``;
* ``chi2 = sum((r_i - R)**2 / s_i**2)``, ``MSWD = chi2 / (k - 1)`` (about 1 when the
  cycles scatter as counting statistics alone; ``p_value`` its upper-tail probability);
* a cycle is an outlier when ``|r_i - R| / s_i > t``; by default ``t`` is the
  Bonferroni threshold ``Phi^-1(1 - alpha / (2 k))`` (``alpha = 0.05``), so that a run of
  pure counting noise has any cycle flagged with probability about ``alpha``; a number
  given as ``outlier_sigma`` (such as the file's own rejection sigma) flags each cycle
  with probability ``2 (1 - Phi(t))`` instead;
* ``delta = (R / R_std - 1) * 1000`` permil, error
  ``1000 (R / R_std) sqrt((s_R / R)**2 + (s_std / R_std)**2)``.

Counts below about 100 ions per cycle make the Gaussian approximation behind the errors,
MSWD and the outlier rule poor.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np

from ..model.isotope import IsotopeMeasurement
from ..processing.corrections import (
    background_counts,
    dead_time_corrected,
    qsa_corrected,
    yield_corrected,
)
from .ratios import STANDARDS

__all__ = ["SpotRatio", "correct_isotope", "spot_ratio", "spot_table", "delta_permil",
           "outlier_threshold", "ions"]


def ions(measurement: IsotopeMeasurement) -> np.ndarray:
    """(cycles, masses) ions per cycle: the counts for electron multipliers, the Faraday
    cups' converted rate times the counting time for cups."""
    result = np.array(measurement.counts, dtype=np.float64)
    cups = [k for k, b in enumerate(measurement.fc_background) if b is not None]
    if cups:
        result[:, cups] = (measurement.fc_cps() * measurement.counting_time_s)[:, cups]
    return result


def correct_isotope(measurement: IsotopeMeasurement, *, dead_time: bool = True,
                    em_yield: bool = False, background: bool = False,
                    qsa_beta: float | None = None,
                    primary_current_pA: float | None = None) -> IsotopeMeasurement:
    """Detector corrections per cycle, with the functions the image steps use.

    Each cycle of an electron multiplier is treated as one pixel counted for the cycle's
    counting time: dead time ``n / (1 - n tau / t)``, yield ``c / Y``, background
    ``c - B t`` and QSA ``c (1 + beta K)`` (``processing/corrections.py``), with the
    detector's constants from the header. Faraday cups are left as they are.

    Parameters
    ----------
    measurement : IsotopeMeasurement
        Not modified.
    dead_time, em_yield, background : bool
        Apply these corrections (in this order, QSA last).
    qsa_beta : float, optional
        QSA beta; with ``primary_current_pA`` (the current at the sample, pA) applies QSA.

    Returns
    -------
    IsotopeMeasurement
        A copy with corrected ``counts`` (``stored_cps`` unchanged).
    """
    if (qsa_beta is None) != (primary_current_pA is None):
        raise ValueError("QSA needs both qsa_beta and primary_current_pA")
    header = measurement.header
    counts = np.array(measurement.counts, dtype=np.float64)
    for k, detector in enumerate(measurement.detectors):
        if detector is None or not detector.startswith("EM"):
            continue
        em = int(detector[2:]) - 1
        t = measurement.counting_time_s[:, k]
        c = counts[:, k]
        if dead_time and em < len(header.dead_times_ns):
            c, _ = dead_time_corrected(c, float(header.dead_times_ns[em]), t)
        if em_yield and em < len(header.em_yields_percent):
            c = yield_corrected(c, float(header.em_yields_percent[em]))
        if background and em < len(header.em_backgrounds_cps):
            c = c - background_counts(float(header.em_backgrounds_cps[em]), t)
        if qsa_beta is not None:
            assert primary_current_pA is not None  # checked with qsa_beta above
            c, _ = qsa_corrected(c, float(qsa_beta), float(primary_current_pA), t)
        counts[:, k] = c
    return dataclasses.replace(measurement, counts=counts)


def outlier_threshold(n_cycles: int, alpha: float = 0.05) -> float:
    """The default outlier threshold (standard deviations): Bonferroni for ``n_cycles``."""
    from scipy.stats import norm

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie between 0 and 1, not {alpha}")
    return float(norm.isf(alpha / (2 * max(int(n_cycles), 1))))


@dataclasses.dataclass(frozen=True)
class SpotRatio:
    """One ratio of one spot measurement over a set of cycles.

    Attributes
    ----------
    expression : str
        ``'numerator/denominator'`` as the file labels them.
    cycles : numpy.ndarray
        Indices of the cycles used (all, or those not flagged).
    ratio, poisson_se : float
        ``sum(n) / sum(d)`` and its counting-statistics error.
    cycle_ratios, cycle_sigma : numpy.ndarray
        ``r_i`` and ``s_i`` of every cycle of the measurement.
    cycle_se : float
        Standard error of the cycle ratios used.
    chi2, mswd, p_value : float
        Scatter of the used cycles about ``ratio`` against their Poisson errors.
    outliers : numpy.ndarray
        (cycles,) bool: cycles flagged by the outlier rule.
    threshold_sigma : float
        The threshold of the outlier rule.
    """

    expression: str
    cycles: np.ndarray
    ratio: float
    poisson_se: float
    cycle_ratios: np.ndarray
    cycle_sigma: np.ndarray
    cycle_se: float
    chi2: float
    mswd: float
    p_value: float
    outliers: np.ndarray
    threshold_sigma: float


def _split(measurement: IsotopeMeasurement, expression: str) -> tuple[int, int, str]:
    parts = expression.split("/")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ValueError(f"expression {expression!r}: give a ratio of two masses, such as "
                         f"'34S/32S' (masses: {', '.join(measurement.labels)})")
    num, den = (measurement.index(p.strip()) for p in parts)
    return num, den, f"{measurement.labels[num]}/{measurement.labels[den]}"


def _statistics(n: np.ndarray, d: np.ndarray, used: np.ndarray):
    from scipy.stats import chi2 as chi2_dist

    total_n, total_d = float(n[used].sum()), float(d[used].sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = total_n / total_d if total_d > 0 else float("nan")
        poisson = ratio * np.sqrt(1 / total_n + 1 / total_d) if total_n > 0 else float("nan")
        r = n / d
        s = r * np.sqrt(1 / n + 1 / d)
    k = int(used.sum())
    cycle_se = float(np.std(r[used], ddof=1) / np.sqrt(k)) if k > 1 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = float(np.sum(((r[used] - ratio) / s[used]) ** 2)) if k > 1 else float("nan")
    mswd = chi2 / (k - 1) if k > 1 else float("nan")
    p_value = float(chi2_dist.sf(chi2, k - 1)) if k > 1 and np.isfinite(chi2) else float("nan")
    return ratio, float(poisson), r, s, cycle_se, chi2, mswd, p_value


def spot_ratio(measurement: IsotopeMeasurement, expression: str, *,
               cycles: Sequence[int] | np.ndarray | None = None,
               outlier_sigma: float | None = None, alpha: float = 0.05,
               exclude_outliers: bool = False) -> SpotRatio:
    """The ratio ``expression`` (``'34S/32S'``) over ``cycles`` (default all).

    Parameters
    ----------
    measurement : IsotopeMeasurement
        Raw or corrected (:func:`correct_isotope`); Faraday cups enter as ions (:func:`ions`).
    expression : str
        Two mass labels separated by ``/`` (white space and case ignored).
    cycles : sequence of int, optional
        The cycles to use (a block's, for example).
    outlier_sigma : float, optional
        Fixed threshold of the outlier rule, standard deviations; default the Bonferroni
        threshold for ``alpha`` (module docstring).
    exclude_outliers : bool
        Compute the ratio and its statistics without the flagged cycles (one pass).
    """
    num, den, text = _split(measurement, expression)
    values = ions(measurement)
    n, d = values[:, num], values[:, den]
    chosen = np.zeros(len(n), dtype=bool)
    chosen[np.arange(len(n)) if cycles is None else np.asarray(cycles, dtype=int)] = True
    ratio, poisson, r, s, cycle_se, chi2, mswd, p = _statistics(n, d, chosen)
    threshold = (outlier_threshold(int(chosen.sum()), alpha) if outlier_sigma is None
                 else float(outlier_sigma))
    if not threshold > 0:
        raise ValueError(f"outlier_sigma must be positive, not {outlier_sigma}")
    with np.errstate(divide="ignore", invalid="ignore"):
        outliers = chosen & (np.abs(r - ratio) / s > threshold)
    used = chosen & ~outliers if exclude_outliers else chosen
    if exclude_outliers:
        ratio, poisson, r, s, cycle_se, chi2, mswd, p = _statistics(n, d, used)
    return SpotRatio(text, np.flatnonzero(used), ratio, poisson, r, s, cycle_se, chi2, mswd,
                     p, outliers, threshold)


def delta_permil(ratio: float, ratio_se: float, standard: float,
                 standard_se: float = 0.0) -> tuple[float, float]:
    """``(ratio / standard - 1) * 1000`` permil and its error (module docstring)."""
    if not standard > 0:
        raise ValueError(f"the standard ratio must be positive, not {standard}")
    value = (ratio / standard - 1) * 1000
    error = 1000 * ratio / standard * np.hypot(ratio_se / ratio, standard_se / standard)
    return float(value), float(error)


def _standard_value(standard, expression: str, options: dict) -> tuple[float, float] | None:
    if standard is None:
        return None
    if isinstance(standard, str) and standard in STANDARDS:
        return float(STANDARDS[standard]), 0.0
    if isinstance(standard, (int, float)):
        return float(standard), 0.0
    if isinstance(standard, (str, os.PathLike)):
        from ..io.isotope import open_isotope
        standard = open_isotope(standard)
    if isinstance(standard, IsotopeMeasurement):
        result = spot_ratio(standard, expression, **options)
        return result.ratio, result.cycle_se
    raise ValueError(f"standard {standard!r}: give a ratio, a name from STANDARDS "
                     f"({', '.join(STANDARDS)}), or a measured standard (.is file)")


def spot_table(measurements: Iterable, expressions: Sequence[str] | str, *,
               standard=None, blocks: bool = True, corrections: dict | None = None,
               **options):
    """One tidy table of ratios over many spot files: a row per file, ratio and block.

    Parameters
    ----------
    measurements : iterable of IsotopeMeasurement or paths
        Paths are opened with :func:`~napari_nanosims.open_isotope`.
    expressions : str or sequence of str
        Ratios such as ``'34S/32S'``.
    standard : float, str, path or IsotopeMeasurement, optional
        The reference ratio for delta values: a number, a key of ``STANDARDS``, or a
        measured standard whose whole-run ratio (with its standard error of cycles) is
        used.
    blocks : bool
        Add a row per block besides the whole run (``block`` = ``'all'``).
    corrections : dict, optional
        Keyword arguments of :func:`correct_isotope` (default: dead time only).
    **options
        Passed to :func:`spot_ratio` (``outlier_sigma``, ``alpha``, ``exclude_outliers``).

    Returns
    -------
    pandas.DataFrame
        Columns ``file, sample, date, stage_x_um, stage_y_um, ratio_name, block, cycles,
        ratio, poisson_se, cycle_se, chi2, mswd, p_value, outliers, threshold_sigma``
        and, with a standard, ``delta_permil, delta_se_permil``.
    """
    import pandas as pd

    from ..io.isotope import open_isotope

    expressions = [expressions] if isinstance(expressions, str) else list(expressions)
    corrections = {"dead_time": True} if corrections is None else dict(corrections)
    rows = []
    for item in measurements:
        measurement = item if isinstance(item, IsotopeMeasurement) else open_isotope(item)
        corrected = correct_isotope(measurement, **corrections)
        header = measurement.header
        for expression in expressions:
            reference = _standard_value(standard, expression, options)
            groups: list[tuple[str, np.ndarray | None]] = [("all", None)]
            if blocks and measurement.n_blocks > 1:
                block_of = measurement.block_of_cycle()
                groups += [(str(b), np.flatnonzero(block_of == b))
                           for b in np.unique(block_of)]
            for block, cycles in groups:
                result = spot_ratio(corrected, expression, cycles=cycles, **options)
                row = dict(
                    file=measurement.name, sample=header.sample_name,
                    date=header.analysis_date.isoformat() if header.analysis_date else "",
                    stage_x_um=header.stage_position_um[0],
                    stage_y_um=header.stage_position_um[1], ratio_name=result.expression,
                    block=block, cycles=len(result.cycles), ratio=result.ratio,
                    poisson_se=result.poisson_se, cycle_se=result.cycle_se,
                    chi2=result.chi2, mswd=result.mswd, p_value=result.p_value,
                    outliers=int(result.outliers.sum()),
                    threshold_sigma=result.threshold_sigma)
                if reference is not None:
                    error = max(result.poisson_se, np.nan_to_num(result.cycle_se))
                    row["delta_permil"], row["delta_se_permil"] = delta_permil(
                        result.ratio, error, *reference)
                rows.append(row)
    return pd.DataFrame(rows)


def safe_name(expression: str) -> str:
    """A file-name-safe form of a ratio expression (``'34S/32S'`` -> ``'34S_over_32S'``)."""
    return re.sub(r"[^0-9A-Za-z]+", "_", expression.replace("/", "_over_")).strip("_")
