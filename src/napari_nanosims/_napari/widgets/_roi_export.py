"""The ROIs tab's export: the per-ROI and per-class tables and the JSON of what produced
them (the measurement's file and history, the classes, control, standard and rate
inputs, and the analysis as recipe steps), written by
:func:`~napari_nanosims.export.tables.write_roi_tables`."""

from __future__ import annotations

import os
from pathlib import Path

from ...steps.classes import CALIBRATE
from ._controls import control_value


def sidecar(panel) -> dict:
    """What produced the tables of ``panel`` (a :class:`~.roi_classes.ClassPanel`)."""
    tab, measured = panel.tab, panel.tab._measured
    layer = panel.class_layer.value
    return {"file": measured["file"], "expressions": measured["expressions"],
            "roi_layer": tab.roi_layer.value.name if tab.roi_layer.value else None,
            "measured": measured["note"], "history": measured["history"],
            "classes": {str(roi): name for roi, name in sorted(panel.assigned.items())},
            "quantity": panel.quantity.value, "control": panel.control.value,
            "standard": panel.standard.value,
            "true_value": control_value(CALIBRATE.parameter("true_value"),
                                        panel.true_value),
            "rates": panel.rate_inputs(),
            "class_layer": layer.name if layer is not None else None,
            "class_names": panel.names.value,
            # the analysis after the history, as recipe steps (nanosims process --recipe)
            "steps": [{"step": name, "parameters": parameters}
                      for name, parameters in panel.steps],
            "notes": panel.notes}


def export_tables(panel, path=None, overwrite: bool = False):
    """Write the per-ROI table (a ``file`` column first), the per-class table (when the
    ROIs have classes), Parquet copies (pyarrow) and the sidecar.

    Asks where when ``path`` is None (the dialog confirms replacing the CSV, and then its
    companions are replaced too); a given ``path`` whose outputs exist is kept unless
    ``overwrite``. Returns the paths written (per-ROI CSV, sidecar, then the others), or
    None with a warning.
    """
    from napari.utils.notifications import show_warning

    from ...export._files import OutputExistsError, OutputWriteError
    from ...export.tables import write_roi_tables

    tab = panel.tab
    if tab.statistics is None:
        show_warning("Measure the ROIs first.")
        return None
    if path is None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(tab.native, "Export ROI tables",
                                              "roi_table.csv", "CSV (*.csv)")
        if not path:
            return None
        overwrite = os.path.lexists(path)  # the dialog asked before replacing it
    table = panel.table if panel.table is not None else tab.statistics
    table = table.assign(file=tab._measured["file"])
    table = table[["file"] + [c for c in table.columns if c != "file"]]
    try:
        written = write_roi_tables(Path(path), table, panel.class_table, sidecar(panel),
                                   overwrite=overwrite)
    except (OutputExistsError, OutputWriteError) as exc:
        show_warning(str(exc))
        return None
    tab.summary.value = "exported " + ", ".join(p.name for p in written
                                                if p.suffix == ".csv")
    return written
