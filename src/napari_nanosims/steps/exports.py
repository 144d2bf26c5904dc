"""Exports as recipe steps: ``write_nrrd``, ``write_lans`` and ``write_ome_tiff``.

Each writes files and passes the acquisition on unchanged (with the step, and what it
wrote, in the history). ``folder`` empty means the output folder of ``nanosims
process`` (``--out``), or the input file's folder when a recipe runs in the library.
"""

from __future__ import annotations

import os
from pathlib import Path

from .parameters import Parameter, Step

__all__ = ["EXPORT_STEPS", "export_targets"]

_EXPORT_PARAMETERS = (
    Parameter("folder", "", str, "folder to write into (empty: the output folder, or "
              "beside the input file)"),
    Parameter("overwrite", False, bool, "replace files that exist (otherwise the file "
              "fails with a message and nothing is replaced)"),
)


def _folder(acquisition, folder: str) -> Path:
    if folder:
        return Path(folder)
    source = acquisition.path or acquisition.header.path
    return Path(source).resolve().parent if source else Path.cwd()


def export_targets(step: str, stem: str, folder: Path) -> list[Path]:
    """The main files an export step writes for an input called ``stem``."""
    if step == "write_nrrd":
        return [folder / f"{stem}.nrrd"]
    if step == "write_ome_tiff":
        return [folder / f"{stem}.ome.tif"]
    if step == "write_lans":
        return [folder / stem / "dat", folder / stem / "mat"]
    return []


def _run_write_nrrd(acquisition, *, folder, overwrite):
    from ..export.nrrd import write_nrrd

    yield 0, 1
    target = export_targets("write_nrrd", acquisition.stem, _folder(acquisition, folder))[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    written = write_nrrd(acquisition, target, overwrite=overwrite)
    yield 1, 1
    return acquisition.with_step("write_nrrd", {"folder": folder, "overwrite": overwrite,
                                                "written": os.fspath(written)})


def _run_write_ome_tiff(acquisition, *, folder, overwrite):
    from ..export.ometiff import (acquisition_description, atomic_outputs, frame_interval_s,
                          write_ome_tiff)

    yield 0, 1
    target = export_targets("write_ome_tiff", acquisition.stem,
                            _folder(acquisition, folder))[0]
    if os.path.lexists(target) and not overwrite:
        raise FileExistsError(f"{target} exists (use --overwrite to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs({"tif": target}, overwrite) as temporary:
        write_ome_tiff(temporary["tif"], acquisition.counts, "TCYX", acquisition.pixel_size_um,
                       acquisition.labels, acquisition_description(acquisition, "stack"),
                       time_increment_s=frame_interval_s(acquisition.header))
    yield 1, 1
    return acquisition.with_step("write_ome_tiff", {"folder": folder, "overwrite": overwrite,
                                                    "written": os.fspath(target)})


def _run_write_lans(acquisition, *, folder, overwrite):
    from ..export.lans import write_lans

    yield 0, 1
    target = _folder(acquisition, folder) / acquisition.stem
    write_lans(acquisition, target, overwrite=overwrite)
    yield 1, 1
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
