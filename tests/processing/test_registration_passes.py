"""When the refinement passes stop (acceleration.settled) and when the pass that
confirms the fixed point measures the diagnostics again (registration.REMEASURE_PX)."""

from __future__ import annotations

import numpy as np

from napari_nanosims import register_frames
from napari_nanosims.processing.alignment import diagnostics, registration
from napari_nanosims.processing.alignment.acceleration import CONTRACTION_MAX, settled
from napari_nanosims.testing.simulate import simulate_scene


def test_settled_when_every_move_is_within_the_tolerance():
    moves = np.array([[0.004, -0.003], [0.0, 0.005]])
    assert settled(moves, 0.005, None)
    assert not settled(moves * 1.5, 0.005, None)  # no pass before to tell the rate
    # a tolerance per frame (a fraction of each frame's uncertainty)
    assert settled(moves * 1.5, np.array([[0.01], [0.01]]), None)


def test_settled_when_the_passes_contract_fast_enough():
    moves = np.array([[0.012, 0.0], [0.0, -0.006]])
    # the pass before moved 0.2: ratio 0.06, about 0.0008 px left
    assert settled(moves, 0.005, 0.2)
    # ... slower (ratio 0.3, above CONTRACTION_MAX): 0.005 px left, one pass more
    assert CONTRACTION_MAX < 0.012 / 0.04 and not settled(moves, 0.005, 0.04)
    assert not settled(moves, 0.005, None)  # a jump came in between: no rate
    # never on a move beyond four tolerances, however fast the contraction
    assert not settled(moves * 2, 0.005, 10.0)
    # the distance left must be within the tolerance too: ratio 0.2 leaves 0.005 / 4
    assert settled(np.array([[0.019, 0.0]]), 0.005, 0.095)
    assert not settled(np.array([[0.019, 0.0]]), 0.004, 0.095)


def _plain_first_pass(monkeypatch):
    """The first pass without its background removal: the frames start as far from
    the fixed point (0.1-2 px) as the passes below were designed on."""
    from napari_nanosims.processing.alignment import first_pass

    monkeypatch.setattr(first_pass, "FIRST_PASS_HIGH_PASS_PX", np.inf)


def test_cells_stop_a_pass_earlier_with_the_same_translations(monkeypatch):
    _plain_first_pass(monkeypatch)  # a first move of 0.13 px, then one of 0.006
    sim = simulate_scene("cells", 40, 2.0, window=256, seed=3)
    fast = register_frames(sim["frames"])
    # Without the contraction rule: every move within the tolerance.
    monkeypatch.setattr(registration, "settled",
                        lambda relative, tolerance, previous: bool(
                            np.all(np.abs(relative) <= tolerance)))
    slow = register_frames(sim["frames"])
    assert fast.passes < slow.passes
    np.testing.assert_allclose(fast.translations, slow.translations, atol=0.0101)


def _register_counting(monkeypatch, frames):
    """register_frames(frames), with the frames measured (one entry per frame and
    measuring pass) and the passes' final shifts and diagnostics."""
    calls = []
    original = diagnostics.FrameDiagnostics.measure

    def counting(self, index, *args, **kwargs):
        calls.append(index)
        return original(self, index, *args, **kwargs)

    monkeypatch.setattr(diagnostics.FrameDiagnostics, "measure", counting)
    kept = {}
    original_ascent = registration._coordinate_ascent

    def recording(*args, **kwargs):
        result = yield from original_ascent(*args, **kwargs)
        kept["shifts"], kept["diagnosed"] = result[0], result[4]
        return result

    monkeypatch.setattr(registration, "_coordinate_ascent", recording)
    return register_frames(frames), calls, kept


def _assert_as_if_measured_at_the_end(frames, result, kept):
    """The diagnostics kept match a measurement at the final translations, from
    scratch: the correlations to under 1 %, the uncertainties to about 1 % at most
    (through the fixed point's Jacobian, the difference of two larger terms on a
    smooth grain, they move more than the lag's Hessian alone did)."""
    assert kept["diagnosed"] is not None
    spectra = registration._Spectra(frames, None, (result.smoothing_px, result.high_pass_px))
    sums = registration._place(spectra, kept["shifts"])
    correlation, _, uncertainty = diagnostics.measure_all(spectra, kept["shifts"], sums,
                                                          None)
    np.testing.assert_allclose(result.uncertainty_px, uncertainty, rtol=0.015)
    np.testing.assert_allclose(result.correlation, correlation, rtol=0.01)


def test_a_confirming_pass_keeps_the_diagnostics_measured_just_before(monkeypatch):
    """A grain of 200 frames needs 7 passes; the diagnostics are measured once, in the
    pass after the frames came within MEASURE_WITHIN_PX, and kept when the passes
    after it move no frame further than REMEASURE_PX (measured in two passes when
    every pass re-measured): they match a measurement at the final translations to
    about 1 %."""
    _plain_first_pass(monkeypatch)  # 7 passes
    n_frames = 200
    sim = simulate_scene("grain", n_frames, 2.0, window=256, seed=3)
    result, calls, kept = _register_counting(monkeypatch, sim["frames"])
    assert result.passes >= 3
    assert len(calls) == n_frames  # one measuring pass, not one per pass at the end
    _assert_as_if_measured_at_the_end(sim["frames"], result, kept)


def test_the_pass_after_a_contracting_one_measures_only_if_it_may_move_the_frames_away(
        monkeypatch):
    """200 frames of a particle move 0.09, 0.026 and 0.003 px in three passes. The
    second measures the diagnostics; the third was expected to move the frames by the
    second's 0.026 px times the passes' contraction (0.29), which keeps them within
    REMEASURE_PX of where they were measured (0.037 px after the accelerated jump),
    so it does not measure them again (it did when the move expected of it was the
    second's whole 0.026 px: twice the measurements)."""
    n_frames = 200
    sim = simulate_scene("particle", n_frames, 2.0, window=256, seed=3)
    result, calls, kept = _register_counting(monkeypatch, sim["frames"])
    assert result.passes == 3 and result.converged
    assert len(calls) == n_frames
    _assert_as_if_measured_at_the_end(sim["frames"], result, kept)


def test_converged_stacks_need_no_measurement_after_the_passes(monkeypatch):
    """The diagnostics of a stack that converges come from its passes, never from a
    measurement of their own after them (measure_all: a whole pass more). Stacks where
    the passes stopped without diagnostics at hand (the contraction rule in a pass
    that did not measure) or with diagnostics measured further away than the moves
    they kept adding up to (REMEASURE_PX)."""
    calls = []
    original = registration.measure_all

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(registration, "measure_all", counting)
    for kind, n_frames, size, counts in (("cells", 3, 64, 10.0), ("gradient", 10, 128, 2.0),
                                         ("mixture", 10, 128, 2.0),
                                         ("mixture", 10, 256, 0.5)):
        result = register_frames(simulate_scene(kind, n_frames, counts, window=size,
                                                seed=1)["frames"])
        assert result.converged, (kind, n_frames, size, counts)
        assert not calls, (kind, n_frames, size, counts)


def test_frames_refined_at_half_resolution_are_searched_locally_at_full(monkeypatch):
    """Frames refined on their binned version first (here forced on a sharp scene: by
    default only smooth bands are) start the full-resolution passes within 0.05 px and
    search no whole-pixel shift there (an inverse FFT per frame saved), with the same
    translations as the default: a binned first pass, then a full search."""
    from napari_nanosims.processing.alignment import subpixel

    sim = simulate_scene("mixture", 12, 2.0, window=384, seed=5)
    searched = []
    original = subpixel._Spectra.whole_pixel_peak

    def counting(self, spectrum):
        searched.append(self.shape)
        return original(self, spectrum)

    monkeypatch.setattr(subpixel._Spectra, "whole_pixel_peak", counting)
    unrefined = register_frames(sim["frames"])  # binned first pass, full search after
    assert unrefined.smoothing_px < registration.HALF_RESOLUTION_REFINE_MIN_SIGMA_PX
    assert len([shape for shape in searched if min(shape) > 384]) == 12
    searched.clear()
    monkeypatch.setattr(registration, "HALF_RESOLUTION_REFINE_MIN_SIGMA_PX", 0.0)
    local = register_frames(sim["frames"])
    # Only on the binned canvas (the first pass and the binned refinement's first).
    assert searched and all(min(shape) < 384 for shape in searched)
    np.testing.assert_allclose(local.translations, unrefined.translations, atol=0.0101)


def test_a_first_pass_without_the_surround_saves_a_pass(monkeypatch):
    """A band without background removal leaves a flat surround in the frames, whose
    window pulls the plain first pass toward no shift; the first pass removes an 8 px
    background (FIRST_PASS_HIGH_PASS_PX) and a particle then needs one pass less, with
    the same translations (the fixed point does not depend on the start)."""
    sim = simulate_scene("particle", 40, 2.0, window=256, seed=3)
    default = register_frames(sim["frames"])  # the first pass removes the surround
    assert default.high_pass_px == np.inf  # the band itself removes none
    _plain_first_pass(monkeypatch)
    plain = register_frames(sim["frames"])
    assert default.passes < plain.passes
    np.testing.assert_allclose(default.translations, plain.translations, atol=0.0201)
