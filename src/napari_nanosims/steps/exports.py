"""Exports as recipe steps: ``write_nrrd``, ``write_lans`` and ``write_ome_tiff``.

Each writes files and passes the acquisition on unchanged (with the step, and what it
wrote, in the history). ``folder`` empty means the output folder of ``nanosims
process`` (``--out``), or the input file's folder when a recipe runs in the library.
"""

from __future__ import annotations

import os
from pathlib import Path

from .parameters import Parameter, Step
from .progress import Progress

__all__ = ["EXPORT_STEPS"]

_EXPORT_PARAMETERS = (
    Parameter("folder", "", str, "folder to write into (empty: the output folder, or "
              "beside the input file)"),
    Parameter("overwrite", False, bool, "replace files that exist (otherwise the file "
              "fails with a message and nothing is replaced)"),
)


def _target(step: str, acquisition, folder: str) -> Path:
    """The file (or LANS folder) ``step`` writes for ``acquisition`` into ``folder``."""
    from ..export.names import EXPORT_KINDS, export_folder, output_name

    source = acquisition.path or acquisition.header.path
    return export_folder(folder, source) / output_name(acquisition.stem, EXPORT_KINDS[step])


def _run_write_nrrd(acquisition, *, folder, overwrite):
    from ..export.nrrd import write_nrrd

    yield Progress("write_nrrd", 0, 1)
    target = _target("write_nrrd", acquisition, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    written = write_nrrd(acquisition, target, overwrite=overwrite)
    yield Progress("write_nrrd", 1, 1)
    return acquisition.with_step("write_nrrd", {"folder": folder, "overwrite": overwrite,
                                                "written": os.fspath(written)})


def _run_write_ome_tiff(acquisition, *, folder, overwrite):
    from ..export._files import atomic_output
    from ..export.ometiff import write_acquisition_tiffs

    yield Progress("write_ome_tiff", 0, 1)
    target = _target("write_ome_tiff", acquisition, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target, overwrite) as temporary:
        write_acquisition_tiffs(acquisition, {"stack": temporary})
    yield Progress("write_ome_tiff", 1, 1)
    return acquisition.with_step("write_ome_tiff", {"folder": folder, "overwrite": overwrite,
                                                    "written": os.fspath(target)})


def _run_write_lans(acquisition, *, folder, overwrite):
    from ..export.lans import write_lans

    yield Progress("write_lans", 0, 1)
    target = _target("write_lans", acquisition, folder)
    write_lans(acquisition, target, overwrite=overwrite)
    yield Progress("write_lans", 1, 1)
    return acquisition.with_step("write_lans", {"folder": folder, "overwrite": overwrite,
                                                "written": os.fspath(target)})


EXPORT_STEPS = (
    Step("write_nrrd", "Write OpenMIMS .nrrd",
         "Write the counts as it stands as <stem>.nrrd (OpenMIMS, NanoSIMS Stabilizer).",
         _EXPORT_PARAMETERS, _run_write_nrrd),
    Step("write_ome_tiff", "Write OME-TIFF",
         "Write the counts as they stand as <stem>.ome.tif (TCYX, µm, channel names, "
         "history).", _EXPORT_PARAMETERS, _run_write_ome_tiff),
    Step("write_lans", "Write LANS files",
         "Write LANS's dat/ and mat/ files for the ROIs into <stem>/ (lans2r, LANS); "
         "needs ROIs.", _EXPORT_PARAMETERS, _run_write_lans),
)
