"""Several fields placed by the stage position in their headers: :func:`mosaic`.

Placement
---------
Each ``.im`` header holds the stage position of its field, x, y (and z), in whole
micrometres (``Def_analysis`` bytes 20, 24 and 76; ``ImHeader.stage_position_um``). A
tile's place in the image frame is ``STAGE_TO_IMAGE @ (x, y)``: by default, as the public
evidence says (``docs/usage.md``, "Chains and mosaics"), **stage x runs along the image
rows, increasing downwards, and stage y along the columns, increasing to the right**.
The stage position is taken to be the centre of the field (an assumption, as for every
tool that draws fields by stage position). Whole pixels only: tiles are placed at the
nearest pixel of the first tile's grid, never resampled. Another convention is one
argument away (``stage_to_image``), and a tile that sits wrong can be nudged
(:meth:`Mosaic.nudged`), the nudge kept as an offset and recorded in the history.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

import numpy as np

from ..model import Acquisition, HistoryRecord
from .chains import as_acquisitions, header_differences

__all__ = ["Mosaic", "mosaic", "STAGE_TO_IMAGE", "MAX_MOSAIC_PIXELS"]

#: (row µm, column µm) of a field from its stage (x µm, y µm): rows follow +x, columns +y.
STAGE_TO_IMAGE = ((1.0, 0.0), (0.0, 1.0))

#: Largest stitched image :meth:`Mosaic.stitch` makes (pixels): 2**25 is 5792 x 5792 px,
#: 0.5 GB for the image and its coverage. Stage positions far apart (a wrong tile, or
#: another sample) would otherwise ask for gigabytes.
MAX_MOSAIC_PIXELS = 2 ** 25


def _matrix(stage_to_image) -> np.ndarray:
    matrix = np.asarray(stage_to_image, dtype=float)
    if matrix.shape != (2, 2) or not np.all(np.isfinite(matrix)) or \
            abs(np.linalg.det(matrix)) < 1e-9:
        raise ValueError(f"stage_to_image must be an invertible 2 x 2 matrix of numbers "
                         f"(rows, columns from stage x, y); got {stage_to_image!r}")
    return matrix


class Mosaic:
    """Tiles (acquisitions) and where each one's first pixel sits relative to the first's.

    Build one with :func:`mosaic`. Nothing is copied: the tiles keep their (lazy) counts.

    Attributes
    ----------
    tiles : tuple of Acquisition
        The fields, in the order given.
    stage_positions_um : numpy.ndarray, shape (tiles, 3)
        Stage x, y, z of each tile as its header holds it, micrometres.
    stage_offsets_um : numpy.ndarray, shape (tiles, 2)
        (y, x) of each tile's first pixel relative to the first tile's, from the stage
        positions alone, micrometres.
    nudges_um : numpy.ndarray, shape (tiles, 2)
        Manual corrections (y, x) added to the stage offsets, micrometres (0: none).
    stage_to_image : numpy.ndarray, shape (2, 2)
        The convention used: (row, column) µm = ``stage_to_image @ (stage x, stage y)``.
    history : tuple of HistoryRecord
        How the mosaic was made: ``mosaic``, then one ``nudge_tile`` per nudge.
    mosaic_id : str
        Unique per mosaic; kept by nudged copies.
    max_pixels : int
        Largest stitched image allowed, pixels.
    """

    def __init__(self, tiles: Sequence[Acquisition], stage_offsets_um, *, nudges_um=None,
                 stage_to_image=STAGE_TO_IMAGE, history=(), mosaic_id: str | None = None,
                 max_pixels: int = MAX_MOSAIC_PIXELS):
        self.tiles = tuple(tiles)
        self.stage_offsets_um = np.array(stage_offsets_um, dtype=float).reshape(-1, 2)
        if len(self.stage_offsets_um) != len(self.tiles):
            raise ValueError(f"{len(self.tiles)} tiles but {len(self.stage_offsets_um)} offsets")
        self.nudges_um = np.zeros_like(self.stage_offsets_um) if nudges_um is None else \
            np.array(nudges_um, dtype=float).reshape(-1, 2)
        if self.nudges_um.shape != self.stage_offsets_um.shape or \
                not np.all(np.isfinite(self.nudges_um)):
            raise ValueError(f"nudges_um must be {len(self.tiles)} finite (y, x) pairs")
        self.stage_to_image = _matrix(stage_to_image)
        self.stage_positions_um = np.array([t.header.stage_position_um for t in self.tiles],
                                           dtype=float).reshape(-1, 3)
        self.history = tuple(history)
        self.mosaic_id = mosaic_id or uuid.uuid4().hex
        self.max_pixels = int(max_pixels)
        height, width = self.shape
        if height * width > self.max_pixels:
            extent = np.array(self.shape) * self.pixel_size_um
            raise ValueError(
                f"mosaic: the tiles ({', '.join(self.tile_names)}) spread over "
                f"{extent[0]:.0f} x {extent[1]:.0f} µm, a stitched image of {width} x {height} "
                f"px, more than max_pixels={self.max_pixels}; check the stage positions "
                f"(stage x, y: {self._stage_text()}) or pass a larger max_pixels")

    # -- placement ----------------------------------------------------------------------
    @property
    def offsets_um(self) -> np.ndarray:
        """(tiles, 2): (y, x) of each tile's first pixel relative to the first tile's first
        pixel, micrometres: stage offsets plus nudges."""
        return self.stage_offsets_um + self.nudges_um

    @property
    def pixel_size_um(self) -> float:
        """The tiles' pixel size, micrometres (they all share it)."""
        return float(self.tiles[0].pixel_size_um)

    @property
    def labels(self) -> tuple[str, ...]:
        """The masses every tile holds."""
        return self.tiles[0].labels

    @property
    def tile_names(self) -> tuple[str, ...]:
        return tuple(tile.name for tile in self.tiles)

    def _stage_text(self) -> str:
        return "; ".join(f"{name} {x:g}, {y:g}" for name, (x, y, _) in
                         zip(self.tile_names, self.stage_positions_um, strict=True))

    @property
    def placement_px(self) -> np.ndarray:
        """(tiles, 2) int: row and column of each tile's first pixel in the stitched image
        (the offsets in pixels, rounded to whole pixels, shifted so that none is negative)."""
        pixels = np.rint(self.offsets_um / self.pixel_size_um).astype(np.int64)
        return pixels - pixels.min(axis=0)

    @property
    def rounding_px(self) -> float:
        """The largest distance a tile was moved by placing it on whole pixels, pixels."""
        pixels = self.offsets_um / self.pixel_size_um
        return float(np.max(np.abs(pixels - np.rint(pixels)))) if len(pixels) else 0.0

    @property
    def origin_um(self) -> np.ndarray:
        """(y, x) of the stitched image's first pixel relative to the first tile's, µm."""
        pixels = np.rint(self.offsets_um / self.pixel_size_um).astype(np.int64)
        return pixels.min(axis=0) * self.pixel_size_um

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the stitched image, pixels."""
        sizes = np.array([tile.shape[2:] for tile in self.tiles], dtype=np.int64)
        return cast("tuple[int, int]",
                    tuple(int(v) for v in (self.placement_px + sizes).max(axis=0)))

    def __len__(self) -> int:
        return len(self.tiles)

    def __repr__(self) -> str:
        return (f"Mosaic({len(self.tiles)} tiles, shape={self.shape}, "
                f"labels={list(self.labels)})")

    # -- nudges -------------------------------------------------------------------------
    def nudged(self, tile: int, offset_um) -> Mosaic:
        """A new mosaic with tile ``tile`` moved by ``offset_um`` (dy, dx) µm more.

        The nudge is kept apart from the stage offsets (:attr:`nudges_um`) and recorded
        in the history (``nudge_tile``: the tile, its file and its total nudge).
        """
        if not (isinstance(tile, (int, np.integer)) and 0 <= tile < len(self.tiles)):
            raise ValueError(f"tile must be an index from 0 to {len(self.tiles) - 1}, "
                             f"not {tile!r}")
        offset = np.asarray(offset_um, dtype=float)
        if offset.shape != (2,) or not np.all(np.isfinite(offset)):
            raise ValueError(f"offset_um must be two finite numbers (dy, dx), not {offset_um!r}")
        nudges = self.nudges_um.copy()
        nudges[tile] += offset
        record = HistoryRecord("nudge_tile", {"tile": int(tile), "file": self.tile_names[tile],
                                              "nudge_um": [float(v) for v in nudges[tile]]})
        return Mosaic(self.tiles, self.stage_offsets_um, nudges_um=nudges,
                      stage_to_image=self.stage_to_image, history=self.history + (record,),
                      mosaic_id=self.mosaic_id, max_pixels=self.max_pixels)

    # -- stitching ----------------------------------------------------------------------
    def tile_counts(self, tile: int, label: str) -> tuple[np.ndarray, np.ndarray]:
        """One tile's counts summed over frames and its counting time per pixel.

        Returns
        -------
        counts : numpy.ndarray, float64, (height, width)
            The tile's ``sums`` when a summing step set them, else its frames' sum.
        time_s : numpy.ndarray, float64, (height, width)
            Counting time behind each pixel, seconds: dwell time x the frames the mass
            was counted in (all but in peak switching), each frame weighted by its
            coverage after alignment (0 where a shift brought in nothing).
        """
        acquisition = self.tiles[tile]
        try:
            index = acquisition.channel(label).index
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        if acquisition.sums is not None:
            counts = np.asarray(acquisition.sums[index], dtype=np.float64)
        else:
            counts = np.asarray(acquisition.channel_counts(index).sum(axis=0), dtype=np.float64)
        channel = acquisition.channels[index]
        dwell_s = channel.dwell_time_us * 1e-6
        # A peak-switched mass is counted in some frames only (Channel.frames).
        frames = getattr(channel, "frames", None)
        frames = np.arange(acquisition.n_frames) if frames is None else \
            np.array([f for f in frames if f < acquisition.n_frames], dtype=np.int64)
        if acquisition.coverage is not None:
            coverage = np.asarray(acquisition.coverage, dtype=np.float64)
            time_s = dwell_s * coverage[frames].sum(axis=0)
        else:
            time_s = np.full(counts.shape, dwell_s * len(frames))
        return counts, time_s

    def stitch(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        """The mosaic of one mass: count rate with overlaps averaged by counting time.

        Parameters
        ----------
        label : str
            The mass (``'12C 14N'``, ``'12C14N'``, ``'SE'``...).

        Returns
        -------
        image : numpy.ndarray, float64, :attr:`shape`
            Counts per second: the counts of every tile over a pixel divided by their
            counting time there, so that a tile counted twice as long weighs twice as much
            (sum of counts / sum of times). NaN where no tile counted.
        coverage : numpy.ndarray, float64, :attr:`shape`
            Counting time behind each pixel, seconds (0 outside every tile);
            ``image * coverage`` gives the counts.
        """
        counts_total = np.zeros(self.shape)
        time_total = np.zeros(self.shape)
        for tile, (row, column) in enumerate(self.placement_px):
            counts, time_s = self.tile_counts(tile, label)
            height, width = counts.shape
            counts_total[row:row + height, column:column + width] += counts
            time_total[row:row + height, column:column + width] += time_s
        with np.errstate(invalid="ignore", divide="ignore"):
            image = np.where(time_total > 0, counts_total / time_total, np.nan)
        return image, time_total


def mosaic(items, *, stage_to_image=STAGE_TO_IMAGE,
           max_pixels: int = MAX_MOSAIC_PIXELS) -> Mosaic:
    """Place several fields by the stage positions in their headers.

    Parameters
    ----------
    items : sequence of path-like or Acquisition
        The tiles: files (opened lazily, read-only) or acquisitions (raw, cleaned,
        aligned or summed: :meth:`Mosaic.stitch` uses their sums and coverage).
    stage_to_image : 2 x 2 array_like
        (row µm, column µm) = ``stage_to_image @ (stage x µm, stage y µm)``; the default
        :data:`STAGE_TO_IMAGE` puts stage x along the rows (down) and y along the columns
        (right). ``((-1, 0), (0, 1))`` would flip the rows, ``((0, 1), (1, 0))`` swap them.
    max_pixels : int
        Largest stitched image allowed (pixels); a larger one is refused before anything
        is allocated.

    Returns
    -------
    Mosaic
        With :attr:`Mosaic.offsets_um`, (tiles, 2): (y, x) of each tile's first pixel
        relative to the first tile's, micrometres; the stage position is taken as the
        field's centre, so tiles of different sizes line up by their centres.

    Raises
    ------
    ValueError
        When the tiles hold different masses or pixel sizes (naming the files and what
        differs), when every tile's stage position is (0, 0) (the headers do not say
        where the fields are), for a file twice or a file without pixel data, and when the
        stitched image would exceed ``max_pixels``.
    ImFormatError
        When a path is not a readable ``.im`` file.
    """
    matrix = _matrix(stage_to_image)
    tiles = as_acquisitions(items, "mosaic")
    first = tiles[0]
    for other in tiles[1:]:
        found = header_differences(first.header, other.header, fields=("masses", "pixel size"))
        if found:
            raise ValueError(f"mosaic: cannot place {first.name} and {other.name} together: "
                             f"{'; '.join(found)}")
    stages = np.array([t.header.stage_position_um[:2] for t in tiles], dtype=float)
    if not np.any(stages):
        raise ValueError(f"mosaic: the stage position is (0, 0) in every file "
                         f"({', '.join(t.name for t in tiles)}): the headers do not say where "
                         f"the fields are, so they cannot be placed")
    pixel = float(first.pixel_size_um)
    if not (np.isfinite(pixel) and pixel > 0):
        raise ValueError(f"mosaic: {first.name} has no pixel size (raster {first.header.raster_um} "
                         f"µm); tiles cannot be placed")
    centres = stages @ matrix.T  # (row µm, column µm) of each field's centre
    half_sizes = np.array([t.shape[2:] for t in tiles], dtype=float) * pixel / 2
    corners = centres - half_sizes
    offsets = corners - corners[0]
    record = HistoryRecord("mosaic", {
        "files": [t.path or t.header.path for t in tiles],
        "stage_positions_um": [[float(v) for v in t.header.stage_position_um] for t in tiles],
        "stage_to_image": matrix.tolist(),
        "pixel_size_um": pixel,
        "offsets_um": offsets.tolist(),
    })
    return Mosaic(tiles, offsets, stage_to_image=matrix, history=(record,),
                  max_pixels=max_pixels)
