"""Every output name of a run, decided in one place from the input's stem.

For an input ``<stem>.im`` (in the output folder: ``--out``, else beside the input):

============================  ====================================================
kind                          name
============================  ====================================================
``sums``                      ``<stem>_sums.ome.tif``
``variance``                  ``<stem>_variance.ome.tif``
``aligned`` / ``stack``       ``<stem>_aligned.ome.tif`` (the recipe aligns), else
                              ``<stem>_stack.ome.tif``
``record``                    ``<stem>_processing.json``
``rois``, ``roi table``       ``<stem>_rois.tif``, ``<stem>_roi_table.csv``
``class table``               ``<stem>_class_table.csv`` (``compare_classes`` steps)
``ratio image``               ``<stem>_<expression>.ome.tif`` (value and sigma)
``ratio display``             ``<stem>_<expression>.png``
``nrrd``                      ``<stem>.nrrd`` (step ``write_nrrd``)
``ome-tiff``                  ``<stem>.ome.tif`` (step ``write_ome_tiff``)
``lans``                      the folder ``<stem>/`` (step ``write_lans``), holding
                              :func:`lans_file` names
``mosaic``                    ``<stem>_mosaic_<label>.ome.tif`` (one per mass,
                              :func:`mosaic_outputs`; ``<stem>``: the first tile's)
============================  ====================================================

and, across the files of one ``nanosims process``, ``roi_table.csv``
(:func:`combined_roi_table`) and ``class_table.csv`` (:func:`combined_class_table`).
The writers, the check before a run and the record all take their names from here, so
they cannot disagree.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["output_name", "output_folder", "export_folder", "run_outputs",
           "roi_outputs", "ratio_outputs", "export_outputs", "combined_roi_table",
           "class_outputs", "combined_class_table", "mosaic_outputs",
           "safe_expression", "lans_name", "lans_file", "EXPORT_KINDS"]

_NAMES = {
    "sums": "{stem}_sums.ome.tif",
    "variance": "{stem}_variance.ome.tif",
    "aligned": "{stem}_aligned.ome.tif",
    "stack": "{stem}_stack.ome.tif",
    "record": "{stem}_processing.json",
    "rois": "{stem}_rois.tif",
    "roi table": "{stem}_roi_table.csv",
    "class table": "{stem}_class_table.csv",
    "ratio image": "{stem}_{expression}.ome.tif",
    "ratio display": "{stem}_{expression}.png",
    "nrrd": "{stem}.nrrd",
    "ome-tiff": "{stem}.ome.tif",
    "lans": "{stem}",
    "mosaic": "{stem}_mosaic_{expression}.ome.tif",
}

#: The kind of output each export step writes.
EXPORT_KINDS = {"write_nrrd": "nrrd", "write_ome_tiff": "ome-tiff", "write_lans": "lans"}

_COMBINED_ROI_TABLE = "roi_table.csv"
_COMBINED_CLASS_TABLE = "class_table.csv"

_LANS_FILES = {"dac": "dat/{name}.dac", "depth": "dat/{name}-z.dat", "mat": "mat/{name}.mat"}


def safe_expression(expression: str) -> str:
    """A file-name-safe form of an expression: '12C 15N/12C 14N' -> '12C15N_over_12C14N'."""
    text = expression.replace("/", "_over_").replace("*", "x").replace(" ", "")
    return re.sub(r"[^0-9A-Za-z_.+-]", "_", text)[:80]


def output_name(stem: str, kind: str, expression: str | None = None) -> str:
    """The file name of one output of the input called ``stem``.

    Parameters
    ----------
    stem : str
        The input's name without its ``.im``.
    kind : str
        One of the kinds of the module's table (``'sums'``, ``'ratio image'``, ...).
    expression : str, optional
        The expression, for ``'ratio image'`` and ``'ratio display'``.

    Returns
    -------
    str
        The name, without a folder.
    """
    if kind not in _NAMES:
        raise ValueError(f"unknown output kind {kind!r}; one of {', '.join(_NAMES)}")
    if (kind.startswith("ratio") or kind == "mosaic") and expression is None:
        raise ValueError(f"a {kind!r} output needs its expression (or mass label)")
    return _NAMES[kind].format(stem=stem, expression=safe_expression(expression or ""))


def output_folder(input_path: str | os.PathLike,
                  out_dir: str | os.PathLike | None = None) -> Path:
    """Where a run writes: ``out_dir``, or the input's folder when it is None."""
    return Path(out_dir) if out_dir is not None else Path(input_path).parent


def export_folder(folder: str | os.PathLike | None, source: str | os.PathLike | None) -> Path:
    """Where an export step writes: its ``folder`` when given, else the folder of the
    ``source`` file (absolute), else the working folder."""
    if folder:
        return Path(folder)
    return Path(source).resolve().parent if source else Path.cwd()


def run_outputs(input_path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                *, aligned: bool = True) -> dict[str, Path]:
    """The four outputs of every ``nanosims process`` run of one file.

    Returns
    -------
    dict
        ``sums``, ``variance``, ``stack`` (the ``aligned`` name when the recipe aligns,
        else the ``stack`` name) and ``record``.
    """
    stem, folder = Path(input_path).stem, output_folder(input_path, out_dir)
    return {"sums": folder / output_name(stem, "sums"),
            "variance": folder / output_name(stem, "variance"),
            "stack": folder / output_name(stem, "aligned" if aligned else "stack"),
            "record": folder / output_name(stem, "record")}


def roi_outputs(input_path: str | os.PathLike,
                out_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """``rois`` (the label image) and ``roi table`` of one file."""
    stem, folder = Path(input_path).stem, output_folder(input_path, out_dir)
    return {kind: folder / output_name(stem, kind) for kind in ("rois", "roi table")}


def class_outputs(input_path: str | os.PathLike,
                  out_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """``class table`` of one file (the tables of its ``compare_classes`` steps)."""
    stem, folder = Path(input_path).stem, output_folder(input_path, out_dir)
    return {"class table": folder / output_name(stem, "class table")}


def ratio_outputs(input_path: str | os.PathLike, out_dir: str | os.PathLike | None,
                  expression: str) -> dict[str, Path]:
    """``image`` (``.ome.tif``: value and sigma) and ``display`` (``.png``) of one
    expression of one file."""
    stem, folder = Path(input_path).stem, output_folder(input_path, out_dir)
    return {"image": folder / output_name(stem, "ratio image", expression),
            "display": folder / output_name(stem, "ratio display", expression)}


def mosaic_outputs(stem: str, folder: str | os.PathLike, labels) -> dict[str, Path]:
    """The stitched OME-TIFF of each mass of a mosaic: label -> ``folder /
    <stem>_mosaic_<label>.ome.tif`` (the label made file-name safe, ``12C 14N`` -> ``12C14N``)."""
    return {label: Path(folder) / output_name(stem, "mosaic", label) for label in labels}


def export_outputs(step: str, stem: str, folder: str | os.PathLike) -> list[Path]:
    """What an export step writes for the input called ``stem`` into ``folder``.

    Returns
    -------
    list of pathlib.Path
        The file of ``write_nrrd`` or ``write_ome_tiff``; the ``dat`` and ``mat`` folders
        of ``write_lans`` (their files depend on the ROIs and expressions); nothing for
        another step.
    """
    kind = EXPORT_KINDS.get(step)
    if kind is None:
        return []
    target = Path(folder) / output_name(stem, kind)
    return [target / "dat", target / "mat"] if kind == "lans" else [target]


def combined_roi_table(folder: str | os.PathLike) -> Path:
    """The ROI table of every file of one ``nanosims process`` run, in ``folder``."""
    return Path(folder) / _COMBINED_ROI_TABLE


def combined_class_table(folder: str | os.PathLike) -> Path:
    """The class tables of every file of one ``nanosims process`` run, and the classes
    compared across all of them, in ``folder``."""
    return Path(folder) / _COMBINED_CLASS_TABLE


def lans_name(text: str) -> str:
    """A mass label or expression as a LANS file name (``'12C 15N/12C 14N'`` ->
    ``'12C15N-12C14N'``): no spaces, ``/`` and ``*`` become ``-``, ``.`` becomes ``d``."""
    name = "".join(str(text).split())
    return name.replace("/", "-").replace("*", "-").replace(".", "d")


def lans_file(name: str, kind: str) -> str:
    """A file in a LANS folder, relative to it: ``kind`` ``'dac'`` (``dat/<name>.dac``),
    ``'depth'`` (``dat/<name>-z.dat``) or ``'mat'`` (``mat/<name>.mat``), with ``name``
    a :func:`lans_name` (or ``ROIs``, ``xyalign``)."""
    return _LANS_FILES[kind].format(name=name)
