"""The analysis steps: ratio images, cell segmentation and ROI tables."""

from __future__ import annotations

from ..analysis.bounds import DEFAULT_MIN_COUNTS, KERNEL_BOUNDS, MIN_COUNTS_OF_ALL, THRESHOLDS
from ..model import Acquisition
from .frames import _alignment_channel
from .parameters import Parameter, Step
from .progress import Progress

__all__ = ["RATIO", "SEGMENT", "ROI_TABLE"]


def _run_ratio(acquisition: Acquisition, *, expression, kernel, min_counts, min_counts_of):
    from ..analysis.ratios import evaluate

    yield Progress("ratio", 0, 1)
    derived = evaluate(acquisition, expression, kernel=kernel, min_counts=min_counts,
                       min_counts_of=min_counts_of)
    yield Progress("ratio", 1, 1)
    return acquisition.with_step("ratio", {"expression": derived.expression, "kernel": kernel,
                                           "min_counts": min_counts,
                                           "min_counts_of": min_counts_of},
                                 derived=acquisition.derived + (derived,))


RATIO = Step(
    "ratio", "Ratio image",
    "Evaluate an expression of the summed mass images (a ratio, fraction, delta...) with "
    "its Poisson error per pixel; written as <stem>_<expression>.ome.tif and .png.",
    (Parameter("expression", "12C15N/12C14N", str, "over the mass labels, numbers, + - * /, "
               "log, log10, sqrt, exp, delta(expr, standard)", cli_name="expr"),
     Parameter("kernel", 1, help="odd box: counts summed over kernel x kernel before the "
               "expression", **KERNEL_BOUNDS),
     Parameter("min_counts", DEFAULT_MIN_COUNTS, float, "pixels where an ion mass the "
               "expression uses has fewer raw counts (after the kernel sum) are NaN; 0 keeps "
               "every pixel", unit="counts", minimum=0.0, maximum=1e12, optional=True,
               title="min counts", step=1.0),
     Parameter("min_counts_of", MIN_COUNTS_OF_ALL, str, "the ion mass whose counts "
               "min_counts applies to (as LANS masks on one mass); 'all': every ion mass "
               "the expression uses", title="mask on")),
    _run_ratio)


def _run_segment(acquisition: Acquisition, *, channel, method, smoothing_px, min_area_px,
                 split_touching):
    from ..analysis.accumulate import accumulate
    from ..analysis.rois import segment_rois

    chosen = _alignment_channel(acquisition, channel)
    yield Progress("segment", 0, 1)
    image = accumulate(acquisition).counts[chosen.index]
    labels = segment_rois(image, method=method, smoothing_px=smoothing_px,
                          min_area_px=min_area_px, split_touching=split_touching)
    yield Progress("segment", 1, 1)
    return acquisition.with_step(
        "segment", dict(channel=channel, method=method, smoothing_px=smoothing_px,
                        min_area_px=min_area_px, split_touching=split_touching,
                        segmented_on=chosen.label, rois_found=int(labels.max())),
        roi_labels=labels, roi_classes=None)


def _run_roi_table(acquisition: Acquisition, *, expressions):
    from ..analysis.rois import roi_table

    if acquisition.roi_labels is None:
        raise ValueError(f"{acquisition.name}: roi_table needs ROIs; put a segment step "
                         "before it")
    listed = [text.strip() for text in expressions.split(";") if text.strip()]
    yield Progress("roi_table", 0, 1)
    table = roi_table(acquisition, acquisition.roi_labels, listed)
    if acquisition.roi_classes:  # the classes of an imported ROI file
        from ..analysis.classes import with_classes

        table = with_classes(table, {roi: name for roi, name in
                                     acquisition.roi_classes.items()
                                     if roi in set(table["roi"].unique())})
    yield Progress("roi_table", 1, 1)
    return acquisition.with_step("roi_table", {"expressions": expressions,
                                               "rows": int(len(table))},
                                 roi_statistics=table)


SEGMENT = Step(
    "segment", "Find cells",
    "Segment the sum of one channel into ROIs (threshold, watershed split, small ones "
    "dropped).",
    (Parameter("channel", "auto", str, "channel whose sum is segmented ('auto': 12C 14N, "
               "else the strongest ion channel)", title="find cells on"),
     Parameter("method", "otsu", str, "threshold method", choices=THRESHOLDS,
               title="threshold"),
     Parameter("smoothing_px", 1.0, float, "Gaussian smoothing before thresholding",
               unit="px", minimum=0.0, maximum=20.0, title="smoothing", step=1.0),
     Parameter("min_area_px", 10, int, "smaller objects are dropped", unit="px",
               minimum=0, maximum=10**6, title="min area"),
     Parameter("split_touching", True, bool, "split touching cells by a watershed",
               title="split touching cells")),
    _run_segment)
ROI_TABLE = Step(
    "roi_table", "ROI table",
    "Per ROI: channel totals and expressions (ratios of sums) with errors and the "
    "dispersion test across frames.",
    (Parameter("expressions", "12C15N/12C14N", str, "expressions separated by ';', e.g. "
               "12C15N/12C14N; 13C/12C"),),
    _run_roi_table)
