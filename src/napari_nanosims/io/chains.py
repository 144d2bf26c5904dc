"""Chained acquisitions of one field as one :class:`Acquisition`: :func:`concatenate`.

The instrument's chained analyses, or a user continuing an analysis by hand, leave
several ``.im`` files of the same field, one after another. :func:`concatenate` joins
their frames in time order into one acquisition, lazily (:class:`ChainedCounts` over the
files' memory maps), after checking that the files can be joined: the same masses (and
detectors), image size, raster, pixel size and dwell time, acquired one after another.
Every step then runs on the chain as on one file; alignment registers the frames of all
files against one reference, so translations are continuous across file boundaries.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from ..model import Acquisition, HistoryRecord, ImHeader, channels_from_header
from .acquisition import open_acquisition
from .chained import ChainedCounts

__all__ = ["concatenate", "same_field", "header_differences", "as_acquisitions",
           "STAGE_TOLERANCE_UM"]

#: Stage positions (x, y) closer than this are the same field, micrometres. The header
#: stores whole micrometres, so 1 allows for rounding of a field re-visited by hand.
STAGE_TOLERANCE_UM = 1.0

#: Relative tolerance when comparing raster and pixel sizes stored as floating point.
_RELATIVE = 1e-6

#: What a step that summarises frames leaves on an acquisition; such an acquisition's
#: frames can no longer be joined with another's.
_FRAME_RESULTS = ("translations", "sums", "roi_labels", "registration", "unaligned")


def _labels(header: ImHeader) -> list[str]:
    return [" ".join(label.split()) for label in header.labels]


def _close(a: float, b: float) -> bool:
    return bool(np.isclose(a, b, rtol=_RELATIVE, atol=0.0))


def header_differences(first: ImHeader, other: ImHeader, *,
                       fields: Sequence[str] = ("masses", "detectors", "image size",
                                                "raster", "pixel size", "dwell time"),
                       ) -> list[str]:
    """What differs between two headers, as short phrases (empty when nothing does).

    Parameters
    ----------
    first, other : ImHeader
        The headers to compare (``first`` is named first in each phrase).
    fields : sequence of str
        What to compare: any of ``'masses'`` (labels and amu), ``'detectors'``,
        ``'image size'``, ``'raster'``, ``'pixel size'`` and ``'dwell time'``.

    Returns
    -------
    list of str
        For example ``'masses differ (12C, 13C, SE vs 12C, 12C 14N, SE)'``.
    """
    found = []
    a, b = first, other
    if "masses" in fields:
        if _labels(a) != _labels(b):
            found.append(f"masses differ ({', '.join(_labels(a))} vs {', '.join(_labels(b))})")
        elif not np.allclose(a.masses_amu, b.masses_amu, rtol=0, atol=1e-3):
            found.append(f"masses differ ({', '.join(f'{m:.4f}' for m in a.masses_amu)} amu vs "
                         f"{', '.join(f'{m:.4f}' for m in b.masses_amu)} amu)")
    if "detectors" in fields and tuple(a.detectors) != tuple(b.detectors):
        found.append(f"detectors differ ({', '.join(map(str, a.detectors))} vs "
                     f"{', '.join(map(str, b.detectors))})")
    if "image size" in fields and (a.height, a.width) != (b.height, b.width):
        found.append(f"image size differs ({a.width} x {a.height} px vs "
                     f"{b.width} x {b.height} px)")
    if "raster" in fields and not _close(a.raster_um, b.raster_um):
        found.append(f"raster differs ({a.raster_um:.6g} µm vs {b.raster_um:.6g} µm)")
    if "pixel size" in fields and not _close(a.pixel_size_um, b.pixel_size_um):
        found.append(f"pixel size differs ({a.pixel_size_um:.6g} µm vs "
                     f"{b.pixel_size_um:.6g} µm)")
    if "dwell time" in fields and not _close(a.dwell_time_us, b.dwell_time_us):
        found.append(f"dwell time differs ({a.dwell_time_us:.6g} µs vs "
                     f"{b.dwell_time_us:.6g} µs)")
    # Peak switching (more than one B field): the same cycle layout in both files.
    if "masses" in fields and (getattr(a, "n_b_fields", 1) != getattr(b, "n_b_fields", 1) or
                               tuple(getattr(a, "dwell_times_us", ()))
                               != tuple(getattr(b, "dwell_times_us", ()))):
        found.append(f"peak switching differs ({getattr(a, 'n_b_fields', 1)} vs "
                     f"{getattr(b, 'n_b_fields', 1)} B fields, dwell times "
                     f"{list(getattr(a, 'dwell_times_us', ()))} vs "
                     f"{list(getattr(b, 'dwell_times_us', ()))} µs)")
    return found


def same_field(headers: Sequence[ImHeader], tolerance_um: float = STAGE_TOLERANCE_UM) -> bool:
    """True when the headers say the files are chained acquisitions of one field.

    That is: at least two headers with pixel data, stage positions (x, y) within
    ``tolerance_um`` of the first and not all (0, 0) (a zero position says nothing), and
    nothing that :func:`concatenate` would refuse (masses, detectors, image size,
    raster, pixel size, dwell time).
    """
    headers = list(headers)
    if len(headers) < 2 or not all(h.has_data for h in headers):
        return False
    stages = np.array([h.stage_position_um[:2] for h in headers], dtype=float)
    if not np.any(stages):
        return False
    if np.max(np.abs(stages - stages[0])) > tolerance_um:
        return False
    return not any(header_differences(headers[0], h) for h in headers[1:])


def as_acquisitions(items, what: str) -> list[Acquisition]:
    """Paths or acquisitions -> acquisitions (paths opened lazily); ValueError otherwise."""
    if isinstance(items, (str, os.PathLike, Acquisition)):
        raise ValueError(f"{what} takes a list of paths or acquisitions, not one "
                         f"{type(items).__name__}")
    items = list(items)
    if not items:
        raise ValueError(f"{what} needs at least one path or acquisition; got none")
    acquisitions = []
    for item in items:
        if isinstance(item, Acquisition):
            acquisitions.append(item)
        elif isinstance(item, (str, os.PathLike)):
            acquisitions.append(open_acquisition(item))
        else:
            raise ValueError(f"{what}: {item!r} is neither a path nor an Acquisition")
    names = [a.path or a.header.path for a in acquisitions]
    repeated = sorted({os.path.basename(n) for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what}: the same file is given twice: {', '.join(repeated)}")
    empty = [a.name for a in acquisitions if not a.header.has_data or a.n_frames == 0]
    if empty:
        raise ValueError(f"{what}: {', '.join(empty)} hold(s) no pixel data")
    return acquisitions


def _when(header: ImHeader) -> str:
    assert header.analysis_date is not None  # only called for dated headers
    return header.analysis_date.strftime("%Y-%m-%d %H:%M")


def _time_order(acquisitions: list[Acquisition]) -> list[int]:
    """Indices of ``acquisitions`` by start time, checked to follow one another."""
    undated = [a.name for a in acquisitions if a.header.analysis_date is None]
    if undated:
        raise ValueError(f"concatenate: cannot order by acquisition time: no date in the "
                         f"header of {', '.join(undated)}; pass order='given' to keep the "
                         f"order given")
    order = sorted(range(len(acquisitions)),
                   key=lambda k: cast(_dt.datetime, acquisitions[k].header.analysis_date))
    for before, after in zip(order, order[1:], strict=False):
        a, b = acquisitions[before].header, acquisitions[after].header
        assert a.analysis_date is not None and b.analysis_date is not None  # checked above
        # Dates have minute resolution: allow one minute before calling it an overlap.
        end = a.analysis_date + _dt.timedelta(seconds=float(a.analysis_duration_s or 0))
        if b.analysis_date + _dt.timedelta(minutes=1) < end:
            raise ValueError(
                f"concatenate: {acquisitions[after].name} started at {_when(b)}, before "
                f"{acquisitions[before].name} (started {_when(a)}, {a.analysis_duration_s} s) "
                f"had ended: the files were not acquired one after another; pass "
                f"order='given' to join them anyway")
    return order


def _check_joinable(acquisitions: list[Acquisition]) -> None:
    first = acquisitions[0]
    for other in acquisitions[1:]:
        found = header_differences(first.header, other.header)
        if found:
            raise ValueError(f"concatenate: cannot join {first.name} and {other.name}: "
                             f"{'; '.join(found)}")
    for acquisition in acquisitions:
        done = [name for name in _FRAME_RESULTS if getattr(acquisition, name) is not None]
        if done or acquisition.derived:
            raise ValueError(f"concatenate: {acquisition.name} already has "
                             f"{', '.join(done or ['derived images'])}; join the files first, "
                             f"then align, sum and analyse the chain")
    histories = {tuple((r.name, repr(sorted(dict(r.parameters).items())))
                       for r in a.history) for a in acquisitions}
    if len(histories) > 1:
        raise ValueError("concatenate: the acquisitions went through different steps ("
                         + "; ".join(f"{a.name}: {', '.join(r.name for r in a.history) or 'raw'}"
                                     for a in acquisitions)
                         + "); apply the same steps to each, or join the raw files")


def _chained(acquisitions, name: str, fallback: str | None = None):
    """The chain of one per-frame array of each acquisition (None when all are None)."""
    values = [getattr(a, name) for a in acquisitions]
    if all(v is None for v in values):
        return None
    parts = []
    for acquisition, value in zip(acquisitions, values, strict=True):
        if value is None and fallback is not None:
            value = getattr(acquisition, fallback)
            if value is None and fallback == "raw_counts":
                value = acquisition.counts
        parts.append(value)
    return ChainedCounts(parts)


def _filled(acquisitions, name: str, fill) -> np.ndarray | None:
    """A small per-frame array (hot pixels, coverage) joined, ``fill`` where missing."""
    values = [getattr(a, name) for a in acquisitions]
    if all(v is None for v in values):
        return None
    return np.concatenate([np.asarray(v) if v is not None else
                           np.full((a.n_frames,) + a.shape[2:], fill)
                           for a, v in zip(acquisitions, values, strict=True)])


def concatenate(items, *, order: str = "time") -> Acquisition:
    """Join chained acquisitions of one field into one :class:`Acquisition`.

    Parameters
    ----------
    items : sequence of path-like or Acquisition
        The files (opened lazily, read-only) or acquisitions, at least one.
    order : {'time', 'given'}
        ``'time'`` (default) orders the files by the acquisition date and time in their
        headers and checks that each started after the one before had ended (the
        header's analysis duration; one minute of slack for the minute resolution of the
        stored time); ``'given'`` keeps the order of ``items`` and checks no dates.

    Returns
    -------
    Acquisition
        Frames of the first file, then the second, ... Counts (and variance, raw counts,
        hot pixels and coverage where the inputs have them) are joined without copying
        the files' pixels (:class:`~napari_nanosims.io.chained.ChainedCounts`). The
        header is the first file's, with the frames and durations of all files and the
        name ``<first stem>_chain<n>.im``; the history ends with a ``concatenate`` record
        naming the files, their frames and start times.

    Raises
    ------
    ValueError
        Naming the files and what differs when they cannot be joined: masses,
        detectors, image size, raster, pixel size or dwell time; the same file twice; a
        file without pixel data; missing or overlapping acquisition times
        (``order='time'``); inputs already aligned or summed, or processed differently.
    ImFormatError
        When a path is not a readable ``.im`` file.

    Notes
    -----
    Detector constants (dead times, yields, backgrounds) are taken from the first
    file's header. Processed acquisitions (hot pixels removed, corrected) can be joined
    when they went through the same steps; alignment and summing belong after joining.
    """
    if order not in ("time", "given"):
        raise ValueError(f"order must be 'time' or 'given', not {order!r}")
    acquisitions = as_acquisitions(items, "concatenate")
    if order == "time":
        acquisitions = [acquisitions[k] for k in _time_order(acquisitions)]
    _check_joinable(acquisitions)
    first = acquisitions[0]
    counts = ChainedCounts([a.counts for a in acquisitions])
    stem = os.path.splitext(first.name)[0]
    folder = os.path.dirname(first.path or first.header.path)
    frames = [a.n_frames for a in acquisitions]
    changes: dict[str, Any] = {}
    if getattr(first.header, "channel_frames", ()):
        # Peak-switched files: each mass's frames, numbered along the chain.
        changes["channel_frames"] = tuple(
            None if first.header.channel_frames[index] is None else tuple(
                int(start) + int(frame) for a, start in zip(acquisitions, counts.starts,
                                                           strict=False)
                for frame in cast("tuple[int, ...]", a.header.channel_frames[index]))
            for index in range(first.header.n_masses))
    header = dataclasses.replace(
        first.header, **changes,
        path=os.path.join(folder, f"{stem}_chain{len(acquisitions)}.im"),
        n_frames=int(sum(frames)),
        n_frames_header=int(sum(max(a.header.n_frames_header, a.n_frames)
                                for a in acquisitions)),
        analysis_duration_s=int(sum(a.header.analysis_duration_s or 0 for a in acquisitions)))
    record = HistoryRecord("concatenate", {
        "files": [a.path or a.header.path for a in acquisitions],
        "frames": frames,
        "first_frames": [int(s) for s in counts.starts[:-1]],
        "started": [a.header.analysis_date.isoformat() if a.header.analysis_date else None
                    for a in acquisitions],
        "order": order,
    })
    return Acquisition(
        header=header, channels=channels_from_header(header), counts=counts, path=None,
        variance=_chained(acquisitions, "variance", "raw_counts"),
        raw_counts=_chained(acquisitions, "raw_counts", "counts"),
        hot_pixels=_filled(acquisitions, "hot_pixels", False),
        coverage=_filled(acquisitions, "coverage", 1.0),
        history=first.history + (record,))
