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
    steady_patches,
)
from napari_nanosims.processing.alignment._temporal import MIN_FRAMES, smooth_over_frames
from napari_nanosims.testing.deform import patch_errors_px, simulate_deformation


def _stack(rng, n_frames=40, course="linear", amplitude=2.0):
    """Patch moves (frames, 5, 5, 2): a per-frame shared move, each patch's own course
    and Gaussian noise of a known sigma per patch (0.05-0.2 px). Returns (noisy moves,
    sigma, true moves)."""
    sigma = np.broadcast_to(rng.uniform(0.05, 0.2, (1, 5, 5, 1)), (n_frames, 5, 5, 2)).copy()
    if course == "linear":
        slopes = rng.uniform(-amplitude, amplitude, (1, 5, 5, 2))
        own = np.linspace(-1, 1, n_frames)[:, None, None, None] * slopes
    else:  # white: a new move every frame
        own = rng.uniform(-amplitude, amplitude, (n_frames, 5, 5, 2))
    shared = rng.normal(0.0, 1.0, (n_frames, 1, 1, 2))
    truth = shared + own
    return truth + rng.normal(0.0, 1.0, truth.shape) * sigma, sigma, truth


def test_a_steady_course_is_smoothed_well_below_its_noise():
    """Linear courses under noise (40 frames, 25 patches): the smoothed moves are off by
    well under half the noise (what is left: the frames' shared moves, kept as measured,
    and the smoother's own error), over 20 stacks."""
    rng = np.random.default_rng(1)
    raw_errors, smoothed_errors = [], []
    for _ in range(20):
        moves, sigma, truth = _stack(rng)
        smoothed = smooth_over_frames(moves, sigma, steady_patches(moves, sigma))
        raw_errors.append(((moves - truth) / sigma) ** 2)
        smoothed_errors.append(((smoothed - truth) / sigma) ** 2)
    raw, smoothed = (float(np.sqrt(np.mean(e))) for e in (raw_errors, smoothed_errors))
    assert 0.9 < raw < 1.1  # the noise is what it says
    assert smoothed < 0.45 * raw, (smoothed, raw)


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
    assert np.mean(jumps) <= 2 * JUMP_FALSE_RATE  # Bonferroni: at most the rate
    assert np.mean(steady) >= 0.99


def test_unmeasured_moves_and_short_stacks_are_left_alone():
    """A patch not measured in a frame (sigma infinite) keeps that move; a stack of
    fewer than MIN_FRAMES frames comes back as it is."""
    rng = np.random.default_rng(5)
    moves, sigma, _ = _stack(rng)
    sigma[7, 2, 2] = np.inf
    moves[7, 2, 2] = 99.0
    smoothed = smooth_over_frames(moves, sigma)
    np.testing.assert_array_equal(smoothed[7, 2, 2], [99.0, 99.0])
    assert np.all(np.isfinite(smoothed))
    short, short_sigma = moves[:MIN_FRAMES - 1], sigma[:MIN_FRAMES - 1]
    np.testing.assert_array_equal(smooth_over_frames(short, short_sigma), short)


def _pooled_and_worst(sim, monkeypatch=None):
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
