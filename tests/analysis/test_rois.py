"""ROI statistics: segmentation, ratios of sums with errors, the dispersion test, profiles."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs_shared, real_file
from scipy import stats

from napari_nanosims import (
    Acquisition,
    accumulate,
    depth_profile,
    make_demo_im,
    open_acquisition,
    roi_table,
    segment_rois,
)


def _iou_matches(found, truth, min_area_px=10):
    """Truth cells matched with IoU > 0.5 (cells cut by the field edge to fewer than
    ``min_area_px`` pixels are not counted: segment_rois drops such specks by design)."""
    matched = total = 0
    for k in range(1, truth.max() + 1):
        cell = truth == k
        if cell.sum() < min_area_px:
            continue
        total += 1
        best = max(((cell & (found == i)).sum() / (cell | (found == i)).sum()
                    for i in np.unique(found[cell]) if i > 0), default=0.0)
        matched += best > 0.5
    return matched, total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segment_rois_finds_the_demo_cells(tmp_path, seed):
    truth = make_demo_im(tmp_path / "one.im", seed=seed, n_frames=1)
    image = np.asarray(open_acquisition(truth["path"]).counts[0, 2], dtype=float)
    labels = segment_rois(image)
    assert labels.dtype == np.int32 and labels.min() == 0
    assert set(np.unique(labels)) == set(range(labels.max() + 1))  # 1..N, no gaps
    matched, total = _iou_matches(labels, truth["cells"])
    assert matched >= 0.9 * total, (matched, total)
    with pytest.raises(ValueError, match="method"):
        segment_rois(image, method="magic")


@needs_shared
def test_roi_table_against_sums_on_a_real_file():
    acq = open_acquisition(real_file("OpenMIMS_doc_051117_05-32dRe-03b.im"))
    counts = np.asarray(acq.counts, dtype=float)[0]
    labels = np.zeros(counts.shape[1:], np.int32)
    labels[20:60, 30:90] = 1
    labels[150:200, 100:140] = 2
    table = roi_table(acq, labels, ["12C15N/12C14N", "13C/(12C+13C)"])
    px = acq.pixel_size_um
    for roi in (1, 2):
        inside = labels == roi
        a, b, c12, c13 = (counts[k][inside].sum() for k in (3, 2, 0, 1))
        row = table[(table.roi == roi) & (table.quantity == "12C 15N/12C 14N")].iloc[0]
        assert row.value == pytest.approx(a / b)
        assert row.sigma == pytest.approx(a / b * np.sqrt(1 / a + 1 / b))
        assert row.n_pixels == inside.sum()
        assert row.area_um2 == pytest.approx(inside.sum() * px ** 2)
        ys, xs = np.nonzero(inside)
        assert row.centroid_y_um == pytest.approx((ys.mean() + 0.5) * px)
        assert row.centroid_x_um == pytest.approx((xs.mean() + 0.5) * px)
        fraction = table[(table.roi == roi) & (table.quantity == "13C/(12C+13C)")].iloc[0]
        assert fraction.value == pytest.approx(c13 / (c12 + c13))
        channel = table[(table.roi == roi) & (table.quantity == "12C")].iloc[0]
        assert channel.value == c12 and channel.sigma == pytest.approx(np.sqrt(c12))
        assert np.isnan(row.chi2)  # one frame: no dispersion test


def test_ratio_of_sums_is_unbiased_where_the_mean_of_pixel_ratios_is_not():
    rng = np.random.default_rng(3)
    true_ratio, b_mean = 0.2, 8.0
    b = rng.poisson(b_mean, size=(1, 200, 200))
    a = rng.poisson(true_ratio * b_mean, size=(1, 200, 200))
    counts = np.stack([a, b], axis=1).astype(np.uint32)
    acq = Acquisition.from_arrays(counts, ["13C", "12C"])
    labels = np.repeat(np.arange(1, 201), 200).reshape(200, 200).T.astype(np.int32)
    table = roi_table(accumulate(acq), labels, ["13C/12C"])
    ours = table[table.quantity == "13C/12C"]
    with np.errstate(divide="ignore", invalid="ignore"):
        pixel_ratios = np.where(b[0] > 0, a[0] / b[0], np.nan)
    mean_of_ratios = np.nanmean(pixel_ratios)
    # the mean of pixel ratios reads about 1/mu_B = 12 % high; the ratio of sums does not
    assert mean_of_ratios > true_ratio * 1.08
    assert np.mean(ours.value) == pytest.approx(true_ratio, abs=3 * np.std(ours.value)
                                                / np.sqrt(len(ours)))
    assert np.median(ours.sigma) == pytest.approx(np.std(ours.value), rel=0.15)


def _frames_with_rois(ratio_per_frame, n_rois=60, seed=0):
    rng = np.random.default_rng(seed)
    frames = len(ratio_per_frame)
    b = rng.poisson(40, size=(frames, 1, n_rois * 10))
    a = np.stack([rng.poisson(r * 40, size=(1, n_rois * 10)) for r in ratio_per_frame])
    counts = np.concatenate([a, b], axis=1).reshape(frames, 2, n_rois, 10).astype(np.uint32)
    labels = np.repeat(np.arange(1, n_rois + 1), 10).reshape(n_rois, 10).astype(np.int32)
    return Acquisition.from_arrays(counts, ["12C 15N", "12C 14N"]), labels


def test_dispersion_p_values_are_uniform_for_homogeneous_rois():
    acq, labels = _frames_with_rois([0.05] * 12, n_rois=400, seed=1)
    table = roi_table(acq, labels, ["12C15N/(12C15N+12C14N)"])
    rows = table[table.quantity == "12C 15N/(12C 15N+12C 14N)"]
    assert (rows.dof == 11).all() and (rows.frames_used == 12).all()
    assert stats.kstest(rows.p_value, "uniform").pvalue > 0.01
    assert rows.mswd.mean() == pytest.approx(1.0, abs=0.1)


def test_dispersion_flags_rois_whose_ratio_changes_between_frames():
    acq, labels = _frames_with_rois([0.03, 0.03, 0.09, 0.09, 0.03, 0.09] * 2, seed=2)
    rows = roi_table(acq, labels, ["12C15N/12C14N"])
    rows = rows[rows.quantity == "12C 15N/12C 14N"]
    assert (rows.p_value < 1e-3).mean() > 0.95


def test_depth_profile_per_roi_and_frame():
    acq, labels = _frames_with_rois([0.05, 0.1, 0.2], n_rois=5)
    profile = depth_profile(acq, labels, "12C15N/12C14N")
    assert len(profile) == 15 and list(profile.columns) == ["roi", "frame", "value", "sigma"]
    counts = np.asarray(acq.counts, dtype=float)
    first = profile[(profile.roi == 2) & (profile.frame == 1)].iloc[0]
    a, b = counts[1, 0, 1].sum(), counts[1, 1, 1].sum()
    assert first.value == pytest.approx(a / b)
    assert first.sigma == pytest.approx(a / b * np.sqrt(1 / a + 1 / b))
    with pytest.raises(ValueError, match="labels must have the image's shape"):
        roi_table(acq, np.zeros((3, 3), np.int32))


def test_recipe_with_segment_and_roi_table_steps_makes_one_table(tmp_path, capsys):
    import json

    import pandas as pd
    import tifffile

    from napari_nanosims.cli import main

    paths = [make_demo_im(tmp_path / f"cells_{k}.im", seed=k, n_frames=4)["path"]
             for k in (1, 2)]
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"steps": [
        {"step": "remove_hot_pixels", "parameters": {"max_repeat_fraction": 0.3}},
        {"step": "align_frames"},
        {"step": "segment", "parameters": {"min_area_px": 15}},
        {"step": "roi_table", "parameters": {"expressions": "12C15N/12C14N; 13C/(12C+13C)"}},
    ]}))
    out = tmp_path / "out"
    assert main(["process", *paths, "--recipe", str(recipe), "--out", str(out)]) == 0
    table = pd.read_csv(out / "roi_table.csv")
    assert list(table.columns[:3]) == ["file", "roi", "quantity"]
    assert set(table.file) == set(paths)
    assert {"12C 15N/12C 14N", "13C/(12C+13C)", "12C"} <= set(table.quantity)
    labels = tifffile.imread(out / "cells_1_rois.tif")
    per_file = pd.read_csv(out / "cells_1_roi_table.csv")
    assert per_file.roi.max() == labels.max() > 5
    ratio = per_file[per_file.quantity == "12C 15N/12C 14N"]
    assert ratio.dof.max() == 3  # 4 frames
