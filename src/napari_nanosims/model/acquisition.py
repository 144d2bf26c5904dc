"""The acquisition model: one opened (or synthetic) NanoSIMS acquisition and its channels.

Every processing step takes an :class:`Acquisition` and returns a new one; nothing is
ever modified in place. The library, the command line and the napari plugin all work
on this one model.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from .channels import SE_ALIASES, Channel, HistoryRecord, channels_from_header, normalise_label
from .header import ImHeader, detector_name, synthetic_header

__all__ = ["Acquisition", "mass_stack"]


class Acquisition:
    """One NanoSIMS acquisition: header, channels, counts, variance and history.

    Build one with :func:`open_acquisition` or :meth:`from_arrays`; steps return new
    acquisitions with :meth:`replace` and never change their input.

    Attributes
    ----------
    path : str or None
        The file it came from (None for synthetic data).
    header : ImHeader
        The file's header.
    channels : tuple of Channel
        One per mass, in storage order.
    counts : array, shape (frames, masses, height, width)
        Counts: a read-only :class:`~napari_nanosims.io.lazy.LazyCounts` straight from a
        file, a numpy array after a step.
    variance : array or None
        Per-pixel variance of ``counts``; None means Poisson (equal to the raw counts).
    history : tuple of HistoryRecord
        The steps applied, oldest first.
    translations : numpy.ndarray or None
        (frames, 2) translation applied to each frame by alignment, pixels (rows, columns).
    hot_pixels : numpy.ndarray or None
        (frames, height, width) bool: the pixels replaced by hot-pixel removal.
    sums : numpy.ndarray or None
        (masses, height, width) sum over frames, set by the summing step.
    raw_counts : array or None
        The counts before any detector correction (None: ``counts`` are still raw).
    coverage : numpy.ndarray or None
        (frames, height, width) fraction of each output pixel that real data covered after
        alignment (1 inside, 0 where a shift brought in nothing); None means 1 everywhere.
    derived : tuple of DerivedImage
        Images computed by ``ratio`` steps (expressions of the summed frames).
    roi_labels, roi_statistics : numpy.ndarray, pandas.DataFrame or None
        The ROI label image of a ``segment`` step and the table of a ``roi_table`` step.
    roi_classes : dict or None
        ``{roi: class}`` that came with ``roi_labels`` (an ROI file read by
        ``import_rois``); ``roi_table`` puts them in its ``class`` column.
    class_statistics : pandas.DataFrame or None
        The per-class tables of ``compare_classes`` steps (one after the other).
    registration : FrameRegistration or None
        Per-frame quality of a sub-pixel alignment (correlation, uncertainty, flagged
        frames; see :func:`~napari_nanosims.register_frames`).
    acquisition_id : str
        Unique per opened file; kept by every acquisition derived from it.
    unaligned : Acquisition or None
        Set by ``align_frames``: the acquisition as it was before alignment (its counts,
        raw counts and variance unshifted), so that ROI statistics can map each ROI back
        into each unshifted frame and sum exact counts. It keeps the previous arrays
        alive: a second copy of the counts in memory after cleaning or corrections, only
        the memory map for an acquisition straight from a file.
    """

    def __init__(self, *, header: ImHeader, channels: Sequence[Channel], counts,
                 path: str | None = None, variance=None, history=(), translations=None,
                 hot_pixels=None, sums=None, acquisition_id: str | None = None,
                 raw_counts=None, coverage=None, derived=(), roi_labels=None,
                 roi_statistics=None, registration=None, unaligned=None,
                 class_statistics=None, roi_classes=None):
        shape = tuple(getattr(counts, "shape", ()))
        if len(shape) != 4:
            raise ValueError(f"counts must have shape (frames, masses, height, width); "
                             f"got {shape}")
        if shape[1] != len(channels):
            raise ValueError(f"counts have {shape[1]} masses but there are "
                             f"{len(channels)} channels")
        if coverage is not None and tuple(coverage.shape) != (shape[0],) + shape[2:]:
            raise ValueError(f"coverage shape {tuple(coverage.shape)} is not (frames, height, "
                             f"width) of counts {shape}")
        if variance is not None and tuple(variance.shape) != shape:
            raise ValueError(f"variance shape {tuple(variance.shape)} differs from the "
                             f"counts' {shape}")
        self.header = header
        self.channels = tuple(channels)
        self._counts = counts
        self.path = path
        self.variance = variance
        self.history = tuple(history)
        self.translations = translations
        self.hot_pixels = hot_pixels
        self.sums = sums
        self.raw_counts = raw_counts
        self.coverage = coverage
        self.derived = tuple(derived)
        self.roi_labels = roi_labels
        self.roi_classes = roi_classes
        self.roi_statistics = roi_statistics
        self.class_statistics = class_statistics
        self.registration = registration
        self.unaligned = unaligned
        self.acquisition_id = acquisition_id or uuid.uuid4().hex
        self._closed = False

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_arrays(cls, counts, labels: Sequence[str], *, masses_amu=None,
                    pixel_size_um: float = 1.0, dwell_time_us: float = 1000.0,
                    detectors: Sequence[str | None] | None = None,
                    dead_times_ns: Sequence[float] | None = None,
                    name: str = "synthetic") -> Acquisition:
        """An acquisition from arrays (synthetic data, tests).

        Parameters
        ----------
        counts : array_like, shape (frames, masses, height, width)
            Counts; kept as given (not copied).
        labels : sequence of str
            Label of each mass; ``'SE'`` marks the secondary-electron channel.
        masses_amu : sequence of float, optional
            Masses, amu (default: 0 for SE, else the index + 1).
        pixel_size_um : float
            Pixel size, micrometres.
        dwell_time_us : float
            Counting time per pixel, microseconds.
        detectors : sequence of str or None, optional
            Detector of each mass; default EM1, EM2, ... in order (SE for SE).
        dead_times_ns : sequence of float, optional
            Dead times of EM1..EM7, nanoseconds (default 44 each).
        name : str
            Stands in for the file name in messages and layer names.
        """
        if not hasattr(counts, "shape"):
            counts = np.asarray(counts)
        shape = tuple(counts.shape)
        if len(shape) != 4:
            raise ValueError(f"counts must have shape (frames, masses, height, width); "
                             f"got {shape}")
        labels = [" ".join(str(label).split()) for label in labels]
        if len(labels) != shape[1]:
            raise ValueError(f"{len(labels)} labels for {shape[1]} masses")
        se_index = next((k for k, label in enumerate(labels)
                         if normalise_label(label) in SE_ALIASES), None)
        if masses_amu is None:
            masses_amu = [0.0 if k == se_index else float(k + 1) for k in range(shape[1])]
        if detectors is None:
            ion_slots = iter((1, 2, 3, 4, 5, 10, 11))
            slots = [8 if k == se_index else next(ion_slots, 0) for k in range(shape[1])]
            detectors = [detector_name(slot) for slot in slots]
        else:
            slots = [{"SE": 8, "EM6": 10, "EM7": 11}.get(d or "", 0) or
                     (int(d[2:]) if d and d.startswith("EM") else 0) for d in detectors]
        dead = tuple(int(v) for v in (dead_times_ns or [44] * 7))
        header = synthetic_header(name, shape, labels, masses_amu, se_index, slots,
                                  tuple(detectors), pixel_size_um, dwell_time_us, dead)
        return cls(header=header, channels=channels_from_header(header), counts=counts)

    def replace(self, **changes) -> Acquisition:
        """A new acquisition with ``changes`` applied (the same id, the same file)."""
        values = dict(header=self.header, channels=self.channels, counts=self.counts,
                      path=self.path, variance=self.variance, history=self.history,
                      translations=self.translations, hot_pixels=self.hot_pixels,
                      sums=self.sums, acquisition_id=self.acquisition_id,
                      raw_counts=self.raw_counts, coverage=self.coverage,
                      derived=self.derived, roi_labels=self.roi_labels,
                      roi_statistics=self.roi_statistics, registration=self.registration,
                      unaligned=self.unaligned, class_statistics=self.class_statistics,
                      roi_classes=self.roi_classes)
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"unknown acquisition fields {sorted(unknown)}")
        values.update(changes)
        return Acquisition(**values)

    def with_step(self, name: str, parameters: Mapping[str, Any], **changes) -> Acquisition:
        """A new acquisition with ``changes`` and ``name`` appended to the history."""
        record = HistoryRecord(name, dict(parameters))
        return self.replace(history=self.history + (record,), **changes)

    # -- access -----------------------------------------------------------------------
    @property
    def counts(self):
        """The counts (frames, masses, height, width)."""
        if self._closed:
            raise ValueError(f"{self.name}: the acquisition was closed")
        return self._counts

    @property
    def name(self) -> str:
        """The file name (without folder), or the synthetic name."""
        return os.path.basename(self.path) if self.path else self.header.file_name

    @property
    def stem(self) -> str:
        """The file name without its extension (``a.im.gz`` -> ``a``)."""
        stem, extension = os.path.splitext(self.name)
        if extension.lower() in (".gz", ".bz2", ".xz", ".zip"):
            stem = os.path.splitext(stem)[0]
        return stem

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(frames, masses, height, width)."""
        return tuple(self._counts.shape)

    @property
    def n_frames(self) -> int:
        return self.shape[0]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(channel.label for channel in self.channels)

    @property
    def pixel_size_um(self) -> float:
        """Pixel size, micrometres."""
        return float(self.header.pixel_size_um)

    @property
    def se_index(self) -> int | None:
        return next((c.index for c in self.channels if c.kind == "SE"), None)

    @property
    def ion_channels(self) -> tuple[Channel, ...]:
        """Every channel except SE."""
        return tuple(c for c in self.channels if c.kind != "SE")

    def channel(self, name: str | int) -> Channel:
        """The channel called ``name``, ignoring white space and case.

        ``'12C14N'`` finds ``'12C 14N'``; ``'SE'`` and ``'Esi'`` find the secondary-electron
        channel; an int is a storage index. Raises KeyError listing the labels otherwise.
        """
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            if 0 <= name < len(self.channels):
                return self.channels[int(name)]
        else:
            wanted = normalise_label(cast(str, name))
            for channel in self.channels:
                if normalise_label(channel.label) == wanted:
                    return channel
            if wanted in SE_ALIASES and self.se_index is not None:
                return self.channels[self.se_index]
        raise KeyError(f"{self.name}: no channel {name!r}; channels: "
                       f"{', '.join(repr(label) for label in self.labels)}")

    def channel_counts(self, name: str | int):
        """The (frames, height, width) counts of one channel, lazy for files."""
        return mass_stack(self.counts, self.channel(name).index)

    def applied(self, name: str) -> bool:
        """True when step ``name`` is in the history."""
        return any(record.name == name for record in self.history)

    def history_dicts(self) -> list[dict[str, Any]]:
        """The history as JSON-ready dicts."""
        return [record.to_dict() for record in self.history]

    # -- life cycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Drop this acquisition's reference to the file's pixels (arrays taken stay valid)."""
        self._closed = True

    def __enter__(self) -> Acquisition:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        steps = ", ".join(record.name for record in self.history) or "raw"
        return (f"Acquisition({self.name!r}, shape={self.shape}, "
                f"channels={list(self.labels)}, history=[{steps}])")


def mass_stack(counts, index: int):
    """Lazy (frames, height, width) stack of mass ``index`` of (frames, masses, H, W) counts."""
    if hasattr(counts, "mass"):  # LazyCounts and FrameStack keep it lazy
        return counts.mass(index)
    return counts[:, index]
