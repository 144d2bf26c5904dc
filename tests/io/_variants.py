"""Make header variants of written files: other Mask_nano versions, releases, junk.

Test-only helpers. They splice the bytes of a file written by ``write_im`` so
that it takes the shape of the other layouts seen in real files.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from napari_nanosims.io import _layout as L
from napari_nanosims.io.reader import MimsFile


def patch_int32(data: bytearray, offset: int, value: int, order: str) -> None:
    struct.pack_into(order + "i", data, offset, value)


def make_variant(source: Path, target: Path, *, mask_nano_version: int | None = None,
                 release: int | None = None, drop_bis: bool = False,
                 poly_tag: bool = True, stray_poly_tag: bool = False, junk: bool = False,
                 seed: int = 0) -> Path:
    """Write ``target``: ``source`` re-laid-out as asked."""
    info = MimsFile(source, roll_data=False)
    order = info.byte_order
    off = dict(info.blocks["_offsets"])
    raw = bytearray(Path(source).read_bytes())
    header_size = info.header_size
    header, pixels = raw[:header_size], raw[header_size:]
    old_version = info.blocks["mask_nano"].m_nVersion
    rng = np.random.default_rng(seed)

    if mask_nano_version is not None and mask_nano_version != old_version:
        bfield = off["tab_bfield_nano"]
        old_size = L.BFIELD_RECORD_SIZE[old_version]
        new_size = L.BFIELD_RECORD_SIZE[mask_nano_version]
        old_t, new_t = L.trolley_size(old_version), L.trolley_size(mask_nano_version)
        record = bytearray(new_size)
        record[:L.BFIELD_HEAD_SIZE] = header[bfield:bfield + L.BFIELD_HEAD_SIZE]
        for t in range(L.TROLLEY_COUNT.get(mask_nano_version, 12)):
            src = bfield + L.BFIELD_HEAD_SIZE + old_t * t
            dst = L.BFIELD_HEAD_SIZE + new_t * t
            record[dst:dst + min(old_t, new_t)] = header[src:src + min(old_t, new_t)]
        header[bfield:bfield + old_size] = record
        patch_int32(header, off["mask_nano"], mask_nano_version, order)
        for key in ("anal_param_nano", "def_analysis_bis", "anal_param_nano_bis"):
            if off[key] is not None:
                off[key] += new_size - old_size
    if drop_bis and off["anal_param_nano_bis"] is not None:
        start = off["anal_param_nano_bis"]
        del header[start:start + L.ANAL_PARAM_NANO_BIS_SIZE]
        patch_int32(header, off["anal_param_nano"] + 16, 4, order)
    if release is not None:
        patch_int32(header, 0, release, order)
    if not poly_tag:
        header[off["poly_list"]:off["poly_list"] + 16] = bytes(16)
    if junk:
        # Uninitialised memory in fields the reader must ignore.
        mask_im_pointers = L.MASK_IM_NB_MASS_OFFSET + 4
        header[mask_im_pointers:off["tab_mass"]] = rng.bytes(off["tab_mass"] - mask_im_pointers)
        cal = off["tab_mass"] + L.TAB_MASS_SIZE * info.header.n_masses
        header[cal:off["poly_list"]] = rng.bytes(off["poly_list"] - cal)
        header[80:92] = rng.bytes(12)
        pointers = off["mask_nano"] + 100
        header[pointers:pointers + 288] = rng.bytes(288)
    if stray_poly_tag:
        stray = off["poly_list"] - 40
        header[stray:stray + 10] = b"Poly_list\0"
    patch_int32(header, 8, len(header), order)
    target.write_bytes(bytes(header) + bytes(pixels))
    return target
