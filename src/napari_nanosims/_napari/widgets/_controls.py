"""Controls made from parameter definitions, and parameters remembered between sessions."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ...steps.parameters import Parameter


# -- controls from parameter definitions ---------------------------------------------------
def control_for(parameter: Parameter, value, *, maximum: float | None = None):
    """A magicgui control for ``parameter`` showing ``value`` (None shows as 0: "all")."""
    from magicgui.widgets import ComboBox, FloatSpinBox, SpinBox

    tooltip = parameter.help + (f" [{parameter.unit}]" if parameter.unit else "")
    label = parameter.label
    if parameter.choices:
        return ComboBox(label=label, choices=list(parameter.choices), value=value,
                        tooltip=tooltip)
    top = maximum if maximum is not None else parameter.maximum
    if parameter.kind is int:
        low = 0 if parameter.optional else int(parameter.minimum or 0)
        return SpinBox(label=label + (" (0 = all)" if parameter.optional else ""),
                       min=low, max=int(top), step=2 if parameter.odd else 1,
                       value=0 if value is None else int(value), tooltip=tooltip)
    low = parameter.minimum if parameter.minimum is not None else (parameter.above or 0.0)
    step = 0.001 if parameter.name == "outlier_factor" else 0.01
    return FloatSpinBox(label=label, min=low + (step if parameter.above is not None else 0),
                        max=float(top), step=step, value=float(value), tooltip=tooltip)


def compact_choices(container) -> None:
    """Let drop-down lists shrink to the dock: long file names are elided, not widened."""
    from magicgui.widgets import ComboBox
    from qtpy.QtWidgets import QComboBox

    for widget in container:
        if isinstance(widget, ComboBox):
            widget.native.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            widget.native.setMinimumContentsLength(10)


def control_value(parameter: Parameter, control):
    """The parameter value a control holds (0 means None for optional whole numbers)."""
    value = control.value
    if parameter.optional and parameter.kind is int and int(value) == 0:
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
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(data, indent=2))
        os.replace(temporary, path)
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
