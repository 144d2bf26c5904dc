"""Stitched mosaics as OME-TIFF, one file per mass, written all or nothing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io.mosaic import Mosaic
from ._files import atomic_outputs
from .names import mosaic_outputs
from .ometiff import DESCRIPTION_KEY, json_ready, software_versions, write_ome_tiff

__all__ = ["write_mosaic_tiffs", "mosaic_description"]


def mosaic_description(mosaic: Mosaic, label: str) -> dict:
    """What a stitched OME-TIFF carries in its description: the tiles, their placement
    and its convention, the history, and the units of the two channels."""
    channel = mosaic.tiles[0].channel(label)
    return json_ready({
        DESCRIPTION_KEY: 1,
        "kind": "mosaic",
        "label": channel.label,
        "channels": [{"label": channel.label, "mass_amu": channel.mass_amu,
                      "detector": channel.detector, "kind": channel.kind},
                     {"label": "coverage", "kind": "coverage"}],
        "units": {channel.label: "counts/s", "coverage": "s"},
        "source": mosaic.tiles[0].path or mosaic.tiles[0].header.path,
        "software": software_versions(),
        "pixel_size_um": mosaic.pixel_size_um,
        "tiles": [{"file": tile.path or tile.header.path,
                   "stage_position_um": stage, "offset_um": offset, "nudge_um": nudge,
                   "placement_px": placement, "history": tile.history_dicts()}
                  for tile, stage, offset, nudge, placement in zip(
                      mosaic.tiles, mosaic.stage_positions_um, mosaic.offsets_um,
                      mosaic.nudges_um, mosaic.placement_px, strict=True)],
        "origin_um": mosaic.origin_um,
        "stage_to_image": mosaic.stage_to_image,
        "rounding_px": mosaic.rounding_px,
        "history": [record.to_dict() for record in mosaic.history],
    })


def write_mosaic_tiffs(mosaic: Mosaic, folder: str | os.PathLike | None = None, *,
                       labels=None, stem: str | None = None,
                       overwrite: bool = False) -> dict[str, Path]:
    """Write the stitched image of each mass as an OME-TIFF.

    Parameters
    ----------
    mosaic : Mosaic
        From :func:`napari_nanosims.mosaic`.
    folder : path-like, optional
        Where to write (default: the first tile's folder).
    labels : sequence of str, optional
        The masses to write (default: every mass).
    stem : str, optional
        The start of the names (default: the first tile's file name without ``.im``):
        ``<stem>_mosaic_<label>.ome.tif`` (``export/names.py``).
    overwrite : bool
        Replace existing files; otherwise nothing is written when one exists.

    Returns
    -------
    dict
        Label -> path written.

    Each file holds two channels, CYX float32: ``<label>`` (counts per second, overlaps
    averaged by counting time, NaN where no tile counted) and ``coverage`` (counting time
    behind each pixel, s), with the pixel size, and in its description the tiles, their
    stage positions, offsets, nudges and the history. The files are written under
    temporary names and renamed together once all are complete: an error leaves none.
    """
    first = mosaic.tiles[0]
    labels = list(mosaic.labels if labels is None else labels)
    if not labels:
        raise ValueError("write_mosaic_tiffs: no labels to write")
    try:
        canonical = [first.channel(label).label for label in labels]
    except KeyError as exc:
        raise ValueError(f"write_mosaic_tiffs: {exc.args[0]}") from None
    source = first.path or first.header.path
    folder = Path(folder) if folder is not None else Path(source).resolve().parent
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"write_mosaic_tiffs: {folder} is not a folder")
    folder.mkdir(parents=True, exist_ok=True)  # like --out: a new output folder is made
    stem = stem or os.path.splitext(os.path.basename(source))[0]
    paths = mosaic_outputs(stem, folder, canonical)
    with atomic_outputs(paths, overwrite) as temporary:
        for label in canonical:
            image, coverage = mosaic.stitch(label)
            write_ome_tiff(temporary[label], np.stack([image, coverage]).astype(np.float32),
                           "CYX", mosaic.pixel_size_um, [label, "coverage"],
                           mosaic_description(mosaic, label))
    return paths
