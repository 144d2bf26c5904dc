"""Write processing results: OME-TIFF images with physical pixel size, and a JSON record."""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["output_paths", "write_processing_outputs", "software_versions"]


def software_versions() -> dict[str, str]:
    """Versions of the packages that shape the results."""
    from importlib import metadata

    versions = {}
    for name in ("napari-nanosims", "numpy", "scipy", "scikit-image", "tifffile"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - editable checkouts
            versions[name] = "unknown"
    return versions


def output_paths(input_path: str | os.PathLike, out_dir: str | os.PathLike | None) -> dict:
    """Where the outputs for ``input_path`` go: ``<stem>_sums.ome.tif``, ... in ``out_dir``."""
    source = Path(input_path)
    folder = Path(out_dir) if out_dir is not None else source.parent
    stem = source.stem
    return {
        "sums": folder / f"{stem}_sums.ome.tif",
        "aligned": folder / f"{stem}_aligned.ome.tif",
        "record": folder / f"{stem}_processing.json",
    }


def _ome_metadata(axes: str, pixel_size_um: float, labels) -> dict[str, Any]:
    metadata: dict[str, Any] = {"axes": axes, "Channel": {"Name": list(labels)}}
    if np.isfinite(pixel_size_um) and pixel_size_um > 0:
        metadata.update(PhysicalSizeX=pixel_size_um, PhysicalSizeXUnit="µm",
                        PhysicalSizeY=pixel_size_um, PhysicalSizeYUnit="µm")
    return metadata


def _counts_dtype(array: np.ndarray) -> np.ndarray:
    """Keep whole counts as unsigned integers when they fit; fractions as float32."""
    if array.dtype.kind in "ui":
        if array.size == 0 or array.max() <= np.iinfo(np.uint32).max:
            return array.astype(np.uint32, copy=False)
        return array.astype(np.float64)
    return array.astype(np.float32)


def _json_ready(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def write_processing_outputs(result: dict, input_path, out_dir=None, *, parameters=None,
                             overwrite: bool = False) -> dict:
    """Write the sums, the aligned stack and a JSON record of one processed file.

    Parameters
    ----------
    result : dict
        What :func:`process_image_data` returned for ``input_path``.
    input_path : str or path-like
        The ``.im`` file that was processed (used for names and the record).
    out_dir : str or path-like, optional
        Folder for the outputs (created if needed); default: the input's folder.
    parameters : dict, optional
        Every parameter used, stored in the record.
    overwrite : bool
        Replace existing outputs; otherwise an existing output raises FileExistsError
        before anything is written.

    Returns
    -------
    dict
        The paths written: ``sums`` (OME-TIFF, axes CYX: per-mass sums of the aligned
        frames, raw counts), ``aligned`` (OME-TIFF, axes TCYX: the aligned stack) and
        ``record`` (JSON: translations in px, hot pixels per frame, parameters, versions).
        Pixel sizes are stored in µm. Integer counts are stored as uint32; stacks shifted
        by fractions of a pixel are float32.
    """
    import tifffile

    paths = output_paths(input_path, out_dir)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"outputs exist (use --overwrite to replace): {', '.join(existing)}")
    folder = paths["record"].parent
    folder.mkdir(parents=True, exist_ok=True)
    labels = result["detector_names"]
    pixel_size = float(result["pixel_size"])
    sums = np.stack([result["aligned"][:, k].sum(axis=0) for k in range(len(labels))])
    hot_per_frame = result["hot_pixels"].reshape(result["hot_pixels"].shape[0], -1).sum(axis=1)
    record = {
        "input": str(Path(input_path).resolve()),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "software": software_versions(),
        "parameters": _json_ready(parameters or {}),
        "remove_hot_pixels_kwargs": _json_ready(result["remove_hot_pixels_kwargs"]),
        "detector_names": list(labels),
        "alignment_detector_index": result["alignment_detector_index"],
        "se_detector_index": result["se_detector_index"],
        "pixel_size_um": pixel_size,
        "image_shape_px": list(result["image_shape"]),
        "image_size_um": list(result["image_size"]),
        "translations_px": _json_ready(result["translations"]),
        "translations_axes": ["rows (y)", "columns (x)"],
        "hot_pixels_per_frame": _json_ready(hot_per_frame),
        "hot_pixels_total": int(hot_per_frame.sum()),
        "outputs": {key: str(path) for key, path in paths.items()},
        "header": result["header"].to_dict() if "header" in result else None,
    }
    # Write everything under temporary names first, then move into place, so an
    # interruption leaves no half-written output under a final name.
    temporary = {key: path.with_name(path.name + f".partial-{os.getpid()}")
                 for key, path in paths.items()}
    try:
        tifffile.imwrite(temporary["sums"], _counts_dtype(sums), ome=True,
                         metadata=_ome_metadata("CYX", pixel_size, labels))
        tifffile.imwrite(temporary["aligned"], _counts_dtype(result["aligned"]), ome=True,
                         metadata=_ome_metadata("TCYX", pixel_size, labels))
        temporary["record"].write_text(json.dumps(record, indent=2, ensure_ascii=False))
        for key, path in paths.items():
            if path.exists() and not overwrite:
                raise FileExistsError(f"{path} appeared while writing; not replaced")
            os.replace(temporary[key], path)
    finally:
        for path in temporary.values():
            if path.exists():
                path.unlink()
    return paths
