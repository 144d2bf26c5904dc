"""Frame registration at the noise limit: the passes, the diagnostics, the result.

The translations maximise each frame's smoothed cross-correlation with the mean of the
*other* frames, aligned (leave-one-out: a reference that held the frame itself would
pull it toward where it already is), normalised by how many frames cover each pixel
and weighted by the frame's own window (see :mod:`.subpixel` for the Fourier-space
machinery). A first pass places each frame against the sum of the frames placed
before it; every later pass moves all frames, each against the others as they stood
at the start of the pass, keeping a move only when it raises the frame's correlation,
and takes back the move all frames share (translations are relative). Passes stop at
a fixed point: when no frame moves by more than :data:`CONVERGENCE_PX`.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections.abc import Generator

import numpy as np

from .._frames import map_frames, single_threaded_blas
from .acceleration import ACCELERATION_DEPTH, accelerate, settled
from .diagnostics import FrameDiagnostics, collect, interpolate_flagged, measure_all
from .first_pass import (
    HALF_RESOLUTION_MIN_PX,
    canvas_for,
    first_pass,
    half_resolution_first_pass,
)
from .fixed import register_against_fixed
from .subpixel import _Spectra, choose_stack_weighting
from .sums import _Sums

__all__ = ["FrameRegistration", "iter_register", "CONVERGENCE_PX",
           "MAX_PASSES",
           "FLAG_UNCERTAINTY_PX", "FLAG_SIGNIFICANCE"]

#: Passes stop when no translation changes by more than this, pixels.
CONVERGENCE_PX = 5e-3
#: Most refinement passes after the first.
MAX_PASSES = 10
#: A frame is flagged when its translation is this uncertain (1 sigma, either axis), px.
FLAG_UNCERTAINTY_PX = 0.5
#: ... or when its correlation peak is below this many times its noise level.
FLAG_SIGNIFICANCE = 6.0
#: A frame whose uncertainty is above both of these (px; times the stack's median) is
#: flagged as an outlier of its stack.
OUTLIER_UNCERTAINTY_PX, OUTLIER_FACTOR = 0.25, 5.0
#: ... or than this fraction of its uncertainty (1 sigma, each axis).
SETTLED_FRACTION = 0.25
#: A pass measures the diagnostics too when the pass before moved no frame further, px
#: (0.2: over 24 stacks of every scene class, the fewest correlations and measurements:
#: after the half-resolution first pass, the first refinement often moves a frame by
#: 0.05-0.2 px and the next pass is then the last).
MEASURE_WITHIN_PX = 0.2
#: Diagnostics measured where no frame stood further than this from where it stays are
#: kept, px: a pass that only confirms the fixed point then does not measure them again
#: (the uncertainties change by about 1 % at most over such a move; see the tests).
REMEASURE_PX = 0.05
#: The passes on frames binned 2 x 2 stop when no frame moves by more than this, binned
#: px (0.05 px at full resolution: the full-resolution passes then start that near).
HALF_RESOLUTION_SETTLE_PX = 0.025
#: ... and run on bands with a smoothing at least this wide (px: the binned frames then
#: hold all the band weighs), at any size: on sharp 512 px scenes the full-resolution
#: passes mostly still needed 2 after them (docs/processing.md, the nineteenth round).
HALF_RESOLUTION_REFINE_MIN_SIGMA_PX = 2.5


@dataclasses.dataclass(frozen=True)
class FrameRegistration:
    """Translations that align a stack's frames, with how well each frame registered.

    Attributes
    ----------
    translations : numpy.ndarray, float64, shape (frames, 2)
        (rows, columns) to apply to each frame, pixels, median-centred. Flagged frames
        get the translation interpolated from their unflagged neighbours; when no frame
        registers, all are 0 (with a warning).
    measured : numpy.ndarray, float64, shape (frames, 2)
        The translations as registered, flagged frames included.
    correlation : numpy.ndarray, float64, shape (frames,)
        Normalised correlation of each smoothed frame with its reference (the other
        frames, aligned) over the frame: 1 for a noise-free match, near 0 for no match.
    significance : numpy.ndarray, float64, shape (frames,)
        ``correlation`` in units of its spread for a frame of pure noise.
    uncertainty_px : numpy.ndarray, float64, shape (frames, 2)
        Standard error of each translation (rows, columns) from Poisson noise, pixels.
    flagged : numpy.ndarray, bool, shape (frames,)
        Frames that did not register: no signal (an empty frame, a beam interruption,
        pure noise: significance below :data:`FLAG_SIGNIFICANCE`) or an uncertainty
        above :data:`FLAG_UNCERTAINTY_PX` (and above three times the stack's median
        uncertainty, so that a smooth scene at low counts keeps its frames).
    passes : int
        Refinement passes run after the first, at full resolution (bands smoothed by
        2.5 px or more are first refined binned 2 x 2).
    converged : bool
        The last pass moved no frame by more than :data:`CONVERGENCE_PX`.
    smoothing_px : float
        Gaussian smoothing used (sigma), pixels: 1-4 times the count-based one,
        whichever predicts the smallest error (see ``high_pass_px``).
    high_pass_px : float
        Scale of the local background removed from every frame (Gaussian sigma), pixels:
        8 or 16, or inf for none (only the mean removed; the first pass alone may remove
        8 px, first_pass.FIRST_PASS_HIGH_PASS_PX); with the smoothing, the band-pass
        whose predicted error (from the scene's power spectrum) is smallest, a removal
        only where it predicts clearly less error than none (:mod:`.weighting`).
    displacement_px : numpy.ndarray or None
        ``method='piecewise'`` only: the smooth displacement field beyond each frame's
        translation, (frames, 2, rows, cols), (rows, columns) in pixels, at the patch
        centres; 0 where the frame moved rigidly (:mod:`.piecewise`). A pixel's move is
        its frame's translation plus this field interpolated bilinearly (beyond the
        outer centres: carried on by the share of its slope a plane explains)
        (:func:`~napari_nanosims.processing.alignment.warp.displacement_at_pixels`).
    displacement_grid_px : tuple of two numpy.ndarray or None
        The pixel coordinates (row centres, column centres) of the field's grid.
    objective : tuple of float
        Gain of the registration objective (the sum over pairs of frames of their smoothed
        cross-correlation, counts squared) in each refinement pass; never negative.
    """

    translations: np.ndarray
    measured: np.ndarray
    correlation: np.ndarray
    significance: np.ndarray
    uncertainty_px: np.ndarray
    flagged: np.ndarray
    passes: int
    converged: bool
    objective: tuple
    smoothing_px: float = float("nan")
    high_pass_px: float = float("nan")
    displacement_px: np.ndarray | None = None
    displacement_grid_px: tuple | None = None


def _coordinate_ascent(spectra: _Spectra, max_passes: int, shifts: np.ndarray, sums: _Sums,
                       progress, diagnose: bool = True, near: bool = False,
                       settle_px: float = CONVERGENCE_PX, window_term: bool = True
                       ) -> Generator[int, None, tuple]:
    """Leave-one-out passes until no frame moves by more than ``settle_px``.

    ``diagnose``: measure the diagnostics in the pass likely to be the last (the
    first already when the frames start ``near`` their fixed point, which then also
    searches locally only: no search over every whole-pixel shift; ``window_term``:
    see :class:`.diagnostics.FrameDiagnostics`).

    Returns (shifts, passes, converged, gains, diagnostics): the diagnostics (see
    :func:`.diagnostics.collect`) when the pass that found the fixed point measured
    them, else None.
    """
    n_frames = shifts.shape[0]
    gains: list[float] = []
    converged = n_frames <= 2  # with two frames the first pass is the answer
    passes = 0
    starts: list[np.ndarray] = []  # where each pass started ...
    residuals: list[np.ndarray] = []  # ... and what it moved the frames by (relative)
    diagnostics = None  # built for the first pass that measures (a few ms at 512²)
    measuring = diagnose and near  # this pass measures the diagnostics too
    known = None  # the diagnostics of the last pass that measured them
    measured_at = shifts  # where the frames stood when they were measured
    previous_largest = None  # the largest move of the pass before (see settled)

    def distance_from_measured(at: np.ndarray) -> float:
        """How far any frame at ``at`` is from where the diagnostics were measured, px."""
        return np.inf if known is None else float(np.max(np.abs(at - measured_at)))

    def improve(index):
        """Frame ``index``'s best shift against the others as they stand, the gain, and
        the frame's diagnostics when the pass measures them."""
        correlated = sums.correlate(index, shifts[index], noise=measuring)
        spectrum = correlated[0]
        at_zero = spectra.evaluate(spectrum, (0.0, 0.0))
        old_value = at_zero[0]
        # The first pass searches every whole-pixel shift (unless near); later ones locally.
        if passes == 0 and not near:
            start = spectra.whole_pixel_peak(spectrum)  # usually (0, 0): known there
            move, new_value, _ = spectra.peak(spectrum, start,
                                              at_zero if start == (0, 0) else None)
        else:
            move, new_value, _ = spectra.peak(spectrum, (0, 0), at_zero)
        measured = (diagnostics.measure(index, shifts[index], correlated, at_zero)
                    if measuring else None)
        if new_value > old_value:
            return shifts[index] + move, new_value - old_value, measured
        return shifts[index].copy(), 0.0, measured

    while not converged and passes < max_passes:
        # Every frame moves against the others as they stood at the pass's start (so the
        # frames run in parallel); a move is kept only if it raises their correlation.
        diagnostics = diagnostics or (FrameDiagnostics(spectra, window_term) if measuring
                                      else None)
        moved, gain = np.empty_like(shifts), 0.0
        sums.freeze(shifts)
        measurements = []
        for index, (new_shift, frame_gain, measured) in enumerate(map_frames(improve,
                                                                               n_frames)):
            moved[index] = new_shift
            gain += frame_gain
            measurements.append(measured)
            yield progress()
        # A move every frame shares changes nothing (translations are relative): undone.
        moves = moved - shifts
        common = moves.mean(axis=0)
        shifts = sums.move_frames(shifts, moved, common)
        if spectra.outgrown(shifts):
            raise _OutgrewCanvas(shifts, passes + 1, gains + [gain])
        passes += 1
        gains.append(gain)
        relative = moves - common
        largest = float(np.max(np.abs(relative)))
        if measuring:  # measured where the frames stood at the start of this pass
            known, measured_at = collect(measurements), shifts - relative
        away = distance_from_measured(shifts)
        # Settled: no frame moved by more than CONVERGENCE_PX, or than a small fraction
        # of its own uncertainty (a move far inside the noise changes no result); or,
        # with diagnostics at hand, the passes contract fast enough (settled).
        tolerance = (settle_px if known is None else
                     np.maximum(settle_px, SETTLED_FRACTION * np.nan_to_num(
                         known[2], nan=0.0, posinf=0.0)))
        converged = settled(relative, tolerance,
                            previous_largest if away <= REMEASURE_PX else None)
        # How much the passes shrink the moves (1 after the first): kept across a jump for
        # the choice to measure below (a jump moves nearer than a plain pass would).
        contraction = min(1.0, largest / previous_largest) if previous_largest else 1.0
        previous_largest = largest
        if converged and (measuring or away <= REMEASURE_PX):
            # Measured where the frames stood, in this pass or within REMEASURE_PX of
            # where they stay: the pass that confirms the fixed point saves one of its own.
            return shifts, passes, converged, tuple(gains), known
        starts.append(shifts - relative)
        residuals.append(relative)
        if not converged:
            before = shifts
            shifts = accelerate(starts[-ACCELERATION_DEPTH - 1:],
                                 residuals[-ACCELERATION_DEPTH - 1:], shifts, sums)
            if np.any(shifts != before):
                previous_largest = None  # no contraction ratio across a jump
                away = distance_from_measured(shifts)
            if spectra.outgrown(shifts):
                raise _OutgrewCanvas(shifts, passes, gains)
        # The next pass is likely the last when this one moved little (or it must be);
        # it measures unless the frames stay within REMEASURE_PX of where the diagnostics
        # were measured after the move expected of it: this one's times the contraction
        # (200 frames of a particle moved 0.09, 0.026, 0.003 px; the third pass measured
        # again, 4 inverse FFTs a frame, when 0.026 was expected of it and not 0.008).
        last = passes == max_passes - 1  # must measure unless surely near: no contraction
        measuring = diagnose and (largest <= MEASURE_WITHIN_PX or last) \
            and away + largest * (1.0 if last else contraction) > REMEASURE_PX
    return shifts, passes, converged, tuple(gains), None


def iter_register(data, upsample_factor: int, reference: int | None, region=None,
                  max_passes: int = MAX_PASSES, initial=None, window_term: bool = True
                  ) -> Generator[int, None, FrameRegistration]:
    """Register a (frames, H, W) stack; yields progress steps, returns a FrameRegistration.

    ``initial`` (frames, 2) replaces the first pass (a starting guess, for example the
    sequential method's whole-pixel translations); ``max_passes`` bounds the refinement;
    ``window_term``: see :class:`.diagnostics.FrameDiagnostics`.
    """
    counter = iter(range(1, 10 ** 9))
    with single_threaded_blas():  # small products: BLAS threads would compete for cores
        best = yield from _register(data, upsample_factor, reference, region,
                                    max_passes, initial, None, counter, window_term)
    if best.flagged.all() and data.shape[0] > 1:
        warnings.warn(f"none of the {data.shape[0]} frames registered (no structure that "
                      "moves with the sample, or too few counts): translations set to 0",
                      UserWarning, stacklevel=3)
    return best


class _OutgrewCanvas(Exception):
    """A refinement pass moved frames beyond what a narrowed canvas holds: where they
    are, after how many passes, with which gains."""

    def __init__(self, shifts: np.ndarray, passes: int, gains: list):
        super().__init__("frames moved beyond the canvas")
        self.shifts, self.passes, self.gains = shifts, passes, list(gains)


def _place(spectra: _Spectra, shifts: np.ndarray) -> _Sums:
    sums = _Sums(spectra)
    for index, shift in enumerate(shifts):
        sums.add(index, shift)
    return sums


def _register(data, upsample_factor, reference, region, max_passes, initial, weighting,
              counter, window_term=True):
    n_frames, height, width = data.shape
    shifts = np.zeros((n_frames, 2))

    def progress():
        return next(counter)

    passes, converged, gains, diagnosed = 0, True, (), None
    if reference is not None:
        spectra = _Spectra(data, region, weighting)
        yield progress()  # spectra ready
        sums = _Sums(spectra)
        sums.add(reference, (0.0, 0.0))
        sums.freeze(shifts[reference:reference + 1], frames=[reference])
        diagnostics = FrameDiagnostics(spectra, window_term)
        for index in range(n_frames):
            if index != reference:
                shifts[index] = register_against_fixed(spectra, sums, index, diagnostics)
            yield progress()
    else:
        refined = False  # the frames start near their fixed point
        if initial is not None:
            shifts[:] = np.asarray(initial, dtype=np.float64)
        # Two frames: the first pass is the answer, so it is done at full resolution.
        half_resolution = (initial is None and n_frames > 2
                           and min(height, width) >= HALF_RESOLUTION_MIN_PX)
        if half_resolution:
            chosen = choose_stack_weighting(data, region, weighting)

            def refine(coarse, coarse_shifts, coarse_sums):
                # Cancelling is checked at every step, but the steps counted are those of
                # the full-resolution passes: these repeat the last count. Frames that
                # did not settle here are not near: the full-resolution passes search again.
                nonlocal refined
                stay = itertools.repeat(next(counter)).__next__  # the last count, always
                result = yield from _coordinate_ascent(coarse, max_passes, coarse_shifts,
                                                       coarse_sums, stay, diagnose=False,
                                                       settle_px=HALF_RESOLUTION_SETTLE_PX)
                refined = bool(result[2])
                return result[0]

            # Pays on smooth bands (256 px grains: 1-2 passes instead of 3-9, 6-35 % less
            # time); on sharp scenes the full-resolution passes mostly still need 2.
            refined = chosen.sigma_px >= HALF_RESOLUTION_REFINE_MIN_SIGMA_PX
            shifts = yield from half_resolution_first_pass(data, region, chosen, progress,
                                                           refine if refined else None)
            weighting = chosen
        if initial is not None or n_frames == 1 or half_resolution:
            # Translations known: centred on their mid-range, on a canvas that holds them.
            shifts -= (shifts.min(axis=0) + shifts.max(axis=0)) / 2
            if weighting is None or not hasattr(weighting, "sigma_px"):
                weighting = choose_stack_weighting(data, region, weighting)
            canvas = canvas_for((height, width), shifts, weighting.sigma_px)
            spectra = _Spectra(data, region, weighting, canvas)
            yield progress()  # spectra ready
            sums = _place(spectra, shifts)
        else:  # small frames: the first pass at full resolution
            spectra = _Spectra(data, region, weighting)
            yield progress()  # spectra ready
            sums = _Sums(spectra)
            shifts = yield from first_pass(spectra, sums, progress)
        done, earlier_gains = 0, []
        for attempt in itertools.count():
            outgrown = None
            try:
                shifts, passes, converged, gains, diagnosed = yield from _coordinate_ascent(
                    spectra, max(max_passes - done, 0), shifts, sums, progress,
                    near=refined and attempt == 0, window_term=window_term)
            except _OutgrewCanvas as error:
                outgrown = (error.shifts, error.passes, error.gains)
            if outgrown is None:
                break
            # A pass moved frames further than the first pass spread them (a smooth
            # scene's first pass can underestimate the drift): go on from where they are
            # on a canvas that holds them, or the full one the second time. Built after
            # the exception is gone (its traceback holds the old spectra).
            moved, outgrown_passes, outgrown_gains = outgrown
            done += outgrown_passes
            earlier_gains += outgrown_gains
            weighting = spectra.weighting
            spectra = sums = None
            shifts = moved - (moved.min(axis=0) + moved.max(axis=0)) / 2
            canvas = (canvas_for((height, width), shifts, weighting.sigma_px) if attempt == 0
                      else None)
            spectra = _Spectra(data, region, weighting, canvas)
            sums = _place(spectra, shifts)
        passes, gains = passes + done, tuple(earlier_gains) + gains
    if diagnosed is None:
        diagnosed = measure_all(spectra, shifts, sums, reference, window_term)
    correlation, significance, uncertainty = diagnosed
    yield progress()
    flagged = ~np.isfinite(significance) & (significance != np.inf)
    # An uncertainty counts against a frame only beyond the stack's own: on a smooth
    # scene at low counts every frame may be uncertain to more than FLAG_UNCERTAINTY_PX,
    # and then each is still the best estimate there is.
    typical = np.median(uncertainty[np.all(np.isfinite(uncertainty), axis=1)], axis=0) \
        if np.isfinite(uncertainty).all(axis=1).any() else np.zeros(2)
    limit = np.maximum(FLAG_UNCERTAINTY_PX, 3.0 * typical)
    # ... and a frame far less certain than the others is flagged even under 0.5 px: a
    # beam interruption (a frame of almost no counts) can still lock onto the reference
    # with a smooth weighting, at 0.46 px where its neighbours are at 0.02 px.
    outlier = np.maximum(OUTLIER_UNCERTAINTY_PX, OUTLIER_FACTOR * typical)
    flagged |= ((significance < FLAG_SIGNIFICANCE) | ~np.all(uncertainty <= limit, axis=1)
                | np.any(uncertainty > outlier, axis=1))
    if reference is not None:
        flagged[reference] = False
    measured = np.round(shifts * upsample_factor) / upsample_factor
    measured -= np.median(measured, axis=0)
    # Rounded to 1 / upsample_factor px: the uncertainty holds the rounding too (its
    # step over the square root of 12; 0.003 px at 100, on sparse spots at 10 counts
    # per pixel the errors were 1.2-1.3x the Poisson part alone), but the reference's.
    rounding = np.full(n_frames, 1.0 / (12.0 * float(upsample_factor) ** 2))
    if reference is not None:
        rounding[reference] = 0.0
    uncertainty = np.sqrt(uncertainty ** 2 + rounding[:, None])
    if flagged.all() and n_frames > 1:
        # Nothing registered (pure noise, no structure): random shifts would only blur
        # the sums, so the frames stay where they are (iter_register says so).
        translations = np.zeros_like(measured)
    else:
        translations = interpolate_flagged(measured, flagged)
    return FrameRegistration(translations=translations, measured=measured,
                             correlation=correlation, significance=significance,
                             uncertainty_px=uncertainty, flagged=flagged, passes=passes,
                             converged=bool(converged), objective=gains,
                             smoothing_px=spectra.sigma,
                             high_pass_px=spectra.high_pass_px)
