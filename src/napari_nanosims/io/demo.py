"""A deterministic, realistic demo acquisition written as a real ``.im`` file."""

from __future__ import annotations

import datetime as _dt
import os
from typing import Any

import numpy as np

from .writer import write_im

__all__ = ["make_demo_im", "DEMO_LABELS", "DEMO_MASSES_AMU"]

DEMO_LABELS = ("12C", "13C", "12C 14N", "12C 15N", "31P", "32S", "SE")
DEMO_MASSES_AMU = (11.9995, 13.0028, 26.0025, 27.0000, 30.9732, 31.9715, 0.0)
# Mean counts per pixel per frame inside cells (background outside is ~2 %).
# 13C and 15N carry natural abundance plus enrichment in "labelled" cells.
_CELL_COUNTS = {"12C": 6.0, "12C 14N": 9.0, "31P": 0.8, "32S": 0.6, "SE": 40.0}
_NATURAL_13C = 0.0108
_NATURAL_15N = 0.0037


def _field(shape: tuple[int, int], rng: np.random.Generator, n_cells: int) -> dict[str, Any]:
    """Smooth noise-free maps of a field of cells, larger than one frame."""
    from scipy import ndimage
    from scipy.special import expit

    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    body = np.zeros(shape)
    nucleus = np.zeros(shape)
    labelled_13c = np.zeros(shape)
    labelled_15n = np.zeros(shape)
    cells = np.zeros(shape, dtype=np.int32)  # ground truth: cell k where its body > 1/2
    for number in range(1, n_cells + 1):
        cy, cx = rng.uniform(8, height - 8), rng.uniform(8, width - 8)
        a, b = rng.uniform(5, 14), rng.uniform(4, 9)
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(angle) + dy * np.sin(angle)) / a
        v = (-dx * np.sin(angle) + dy * np.cos(angle)) / b
        radius = np.sqrt(u * u + v * v)
        cell = expit((1.0 - radius) * 12.0)
        cells[(radius < 1.0) & (cells == 0)] = number
        body = np.maximum(body, cell * rng.uniform(0.7, 1.3))
        nucleus = np.maximum(nucleus, expit((0.35 - radius) * 20.0))
        if rng.random() < 0.4:
            labelled_13c = np.maximum(labelled_13c, cell * rng.uniform(0.02, 0.08))
        if rng.random() < 0.4:
            labelled_15n = np.maximum(labelled_15n, cell * rng.uniform(0.01, 0.05))
    texture = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    texture = 1.0 + 0.15 * texture / (texture.std() + 1e-12)
    body = body * texture + 0.02
    topography = ndimage.gaussian_filter(body, 1.5) + 0.3 * ndimage.sobel(
        ndimage.gaussian_filter(body, 1.0), axis=1) ** 2
    return dict(body=body, nucleus=nucleus, labelled_13c=labelled_13c,
                labelled_15n=labelled_15n, topography=topography, cells=cells)


def _expected_counts(field: dict[str, Any]) -> np.ndarray:
    """Mean counts per mass (masses, height, width) from the field maps."""
    body = field["body"]
    c12 = _CELL_COUNTS["12C"] * body
    cn14 = _CELL_COUNTS["12C 14N"] * body
    return np.stack([
        c12,
        c12 * (_NATURAL_13C + field["labelled_13c"]),
        cn14,
        cn14 * (_NATURAL_15N + field["labelled_15n"]),
        _CELL_COUNTS["31P"] * (0.3 * body + field["nucleus"]),
        _CELL_COUNTS["32S"] * body,
        _CELL_COUNTS["SE"] * field["topography"] / max(field["topography"].max(), 1e-12),
    ])


def make_demo_im(filename: str | os.PathLike, seed: int = 0, *, n_frames: int = 20,
                 size: int = 256, n_hot_events: int = 6, overwrite: bool = False
                 ) -> dict[str, Any]:
    """Write a deterministic, realistic demo NanoSIMS acquisition.

    Simulated cells imaged in 12C, 13C, 12C 14N, 12C 15N, 31P, 32S and the
    secondary-electron image, with Poisson counts at realistic levels (a few
    counts per pixel per frame in the bright channels, well under one in 13C and
    15N), a random-walk drift between frames with sub-pixel parts (each frame is
    a window cut from a larger field, so new content enters at the edges), and
    correlated hot pixels: single events that spike every ion channel of one
    frame at one pixel.

    Parameters
    ----------
    filename : str or path-like
        Where to write the ``.im`` file (release 4108 layout, see :func:`write_im`).
    seed : int
        Seed of the random generator; the same seed writes the same bytes.
    n_frames : int
        Number of frames (default 20).
    size : int
        Image width and height, pixels (default 256).
    n_hot_events : int
        Number of correlated hot-pixel events per frame.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    dict
        Ground truth: ``path``; ``drift_px`` (frames, 2), the (row, column) position of
        each frame's window in the field, pixels; ``translations_px`` (frames, 2), the
        shift to apply to each frame to align it, median-centred as
        :func:`infer_translations` reports it; ``hot_pixels``, a list of
        (frame, row, column) events; ``labels``, ``masses_amu``, ``raster_um``,
        ``dwell_time_us``, ``expected_counts`` (masses, height, width), the noise-free
        mean counts per frame of the undrifted field, and ``cells`` (height, width), the
        label image of the cells in that field (0 outside, 1..N).
    """
    from scipy import ndimage

    if n_frames < 1 or size < 16:
        raise ValueError(f"need at least 1 frame and 16 pixels; got {n_frames}, {size}")
    rng = np.random.default_rng(seed)
    margin = 24
    field_shape = (size + 2 * margin, size + 2 * margin)
    field = _field(field_shape, rng, n_cells=max(4, int(30 * (size / 256) ** 2)))
    expected = _expected_counts(field)

    steps = rng.normal(0.0, 0.6, size=(n_frames, 2))
    steps[0] = 0.0
    drift = np.cumsum(steps, axis=0)
    drift = np.clip(drift, -margin + 2, margin - 2)

    data = np.empty((n_frames, len(DEMO_LABELS), size, size), dtype=np.uint32)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    hot_pixels = []
    for f in range(n_frames):
        coords = np.array([yy + margin + drift[f, 0], xx + margin + drift[f, 1]])
        for m in range(len(DEMO_LABELS)):
            window = ndimage.map_coordinates(expected[m], coords, order=1, mode="nearest")
            data[f, m] = rng.poisson(np.maximum(window, 0.0))
        for _ in range(n_hot_events):
            row, col = int(rng.integers(0, size)), int(rng.integers(0, size))
            # One event spikes all ion channels (not SE) at once.
            data[f, :-1, row, col] += rng.integers(15, 60, size=len(DEMO_LABELS) - 1
                                                   ).astype(np.uint32)
            hot_pixels.append((f, row, col))

    # Frame f shows the field moved by -drift[f]; shifting it by +drift[f] (content
    # moves from pixel p to p + shift) aligns it. Centre on the median the way
    # infer_translations does.
    translations = drift - np.median(drift, axis=0)
    raster_um = 20.0 * size / 256
    dwell_time_us = 1000.0
    path = write_im(
        filename, data, DEMO_LABELS, DEMO_MASSES_AMU, raster_um, dwell_time_us,
        overwrite=overwrite, sample_name="demo cells", comment=f"napari-nanosims demo, seed {seed}",
        analysis_date=_dt.datetime(2024, 5, 17, 9, 30), user="demo",
        experiment="demo", method="simulated", stage_position_um=(1200, -3400, 150),
        primary_current_raw=(2, 2))
    return dict(path=path, drift_px=drift, translations_px=translations,
                hot_pixels=hot_pixels, labels=DEMO_LABELS, masses_amu=DEMO_MASSES_AMU,
                raster_um=raster_um, dwell_time_us=dwell_time_us,
                expected_counts=expected[:, margin:margin + size, margin:margin + size],
                cells=field["cells"][margin:margin + size, margin:margin + size])
