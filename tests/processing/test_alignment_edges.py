"""Alignment at the edges and its variance: drift beyond the padding drops content (never
wraps it around), and sub-pixel shifts move variances with the squared weights.

Expected values are written out here from the definitions: a translation t moves the
content of pixel p to p + t; a sub-pixel shift by t = k + f (k whole, 0 <= f < 1) sends
a pixel's content to p + k with weight 1 - f and to p + k + 1 with weight f per axis.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage, signal

from napari_nanosims import (
    Acquisition,
    ShiftBeyondPaddingWarning,
    accumulate,
    align_frames,
    apply_translations,
    correct_dead_time,
    iter_apply_translations,
)
from napari_nanosims.processing._frames import run_to_completion

BAND = 80.0  # counts per pixel in the bright bottom band
# Shifts beyond a small padding are what these tests are about; where they do not
# check the warning, it is expected.
BEYOND = pytest.mark.filterwarnings(
    "ignore::napari_nanosims.processing.alignment.ShiftBeyondPaddingWarning")


def _band_frame(height=40, width=32, band_rows=8, level=1.0):
    """One detector's frame: ``level`` everywhere, ``BAND`` in the bottom rows."""
    image = np.full((height, width), level)
    image[-band_rows:] = BAND
    return image


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShiftBeyondPaddingWarning)
        return function(*args, **kwargs)


def _expected_move(image, rows, cols, out_shape, origin):
    """``image`` moved by whole pixels (rows, cols) into zeros of ``out_shape``, its pixel
    (0, 0) first at ``origin``; what falls outside is dropped. Written with index
    arithmetic (no slicing helper of the code under test)."""
    out = np.zeros(out_shape)
    r, c = np.indices(image.shape)
    r, c = r + origin + rows, c + origin + cols
    inside = (r >= 0) & (r < out_shape[0]) & (c >= 0) & (c < out_shape[1])
    out[r[inside], c[inside]] = image[inside]
    return out


@pytest.mark.parametrize("translation", [(20, 0), (20.0, 3.0), (20.5, 0.0), (20.4, -0.3)])
@pytest.mark.parametrize("crop", [False, True])
def test_drift_beyond_the_padding_drops_the_band_instead_of_wrapping(translation, crop):
    padding = 8
    image = _band_frame()
    height, width = image.shape
    data = np.stack([image, image])[None].astype(np.float32)  # 1 frame, 2 detectors
    translations = np.array([translation])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shifted = run_to_completion(iter_apply_translations(data, translations, padding,
                                                            crop=crop))
    ones = np.ones((1, 1, height, width))
    coverage = _quiet(run_to_completion, iter_apply_translations(ones, translations, padding,
                                                                 crop=crop))[0, 0]
    variance = _quiet(run_to_completion, iter_apply_translations(
        data, translations, padding, crop=crop, variance=True))[0, 0]
    counts = shifted[0, 0]
    origin = 0 if crop else padding
    # Rows above origin + floor(translation) receive nothing: no count, no variance, no
    # coverage (the seed's roll put 80 counts/pixel of the band there).
    empty = origin + int(np.floor(translation[0]))
    assert np.all(counts[:empty] == 0) and np.all(variance[:empty] == 0)
    assert np.all(coverage[:empty] == 0)
    # The band (the last 8 rows) moves 20 rows down, past the padded frame: none stays.
    assert counts.max() <= 1.0 + 1e-12
    # The total is what stays inside: each input row q keeps the weight that lands in
    # rows 0..n-1 of the output (bilinear per axis, the rest dropped).
    out_shape = counts.shape
    kept = 0.0
    fy, fx = translation[0] % 1.0, translation[1] % 1.0
    ky, kx = int(np.floor(translation[0])), int(np.floor(translation[1]))
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            kept += wy * wx * _expected_move(image, ky + dy, kx + dx, out_shape, origin).sum()
    assert counts.sum() == pytest.approx(kept, rel=1e-12)
    assert counts.sum() < image[:-8].sum()  # rows above the band left the field too
    # the second detector moved with the first
    np.testing.assert_array_equal(shifted[0, 1], counts)
    # and the user was told, in words that say what happens now
    messages = [str(w.message) for w in caught
                if issubclass(w.category, ShiftBeyondPaddingWarning)]
    assert len(messages) == 1 and "dropped" in messages[0]


@BEYOND
def test_subpixel_shift_matches_the_bilinear_definition_and_keeps_entering_edges():
    """Against scipy's bilinear interpolation with zeros outside ('grid-constant': the
    pixel half outside still brings half its neighbour in), also with no padding: the
    old 'constant' mode lost the entering edge row there."""
    rng = np.random.default_rng(2)
    data = rng.poisson(7.0, size=(3, 2, 17, 13)).astype(np.uint16)
    translations = np.array([[0.5, -0.25], [-1.7, 2.3], [0.0, 0.6]])
    for padding in (0, 3):
        ours = apply_translations(data, translations, padding=padding)
        padded = np.pad(data.astype(np.float64), [(0, 0), (0, 0)] + [(padding, padding)] * 2)
        for index, t in enumerate(translations):
            expected = ndimage.shift(padded[index], (0.0, *t), order=1, mode="grid-constant",
                                     cval=0.0, prefilter=False)
            np.testing.assert_allclose(ours[index], expected, rtol=1e-12, atol=1e-12)


@BEYOND
def test_variance_moves_with_the_squared_weights():
    # One pixel of variance 1: a shift by (0.5, 0.3) spreads it over 2 x 2 pixels with
    # weights w = (1 - fy, fy) x (1 - fx, fx); its variance goes with w**2.
    impulse = np.zeros((1, 1, 7, 7))
    impulse[0, 0, 3, 3] = 1.0
    t = (2.5, -1.3)  # whole parts 2 and -2, fractions 0.5 and 0.7
    counts = apply_translations(impulse, np.array([t]), padding=0)[0, 0]
    variance = apply_translations(impulse, np.array([t]), padding=0, variance=True)[0, 0]
    w = np.outer([0.5, 0.5], [0.3, 0.7])  # rows 5, 6; columns 1, 2
    np.testing.assert_allclose(counts[5:7, 1:3], w, atol=1e-15)
    np.testing.assert_allclose(variance[5:7, 1:3], w ** 2, atol=1e-15)
    assert counts.sum() == pytest.approx(1.0) and variance.sum() == pytest.approx(
        (w ** 2).sum())
    # whole pixels: w is 0 or 1, variances move like counts, exactly and in their dtype
    whole = np.arange(2 * 3 * 6 * 5, dtype=np.float32).reshape(2, 3, 6, 5)
    moves = np.array([[1, -2], [0, 3]])
    np.testing.assert_array_equal(apply_translations(whole, moves, 4, variance=True),
                                  apply_translations(whole, moves, 4))
    with pytest.raises(ValueError, match="variance"):
        apply_translations(whole, moves, 4, variance="yes")


@BEYOND
def test_predicted_sigma_matches_the_scatter_after_a_subpixel_shift():
    """Monte Carlo: homogeneous Poisson frames shifted by (0.5, 0.3); sqrt of the
    shifted variance (each realisation's own counts as its Poisson variance) against the
    scatter of the shifted counts across realisations, pixel by pixel."""
    rng = np.random.default_rng(17)
    level, n_real = 30.0, 4000
    counts = rng.poisson(level, size=(n_real, 1, 12, 12)).astype(np.float64)
    t = np.tile([0.5, 0.3], (n_real, 1))
    shifted = apply_translations(counts, t, padding=0)[:, 0, 2:-2, 2:-2]
    predicted = apply_translations(counts, t, padding=0, variance=True)[:, 0, 2:-2, 2:-2]
    scatter = shifted.std(axis=0, ddof=1)
    sigma = np.sqrt(predicted.mean(axis=0))
    # sum of w**2 = (0.5**2 + 0.5**2) (0.7**2 + 0.3**2) = 0.29: sigma = sqrt(0.29 level)
    expected = np.sqrt(level * (0.5 ** 2 + 0.5 ** 2) * (0.7 ** 2 + 0.3 ** 2))
    assert np.mean(sigma) == pytest.approx(expected, rel=0.01)
    # per pixel within 5 % (one pixel's scatter over 4000 realisations: 1.1 % noise)
    np.testing.assert_allclose(sigma, scatter, rtol=0.05)
    assert np.mean(sigma / scatter) == pytest.approx(1.0, abs=0.01)


def _bilinear_reference(image, t, power, height, width):
    """``image`` moved by sub-pixel ``t`` with the 2 x 2 weights raised to ``power``, into
    (height, width) zeros: a full convolution with the weight kernel, then the whole-pixel
    move by floor(t) (scipy, not the code under test)."""
    ky, kx = int(np.floor(t[0])), int(np.floor(t[1]))
    fy, fx = t[0] - ky, t[1] - kx
    kernel = np.outer([1 - fy, fy], [1 - fx, fx]) ** power
    spread = signal.convolve2d(image, kernel, mode="full")  # pixel (0, 0) stays at (0, 0)
    return _expected_move(spread, ky, kx, (height, width), 0)


def _drifting_stack(rng, offsets, size=48, level=20.0):
    """Frames cut from a textured field at fractional (row, column) offsets."""
    yy, xx = np.mgrid[0:size + 16, 0:size + 16]
    field = level * (1 + ndimage.gaussian_filter(rng.random(yy.shape), 2) * 4
                     + 3 * np.exp(-((yy - 30) ** 2 + (xx - 26) ** 2) / 30.0))
    frames = [ndimage.shift(field, -np.asarray(o), order=1)[4:4 + size, 4:4 + size]
              for o in offsets]
    return np.stack([rng.poisson(np.stack([f, 0.5 * f])) for f in frames]).astype(np.uint32)


@pytest.mark.parametrize("corrected", [False, True])
def test_align_frames_step_moves_variance_with_squared_weights(corrected):
    rng = np.random.default_rng(31)
    counts = _drifting_stack(rng, [(0, 0), (0.5, -0.3), (1.2, 0.4), (-0.6, 0.9)])
    acquisition = Acquisition.from_arrays(counts, ["12C 14N", "12C 15N"], dwell_time_us=1000)
    if corrected:
        acquisition = correct_dead_time(acquisition)
    before = np.array(acquisition.counts, copy=True)
    aligned = align_frames(acquisition, method="subpixel", channel="12C 14N")
    translations = aligned.translations
    assert np.any(translations != np.round(translations))  # the sub-pixel path ran
    height, width = counts.shape[2:]
    # Poisson variance of raw counts is the counts; a correction carries its own.
    source = (np.asarray(acquisition.variance) if corrected
              else counts.astype(np.float64))
    for index, t in enumerate(translations):
        for mass in range(2):
            expected = _bilinear_reference(source[index, mass], t, 2, height, width)
            np.testing.assert_allclose(aligned.variance[index, mass], expected, rtol=1e-10,
                                       atol=1e-9)
            moved = _bilinear_reference(np.asarray(acquisition.counts[index, mass],
                                                   dtype=np.float64), t, 1, height, width)
            np.testing.assert_allclose(aligned.counts[index, mass], moved, rtol=1e-10,
                                       atol=1e-9)
        coverage = _bilinear_reference(np.ones((height, width)), t, 1, height, width)
        np.testing.assert_allclose(aligned.coverage[index], coverage, atol=1e-6)
    # the input is unchanged and whole-pixel alignment keeps the exact Poisson case
    np.testing.assert_array_equal(acquisition.counts, before)
    whole = align_frames(acquisition, method="sequential", channel="12C 14N")
    if corrected:
        assert whole.variance.dtype == np.asarray(acquisition.variance).dtype
    else:
        assert whole.variance is None


def _band_acquisition(rng, size=96, drift=20):
    """Three frames of a textured field: frames 0 and 1 see field rows 0..size-1, frame 2
    rows drift..drift+size-1. The alignment channel has the texture alone; the second
    mass also has a bright band below row ``size`` of the field (frame 2's last rows)."""
    texture = ndimage.gaussian_filter(rng.normal(size=(size + drift, size)), 2.5)
    # bright blobs (up to 30 counts) on a dark ground, as cells on a filter
    field = 0.5 + 25 * np.clip(texture / texture.std() - 1, 0, 1.2)
    banded = field.copy()
    banded[size:] = BAND
    frames = [(field[rows], banded[rows]) for rows in
              (slice(0, size), slice(0, size), slice(drift, drift + size))]
    counts = rng.poisson(np.array(frames)).astype(np.uint32)
    return Acquisition.from_arrays(counts, ["12C 14N", "32S"])


@pytest.mark.parametrize("method", ["sequential", "subpixel"])
def test_align_frames_with_drift_beyond_the_padding_leaves_the_top_dark(method):
    rng = np.random.default_rng(5)
    acquisition = _band_acquisition(rng)
    counts = np.asarray(acquisition.counts, dtype=np.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aligned = align_frames(acquisition, method=method, padding=8, channel="12C 14N")
    translations = np.asarray(aligned.translations, dtype=np.float64)
    # frame 2 shows the field 20 rows further down: moving it 20 rows down aligns it
    np.testing.assert_allclose(translations[2] - translations[0], [20, 0], atol=0.1)
    assert any(issubclass(w.category, ShiftBeyondPaddingWarning) for w in caught)
    rows = int(np.floor(translations[2, 0]))
    assert rows > 8  # beyond the padding
    frame = aligned.counts[2]
    # The band left the field: the top rows of frame 2 got nothing, and are uncovered.
    assert np.all(frame[:, :rows] == 0)
    assert np.all(aligned.coverage[2, :rows] == 0)
    total = accumulate(aligned)
    # there the sums are frames 0 and 1 alone, and never bright
    np.testing.assert_allclose(total.counts[:, :rows],
                               aligned.counts[0, :, :rows] + aligned.counts[1, :, :rows])
    mean = total.mean_per_frame()[1, :rows]
    assert np.nanmax(mean) < BAND / 2  # the wrapped band read 80 counts per pixel there
    # Frame 2 keeps exactly what stays inside (whole pixels: input rows 0..H-1-k; with a
    # sub-pixel part, the bilinear weights landing inside).
    height, width = frame.shape[1:]
    for mass in range(2):
        expected = _bilinear_reference(counts[2, mass], translations[2], 1, height, width)
        assert frame[mass].sum() == pytest.approx(expected.sum(), rel=1e-9)
        if translations[2, 0] >= 20:  # then all of the band (its last 20 rows) is gone
            assert frame[mass].sum() <= counts[2, mass, :-20].sum() * (1 + 1e-12)
