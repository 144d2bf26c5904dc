"""OpenMIMS ``.nrrd`` files: what OpenMIMS and the NanoSIMS Stabilizer read.

The layout is OpenMIMS's (``docs/export.md``): an attached ASCII header, raw data,
``sizes: W H P M`` with x fastest and the masses slowest, ``Mims_*`` keys with the
masses, their symbols, the true dwell time and the correction flags. We add a few
``napari_nanosims_*`` keys (the labels as written, the header and the history as JSON)
which OpenMIMS keeps as free metadata and which :func:`read_nrrd` uses to give back
the acquisition as it was, and a checksum of the data (``napari_nanosims_data_sha256``):
tools such as the NanoSIMS Stabilizer copy every key into the files they write, so the
checksum is what tells our history apart from data changed since.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ImFormatError
from ._description import (
    checked_detectors,
    checked_header_values,
    checked_history,
    checked_strings,
    checked_translations,
    loads,
    warn_dropped,
)
from ._files import atomic_output, refuse_existing
from ._payload import CHUNK, Payload
from .ometiff import json_ready, software_versions

__all__ = ["write_nrrd", "read_nrrd", "read_nrrd_header", "nrrd_symbol", "data_sha256",
           "CHECKSUM_KEY", "CHANGED_OUTSIDE"]

#: The key holding :func:`data_sha256` of the data written.
CHECKSUM_KEY = "napari_nanosims_data_sha256"
#: History step of a file whose data no longer match the checksum we wrote.
CHANGED_OUTSIDE = "changed_outside_napari_nanosims"
#: What OpenMIMS's reader splits a header line on: a colon and Java's ``\s+`` (space,
#: tab, line feed, vertical tab, form feed, carriage return; ``Nrrd_Reader.getFieldPart``).
_OPENMIMS_SPLIT = re.compile(":[ \t\n\x0b\f\r]+")
#: Values hashed at a time (8 bytes each): 8 MiB of float64 at most besides the data.
_HASH_CHUNK_VALUES = 1024 * 1024

_TYPES = {"float": ">f4", "uint16": ">u2", "double": ">f8", "int16": ">i2", "uint8": "u1",
          "int32": ">i4", "uint32": ">u4", "int8": "i1", "short": ">i2", "ushort": ">u2",
          "unsigned short": ">u2", "float32": ">f4", "int": ">i4", "uint": ">u4"}
_MAX_HEADER_BYTES = 1 << 20


def nrrd_symbol(label: str, kind: str = "ion") -> str:
    """A mass label as OpenMIMS writes it: no spaces; ``'-'`` for the SE channel."""
    return "-" if kind == "SE" else "".join(label.split())


def _clean(value) -> str:
    """One header value as OpenMIMS reads it whole.

    Line breaks become ``&/&/&`` (as OpenMIMS writes notes), and the white space after a
    colon is dropped: OpenMIMS splits every header line on a colon followed by white
    space and keeps only the text before it (``'cell:\\tA'`` is written ``'cell:A'``).
    """
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").replace("\n", "&/&/&")
    return _OPENMIMS_SPLIT.sub(":", text)


def _json_value(value) -> str:
    """``value`` as one-line JSON that OpenMIMS and pynrrd read whole and unchanged.

    Compact separators put no space after a structural colon, and ``json.dumps`` escapes
    every control character, so a colon followed by white space can only be a colon and a
    space inside a string: that space is written as the JSON escape ``\\u0020``, which
    parses back to the same text.
    """
    text = json.dumps(json_ready(value), separators=(",", ":"), ensure_ascii=True)
    return text.replace(": ", ":\\u0020")


class _ValueHash:
    """SHA-256 of values fed in file order, as :func:`data_sha256` defines it."""

    def __init__(self):
        self.digest = hashlib.sha256()

    def update(self, values: np.ndarray) -> None:
        flat = np.ascontiguousarray(values).reshape(-1)
        floating = flat.dtype.kind == "f"
        for start in range(0, flat.size, _HASH_CHUNK_VALUES):
            chunk = flat[start:start + _HASH_CHUNK_VALUES].astype(">f8")
            if floating:  # integers have neither NaN nor -0.0
                chunk += 0.0  # -0.0 + 0.0 is 0.0
                chunk[np.isnan(chunk)] = np.nan
            self.digest.update(chunk)


def data_sha256(stored) -> str:
    """SHA-256 (hex) of the data of a ``.nrrd`` file, whatever its type and byte order.

    Parameters
    ----------
    stored : array_like, shape (masses, planes, height, width)
        The values in file order (x fastest, masses slowest); C-contiguous, or a copy is
        made.

    Returns
    -------
    str
        The hash of every value as a big-endian IEEE float64, in file order, with every
        NaN written as the one quiet NaN and -0.0 as 0.0: the same values stored as
        uint16 or float32, big- or little-endian (pynrrd writes little-endian) give the
        same checksum. Hashed in chunks, so the only extra memory is one chunk.
    """
    hasher = _ValueHash()
    hasher.update(np.asarray(stored))
    return hasher.digest.hexdigest()


def _qsa_record(acquisition):
    return next((r for r in reversed(acquisition.history) if r.name == "correct_qsa"), None)


def _mims_keys(acquisition) -> list[tuple[str, str]]:
    header = acquisition.header
    channels = acquisition.channels
    keys = [
        ("Mims_mass_numbers", " ".join(f"{c.mass_amu:.2f}" for c in channels)),
        ("Mims_mass_symbols", " ".join(nrrd_symbol(c.label, c.kind) for c in channels)),
    ]
    x, y, z = (tuple(header.stage_position_um) + (0, 0, 0))[:3]
    keys.append(("Mims_position", f"{x},{y}"))
    if header.analysis_date is not None:
        keys += [("Mims_date", header.analysis_date.strftime("%d.%m.%y")),
                 ("Mims_hour", header.analysis_date.strftime("%H:%M"))]
    keys += [
        ("Mims_user_name", _clean(header.user)),
        ("Mims_sample_name", _clean(header.sample_name)),
        ("Mims_z_position", str(z)),
        # The true dwell (the B-field table's), ms per pixel.
        ("Mims_dwell_time", f"{header.dwell_time_us / 1000:.6g}"),
        ("Mims_count_time", f"{header.frame_time_s:.6g}"),
        ("Mims_duration", str(int(header.analysis_duration_s))),
        ("Mims_raster", str(int(round(header.raster_um * 1000)))),
        ("Mims_pixel_width", f"{header.pixel_size_um * 1000:.6g}"),
        ("Mims_pixel_height", f"{header.pixel_size_um * 1000:.6g}"),
        ("Mims_deadtime_correction_applied",
         "true" if acquisition.applied("correct_dead_time") else "false"),
        ("Mims_QSA_correction_applied", "true" if acquisition.applied("correct_qsa") else "false"),
    ]
    qsa = _qsa_record(acquisition)
    if qsa is not None:
        used = qsa.parameters.get("beta_used", {})
        keys += [("Mims_QSA_betas", ", ".join(f"{float(used.get(c.label, 0.0)):g}"
                                               for c in channels)),
                 ("Mims_QSA_FC_Obj", f"{float(qsa.parameters.get('primary_current_pA', 0)):g}")]
    steps = "; ".join(record.name for record in acquisition.history) or "none"
    keys.append(("Mims_notes", _clean(f"written by napari-nanosims from {header.file_name}; "
                                      f"steps: {steps}")))
    ours = {"labels": list(acquisition.labels),
            "detectors": [c.detector for c in channels],
            "header": header.to_dict(),
            "history": acquisition.history_dicts(),
            "translations_px": acquisition.translations,
            "software": software_versions()}
    for name, value in ours.items():
        keys.append((f"napari_nanosims_{name}", _json_value(value)))
    return keys


def _stored_array(counts) -> tuple[np.ndarray, str]:
    """(M, P, H, W) big-endian data and its NRRD type: uint16 when every value fits."""
    data = np.asarray(counts)
    whole = data.dtype.kind in "uib" or (data.size and np.all(np.isfinite(data))
                                         and np.array_equal(data, np.round(data)))
    if whole and (data.size == 0 or (data.min() >= 0 and data.max() <= 65535)):
        return np.ascontiguousarray(data.transpose(1, 0, 2, 3), dtype=">u2"), "uint16"
    return np.ascontiguousarray(data.transpose(1, 0, 2, 3), dtype=">f4"), "float"


def write_nrrd(acquisition, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write an acquisition's counts as an OpenMIMS ``.nrrd`` file.

    Parameters
    ----------
    acquisition : Acquisition
        Counts ``(frames, masses, height, width)`` (raw, cleaned, corrected or aligned).
    path : path-like
        The file; written under a temporary name and renamed.
    overwrite : bool
        Replace an existing file; otherwise OutputExistsError (a FileExistsError).

    Returns
    -------
    pathlib.Path
        The file written. Data are uint16 when every value is a whole number from 0 to
        65535, else float32 (OpenMIMS reads nothing else); big-endian, raw encoding. The
        header holds :func:`data_sha256` of the data as written (``CHECKSUM_KEY``) and no
        time stamp: the same acquisition always gives the same bytes.
    """
    path = Path(path)
    refuse_existing([path], overwrite)  # before the data are converted
    n_frames, n_masses, height, width = acquisition.shape
    data, kind = _stored_array(acquisition.counts)
    version = software_versions().get("napari-nanosims", "?")
    lines = [
        "NRRD0004",
        f"# Created by napari-nanosims {version}",
        f"type: {kind}",
        "encoding: raw",
        "endian: big",
        "dimension: 4",
        f"sizes: {width} {height} {n_frames} {n_masses}",
        "kinds: space space space list",
        "spacings: 1.0 1.0 1.0 NaN",
        "centers: node node node node",
        'units: "pixel" "pixel" "pixel" "pixel"',
    ] + [f"{key}:={value}" for key, value in _mims_keys(acquisition)]
    lines.append(f"{CHECKSUM_KEY}:={data_sha256(data)}")
    text = "\n".join(lines) + "\n\n"
    with atomic_output(path, overwrite) as temporary, open(temporary, "wb") as handle:
        handle.write(text.encode("latin-1", errors="replace"))
        handle.write(data.tobytes())
    return path


def read_nrrd_header(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, str], int]:
    """(fields, key-value pairs, data offset) of an attached-header NRRD file."""
    path = os.fspath(path)
    fields: dict[str, str] = {}
    pairs: dict[str, str] = {}
    with open(path, "rb") as handle:
        magic = handle.readline(64)
        if not magic.startswith(b"NRRD000"):
            raise ImFormatError(f"{path}: not a NRRD file (it starts with {magic[:8]!r})")
        while True:
            line = handle.readline(_MAX_HEADER_BYTES)
            if not line:
                raise ImFormatError(f"{path}: the NRRD header has no end (no empty line)")
            if handle.tell() > _MAX_HEADER_BYTES:
                raise ImFormatError(f"{path}: NRRD header longer than 1 MiB")
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                break
            if text.startswith("#"):
                continue
            if ":=" in text:
                key, _, value = text.partition(":=")
                pairs[key.strip()] = value
            elif ": " in text:
                key, _, value = text.partition(": ")
                fields[key.strip().lower()] = value.strip()
        return fields, pairs, handle.tell()


def _floats(text: str | None) -> list[float]:
    try:
        return [float(v) for v in (text or "").replace(",", " ").split()]
    except ValueError:
        return []


def read_nrrd(path: str | os.PathLike):
    """Read an OpenMIMS-layout ``.nrrd`` file (ours, OpenMIMS's or the Stabilizer's).

    Returns
    -------
    Acquisition
        Counts ``(frames, masses, height, width)`` as stored (uint16 or float32), the mass
        labels (restored with their spaces from our own files; ``'-'`` becomes SE), the
        pixel size and dwell time from the ``Mims_*`` keys, and for files we wrote the
        original header and history. The history and translations are restored only
        when the data still match the checksum we wrote (:func:`data_sha256`): a file
        another tool changed but whose header it copied (the NanoSIMS Stabilizer does)
        comes back as a new acquisition whose history is one step,
        ``changed_outside_napari_nanosims``, holding the old history as ``before``
        (and the recorded and found checksums); its translations no longer describe the
        data and are dropped. The header (sample, date, masses) is kept.

    Raises
    ------
    ImFormatError
        Not a NRRD file, a layout other than OpenMIMS's 4-D one, an encoding other than
        raw, gzip or bzip2, or data that do not match the header's sizes: raw data
        shorter than the sizes need, compressed data that inflate to more or fewer bytes
        (checked in pieces of 256 KiB before the counts are allocated). Memory: the
        counts plus about 1 MiB.

    Warns
    -----
    ImFormatWarning
        Our ``napari_nanosims_*`` values that are not valid JSON or not of the type we
        write are named once and left out; the data are read.
    """
    from ..model import Acquisition, HistoryRecord, channels_from_header

    path = os.fspath(path)
    fields, pairs, offset = read_nrrd_header(path)
    try:
        sizes = [int(v) for v in fields.get("sizes", "").split()]
    except ValueError:
        raise ImFormatError(f"{path}: unreadable sizes {fields.get('sizes')!r}") from None
    if len(sizes) == 3:
        sizes.append(1)
    if len(sizes) != 4 or min(sizes) < 1:
        raise ImFormatError(f"{path}: expected sizes 'W H P M' (4 dimensions), got "
                            f"{fields.get('sizes')!r}")
    width, height, n_frames, n_masses = sizes
    kind = fields.get("type", "").lower()
    if kind not in _TYPES:
        raise ImFormatError(f"{path}: NRRD type {kind!r} is not supported")
    dtype = np.dtype(_TYPES[kind])
    if fields.get("endian", "big").lower() == "little":
        dtype = dtype.newbyteorder("<")
    if "data file" in fields or "datafile" in fields:
        raise ImFormatError(f"{path}: detached NRRD data files are not supported")
    # Hashed while reading when the checksum may be needed (see below).
    hasher = _ValueHash() if CHECKSUM_KEY in pairs or any(
        f"napari_nanosims_{name}" in pairs for name in ("history", "translations_px")) else None
    with open(path, "rb") as handle:
        # Checks the bytes present against the sizes before anything is allocated.
        payload = Payload(handle, path, offset, fields.get("encoding", "raw").lower(),
                          width * height * n_frames * n_masses * dtype.itemsize)
        counts = np.empty((n_frames, n_masses, height, width), dtype.newbyteorder("="))
        # Planes (one mass, one frame) in file order, about CHUNK bytes at a time: the
        # only memory besides the counts.
        per_block = max(1, CHUNK // (width * height * dtype.itemsize))
        for first in range(0, n_masses * n_frames, per_block):
            planes = np.arange(first, min(first + per_block, n_masses * n_frames))
            block = np.empty((planes.size, height, width), dtype)
            payload.fill(block)
            counts[planes % n_frames, planes // n_frames] = block
            if hasher is not None:
                hasher.update(block)

    dropped: list[str] = []

    def ours(name, check, *args) -> Any:
        """Our stored value ``name`` when present and as we write it; else None, and
        named in the warning when present but unusable."""
        key = f"napari_nanosims_{name}"
        if key not in pairs:
            return None
        try:
            value = loads(pairs[key])
        except ValueError:
            value = check = None
        checked = check(value, *args) if check is not None else None
        if checked is None and (value is not None or check is None):
            dropped.append(key)
        return checked

    symbols = pairs.get("Mims_mass_symbols", "").split()
    labels = ours("labels", checked_strings, n_masses) or [
        ("SE" if s == "-" else s) for s in symbols]
    if len(labels) != n_masses:
        labels = [f"mass {k}" for k in range(n_masses)]
    masses = [m for m in _floats(pairs.get("Mims_mass_numbers")) if np.isfinite(m)]
    pixel_nm = (_floats(pairs.get("Mims_pixel_width")) or [1000.0])[0]
    dwell_ms = (_floats(pairs.get("Mims_dwell_time")) or [1.0])[0]
    acquisition = Acquisition.from_arrays(
        counts, labels, masses_amu=masses if len(masses) == n_masses else None,
        pixel_size_um=pixel_nm / 1000.0 if np.isfinite(pixel_nm) else float("nan"),
        dwell_time_us=dwell_ms * 1000.0 if np.isfinite(dwell_ms) else float("nan"),
        detectors=ours("detectors", checked_detectors, n_masses),
        name=os.path.basename(path))
    header = dataclasses.replace(acquisition.header, path=os.path.abspath(path))
    if "napari_nanosims_header" in pairs:
        # The original header, with this file's shape and place.
        values = ours("header", lambda value: value)
        usable, bad = checked_header_values(values, header)
        if bad and values is not None:
            dropped.append(f"napari_nanosims_header ({', '.join(bad)})")
        header = dataclasses.replace(header, **usable)
        header = dataclasses.replace(header, path=os.path.abspath(path), n_frames=n_frames,
                                     n_frames_header=n_frames, n_masses=n_masses,
                                     width=width, height=height, has_data=True)
    else:
        header = dataclasses.replace(header, sample_name=pairs.get("Mims_sample_name", ""),
                                     user=pairs.get("Mims_user_name", ""))
    history = tuple(HistoryRecord(h["step"], h.get("parameters", {}), h.get("version", "?"))
                    for h in ours("history", checked_history) or [])
    translations = ours("translations_px", checked_translations, n_frames)
    warn_dropped(path, dropped)
    if history or translations is not None or CHECKSUM_KEY in pairs:
        recorded = pairs.get(CHECKSUM_KEY, "").strip()
        assert hasher is not None  # one of these keys is present, so it was hashed
        found = hasher.digest.hexdigest()
        if recorded != found:
            # The header describes data that are no longer these (another tool wrote new
            # data under our copied keys): keep what was done before as information only.
            reason = ("the data do not match the checksum napari-nanosims wrote"
                      if recorded else "the file has no data checksum to check the "
                      "napari-nanosims history against")
            history = (HistoryRecord(CHANGED_OUTSIDE, {
                "reason": reason, "before": [record.to_dict() for record in history],
                "data_sha256_recorded": recorded or None, "data_sha256_found": found}),)
            translations = None
    return Acquisition(header=header, channels=channels_from_header(header), counts=counts,
                       path=os.path.abspath(path), history=history,
                       translations=None if translations is None else np.asarray(translations))
