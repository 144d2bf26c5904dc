"""ROI statistics on exact counts: ROIs mapped back into unshifted frames, the dispersion
test on raw counts (calibrated after every correction and sub-pixel alignment), and ROI
sizes that leave out uncovered pixels. Statistical claims are checked by seeded
simulation; every expected number is computed here, independently of the library."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy import ndimage, stats

from napari_nanosims import (
    STEPS,
    Acquisition,
    accumulate,
    align_frames,
    correct_dead_time,
    correct_em_yield,
    correct_qsa,
    depth_profile,
    roi_table,
    subtract_em_background,
)
from napari_nanosims.model import channels_from_header
from napari_nanosims.steps.corrections import CorrectionWarning
from napari_nanosims.testing.simulate import make_scene, simulate_drift

MINOR, MAJOR = "12C 15N", "12C 14N"
RATIO = "12C15N/12C14N"
RATIO_TEXT = "12C 15N/12C 14N"


def _with_header(acquisition: Acquisition, **fields) -> Acquisition:
    """The same counts under a header with ``fields`` changed (EM yields, backgrounds)."""
    header = dataclasses.replace(acquisition.header, **fields)
    return Acquisition(header=header, channels=channels_from_header(header),
                       counts=acquisition.counts)


def _cells(seed=0, n_cells=200, n_frames=20, minor_per_frame=300.0, ratio=0.1, size=5,
           drift_step_px=0.0, ratio_per_frame=None, dwell_time_us=1000.0):
    """Square cells of ``size`` px on an empty background, at jittered places (so that
    alignment has a unique answer), with random brightness and one isotope ratio.

    Frames sample the scene at a drifting position (a median-centred random walk of
    ``drift_step_px`` per frame, bilinear): the aligned image then lies on the scene, so
    the true cell masks are the ROIs. Returns (acquisition, labels).
    """
    rng = np.random.default_rng(seed)
    slot, columns = size + 3, 20
    rows = -(-n_cells // columns)
    scene = np.zeros((rows * slot, columns * slot))
    labels = np.zeros(scene.shape, np.int32)
    for k in range(n_cells):
        row, column = divmod(k, columns)
        dy, dx = rng.integers(1, slot - size, size=2)
        y, x = row * slot + dy, column * slot + dx
        scene[y:y + size, x:x + size] = rng.uniform(0.6, 1.4) / size ** 2
        labels[y:y + size, x:x + size] = k + 1
    major = minor_per_frame / ratio * scene
    path = np.cumsum(rng.normal(0, drift_step_px, size=(n_frames, 2)), axis=0)
    path -= np.median(path, axis=0)
    ratios = np.full(n_frames, ratio) if ratio_per_frame is None else ratio_per_frame
    frames = []
    for k in range(n_frames):
        expected = ndimage.shift(major, path[k], order=1) if drift_step_px else major
        frames.append([rng.poisson(ratios[k] * expected), rng.poisson(expected)])
    counts = np.asarray(frames, dtype=np.uint32)
    return Acquisition.from_arrays(counts, [MINOR, MAJOR], dwell_time_us=dwell_time_us), labels


def _textured(seed=0, n_frames=20, major_per_px=150.0, ratio=0.1, window=72, tile=3,
              margin=4, max_drift_px=2.5):
    """A textured field (for registration) with one isotope ratio everywhere, drifting by
    up to ``max_drift_px`` with sub-pixel parts; ROIs are ``tile`` x ``tile`` squares."""
    field = make_scene("mineral", (window + 24, window + 24), seed=seed)
    simulation = simulate_drift(field, n_frames, major_per_px, window=window, step_px=None,
                                seed=seed + 100, max_drift_px=max_drift_px)
    rng = np.random.default_rng(seed + 200)
    minor = rng.poisson(ratio * simulation["truth"])
    counts = np.stack([minor, simulation["frames"]], axis=1).astype(np.uint32)
    labels = np.zeros((window, window), np.int32)
    inner = window - 2 * margin
    yy, xx = np.indices((inner, inner))
    labels[margin:margin + inner, margin:margin + inner] = \
        1 + (yy // tile) * (inner // tile) + xx // tile
    return Acquisition.from_arrays(counts, [MINOR, MAJOR]), labels


def _whole_pixel_drift(seed=0, n_frames=7, major_per_px=150.0, ratio=0.1, window=72,
                       max_drift_px=3):
    """Cells drifting by whole pixels (windows of a 'cells' scene at integer offsets, which
    the whole-pixel method finds exactly; an odd number of frames so that the median
    offset is whole); one isotope ratio; 6 x 6 px ROI tiles."""
    rng = np.random.default_rng(seed)
    margin = 12
    field = make_scene("cells", (window + 2 * margin,) * 2, seed=seed)
    field *= major_per_px / field.mean()
    offsets = rng.integers(-max_drift_px, max_drift_px + 1, size=(n_frames, 2))
    offsets -= np.median(offsets, axis=0).astype(int)
    truth = np.stack([field[margin + dy:margin + dy + window, margin + dx:margin + dx + window]
                      for dy, dx in offsets])
    counts = np.stack([rng.poisson(ratio * truth), rng.poisson(truth)], axis=1)
    yy, xx = np.indices((window, window))
    labels = (1 + (yy // 6) * (window // 6) + xx // 6).astype(np.int32)
    return Acquisition.from_arrays(counts.astype(np.uint32), [MINOR, MAJOR]), labels, offsets


def _ratio_rows(table):
    return table[table.quantity == RATIO_TEXT]


def _mapped_back_sums(raw_frames, labels, translations):
    """(frames, channels, rois) sums of unshifted frames over each ROI mapped back.

    Written from the other side than the library: every pixel p of ROI r in the aligned
    image takes the raw pixel q = p - s, s = floor(t + 0.5) the frame's translation to
    the nearest pixel (content moves from q to q + t), when q is inside the frame.
    """
    n_frames, n_channels, height, width = raw_frames.shape
    n = labels.max()
    ys, xs = np.nonzero(labels)
    roi = labels[ys, xs]
    sums = np.zeros((n_frames, n_channels, n))
    for k in range(n_frames):
        sy, sx = np.floor(np.asarray(translations[k], dtype=float) + 0.5).astype(int)
        qy, qx = ys - sy, xs - sx
        inside = (qy >= 0) & (qy < height) & (qx >= 0) & (qx < width)
        for c in range(n_channels):
            np.add.at(sums[k, c], roi[inside] - 1, raw_frames[k, c, qy[inside], qx[inside]])
    return sums


def _binomial_chi2(a, b):
    """Pearson chi-square of A_k ~ Binomial(A_k + B_k, p), p = sum A / sum(A + B)."""
    n = a + b
    p = a.sum(axis=0) / n.sum(axis=0)
    return ((a - n * p) ** 2 / (n * p * (1 - p))).sum(axis=0)


# -- exact counts after alignment ------------------------------------------------------
def test_rois_are_mapped_back_into_the_unshifted_frames_after_subpixel_alignment():
    acq, labels = _textured(seed=3, n_frames=8)
    aligned = align_frames(acq, method="subpixel")
    translations = aligned.translations
    assert np.any(np.abs(translations - np.round(translations)) > 0.1)  # really sub-pixel
    raw = np.asarray(acq.counts, dtype=float)
    expected = _mapped_back_sums(raw, labels, translations)
    profile = depth_profile(aligned, labels, MINOR)
    for frame in (0, 3, 7):
        got = profile[profile.frame == frame].sort_values("roi")
        np.testing.assert_allclose(got.value, expected[frame, 0])
        np.testing.assert_allclose(got.sigma, np.sqrt(expected[frame, 0]))  # Poisson
        assert np.all(got.value == np.round(got.value))  # whole counts, not interpolated
    table = roi_table(aligned, labels, [RATIO])
    a, b = expected.sum(axis=0)
    rows = _ratio_rows(table).sort_values("roi")
    np.testing.assert_allclose(rows.value, a / b)
    np.testing.assert_allclose(rows.sigma, a / b * np.sqrt(1 / a + 1 / b))
    np.testing.assert_allclose(rows.chi2, _binomial_chi2(expected[:, 0], expected[:, 1]))
    channel = table[table.quantity == MAJOR].sort_values("roi")
    np.testing.assert_allclose(channel.value, b)
    assert rows.exact_counts.all()
    assert aligned.unaligned is acq  # the acquisition as it was before alignment


def test_whole_pixel_alignment_maps_back_to_the_aligned_sums():
    # Whole-pixel shifts move counts without mixing them: the ROI sums over the aligned
    # frames and over the ROIs mapped back into the raw frames must agree exactly. A sign
    # error in the mapping would move every ROI by twice the drift.
    acq, labels, offsets = _whole_pixel_drift(seed=5)
    aligned = align_frames(acq, method="sequential", channel=MAJOR)
    np.testing.assert_array_equal(aligned.translations, offsets)  # frame k content moves by
    assert np.abs(offsets).max() >= 2                              # +offset when aligned
    aligned_counts = np.asarray(aligned.counts, dtype=float)
    profile = depth_profile(aligned, labels, MAJOR)
    for frame in range(7):
        direct = np.bincount(labels.ravel(), weights=aligned_counts[frame, 1].ravel())[1:]
        got = profile[profile.frame == frame].sort_values("roi").value
        np.testing.assert_array_equal(got, direct)


def test_frames_left_out_after_alignment_keep_their_own_translations():
    acq, labels = _textured(seed=4, n_frames=8)
    aligned = align_frames(acq, method="subpixel")
    fewer = STEPS["exclude_frames"](aligned, frames="1, 4-5", flagged=False)
    kept = [0, 2, 3, 6, 7]
    raw = np.asarray(acq.counts, dtype=float)[kept]
    expected = _mapped_back_sums(raw, labels, aligned.translations[kept])
    profile = depth_profile(fewer, labels, MINOR)
    assert sorted(profile.frame.unique()) == list(range(5))
    for position in range(5):
        got = profile[profile.frame == position].sort_values("roi").value
        np.testing.assert_allclose(got, expected[position, 0])
    table = roi_table(fewer, labels, [RATIO], frames=[1, 3])  # frames 2 and 6 of the file
    a, b = expected[[1, 3]].sum(axis=0)
    rows = _ratio_rows(table).sort_values("roi")
    np.testing.assert_allclose(rows.value, a / b)
    assert (rows.frames_used == 2).all() and (rows.dof == 1).all()


def test_a_correction_after_whole_pixel_alignment_uses_the_aligned_frames():
    acq, labels, offsets = _whole_pixel_drift(seed=6)
    aligned = align_frames(acq, method="sequential", channel=MAJOR)
    assert np.abs(aligned.translations).max() >= 2
    corrected = correct_dead_time(aligned, dead_times_ns=44.0)
    table = roi_table(corrected, labels, [RATIO])
    counts = np.asarray(corrected.counts, dtype=float).sum(axis=0)
    variance = np.asarray(corrected.variance, dtype=float).sum(axis=0)
    a = np.bincount(labels.ravel(), weights=counts[0].ravel())[1:]
    b = np.bincount(labels.ravel(), weights=counts[1].ravel())[1:]
    va = np.bincount(labels.ravel(), weights=variance[0].ravel())[1:]
    vb = np.bincount(labels.ravel(), weights=variance[1].ravel())[1:]
    rows = _ratio_rows(table).sort_values("roi")
    np.testing.assert_allclose(rows.value, a / b)
    np.testing.assert_allclose(rows.sigma, a / b * np.sqrt(va / a ** 2 + vb / b ** 2))
    assert rows.exact_counts.all()
    # the binomial test still runs on the raw (shifted by whole pixels) counts
    raw = np.asarray(corrected.raw_counts, dtype=float)
    per_frame = np.stack([[np.bincount(labels.ravel(), weights=raw[k, c].ravel())[1:]
                           for c in range(2)] for k in range(7)])
    np.testing.assert_allclose(rows.chi2, _binomial_chi2(per_frame[:, 0], per_frame[:, 1]))


def test_subpixel_shifted_counts_without_the_unshifted_frames_warn():
    acq, labels = _textured(seed=7, n_frames=5)
    aligned = align_frames(acq, method="subpixel")
    with pytest.warns(UserWarning, match="interpolated counts.*approximate"):
        table = roi_table(aligned.replace(unaligned=None), labels, [RATIO])
    assert not table.exact_counts.any()
    with pytest.warns(UserWarning, match="interpolated counts.*approximate"):
        summed = roi_table(accumulate(aligned), labels, [RATIO])
    assert not summed.exact_counts.any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the aligned acquisition itself: exact, no warning
        assert roi_table(aligned, labels, [RATIO]).exact_counts.all()


def test_roi_sigma_matches_the_scatter_after_subpixel_alignment():
    # One isotope ratio everywhere; 3 x 3 px ROIs on a textured field that drifts by up to
    # 2.5 px with sub-pixel parts. The std of (value - true)/sigma over all ROIs must be 1.
    # Summing the interpolated frames read 0.89 here (sigma 12 % too large).
    z = []
    for seed in range(6):
        acq, labels = _textured(seed=seed)
        rows = _ratio_rows(roi_table(align_frames(acq, method="subpixel"), labels, [RATIO]))
        z.append((rows.value - 0.1) / rows.sigma)
    z = np.concatenate(z)
    assert len(z) > 2500
    assert np.std(z) == pytest.approx(1.0, abs=0.05), np.std(z)
    assert np.mean(z) == pytest.approx(0.0, abs=0.1)


# -- the dispersion test -----------------------------------------------------------------
def _dead_time(acq):
    return correct_dead_time(acq)


def _yield(acq):
    return correct_em_yield(correct_dead_time(_with_header(
        acq, em_yields_percent=(70.0,) * 7)))


def _qsa(acq):
    return correct_qsa(correct_dead_time(acq), beta=0.7, primary_current_pA=0.05)


def _background(acq):
    return subtract_em_background(correct_dead_time(acq), background_cps=3000.0)


def _everything_then_subpixel(acq):
    corrected = correct_em_yield(correct_qsa(subtract_em_background(correct_dead_time(
        _with_header(acq, em_yields_percent=(70.0,) * 7)), background_cps=3000.0),
        beta=0.7, primary_current_pA=0.05))
    return align_frames(corrected, method="subpixel")


PIPELINES = {"dead time": (_dead_time, 0.0, 1.0, 10.0),
             "EM yield 70 %": (_yield, 0.0, 0.1, 1000.0),
             "QSA": (_qsa, 0.0, 0.1, 1000.0),
             "background": (_background, 0.0, 0.1, 1000.0),
             "all, then sub-pixel alignment": (_everything_then_subpixel, 0.3, 0.1, 1000.0)}


@pytest.mark.parametrize("pipeline", list(PIPELINES))
def test_homogeneous_cells_give_uniform_p_values_after_each_correction(pipeline):
    correct, drift_step_px, ratio, dwell_time_us = PIPELINES[pipeline]
    # 200 cells, 20 frames, 300 counts of the minor mass per frame and cell; the dead-time
    # case has both masses at 7-17 counts per pixel in 10 us (n tau / t of 3-8 %)
    acq, labels = _cells(seed=11, drift_step_px=drift_step_px, ratio=ratio,
                         dwell_time_us=dwell_time_us)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", CorrectionWarning)  # a few pixels above 10 % dead
        processed = correct(acq)
    rows = _ratio_rows(roi_table(processed, labels, [RATIO]))
    assert len(rows) == 200 and (rows.dof == 19).all()
    flagged = (rows.p_value < 0.05).mean()
    # binomial limits of 5 % for 200 cells: 2 %-9 % (99.6 % two-sided)
    assert 0.02 <= flagged <= 0.09, flagged
    assert stats.kstest(rows.p_value, "uniform").pvalue > 0.01
    assert rows.exact_counts.all()
    # where over-dispersed, sigma_inflated = sigma sqrt(MSWD), else sigma
    expected = rows.sigma * np.sqrt(np.maximum(rows.chi2 / rows.dof, 1.0))
    np.testing.assert_allclose(rows.sigma_inflated, expected)


def test_cells_whose_ratio_changes_between_frames_are_flagged_after_corrections():
    ratios = np.where(np.arange(20) % 2, 0.12, 0.08)
    acq, labels = _cells(seed=12, ratio_per_frame=ratios, drift_step_px=0.3)
    rows = _ratio_rows(roi_table(_everything_then_subpixel(acq), labels, [RATIO]))
    assert (rows.p_value < 1e-3).mean() > 0.95
    assert (rows.sigma_inflated > 1.5 * rows.sigma).mean() > 0.95


FUNCTIONS_OF_THE_RATIO = ["100*12C15N/(12C15N+12C14N)", "1000*12C15N/12C14N",
                          "12C15N/(12C14N+12C15N)", "delta(12C15N/12C14N, 0.0036765)",
                          "12C14N/12C15N", "log(12C15N/12C14N)",
                          "(12C15N/12C14N)/(1+12C15N/12C14N)"]


def test_the_binomial_test_covers_every_function_of_the_two_mass_ratio():
    acq, labels = _cells(seed=13, n_cells=40, n_frames=8)
    corrected = _yield(acq)
    raw = np.asarray(acq.counts, dtype=float)
    a = np.stack([np.bincount(labels.ravel(), weights=raw[k, 0].ravel())[1:]
                  for k in range(8)])
    b = np.stack([np.bincount(labels.ravel(), weights=raw[k, 1].ravel())[1:]
                  for k in range(8)])
    expected = _binomial_chi2(a, b)
    table = roi_table(corrected, labels, FUNCTIONS_OF_THE_RATIO)
    quantities = [q for q in table.quantity.unique() if q not in (MINOR, MAJOR)]
    assert len(quantities) == len(FUNCTIONS_OF_THE_RATIO)
    for quantity in quantities:
        rows = table[table.quantity == quantity].sort_values("roi")
        np.testing.assert_allclose(rows.chi2, expected, err_msg=quantity)
        assert (rows.dof == 7).all()


def test_expressions_of_three_masses_use_a_variance_weighted_chi_square():
    rng = np.random.default_rng(14)
    n_frames, n_rois, size = 12, 300, 16
    # 13C, 12C and 12C2 per ROI pixel: homogeneous composition, a few hundred counts
    means = np.array([20.0, 60.0, 90.0])
    counts = rng.poisson(means[None, :, None, None],
                         size=(n_frames, 3, n_rois, size)).astype(np.uint32)
    acq = correct_dead_time(Acquisition.from_arrays(counts, ["13C", "12C", "12C2"]))
    labels = np.repeat(np.arange(1, n_rois + 1), size).reshape(n_rois, size).astype(np.int32)
    table = roi_table(acq, labels, ["13C/(12C+2*12C2)"])
    rows = table[~table.quantity.isin(acq.labels)].sort_values("roi")
    c = np.asarray(acq.counts, dtype=float).sum(axis=3)  # (frames, masses, rois)
    v = np.asarray(acq.variance, dtype=float).sum(axis=3)
    x = c[:, 0] / (c[:, 1] + 2 * c[:, 2])
    # d/d13C = 1/D, d/d12C = -x/D, d/d12C2 = -2x/D with D = 12C + 2 12C2
    d = c[:, 1] + 2 * c[:, 2]
    s2 = v[:, 0] / d ** 2 + (x / d) ** 2 * v[:, 1] + (2 * x / d) ** 2 * v[:, 2]
    w = 1 / s2
    mean = (w * x).sum(axis=0) / w.sum(axis=0)
    np.testing.assert_allclose(rows.chi2, (w * (x - mean) ** 2).sum(axis=0), rtol=1e-9)
    assert (rows.dof == n_frames - 1).all()
    assert stats.kstest(rows.p_value, "uniform").pvalue > 0.01


# -- sizes leave out uncovered pixels ----------------------------------------------------
def test_roi_size_and_centroid_count_only_covered_pixels():
    acq, _, offsets = _whole_pixel_drift(seed=8)
    aligned = align_frames(acq, method="sequential", channel=MAJOR)
    frame = int(np.argmax(np.abs(offsets).sum(axis=1)))  # the frame that moved most
    dy, dx = aligned.translations[frame]
    assert abs(dy) >= 2 and abs(dx) >= 1
    # pixel p of the aligned frame shows raw pixel p - t: covered when that is inside
    yy, xx = np.indices(aligned.shape[2:])
    covered = ((yy - dy >= 0) & (yy - dy < yy.shape[0]) & (xx - dx >= 0)
               & (xx - dx < xx.shape[1]))
    labels = np.zeros(covered.shape, np.int32)
    labels[:10, :10] = 1  # top left corner
    labels[-10:, -10:] = 2  # bottom right corner: one of the two is partly uncovered
    labels[30:40, 30:40] = 3  # the middle: covered
    table = roi_table(aligned, labels, [RATIO], frames=[frame])
    px = aligned.pixel_size_um
    for roi in (1, 2, 3):
        inside = (labels == roi) & covered
        row = table[(table.roi == roi) & (table.quantity == RATIO_TEXT)].iloc[0]
        assert row.n_pixels == inside.sum()
        assert row.area_um2 == pytest.approx(inside.sum() * px ** 2)
        assert row.equivalent_diameter_um == pytest.approx(2 * np.sqrt(inside.sum() / np.pi)
                                                           * px)
        ys, xs = np.nonzero(inside)
        assert row.centroid_y_um == pytest.approx((ys.mean() + 0.5) * px)
        assert row.centroid_x_um == pytest.approx((xs.mean() + 0.5) * px)
    assert min(table[table.roi == 1].n_pixels.iloc[0], table[table.roi == 2].n_pixels.iloc[0]) \
        < 100
    # the same from the accumulation of that frame, whose uncovered pixels are NaN
    total = accumulate(aligned, frames=[frame])
    summed = roi_table(total, labels)
    for roi in (1, 2, 3):
        assert summed[summed.roi == roi].n_pixels.iloc[0] == ((labels == roi) & covered).sum()
