"""Reader for Cameca NanoSIMS isotope (spot) files, ``.is`` (file type 26).

The layout (``docs/file-format.md``, "Isotope files") shares the image header's blocks
after a longer mask block: Def_analysis, Mask_is (with the mass count at 548), Tab_mass,
the Poly/Champs/Offset lists, Mask_nano, the B-field records, Anal_param_nano,
Def_analysis_bis, Anal_param, Setup_soft, Anal_param_nano_bis, then a 176-byte isotope
block (blocks, cycles per block, rejection sigma, ratios) that ends the header. The data
follow: the number of masses, then per mass the number of cycles, the cycle times (f64,
s) and the values (f64, counts per second).
"""

from __future__ import annotations

import os
import stat
import struct
import warnings

import numpy as np

from .._errors import ImFormatWarning
from ..model.header import ImHeader, detector_name
from ..model.isotope import FC_IONS_PER_FA_S, IsotopeMeasurement
from . import _layout as L
from ._companion import read_chk_is
from .compressed import decompressed_path, is_compressed
from .header import _em_record, _fail, _HeaderBuffer, _parse_date, _polyatomique

__all__ = ["open_isotope", "sniff_is", "ISOTOPE_FILE_TYPE"]

ISOTOPE_FILE_TYPE = 26
MASK_IS_CYCLES = 148  # planned cycles (i32)
MASK_IS_DURATION = 144  # analysis duration, s (i32)
MASK_IS_NB_MASS = 548  # number of masses (i32)
TAB_MASS_START = {True: 796, False: 596}  # release >= 4108: 60 pointer slots, else 10
LISTS_SIZE = 3 * L.POLY_LIST_SIZE  # Poly_list, Champs_list, Offset_list (empty lists)
ISOTOPE_BLOCK_SIZE = 176
MAX_CYCLES = 10_000_000  # more cycles than any analysis: a corrupt count
FC_BACKGROUNDS_OFFSET = 12128  # in Anal_param_nano_bis: 7 detectors x (i32, i32)
DETECTOR_TYPES_OFFSET = 12184  # in Anal_param_nano_bis: 7 x i32, 0 EM / 1 FC
MAX_HEADER_SIZE = 4 * 1024 * 1024


def sniff_is(path: str | os.PathLike) -> bool:
    """True when ``path`` starts like a Cameca isotope file (type 26); never raises."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    if len(head) < 12:
        return False
    return any(struct.unpack(order + "3i", head)[1] == ISOTOPE_FILE_TYPE
               and 0 < struct.unpack(order + "3i", head)[0] < 100000 for order in "<>")


def _read(path: str, source: str) -> tuple[bytes, str]:
    try:
        if not stat.S_ISREG(os.stat(source).st_mode):
            raise _fail(path, "not a regular file")
        with open(source, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise _fail(path, f"cannot read the file: {exc.strerror or exc}") from exc
    if len(data) < L.DEF_ANALYSIS_SIZE:
        raise _fail(path, f"file of {len(data)} bytes is too short for a NanoSIMS header")
    orders = [o for o in "<>" if struct.unpack_from(o + "i", data, 4)[0] == ISOTOPE_FILE_TYPE]
    if len(orders) != 1:
        found = struct.unpack_from("<i", data, 4)[0]
        raise _fail(path, f"not a NanoSIMS isotope file: the file type at offset 4 is "
                    f"{found} ({L.FILE_TYPES.get(found, 'unknown')}), expected 26")
    return data, orders[0]


def _tc_from_scan(mask_nano, dwell_us: float) -> float:
    """Counting time per cycle, s: the dwell time times the pixels of the counting frame
    (the scanned raster minus the blanked border; checked against the text export)."""
    nx = mask_nano.m_nNX_highB - mask_nano.m_nNX_lowB + 1
    ny = mask_nano.m_nNY_highB - mask_nano.m_nNY_lowB + 1
    if not (0 < nx <= mask_nano.m_nNX_max and 0 < ny <= mask_nano.m_nNY_max):
        nx, ny = mask_nano.m_nNX_max, mask_nano.m_nNY_max
    return dwell_us * 1e-6 * nx * ny


def _parse_header(path: str, data: bytes, order: str) -> dict:
    release, _, header_size = struct.unpack_from(order + "3i", data, 0)
    if not ISOTOPE_BLOCK_SIZE + 2000 < header_size <= min(len(data), MAX_HEADER_SIZE):
        raise _fail(path, f"header size {header_size} at offset 8 is impossible for a file "
                    f"of {len(data)} bytes")
    buf = _HeaderBuffer(path, data[:header_size], order)
    da = buf.block(0, L.DEF_ANALYSIS, L.DEF_ANALYSIS_SIZE, "Def_analysis")
    buf.need(MASK_IS_NB_MASS, 4, "Mask_is")
    n_masses = struct.unpack_from(order + "i", data, MASK_IS_NB_MASS)[0]
    if not 0 < n_masses <= 60:
        raise _fail(path, f"number of masses at offset {MASK_IS_NB_MASS} is {n_masses}; "
                    "expected 1 to 60")
    duration, cycles = struct.unpack_from(order + "2i", data, MASK_IS_DURATION)
    tab_start = TAB_MASS_START[release >= L.NEW_RELEASE]
    tab_mass = []
    for k in range(n_masses):
        start = tab_start + L.TAB_MASS_SIZE * k
        record = buf.block(start, L.TAB_MASS, L.TAB_MASS_SIZE, f"Tab_mass[{k}]")
        record["mass"] = _polyatomique(buf, start + L.TAB_MASS_POLY_OFFSET)
        tab_mass.append(record)
    poly_start = tab_start + (L.TAB_MASS_SIZE + L.CAL_COND_SIZE) * n_masses
    mask_nano_start = poly_start + LISTS_SIZE
    if not buf.tag_at(poly_start, b"Poly_list"):
        raise _fail(path, f"no Poly_list tag at offset {poly_start} after the {n_masses} "
                    "mass records")
    mask_nano = buf.block(mask_nano_start, L.MASK_NANO, L.MASK_NANO_SIZE, "Mask_nano")
    version = mask_nano.m_nVersion
    bfield_start = mask_nano_start + L.MASK_NANO_SIZE
    bfield = buf.block(bfield_start, L.TAB_BFIELD_NANO, L.BFIELD_HEAD_SIZE, "Tab_BField_nano")
    trolley_bytes = L.trolley_size(version)
    trolleys = [buf.block(bfield_start + L.BFIELD_HEAD_SIZE + trolley_bytes * t, L.TROLLEY,
                          trolley_bytes, f"trolley record {t}")
                for t in range(L.TROLLEY_COUNT.get(version, 12))]
    apn = data.find(b"Anal_param_nano\0", bfield_start, header_size)
    if apn < 0:
        raise _fail(path, f"no Anal_param_nano block after Mask_nano (offset "
                    f"{mask_nano_start}, version {version})")
    ap = buf.block(apn, L.ANAL_PARAM_NANO, L.ANAL_PARAM_NANO_SIZE, "Anal_param_nano")
    prim = buf.block(apn + L.AP_PRIMARY_OFFSET, L.AP_PRIMARY, 552, "primary beam")
    em = [_em_record(buf, apn + L.EM_RECORDS_OFFSET + L.EM_RECORD_SIZE * k) for k in range(5)]
    dab = buf.block(apn + L.ANAL_PARAM_NANO_SIZE, L.DEF_ANALYSIS_BIS, L.DEF_ANALYSIS_BIS_SIZE,
                    "Def_analysis_bis")
    bis_start = header_size - ISOTOPE_BLOCK_SIZE - L.ANAL_PARAM_NANO_BIS_SIZE
    fc_backgrounds, detector_types = (0,) * 14, (0,) * 7
    if buf.tag_at(bis_start, b"Anal_param_nano_bis"):
        em += [_em_record(buf, bis_start + off) for off in (L.EM6_RECORD_OFFSET,
                                                             L.EM7_RECORD_OFFSET)]
        fc_backgrounds = struct.unpack_from(order + "14i", data,
                                            bis_start + FC_BACKGROUNDS_OFFSET)
        detector_types = struct.unpack_from(order + "7i", data,
                                            bis_start + DETECTOR_TYPES_OFFSET)
    iso_start = header_size - ISOTOPE_BLOCK_SIZE
    n_blocks, per_block, sigma, n_ratios = struct.unpack_from(order + "4i", data, iso_start)
    n_ratios = n_ratios if 0 <= n_ratios <= (ISOTOPE_BLOCK_SIZE - 16) // 8 else 0
    pairs = struct.unpack_from(order + f"{2 * n_ratios}i", data, iso_start + 16)
    ratios = tuple((pairs[2 * r], pairs[2 * r + 1]) for r in range(n_ratios)
                   if 0 <= pairs[2 * r] < n_masses and 0 <= pairs[2 * r + 1] < n_masses)
    return dict(release=release, header_size=header_size, da=da, n_masses=n_masses,
                cycles=cycles, duration=duration, tab_mass=tab_mass, mask_nano=mask_nano,
                bfield=bfield, trolleys=trolleys, ap=ap, prim=prim, em=em, dab=dab,
                fc_backgrounds=fc_backgrounds, detector_types=detector_types,
                n_blocks=n_blocks, per_block=per_block, sigma=sigma, ratios=ratios)


def _detectors(h: dict) -> tuple[list[int], list[str | None], list[float | None]]:
    """Trolley slot, detector and Faraday-cup background (None for EMs) of each mass."""
    slots, names, backgrounds = [], [], []
    for k, record in enumerate(h["tab_mass"]):
        slot = next((t for t, tr in enumerate(h["trolleys"])
                     if tr.m_nFlagTrolleyValided == 1 and tr.m_nNum == k),
                    record._not_in_spec)
        slot = int(slot) if 0 <= slot <= 12 else 0
        number = slot if 1 <= slot <= 5 else (slot - 4 if slot in (10, 11) else 0)
        trolley = h["trolleys"][slot] if slot < len(h["trolleys"]) else None
        is_fc = bool(number and h["detector_types"][number - 1] == 1) or (
            trolley is not None and trolley.m_nDetecteur == 1 and number > 0)
        names.append("FC" if is_fc else detector_name(slot, 0, h["release"] < L.NEW_RELEASE))
        # Each detector has two stored backgrounds; the first reproduces the instrument's
        # own conversion on the shared Faraday-cup file (docs/file-format.md).
        backgrounds.append(float(h["fc_backgrounds"][2 * (number - 1)]) if is_fc else None)
        slots.append(slot)
    return slots, names, backgrounds


def _read_values(path: str, data: bytes, order: str, start: int, n_masses: int,
                 planned: int) -> tuple[np.ndarray, np.ndarray]:
    """(cycles, masses) times and stored values; warns for fewer cycles than planned."""
    if start == len(data):
        return np.zeros((0, n_masses)), np.zeros((0, n_masses))
    if start + 4 > len(data):
        raise _fail(path, f"the data at offset {start} are cut off")
    (stored_masses,) = struct.unpack_from(order + "i", data, start)
    if stored_masses != n_masses:
        raise _fail(path, f"the data at offset {start} hold {stored_masses} masses but the "
                    f"header lists {n_masses}")
    position, columns = start + 4, []
    for k in range(n_masses):
        if position + 4 > len(data):
            raise _fail(path, f"the file ends before the data of mass {k} (offset {position})")
        (n,) = struct.unpack_from(order + "i", data, position)
        if not 0 <= n <= min(max(planned, 0), MAX_CYCLES):
            raise _fail(path, f"mass {k} holds {n} cycles (offset {position}) but the header "
                        f"plans {planned}: the cycles do not match the header")
        if position + 4 + 16 * n > len(data):
            raise _fail(path, f"the file ends inside the {n} cycles of mass {k} (offset "
                        f"{position + 4}, {len(data) - position - 4} of {16 * n} bytes)")
        values = np.frombuffer(data, order + "f8", 2 * n, position + 4).reshape(2, n)
        columns.append(values.astype(np.float64))
        position += 4 + 16 * n
    if position != len(data):
        raise _fail(path, f"{len(data) - position} bytes follow the data of the last mass")
    n_cycles = min(len(c[0]) for c in columns)
    if any(len(c[0]) != n_cycles for c in columns) or n_cycles < planned:
        warnings.warn(f"{os.path.basename(path)}: aborted analysis: {planned} cycles planned, "
                      f"{n_cycles} complete cycles read", ImFormatWarning, stacklevel=3)
    times = np.stack([c[0][:n_cycles] for c in columns], axis=1)
    values = np.stack([c[1][:n_cycles] for c in columns], axis=1)
    return times, values


def _as_counts(stored: np.ndarray, tc: np.ndarray, backgrounds) -> np.ndarray:
    """The values of Cameca's text export from the stored counts per second."""
    counts = stored * tc
    for k, background in enumerate(backgrounds):
        if background is not None:  # back to the cup's reading: (cps / 6241.42 + b) t
            counts[:, k] = (stored[:, k] / FC_IONS_PER_FA_S + background) * tc[:, k]
    # The products are whole numbers up to rounding in the last bits (the export prints
    # 7 digits); snap those to them so that counts compare exactly.
    nearest = np.round(counts)
    close = np.abs(counts - nearest) <= 1e-6 * np.maximum(np.abs(nearest), 1.0)
    return np.where(close, nearest, counts)


def open_isotope(path: str | os.PathLike) -> IsotopeMeasurement:
    """Open a Cameca isotope (spot) file, ``.is``.

    Parameters
    ----------
    path : str or path-like
        The ``.is`` file. A ``.chk_is`` text file beside it (as the instrument writes) is
        read too, into ``companion``; it is never required.

    Returns
    -------
    IsotopeMeasurement
        Counts (cycles x masses, the values Cameca's ``.is_txt`` export lists), counting
        times, cycle times, header. A header-only file has 0 cycles.

    Raises
    ------
    ImFormatError
        If the file is not an isotope file, or its header or data are inconsistent (for
        example more cycles than the header plans).

    Warns
    -----
    ImFormatWarning
        When the analysis was aborted (fewer cycles than planned).
    """
    path = os.path.abspath(os.fspath(path))
    data, order = _read(path, os.fspath(decompressed_path(path)) if is_compressed(path)
                        else path)
    h = _parse_header(path, data, order)
    da, mask_nano = h["da"], h["mask_nano"]
    slots, detectors, backgrounds = _detectors(h)
    dwell_us = float(h["bfield"].m_nCTperPixel)
    tc = _tc_from_scan(mask_nano, dwell_us)
    companion = read_chk_is(path)
    if not tc > 0:
        tc = float(h["tab_mass"][0].counting_time)
    if da.data_present != 1:
        times = values = np.zeros((0, h["n_masses"]))
    else:
        times, values = _read_values(path, data, order, h["header_size"], h["n_masses"],
                                     h["cycles"])
    tc_array = np.full(values.shape, tc)
    labels = tuple(" ".join(r.mass.string.split()) for r in h["tab_mass"])
    width, height = mask_nano.m_nNX_max, mask_nano.m_nNY_max
    raster_um = float(h["prim"].dRaster)
    em = h["em"]
    header = ImHeader(
        path=path, byte_order=order, release=h["release"], file_type=ISOTOPE_FILE_TYPE,
        file_type_name=L.FILE_TYPES[ISOTOPE_FILE_TYPE], has_data=len(values) > 0,
        n_frames=len(values), n_frames_header=max(h["cycles"], 0), n_masses=h["n_masses"],
        width=width, height=height, bytes_per_pixel=8, labels=labels,
        masses_amu=tuple(float(r.mass_amu) for r in h["tab_mass"]), se_index=None,
        trolley_slots=tuple(slots), raster_um=raster_um,
        pixel_size_um=raster_um / width if width > 0 else float("nan"),
        dwell_time_us=dwell_us, frame_time_s=dwell_us * 1e-6 * width * height,
        sample_name=h["dab"].sample_name, comment=h["ap"].pszComment, user=da.username,
        experiment=h["dab"].experience, method=h["dab"].method,
        analysis_name=da.analysis_name, analysis_date=_parse_date(da.date, da.heure),
        analysis_duration_s=h["duration"],
        stage_position_um=(da.sple_pos_x, da.sple_pos_y, da.nSamplePosz),
        primary_ion=h["prim"].pszIon,
        primary_current_raw=(h["prim"].nPrimCurrentT0, h["prim"].nPrimCurrentTEnd),
        dead_times_ns=tuple(int(d) for _, _, d in em),
        em_yields_percent=tuple(float(y) for y, _, _ in em),
        em_backgrounds_cps=tuple(int(b) for _, b, _ in em), header_size=h["header_size"],
        mask_nano_version=mask_nano.m_nVersion, anal_param_nano_release=h["ap"].nRelease,
        detectors=tuple(detectors))
    return IsotopeMeasurement(
        path=path, header=header, labels=labels, masses_amu=header.masses_amu,
        detectors=tuple(detectors), counts=_as_counts(values, tc_array, backgrounds),
        counting_time_s=tc_array, times_s=times, stored_cps=values,
        fc_background=tuple(backgrounds), n_blocks=max(h["n_blocks"], 1),
        cycles_per_block=h["per_block"] if h["per_block"] > 0 else max(len(values), 1),
        rejection_sigma=float(h["sigma"]),
        ratios=tuple((labels[a], labels[b]) for a, b in h["ratios"]), companion=companion)
