"""The frequency weighting of the sub-pixel registration, chosen from the data per stack
(weighting.py): the band-pass with the smallest predicted error, without trial
registrations (issue 24; an earlier version tried three smoothings on short stacks and
let a discarded trial warn, issue 20)."""

from __future__ import annotations

import warnings

import numpy as np

from napari_nanosims import register_frames
from napari_nanosims.processing._frames import run_to_completion
from napari_nanosims.processing.alignment import registration
from napari_nanosims.processing.alignment.background import HIGH_PASS_PX
from napari_nanosims.processing.alignment.subpixel import subpixel_smoothing_px
from napari_nanosims.testing.simulate import alignment_error_px, simulate_scene


def _with(frames, weighting):
    generator = registration._register(frames, 100, None, None, registration.MAX_PASSES,
                                       None, weighting, iter(range(1, 10 ** 9)))
    return run_to_completion(generator)


def test_a_smooth_grain_gets_a_wide_band_and_small_cells_a_narrow_one():
    grain = simulate_scene("grain", 20, 2.0, window=160, seed=41)
    cells = simulate_scene("cells", 20, 2.0, window=160, seed=41)
    on_grain, on_cells = register_frames(grain["frames"]), register_frames(cells["frames"])
    # The grain's edges are soft: its information is at low frequencies, which the
    # fixed 8 px background removal of earlier versions took away.
    assert on_grain.high_pass_px > HIGH_PASS_PX
    assert on_cells.high_pass_px < on_grain.high_pass_px
    assert on_cells.smoothing_px < 1.2 * subpixel_smoothing_px(float(cells["frames"].mean()))
    # The choice is right: the fixed band of earlier versions does far worse on the grain.
    fixed = _with(grain["frames"], (subpixel_smoothing_px(2.0), HIGH_PASS_PX))
    chosen = alignment_error_px(on_grain.translations, grain["drift_px"])
    assert chosen < 0.5 * alignment_error_px(fixed.translations, grain["drift_px"])


def test_the_chosen_band_beats_the_fixed_one_on_an_se_grain():
    """On an SE-like grain (bright substrate, soft edges) the band chosen by the
    prediction locates the frames better than the fixed band of earlier versions."""
    sim = simulate_scene("grain_se", 24, 4.0, window=160, seed=42)
    chosen = register_frames(sim["frames"])
    fixed = _with(sim["frames"], (subpixel_smoothing_px(4.0), HIGH_PASS_PX))
    assert (chosen.high_pass_px, chosen.smoothing_px) != (HIGH_PASS_PX,
                                                         subpixel_smoothing_px(4.0))
    assert alignment_error_px(chosen.translations, sim["drift_px"]) < alignment_error_px(
        fixed.translations, sim["drift_px"])


def test_a_short_stack_registers_once_and_does_not_warn():
    frames = simulate_scene("cells", 5, 15.0, window=48, max_drift_px=3.0, seed=2)["frames"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        result = register_frames(frames)
    assert not result.flagged.any() and np.abs(result.translations).max() > 0
