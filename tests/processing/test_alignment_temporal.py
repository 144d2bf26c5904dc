"""method='piecewise': the patches' moves smoothed over the frames where their course is
steady (issue 24, part 3; processing/alignment/_temporal.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import ndtri

from napari_nanosims import register_frames
from napari_nanosims._errors import AlignmentWarning
from napari_nanosims.processing.alignment import piecewise
from napari_nanosims.processing.alignment._field import (
    JUMP_FALSE_RATE,
    SECOND_DIFFERENCE_SPREAD,
    _steadiness,
    calibrated_sigma,
    deformation_test,
    steady_patches,
)
from napari_nanosims.processing.alignment._temporal import MIN_FRAMES, smooth_over_frames
from napari_nanosims.testing.deform import patch_errors_px, simulate_deformation


def _stack(rng, n_frames=40, course="linear", amplitude=2.0):
    """Patch moves (frames, 5, 5, 2): a per-frame shared move, each patch's own course
    and Gaussian noise of a known sigma per patch (0.05-0.2 px). Returns (noisy moves,
    sigma, true moves)."""
    sigma = np.broadcast_to(rng.uniform(0.05, 0.2, (1, 5, 5, 1)), (n_frames, 5, 5, 2)).copy()
    if course in ("linear", "quadratic"):
        slopes = rng.uniform(-amplitude, amplitude, (1, 5, 5, 2))
        time = np.linspace(-1, 1, n_frames)[:, None, None, None]
        own = (time if course == "linear" else time ** 2) * slopes
    else:  # white: a new move every frame
        own = rng.uniform(-amplitude, amplitude, (n_frames, 5, 5, 2))
    shared = rng.normal(0.0, 1.0, (n_frames, 1, 1, 2))
    truth = shared + own
    return truth + rng.normal(0.0, 1.0, truth.shape) * sigma, sigma, truth


@pytest.mark.parametrize("course", ["linear", "quadratic"])
def test_a_steady_course_is_smoothed_well_below_its_noise(course):
    """Linear and quadratic courses of up to 1 px under noise (40 frames, 25 patches):
    steady, and smoothed to well under half the noise (what is left: the frames' shared
    moves, kept as measured, and the smoother's own error), over 20 stacks. On the
    quadratic course the smoothing GCV chooses matters: the strongest one tried (a
    straight line) is further off than the noise itself."""
    from napari_nanosims.processing.alignment import _temporal

    rng = np.random.default_rng(1)
    raw_errors, smoothed_errors, straight_errors, steady = [], [], [], []
    for _ in range(20):
        moves, sigma, truth = _stack(rng, course=course, amplitude=1.0)
        steady.append(steady_patches(moves, sigma))
        smoothed = smooth_over_frames(moves, sigma, steady[-1])
        raw_errors.append(((moves - truth) / sigma) ** 2)
        smoothed_errors.append(((smoothed - truth) / sigma) ** 2)
        strongest = _temporal.SMOOTHING_GRID[-1:]
        original, _temporal.SMOOTHING_GRID = _temporal.SMOOTHING_GRID, strongest
        try:
            straight = smooth_over_frames(moves, sigma, steady[-1])
        finally:
            _temporal.SMOOTHING_GRID = original
        straight_errors.append(((straight - truth) / sigma) ** 2)
    raw, smoothed, straight = (float(np.sqrt(np.mean(e))) for e in
                               (raw_errors, smoothed_errors, straight_errors))
    assert np.mean(steady) > 0.95
    assert 0.9 < raw < 1.1  # the noise is what it says
    assert smoothed < 0.45 * raw, (smoothed, raw)
    if course == "quadratic":
        assert straight > raw > 2 * smoothed, (straight, raw, smoothed)


def test_a_patch_missing_or_astray_in_a_frame_leaves_the_others_alone():
    """A patch not measured in one frame, or one gone 3 px astray there (a lock onto
    noise), leaves every other patch's smoothed move in that frame within a tenth of its
    noise of where it was (a mean over the patches present moved them all by up to 2
    sigma)."""
    rng = np.random.default_rng(6)
    moves, sigma, _ = _stack(rng, amplitude=1.0)
    steady = steady_patches(moves, sigma)
    reference = smooth_over_frames(moves, sigma, steady)
    others = np.ones((5, 5), dtype=bool)
    others[0, 0] = False
    missing = sigma.copy()
    missing[10, 0, 0] = np.inf
    astray = moves.copy()
    astray[10, 0, 0] += 3.0
    assert not steady_patches(astray, sigma)[0, 0]
    for changed_moves, changed_sigma in ((moves, missing), (astray, sigma)):
        result = smooth_over_frames(changed_moves, changed_sigma,
                                    steady_patches(changed_moves, changed_sigma))
        shift = (result[10] - reference[10]) / sigma[10]
        assert np.all(np.abs(shift[others & steady]) < 0.1), np.round(shift, 2)


def test_the_frames_shared_move_is_kept_as_measured():
    """A move shared by every patch of a frame (the rigid registration's own error) is
    not smoothed: adding one to every patch adds it to the result, exactly."""
    rng = np.random.default_rng(2)
    moves, sigma, _ = _stack(rng)
    steady = steady_patches(moves, sigma)
    offset = rng.normal(0.0, 3.0, (moves.shape[0], 1, 1, 2))
    np.testing.assert_allclose(smooth_over_frames(moves + offset, sigma, steady),
                               smooth_over_frames(moves, sigma, steady) + offset,
                               rtol=0, atol=1e-9)


def test_a_course_that_jumps_is_not_steady_and_is_kept_as_measured():
    """Two patches whose course jumps by 8 sigma halfway, and one that moves anew every
    frame: not steady, and their moves come back exactly as measured; the others are
    smoothed."""
    rng = np.random.default_rng(3)
    moves, sigma, _ = _stack(rng)
    moves[20:, 1, 1] += 8 * sigma[20:, 1, 1]
    moves[20:, 3, 2, 0] -= 8 * sigma[20:, 3, 2, 0]
    moves[:, 4, 4] += rng.uniform(-1.0, 1.0, (40, 2))
    steady = steady_patches(moves, sigma)
    assert not steady[1, 1] and not steady[3, 2] and not steady[4, 4]
    assert steady.sum() >= 20
    smoothed = smooth_over_frames(moves, sigma, steady)
    np.testing.assert_array_equal(smoothed[:, ~steady], moves[:, ~steady])
    assert np.all(np.any(smoothed[:, steady] != moves[:, steady], axis=0))


def test_noise_alone_is_steady_at_the_rate_its_spread_says():
    """Monte Carlo over 300 stacks of noise alone (20 frames): the second differences'
    mean square averages 1 with the spread SECOND_DIFFERENCE_SPREAD predicts (within
    10 %); no more patches than JUMP_FALSE_RATE says show a jump, and at least 99 %
    pass as steady."""
    rng = np.random.default_rng(4)
    ratios, counts, steady, jumps = [], [], [], []
    for _ in range(300):
        sigma = np.broadcast_to(rng.uniform(0.05, 0.2, (1, 5, 5, 1)), (20, 5, 5, 2))
        moves = rng.normal(0.0, 1.0, sigma.shape) * sigma
        ratio, count, largest, changes = _steadiness(moves, sigma)
        ratios.append(ratio)
        counts.append(count)
        steady.append(steady_patches(moves, sigma))
        jumps.append(largest > -ndtri(JUMP_FALSE_RATE / (2.0 * changes)))
    ratios, counts = np.concatenate(ratios), np.concatenate(counts)
    assert abs(ratios.mean() - 1.0) < 0.03
    predicted = np.sqrt(SECOND_DIFFERENCE_SPREAD / counts.mean())
    assert abs(ratios.std() / predicted - 1.0) < 0.1, (ratios.std(), predicted)
    assert np.mean(jumps) <= 2 * JUMP_FALSE_RATE  # about the rate (docs/processing.md)
    assert np.mean(steady) >= 0.98


def test_unmeasured_moves_and_short_stacks_are_left_alone():
    """A patch not measured in a frame (sigma infinite) keeps that move; a frame where
    nothing registered (a beam interruption) and a frame where one patch did pass
    without a warning; a stack of fewer than MIN_FRAMES frames comes back as it is."""
    rng = np.random.default_rng(5)
    moves, sigma, _ = _stack(rng)
    sigma[7, 2, 2] = np.inf
    moves[7, 2, 2] = 99.0
    sigma[12] = np.inf
    sigma[15, 1:] = np.inf
    sigma[15, 0, 1:] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steady = steady_patches(moves, sigma)
        calibrated = calibrated_sigma(moves, sigma)
        assert deformation_test(moves, calibrated) in (True, False)
        smoothed = smooth_over_frames(moves, sigma, steady)
    np.testing.assert_array_equal(smoothed[12], moves[12])
    np.testing.assert_array_equal(smoothed[7, 2, 2], [99.0, 99.0])
    assert np.all(np.isfinite(smoothed))
    short, short_sigma = moves[:MIN_FRAMES - 1], sigma[:MIN_FRAMES - 1]
    np.testing.assert_array_equal(smooth_over_frames(short, short_sigma), short)


def _pooled_and_worst(sim):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)
        result = register_frames(sim["frames"], method="piecewise")
    side = piecewise.patch_size_px(float(sim["frames"].mean()), (128, 128))
    errors, limits = patch_errors_px(sim, result, side)
    usable = limits < 1.0
    return (float(np.sqrt(np.mean(errors[usable] ** 2) / np.mean(limits[usable] ** 2))),
            float(np.max(errors[usable] / limits[usable])))


@pytest.mark.parametrize("course", ["random", "step"])
def test_a_deformation_that_changes_abruptly_is_no_worse_than_unsmoothed(course,
                                                                          monkeypatch):
    """A bulge on a mineral whose size changes at random from frame to frame, or jumps
    once: the field is as close to the truth as without smoothing over the frames (the
    bulge's patches are not steady, so they are not smoothed away)."""
    rng = np.random.default_rng(5)
    factor = (rng.uniform(-1, 1, 20) if course == "random"
              else np.where(np.arange(20) < 10, -1.0, 1.0))
    sim = simulate_deformation("mineral", "bulge", 20, 4.0, window=128, amplitude_px=3.0,
                               seed=3, factor=factor)
    pooled, worst = _pooled_and_worst(sim)
    monkeypatch.setattr(piecewise, "smooth_over_frames", lambda moves, *_: moves)
    unsmoothed_pooled, unsmoothed_worst = _pooled_and_worst(sim)
    assert pooled <= 1.03 * unsmoothed_pooled, (pooled, unsmoothed_pooled)
    assert worst <= 1.03 * unsmoothed_worst, (worst, unsmoothed_worst)
