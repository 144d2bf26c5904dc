"""An isotope (spot) measurement: masses counted at one spot over cycles (``.is`` files).

``io/isotope.py`` builds it from the bytes; ``analysis/spots.py`` computes ratios, errors
and delta values from it. No file-format code lives here.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, cast

import numpy as np

from .channels import SE_ALIASES, normalise_label
from .header import ImHeader

__all__ = ["IsotopeMeasurement", "FC_IONS_PER_FA_S"]

#: Ions per second in a Faraday-cup current of 1 fA, as Cameca's software converts: the
#: factor that reproduces the counts per second it stores from the cup's reading on the
#: shared file with a cup (6241.42; 1e-15 C / e would be 6241.51). See ``fc_cps``.
FC_IONS_PER_FA_S = 6241.42


@dataclasses.dataclass(frozen=True, eq=False)
class IsotopeMeasurement:
    """One ``.is`` file: the counts of every mass in every cycle.

    Attributes
    ----------
    path : str
        Absolute path of the file.
    header : ImHeader
        The header, in the fields images use (``n_frames`` = cycles read,
        ``n_frames_header`` = cycles planned, ``width``/``height`` = the scanned raster in
        pixels, ``dwell_time_us``, ``dead_times_ns``, ``em_yields_percent``, sample name,
        date, stage position, ...).
    labels : tuple of str
        Species of each mass, white space collapsed (``'12C 14N'``).
    masses_amu : tuple of float
        Mass of each species, atomic mass units.
    detectors : tuple of str or None
        ``'EM1'``..``'EM7'`` or ``'FC'`` (a Faraday cup), None when unknown.
    counts : numpy.ndarray
        (cycles, masses) float64: the values Cameca's text export (``.is_txt``) lists.
        Ions counted for an electron multiplier; for a Faraday cup the cup's raw reading
        (see :meth:`fc_cps`), not ions.
    counting_time_s : numpy.ndarray
        (cycles, masses) time each mass was counted in each cycle, seconds.
    times_s : numpy.ndarray
        (cycles, masses) time of each cycle from the start of the analysis, seconds.
    stored_cps : numpy.ndarray
        (cycles, masses) the values stored in the file: counts per second (ions per
        second for a Faraday cup, background removed).
    fc_background : tuple of float or None
        For a Faraday cup, the background subtracted by the instrument, in the units of
        ``counts`` per second of counting; None for other detectors.
    n_blocks, cycles_per_block : int
        The block structure the analysis was set up with (``n_blocks * cycles_per_block``
        cycles planned).
    rejection_sigma : float
        The rejection threshold set in the analysis, standard deviations.
    ratios : tuple of (str, str)
        The (numerator, denominator) labels of the ratios set up in the analysis.
    companion : dict
        What the ``.chk_is`` text beside the file says (empty without one): ``'masses'``
        (rows of its mass table), ``'primary_current_pA'`` (before, after), ...
    """

    path: str
    header: ImHeader
    labels: tuple[str, ...]
    masses_amu: tuple[float, ...]
    detectors: tuple[str | None, ...]
    counts: np.ndarray
    counting_time_s: np.ndarray
    times_s: np.ndarray
    stored_cps: np.ndarray
    fc_background: tuple[float | None, ...]
    n_blocks: int
    cycles_per_block: int
    rejection_sigma: float
    ratios: tuple[tuple[str, str], ...] = ()
    companion: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        """The file name without its folder."""
        return os.path.basename(self.path)

    @property
    def n_cycles(self) -> int:
        return int(self.counts.shape[0])

    @property
    def n_masses(self) -> int:
        return len(self.labels)

    def index(self, label: str | int) -> int:
        """Position of mass ``label`` (white space and case ignored; an int is a position)."""
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if 0 <= label < self.n_masses:
                return int(label)
        else:
            wanted = normalise_label(cast(str, label))
            for k, own in enumerate(self.labels):
                if normalise_label(own) == wanted and wanted not in SE_ALIASES:
                    return k
        raise KeyError(f"{self.name}: no mass {label!r}; masses: "
                       f"{', '.join(repr(label) for label in self.labels)}")

    def block_of_cycle(self) -> np.ndarray:
        """(cycles,) the block (0-based) each cycle belongs to."""
        per_block = max(int(self.cycles_per_block), 1)
        return np.arange(self.n_cycles) // per_block

    def fc_cps(self) -> np.ndarray:
        """(cycles, masses) ions per second, Faraday cups converted from their reading.

        For an electron multiplier this is ``counts / counting_time_s``. For a Faraday
        cup the stored reading ``v`` over the counting time ``t`` is a current in fA
        plus the cup's background ``b`` (same unit, from the header), so
        ``cps = (v / t - b) * 6241.42`` (:data:`FC_IONS_PER_FA_S`, Cameca's factor for
        1e-15 C / e); this reproduces the counts per second Cameca's software stores in
        the file (``stored_cps``) on the shared file with a Faraday cup to 1e-12
        relative.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = self.counts / self.counting_time_s
        for k, background in enumerate(self.fc_background):
            if background is not None:
                rate[:, k] = (rate[:, k] - background) * FC_IONS_PER_FA_S
        return rate

    def __repr__(self) -> str:
        return (f"IsotopeMeasurement({self.name!r}, cycles={self.n_cycles}, "
                f"masses={list(self.labels)})")
