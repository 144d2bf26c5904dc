"""Lazy reader for Cameca NanoSIMS ``.im`` image files.

Reads both header generations (release < 4108 with 10 mass slots, release
4108 with 60), both byte orders, 2- and 4-byte pixels, header-only files and
truncated acquisitions. Pixels are memory-mapped read-only, so opening a
multi-gigabyte file costs almost no memory. ``docs/file-format.md`` describes
the layout this module follows.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import re
import struct
import warnings
from typing import Any

import numpy as np

from . import _layout as L
from .._errors import ImFormatError, ImFormatWarning

__all__ = ["ImHeader", "read_header", "load_mims", "sniff_im", "MimsFile"]

# A header larger than this is certainly corrupt (real ones are about 25 KiB);
# the check keeps a flipped header_size from making us read a huge buffer.
MAX_HEADER_SIZE = 4 * 1024 * 1024
MAX_MASSES = 60
SE_TROLLEY_SLOT = 8


@dataclasses.dataclass(frozen=True)
class ImHeader:
    """The header of a NanoSIMS ``.im`` file, with units in the field names.

    Attributes
    ----------
    path : str
        Absolute path of the file.
    byte_order : str
        ``'<'`` (little-endian, Windows software) or ``'>'`` (big-endian, Unix software).
    release : int
        Format release: 5, 9, 11 (Unix software) or 4108 (Windows "N50 V7").
    file_type, file_type_name : int, str
        Analysis type code (27 image, 29 grain-mode image, 39 line-scan image) and its name.
    has_data : bool
        False for header-only files ("data included: no") and for files with no complete frame.
    n_frames, n_masses, width, height : int
        Frames actually readable, masses (detectors), image width (columns) and height (rows),
        in pixels.
    n_frames_header : int
        Frames announced by the header (may differ from ``n_frames`` for truncated files).
    bytes_per_pixel : int
        2 (unsigned 16-bit) or 4 (unsigned 32-bit).
    labels : tuple of str
        Species labels with whitespace collapsed (``'12C 14N'``); the secondary-electron
        channel is ``'SE'``.
    masses_amu : tuple of float
        Mass of each species in atomic mass units (0.0 for SE).
    se_index : int or None
        Index of the secondary-electron channel, None when there is none.
    trolley_slots : tuple of int
        Detector slot of each mass (1-5 EM1-EM5, 8 SE, 10/11 EM6/EM7, 0 unknown).
    raster_um, pixel_size_um : float
        Field of view and pixel size, micrometres.
    dwell_time_us : float
        Counting time per pixel, microseconds.
    frame_time_s : float
        Time to acquire one frame (dwell x width x height), seconds.
    sample_name, comment, user, experiment, method, analysis_name : str
        Free-text fields as stored.
    analysis_date : datetime.datetime or None
        Start of the analysis (minute resolution), None when the stored date is unreadable.
    analysis_duration_s : int
        Analysis duration, seconds.
    stage_position_um : tuple of int
        Stage x, y, z, micrometres.
    primary_ion : str
        Primary ion source, e.g. ``'Cs+'``.
    primary_current_pA : tuple of int
        Primary current at the start and the end of the analysis, picoampere.
    dead_times_ns : tuple of int
        Dead time of the electron multipliers EM1.. EM5 (and EM6, EM7 when stored), ns.
    em_yields_percent : tuple of float
        Yield of the same electron multipliers, percent.
    header_size : int
        Offset of the first pixel byte.
    mask_nano_version, anal_param_nano_release : int
        Versions of two header blocks (they decide the layout).
    roll_applied : tuple of int
        Cyclic shift (rows, columns) applied to the pixels by the reader; (0, 0) for none.
    written_by_napari_nanosims : bool
        True when the file was made by :func:`napari_nanosims.write_im`.
    """

    path: str
    byte_order: str
    release: int
    file_type: int
    file_type_name: str
    has_data: bool
    n_frames: int
    n_frames_header: int
    n_masses: int
    width: int
    height: int
    bytes_per_pixel: int
    labels: tuple[str, ...]
    masses_amu: tuple[float, ...]
    se_index: int | None
    trolley_slots: tuple[int, ...]
    raster_um: float
    pixel_size_um: float
    dwell_time_us: float
    frame_time_s: float
    sample_name: str
    comment: str
    user: str
    experiment: str
    method: str
    analysis_name: str
    analysis_date: _dt.datetime | None
    analysis_duration_s: int
    stage_position_um: tuple[int, int, int]
    primary_ion: str
    primary_current_pA: tuple[int, int]
    dead_times_ns: tuple[int, ...]
    em_yields_percent: tuple[float, ...]
    header_size: int
    mask_nano_version: int
    anal_param_nano_release: int
    roll_applied: tuple[int, int] = (0, 0)
    written_by_napari_nanosims: bool = False

    @property
    def file_name(self) -> str:
        """The file's name without its folder."""
        return os.path.basename(self.path)

    def to_dict(self) -> dict[str, Any]:
        """Return the header as JSON-serialisable values (dates as ISO 8601 strings)."""
        result: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, _dt.datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            result[field.name] = value
        return result


def _fail(path: str | os.PathLike, message: str) -> ImFormatError:
    return ImFormatError(f"{os.fspath(path)}: {message}")


def _detect_byte_order(path, head: bytes, forced: str | None) -> str:
    """Choose the byte order in which the file type (offset 4) is a small positive number."""
    if forced is not None:
        if forced not in ("<", ">"):
            raise ValueError(f"byte_order must be None, '<' or '>', not {forced!r}")
        (file_type,) = struct.unpack_from(forced + "i", head, 4)
        if not 0 < file_type < 256:
            raise _fail(path, f"file type at offset 4 reads {file_type} with byte order "
                        f"{forced!r}; this is not a NanoSIMS file in that byte order")
        return forced
    plausible = [order for order in ("<", ">")
                 if 0 < struct.unpack_from(order + "i", head, 4)[0] < 256]
    if len(plausible) != 1:
        raise _fail(path, "not a Cameca NanoSIMS file: the file type at offset 4 "
                    f"({head[4:8].hex()}) is not a small number in either byte order")
    return plausible[0]


def sniff_im(path: str | os.PathLike) -> bool:
    """Return True when ``path`` starts like a Cameca NanoSIMS image file.

    Looks only at the first 12 bytes (release, file type, header size) and the
    file size; never raises for unreadable or foreign files.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    if len(head) < 12 or size < L.DEF_ANALYSIS_SIZE:
        return False
    for order in ("<", ">"):
        release, file_type, header_size = struct.unpack(order + "3i", head)
        if (file_type in L.IMAGE_FILE_TYPES and 0 < release < 100000
                and L.DEF_ANALYSIS_SIZE < header_size <= size):
            return True
    return False


def _parse_date(date: str, time: str) -> _dt.datetime | None:
    match_d = re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{2,4})", date.strip())
    match_t = re.fullmatch(r"(\d{1,2})[:h.](\d{1,2})(?::(\d{1,2}))?", time.strip())
    if not match_d:
        return None
    day, month, year = (int(v) for v in match_d.groups())
    if year < 100:  # two-digit years: the instrument dates from 1990s on
        year += 2000 if year < 69 else 1900
    hour = minute = second = 0
    if match_t:
        hour, minute = int(match_t.group(1)), int(match_t.group(2))
        second = int(match_t.group(3) or 0)
    try:
        return _dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


class _HeaderBuffer:
    """The header bytes with bounds-checked decoding that names the offset at fault."""

    def __init__(self, path, data: bytes, byte_order: str):
        self.path = path
        self.data = data
        self.byte_order = byte_order

    def need(self, start: int, size: int, what: str) -> None:
        if start < 0 or start + size > len(self.data):
            raise _fail(self.path, f"{what} at offset {start} (+{size} bytes) lies outside "
                        f"the {len(self.data)}-byte header")

    def block(self, start: int, layout: L.Layout, size: int, what: str) -> L.Block:
        self.need(start, size, what)
        return L.decode_block(self.data, start, layout, self.byte_order)

    def tag_at(self, offset: int, tag: bytes) -> bool:
        return 0 <= offset and self.data[offset:offset + len(tag) + 1] == tag + b"\0"


def _polyatomique(buf: _HeaderBuffer, start: int) -> L.Block:
    poly = buf.block(start, L.POLYATOMIQUE, L.POLYATOMIQUE_SIZE, "Polyatomique")
    elements = struct.unpack_from(buf.byte_order + "15i", buf.data,
                                  start + L.POLYATOMIQUE_ELEMENTS_OFFSET)
    poly["tab_elts"] = [L.Block(num_elt=elements[3 * i], num_isotop=elements[3 * i + 1],
                                quantite=elements[3 * i + 2]) for i in range(5)]
    return poly


def _em_record(buf: _HeaderBuffer, start: int) -> tuple[float, int, int]:
    buf.need(start, 16, "electron multiplier record")
    return struct.unpack_from(buf.byte_order + "dii", buf.data, start)


def _parse_header_blocks(path, head: bytes, byte_order: str) -> dict[str, Any]:
    """Decode every header block the reader knows into a dict of :class:`Block`."""
    buf = _HeaderBuffer(path, head, byte_order)
    blocks: dict[str, Any] = {}
    blocks["def_analysis"] = da = buf.block(0, L.DEF_ANALYSIS, L.DEF_ANALYSIS_SIZE,
                                            "Def_analysis")
    release = da.release
    new_layout = release >= L.NEW_RELEASE
    mask_im_size = L.MASK_IM_SIZE_NEW if new_layout else L.MASK_IM_SIZE_OLD
    blocks["mask_im"] = mask_im = buf.block(L.DEF_ANALYSIS_SIZE, L.MASK_IM, mask_im_size,
                                            "Mask_im")
    n_masses = mask_im.nb_mass
    if not 0 < n_masses <= MAX_MASSES:
        raise _fail(path, f"number of masses at offset {L.MASK_IM_NB_MASS_OFFSET} is "
                    f"{n_masses}; expected 1 to {MAX_MASSES}")
    tab_mass_start = L.DEF_ANALYSIS_SIZE + mask_im_size

    tab_mass = []
    for k in range(n_masses):
        start = tab_mass_start + L.TAB_MASS_SIZE * k
        record = buf.block(start, L.TAB_MASS, L.TAB_MASS_SIZE, f"Tab_mass[{k}]")
        record["mass"] = _polyatomique(buf, start + L.TAB_MASS_POLY_OFFSET)
        tab_mass.append(record)
    blocks["tab_mass"] = tab_mass
    cal_start = tab_mass_start + L.TAB_MASS_SIZE * n_masses
    blocks["cal_cond"] = [
        buf.block(cal_start + L.CAL_COND_SIZE * k, L.CAL_COND, L.CAL_COND_SIZE,
                  f"Cal_cond[{k}]") for k in range(n_masses)]

    # Poly_list sits at a computed offset; its tag is missing in some files and a
    # stray copy of it appears in others, so the tag is only a soft check.
    poly_start = tab_mass_start + (L.TAB_MASS_SIZE + L.CAL_COND_SIZE) * n_masses
    blocks["poly_list"] = poly_list = buf.block(poly_start, L.POLY_LIST, L.POLY_LIST_SIZE,
                                                "Poly_list")
    poly_list["tag_present"] = poly_list.structname.startswith("Poly_list")
    nb_poly = poly_list.nb_poly if 0 <= poly_list.nb_poly <= 64 else 0
    blocks["polyatomique"] = [
        _polyatomique(buf, poly_start + L.POLY_LIST_SIZE + L.POLYATOMIQUE_SIZE * k)
        for k in range(nb_poly)]

    mask_nano_start = poly_start + L.POLY_LIST_SIZE + L.POLYATOMIQUE_SIZE * nb_poly
    blocks["mask_nano"] = mask_nano = buf.block(mask_nano_start, L.MASK_NANO,
                                                L.MASK_NANO_SIZE, "Mask_nano")
    version = mask_nano.m_nVersion
    bfield_start = mask_nano_start + L.MASK_NANO_SIZE
    nb_bfield = mask_nano.m_nNbBField if 0 < mask_nano.m_nNbBField <= 72 else 1
    bfield = buf.block(bfield_start, L.TAB_BFIELD_NANO, L.BFIELD_HEAD_SIZE,
                       "Tab_BField_nano")
    n_trolleys = L.TROLLEY_COUNT.get(version, 12)
    trolley_bytes = L.trolley_size(version)
    bfield["m_TrolleyTab"] = [
        buf.block(bfield_start + L.BFIELD_HEAD_SIZE + trolley_bytes * t, L.TROLLEY,
                  trolley_bytes, f"trolley record {t}")
        for t in range(n_trolleys)]
    blocks["tab_Bfield_nano"] = [bfield]

    # Anal_param_nano: computed from the B-field record size of this Mask_nano
    # version; when the version is unknown or the tag is not there, the first
    # tag after Mask_nano (a second copy further on must be ignored).
    tag = b"Anal_param_nano"
    apn = -1
    if version in L.BFIELD_RECORD_SIZE:
        apn = bfield_start + nb_bfield * L.BFIELD_RECORD_SIZE[version]
    if not buf.tag_at(apn, tag):
        apn = head.find(tag + b"\0", bfield_start)
        if apn < 0:
            raise _fail(path, f"no Anal_param_nano block after Mask_nano (offset "
                        f"{mask_nano_start}, version {version})")
    blocks["anal_param_nano"] = ap = buf.block(apn, L.ANAL_PARAM_NANO, L.ANAL_PARAM_NANO_SIZE,
                                               "Anal_param_nano")
    ap["prim"] = buf.block(apn + L.AP_PRIMARY_OFFSET, L.AP_PRIMARY, 552, "primary beam")
    ap["seco"] = buf.block(apn + L.AP_SECONDARY_OFFSET, L.AP_SECONDARY, 192, "secondary beam")
    em_records = [_em_record(buf, apn + L.EM_RECORDS_OFFSET + L.EM_RECORD_SIZE * k)
                  for k in range(5)]
    for k, (yield_, background, dead_time) in enumerate(em_records, start=1):
        ap[f"dEM{k}Yield"], ap[f"nEM{k}Background"], ap[f"nEM{k}DeadTime"] = (
            yield_, background, dead_time)

    dab_start = apn + L.ANAL_PARAM_NANO_SIZE
    blocks["def_analysis_bis"] = dab = buf.block(dab_start, L.DEF_ANALYSIS_BIS,
                                                 L.DEF_ANALYSIS_BIS_SIZE, "Def_analysis_bis")
    if dab.magic != L.DEF_ANALYSIS_BIS_MAGIC:
        raise _fail(path, f"Def_analysis_bis at offset {dab_start} has magic {dab.magic}, "
                    f"expected {L.DEF_ANALYSIS_BIS_MAGIC}")
    signature_at = dab_start + L.WRITER_SIGNATURE_OFFSET
    dab["written_by_napari_nanosims"] = (
        head[signature_at:signature_at + len(L.WRITER_SIGNATURE)] == L.WRITER_SIGNATURE)

    bis_start = dab_start + L.DEF_ANALYSIS_BIS_SIZE + L.ANAL_PARAM_SIZE + L.SETUP_SOFT_SIZE
    if buf.tag_at(bis_start, b"Anal_param_nano_bis"):
        blocks["anal_param_nano_bis"] = bis = buf.block(
            bis_start, L.ANAL_PARAM_NANO_BIS, L.ANAL_PARAM_NANO_BIS_SIZE, "Anal_param_nano_bis")
        for k, offset in ((6, L.EM6_RECORD_OFFSET), (7, L.EM7_RECORD_OFFSET)):
            (bis[f"dEM{k}Yield"], bis[f"nEM{k}Background"],
             bis[f"nEM{k}DeadTime"]) = _em_record(buf, bis_start + offset)

    hi_start = len(head) - L.HEADER_IMAGE_SIZE
    blocks["header_image"] = hi = buf.block(hi_start, L.HEADER_IMAGE, L.HEADER_IMAGE_SIZE,
                                            "Header_image")
    if hi.size_self != L.HEADER_IMAGE_SIZE:
        raise _fail(path, f"Header_image at offset {hi_start} (header size - 84) starts "
                    f"with {hi.size_self}, expected 84")
    blocks["_offsets"] = {
        "tab_mass": tab_mass_start, "poly_list": poly_start, "mask_nano": mask_nano_start,
        "tab_bfield_nano": bfield_start, "anal_param_nano": apn,
        "def_analysis_bis": dab_start,
        "anal_param_nano_bis": bis_start if "anal_param_nano_bis" in blocks else None,
        "header_image": hi_start}
    return blocks


def _se_index(tab_mass, trolleys) -> tuple[int | None, tuple[int, ...]]:
    """Find the secondary-electron channel and the detector slot of every mass.

    The slot is the trolley whose "valid" flag is set and whose acquisition index
    equals the mass's position (this also works in files whose Tab_mass index
    field is 0); otherwise the Tab_mass index field. A mass in slot 8 ("Esi"), or
    one with mass 0 amu and no label, is the SE image.
    """
    slots = []
    for k, record in enumerate(tab_mass):
        slot = record._not_in_spec
        for t, trolley in enumerate(trolleys):
            if trolley.m_nFlagTrolleyValided == 1 and trolley.m_nNum == k:
                slot = t + 1
                break
        slots.append(int(slot) if 0 <= slot <= 12 else 0)
    for k, record in enumerate(tab_mass):
        if slots[k] == SE_TROLLEY_SLOT or (record.mass_amu == 0.0 and not record.mass.string):
            return k, tuple(slots)
    return None, tuple(slots)


class MimsFile:
    """Everything :func:`load_mims` reads from one file (internal helper)."""

    def __init__(self, path, byte_order=None, roll_data="auto"):
        self.path = os.path.abspath(os.fspath(path))
        path = self.path
        try:
            file_size = os.path.getsize(path)
            with open(path, "rb") as handle:
                head = handle.read(12)
                if len(head) < 12 or file_size < L.DEF_ANALYSIS_SIZE:
                    raise _fail(path, f"file of {file_size} bytes is too short for a "
                                "NanoSIMS header")
                order = _detect_byte_order(path, head, byte_order)
                release, file_type, header_size = struct.unpack(order + "3i", head)
                if file_type not in L.IMAGE_FILE_TYPES:
                    name = L.FILE_TYPES.get(file_type, "unknown")
                    raise _fail(path, f"file type {file_type} ({name}) is not supported; "
                                "only image files (types 27, 29, 39) are")
                if not 0 < release < 100000:
                    raise _fail(path, f"release number {release} at offset 0 is implausible")
                if not L.DEF_ANALYSIS_SIZE < header_size <= min(file_size, MAX_HEADER_SIZE):
                    raise _fail(path, f"header size {header_size} at offset 8 is impossible "
                                f"for a file of {file_size} bytes")
                handle.seek(0)
                header_bytes = handle.read(header_size)
        except OSError as exc:
            raise _fail(path, f"cannot read the file: {exc.strerror or exc}") from exc
        self.byte_order = order
        self.blocks = _parse_header_blocks(path, header_bytes, order)
        self._build_header(file_size, header_size, roll_data)

    def _build_header(self, file_size: int, header_size: int, roll_data) -> None:
        path, blocks, order = self.path, self.blocks, self.byte_order
        da, hi, mask_nano = blocks["def_analysis"], blocks["header_image"], blocks["mask_nano"]
        ap = blocks["anal_param_nano"]
        dab = blocks["def_analysis_bis"]
        tab_mass = blocks["tab_mass"]
        n_masses = len(tab_mass)
        data_included = da.data_present == 1

        width, height = hi.w, hi.h
        if width <= 0 or height <= 0:
            # Header-only files may leave Header_image empty; the scan frame says it too.
            width, height = mask_nano.m_nNX_max, mask_nano.m_nNY_max
        if data_included and not (0 < width <= 16384 and 0 < height <= 16384):
            raise _fail(path, f"image size {hi.w} x {hi.h} pixels in Header_image (offset "
                        f"{header_size - 84 + 6}) is impossible")
        if not (0 < width <= 16384 and 0 < height <= 16384):
            width = height = 0
        bpp = hi.d
        if bpp not in (2, 4):
            if data_included:
                raise _fail(path, f"bytes per pixel is {bpp} in Header_image (offset "
                            f"{header_size - 84 + 10}); only 2 and 4 are known")
            bpp = 4 if da.release >= L.NEW_RELEASE else 2
        if data_included and hi.n != n_masses:
            raise _fail(path, f"Header_image holds {hi.n} masses (offset "
                        f"{header_size - 84 + 12}) but Mask_im lists {n_masses}")

        n_frames_header = max(int(hi.z), 0)
        frame_bytes = n_masses * width * height * bpp
        available = file_size - header_size
        n_frames = 0
        if data_included and frame_bytes > 0:
            complete, remainder = divmod(available, frame_bytes)
            name = os.path.basename(path)
            if complete < n_frames_header:
                warnings.warn(
                    f"{name}: truncated acquisition: the header announces {n_frames_header} "
                    f"frames but the file holds {complete} complete frames"
                    + (f" and {remainder} bytes of a partial frame, which were dropped"
                       if remainder else ""), ImFormatWarning, stacklevel=4)
                n_frames = complete
            elif complete == n_frames_header + 1 and remainder == 0:
                # OpenMIMS does the same: some files hold one frame more than announced.
                warnings.warn(f"{name}: the header announces {n_frames_header} frames but "
                              f"the file holds {complete}; reading all {complete}",
                              ImFormatWarning, stacklevel=4)
                n_frames = complete
            else:
                n_frames = n_frames_header
                if remainder or complete > n_frames_header:
                    extra = available - n_frames * frame_bytes
                    warnings.warn(f"{name}: {extra} bytes after the {n_frames} frames the "
                                  "header announces were ignored", ImFormatWarning,
                                  stacklevel=4)
        self.n_frames = n_frames
        self.shape = (n_frames, n_masses, height, width)
        self.dtype = np.dtype(f"{order}u{bpp}")
        self.header_size = header_size

        if roll_data == "auto":
            roll = da.release >= L.NEW_RELEASE and not dab.written_by_napari_nanosims
        elif isinstance(roll_data, (bool, np.bool_)):
            roll = bool(roll_data)
        else:
            raise ValueError(f"roll_data must be True, False or 'auto', not {roll_data!r}")
        self.roll = roll and n_frames > 0

        trolleys = blocks["tab_Bfield_nano"][0].m_TrolleyTab
        se_index, slots = _se_index(tab_mass, trolleys)
        labels = [" ".join(record.mass.string.split()) for record in tab_mass]
        if se_index is not None:
            labels[se_index] = "SE"
        raster_um = ap.prim.dRaster
        if not (np.isfinite(raster_um) and 0 < raster_um < 10000):
            raster_um = hi.raster / 1000.0 if hi.raster > 0 else float("nan")
        dwell_us = float(blocks["tab_Bfield_nano"][0].m_nCTperPixel)
        em = [(ap[f"nEM{k}DeadTime"], ap[f"dEM{k}Yield"]) for k in range(1, 6)]
        bis = blocks.get("anal_param_nano_bis")
        if bis is not None:
            em += [(bis[f"nEM{k}DeadTime"], bis[f"dEM{k}Yield"]) for k in (6, 7)]
        self.header = ImHeader(
            path=path,
            byte_order=order,
            release=da.release,
            file_type=da.analysis_type,
            file_type_name=L.FILE_TYPES[da.analysis_type],
            has_data=data_included and n_frames > 0,
            n_frames=n_frames,
            n_frames_header=n_frames_header,
            n_masses=n_masses,
            width=width,
            height=height,
            bytes_per_pixel=bpp,
            labels=tuple(labels),
            masses_amu=tuple(float(record.mass_amu) for record in tab_mass),
            se_index=se_index,
            trolley_slots=slots,
            raster_um=float(raster_um),
            pixel_size_um=float(raster_um / width) if width else float("nan"),
            dwell_time_us=dwell_us,
            frame_time_s=dwell_us * width * height * 1e-6,
            sample_name=dab.sample_name,
            comment=ap.pszComment,
            user=da.username,
            experiment=dab.experience,
            method=dab.method,
            analysis_name=da.analysis_name,
            analysis_date=_parse_date(da.date, da.heure),
            analysis_duration_s=blocks["mask_im"].anal_duration,
            stage_position_um=(da.sple_pos_x, da.sple_pos_y, da.nSamplePosz),
            primary_ion=ap.prim.pszIon,
            primary_current_pA=(ap.prim.nPrimCurrentT0, ap.prim.nPrimCurrentTEnd),
            dead_times_ns=tuple(int(dead) for dead, _ in em),
            em_yields_percent=tuple(float(y) for _, y in em),
            header_size=header_size,
            mask_nano_version=mask_nano.m_nVersion,
            anal_param_nano_release=ap.nRelease,
            roll_applied=(1, 1) if self.roll else (0, 0),
            written_by_napari_nanosims=bool(dab.written_by_napari_nanosims),
        )

    def pixels(self):
        """Return the pixel array (frames, masses, height, width), lazily.

        A read-only ``numpy.memmap`` of the stored values; when a roll is applied,
        a dask array that rolls each image on access (still lazy).
        """
        if self.n_frames == 0:
            return np.zeros(self.shape, dtype=self.dtype.newbyteorder("="))
        try:
            stored = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.header_size,
                               shape=self.shape)
        except (OSError, ValueError) as exc:
            raise _fail(self.path, f"cannot map the pixel data: {exc}") from exc
        if not self.roll:
            return stored
        import dask.array as da

        lazy = da.from_array(stored, chunks=(1, 1) + self.shape[2:], asarray=True)
        return da.roll(lazy, (1, 1), axis=(2, 3))


def read_header(filename: str | os.PathLike) -> ImHeader:
    """Read the header of a NanoSIMS ``.im`` file.

    Parameters
    ----------
    filename : str or path-like
        The ``.im`` file.

    Returns
    -------
    ImHeader
        The decoded header. Reading it never touches the pixel data.

    Raises
    ------
    ImFormatError
        If the file is not a readable NanoSIMS image file.
    """
    return MimsFile(filename, roll_data=False).header


def load_mims(filename: str | os.PathLike, byte_order: str | None = None,
              roll_data: bool | str = "auto") -> L.Block:
    """Load a NanoSIMS ``.im`` image file, as ``openformat.mims.load_mims`` does but right.

    Parameters
    ----------
    filename : str or path-like
        The ``.im`` file; it is opened read-only.
    byte_order : {None, '<', '>'}
        None detects the byte order from the file; ``'<'`` or ``'>'`` forces it.
    roll_data : {'auto', True, False}
        True shifts every image cyclically by one pixel along both axes (the seed's
        fix for the pixel-position glitch of the release-4108 software); False keeps
        the stored order; ``'auto'`` rolls only files of the release-4108 Cameca
        software and leaves older files (and files made by :func:`write_im`) as stored.

    Returns
    -------
    Block
        A dict with attribute access holding the seed's header blocks present in the
        file (``def_analysis``, ``mask_im``, ``tab_mass``, ``cal_cond``, ``poly_list``,
        ``polyatomique``, ``mask_nano``, ``tab_Bfield_nano``, ``anal_param_nano``,
        ``def_analysis_bis``, ``anal_param_nano_bis`` when present, ``header_image``),
        ``header`` (an :class:`ImHeader`) and ``data``: the counts with shape
        (frames, masses, height, width) as unsigned integers, memory-mapped read-only
        (a lazy dask array when a roll is applied).

    Raises
    ------
    ImFormatError
        If the file is malformed, truncated inside its header, foreign or unsupported.

    Warns
    -----
    ImFormatWarning
        When the file holds fewer (or one more) complete frames than the header says.
    """
    mims_file = MimsFile(filename, byte_order=byte_order, roll_data=roll_data)
    result = L.Block({k: v for k, v in mims_file.blocks.items() if not k.startswith("_")})
    result["header"] = mims_file.header
    result["data"] = mims_file.pixels()
    return result
