"""The header of a Cameca NanoSIMS ``.im`` file: its blocks, decoded into :class:`ImHeader`.

``docs/file-format.md`` describes the layout this module follows.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import struct
from typing import Any

from .._errors import ImFormatError
from ..model.header import SE_TROLLEY_SLOT, ImHeader, detector_name
from . import _layout as L

__all__ = ["ImHeader", "parse_header_blocks", "mass_slots", "detector_name"]

MAX_MASSES = 60


def _fail(path: str | os.PathLike, message: str) -> ImFormatError:
    return ImFormatError(f"{os.fspath(path)}: {message}")


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
        return offset >= 0 and self.data[offset:offset + len(tag) + 1] == tag + b"\0"


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


def parse_header_blocks(path, head: bytes, byte_order: str) -> dict[str, Any]:
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
    n_trolleys = L.TROLLEY_COUNT.get(version, 12)
    trolley_bytes = L.trolley_size(version)

    def b_field(start: int, number: int) -> L.Block:
        record = buf.block(start, L.TAB_BFIELD_NANO, L.BFIELD_HEAD_SIZE,
                           f"Tab_BField_nano[{number}]")
        record["m_TrolleyTab"] = [
            buf.block(start + L.BFIELD_HEAD_SIZE + trolley_bytes * t, L.TROLLEY,
                      trolley_bytes, f"trolley record {t} of B field {number}")
            for t in range(n_trolleys)]
        return record

    blocks["tab_Bfield_nano"] = [b_field(bfield_start, 0)]

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
    # Peak switching: one record per B field, each with its own trolley table. Only the
    # records that lie before Anal_param_nano are read (nb_bfield may be junk).
    record_size = L.BFIELD_RECORD_SIZE.get(version)
    if record_size and nb_bfield > 1:
        fitting = min(nb_bfield, (apn - bfield_start) // record_size)
        blocks["tab_Bfield_nano"] += [b_field(bfield_start + record_size * b, b)
                                      for b in range(1, fitting)]
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


def mass_slots(tab_mass, trolleys, old_layout: bool
               ) -> tuple[int | None, tuple[int, ...], tuple[str | None, ...]]:
    """Find the detector slot and detector of every mass, and the secondary-electron channel.

    The slot of mass ``k`` is the index ``t`` of the trolley record whose "valid" flag is
    set and whose acquisition index is ``k`` (this also works in files whose Tab_mass
    index field is 0); when no trolley says so, the Tab_mass index field. Slots 1-5 are
    EM1-EM5, 8 the SE detector ("Esi"), 10 and 11 EM6 and EM7 (``../shared/docs``
    analysis section 1.3). Old files (release < 4108) only populate slots 1-5 and 8; a
    higher slot there is junk and maps to no detector.

    Returns
    -------
    se_index : int or None
        Index of the SE mass (slot 8, or mass 0 amu without a label), None without SE.
    slots : tuple of int
        The slot of each mass (0 when unknown).
    detectors : tuple of str or None
        ``'EM1'``..``'EM7'``, ``'SE'``, ``'FC'`` (Tab_mass type 1) or None when unknown.
    """
    slots = []
    for k, record in enumerate(tab_mass):
        slot = record._not_in_spec
        for t, trolley in enumerate(trolleys):
            if trolley.m_nFlagTrolleyValided == 1 and trolley.m_nNum == k:
                slot = t
                break
        slots.append(int(slot) if 0 <= slot <= 12 else 0)
    se_index = None
    for k, record in enumerate(tab_mass):
        if slots[k] == SE_TROLLEY_SLOT or (record.mass_amu == 0.0 and not record.mass.string):
            se_index = k
            break
    detectors = tuple(
        "SE" if k == se_index else detector_name(slot, record.detecteur, old_layout)
        for k, (slot, record) in enumerate(zip(slots, tab_mass, strict=False)))
    return se_index, tuple(slots), detectors

