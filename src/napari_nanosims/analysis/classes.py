"""ROI classes: from another label or class image (FISH, EM), from a rule on a measured
quantity, or given by hand; and the ``class`` column of the ROI table.

A class is a name (text, or a whole number such as the value of a class image). An ROI
without a class has None in the ``class`` column and is left out of class statistics.
"""

from __future__ import annotations

import numbers
import operator
import re

import numpy as np

from .._checks import check_number
from ._tables import check_table, per_roi, resolve_quantity
from .bounds import MIN_OVERLAP_BOUNDS

__all__ = ["classes_from_labels", "classes_from_rule", "with_classes", "check_classes",
           "parse_rule", "parse_class_list"]

_COMPARISONS = {">=": operator.ge, "<=": operator.le, "==": operator.eq,
                "!=": operator.ne, ">": operator.gt, "<": operator.lt}
_RULE = re.compile(r"^\s*(?P<quantity>[^<>=!]+?)\s*(?P<op>>=|<=|==|!=|>|<)\s*"
                   r"(?P<number>[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)\s*$")


def _is_class_name(name) -> bool:
    if isinstance(name, str):
        return bool(name.strip())
    return isinstance(name, numbers.Integral) and not isinstance(name, bool)


def check_classes(classes, rois=None) -> dict:
    """``classes`` as ``{roi: class}`` with ROI numbers as int, or ValueError.

    Parameters
    ----------
    classes : mapping
        ROI label -> class name (non-empty text or a whole number).
    rois : iterable of int, optional
        The ROIs that exist; a class for another ROI is refused.
    """
    if not hasattr(classes, "items"):
        raise ValueError(f"classes must be a mapping {{roi label: class name}}, not "
                         f"{type(classes).__name__}")
    checked = {}
    for roi, name in classes.items():
        if isinstance(roi, bool) or not isinstance(roi, numbers.Integral) or roi < 1:
            raise ValueError(f"classes: {roi!r} is not an ROI label (a whole number >= 1)")
        if not _is_class_name(name):
            raise ValueError(f"classes: the class of ROI {roi} must be a non-empty text or "
                             f"a whole number, not {name!r}")
        checked[int(roi)] = name.strip() if isinstance(name, str) else int(name)
    if rois is not None:
        unknown = sorted(set(checked) - {int(r) for r in rois})
        if unknown:
            raise ValueError(f"classes name ROI(s) {unknown[:10]} that are not in the "
                             "labels")
    return checked


def with_classes(table, classes):
    """The ROI table with its ``class`` column set from ``{roi: class}`` (a copy; ROIs not
    in ``classes`` get None). The column follows ``roi``."""
    table = check_table(table)
    classes = check_classes(classes, table["roi"].unique())
    result = table.drop(columns=["class"], errors="ignore")
    column = result["roi"].map(lambda roi: classes.get(int(roi))).astype(object)
    result.insert(int(list(result.columns).index("roi")) + 1, "class",
                  column.where(column.notna(), None))
    return result


def classes_from_labels(labels, class_image, min_overlap: float = 0.5) -> dict:
    """Give each ROI the value of another label or class image that covers most of it.

    Parameters
    ----------
    labels : array_like of int, (height, width)
        The ROIs, 0 = background.
    class_image : array_like of int, (height, width)
        Another segmentation (FISH, EM) or a painted class image on the same pixels;
        0 = no class.
    min_overlap : float
        In (0, 1]: the most frequent non-zero value must cover at least this fraction of
        the ROI's pixels (else the ROI gets no class).

    Returns
    -------
    dict
        ``{roi: value}`` (ints) for the ROIs with a class; ties go to the smaller value.
    """
    labels = np.asarray(labels)
    class_image = np.asarray(class_image)
    min_overlap = check_number(min_overlap, "min_overlap", **MIN_OVERLAP_BOUNDS)
    for name, image in (("labels", labels), ("class_image", class_image)):
        if image.ndim != 2 or image.dtype.kind not in "iu" or (
                image.size and image.min() < 0):
            raise ValueError(f"{name} must be a 2-D image of whole numbers >= 0; got "
                             f"{image.dtype} of shape {image.shape}")
    if labels.shape != class_image.shape:
        raise ValueError(f"class_image has shape {class_image.shape}, the labels "
                         f"{labels.shape}; they must cover the same pixels")
    roi = labels.ravel().astype(np.int64)
    value = class_image.ravel().astype(np.int64)
    size = np.bincount(roi)
    inside = (roi > 0) & (value > 0)
    pairs, overlap = np.unique(np.stack([roi[inside], value[inside]]), axis=1,
                               return_counts=True)
    if not overlap.size:
        return {}
    # Largest overlap first within each ROI, the smaller value first among equals.
    order = np.lexsort((pairs[1], -overlap, pairs[0]))
    pairs, overlap = pairs[:, order], overlap[order]
    first = np.r_[True, pairs[0, 1:] != pairs[0, :-1]]
    best_roi, best_value, best = pairs[0, first], pairs[1, first], overlap[first]
    keep = best >= min_overlap * size[best_roi]
    return {int(r): int(v) for r, v in zip(best_roi[keep], best_value[keep], strict=True)}


def parse_rule(rule: str):
    """(quantity, operator text, number) of a rule such as ``'12C15N/12C14N > 0.01'``."""
    if not isinstance(rule, str):
        raise ValueError(f"rule must be a text like '12C15N/12C14N > 0.01', not {rule!r}")
    match = _RULE.match(rule)
    if match is None:
        raise ValueError(f"rule {rule!r} is not '<quantity> <comparison> <number>' "
                         f"(comparisons: {', '.join(_COMPARISONS)}), e.g. "
                         "'12C15N/12C14N > 0.01'")
    return match["quantity"], match["op"], float(match["number"])


def classes_from_rule(table, rule: str, *, name=None, otherwise=None) -> dict:
    """Classes from a threshold on a measured quantity of each ROI.

    Parameters
    ----------
    table : pandas.DataFrame
        A ROI table (:func:`~napari_nanosims.roi_table`).
    rule : str
        ``'<quantity> <comparison> <number>'``, e.g. ``'12C15N/12C14N > 0.01'`` or
        ``'area_um2 >= 2'``. The quantity is one of the table's quantities (label spaces
        optional) or a numeric column (``area_um2``, ``equivalent_diameter_um``, ...);
        the comparison is one of ``> >= < <= == !=``. Nothing is evaluated as code.
    name : str or int, optional
        The class of the ROIs where the rule holds (default: the rule's text).
    otherwise : str or int, optional
        The class of the others (default: none, they are left out).

    Returns
    -------
    dict
        ``{roi: class}``. An ROI whose value is NaN gets ``otherwise``.
    """
    table = check_table(table)
    quantity, op, number = parse_rule(rule)
    if quantity in table.columns and quantity not in ("roi", "quantity", "class") and \
            np.issubdtype(table[quantity].dtype, np.number):
        values = table.drop_duplicates("roi").set_index("roi")[quantity]
        text = quantity
    else:
        text, _ = resolve_quantity(table, quantity)
        values = per_roi(table, text)["value"]
    name = f"{text} {op} {number:g}" if name is None else name
    for role, given in (("name", name), ("otherwise", otherwise)):
        if given is not None and not _is_class_name(given):
            raise ValueError(f"{role} must be a non-empty text or a whole number, "
                             f"not {given!r}")
    holds = _COMPARISONS[op](values.to_numpy(dtype=float), number)
    result = {}
    for roi, true in zip(values.index, holds, strict=True):
        if true:
            result[int(roi)] = name
        elif otherwise is not None:
            result[int(roi)] = otherwise
    return result


def parse_class_list(text: str) -> dict:
    """``{roi: class}`` from text such as ``'1-3, 7: control; 4, 5: cells'``."""
    classes = {}
    for part in (p.strip() for p in str(text).split(";")):
        if not part:
            continue
        rois, colon, name = part.rpartition(":")
        if not colon or not name.strip() or not rois.strip():
            raise ValueError(f"classes: {part!r} is not '<ROIs>: <class>' like '1-3, 7: "
                             "control'")
        for item in (i.strip() for i in rois.split(",")):
            first, _, last = item.partition("-")
            try:
                low, high = int(first), int(last or first)
            except ValueError:
                raise ValueError(f"classes: {item!r} is not an ROI number or a range like "
                                 "'1-3'") from None
            if low < 1 or high < low or high - low > 10**6:
                raise ValueError(f"classes: {item!r} is not a range of ROI numbers from 1 up")
            classes.update({roi: name.strip() for roi in range(low, high + 1)})
    return classes
