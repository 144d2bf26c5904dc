"""The steps that act on the ROI table: classes, controls, standards, rates, class tests.

Each needs the table of a ``roi_table`` step before it, and returns the acquisition with
a new table (``roi_statistics``; ``compare_classes`` adds to ``class_statistics``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..analysis.bounds import (
    DILUTION_BOUNDS,
    FRACTION_BOUNDS,
    HOURS_BOUNDS,
    MIN_OVERLAP_BOUNDS,
)
from ..analysis.classes import parse_class_list, parse_rule
from ..model import Acquisition
from .parameters import Parameter, Step
from .progress import Progress

__all__ = ["CLASS_STEPS", "CLASSIFY", "NORMALISE", "CALIBRATE", "ASSIMILATION",
           "COMPARE_CLASSES"]


def _table(acquisition: Acquisition, step: str):
    if acquisition.roi_statistics is None:
        raise ValueError(f"{acquisition.name}: {step} needs a ROI table; put a segment and "
                         "a roi_table step before it")
    return acquisition.roi_statistics


def _class_image(acquisition: Acquisition, text: str):
    """The class image named by ``text`` ('{stem}' replaced; relative to the file's
    folder), checked against the ROI image."""
    import numpy as np
    import tifffile

    name = text.replace("{stem}", acquisition.stem)
    path = Path(name)
    if not path.is_absolute() and acquisition.path:
        path = Path(acquisition.path).resolve().parent / path
    if not path.is_file():
        raise ValueError(f"{acquisition.name}: class_image {os.fspath(path)} not found")
    try:
        image = np.squeeze(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many kinds for a file that is no TIFF
        raise ValueError(f"{acquisition.name}: class_image {os.fspath(path)} is not a "
                         f"readable TIFF ({exc})") from None
    if image.shape != np.shape(acquisition.roi_labels):
        raise ValueError(f"{acquisition.name}: class_image {os.fspath(path)} has shape "
                         f"{image.shape}, the ROI image {np.shape(acquisition.roi_labels)}")
    if image.dtype.kind not in "iu":
        raise ValueError(f"{acquisition.name}: class_image {os.fspath(path)} must hold whole "
                         f"numbers (a label or class image), not {image.dtype}")
    return image


def _run_classify(acquisition: Acquisition, *, rois, rule, rule_class, otherwise,
                  class_image, min_overlap):
    from ..analysis.classes import classes_from_labels, classes_from_rule, with_classes

    table = _table(acquisition, "classify")
    yield Progress("classify", 0, 1)
    classes = {}
    if "class" in table.columns:  # classes given earlier stay unless changed here
        known = table.drop_duplicates("roi").set_index("roi")["class"].dropna()
        classes.update({int(roi): name for roi, name in known.items()})
    if rule:
        classes.update(classes_from_rule(table, rule, name=rule_class or None,
                                         otherwise=otherwise or None))
    if class_image:
        found = classes_from_labels(acquisition.roi_labels,
                                    _class_image(acquisition, class_image), min_overlap)
        classes.update({roi: str(value) for roi, value in found.items()})
    if rois:
        given = parse_class_list(rois)
        present = set(table["roi"].unique())
        missing = sorted(set(given) - present)
        if missing:
            raise ValueError(f"{acquisition.name}: classify names ROI(s) {missing[:10]} "
                             "that the ROI table does not have")
        classes.update(given)
    table = with_classes(table, classes)
    yield Progress("classify", 1, 1)
    counts = {str(name): int(count) for name, count in
              table.drop_duplicates("roi")["class"].value_counts().items()}
    return acquisition.with_step(
        "classify", dict(rois=rois, rule=rule, rule_class=rule_class, otherwise=otherwise,
                         class_image=class_image, min_overlap=min_overlap,
                         rois_per_class=counts), roi_statistics=table)


CLASSIFY = Step(
    "classify", "Classify ROIs",
    "Give the ROIs of the table classes: by a rule on a measured quantity, from a class "
    "or label image (FISH, EM) by majority overlap, and by ROI number (applied in that "
    "order, each overriding the one before; classes given earlier stay otherwise).",
    (Parameter("rois", "", str, "classes by ROI number: '1-3, 7: control; 4, 5: cells' "
               "(empty: none)", text_format=parse_class_list, title="classes of ROIs"),
     Parameter("rule", "", str, "a threshold on a quantity of the ROI table or a numeric "
               "column: '12C15N/12C14N > 0.01', 'area_um2 >= 2' (empty: none)",
               text_format=parse_rule),
     Parameter("rule_class", "", str, "class of the ROIs where the rule holds (empty: the "
               "rule's text)", title="class where the rule holds"),
     Parameter("otherwise", "", str, "class of the ROIs where the rule does not hold "
               "(empty: they keep their class)", title="class elsewhere"),
     Parameter("class_image", "", str, "TIFF of class values on the ROI image's pixels, "
               "0 = none ('{stem}' = the file's name without .im; relative to the file's "
               "folder); each ROI takes the value covering most of it (empty: none)",
               title="class image"),
     Parameter("min_overlap", 0.5, help="fraction of an ROI's pixels the class image's "
               "value must cover", step=0.05, title="min overlap", **MIN_OVERLAP_BOUNDS)),
    _run_classify)


def _run_normalise(acquisition: Acquisition, *, quantity, control):
    from ..analysis.controls import normalise

    table = _table(acquisition, "normalise")
    yield Progress("normalise", 0, 1)
    table = normalise(table, quantity, control)
    yield Progress("normalise", 1, 1)
    return acquisition.with_step("normalise", dict(quantity=quantity, control=control),
                                 roi_statistics=table)


NORMALISE = Step(
    "normalise", "Excess over controls",
    "Per ROI: the excess of a quantity over the control class (pooled counts), its sigma, "
    "and whether it is enriched (above the control ROIs' scatter) with a p-value.",
    (Parameter("quantity", "12C15N/12C14N", str, "an expression of the ROI table "
               "(100*A/(A+B) gives atom-% excess)"),
     Parameter("control", "control", str, "class of the unlabelled control ROIs")),
    _run_normalise)


def _run_calibrate(acquisition: Acquisition, *, quantity, standard, true_value, reference):
    from ..analysis.controls import calibrate

    table = _table(acquisition, "calibrate")
    yield Progress("calibrate", 0, 1)
    table = calibrate(table, quantity, standard, true_value, reference=reference)
    yield Progress("calibrate", 1, 1)
    return acquisition.with_step("calibrate", dict(quantity=quantity, standard=standard,
                                                   true_value=true_value,
                                                   reference=reference),
                                 roi_statistics=table)


CALIBRATE = Step(
    "calibrate", "Calibrate with a standard",
    "Correct instrumental mass fractionation: divide by (pooled measured value of the "
    "standard class / its true value), with the standard's error; optionally delta (per "
    "mil) against a reference ratio.",
    (Parameter("quantity", "13C/12C", str, "a ratio of the ROI table"),
     Parameter("standard", "standard", str, "class of the standard's ROIs"),
     Parameter("true_value", None, float, "the standard's accepted value of the quantity",
               above=0.0, maximum=1e12, required=True, title="true value"),
     Parameter("reference", None, float, "reference ratio for delta (per mil; none: no "
               "delta)", above=0.0, maximum=1e12, optional=True)),
    _run_calibrate)


def _run_assimilation(acquisition: Acquisition, *, fraction, natural, substrate, hours,
                      content, dilution):
    from ..analysis.rates import assimilation

    table = _table(acquisition, "assimilation")
    yield Progress("assimilation", 0, 1)
    table = assimilation(table, fraction, natural=natural, substrate=substrate,
                         hours=hours, content=content, dilution=dilution)
    yield Progress("assimilation", 1, 1)
    return acquisition.with_step(
        "assimilation", dict(fraction=fraction, natural=natural, substrate=substrate,
                             hours=hours, content=content, dilution=dilution),
        roi_statistics=table)


ASSIMILATION = Step(
    "assimilation", "Assimilation and growth",
    "Per ROI: excess enrichment x_E, net assimilation x_net and, with the incubation time, "
    "the specific growth rate k and the assimilation rate, each with its sigma.",
    (Parameter("fraction", "12C15N/(12C14N+12C15N)", str, "the isotope fraction of the ROI "
               "table (100*... for atom-%, with natural and substrate in atom-%)"),
     Parameter("natural", None, help="fraction before incubation (unlabelled)",
               required=True, step=0.0001, **FRACTION_BOUNDS),
     Parameter("substrate", None, help="fraction of the labelled substrate", required=True,
               step=0.01, **FRACTION_BOUNDS),
     Parameter("hours", None, help="incubation time (none: no rates)", optional=True,
               step=0.5, **HOURS_BOUNDS),
     Parameter("content", None, float, "element per ROI for the assimilation rate (none: "
               "no rate)", unit="mol", minimum=0.0, maximum=1.0, optional=True),
     Parameter("dilution", 0.0, help="fraction of the label lost in sample preparation "
               "(the excess is divided by 1 - dilution)", step=0.01, **DILUTION_BOUNDS)),
    _run_assimilation)


def _run_compare_classes(acquisition: Acquisition, *, quantity):
    import pandas as pd

    from ..analysis.group_stats import compare_classes

    table = _table(acquisition, "compare_classes")
    yield Progress("compare_classes", 0, 1)
    result = compare_classes(table, quantity)
    previous = acquisition.class_statistics
    if previous is not None:  # a second quantity is added; the same one replaced
        result = pd.concat([previous[previous["quantity"] != result["quantity"].iloc[0]]
                            if len(result) else previous, result], ignore_index=True)
    yield Progress("compare_classes", 1, 1)
    return acquisition.with_step("compare_classes", dict(quantity=quantity),
                                 class_statistics=result)


COMPARE_CLASSES = Step(
    "compare_classes", "Compare classes",
    "Per class: n, mean, SD, SE, median (and how many ROIs are enriched); between classes: "
    "Welch's t (pairs), one-way ANOVA, Kruskal-Wallis and Levene; written as "
    "<stem>_class_table.csv.",
    (Parameter("quantity", "12C15N/12C14N", str, "the quantity compared (an expression or "
               "a derived row such as '12C15N/12C14N excess')"),),
    _run_compare_classes)

CLASS_STEPS = (CLASSIFY, NORMALISE, CALIBRATE, ASSIMILATION, COMPARE_CLASSES)
