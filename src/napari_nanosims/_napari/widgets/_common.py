"""Helpers shared by the dock widgets: finding a file's layers, one worker at a time,
remembered parameters, adding result layers."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


from ..layers import contrast_limits, layer_name

KIND_RAW, KIND_CLEANED, KIND_ALIGNED, KIND_SUM = "raw", "cleaned", "aligned", "aligned sum"


def nanosims_info(layer) -> dict | None:
    """The ``metadata['nanosims']`` entry of a layer, or None for foreign layers."""
    info = getattr(layer, "metadata", {}).get("nanosims") if layer is not None else None
    return info if isinstance(info, dict) and "source_path" in info else None


def source_files(viewer) -> dict[str, str]:
    """Files with raw detector layers in the viewer: display name -> source path."""
    files: dict[str, str] = {}
    for layer in viewer.layers:
        info = nanosims_info(layer)
        if info and info.get("kind", KIND_RAW) == KIND_RAW:
            path = info["source_path"]
            name = Path(path).stem
            if name in files and files[name] != path:
                name = f"{name} ({path})"
            files.setdefault(name, path)
    return files


def file_choices(viewer) -> list[tuple[str, str]]:
    """(display name, path) choices for a widget's file ComboBox."""
    return list(source_files(viewer).items())


def select_first_file(combo) -> None:
    """Refresh a file ComboBox and pick the first file when none is chosen yet."""
    combo.reset_choices()
    available = [choice for choice in combo.choices if choice is not None]
    if combo.value is None and available:
        combo.value = available[0]


def detector_layers(viewer, path: str, kind: str = KIND_RAW) -> dict[int, Any]:
    """Layers of ``kind`` that came from ``path``: detector index -> layer."""
    found = {}
    for layer in viewer.layers:
        info = nanosims_info(layer)
        if info and info["source_path"] == path and info.get("kind", KIND_RAW) == kind:
            found[int(info["detector_index"])] = layer
    return dict(sorted(found.items()))


def add_or_update_layer(viewer, source_layer, data, kind: str, history_entry: dict,
                        *, two_d: bool = False):
    """Add a derived image layer next to ``source_layer`` (or replace one of ours by name).

    Copies the source's scale, units, axis labels, colormap and metadata, sets the
    kind and appends ``history_entry`` to the history. The source is never modified.
    """
    info = copy.deepcopy(nanosims_info(source_layer))
    info["kind"] = kind
    info["history"] = list(info.get("history", [])) + [history_entry]
    stem = Path(info["source_path"]).stem
    name = layer_name(stem, info["label"], kind)
    scale = tuple(source_layer.scale)
    units = tuple(str(u) for u in source_layer.units)
    axis_labels = tuple(source_layer.axis_labels)
    if two_d:
        scale, units, axis_labels = scale[-2:], units[-2:], axis_labels[-2:]
    kwargs = dict(name=name, scale=scale, units=units, axis_labels=axis_labels,
                  colormap=source_layer.colormap.name, blending=source_layer.blending,
                  metadata={"nanosims": info})
    kwargs["contrast_limits"] = contrast_limits(data[None] if two_d else data)
    if name in viewer.layers:
        existing = viewer.layers[name]
        if nanosims_info(existing) and nanosims_info(existing).get("kind") == kind:
            viewer.layers.remove(existing)
    return viewer.add_image(data, **kwargs)


class WorkerRunner:
    """Runs one napari thread worker at a time for a widget.

    Disables the Run button and enables Cancel while a worker runs, drives a magicgui
    ProgressBar, and hands the result to ``on_returned`` on the GUI thread. Errors and
    warnings raised in the worker reach the user as napari notifications. Cancelling
    quits the worker: ``on_returned`` is then never called, so nothing half-done is added.
    """

    def __init__(self, run_button, cancel_button, progress_bar):
        self.run_button = run_button
        self.cancel_button = cancel_button
        self.progress_bar = progress_bar
        self.worker = None
        self.cancel_button.enabled = False
        self.progress_bar.visible = False

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, generator_function: Callable, *args, total: int, description: str,
              on_returned: Callable, **kwargs):
        from napari.qt.threading import create_worker

        if self.running:
            return None
        worker = create_worker(generator_function, *args, _start_thread=False,
                               _progress={"total": total, "desc": description}, **kwargs)
        self.progress_bar.max = max(total, 1)
        self.progress_bar.value = 0
        self.progress_bar.visible = True
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(on_returned)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        worker.start()
        return worker

    def _on_yielded(self, _value=None) -> None:
        try:
            self.progress_bar.value = min(self.progress_bar.value + 1, self.progress_bar.max)
        except RuntimeError:  # the widget was closed while the worker ran: stop it
            self.cancel()

    def _on_finished(self) -> None:
        self.worker = None
        try:
            self.run_button.enabled = True
            self.cancel_button.enabled = False
            self.progress_bar.visible = False
        except RuntimeError:  # the widget was closed while the worker ran
            pass

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()


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
    values = data.get(section, {})
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
