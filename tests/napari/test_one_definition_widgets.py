"""One definition per parameter, in the widgets: every step parameter a tab sets is a control
built from its ``Parameter``, with the same default, minimum, maximum and choices.

Every parameter of every step in ``STEPS`` is walked: it has a control in a tab
(``CONTROLS``) or is listed in ``NOT_IN_WIDGETS`` with the reason. The Header tab sets no
step parameter; nor does the Correlate tab, whose own settings are ``Parameter``s checked
the same way. A control that re-defines a bound (the Ratio tab's kernel once stopped at
15 while the step allows 101) fails here; a self-check feeds the checker such controls.
"""

from __future__ import annotations

import dataclasses
import operator

import pytest

from napari_nanosims.steps.registry import STEPS

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")

WIDGETS = "napari_nanosims._napari.widgets"
#: (step, parameter) -> (module of the tab, class, attribute of the control)
CONTROLS = {
    **{("remove_hot_pixels", name): ("hot_pixels", "HotPixelWidget", name)
       for name in ("num_outliers", "kernel_size", "outlier_factor", "min_count",
                    "max_repeat_fraction", "num_nonzero")},
    ("correct_dead_time", "dead_times_ns"): ("corrections", "CorrectionsWidget", "dead_times"),
    ("correct_qsa", "beta"): ("corrections", "CorrectionsWidget", "beta"),
    ("correct_qsa", "primary_current_pA"): ("corrections", "CorrectionsWidget",
                                            "primary_current"),
    ("align_frames", "channel"): ("alignment", "AlignFramesWidget", "detector"),
    ("align_frames", "method"): ("alignment", "AlignFramesWidget", "method"),
    ("align_frames", "upsample_factor"): ("alignment", "AlignFramesWidget", "upsample_factor"),
    ("align_frames", "padding"): ("alignment", "AlignFramesWidget", "padding"),
    ("align_frames", "region"): ("alignment", "AlignFramesWidget", "region"),
    ("exclude_frames", "flagged"): ("alignment", "AlignFramesWidget", "leave_out_flagged"),
    ("ratio", "expression"): ("ratio", "RatioWidget", "expression"),
    ("ratio", "kernel"): ("ratio", "RatioWidget", "kernel"),
    ("ratio", "min_counts"): ("ratio", "RatioWidget", "min_counts"),
    ("ratio", "min_counts_of"): ("ratio", "RatioWidget", "mask_on"),
    ("segment", "channel"): ("rois", "RoiWidget", "channel"),
    ("segment", "method"): ("rois", "RoiWidget", "method"),
    ("segment", "smoothing_px"): ("rois", "RoiWidget", "smoothing"),
    ("segment", "min_area_px"): ("rois", "RoiWidget", "min_area"),
    ("segment", "split_touching"): ("rois", "RoiWidget", "split"),
    ("roi_table", "expressions"): ("rois", "RoiWidget", "expressions"),
    # the ROIs tab's "classes" page (roi_classes.ClassPanel, the tab's ``classes``)
    **{("classify", name): ("rois", "RoiWidget", f"classes.{name}")
       for name in ("rule", "rule_class", "otherwise", "min_overlap")},
    ("normalise", "quantity"): ("rois", "RoiWidget", "classes.quantity"),
    ("normalise", "control"): ("rois", "RoiWidget", "classes.control"),
    ("calibrate", "standard"): ("rois", "RoiWidget", "classes.standard"),
    ("calibrate", "true_value"): ("rois", "RoiWidget", "classes.true_value"),
    **{("assimilation", name): ("rois", "RoiWidget", f"classes.{name}")
       for name in ("natural", "substrate", "hours", "dilution")},
}

#: (step, parameter) without a control on purpose, with the reason.
NOT_IN_WIDGETS = {
    ("subtract_em_background", "background_cps"): "the Correct tab subtracts the header's "
    "background; overrides per mass label are a recipe option",
    ("align_frames", "reference"): "a library/CLI option: the tab registers on the mean of "
    "the other frames",
    ("exclude_frames", "frames"): "the Align tab chooses the frames to sum as a range "
    "(first_frame, last_frame)",
    **{(step, name): "napari's own writers (File > Save) export layers; these are recipe "
       "steps" for step in ("write_nrrd", "write_ome_tiff", "write_lans")
       for name in ("folder", "overwrite")},
    ("classify", "rois"): "the ROIs tab gives the selected rows a class (Set class); "
    "the export's sidecar records them in this form",
    ("classify", "class_image"): "the ROIs tab takes a Labels layer of the viewer (class "
    "layer) instead of a TIFF file",
    **{(step, name): "the ROIs tab's one quantity drop-down (normalise's) sets it" for
       step, name in (("calibrate", "quantity"), ("assimilation", "fraction"),
                      ("compare_classes", "quantity"))},
    ("calibrate", "reference"): "delta against a reference ratio: a library and recipe "
    "option",
    ("assimilation", "content"): "mol of the element per ROI (a number, a mapping or a "
    "column): a library and recipe option",
    ("import_rois", "path"): "the ROIs tab's Import ROIs... asks for the file",
    ("import_rois", "registration"): "in the window the Correlate tab registers the "
    "other image, and its ROIs from this layer carry labels across",
    ("import_rois", "min_area_px"): "masks in the window keep the library's default; a "
    "recipe option",
}

#: Controls whose choices are the open file's channels or the viewer's layers (read when
#: they change), so the parameter's choices or default cannot be shown as such.
DYNAMIC_CHOICES = {("align_frames", "channel"), ("align_frames", "region"),
                   ("segment", "channel"), ("ratio", "min_counts_of"),
                   ("normalise", "quantity"), ("normalise", "control"),
                   ("calibrate", "standard")}
#: Controls that start from another value than the parameter's default, with the reason.
OTHER_START = {("ratio", "expression"): "empty until a file is chosen, then the first "
               "preset of that file's masses"}


def every_parameter():
    return [(step.name, parameter.name) for step in STEPS.values()
            for parameter in step.parameters]


def control_problems(parameter, control, shown=None, dynamic=False) -> list[str]:
    """What is wrong with ``control`` as the control of ``parameter`` (empty: nothing).

    ``shown``: drop-down names -> parameter values, when the drop-down shows names.
    ``dynamic``: a drop-down of the file's channels or the viewer's layers (label,
    tooltip and kind only).
    """
    from napari_nanosims._napari.widgets._controls import format_per_label

    problems = []
    if not control.label.startswith(parameter.title or parameter.name):
        problems.append(f"label {control.label!r} is not the parameter's")
    if parameter.unit and f"({parameter.unit})" not in control.label:
        problems.append(f"label {control.label!r} lacks the unit {parameter.unit}")
    if parameter.help not in (control.tooltip or ""):
        problems.append("the tooltip is not the parameter's help")
    kind = type(control).__name__
    if dynamic:
        if kind != "ComboBox":
            problems.append(f"a {kind}, not a drop-down")
    elif parameter.kind is bool:
        if kind != "CheckBox" or control.value != parameter.default:
            problems.append(f"{kind} with {control.value!r}, default {parameter.default!r}")
    elif parameter.choices:
        values = [shown[c] if shown else c for c in control.choices]
        if sorted(values) != sorted(parameter.choices):
            problems.append(f"choices {values} are not {list(parameter.choices)}")
        value = shown[control.value] if shown else control.value
        if value != parameter.default:
            problems.append(f"shows {value!r}, default {parameter.default!r}")
    elif parameter.per_label and not parameter.required:
        if control.value != format_per_label(parameter.default):
            problems.append(f"shows {control.value!r}, default {parameter.default!r}")
    elif parameter.kind is str:
        if control.value != (parameter.default or ""):
            problems.append(f"shows {control.value!r}, default {parameter.default!r}")
    else:
        # 0 stands for None: "all" for optional whole numbers, "none" for other optional
        # numbers, "not set" for required ones
        zero = parameter.required or parameter.optional
        low = (0 if zero else parameter.minimum if parameter.minimum is not None
               else parameter.above + parameter.increment)
        default = 0 if parameter.default is None else parameter.default
        for what, got, expected in (("minimum", control.min, low),
                                    ("maximum", control.max, parameter.maximum),
                                    ("default", control.value, default)):
            if got != pytest.approx(expected):
                problems.append(f"{what} {got}, parameter {expected}")
        if (parameter.kind is int) != (kind == "SpinBox"):
            problems.append(f"a {kind} for {parameter.kind.__name__} values")
        if parameter.odd and control.step != 2:
            problems.append("an odd parameter's spin box must step by 2")
    return problems


def test_every_parameter_has_a_control_or_a_reason():
    for key in every_parameter():
        assert key in CONTROLS or NOT_IN_WIDGETS.get(key, "").strip(), (
            f"{key}: give it a control or list it in NOT_IN_WIDGETS with the reason")
        assert not (key in CONTROLS and key in NOT_IN_WIDGETS)
    assert set(CONTROLS) | set(NOT_IN_WIDGETS) <= set(every_parameter())


def test_every_control_matches_its_parameter(make_napari_viewer):
    import importlib

    viewer = make_napari_viewer()
    tabs = {}
    problems = {}
    for (step_name, name), (module, cls, attribute) in CONTROLS.items():
        if (module, cls) not in tabs:
            tabs[module, cls] = getattr(importlib.import_module(f"{WIDGETS}.{module}"),
                                        cls)(viewer)
        tab = tabs[module, cls]
        parameter = STEPS[step_name].parameter(name)
        control = operator.attrgetter(attribute)(tab)
        shown = None
        if (step_name, name) == ("align_frames", "method"):
            from napari_nanosims._napari.widgets.alignment import METHODS as shown
        if (step_name, name) in OTHER_START:
            parameter = dataclasses.replace(parameter, default=control.value)
        found = control_problems(parameter, control, shown,
                                 dynamic=(step_name, name) in DYNAMIC_CHOICES)
        if found:
            problems[step_name, name] = found
    assert not problems, problems


def test_correlate_settings_are_controls_of_their_parameters(make_napari_viewer):
    """Registration is interactive (no step): the Correlate tab's pixel size ("not set"
    until given) and model are still built from one Parameter each."""
    from napari_nanosims._napari.correlate_layers import MODEL, PIXEL_SIZE
    from napari_nanosims._napari.widgets.correlate import CorrelateWidget

    tab = CorrelateWidget(make_napari_viewer())
    assert control_problems(PIXEL_SIZE, tab.pixel_size) == []
    assert control_problems(MODEL, tab.model) == []
    assert tab.pixel_size.native.text() == "not set"


def test_dynamic_drop_downs_start_at_the_default(make_napari_viewer):
    """Without a file the channel drop-downs are empty ('auto' follows the file), and the
    region is the whole frame (the parameter's None)."""
    from napari_nanosims._napari.widgets.alignment import AlignFramesWidget
    from napari_nanosims._napari.widgets.rois import RoiWidget

    viewer = make_napari_viewer()
    aligner, rois = AlignFramesWidget(viewer), RoiWidget(viewer)
    assert aligner.detector.value is None and rois.channel.value is None
    assert aligner.parameters()["channel"] == STEPS["align_frames"].parameter("channel").default
    assert aligner.region.value == "whole frame"
    assert STEPS["align_frames"].parameter("region").default is None


def test_checker_finds_a_redefined_bound(qtbot):
    """Self-check: the Ratio tab's old kernel control (max 15) and other re-definitions
    are caught, and a control built from the parameter passes."""
    from magicgui.widgets import FloatSpinBox, SpinBox

    from napari_nanosims._napari.widgets._controls import control_for

    kernel = STEPS["ratio"].parameter("kernel")
    old = SpinBox(label="kernel (px)", min=1, max=15, step=2, value=1, tooltip=kernel.help)
    assert control_problems(kernel, old) == ["maximum 15, parameter 101"]
    assert control_problems(kernel, control_for(kernel)) == []
    current = STEPS["correct_qsa"].parameter("primary_current_pA")
    capped = FloatSpinBox(label="primary current (pA)", min=0.0, max=10_000.0,
                          tooltip=current.help)
    assert control_problems(current, capped) == ["maximum 10000.0, parameter 1000000.0"]
    smoothing = STEPS["segment"].parameter("smoothing_px")
    other_default = control_for(smoothing, 2.0)
    assert control_problems(smoothing, other_default) == ["default 2.0, parameter 1.0"]
