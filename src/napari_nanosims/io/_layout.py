"""Byte layouts of the Cameca ``.im`` header blocks.

Each block is a table of ``(field name, offset within the block, struct code)``.
Field names follow the seed library (``openformat.mims``) so that code written
against it keeps working; offsets and sizes follow ``docs/file-format.md``.
A struct code ending in ``s`` is a fixed-size, NUL-terminated Latin-1 string.

The same tables drive both :mod:`napari_nanosims.reader` (``decode_block``) and
:mod:`napari_nanosims.writer` (``encode_block``), so the two cannot disagree.
"""

from __future__ import annotations

import struct
from typing import Any


class Block(dict):
    """A decoded header block: a dict whose keys can also be read as attributes."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


Layout = tuple[tuple[str, int, str], ...]

# Sizes in bytes of the fixed blocks.
DEF_ANALYSIS_SIZE = 124
MASK_IM_SIZE_OLD = 328  # 10 pointer slots (release < 4108)
MASK_IM_SIZE_NEW = 528  # 60 pointer slots (release >= 4108)
TAB_MASS_SIZE = 192
CAL_COND_SIZE = 96
POLY_LIST_SIZE = 24
POLYATOMIQUE_SIZE = 144
MASK_NANO_SIZE = 1552
ANAL_PARAM_NANO_SIZE = 1840
DEF_ANALYSIS_BIS_SIZE = 2048
ANAL_PARAM_SIZE = 416
SETUP_SOFT_SIZE = 376
ANAL_PARAM_NANO_BIS_SIZE = 15264
HEADER_IMAGE_SIZE = 84
NEW_RELEASE = 4108  # first release of the Windows "N50 V7" software
DEF_ANALYSIS_BIS_MAGIC = 2306

# Tab_BField_nano record size by Mask_nano version, and the size of one
# trolley record and the number of trolley records inside it.
BFIELD_RECORD_SIZE = {2: 1784, 4: 1976, 8: 2648, 9: 2840, 10: 3128}
TROLLEY_COUNT = {2: 9, 4: 10}  # every later version holds 12
BFIELD_HEAD_SIZE = 56


def trolley_size(mask_nano_version: int) -> int:
    """Size in bytes of one trolley record for a Mask_nano version."""
    return 208 if mask_nano_version >= 9 else 192


FILE_TYPES = {
    21: "depth profile",
    22: "line scan, stage control",
    25: "E0S/E0W scan",
    26: "isotopes",
    27: "image",
    29: "grain mode image",
    30: "grain mode isotopes",
    31: "HMR/SIB centering/trolley step scan",
    32: "PHD scan",
    34: "tools scan",
    35: "beam stability/leak current",
    39: "line scan beam control image",
    40: "line scan, beam control",
    41: "sample stage image",
}
IMAGE_FILE_TYPES = (27, 29, 39)

DEF_ANALYSIS: Layout = (
    ("release", 0, "i"),
    ("analysis_type", 4, "i"),
    ("hdr_usr", 8, "i"),
    ("sample_type", 12, "i"),
    ("data_present", 16, "i"),
    ("sple_pos_x", 20, "i"),
    ("sple_pos_y", 24, "i"),
    ("analysis_name", 28, "32s"),
    ("username", 60, "16s"),
    ("nSamplePosz", 76, "i"),
    ("date", 92, "16s"),
    ("heure", 108, "16s"),
)

MASK_IM: Layout = (
    ("filename", 0, "16s"),
    ("anal_duration", 16, "i"),
    ("cycle_number", 20, "i"),
    ("scantype", 24, "i"),
    ("magnification", 28, "h"),
    ("sizetype", 30, "h"),
    ("size_detecteur", 32, "h"),
    ("beam_blanking", 36, "i"),
    ("pulverisation", 40, "i"),
    ("pulve_duration", 44, "i"),
    ("auto_cal_in_anal", 48, "i"),
    ("sig_reference", 124, "i"),
    ("nb_mass", 284, "i"),
)
MASK_IM_NB_MASS_OFFSET = 124 + 284  # absolute offset of n_masses

POLYATOMIQUE: Layout = (
    ("Flag_chiffre", 0, "i"),
    ("chiffre", 4, "i"),
    ("nb_elts", 8, "i"),
    ("nb_charges", 12, "i"),
    ("charge", 16, "1s"),
    ("string", 17, "64s"),
)
POLYATOMIQUE_ELEMENTS_OFFSET = 84  # 5 x (Z, isotope offset, count), after 3 pad bytes

TAB_MASS: Layout = (
    ("_not_in_spec", 0, "i"),  # the trolley slot of this mass (1-5, 8 = SE, 10/11)
    ("type_mass", 4, "i"),
    ("mass_amu", 8, "d"),
    ("matrice_ou_trace", 16, "i"),
    ("detecteur", 20, "i"),
    ("waiting_time", 24, "d"),
    ("counting_time", 32, "d"),
    ("offset", 40, "i"),
    ("mag_field", 44, "i"),
)
TAB_MASS_POLY_OFFSET = 48

CAL_COND: Layout = (
    ("n_delta", 0, "i"),
    ("np_delta", 4, "i"),
    ("tps_comptage", 8, "i"),
    ("nb_cycles", 12, "i"),
    ("no_used2", 16, "d"),
    ("cal_ref_mass", 24, "d"),
    ("symbol", 32, "64s"),
)

POLY_LIST: Layout = (
    ("structname", 0, "16s"),
    ("nb_poly", 16, "i"),
)

MASK_NANO: Layout = (
    ("m_nVersion", 0, "i"),
    ("m_nRegulationMode", 4, "i"),
    ("m_nMode", 8, "i"),
    ("m_nGrain_mode", 12, "i"),
    ("m_nSemi_graphic_mode", 16, "i"),
    ("m_nDeltax", 20, "i"),
    ("m_nDeltay", 24, "i"),
    ("m_nNX_max", 28, "i"),
    ("m_nNY_max", 32, "i"),
    ("m_nNX_low", 36, "i"),
    ("m_nNX_high", 40, "i"),
    ("m_nNY_low", 44, "i"),
    ("m_nNY_high", 48, "i"),
    ("m_nNX_lowB", 52, "i"),
    ("m_nNX_highB", 56, "i"),
    ("m_nNY_lowB", 60, "i"),
    ("m_nNY_highB", 64, "i"),
    ("m_nType_detecteur", 68, "i"),
    ("m_nElectron_scan", 72, "i"),
    ("m_nScanning_mode", 76, "i"),
    ("m_nBlanking_comptage", 80, "i"),
    ("m_nCheckAvailaible", 84, "i"),
    ("m_nCheckStart", 88, "i"),
    ("m_nCheckFrequency", 92, "i"),
    ("m_nNbBField", 96, "i"),
)

TAB_BFIELD_NANO: Layout = (
    ("m_nFlagBFieldSelected", 0, "i"),
    ("m_nBField", 4, "i"),
    ("m_nWT", 8, "i"),  # waiting time, us
    ("m_nCTperPixel", 12, "i"),  # dwell time per pixel, us
    ("m_dCTperPoint", 16, "d"),  # counting time per point, s
    ("m_nComputed", 24, "i"),
    ("m_nE0wOffset", 28, "i"),
    ("m_nQVal", 32, "i"),
    ("m_nLF4Val", 36, "i"),
    ("m_nHexVal", 40, "i"),
    ("m_nNbFrame", 44, "i"),
)

TROLLEY: Layout = (
    ("m_pszSymbol", 0, "64s"),
    ("m_dAMU", 64, "d"),
    ("m_dRadius", 72, "d"),
    ("m_nNegPlate", 80, "i"),
    ("m_nPosPlate", 84, "i"),
    ("m_nDetecteur", 88, "i"),
    ("m_nOutSlit", 92, "i"),
    ("m_nFlagTrolleyValided", 96, "i"),  # 1 for a real trolley
    ("m_nNum", 100, "i"),  # acquisition index of the mass it measured, -1 if none
)

AP_PRIMARY_OFFSET = 288
ANAL_PARAM_NANO: Layout = (
    ("pszNomStruct", 0, "16s"),
    ("nRelease", 16, "i"),
    ("nIsN50Large", 20, "i"),
    ("pszComment", 32, "256s"),
)
AP_PRIMARY: Layout = (
    ("pszIon", 0, "8s"),
    ("nPrimCurrentT0", 8, "i"),  # pA
    ("nPrimCurrentTEnd", 12, "i"),  # pA
    ("nPrimLDuo", 16, "i"),
    ("nPrimL1", 20, "i"),
    ("dRaster", 160, "d"),  # um
    ("dOct45", 168, "d"),
    ("dOct90", 176, "d"),
    ("dPrimaryFoc", 184, "d"),
    ("pszAnalChamberPres", 192, "32s"),
)
AP_SECONDARY_OFFSET = 840
AP_SECONDARY: Layout = (("dHVSample", 0, "d"),)  # E0W, V
# EM1..EM5 detector records (yield f64 in %, background i32, dead time i32 in ns).
EM_RECORDS_OFFSET = 1632
EM_RECORD_SIZE = 16

ANAL_PARAM_NANO_BIS: Layout = (("pszNomStruct", 0, "24s"),)
# EM6 and EM7 records inside Anal_param_nano_bis (yield f64 %, background, dead time ns).
EM6_RECORD_OFFSET = 112
EM7_RECORD_OFFSET = 216

DEF_ANALYSIS_BIS: Layout = (
    ("magic", 0, "i"),
    ("release", 4, "i"),
    ("filename", 8, "256s"),
    ("matrice", 264, "256s"),
    ("eps_recentrage", 544, "i"),
    ("eps_flag", 548, "i"),
    ("sple_rot_flag", 864, "i"),
    ("sple_rot_speed", 868, "i"),
    ("sple_rot_acq_sync", 872, "i"),
    ("sample_name", 876, "80s"),
    ("experience", 956, "32s"),
    ("method", 988, "32s"),
)
# Unused space in Def_analysis_bis where our writer signs the files it makes, so
# that roll_data='auto' can tell them from files of the Cameca software.
WRITER_SIGNATURE_OFFSET = 1020
WRITER_SIGNATURE = b"written by napari-nanosims"

HEADER_IMAGE: Layout = (
    ("size_self", 0, "i"),
    ("type", 4, "h"),
    ("w", 6, "h"),
    ("h", 8, "h"),
    ("d", 10, "h"),
    ("n", 12, "h"),
    ("z", 14, "h"),
    ("raster", 16, "i"),  # nm
    ("nickname", 20, "64s"),
)


def decode_string(raw: bytes) -> str:
    """Decode a fixed-size C string: cut at the first NUL, Latin-1, strip blanks."""
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def decode_block(buffer: bytes, start: int, layout: Layout, byte_order: str) -> Block:
    """Decode the fields of ``layout`` from ``buffer`` at ``start``.

    The caller must have checked that the whole block lies inside ``buffer``.
    """
    block = Block()
    for name, offset, code in layout:
        (value,) = struct.unpack_from(byte_order + code, buffer, start + offset)
        block[name] = decode_string(value) if code.endswith("s") else value
    return block


def encode_block(
    buffer: bytearray, start: int, layout: Layout, byte_order: str, values: dict[str, Any]
) -> None:
    """Write the fields of ``layout`` named in ``values`` into ``buffer`` at ``start``."""
    for name, offset, code in layout:
        if name not in values:
            continue
        value = values[name]
        if code.endswith("s"):
            size = int(code[:-1])
            value = str(value).encode("latin-1")
            if len(value) >= size and size > 1:
                raise ValueError(f"{name!r} is longer than {size - 1} characters: {value!r}")
        struct.pack_into(byte_order + code, buffer, start + offset, value)
