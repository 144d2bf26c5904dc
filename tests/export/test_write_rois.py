"""write_rois: an ImageJ rois.zip whose outlines ImageJ's rule (pixel centre inside; here
matplotlib's point-in-polygon) fills back to exactly the labels, classes as ImageJ groups
and OpenMIMS group entries; a LANS cells.mat as scipy reads it."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import roifile
from matplotlib.path import Path as MplPath
from scipy import io as sio
from scipy import ndimage

from napari_nanosims import write_rois
from napari_nanosims.io._java_serial import read_stream
from napari_nanosims.io.roi_files import read_roi_labels


def _labels():
    """Blobs with holes, diagonal touches and several parts, plus a 1-pixel ROI."""
    rng = np.random.default_rng(4)
    blobs = ndimage.gaussian_filter(rng.random((50, 60)), 2) > 0.52
    labels, _ = ndimage.label(blobs, structure=np.ones((3, 3)))
    labels[20:30, 20:30] = 40
    labels[24:26, 24:26] = 0  # a hole
    labels[45:47, 2:4] = 41
    labels[48, 50:53] = 41  # a second part of ROI 41
    labels[0, 0] = 42
    return labels.astype(np.int32)


def _fill(roi, shape):
    """Even-odd fill of every outline of one ROI by matplotlib (pixel centres)."""
    rows, columns = np.indices(shape)
    centres = np.c_[columns.ravel() + 0.5, rows.ravel() + 0.5]
    inside = np.zeros(len(centres), bool)
    for outline in roi.coordinates(multi=True):
        inside ^= MplPath(outline).contains_points(centres)
    return inside.reshape(shape)


def test_zip_outlines_fill_back_to_the_labels_with_their_classes(tmp_path):
    labels = _labels()
    present = [int(v) for v in np.unique(labels) if v]
    classes = {roi: ("cells" if roi % 3 else "control") for roi in present[:-1]}
    path = write_rois(labels, tmp_path / "a.rois.zip", classes)
    with zipfile.ZipFile(path) as archive:  # ImageJ reads the .roi entries only
        rois = [roifile.ImagejRoi.frombytes(archive.read(name))
                for name in archive.namelist() if name.endswith(".roi")]
    assert [roi.name for roi in rois] == [str(v) for v in present]
    groups = {"cells": 1, "control": 2}  # sorted class names -> ImageJ groups 1, 2...
    for roi, number in zip(rois, present, strict=True):
        np.testing.assert_array_equal(_fill(roi, labels.shape), labels == number)
        assert roi.group == groups.get(classes.get(number), 0)
    with zipfile.ZipFile(path) as archive:  # OpenMIMS's entries, as plain data
        group_map = read_stream(archive.read("group_map"))[0]["data"][1:]
        names = read_stream(archive.read("group"))[0]["data"][1:]
    assert dict(zip(group_map[0::2], group_map[1::2], strict=True)) == {str(k): v
                                                           for k, v in classes.items()}
    assert names == ["cells", "control"]
    back, back_classes = read_roi_labels(path, labels.shape)  # and our reader agrees
    np.testing.assert_array_equal(back > 0, labels > 0)
    assert back_classes == {present.index(k) + 1: v for k, v in classes.items()}


def test_cells_mat_and_refusals(tmp_path):
    labels = _labels()
    write_rois(labels, tmp_path / "cells.mat")
    np.testing.assert_array_equal(sio.loadmat(tmp_path / "cells.mat")["Maskimg"], labels)
    with pytest.raises(FileExistsError):
        write_rois(labels, tmp_path / "cells.mat")
    with pytest.raises(ValueError, match="writes .zip"):
        write_rois(labels, tmp_path / "cells.csv")
    with pytest.raises(ValueError, match="2-D image of whole numbers"):
        write_rois(labels.astype(float), tmp_path / "x.zip")
    with pytest.raises(ValueError, match="not in the labels"):
        write_rois(labels, tmp_path / "x.zip", {999: "a"})
    assert not (tmp_path / "x.zip").exists()
