"""Detector corrections, per pixel and per frame: the formulas, on arrays.

The steps that apply them to an acquisition (order, targets, history) are in
:mod:`napari_nanosims.steps.corrections`.

Formulas and order follow ``../shared/docs/analysis.md`` sections 0-2 (and the
corrections issue where they differ). With ``n`` the counts as recorded, ``t`` the dwell
time (s) and ``tau`` the dead time of the channel's electron multiplier (s):

* dead time: ``c = n / (1 - n tau / t)`` (non-paralysable counter);
* background: ``c_b = c - B t`` (B the EM's dark count rate, 1/s);
* QSA: ``N_p = I_p 1e-12 t / e``, ``K_exp = c / N_p``, ``K = K_exp / (1 - K_exp / 2)``,
  ``c_qsa = c (1 + beta K)``;
* yield: ``c_y = c / Y`` (Y the EM yield as a fraction).

Only ion channels on an electron multiplier are corrected; SE, Faraday-cup and unknown
channels pass unchanged and the history lists them. Counts become float64. The variance
is carried along: a multiplicative correction ``c = f n`` scales it by ``f**2`` (raw
counts: ``v = n``, so ``v = c**2 / n`` and the relative error of ``c`` stays
``1/sqrt(n)``); subtracting a known background leaves it unchanged.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ELEMENTARY_CHARGE_C", "UNRELIABLE_DEAD_FRACTION", "dead_time_corrected",
           "background_counts", "qsa_corrected", "yield_corrected", "replace_scaled"]

ELEMENTARY_CHARGE_C = 1.602176634e-19  # exact (SI 2019)
UNRELIABLE_DEAD_FRACTION = 0.1


def dead_time_corrected(n: np.ndarray, dead_time_ns: float, dwell_s: float | np.ndarray):
    """``n / (1 - n tau / t)`` per pixel, NaN where ``n tau / t >= 1``.

    Parameters
    ----------
    n : numpy.ndarray
        Counts as recorded.
    dead_time_ns : float
        Dead time ``tau`` of the electron multiplier, nanoseconds.
    dwell_s : float or numpy.ndarray
        Dwell time ``t`` per pixel, seconds (one number, or one per value of ``n``).

    Returns
    -------
    corrected, dead_fraction : numpy.ndarray
        Corrected counts (float64) and the dead fraction ``n tau / t`` of each pixel.
    """
    dead_fraction = n * (dead_time_ns * 1e-9) / dwell_s
    with np.errstate(divide="ignore", invalid="ignore"):
        corrected = np.where(dead_fraction >= 1, np.nan, n / (1 - dead_fraction))
    return corrected, dead_fraction


def background_counts(rate_cps: float, dwell_s: float | np.ndarray) -> float | np.ndarray:
    """Dark counts ``B t`` in one pixel: rate (counts/s) times dwell time (s), one
    number or an array like ``dwell_s``."""
    return rate_cps * dwell_s


def qsa_corrected(c: np.ndarray, beta: float, primary_current_pA: float,
                  dwell_s: float | np.ndarray):
    """``c (1 + beta K)`` with ``K = K_exp / (1 - K_exp / 2)``, NaN where ``K_exp >= 2``.

    ``K_exp = c / N_p`` is the measured secondaries per primary ion, ``N_p = I_p 1e-12 t /
    e`` the primary ions per pixel (``I_p`` in pA, ``t`` in s).

    Returns
    -------
    corrected, k_measured : numpy.ndarray
        Corrected counts and ``K_exp`` of each pixel.
    """
    primaries = primary_current_pA * 1e-12 * dwell_s / ELEMENTARY_CHARGE_C
    k_measured = c / primaries
    with np.errstate(divide="ignore", invalid="ignore"):
        k_true = k_measured / (1 - k_measured / 2)
        corrected = np.where(k_measured >= 2, np.nan, c * (1 + beta * k_true))
    return corrected, k_measured


def yield_corrected(c: np.ndarray, yield_percent: float) -> np.ndarray:
    """``c / Y`` with ``Y`` the electron multiplier's yield as a fraction (percent / 100)."""
    return c / (yield_percent / 100)


def replace_scaled(counts: np.ndarray, variance: np.ndarray, index: int,
                   corrected: np.ndarray) -> None:
    """Replace channel ``index`` of ``counts`` by ``corrected``, in place, and scale its
    variance by (new/old)**2 (NaN where the correction is NaN)."""
    old = counts[:, index]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(old != 0, corrected / old, 1.0)
    variance[:, index] *= factor ** 2
    variance[:, index][~np.isfinite(corrected)] = np.nan
    counts[:, index] = corrected
