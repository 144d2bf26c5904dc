"""The per-ROI and per-class tables as files: CSV, Parquet when pyarrow is installed, and a
JSON sidecar saying what produced them.

Written together through :func:`~napari_nanosims.export._files.atomic_outputs`: all of
them appear, or none, and nothing is replaced unless the caller asks.
"""

from __future__ import annotations

import json
import os
from importlib.util import find_spec
from pathlib import Path

from ._files import atomic_outputs

__all__ = ["table_outputs", "write_roi_tables", "parquet_available"]


def parquet_available() -> bool:
    """Whether pandas can write Parquet here (pyarrow installed)."""
    return find_spec("pyarrow") is not None


def table_outputs(path: str | os.PathLike, *, classes: bool,
                  parquet: bool | None = None) -> dict[str, Path]:
    """Every file :func:`write_roi_tables` writes for ``path``, by kind.

    ``<name>.csv`` (per ROI), ``<name>.json`` (the sidecar), with ``classes``
    ``<name>_classes.csv`` (per class), and with Parquet ``<name>.parquet`` and
    ``<name>_classes.parquet``.
    """
    path = Path(path)
    stem = path.stem if path.suffix.lower() == ".csv" else path.name
    parquet = parquet_available() if parquet is None else parquet
    kinds = {"roi csv": ".csv", "sidecar": ".json"}
    if classes:
        kinds["class csv"] = "_classes.csv"
    if parquet:
        kinds["roi parquet"] = ".parquet"
        if classes:
            kinds["class parquet"] = "_classes.parquet"
    return {kind: path.with_name(stem + ending) for kind, ending in kinds.items()}


def write_roi_tables(path: str | os.PathLike, roi_table, class_table=None,
                     sidecar: dict | None = None, *, overwrite: bool = False,
                     parquet: bool | None = None) -> list[Path]:
    """Write a per-ROI table, its per-class table and the sidecar, all or nothing.

    Parameters
    ----------
    path : path-like
        The per-ROI CSV (``.csv`` is added when the name has another ending); the other
        names follow from it (:func:`table_outputs`). Its folder must exist.
    roi_table : pandas.DataFrame
        The tidy ROI table (:func:`~napari_nanosims.roi_table` and the rows added by
        ``normalise``, ``calibrate``, ``assimilation``).
    class_table : pandas.DataFrame, optional
        :func:`~napari_nanosims.compare_classes`'s table(s).
    sidecar : dict, optional
        What produced the tables (file, history, classes, controls, rate inputs); written
        as JSON with the names of the other files added.
    overwrite : bool
        Replace files that exist; otherwise
        :class:`~napari_nanosims.export._files.OutputExistsError` naming them, before
        anything is written.
    parquet : bool, optional
        Write Parquet copies too (default: when pyarrow is installed).

    Returns
    -------
    list of pathlib.Path
        The per-ROI CSV, the sidecar, then the others.
    """
    names = table_outputs(path, classes=class_table is not None, parquet=parquet)
    record = dict(sidecar or {})
    record["tables"] = {kind: name.name for kind, name in names.items() if kind != "sidecar"}
    with atomic_outputs(names, overwrite=overwrite) as temporary:
        roi_table.to_csv(temporary["roi csv"], index=False)
        if class_table is not None:
            class_table.to_csv(temporary["class csv"], index=False)
        if "roi parquet" in names:
            _parquet(roi_table, temporary["roi parquet"])
            if class_table is not None:
                _parquet(class_table, temporary["class parquet"])
        temporary["sidecar"].write_text(json.dumps(record, indent=2, ensure_ascii=False,
                                                   default=_plain))
    return list(names.values())


def _parquet(table, path: Path) -> None:
    # Parquet needs one type per column: class names may mix text and numbers.
    if "class" in table.columns:
        table = table.assign(**{"class": table["class"].map(
            lambda name: None if name is None else str(name))})
    table.to_parquet(path, index=False)


def _plain(value):
    """numpy numbers and paths as JSON values."""
    if hasattr(value, "item"):
        return value.item()
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)
