"""process_image_data and ``nanosims process`` on written, demo and real files."""

from __future__ import annotations

import json
import warnings

import numpy as np
import openformat.mims as seed
import pytest
import tifffile
from conftest import needs_shared, real_file

from napari_nanosims import (
    HotPixelBlindSpotWarning,
    iter_process_image_data,
    load_mims,
    process_image_data,
)
from napari_nanosims.cli import main
from napari_nanosims.testing.factory import poisson_counts
from napari_nanosims.testing.simulate import alignment_error_px

KEYS = {"total_lookup", "detector_names", "cleaned", "translations", "aligned", "image_shape",
        "image_size", "pixel_size", "alignment_detector_index", "se_detector_index"}


def _seed_steps(data, se_index, alignment_index, padding=8):
    """openformat's process_image_data, step by step, on an array (it cannot read files)."""
    data = data.astype(np.int32)
    cleaned = seed.remove_hot_pixels(np.delete(data, se_index, axis=1))
    cleaned = np.insert(cleaned, se_index, data[:, se_index], axis=1)
    translations = seed.infer_translations(cleaned[:, alignment_index], padding=padding)
    aligned = seed.apply_translations(cleaned, translations, padding=padding)
    return cleaned, translations, aligned[:, :, padding:-padding, padding:-padding]


def test_demo_identical_to_openformat_steps(demo_file):
    result = process_image_data(demo_file["path"], "12C14N")
    assert set(result) >= KEYS
    assert not any(key.endswith(":") for key in result)
    data = np.asarray(load_mims(demo_file["path"]).data)
    cleaned, translations, aligned = _seed_steps(data, 6, 2)
    np.testing.assert_array_equal(result["cleaned"], cleaned)
    np.testing.assert_array_equal(result["translations"], translations)
    np.testing.assert_array_equal(result["aligned"], aligned)
    np.testing.assert_array_equal(result["cleaned"][:, 6], data[:, 6])  # SE left raw
    assert result["detector_names"] == ["12C", "13C", "12C 14N", "12C 15N", "31P", "32S", "SE"]
    assert result["alignment_detector_index"] == 2 and result["se_detector_index"] == 6
    assert result["image_shape"] == (256, 256)
    assert result["pixel_size"] == pytest.approx(20.0 / 256)
    assert result["image_size"] == pytest.approx((20.0, 20.0))
    for index, name in enumerate(result["detector_names"]):
        np.testing.assert_array_equal(result["total_lookup"][name], aligned[:, index].sum(0))
    for frame, row, col in demo_file["hot_pixels"]:
        assert result["hot_pixels"][frame, row, col]


def test_subpixel_option_is_more_accurate(demo_file):
    result = process_image_data(demo_file["path"], "12C 14N",
                                infer_translations_kwargs={"method": "subpixel"})
    assert result["translations"].dtype == np.float64
    assert result["aligned"].dtype == np.float64
    error = alignment_error_px(result["translations"], demo_file["translations_px"])
    whole = alignment_error_px(process_image_data(demo_file["path"], "12C 14N")["translations"],
                               demo_file["translations_px"])
    assert error < 0.2 and error < whole


def test_file_without_se(im_factory):
    data = poisson_counts(12, 4)
    path = im_factory("nose.im", data, labels=["12C", "13C", "12C 14N", "12C 15N"])
    result = process_image_data(path, "12C 14N")
    assert result["se_detector_index"] is None
    np.testing.assert_array_equal(result["cleaned"], seed.remove_hot_pixels(data))


def test_fewer_ion_detectors_than_num_outliers_warns_and_clamps(im_factory):
    data = poisson_counts(12, 3)
    path = im_factory("two.im", data, labels=["12C", "12C 14N", "SE"])
    with pytest.warns(UserWarning, match="num_outliers=3.*has 2 ion channel"):
        result = process_image_data(path, "12C")
    assert result["remove_hot_pixels_kwargs"]["num_outliers"] == 2
    np.testing.assert_array_equal(result["cleaned"][:, :2],
                                  seed.remove_hot_pixels(data[:, :2], num_outliers=2))


def test_one_frame_file(im_factory):
    data = poisson_counts(1, 4)
    path = im_factory("one.im", data)
    with pytest.warns(HotPixelBlindSpotWarning):
        result = process_image_data(path, "12C")
    np.testing.assert_array_equal(result["aligned"], data)
    np.testing.assert_array_equal(result["translations"], [[0, 0]])


def test_argument_errors(im_factory):
    path = im_factory("e.im")
    with pytest.raises(ValueError, match=r"no channel '32S'; channels: '12C', '13C', "
                                         r"'12C 14N', 'SE'"):
        process_image_data(path, "32S")
    with pytest.raises(ValueError, match="padding"):
        process_image_data(path, "12C", infer_translations_kwargs={"padding": 4})
    with pytest.raises(ValueError, match="unknown remove_hot_pixels_kwargs"):
        process_image_data(path, "12C", remove_hot_pixels_kwargs={"threshold": 4})


@needs_shared
def test_real_files():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HotPixelBlindSpotWarning)
        result = process_image_data(real_file("OpenMIMS_doc_051117_05-32dRe-03b.im"), "12C14N")
    data = np.asarray(load_mims(real_file("OpenMIMS_doc_051117_05-32dRe-03b.im")).data)
    np.testing.assert_array_equal(result["aligned"], data)  # one frame: nothing moves
    assert result["pixel_size"] == pytest.approx(0.07809088427947598)
    with pytest.raises(ValueError, match="no pixel data"):
        process_image_data(real_file("grain mode cameca.im"), "12C 14N")


def test_iterator_reports_every_step_and_can_stop(demo_file):
    steps = []
    generator = iter_process_image_data(demo_file["path"], "12C 14N")
    while True:
        try:
            steps.append(next(generator))
        except StopIteration as stop:
            result = stop.value
            break
    assert [s for s in steps if s[0] == "hot pixels"][-1] == ("hot pixels", 20, 20)
    # 20 frames registered, then 20 frames shifted
    assert [s for s in steps if s[0] == "aligning"][-1] == ("aligning", 40, 40)
    assert steps[-1] == ("summing", 1, 1)
    assert result["aligned"].shape == (20, 7, 256, 256)
    generator = iter_process_image_data(demo_file["path"], "12C 14N")
    next(generator)
    generator.close()


def test_cli_process_writes_tiffs_and_record(demo_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["process", demo_file["path"], "--align", "12C14N", "--out", str(out)]) == 0
    stem = "cells_01"
    result = process_image_data(demo_file["path"], "12C 14N")
    with tifffile.TiffFile(out / f"{stem}_sums.ome.tif") as tif:
        sums = tif.asarray()
        assert tif.series[0].axes == "CYX"
        assert 'PhysicalSizeX="0.078125"' in tif.ome_metadata
        assert 'PhysicalSizeXUnit="µm"' in tif.ome_metadata
        assert "12C 14N" in tif.ome_metadata
    assert sums.dtype == np.uint32
    np.testing.assert_array_equal(sums, result["aligned"].sum(axis=0))
    stack = tifffile.imread(out / f"{stem}_aligned.ome.tif")
    np.testing.assert_array_equal(stack, result["aligned"])
    record = json.loads((out / f"{stem}_processing.json").read_text())
    assert record["translations_px"] == result["translations"].tolist()
    assert record["hot_pixels_per_frame"] == result["hot_pixels"].sum(axis=(1, 2)).tolist()
    steps = {entry["step"]: entry["parameters"] for entry in record["steps"]}
    assert steps["align_frames"]["channel"] == "12C14N"
    assert record["alignment_channel"] == "12C 14N"
    assert steps["remove_hot_pixels"]["outlier_factor"] == 1.999
    assert "napari-nanosims" in record["software"] and "numpy" in record["software"]
    assert "hot pixels replaced" in capsys.readouterr().out

    # Existing outputs are never replaced without --overwrite.
    before = (out / f"{stem}_sums.ome.tif").read_bytes()
    assert main(["process", demo_file["path"], "--align", "12C14N", "--out", str(out),
                 "--subpixel"]) == 1
    assert "outputs exist" in capsys.readouterr().err
    assert (out / f"{stem}_sums.ome.tif").read_bytes() == before
    assert main(["process", demo_file["path"], "--align", "12C14N", "--out", str(out),
                 "--subpixel", "--overwrite"]) == 0
    record = json.loads((out / f"{stem}_processing.json").read_text())
    steps = {entry["step"]: entry["parameters"] for entry in record["steps"]}
    assert steps["align_frames"]["method"] == "subpixel"
    assert tifffile.imread(out / f"{stem}_aligned.ome.tif").dtype == np.float32
    assert not list(out.glob("*.partial-*"))


def test_cli_process_bad_file_continues_with_the_others(tmp_path, im_factory, capsys):
    bad = tmp_path / "bad.im"
    bad.write_bytes(b"\0" * 300)
    good = im_factory("good.im")
    code = main(["process", str(bad), good, "--align", "12C", "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 1
    assert "bad.im" in captured.err and "good.im" in captured.out
    assert (tmp_path / "o" / "good_sums.ome.tif").exists()
    assert not (tmp_path / "o" / "bad_sums.ome.tif").exists()
    assert main(["process", good, "--align", "nope", "--out", str(tmp_path / "p")]) == 1
    assert "channels: '12C'" in capsys.readouterr().err
