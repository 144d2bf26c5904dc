"""Kernel errors after sub-pixel alignment: exact variances of box sums of shifted pixels.

A sub-pixel shift spreads each raw pixel over 2 x 2 aligned pixels, so neighbouring
aligned pixels share counts and the variance of a box sum is not the sum of the pixel
variances. The expected values here are built from the definitions, independently of
the code under test:

* a translation ``t`` moves the content of pixel ``p`` to ``p + t``; per axis, with
  ``t = k + f`` (``k`` whole, ``0 <= f < 1``), to ``p + k`` with weight ``1 - f`` and to
  ``p + k + 1`` with weight ``f``; what lands outside the frame is dropped;
* a box sum of aligned pixels is then ``sum_r m_r c_r`` over raw pixels ``r`` with known
  weights ``m_r``, and raw pixels are independent: ``Var = sum_r m_r**2 Var(c_r)``.
"""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest
from scipy import ndimage

from napari_nanosims import (
    STEPS,
    Acquisition,
    accumulate,
    align_frames,
    correct_dead_time,
    evaluate,
)
from napari_nanosims.analysis.accumulate import Accumulation, KernelVarianceWarning
from napari_nanosims.processing.alignment import translation_matrix
from napari_nanosims.steps import frames as steps
from napari_nanosims.testing.simulate import make_scene, simulate_drift

LABELS = ["12C", "13C"]


def _given_registration(monkeypatch, translations):
    """Make the align_frames step use ``translations`` instead of registering: the step
    itself (shifting counts, variance, coverage, keeping the frames before) runs as is."""
    translations = np.asarray(translations, dtype=np.float64)

    def register(stack, **options):
        return types.SimpleNamespace(translations=translations.copy(),
                                     flagged=np.zeros(len(translations), bool))
        yield  # a generator, as the real one

    monkeypatch.setattr(steps, "iter_register_frames", register)


def _shift_map(translation, height, width):
    """(H*W, H*W) matrix of the bilinear move by ``translation``: column ``r`` holds the
    weights with which raw pixel ``r`` lands in each aligned pixel (the definition)."""
    whole = np.floor(translation).astype(int)
    fraction = np.asarray(translation, dtype=np.float64) - whole
    matrix = np.zeros((height * width, height * width))
    for row in range(height):
        for column in range(width):
            for d_row, w_row in ((0, 1 - fraction[0]), (1, fraction[0])):
                for d_col, w_col in ((0, 1 - fraction[1]), (1, fraction[1])):
                    to_row, to_col = row + whole[0] + d_row, column + whole[1] + d_col
                    if 0 <= to_row < height and 0 <= to_col < width:
                        matrix[to_row * width + to_col, row * width + column] += w_row * w_col
    return matrix


def _box_map(kernel, height, width):
    """(H*W, H*W): row P sums the pixels within kernel // 2 of P in rows and columns."""
    rows, columns = np.divmod(np.arange(height * width), width)
    half = kernel // 2
    return ((np.abs(rows[:, None] - rows[None, :]) <= half)
            & (np.abs(columns[:, None] - columns[None, :]) <= half)).astype(np.float64)


def _brute_force(raw_variance, maps, kernel, height, width):
    """Exact variance of box sums: sum over frames of (B @ T_f)**2 @ V_f, per mass, with
    NaN where the box touches a pixel no frame covered (as the counts' box sum)."""
    box = _box_map(kernel, height, width)
    n_masses = raw_variance[0].shape[0]
    variance = np.zeros((n_masses, height * width))
    coverage = np.zeros(height * width)
    for values, transfer in zip(raw_variance, maps, strict=True):
        weights = (box @ transfer) ** 2
        for mass in range(n_masses):
            variance[mass] += weights @ values[mass].ravel()
        coverage += transfer @ np.ones(height * width)
    touched = box @ (coverage <= 1e-9).astype(np.float64) > 0
    variance[:, touched] = np.nan
    return variance.reshape(n_masses, height, width)


def _drifting(n_frames=5, window=24, seed=1):
    """Poisson frames of two masses (60 and 18 counts per pixel) of a textured scene,
    drifting by up to 1.5 px with sub-pixel parts, so that registration finds it."""
    field = make_scene("mineral", (window + 16, window + 16), seed=seed)
    simulation = simulate_drift(field, n_frames, 60.0, window=window, step_px=None,
                                seed=seed + 1, max_drift_px=1.5)
    minor = np.random.default_rng(seed + 2).poisson(0.3 * simulation["truth"])
    return np.stack([simulation["frames"], minor], axis=1).astype(np.uint32)


@pytest.mark.parametrize("corrected", [False, True])
def test_kernel_variance_after_registration_equals_the_brute_force_weights(corrected):
    """The real sub-pixel registration, a frame left out after it, a frame selection."""
    counts = _drifting()
    acquisition = Acquisition.from_arrays(counts, LABELS, dwell_time_us=1000)
    if corrected:
        acquisition = correct_dead_time(acquisition, dead_times_ns=300.0)
    aligned = align_frames(acquisition, method="subpixel", channel="12C")
    translations = np.asarray(aligned.translations)
    assert np.any(translations != np.round(translations))
    fewer = STEPS["exclude_frames"](aligned, frames="1", flagged=False)
    total = accumulate(fewer, frames=[0, 2, 3])  # frames 0, 3, 4 of the acquisition
    used = [0, 3, 4]
    height, width = counts.shape[2:]
    maps = [_shift_map(translations[f], height, width) for f in used]
    raw = (np.asarray(acquisition.variance) if corrected
           else counts.astype(np.float64))
    # The brute-force maps are those of the step: they give its summed counts.
    summed = sum(transfer @ np.asarray(acquisition.counts[f], dtype=np.float64)
                 .reshape(2, -1).T for f, transfer in zip(used, maps, strict=True)).T
    np.testing.assert_allclose(total.counts.reshape(2, -1), summed, rtol=1e-10, atol=1e-9)
    expected = {kernel: _brute_force([raw[f] for f in used], maps, kernel, height, width)
                for kernel in (1, 3, 5)}
    for kernel in (1, 3, 5):  # the error evaluate() gives one mass: the square root
        derived = evaluate(total, "13C", kernel=kernel, min_counts=0)
        np.testing.assert_allclose(derived.sigma, np.sqrt(expected[kernel][1]), rtol=1e-10)
    for kernel in (1, 3, 5):
        np.testing.assert_allclose(total.kernel_variance(kernel), expected[kernel],
                                   rtol=1e-10, atol=1e-9)
    # only the masses asked for, in the order asked
    np.testing.assert_allclose(total.kernel_variance(3, [1]), expected[3][1:], rtol=1e-10)


def test_kernel_variance_at_uncovered_edges_and_through_two_alignments(monkeypatch):
    """Given translations all moving rows down by more than a pixel (the top row is then
    uncovered: NaN, as the box sums touching it), content leaving the frame, and a second
    sub-pixel alignment of the aligned frames (the weights compose)."""
    rng = np.random.default_rng(11)
    height, width = 7, 9
    counts = rng.poisson(30.0, size=(3, 2, height, width)).astype(np.uint16)
    acquisition = Acquisition.from_arrays(counts, LABELS)
    first = np.array([[1.3, -0.4], [1.7, 0.25], [2.5, 1.0]])
    _given_registration(monkeypatch, first)
    once = align_frames(acquisition, method="subpixel")
    raw = [counts[f].astype(np.float64) for f in range(3)]
    maps = [_shift_map(t, height, width) for t in first]
    total = accumulate(once)
    assert np.isnan(total.counts[:, 0]).all()  # nothing reaches the top row
    for kernel in (1, 3, 5):
        expected = _brute_force(raw, maps, kernel, height, width)
        assert np.isnan(expected).any() and not np.isnan(expected).all()
        np.testing.assert_allclose(total.kernel_variance(kernel), expected, rtol=1e-10,
                                   atol=1e-9)
    second = np.array([[-0.5, 0.5], [0.25, -0.75], [0.0, 0.5]])
    _given_registration(monkeypatch, second)
    twice = align_frames(once, method="subpixel")
    composed = [_shift_map(t, height, width) @ transfer
                for t, transfer in zip(second, maps, strict=True)]
    total = accumulate(twice)
    for kernel in (1, 3):
        expected = _brute_force(raw, composed, kernel, height, width)
        np.testing.assert_allclose(total.kernel_variance(kernel), expected, rtol=1e-10,
                                   atol=1e-9)


def test_translation_matrix_is_the_bilinear_move_along_one_axis():
    for translation, size, target, origin in [(0.3, 6, None, 0), (-1.75, 6, None, 0),
                                              (2.5, 5, 9, 2), (7.2, 4, None, 0)]:
        target_size = size if target is None else target
        expected = np.zeros((target_size, size))
        whole = int(np.floor(translation))
        fraction = translation - whole
        for pixel in range(size):
            for move, weight in ((whole, 1 - fraction), (whole + 1, fraction)):
                if 0 <= origin + pixel + move < target_size:
                    expected[origin + pixel + move, pixel] += weight
        matrix = translation_matrix(translation, size, target_size=target, origin=origin)
        np.testing.assert_allclose(matrix.toarray(), expected, atol=1e-15)
    with pytest.raises(ValueError, match="size"):
        translation_matrix(0.5, 0)
    with pytest.raises(ValueError, match="translation"):
        translation_matrix(float("nan"), 4)


def test_whole_pixel_alignment_and_no_alignment_keep_the_box_sum_of_pixel_variances():
    counts = _drifting(n_frames=3, seed=4)
    acquisition = Acquisition.from_arrays(counts, LABELS)
    for source in (acquisition, align_frames(acquisition, method="sequential",
                                             channel="12C")):
        total = accumulate(source)
        with warnings.catch_warnings():
            warnings.simplefilter("error", KernelVarianceWarning)
            result = total.kernel_variance(3)
        missing = np.isnan(total.variance)
        expected = np.stack([ndimage.convolve(np.where(missing[m], 0, total.variance[m]),
                                              np.ones((3, 3)), mode="constant")
                             for m in range(2)])
        touched = np.stack([ndimage.convolve(missing[m].astype(float), np.ones((3, 3)),
                                             mode="constant") > 0 for m in range(2)])
        np.testing.assert_allclose(result, np.where(touched, np.nan, expected), rtol=1e-12)


def test_subpixel_alignment_without_the_frames_before_it_warns(monkeypatch):
    rng = np.random.default_rng(8)
    counts = rng.poisson(30.0, size=(2, 2, 10, 10)).astype(np.uint16)
    _given_registration(monkeypatch, [[0.5, 0.3], [-0.25, 0.0]])
    aligned = align_frames(Acquisition.from_arrays(counts, LABELS), method="subpixel")
    for cut in (aligned.replace(unaligned=None),
                aligned.with_step("an_unknown_step", {})):  # counts may have changed
        total = accumulate(cut)
        with pytest.warns(KernelVarianceWarning, match="understates"):
            result = total.kernel_variance(3)
        np.testing.assert_allclose(result[0], ndimage.convolve(
            total.variance[0], np.ones((3, 3)), mode="constant"), rtol=1e-12)
        np.testing.assert_array_equal(total.kernel_variance(1), total.variance)
    # an accumulation whose variance was replaced no longer matches its frames
    total = accumulate(aligned)
    altered = Accumulation(counts=total.counts, variance=total.variance * 2,
                           coverage=total.coverage, raw_counts=total.raw_counts,
                           frames=total.frames, channels=total.channels,
                           pixel_size_um=total.pixel_size_um, history=total.history,
                           _alignment=total._alignment)
    with pytest.warns(KernelVarianceWarning):
        altered.kernel_variance(3)
    with pytest.raises(ValueError, match="kernel"):
        total.kernel_variance(2)
    with pytest.raises(ValueError, match="masses"):
        total.kernel_variance(3, [2])


@pytest.mark.slow
def test_kernel_errors_match_the_scatter_after_subpixel_alignment(monkeypatch):
    """Monte Carlo: homogeneous Poisson frames (20 frames, 30 and 15 counts per pixel),
    aligned by random sub-pixel translations; the predicted sigma of the box-summed
    counts and of the ratio against their scatter over realisations, at interior
    pixels (pooled variances), for 1 x 1, 3 x 3 and 5 x 5. Summing the pixel variances
    gives 0.78 (3 x 3) and 0.74 (5 x 5) of the scatter here."""
    rng = np.random.default_rng(2024)
    n_frames, size, n_real = 20, 40, 120
    translations = rng.uniform(-1.5, 1.5, size=(n_frames, 2))
    assert np.all(translations != np.round(translations))
    _given_registration(monkeypatch, translations)
    inner = (slice(8, -8), slice(8, -8))
    kernels = (1, 3, 5)
    boxed = {k: [] for k in kernels}
    ratios = {k: [] for k in kernels}
    for _ in range(n_real):
        counts = rng.poisson([30.0, 15.0], size=(n_frames, size, size, 2))
        acquisition = Acquisition.from_arrays(
            counts.transpose(0, 3, 1, 2).astype(np.uint16), LABELS)
        total = accumulate(align_frames(acquisition, method="subpixel"))
        for k in kernels:
            minor = evaluate(total, "13C", kernel=k, min_counts=0)
            ratio = evaluate(total, "13C/12C", kernel=k, min_counts=0)
            boxed[k].append((minor.value[inner], minor.sigma[inner]))
            ratios[k].append((ratio.value[inner], ratio.sigma[inner]))
    for k in kernels:
        for name, runs in (("box sum", boxed[k]), ("ratio", ratios[k])):
            values = np.array([value for value, _ in runs])
            sigmas = np.array([sigma for _, sigma in runs])
            scatter = values.var(axis=0, ddof=1).mean()
            predicted = (sigmas ** 2).mean()
            assert np.sqrt(predicted / scatter) == pytest.approx(1.0, abs=0.05), (k, name)
