"""ROI classes: by majority overlap with another image, by a rule (parsed, never
evaluated), by hand; the ``class`` column of the ROI table. Expected classes are worked
out here by hand from the images the tests draw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_nanosims import Acquisition, classes_from_labels, classes_from_rule, roi_table
from napari_nanosims.analysis.classes import parse_class_list, with_classes


def _two_by_two_table():
    """Four ROIs of 3 x 3 px with known counts of '15N' and '14N' in one frame."""
    labels = np.zeros((6, 6), np.int32)
    labels[:3, :3], labels[:3, 3:], labels[3:, :3], labels[3:, 3:] = 1, 2, 3, 4
    minor = np.zeros((6, 6))
    major = np.full((6, 6), 100.0)
    for roi, per_pixel in zip((1, 2, 3, 4), (0.0, 1.0, 2.0, 5.0), strict=True):
        minor[labels == roi] = per_pixel
    acq = Acquisition.from_arrays(np.stack([minor, major])[None], ["15N", "14N"])
    return acq, labels


def test_classes_from_labels_majority_overlap_and_min_overlap():
    labels = np.zeros((4, 10), np.int32)
    labels[:, 0:4] = 1       # 16 px
    labels[:, 5:7] = 2       # 8 px
    labels[0, 8:10] = 3      # 2 px
    fish = np.zeros_like(labels)
    fish[:, 0:3] = 7         # 12 of ROI 1's 16 px: 0.75
    fish[:, 3] = 9           # 4 px of ROI 1
    fish[:2, 5:7] = 4        # 4 of ROI 2's 8 px: 0.5 exactly
    fish[2:, 5] = 6          # 2 px
    fish[0, 8], fish[0, 9] = 5, 2   # ROI 3: a tie 1 px / 1 px -> the smaller value
    assert classes_from_labels(labels, fish) == {1: 7, 2: 4, 3: 2}
    # 0.5 is not enough when 0.6 is asked: ROI 2 and 3 lose their class
    assert classes_from_labels(labels, fish, min_overlap=0.6) == {1: 7}
    assert classes_from_labels(labels, np.zeros_like(labels)) == {}


def test_classes_from_labels_refuses_bad_images():
    labels = np.ones((3, 3), np.int32)
    with pytest.raises(ValueError, match="same pixels"):
        classes_from_labels(labels, np.ones((3, 4), np.int32))
    with pytest.raises(ValueError, match="class_image"):
        classes_from_labels(labels, np.ones((3, 3)) * 0.5)
    with pytest.raises(ValueError, match="min_overlap"):
        classes_from_labels(labels, labels, min_overlap=0)
    with pytest.raises(ValueError, match="min_overlap"):
        classes_from_labels(labels, labels, min_overlap=1.5)


def test_roi_table_class_column_on_every_row():
    acq, labels = _two_by_two_table()
    table = roi_table(acq, labels, ["15N/14N"], classes={1: "control", 4: "cells"})
    assert list(table.columns[:3]) == ["roi", "class", "quantity"]
    by_roi = table.groupby("roi")["class"].agg(lambda c: set(c))
    assert by_roi[1] == {"control"} and by_roi[4] == {"cells"}
    assert by_roi[2] == {None} and by_roi[3] == {None}
    assert len(table) == 12  # 4 ROIs x (2 channels + 1 expression)
    with pytest.raises(ValueError, match=r"\[9\]"):
        roi_table(acq, labels, ["15N/14N"], classes={9: "x"})
    with pytest.raises(ValueError, match="non-empty"):
        roi_table(acq, labels, ["15N/14N"], classes={1: ""})


def test_classes_from_rule_thresholds_each_roi():
    acq, labels = _two_by_two_table()
    table = roi_table(acq, labels, ["15N/14N"])
    # per-pixel ratios 0, 0.01, 0.02, 0.05 (9 px each: the ratio of sums is the same)
    assert classes_from_rule(table, "15N/14N > 0.015") == {3: "15N/14N > 0.015",
                                                          4: "15N/14N > 0.015"}
    assert classes_from_rule(table, "15N / 14N >= 0.01", name="lab", otherwise="ctl") == {
        1: "ctl", 2: "lab", 3: "lab", 4: "lab"}
    assert classes_from_rule(table, "15N/14N<1e-3", name="c") == {1: "c"}
    assert classes_from_rule(table, "15N/14N != 0", name="x") == {2: "x", 3: "x", 4: "x"}
    # a numeric column of the table: every ROI has 9 px
    assert classes_from_rule(table, "n_pixels == 9", name="nine") == {
        1: "nine", 2: "nine", 3: "nine", 4: "nine"}


@pytest.mark.parametrize("rule", ["__import__('os').system('true') > 1", "15N/14N >",
                                  "15N/14N > 0.01 or 1", "15N/14N => 0.01", "> 0.01",
                                  "15N/14N > nan"])
def test_classes_from_rule_refuses_anything_but_quantity_comparison_number(rule):
    acq, labels = _two_by_two_table()
    table = roi_table(acq, labels, ["15N/14N"])
    with pytest.raises(ValueError):
        classes_from_rule(table, rule)


def test_class_list_text_and_with_classes():
    assert parse_class_list("1-3, 7: control; 4: cells") == {
        1: "control", 2: "control", 3: "control", 7: "control", 4: "cells"}
    with pytest.raises(ValueError, match="ROIs"):
        parse_class_list("1-3 control")
    table = pd.DataFrame({"roi": [1, 2, 1], "quantity": ["a", "a", "b"],
                          "value": [1.0, 2.0, 3.0], "sigma": [0.1, 0.1, 0.1]})
    out = with_classes(table, {1: "x"})
    assert list(out["class"]) == ["x", None, "x"]
    assert "class" not in table.columns  # the input is not changed
