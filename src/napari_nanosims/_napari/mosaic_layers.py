"""Mosaics in napari: tiles as layers placed by translation, nudges kept as offsets (no Qt).

Nothing is resampled: each tile's layers keep their data and get ``translate`` = the
tile's offset (µm) from :class:`~napari_nanosims.Mosaic`. Each layer's
``metadata['nanosims']['mosaic']`` says which mosaic and tile it belongs to, the offset
from the stage positions and the nudge. A nudge moves every layer of a tile and is kept
apart from the stage offset, so that :func:`mosaic_from_layers` rebuilds the mosaic with
its nudges recorded in the history (and the stitched export uses them).
"""

from __future__ import annotations

import numpy as np

from ..io.mosaic import Mosaic, mosaic
from .layers import file_layer_data
from .lookups import acquisition_from_layers, nanosims_info

__all__ = ["MOSAIC_KEY", "mosaic_layer_data", "place_layers", "nudge_tile", "mosaic_ids",
           "mosaic_tiles", "mosaic_from_layers"]

#: Key of the mosaic entry in ``layer.metadata['nanosims']``.
MOSAIC_KEY = "mosaic"


def _entry(tiles: Mosaic, tile: int) -> dict:
    return {"mosaic_id": tiles.mosaic_id, "tile": int(tile),
            "stage_offset_um": [float(v) for v in tiles.stage_offsets_um[tile]],
            "nudge_um": [float(v) for v in tiles.nudges_um[tile]],
            "stage_to_image": tiles.stage_to_image.tolist()}


def _translate(ndim: int, offset_um) -> tuple[float, ...]:
    return (0.0,) * (ndim - 2) + tuple(float(v) for v in offset_um)


def mosaic_layer_data(tiles: Mosaic) -> list[tuple]:
    """Layer data tuples of every channel of every tile, translated to its place.

    Parameters
    ----------
    tiles : Mosaic
        From :func:`napari_nanosims.mosaic`.

    Returns
    -------
    list of tuple
        As for an opened file (lazy stacks, one layer per channel, the first ion channel
        shown), each with ``translate`` (0, y µm, x µm) and the mosaic entry in its
        metadata.
    """
    layers = []
    for tile, acquisition in enumerate(tiles.tiles):
        for data, kwargs, kind in file_layer_data(acquisition):
            kwargs["translate"] = _translate(len(data.shape), tiles.offsets_um[tile])
            kwargs["metadata"]["nanosims"][MOSAIC_KEY] = _entry(tiles, tile)
            layers.append((data, kwargs, kind))
    return layers


def _tile_layers(viewer, acquisition_id: str) -> list:
    return [layer for layer in viewer.layers
            if (info := nanosims_info(layer)) and info["acquisition_id"] == acquisition_id]


def place_layers(viewer, acquisition_ids: list[str], **options) -> Mosaic:
    """Place the opened files ``acquisition_ids`` as a mosaic: their layers (every kind)
    get ``translate`` from :func:`napari_nanosims.mosaic` and the mosaic entry.

    ``options`` go to :func:`napari_nanosims.mosaic` (``stage_to_image``,
    ``max_pixels``). Raises ValueError (mixed masses or pixel sizes, stage positions all
    zero, a file whose layers are gone) before any layer is moved.
    """
    tiles = []
    for acquisition_id in acquisition_ids:
        acquisition = acquisition_from_layers(viewer, acquisition_id)
        if acquisition is None:
            raise ValueError(f"mosaic: the layers of file {acquisition_id} are incomplete")
        tiles.append(acquisition)
    placed = mosaic(tiles, **options)
    for tile, acquisition_id in enumerate(acquisition_ids):
        for layer in _tile_layers(viewer, acquisition_id):
            layer.translate = _translate(layer.ndim, placed.offsets_um[tile])
            layer.metadata["nanosims"][MOSAIC_KEY] = _entry(placed, tile)
    return placed


def mosaic_ids(viewer) -> list[str]:
    """The ids of the mosaics whose layers are in the viewer, in layer order."""
    found = []
    for layer in viewer.layers:
        entry = (nanosims_info(layer) or {}).get(MOSAIC_KEY)
        if entry and entry["mosaic_id"] not in found:
            found.append(entry["mosaic_id"])
    return found


def mosaic_tiles(viewer, mosaic_id: str) -> dict[int, list]:
    """Tile index -> its layers, for one mosaic."""
    tiles: dict[int, list] = {}
    for layer in viewer.layers:
        entry = (nanosims_info(layer) or {}).get(MOSAIC_KEY)
        if entry and entry["mosaic_id"] == mosaic_id:
            tiles.setdefault(int(entry["tile"]), []).append(layer)
    return dict(sorted(tiles.items()))


def nudge_tile(viewer, mosaic_id: str, tile: int, offset_um) -> None:
    """Move every layer of one tile by ``offset_um`` (dy, dx) µm and keep it as a nudge."""
    offset = np.asarray(offset_um, dtype=float)
    if offset.shape != (2,) or not np.all(np.isfinite(offset)):
        raise ValueError(f"offset_um must be two finite numbers (dy, dx), not {offset_um!r}")
    layers = mosaic_tiles(viewer, mosaic_id).get(int(tile))
    if not layers:
        raise ValueError(f"mosaic {mosaic_id} has no tile {tile} in the viewer")
    for layer in layers:
        entry = layer.metadata["nanosims"][MOSAIC_KEY]
        entry["nudge_um"] = [float(v) for v in np.add(entry["nudge_um"], offset)]
        layer.translate = _translate(layer.ndim, np.add(entry["stage_offset_um"],
                                                        entry["nudge_um"]))


def mosaic_from_layers(viewer, mosaic_id: str) -> Mosaic:
    """The mosaic behind the layers, with every tile's nudge applied and recorded.

    A layer moved by other means than :func:`nudge_tile` (its ``translate`` edited)
    counts too: the nudge is the layer's translation minus its stage offset.
    """
    tiles = mosaic_tiles(viewer, mosaic_id)
    if not tiles or sorted(tiles) != list(range(len(tiles))):
        raise ValueError(f"mosaic {mosaic_id}: tiles are missing from the viewer "
                         f"(found {sorted(tiles)})")
    acquisitions, nudges, matrix = [], [], None
    for layers in tiles.values():
        info = nanosims_info(layers[0])
        assert info is not None  # mosaic_tiles keeps layers with nanosims metadata only
        acquisition = acquisition_from_layers(viewer, info["acquisition_id"])
        if acquisition is None:
            raise ValueError(f"mosaic {mosaic_id}: the layers of {info['source_path']} are "
                             f"incomplete")
        acquisitions.append(acquisition)
        entry = info[MOSAIC_KEY]
        matrix = entry["stage_to_image"]
        nudges.append(np.asarray(layers[0].translate[-2:], dtype=float)
                      - np.asarray(entry["stage_offset_um"], dtype=float))
    placed = mosaic(acquisitions, stage_to_image=matrix)
    placed.mosaic_id = mosaic_id
    for tile, nudge in enumerate(nudges):
        if np.any(np.abs(nudge) > 1e-9):
            placed = placed.nudged(tile, nudge)
    return placed
