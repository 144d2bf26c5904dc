"""method='piecewise': smaller patches where the field bends within a patch (issue 24,
part 3; processing/alignment/_curvature.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_nanosims._errors import AlignmentWarning
from napari_nanosims._progress import run_to_completion
from napari_nanosims.processing.alignment import piecewise
from napari_nanosims.processing.alignment._curvature import (
    BEND_EXCESS,
    BEND_SIGMAS,
    affine_misfit,
    bends,
)
from napari_nanosims.processing.alignment.registration import iter_register
from napari_nanosims.testing.deform import simulate_deformation

SIDE = 32


def _patches(rng, n_frames=20, grid=5, field=None, noise=0.1, missing=0.0):
    """Synthetic patch measurements as piecewise._patch_moves gives them: ``grid`` x
    ``grid`` patches of SIDE px, half a side apart, each with its structure (weights) in
    a random blob off its centre, cut at corners that drift over the frames. The moves
    are the weighted means of ``field`` (a function of (rows, cols) pixel arrays
    returning (2, ...) moves, times the frame's factor from -1 to 1) plus Gaussian noise
    of each patch's own sigma (``noise`` times 0.5-2), centred on each patch's median
    over the frames; a share ``missing`` of the patches' frames did not register
    (infinite sigma, move 0). Returns (moves, sigma, weights, corners)."""
    starts = np.arange(grid) * SIDE // 2
    yy, xx = np.indices((SIDE, SIDE), dtype=np.float64)
    weights = np.zeros((grid, grid, 2, SIDE, SIDE))
    for i in range(grid):
        for j in range(grid):
            cy, cx = rng.uniform(6, SIDE - 6, 2)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)
            weights[i, j] = blob + 0.01
    drift = np.cumsum(rng.integers(-1, 2, (n_frames, 2)), axis=0)
    drift -= drift.min(axis=0)
    corners = (np.stack(np.meshgrid(starts, starts, indexing="ij"), axis=-1)[None]
               + drift[:, None, None, :])
    factor = np.linspace(-1.0, 1.0, n_frames)
    moves = np.zeros((n_frames, grid, grid, 2))
    for k in range(n_frames):
        for i in range(grid):
            for j in range(grid):
                at = field(yy + corners[k, i, j, 0], xx + corners[k, i, j, 1]) * factor[k]
                for axis in (0, 1):
                    w = weights[i, j, axis]
                    moves[k, i, j, axis] = (at[axis] * w).sum() / w.sum()
    sigma = np.broadcast_to(noise * rng.uniform(0.5, 2.0, (1, grid, grid, 1)),
                            moves.shape).copy()
    moves = moves + rng.normal(0.0, 1.0, moves.shape) * sigma
    moves -= np.median(moves, axis=0)
    lost = rng.random((n_frames, grid, grid)) < missing
    sigma[lost] = np.inf
    moves[lost] = 0.0
    return moves, sigma, weights, corners


def _affine(rows, cols):
    return np.stack([0.02 * rows - 0.01 * cols + 0.3, 0.015 * cols + 0.005 * rows])


def _bulge(rows, cols):
    dy, dx = (rows - 45.0) / 12.0, (cols - 45.0) / 12.0
    fade = np.exp(-(dy ** 2 + dx ** 2) / 2)
    return 2.0 * np.stack([dy * fade, dx * fade])


@pytest.mark.parametrize(("grid", "n_frames", "missing"), [(5, 20, 0.0), (3, 41, 0.1),
                                                          (7, 30, 0.05)])
def test_an_affine_field_leaves_only_noise_in_the_misfit(grid, n_frames, missing):
    """Moves that are weighted means of an affine field (each patch's structure off its
    centre, its window cut where the drift put it, each patch's noise its own, some
    frames' patches missing, centred on their median over the frames) leave the misfit
    of noise alone: over many stacks its mean is the expected value (with the share of
    the degrees of freedom the per-patch constants take, as bends() counts them), and it
    never bends."""
    rng = np.random.default_rng(5)
    totals, expected = [], []
    for _ in range(30):
        moves, sigma, weights, corners = _patches(rng, n_frames, grid, _affine,
                                                  missing=missing)
        chi2, dof = affine_misfit(moves, sigma, weights, corners)
        totals.append(chi2.sum())
        expected.append(dof.sum() * (n_frames - 1) / n_frames)
        assert not bends(moves, sigma, weights, corners)
    # The most deviant patch left out is taken as the largest of independent
    # chi-squares, which the fit's leverage makes a little off (3 % on a 3 x 3 grid).
    ratio = np.sum(totals) / np.sum(expected)
    assert 0.97 < ratio < 1.05, ratio


def test_without_noise_an_affine_field_is_fitted_exactly_at_the_centroids():
    """The weighted means of an affine field are fitted exactly, but not when each patch
    is placed at its window's centre instead of its structure's centroid."""
    rng = np.random.default_rng(4)
    moves, _, weights, corners = _patches(rng, field=_affine, noise=0.0)
    sigma = np.full(moves.shape, 0.1)
    assert affine_misfit(moves, sigma, weights, corners)[0].sum() < 1e-6
    centred = np.ones_like(weights)
    assert affine_misfit(moves, sigma, centred, corners)[0].sum() > 100.0


def test_a_bulge_bends_and_one_stray_patch_does_not():
    """A bulge narrower than the grid bends (twice BEND_SIGMAS); an affine field with a
    corner patch gone 2 px astray in a fifth of the frames does not, even on a 3 x 3
    grid where that patch pulls the fit (each frame's most deviant patch is left out,
    judged with its leverage)."""
    rng = np.random.default_rng(6)
    moves, sigma, weights, corners = _patches(rng, field=lambda r, c: 2.0 * _bulge(r, c))
    chi2, dof = affine_misfit(moves, sigma, weights, corners)
    assert chi2.sum() > dof.sum() + 2 * BEND_SIGMAS * np.sqrt(4.5 * dof.sum())
    assert bends(moves, sigma, weights, corners)
    for grid in (3, 5):
        for _ in range(10):
            moves, sigma, weights, corners = _patches(rng, grid=grid, field=_affine)
            moves[rng.random(moves.shape[0]) < 0.2, 0, 0, 0] += 2.0
            assert not bends(moves, sigma, weights, corners)


@pytest.mark.parametrize("amplitude", [0.8, 3.2])
def test_a_bend_smaller_than_the_extra_noise_of_smaller_patches_is_kept(amplitude):
    """Over 100 frames a faint bulge is significant (far beyond BEND_SIGMAS) but its
    misfit per degree of freedom is below BEND_EXCESS: smaller patches would add more
    noise than they remove; a bulge four times stronger passes both."""
    rng = np.random.default_rng(8)
    field = lambda rows, cols: amplitude / 2.0 * _bulge(rows, cols) + _affine(rows, cols)  # noqa: E731
    moves, sigma, weights, corners = _patches(rng, n_frames=100, field=field)
    chi2, dof = affine_misfit(moves, sigma, weights, corners)
    total_dof = dof.sum() * 99 / 100
    excess = chi2.sum() - total_dof
    assert excess > BEND_SIGMAS * np.sqrt(4.5 * total_dof)
    assert (excess > BEND_EXCESS * total_dof) == (amplitude > 1.0)
    assert bends(moves, sigma, weights, corners) == (amplitude > 1.0)


def test_too_few_patches_are_not_tested():
    """With fewer usable patches than an affine fit and the test need, or fewer than 3
    along an axis, nothing bends."""
    rng = np.random.default_rng(7)
    moves, sigma, weights, corners = _patches(rng, field=lambda r, c: 4.0 * _bulge(r, c),
                                              grid=2)
    assert not bends(moves, sigma, weights, corners)
    assert np.all(affine_misfit(moves, sigma, weights, corners)[1] == 0)
    moves, sigma, weights, corners = _patches(rng, field=lambda r, c: 4.0 * _bulge(r, c))
    assert bends(moves, sigma, weights, corners)
    assert not bends(moves[:, :2], sigma[:, :2], weights[:2], corners[:, :2])


@pytest.mark.parametrize(("side", "refined"), [(48, 32), (64, 40), (96, 64), (40, 32),
                                               (32, None)])
def test_the_refined_side_is_two_thirds_a_multiple_of_8_and_smaller(side, refined):
    assert piecewise.refined_patch_px(side) == refined


def _pixel_error_px(sim, result):
    """RMS over pixels and frames of the residual move (common offset removed), weighted
    by the squared gradient of the noise-free frames, px (as bench_piecewise.py)."""
    from napari_nanosims.testing.deform import moves_at_pixels

    residual = moves_at_pixels(result, sim["frames"].shape[1:]) - sim["displacement_px"]
    residual -= residual.mean(axis=0)
    weight = sum(g ** 2 for g in np.gradient(np.asarray(sim["truth"], float), axis=(1, 2)))
    return float(np.sqrt(((residual ** 2).sum(axis=1) * weight).sum() / weight.sum()))


def _register(frames, patch_px=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)
        rigid = run_to_completion(iter_register(frames, 100, None, None))
        return run_to_completion(piecewise.iter_register_piecewise(frames, 100, rigid=rigid,
                                                                   patch_px=patch_px))


def test_a_bulge_on_cells_is_followed_by_smaller_patches():
    """A 3 px bulge on drifting cells (4 counts per pixel, where the counts ask for 48 px
    patches): the field comes from 32 px patches, half a side apart, and is closer per
    pixel than with the 48 px patches alone (0.19 against 0.29 px on this stack)."""
    sim = simulate_deformation("cells", "bulge", 20, 4.0, window=128, amplitude_px=3.0,
                               seed=3)
    assert piecewise.patch_size_px(float(sim["frames"].mean()), (128, 128)) == 48
    refined = _register(sim["frames"])
    assert piecewise.patch_side_px(refined) == 32
    assert refined.displacement_grid_px[0][0] == pytest.approx((32 - 1) / 2)
    assert np.allclose(np.diff(refined.displacement_grid_px[1]), 16)
    coarse = _register(sim["frames"], patch_px=48)
    assert _pixel_error_px(sim, refined) < 0.8 * _pixel_error_px(sim, coarse)


def test_shear_of_a_mineral_keeps_the_patches_the_counts_ask_for():
    """An affine deformation (shear) of a smooth mineral does not bend: its field comes
    from the 48 px patches, whose moves carry less noise."""
    sim = simulate_deformation("mineral", "shear", 20, 4.0, window=128, amplitude_px=3.0,
                               seed=3)
    result = _register(sim["frames"])
    assert np.any(result.displacement_px != 0)
    assert result.displacement_grid_px[0][0] == pytest.approx((48 - 1) / 2)


def test_smaller_patches_that_mostly_fail_to_register_are_not_used(monkeypatch):
    """When more than MAX_REFINED_UNUSABLE of the smaller patches cannot register, the
    field comes from the larger ones, and the warning names those."""
    measure = piecewise._patch_moves

    def failing_when_small(stack, rigid, side, starts, upsample_factor, progress):
        moves, sigma, weights, corners, unusable = yield from measure(
            stack, rigid, side, starts, upsample_factor, progress)
        if side < 48:  # the refined pass: most patches lost
            lost = np.zeros(sigma.shape[1:3], bool)
            lost.flat[: int(0.3 * lost.size) + 1] = True
            sigma[:, lost] = np.inf
            moves[:, lost] = 0.0
            weights[lost] = 0.0
            unusable = int(lost.sum())
        return moves, sigma, weights, corners, unusable

    monkeypatch.setattr(piecewise, "_patch_moves", failing_when_small)
    sim = simulate_deformation("cells", "bulge", 20, 4.0, window=128, amplitude_px=3.0,
                               seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)
        rigid = run_to_completion(iter_register(sim["frames"], 100, None, None))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AlignmentWarning)
        result = run_to_completion(piecewise.iter_register_piecewise(sim["frames"], 100,
                                                                     rigid=rigid))
    assert result.displacement_grid_px[0][0] == pytest.approx((48 - 1) / 2)
    assert np.any(result.displacement_px != 0)
    assert not [w for w in caught if "patches of 32" in str(w.message)]


def test_a_rigid_registration_has_no_patch_side():
    frames = simulate_deformation("cells", "shear", 4, 4.0, window=64, seed=1)["frames"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)
        rigid = run_to_completion(iter_register(frames, 100, None, None))
    with pytest.raises(ValueError, match="no displacement field"):
        piecewise.patch_side_px(rigid)

