"""Channels, history records and the label rules: which text names which mass."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

from .._version import __version__
from .header import ImHeader

__all__ = ["Channel", "HistoryRecord", "channels_from_header", "normalise_label", "SE_ALIASES"]

SE_ALIASES = {"se", "esi"}


def normalise_label(label: str) -> str:
    """A label without white space, case-folded: ``'12C 14N'`` -> ``'12c14n'``."""
    return "".join(str(label).split()).casefold()


def package_version() -> str:
    """The installed version of napari-nanosims."""
    return __version__


@dataclasses.dataclass(frozen=True)
class HistoryRecord:
    """One applied step: its name, every parameter it used, and the package version."""

    name: str
    parameters: Mapping[str, Any]
    version: str = dataclasses.field(default_factory=package_version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{'step': name, 'parameters': {...}, 'version': ...}``."""
        return {"step": self.name, "parameters": dict(self.parameters),
                "version": self.version}


@dataclasses.dataclass(frozen=True)
class Channel:
    """One mass (detector) of an acquisition.

    Attributes
    ----------
    index : int
        Position of the mass in storage order (axis 1 of the counts).
    label : str
        Species label, white space collapsed (``'12C 14N'``); ``'SE'`` for secondary electrons.
    mass_amu : float
        Mass of the species, atomic mass units (0.0 for SE).
    trolley_slot : int
        Detector slot of the multicollection trolley (1-5, 8 SE, 10, 11; 0 unknown).
    detector : str or None
        ``'EM1'``..``'EM7'``, ``'SE'``, ``'FC'``, or None when the header does not say.
    kind : str
        ``'ion'`` (electron multiplier), ``'SE'``, ``'FC'`` or ``'unknown'``.
    dead_time_ns : float or None
        Dead time of the channel's electron multiplier, nanoseconds (None if not an EM).
    em_yield_percent : float or None
        Yield of the electron multiplier, percent.
    em_background_cps : float or None
        Dark-count background of the electron multiplier, counts per second.
    dwell_time_us : float
        Counting time per pixel, microseconds.
    frames : tuple of int or None
        The frames the mass was counted in (its counts are 0 in the others); None for
        every frame. Only masses of peak-switched files miss frames.
    """

    index: int
    label: str
    mass_amu: float
    trolley_slot: int
    detector: str | None
    kind: str
    dead_time_ns: float | None
    em_yield_percent: float | None
    em_background_cps: float | None
    dwell_time_us: float
    frames: tuple[int, ...] | None = None

    def n_frames_counted(self, n_frames: int) -> int:
        """Frames (of ``n_frames``) this mass was counted in."""
        return n_frames if self.frames is None else sum(1 for f in self.frames if f < n_frames)

    def counting_time_s(self, n_frames: int, n_pixels: int = 1) -> float:
        """Time one pixel (or ``n_pixels``) was counted over ``n_frames`` frames, seconds:
        its own frames only."""
        return self.dwell_time_us * 1e-6 * n_pixels * self.n_frames_counted(n_frames)


def channels_from_header(header: ImHeader) -> tuple[Channel, ...]:
    """One :class:`Channel` per mass of ``header``, with its detector's constants."""
    channels = []
    detectors = header.detectors or (None,) * header.n_masses
    for index in range(header.n_masses):
        detector = detectors[index]
        if index == header.se_index:
            kind = "SE"
        elif detector == "FC":
            kind = "FC"
        elif detector is not None and detector.startswith("EM"):
            kind = "ion"
        else:
            kind = "unknown"
        em = int(cast(str, detector)[2:]) - 1 if kind == "ion" else None

        def constant(values, em=em):
            return float(values[em]) if em is not None and em < len(values) else None

        channels.append(Channel(
            index=index, label=header.labels[index], mass_amu=header.masses_amu[index],
            trolley_slot=header.trolley_slots[index] if header.trolley_slots else 0,
            detector=detector, kind=kind, dead_time_ns=constant(header.dead_times_ns),
            em_yield_percent=constant(header.em_yields_percent),
            em_background_cps=constant(header.em_backgrounds_cps),
            dwell_time_us=float(header.dwell_times_us[index] if header.dwell_times_us
                                else header.dwell_time_us),
            frames=header.channel_frames[index] if header.channel_frames else None))
    return tuple(channels)
