"""The "File" tab: undo a step, go back to the raw file, save what was done as a recipe,
export the current results (OME-TIFF, OpenMIMS .nrrd, LANS); the file's header below."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import napari.viewer
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton

from ...steps.recipe import Recipe
from ...steps.registry import STEPS
from ..layers import KIND_RAW
from ._base import FileWidget
from ._common import (
    KIND_ALIGNED,
    KIND_CLEANED,
    KIND_CORRECTED,
    acquisition_from_layers,
    nanosims_info,
)
from ._undo import UndoHistory

#: What the export drop-down offers: shown name -> the export step that writes it.
EXPORTS = {"OME-TIFF (napari, Fiji)": "write_ome_tiff",
           "OpenMIMS .nrrd (Stabilizer)": "write_nrrd",
           "LANS folder (lans2r)": "write_lans"}
#: Kinds of layers an export and a recipe start from, most processed first.
PROCESSED = (KIND_ALIGNED, KIND_CORRECTED, KIND_CLEANED)


def session_history(viewer, acquisition_id: str) -> list[dict]:
    """Every step the tabs ran on a file, in order, from its layers' histories.

    The longest history is the backbone (clean, correct, align...); steps found only
    on other layers (a second ratio image) are added after it, each once.
    """
    histories = sorted((list((nanosims_info(layer) or {}).get("history") or [])
                        for layer in viewer.layers
                        if (nanosims_info(layer) or {}).get("acquisition_id") == acquisition_id),
                       key=len, reverse=True)
    if not histories:
        return []
    merged = list(histories[0])
    for history in histories[1:]:
        for record in history:
            if record not in merged:
                merged.append(record)
    return merged


def raw_layers_only(viewer, acquisition_id: str) -> int:
    """Remove every layer the tabs made for a file and show its raw layers again.

    Painted or found ROI layers stay (they are the user's work); the raw layers of the
    channels that were on screen are shown and selected. Returns how many layers were
    removed.
    """
    removed, shown = 0, set()
    for layer in list(viewer.layers):
        info = nanosims_info(layer)
        if (info and info.get("acquisition_id") == acquisition_id
                and info.get("kind", KIND_RAW) != KIND_RAW):
            if layer.visible:
                shown.add(info.get("detector_index"))
            viewer.layers.remove(layer)
            removed += 1
    raw = [layer for layer in viewer.layers
           if (nanosims_info(layer) or {}).get("acquisition_id") == acquisition_id]
    if shown and raw:  # the channels that were on screen, now as they were read
        for layer in raw:
            # raw: layers with nanosims metadata only
            layer.visible = cast(dict, nanosims_info(layer)).get("detector_index") in shown
        visible = [layer for layer in raw if layer.visible]
        if visible:
            viewer.layers.selection.active = visible[0]
    return removed


class SessionWidget(FileWidget):
    """Undo, back to raw, the session as a recipe, and exports of the current results.

    "Undo last step" restores what the last step of the chosen file replaced (its
    layers' data) and removes the layers it added; "Back to raw" removes every result
    layer of the file. "Save recipe..." writes the steps run on the file, with their
    parameters, as a TOML recipe that ``nanosims process --recipe`` replays on other
    files. Export writes the file's most processed layers (aligned, else corrected, else
    cleaned, else raw) in the chosen format into the chosen folder; nothing is
    overwritten unless "overwrite" is ticked. ``header`` (a :class:`HeaderPanel`) is
    shown under the results when given.
    """

    def __init__(self, viewer: napari.viewer.Viewer, header=None):
        super().__init__(viewer, "Export")
        self.header = header
        self.undo_button = PushButton(text="Undo last step")
        self.raw_button = PushButton(text="Back to raw")
        self.recipe_button = PushButton(text="Save recipe...")
        self.edit_row = Container(layout="horizontal", labels=False,
                                  widgets=[self.undo_button, self.raw_button])
        self.edit_row.margins = (0, 0, 0, 0)
        self.export_format = ComboBox(label="export as", choices=list(EXPORTS),
                                      tooltip="OME-TIFF: napari and Fiji; .nrrd: OpenMIMS "
                                              "and the NanoSIMS Stabilizer; LANS: lans2r")
        # magicgui turns the string into its FileDialogMode (a directory)
        self.folder = FileEdit(label="into folder", mode="d",  # type: ignore[arg-type]
                               tooltip="the folder the export is written into (empty: "
                                       "the folder of the .im file)")
        self.folder.choose_btn.text = "Choose..."  # "Choose directory" leaves no room
        self.overwrite = CheckBox(label="overwrite existing files", value=False)
        self.note = Label(label="", value="")
        self._lay_out(controls=[self.file, self.edit_row, self.recipe_button,
                                self.export_format, self.folder, self.overwrite],
                      results=[self.note] + ([header] if header is not None else []))
        self.undo_button.changed.connect(self.undo)
        self.raw_button.changed.connect(self.back_to_raw)
        self.recipe_button.changed.connect(lambda _v=None: self.save_recipe())
        self._connect()

    # -- undo and raw -----------------------------------------------------------------
    def undo(self, _value=None) -> str | None:
        """Undo the chosen file's last step; say what was undone."""
        if self.file.value is None:
            self.note.value = "Open a NanoSIMS .im file first."
            return None
        what = UndoHistory.of(self._viewer).undo(self._viewer, self.file.value)
        self.note.value = (f"Undone: the {what} layers." if what else
                           "Nothing to undo for this file (no step run since it was "
                           "opened, or the last five were undone).")
        return what

    def back_to_raw(self, _value=None) -> int:
        """Remove the chosen file's result layers; show the raw layers."""
        if self.file.value is None:
            self.note.value = "Open a NanoSIMS .im file first."
            return 0
        acquisition_id = self.file.value
        removed = raw_layers_only(self._viewer, acquisition_id)
        UndoHistory.of(self._viewer).forget(acquisition_id)
        self.note.value = (f"Back to raw: {removed} result layer(s) removed." if removed
                           else "Only raw layers are open for this file.")
        return removed

    # -- recipe -----------------------------------------------------------------------
    def recipe(self) -> Recipe | None:
        """The chosen file's steps as a :class:`Recipe` (None: no step was run)."""
        if self.file.value is None:
            return None
        history = [record for record in session_history(self._viewer, self.file.value)
                   if record.get("step") in STEPS]
        return Recipe.from_history(history) if history else None

    def save_recipe(self, path: str | Path | None = None) -> Path | None:
        """Write :meth:`recipe` as TOML to ``path`` (asked for when not given)."""
        recipe = self.recipe()
        if recipe is None:
            self.note.value = "No step was run on this file yet: nothing to save."
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(self.native, "Save the session as a "
                                                  "recipe", "recipe.toml", "TOML (*.toml)")
            if not path:
                return None
            overwrite = True  # the dialog has asked already
        else:
            overwrite = False
        try:
            written = recipe.save(path, overwrite=overwrite)
        except (OSError, ValueError) as exc:
            self.note.value = f"Not saved: {exc}"
            return None
        steps = ", ".join(name for name, _ in recipe.steps)
        self.note.value = (f"Recipe saved: {written.name} ({steps}). Replay it with "
                           f"nanosims process --recipe {written.name} FILES --out FOLDER")
        return written

    # -- export -------------------------------------------------------------------------
    def run(self, _value=None):
        """Export the chosen file's current results in a worker; returns the worker."""
        if self.file.value is None:
            self.note.value = "Open a NanoSIMS .im file first."
            return None
        acquisition = acquisition_from_layers(self._viewer, self.file.value, PROCESSED)
        if acquisition is None:
            self.note.value = "Some channel layers of this file were deleted; open it again."
            return None
        step = STEPS[EXPORTS[self.export_format.value]]
        folder = str(self.folder.value) if str(self.folder.value) not in ("", ".") else ""
        if not folder and acquisition.path is not None:
            folder = str(Path(acquisition.path).parent)
        parameters = {"folder": folder, "overwrite": bool(self.overwrite.value)}

        def job():
            try:
                result = yield from step.iterate(acquisition, **parameters)
            except (OSError, ValueError) as exc:  # exists, no room, unwritable: say so
                return False, str(exc)
            return True, result.history[-1].parameters.get("written", "")

        self.note.value = f"Exporting {acquisition.name}..."
        return self._runner.start(job(), description=f"Exporting: {acquisition.name}",
                                  on_returned=self._exported)

    def _exported(self, returned) -> None:
        if self._closed:
            return
        ok, text = returned
        self.note.value = f"Written: {text}" if ok else f"Not exported: {text}"
        if ok and text:  # reopening it opens it with our reader, without napari's dialog
            from ..writers import remember_reader_for_folder

            remember_reader_for_folder(Path(text).parent)
