"""Controls made from parameter definitions, and parameters remembered between sessions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import cast

from ...steps.parameters import Parameter

# -- controls from parameter definitions ---------------------------------------------------
#: Appended to the label of a spin box whose 0 stands for "None" (optional whole numbers:
#: all; optional other numbers: none) or for "not given yet" (required numbers: the user
#: must enter a measured value).
OPTIONAL_ZERO, OPTIONAL_NONE, REQUIRED_ZERO = " (0 = all)", " (0 = none)", " (0: not set)"
#: What such a spin box shows instead of 0 (floating-point boxes), and the short label
#: suffix of whole-number boxes, which cannot show a text for 0 (superqt's spin box).
ZERO_TEXT = {OPTIONAL_ZERO: "all", OPTIONAL_NONE: "none", REQUIRED_ZERO: "not set"}
SHORT_ZERO = {OPTIONAL_ZERO: " (0=all)", OPTIONAL_NONE: " (0=none)",
              REQUIRED_ZERO: " (0=not set)"}


_DEFAULT = object()  # "show the parameter's default" (None is a value of optional ones)


def control_for(parameter: Parameter, value=_DEFAULT, *, choices=None,
                nullable: bool = False, note: str = ""):
    """The magicgui control of ``parameter``: the one way a tab shows a step parameter.

    The label (with the unit), the bounds, the increment, the tooltip (the parameter's
    help) and the kind of control all come from the definition; a tab only says what
    the control shows now.

    Parameters
    ----------
    parameter : Parameter
    value : optional
        The value shown (a remembered one); the parameter's default when not given.
    choices : list or callable, optional
        What a drop-down offers when that is not the parameter's ``choices``: names shown
        for them (``[(shown, value), ...]``) or the channels of the file, read when the
        file changes.
    nullable : bool
        The drop-down may show nothing (no file open).
    note : str
        What the control means in this tab, added to the tooltip.

    Optional whole numbers show None as 0 ("all"), other optional numbers as 0
    ("none"); required numbers (no default) start at 0, meaning "not set", so that no
    value nobody measured is ever pre-filled.
    Optional per-label numbers are text, ``label=number`` pairs (empty: None).
    """
    from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, SpinBox

    if value is _DEFAULT:
        value = parameter.default
    tooltip = parameter.help + (f" [{parameter.unit}]" if parameter.unit else "")
    tooltip += f". {note}" if note else ""
    label = parameter.label
    if parameter.kind is bool:
        return CheckBox(label=label, value=bool(value), tooltip=tooltip)
    if choices is not None or parameter.choices:
        # without ``choices``, the parameter's are not empty (tested above)
        shown = choices if choices is not None else list(cast(tuple, parameter.choices))
        options = dict(value=value) if value is not None and choices is None else {}
        return ComboBox(label=label, choices=shown, nullable=nullable, tooltip=tooltip,
                        **options)
    if parameter.kind is str or (parameter.per_label and not parameter.required):
        text = format_per_label(value) if parameter.per_label else (value or "")
        if parameter.per_label:
            tooltip += "; label=number pairs separated by commas (empty: None)"
        return LineEdit(label=label, value=text, tooltip=tooltip)
    zero_means = REQUIRED_ZERO if parameter.required else (
        (OPTIONAL_ZERO if parameter.kind is int else OPTIONAL_NONE)
        if parameter.optional else "")
    step = parameter.increment
    low: float
    if zero_means:
        low = 0
    elif parameter.minimum is not None:
        low = parameter.minimum
    else:  # an exclusive bound: the first value above it
        low = (parameter.above or 0) + step
    shown_value = 0 if value is None else value
    note = zero_means if zero_means == REQUIRED_ZERO else ""
    assert parameter.maximum is not None  # every number parameter has one (the box's)
    control: SpinBox | FloatSpinBox
    if parameter.kind is int:
        # superqt's large-int spin box has no special-value text: the label says it
        control = SpinBox(label=label + (SHORT_ZERO[zero_means] if zero_means else ""),
                          min=int(low), max=int(parameter.maximum), step=int(step),
                          value=int(shown_value), tooltip=tooltip + note)
    else:
        control = FloatSpinBox(label=label, min=float(low), max=float(parameter.maximum),
                               step=step, value=float(shown_value), tooltip=tooltip + note)
        _show_bounds(control, float(low), float(parameter.maximum))
        if zero_means:  # the box itself says what 0 means: "not set"
            control.native.setSpecialValueText(ZERO_TEXT[zero_means])
    return control


def _show_bounds(control, low: float, high: float) -> None:
    """Give a float spin box the decimals its bounds need: the box rounds its minimum
    and maximum to its decimals (from the step), so a maximum of 0.999 with a step of
    0.01 would let 1.0 through."""
    needed = [len(f"{bound:.10f}".rstrip("0").split(".")[1]) for bound in (low, high)]
    if max(needed) > control.native.decimals():
        value = control.value
        control.native.setDecimals(min(max(needed), 10))
        control.native.setRange(low, high)
        control.value = value


def format_per_label(value) -> str:
    """``{'12C': 44.0}`` -> ``"12C=44"``; None -> ``""``."""
    if value is None:
        return ""
    return ", ".join(f"{label}={number:g}" for label, number in value.items())


def parse_per_label(text: str) -> dict[str, float] | None:
    """``"12C=44, 13C=36"`` -> ``{'12C': 44.0, '13C': 36.0}``; empty text -> None."""
    text = text.strip()
    if not text:
        return None
    values = {}
    for item in text.split(","):
        label, sep, number = item.partition("=")
        if not sep or not label.strip():
            raise ValueError(f"write 'label=number' pairs separated by commas, not {item!r}")
        try:
            values[" ".join(label.split())] = float(number)
        except ValueError:
            raise ValueError(f"{number.strip()!r} is not a number (in {item.strip()!r})") from None
    return values


def set_default(parameter: Parameter, control) -> None:
    """Show the parameter's default in its control (as :func:`control_for` would)."""
    default = parameter.default
    if parameter.per_label and not parameter.required:
        control.value = format_per_label(default)
    elif default is None:
        control.value = "" if parameter.kind is str else 0
    else:
        control.value = default


def compact_choices(container) -> None:
    """Let drop-down lists shrink to the dock: long file names are elided, not widened."""
    from magicgui.widgets import ComboBox, Container
    from qtpy.QtWidgets import QComboBox

    for widget in container:
        if isinstance(widget, Container):
            compact_choices(widget)
        elif isinstance(widget, ComboBox):
            widget.native.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            widget.native.setMinimumContentsLength(8)


#: Narrowest a spin box, text box or drop-down may become (pixels): a 300-pixel panel
#: then fits any label of up to about 20 characters beside it.
CONTROL_MIN_WIDTH_PX = 70


def align_labels(controls) -> int:
    """Give the labels of ``controls`` one column as wide as the widest label's text.

    magicgui measures label text with its own font guess, a few pixels short of what
    Qt draws: the widest label would lose its last letter. Returns the width (pixels).
    """
    rows = [(control._labeled_widget(), control.label) for control in controls]
    rows = [(row, label) for row, label in rows if row is not None and label]
    if not rows:
        return 0
    widest = max(row._label_widget.native.fontMetrics().horizontalAdvance(label)
                 for row, label in rows) + 4
    for row, _label in rows:
        row.label_width = widest
    return widest


def fit_to_width(container) -> None:
    """Let the controls of ``container`` shrink to the panel's width.

    Qt sizes a spin box for its largest value and a text box for 17 characters; in a
    300-pixel dock that pushes the right half of every row out of sight. Check boxes
    and labels keep their size; word-wrapped labels take the full width.
    """
    from magicgui.widgets import CheckBox, Label, PushButton
    from qtpy.QtWidgets import QSizePolicy

    for widget in container:
        if isinstance(widget, Label):  # notes wrap, and grow as tall as their text
            widget.native.setWordWrap(True)
            widget.native.setSizePolicy(QSizePolicy.Policy.Ignored,
                                        QSizePolicy.Policy.Minimum)
        elif not isinstance(widget, (CheckBox, PushButton)):
            widget.native.setMinimumWidth(CONTROL_MIN_WIDTH_PX)


def control_value(parameter: Parameter, control):
    """The parameter value a control of :func:`control_for` holds (not checked).

    0 means None for optional and required numbers (not set yet);
    per-label text becomes a dict (empty: None); empty optional text is None.
    """
    value = control.value
    if parameter.kind is bool:
        return bool(value)
    if parameter.per_label and not parameter.required:
        return parse_per_label(value)
    if parameter.kind is str:
        return None if parameter.optional and not value else value
    if (parameter.required or parameter.optional) and value == 0:
        return None
    return parameter.kind(value)


# -- remembered parameters -----------------------------------------------------------------
def settings_path() -> Path:
    """Where widget parameters are remembered between napari sessions."""
    folder = os.environ.get("NAPARI_NANOSIMS_CONFIG_DIR") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config"),
        "napari-nanosims")
    return Path(folder) / "widgets.json"


def load_parameters(section: str) -> dict:
    try:
        data = json.loads(settings_path().read_text())
    except (OSError, ValueError):
        return {}
    values = data.get(section, {}) if isinstance(data, dict) else {}
    return values if isinstance(values, dict) else {}


def save_parameters(section: str, values: dict) -> None:
    from ...export._files import atomic_output

    path = settings_path()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[section] = values
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, overwrite=True) as temporary:
            temporary.write_text(json.dumps(data, indent=2))
    except OSError:  # a read-only home must not break the widget
        pass


def remembered(parameters, section: str) -> dict:
    """Each parameter's remembered value when it is still valid, else its default."""
    stored = load_parameters(section)
    values = {}
    for parameter in parameters:
        try:
            values[parameter.name] = parameter.check(stored.get(parameter.name,
                                                                parameter.default))
        except ValueError:
            values[parameter.name] = parameter.default
    return values


def remembered_for(parameters, section: str, kind: str) -> tuple[dict, bool]:
    """The values remembered for one kind of acquisition (``kind``, a short description
    such as ``'6 ion masses, 2-10 frames'``), else the defaults; and whether any value was
    remembered. Values no longer valid fall back to the default."""
    stored = load_parameters(section).get(kind)
    stored = stored if isinstance(stored, dict) else {}
    values = {}
    for parameter in parameters:
        try:
            values[parameter.name] = parameter.check(stored.get(parameter.name,
                                                                parameter.default))
        except ValueError:
            values[parameter.name] = parameter.default
    return values, bool(stored)


def save_parameters_for(section: str, kind: str, values: dict) -> None:
    """Remember ``values`` for one kind of acquisition (see :func:`remembered_for`)."""
    kinds = {key: value for key, value in load_parameters(section).items()
             if isinstance(value, dict)}  # a flat section of older versions is dropped
    kinds[kind] = values
    save_parameters(section, kinds)
