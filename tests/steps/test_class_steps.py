"""The recipe steps on the ROI table (classify, normalise, calibrate, assimilation,
compare_classes): the same results as the library calls, recorded in the history, the
input left alone, bounds shared with the library."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_nanosims import (
    STEPS,
    Acquisition,
    assimilation,
    calibrate,
    classes_from_labels,
    compare_classes,
    normalise,
    roi_table,
)
from napari_nanosims.steps.recipe import Recipe, run_recipe

FRACTION = "12C 15N/(12C 14N+12C 15N)"


def _acquisition(tmp_path=None):
    """Six ROIs of 4 x 4 px; ROIs 1-3 at natural 15N, 4-6 enriched."""
    rng = np.random.default_rng(3)
    labels = np.kron(np.arange(1, 7).reshape(2, 3), np.ones((4, 4), np.int32)).astype(
        np.int32)
    fraction = np.where(labels <= 3, 0.0037, 0.02)
    minor = rng.poisson(2000 * fraction).astype(float)
    major = rng.poisson(2000 * (1 - fraction)).astype(float)
    acq = Acquisition.from_arrays(np.stack([major, minor])[None], ["12C 14N", "12C 15N"],
                                  name="six.im")
    if tmp_path is not None:
        acq = acq.replace(path=str(tmp_path / "six.im"))
    return acq.replace(roi_labels=labels), labels


def _run(acq, *steps):
    return run_recipe(acq, Recipe(tuple(steps)))


def test_steps_give_the_library_results_and_record_themselves(tmp_path):
    acq, labels = _acquisition()
    before = ["12C15N/12C14N", FRACTION]
    out = _run(acq, ("roi_table", {"expressions": "; ".join(before)}),
               ("classify", {"rois": "1-3: control; 4-6: cells"}),
               ("normalise", {"quantity": "12C15N/12C14N"}),
               ("calibrate", {"quantity": "12C15N/12C14N", "standard": "control",
                              "true_value": 0.0036765, "reference": 0.0036765}),
               ("assimilation", {"fraction": FRACTION, "natural": 0.0036630,
                                 "substrate": 0.5, "hours": 12.0, "dilution": 0.1}),
               ("compare_classes", {"quantity": "12C15N/12C14N excess"}),
               ("compare_classes", {"quantity": f"{FRACTION} k"}))
    classes = {1: "control", 2: "control", 3: "control", 4: "cells", 5: "cells", 6: "cells"}
    expected = roi_table(acq, labels, before, classes=classes)
    expected = normalise(expected, "12C15N/12C14N")
    expected = calibrate(expected, "12C15N/12C14N", "control", 0.0036765,
                         reference=0.0036765)
    expected = assimilation(expected, FRACTION, natural=0.0036630, substrate=0.5,
                            hours=12.0, dilution=0.1)
    pd.testing.assert_frame_equal(out.roi_statistics, expected)
    by_class = pd.concat([compare_classes(expected, "12C15N/12C14N excess"),
                          compare_classes(expected, f"{FRACTION} k")], ignore_index=True)
    pd.testing.assert_frame_equal(out.class_statistics, by_class)
    names = [record.name for record in out.history]
    assert names[-7:] == ["roi_table", "classify", "normalise", "calibrate", "assimilation",
                          "compare_classes", "compare_classes"]
    assert out.history[-6].parameters["rois_per_class"] == {"control": 3, "cells": 3}
    assert acq.roi_statistics is None and acq.class_statistics is None  # input untouched
    statistics = out.class_statistics
    summary = statistics[(statistics["test"] == "summary")
                         & (statistics["quantity"] == "12C 15N/12C 14N excess")]
    assert summary.set_index("class")["n_enriched"].to_dict() == {"cells": 3.0,
                                                                  "control": 0.0}


def test_classify_by_rule_then_class_image_then_numbers(tmp_path):
    acq, labels = _acquisition(tmp_path)
    image = np.zeros_like(labels, dtype=np.uint16)
    image[labels == 2] = 7  # the FISH image marks ROI 2 (and half of ROI 3)
    image[:2, 8:12] = 7
    tifffile.imwrite(tmp_path / "six_fish.tif", image)
    out = _run(acq, ("roi_table", {"expressions": "12C15N/12C14N"}),
               ("classify", {"rule": "12C15N/12C14N > 0.01", "rule_class": "labelled",
                             "otherwise": "not", "class_image": "{stem}_fish.tif",
                             "rois": "6: odd one"}))
    got = out.roi_statistics.drop_duplicates("roi").set_index("roi")["class"].to_dict()
    from_image = classes_from_labels(labels, image)
    assert from_image == {2: 7, 3: 7}
    assert got == {1: "not", 2: "7", 3: "7", 4: "labelled", 5: "labelled", 6: "odd one"}


def test_steps_need_a_roi_table_and_good_parameters(tmp_path):
    acq, _ = _acquisition(tmp_path)
    with pytest.raises(ValueError, match="roi_table"):
        _run(acq, ("normalise", {}))
    with pytest.raises(ValueError, match="rule"):
        Recipe((("classify", {"rule": "12C15N/12C14N >> 1"}),))
    with pytest.raises(ValueError, match="true_value must be given"):
        Recipe((("calibrate", {}),))
    with pytest.raises(ValueError, match="not found"):
        _run(acq, ("roi_table", {"expressions": "12C15N/12C14N"}),
             ("classify", {"class_image": "missing.tif"}))
    with pytest.raises(ValueError, match=r"\[9\]"):
        _run(acq, ("roi_table", {"expressions": "12C15N/12C14N"}),
             ("classify", {"rois": "9: x"}))


def test_library_checks_use_the_step_bounds():
    """The steps' parameters and the library refuse the same values."""
    dilution = STEPS["assimilation"].parameter("dilution")
    overlap = STEPS["classify"].parameter("min_overlap")
    table = pd.DataFrame({"roi": [1], "quantity": ["x"], "value": [0.1], "sigma": [0.01]})
    for bad in (dilution.maximum + 1e-3, dilution.minimum - 1e-3):
        with pytest.raises(ValueError, match="dilution"):
            dilution.check(bad)
        with pytest.raises(ValueError, match="dilution"):
            assimilation(table, "x", natural=0.0, substrate=1.0, dilution=bad)
    labels = np.ones((2, 2), np.int32)
    for bad in (overlap.above, overlap.maximum + 0.1):
        with pytest.raises(ValueError, match="min_overlap"):
            overlap.check(bad)
        with pytest.raises(ValueError, match="min_overlap"):
            classes_from_labels(labels, labels, bad)
    natural = STEPS["assimilation"].parameter("natural")
    with pytest.raises(ValueError, match="natural"):
        assimilation(table, "x", natural=natural.maximum + 1, substrate=1.0)
