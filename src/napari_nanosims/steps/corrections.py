"""Detector corrections as steps on an acquisition: dead time, EM background, QSA, EM yield.

The per-pixel formulas are in :mod:`napari_nanosims.processing.corrections`; this module
chooses the channels, keeps the order, carries the variance and records the history.
"""

from __future__ import annotations

import warnings
from typing import cast

import numpy as np

from .._errors import CorrectionWarning
from ..model import Acquisition
from ..processing.corrections import (
    ELEMENTARY_CHARGE_C,
    UNRELIABLE_DEAD_FRACTION,
    background_counts,
    dead_time_corrected,
    qsa_corrected,
    replace_scaled,
    yield_corrected,
)
from .parameters import Parameter, Step
from .progress import Progress

__all__ = ["correct_dead_time", "subtract_em_background", "correct_qsa", "correct_em_yield",
           "CORRECTION_STEPS", "ELEMENTARY_CHARGE_C", "CorrectionWarning"]

ORDER = ("correct_dead_time", "subtract_em_background", "correct_qsa", "correct_em_yield")



def _check_order(acquisition: Acquisition, name: str) -> None:
    """Refuse a correction applied twice, out of order, or after summing or sub-pixel shifts."""
    if acquisition.applied(name):
        raise ValueError(f"{acquisition.name}: {name} was already applied; applying it twice "
                         "would correct the counts twice")
    later = [step for step in ORDER[ORDER.index(name) + 1:] if acquisition.applied(step)]
    if later:
        raise ValueError(f"{acquisition.name}: {name} must come before {', '.join(later)} "
                         f"(order: {' -> '.join(ORDER)})")
    if acquisition.applied("sum_frames") or acquisition.sums is not None:
        raise ValueError(f"{acquisition.name}: {name} needs the counts of each pixel in each "
                         "frame; it cannot be applied after the frames were summed")
    translations = acquisition.translations
    if translations is not None and not np.all(np.asarray(translations)
                                               == np.round(translations)):
        raise ValueError(f"{acquisition.name}: {name} needs the recorded counts of each pixel; "
                         "sub-pixel shifts mixed neighbouring pixels. Correct before aligning "
                         "(whole-pixel alignment keeps the counts and is allowed)")
    if name != "correct_dead_time" and not acquisition.applied("correct_dead_time"):
        raise ValueError(f"{acquisition.name}: {name} works on dead-time corrected counts; "
                         "run correct_dead_time first")


def _dwell_s(acquisition: Acquisition, channel) -> float:
    dwell_us = channel.dwell_time_us
    if not (np.isfinite(dwell_us) and dwell_us > 0):
        raise ValueError(f"{acquisition.name}: the dwell time of {channel.label} is "
                         f"{dwell_us} µs; a correction needs the time each pixel was counted")
    return dwell_us * 1e-6


def _on_em(channel) -> bool:
    return channel.kind == "ion" and (channel.detector or "").startswith("EM")


def _value_for(value, label: str):
    """A per-label value: the mapping's entry for ``label`` (None if absent) or the number."""
    if isinstance(value, dict):
        return value.get(label)
    return value


def _targets(acquisition: Acquisition, override, header_attribute: str | None = None):
    """(channel, value) for every EM channel with a value, and the labels left unchanged.

    The value is ``override``'s (a number, or a dict entry for the label), else the
    channel's ``header_attribute``.
    """
    targets, skipped = [], []
    for channel in acquisition.channels:
        value = _value_for(override, channel.label)
        if value is None and header_attribute is not None:
            value = getattr(channel, header_attribute)
        if not _on_em(channel) or value is None:
            skipped.append(channel.label)
        else:
            targets.append((channel, value))
    return targets, skipped


def _start(acquisition: Acquisition):
    """Float64 copies of the counts and variance, and the raw counts to keep."""
    counts = np.array(acquisition.counts, dtype=np.float64)
    raw = acquisition.raw_counts if acquisition.raw_counts is not None else acquisition.counts
    variance = (np.array(acquisition.variance, dtype=np.float64) if acquisition.variance
                is not None else np.array(raw, dtype=np.float64))
    return counts, variance, raw


def _finish(acquisition, name, parameters, counts, variance, raw, corrected, skipped):
    parameters = dict(parameters, corrected_channels=corrected,
                      unchanged_channels=skipped)
    return acquisition.with_step(name, parameters, counts=counts, variance=variance,
                                 raw_counts=raw)


def _run_dead_time(acquisition: Acquisition, *, dead_times_ns):
    _check_order(acquisition, "correct_dead_time")
    counts, variance, raw = _start(acquisition)
    targets, skipped = _targets(acquisition, dead_times_ns, "dead_time_ns")
    corrected, used = [], {}
    impossible = unreliable = 0
    for position, (channel, tau_ns) in enumerate(targets):
        yield Progress("correct_dead_time", position, len(targets))
        dwell = _dwell_s(acquisition, channel)
        value, dead_fraction = dead_time_corrected(counts[:, channel.index], tau_ns, dwell)
        bad = dead_fraction >= 1
        impossible += int(bad.sum())
        unreliable += int(((dead_fraction > UNRELIABLE_DEAD_FRACTION) & ~bad).sum())
        replace_scaled(counts, variance, channel.index, value)
        corrected.append(channel.label)
        used[channel.label] = float(tau_ns)
    if impossible:
        warnings.warn(f"{acquisition.name}: {impossible} pixel(s) counted more than the "
                      "detector can (n tau / t >= 1); they are NaN", CorrectionWarning,
                      stacklevel=3)
    if unreliable:
        warnings.warn(f"{acquisition.name}: in {unreliable} pixel(s) the counter was dead more "
                      f"than {UNRELIABLE_DEAD_FRACTION:.0%} of the dwell time; the dead-time "
                      "correction is unreliable there", CorrectionWarning, stacklevel=3)
    yield Progress("correct_dead_time", len(targets), len(targets))
    return _finish(acquisition, "correct_dead_time",
                   {"dead_times_ns": dead_times_ns, "dead_times_used_ns": used,
                    "nan_pixels": impossible}, counts, variance, raw, corrected, skipped)


def _run_background(acquisition: Acquisition, *, background_cps):
    _check_order(acquisition, "subtract_em_background")
    counts, variance, raw = _start(acquisition)
    targets, skipped = _targets(acquisition, background_cps, "em_background_cps")
    corrected, used = [], {}
    for channel, rate in targets:
        # A known constant: it moves the counts, not their variance.
        # Only the frames the channel was counted in (peak switching leaves zeros between).
        frames = slice(None) if channel.frames is None else list(channel.frames)
        counts[frames, channel.index] -= background_counts(rate, _dwell_s(acquisition,
                                                                          channel))
        corrected.append(channel.label)
        used[channel.label] = float(rate)
    yield Progress("subtract_em_background", 1, 1)
    return _finish(acquisition, "subtract_em_background",
                   {"background_cps": background_cps, "background_used_cps": used},
                   counts, variance, raw, corrected, skipped)


def _run_qsa(acquisition: Acquisition, *, beta, primary_current_pA):
    _check_order(acquisition, "correct_qsa")
    counts, variance, raw = _start(acquisition)
    targets, skipped = _targets(acquisition, beta)
    corrected, used = [], {}
    diverging = 0
    for channel, channel_beta in targets:
        value, k_measured = qsa_corrected(counts[:, channel.index], channel_beta,
                                          primary_current_pA, _dwell_s(acquisition, channel))
        diverging += int((k_measured >= 2).sum())
        replace_scaled(counts, variance, channel.index, value)
        corrected.append(channel.label)
        used[channel.label] = float(channel_beta)
    if diverging:
        warnings.warn(f"{acquisition.name}: {diverging} pixel(s) have 2 or more detected ions "
                      "per primary ion, where the QSA correction diverges; they are NaN",
                      CorrectionWarning, stacklevel=3)
    yield Progress("correct_qsa", 1, 1)
    return _finish(acquisition, "correct_qsa",
                   {"beta": beta, "beta_used": used, "primary_current_pA": primary_current_pA,
                    "nan_pixels": diverging}, counts, variance, raw, corrected, skipped)


def _run_yield(acquisition: Acquisition):
    _check_order(acquisition, "correct_em_yield")
    # Channels on an electron multiplier have a yield.
    yields = cast("set[float]", {c.em_yield_percent for c in acquisition.channels if _on_em(c)})
    if len(yields) > 1:
        warnings.warn(f"{acquisition.name}: the electron multipliers have different yields "
                      f"({', '.join(f'{y:g} %' for y in sorted(yields))}); ratios of their "
                      "masses change by the yield ratio", CorrectionWarning, stacklevel=3)
    counts, variance, raw = _start(acquisition)
    targets, skipped = _targets(acquisition, None, "em_yield_percent")
    corrected, used = [], {}
    for channel, percent in targets:
        if not percent or not np.isfinite(percent):
            raise ValueError(f"{acquisition.name}: the header gives {channel.label}'s "
                             f"detector a yield of {percent} %")
        replace_scaled(counts, variance, channel.index,
                       yield_corrected(counts[:, channel.index], percent))
        corrected.append(channel.label)
        used[channel.label] = float(percent)
    yield Progress("correct_em_yield", 1, 1)
    return _finish(acquisition, "correct_em_yield", {"yields_used_percent": used},
                   counts, variance, raw, corrected, skipped)


DEAD_TIME = Step(
    "correct_dead_time", "Dead time",
    "Correct each pixel of each frame for the electron multiplier's dead time.",
    (Parameter("dead_times_ns", None, float, "dead time per mass label, overriding the "
               "header's value for that detector (None: the header's)", unit="ns",
               minimum=0.0, maximum=10_000.0, optional=True, per_label=True,
               title="dead times"),),
    _run_dead_time)
BACKGROUND = Step(
    "subtract_em_background", "EM background",
    "Subtract the electron multiplier's dark counts (after dead time).",
    (Parameter("background_cps", None, float, "background per mass label, overriding the "
               "header's (None: the header's)", unit="counts/s", minimum=0.0, maximum=1e9,
               optional=True, per_label=True),),
    _run_background)
QSA = Step(
    "correct_qsa", "QSA",
    "Correct quasi-simultaneous arrivals (after dead time): c (1 + beta K).",
    (Parameter("beta", None, float, "QSA coefficient, one number or one per mass label, "
               "measured for your instrument (no header field; 0.5 in the Poisson model, "
               "0.6-1.0 measured)", minimum=0.0, maximum=5.0, per_label=True,
               required=True, cli_name="qsa-beta", step=0.05),
     Parameter("primary_current_pA", None, float, "primary current at the sample (FCo), "
               "measured by the user; the header's 'primary current' field is not it",
               unit="pA", above=0.0, maximum=1e6, required=True,
               cli_name="primary-current", title="primary current", step=0.1)),
    _run_qsa)
YIELD = Step(
    "correct_em_yield", "EM yield",
    "Divide by the electron multiplier's yield from the header (last).", (), _run_yield)

CORRECTION_STEPS = (DEAD_TIME, BACKGROUND, QSA, YIELD)


def correct_dead_time(acquisition: Acquisition, dead_times_ns=None) -> Acquisition:
    """Dead-time correction of every ion channel on an electron multiplier.

    ``c = n / (1 - n tau / t)`` per pixel and frame, with ``t`` the channel's dwell time and
    ``tau`` its detector's dead time from the header, or from ``dead_times_ns`` (a number for
    every channel, or a dict by label). Pixels with ``n tau / t >= 1`` become NaN (counted in
    a :class:`CorrectionWarning`); above 0.1 a warning says the correction is unreliable.

    Raises
    ------
    ValueError
        When applied twice, after QSA, background or yield, after summing or sub-pixel
        shifts, or when the dwell time is missing.
    """
    return DEAD_TIME(acquisition, dead_times_ns=dead_times_ns)


def subtract_em_background(acquisition: Acquisition, background_cps=None) -> Acquisition:
    """Subtract ``B t`` (B in counts/s, from the header or ``background_cps``); after dead time."""
    return BACKGROUND(acquisition, background_cps=background_cps)


def correct_qsa(acquisition: Acquisition, beta, primary_current_pA) -> Acquisition:
    """QSA correction ``c (1 + beta K)`` of dead-time corrected counts.

    Parameters
    ----------
    beta : float or dict
        The QSA coefficient, or one per mass label (labels left out are not corrected).
    primary_current_pA : float
        Primary current at the sample, picoampere (> 0). The header's "primary current"
        field is never used: its unit is unknown.
    """
    return QSA(acquisition, beta=beta, primary_current_pA=primary_current_pA)


def correct_em_yield(acquisition: Acquisition) -> Acquisition:
    """Divide every EM channel by its yield (header percent / 100); the last correction.

    Warns when ion channels sit on electron multipliers with different yields.
    """
    return YIELD(acquisition)
