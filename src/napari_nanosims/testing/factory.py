"""Synthetic ``.im`` files for tests, benchmarks and docs: one factory, not a helper per test.

The factory writes through the library's own :func:`napari_nanosims.write_im`, so a file made
here is exactly what a user writing counts would get. Counts are either given (any special
scene a test builds) or drawn as seeded Poisson noise, so the same arguments always give the
same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_nanosims.io.writer import write_im

#: Three ions and the secondary-electron image: the channels most tests need.
DEFAULT_LABELS = ("12C", "13C", "12C 14N", "SE")


def default_masses(labels: Sequence[str]) -> list[float]:
    """Masses for ``labels``: 0 for SE (as the instrument stores it), 12, 13, ... by position.

    Parameters
    ----------
    labels : sequence of str
        Species labels, ``'SE'`` for the secondary-electron channel.

    Returns
    -------
    list of float
        One mass per label, atomic mass units. They only need to be plausible: the reader
        does not check them against the labels.
    """
    return [0.0 if label == "SE" else 12.0 + index for index, label in enumerate(labels)]


def poisson_counts(frames: int, masses: int, shape: tuple[int, int] = (24, 24), *,
                   mean: float = 3.0, seed: int = 0) -> np.ndarray:
    """Seeded Poisson counts with shape (frames, masses, height, width), ``uint32``.

    Parameters
    ----------
    frames, masses : int
        Number of frames (planes) and of masses (channels).
    shape : (int, int)
        Height and width of one image, pixels.
    mean : float
        Expected counts per pixel and frame.
    seed : int
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same counts.

    Returns
    -------
    numpy.ndarray
    """
    rng = np.random.default_rng(seed)
    return rng.poisson(mean, size=(frames, masses) + tuple(shape)).astype(np.uint32)


def make_im(path: str | os.PathLike, counts: Any = None, *,
            labels: Sequence[str] = DEFAULT_LABELS, masses_amu: Sequence[float] | None = None,
            frames: int = 12, shape: tuple[int, int] = (24, 24), mean: float = 3.0,
            seed: int = 0, raster_um: float = 5.0, dwell_time_us: float = 100.0,
            **write_options: Any) -> str:
    """Write a synthetic NanoSIMS ``.im`` file and return its path.

    Parameters
    ----------
    path : str or path-like
        Where to write; missing parent folders are made.
    counts : array_like of int, optional
        The counts, (frames, masses, height, width). None draws :func:`poisson_counts`
        with ``frames``, ``shape``, ``mean`` and ``seed`` (one mass per label).
    labels : sequence of str
        Species label of each mass; ``'SE'`` marks the secondary-electron channel.
    masses_amu : sequence of float, optional
        Mass of each species; default :func:`default_masses`.
    frames : int
        Frames drawn when ``counts`` is None.
    shape : (int, int)
        Image height and width drawn when ``counts`` is None.
    mean : float
        Mean counts per pixel drawn when ``counts`` is None.
    seed : int
        Seed of the drawn counts.
    raster_um : float
        Field of view, micrometres.
    dwell_time_us : float
        Counting time per pixel, microseconds.
    **write_options
        Passed on to :func:`napari_nanosims.write_im` (``legacy``, ``signed``,
        ``detectors``, ``em_yields_percent``, header metadata, ...).

    Returns
    -------
    str
        The path written, as :func:`napari_nanosims.write_im` returns it.
    """
    labels = list(labels)
    if counts is None:
        counts = poisson_counts(frames, len(labels), shape, mean=mean, seed=seed)
    if masses_amu is None:
        masses_amu = default_masses(labels)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_im(path, counts, labels, list(masses_amu), raster_um, dwell_time_us,
                    **write_options)
