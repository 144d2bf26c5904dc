"""Structure-aware fuzzing of the readers (``.im``, ``.nrrd``, OME-TIFF), seeded.

Shared by the tests (a few hundred cases per reader) and ``benchmarks/fuzz_readers.py``
(10 000). The mutations know each format: ``.im`` header fields and frame counts;
``.nrrd`` header fields, sizes, types, encodings, detached data files, truncated and
inflated payloads and our JSON keys; OME-TIFF XML sizes, types, channels, malformed XML,
IFD entries, truncations and our JSON description. The contract each case is held to:
it reads, or it raises ImFormatError/ValueError naming the file, within about twice the
file's size of memory (:func:`run_case` measures).
"""

from __future__ import annotations

import bz2
import gzip
import json
import os
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

import numpy as np

__all__ = ["nrrd_sources", "ome_sources", "mutate_nrrd", "mutate_ome", "mutate_im",
           "run_case", "Outcome", "HOSTILE_JSON"]

#: JSON texts that break naive readers: deep nesting, wrong types, huge numbers, junk.
HOSTILE_JSON = ["[" * 20_000 + "]" * 20_000, '{"a":' * 5000 + "1" + "}" * 5000,
                "1" * 5000, "1e999", "NaN", "-Infinity", "null", "true", "0", '"text"',
                "{}", "[]", "[1, 2]", '[[1, "a"]]', '[{"step": 1}]', '{"step": []}',
                '[{"label": 3}]', '{"n_frames": "x", "labels": [1, 2], "se_index": 99, '
                '"analysis_date": "not a date", "pixel_size_um": 1e999}', "{", "[1,",
                '"\\ud800"', '{"a": "' + "x" * 10_000 + '"}']
_SIZES = ["0", "-1", "1", "2", "3", "40000", str(2**31), str(2**63), "1" + "0" * 30,
          "9" * 5000, "1.5", "x", ""]


def _small_acquisition(seed: int = 0, frames: int = 3, masses: int = 2, shape=(6, 5),
                       floating: bool = False):
    from ..model import Acquisition

    rng = np.random.default_rng(seed)
    counts = rng.poisson(20, size=(frames, masses) + shape).astype(np.uint32)
    if floating:
        counts = counts.astype(np.float64) + 0.25
    labels = ["12C", "13C", "12C 14N", "SE"][:masses - 1] + ["SE"]
    return Acquisition.from_arrays(counts, labels, pixel_size_um=0.08, name="fuzz")


def nrrd_sources(folder) -> list[bytes]:
    """Small ``.nrrd`` files: ours (uint16 and float32), gzip, bzip2 and little-endian."""
    from ..export.nrrd import write_nrrd

    folder = Path(folder)
    raws = []
    for index, floating in enumerate((False, True)):
        path = write_nrrd(_small_acquisition(index, floating=floating),
                          folder / f"source{index}.nrrd", overwrite=True)
        raws.append(path.read_bytes())
    header, _, data = raws[0].partition(b"\n\n")
    raws.append(header.replace(b"encoding: raw", b"encoding: gzip") + b"\n\n"
                + gzip.compress(data, mtime=0))
    raws.append(header.replace(b"encoding: raw", b"encoding: bzip2") + b"\n\n"
                + bz2.compress(data))
    swapped = np.frombuffer(data, ">u2").astype("<u2").tobytes()
    raws.append(header.replace(b"endian: big", b"endian: little") + b"\n\n" + swapped)
    return raws


def _compress(header: bytes, data: bytes) -> bytes:
    return bz2.compress(data) if b"encoding: bzip2" in header else gzip.compress(data, mtime=0)


def mutate_nrrd(raw: bytes, rng: np.random.Generator) -> bytes:
    """One hostile variant of a ``.nrrd`` file (header-aware)."""
    header, _, data = raw.partition(b"\n\n")
    lines = header.split(b"\n")
    kind = int(rng.integers(0, 10))
    compressed = b"encoding: gzip" in header or b"encoding: bzip2" in header
    if kind == 0:  # a field with a hostile value
        field = rng.choice(["sizes", "type", "encoding", "endian", "dimension"])
        values = {"sizes": [" ".join(rng.choice(_SIZES, size=int(rng.integers(1, 6))))
                            for _ in range(3)] + ["6 5 3 2", "6 5 40000 2", "1 1 1 1"],
                  "type": ["uint8", "double", "int32", "block", "float", ""],
                  "encoding": ["raw", "gzip", "bzip2", "ascii", "hex", "zlib", ""],
                  "endian": ["little", "big", "middle"], "dimension": ["4", "0", "x"]}
        value = str(rng.choice(values[str(field)])).encode()
        lines = [line for line in lines if not line.startswith(f"{field}:".encode())]
        lines.insert(int(rng.integers(1, len(lines) + 1)), f"{field}: ".encode() + value)
    elif kind == 1:  # a field left out, or a detached data file
        if rng.random() < 0.5:
            del lines[int(rng.integers(1, len(lines)))]
        else:
            lines.append(str(rng.choice(["data file: ../../x.raw", "datafile: LIST",
                                         "data file: fuzz.raw 1 3 1"])).encode())
    elif kind == 2:  # our JSON keys with hostile content
        key = str(rng.choice(["labels", "header", "history", "translations_px",
                              "detectors", "software"]))
        value = str(rng.choice(HOSTILE_JSON)).encode()
        prefix = f"napari_nanosims_{key}:=".encode()
        lines = [line for line in lines if not line.startswith(prefix)] + [prefix + value]
    elif kind == 3:  # the Mims keys with hostile numbers
        key = str(rng.choice(["Mims_pixel_width", "Mims_dwell_time", "Mims_mass_numbers",
                              "Mims_mass_symbols", "napari_nanosims_data_sha256"]))
        value = str(rng.choice(["nan", "-1", "1e400", "0", "x y z", "", "1 " * 5000])).encode()
        lines = [line for line in lines if not line.startswith(key.encode())]
        lines.append(key.encode() + b":=" + value)
    elif kind == 4:  # a truncated payload (or header)
        whole = b"\n".join(lines) + b"\n\n" + data
        return whole[:int(rng.integers(0, len(whole)))]
    elif kind == 5 and compressed:  # inflates to more, or fewer, bytes than needed
        extra = int(rng.choice([1, 1000, 1 << 20, 8 << 20]))
        data = _compress(header, data + bytes(extra) if rng.random() < 0.7
                         else data[:len(data) // 2])
    elif kind == 6:  # the other encoding, or a corrupt compressed payload
        if compressed and rng.random() < 0.6:
            payload = bytearray(data)
            for _ in range(int(rng.integers(1, 6))):
                payload[int(rng.integers(0, len(payload)))] ^= int(rng.integers(1, 256))
            data = bytes(payload)
        else:
            lines = [line.replace(b"encoding: raw", b"encoding: gzip") if b"raw" in line
                     else line.replace(b"gzip", b"raw").replace(b"bzip2", b"raw")
                     for line in lines]
    elif kind == 7:  # byte flips anywhere in the header
        flipped = bytearray(b"\n".join(lines))
        for _ in range(int(rng.integers(1, 9))):
            flipped[int(rng.integers(0, len(flipped)))] ^= int(rng.integers(1, 256))
        return bytes(flipped) + b"\n\n" + data
    elif kind == 8:  # garbage after the data, or a gzip bomb for a tiny image
        if rng.random() < 0.5:
            data = data + bytes(rng.integers(0, 256, size=int(rng.integers(1, 4096)),
                                             dtype=np.uint8))
        else:
            lines = [b"encoding: gzip" if line.startswith(b"encoding") else
                     b"sizes: 4 4 1 1" if line.startswith(b"sizes") else line
                     for line in lines]
            data = gzip.compress(bytes(int(rng.choice([1 << 20, 16 << 20]))), mtime=0)
    else:  # no end of header, or binary junk
        return raw[:int(rng.integers(8, 64))] + bytes(rng.integers(
            0, 256, size=int(rng.integers(1, 2048)), dtype=np.uint8))
    return b"\n".join(lines) + b"\n\n" + data


def mutate_im(raw: bytes, rng: np.random.Generator) -> bytes:
    """One hostile variant of a ``.im`` file: truncations, byte flips, random header
    values, tiny frames claimed by the thousand, another format release."""
    data = bytearray(raw)
    header_size = min(len(data), 30000)
    kind = rng.integers(0, 6)
    order = "<" if int.from_bytes(raw[4:8], "little") < 256 else ">"
    true_header_size = int.from_bytes(raw[8:12], "little" if order == "<" else "big")
    if kind == 4 and true_header_size <= len(data):  # tiny frames, very many of them
        image = true_header_size - 84
        width, height = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        frames = int(rng.integers(1000, 32768))
        for offset, value in ((6, width), (8, height), (14, frames)):
            data[image + offset:image + offset + 2] = value.to_bytes(
                2, "little" if order == "<" else "big", signed=True)
        return bytes(data)
    if kind == 5:  # the release field: old files claiming 4108 or later, and the reverse
        release = int(rng.choice([4108, 4109, 5000, 99999, 5, 11]))
        data[0:4] = release.to_bytes(4, "little" if order == "<" else "big", signed=True)
        return bytes(data)
    if kind == 0:  # truncation anywhere, mostly inside the header
        cut = int(rng.integers(0, header_size + 200)) if rng.random() < 0.7 else int(
            rng.integers(0, len(data) + 1))
        return bytes(data[:cut])
    if kind == 1:  # random byte flips in the header
        for _ in range(int(rng.integers(1, 9))):
            data[int(rng.integers(0, header_size))] ^= int(rng.integers(1, 256))
        return bytes(data)
    if kind == 2:  # random 32-bit values at random aligned header offsets
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(0, header_size // 4)) * 4
            value = int(rng.choice([0, -1, 1, 2**31 - 1, -(2**31),
                                    int(rng.integers(-99999, 99999))]))
            data[at:at + 4] = value.to_bytes(4, "little", signed=True) if rng.random() < .5 \
                else value.to_bytes(4, "big", signed=True)
        return bytes(data)
    # a random header of plausible numbers followed by the original tail
    head = rng.integers(-5, 30000, size=32).astype("<i4" if rng.random() < .5 else ">i4")
    head[1] = rng.choice([27, 29, 39, 22, 0])
    return head.tobytes() + bytes(data[128:])


def ome_sources(folder) -> list[bytes]:
    """Small OME-TIFFs of ours: sums, variance, stack, a one-frame stack, and a sums
    file with zlib-compressed pixels."""
    import tifffile

    from ..export.ometiff import acquisition_description, write_acquisition_tiffs

    folder = Path(folder)
    acquisition = _small_acquisition(3)
    paths = {kind: folder / f"source_{kind}.ome.tif" for kind in ("sums", "variance", "stack")}
    for path in paths.values():
        path.unlink(missing_ok=True)
    write_acquisition_tiffs(acquisition, paths)
    single = folder / "source_single.ome.tif"
    write_acquisition_tiffs(_small_acquisition(4, frames=1), {"stack": single})
    packed = folder / "source_zlib.ome.tif"
    tifffile.imwrite(packed, np.asarray(acquisition.counts).sum(axis=0).astype(np.uint32),
                     ome=True, compression="zlib", photometric="minisblack", metadata={
                         "axes": "CYX", "Channel": {"Name": list(acquisition.labels)},
                         "Description": json.dumps(acquisition_description(acquisition,
                                                                           "sums"))})
    return [path.read_bytes() for path in [*paths.values(), single, packed]]


def _with_xml(raw: bytes, change: Callable[[str], str], scratch: Path) -> bytes:
    """``raw`` with its OME XML (the first ImageDescription) replaced by ``change(xml)``."""
    import tifffile

    path = scratch / "mutating.ome.tif"
    path.write_bytes(raw)
    with tifffile.TiffFile(path) as tif:
        xml = tif.pages.first.description
    tifffile.tiffcomment(path, change(xml).encode("utf-8", errors="replace"))
    return path.read_bytes()


def _set_attribute(xml: str, name: str, value: str) -> str:
    at = xml.find(f'{name}="')
    if at < 0:
        return xml.replace("<Pixels ", f'<Pixels {name}="{value}" ', 1)
    end = xml.find('"', at + len(name) + 2)
    return xml[:at] + f'{name}="{value}"' + xml[end + 1:]


def _ifd_entries(raw: bytes) -> list[int]:
    """Byte offsets of the 12-byte entries of the first few IFDs of a classic TIFF."""
    order: Literal["little", "big"] = "little" if raw[:2] == b"II" else "big"
    entries, offset = [], int.from_bytes(raw[4:8], order)
    for _ in range(4):
        if not 8 <= offset < len(raw) - 2:
            break
        count = int.from_bytes(raw[offset:offset + 2], order)
        entries += [offset + 2 + 12 * k for k in range(count) if offset + 14 + 12 * k <= len(raw)]
        next_at = offset + 2 + 12 * count
        offset = int.from_bytes(raw[next_at:next_at + 4], order) if next_at + 4 <= len(raw) \
            else 0
    return entries


def mutate_ome(raw: bytes, rng: np.random.Generator, scratch) -> bytes:
    """One hostile variant of one of our OME-TIFFs (XML-, JSON- and IFD-aware)."""
    scratch = Path(scratch)
    value: Any  # an XML attribute's text, or a TIFF entry's number
    kind = int(rng.integers(0, 8))
    if kind == 0:  # a size the pixels do not have
        name = str(rng.choice(["SizeT", "SizeC", "SizeZ", "SizeX", "SizeY"]))
        value = str(rng.choice(["40000", "12000", "0", "-1", "x", "2", "7",
                                str(2**31), str(10**12), ""]))
        return _with_xml(raw, lambda xml: _set_attribute(xml, name, value), scratch)
    if kind == 1:  # types, order, channels, units, plane references, other files
        choice = int(rng.integers(0, 7))
        changes = [
            lambda x: _set_attribute(x, "Type", str(rng.choice(
                ["uint8", "double", "bit", "complex", "float", "junk"]))),
            lambda x: _set_attribute(x, "DimensionOrder", str(rng.choice(
                ["XYCZT", "XYTCZ", "ZZZZZ", ""]))),
            lambda x: x.replace("<Channel ", "<Junk ", int(rng.integers(1, 3))),
            lambda x: x.replace("<TiffData", '<Channel Name="extra"/><TiffData', 1),
            lambda x: _set_attribute(x, "PhysicalSizeX", str(rng.choice(
                ["nan", "-1", "1e400", "x", ""]))),
            lambda x: x.replace("<TiffData ", f'<TiffData IFD="{rng.choice([99999, -1, 3])}" '
                                f'PlaneCount="{rng.choice([1, 10**9, 0])}" ', 1),
            lambda x: x.replace("<TiffData", '<TiffData><UUID FileName="../other.ome.tif">'
                                "urn:uuid:1234</UUID></TiffData><TiffData", 1),
        ]
        return _with_xml(raw, changes[choice], scratch)
    if kind == 2:  # our description with hostile JSON
        key = str(rng.choice(["channels", "history", "header", "kind", "source",
                              "translations_px", "whole"]))
        hostile = str(rng.choice(HOSTILE_JSON))
        text = hostile if key == "whole" else f'{{"napari_nanosims": 1, "{key}": {hostile}}}'

        def change(xml):
            start, end = xml.find("<Description>"), xml.find("</Description>")
            return xml[:start + 13] + escape(text) + xml[end:] if start >= 0 else xml
        return _with_xml(raw, change, scratch)
    if kind == 3:  # malformed XML
        choice = int(rng.integers(0, 4))
        changes = [
            lambda x: x[:int(rng.integers(0, len(x)))],
            lambda x: x.replace("</Image>", "<a>" * 20_000 + "</a>" * 20_000 + "</Image>"),
            lambda x: ('<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY a "aaaaaaaaaa">'
                       '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                       '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
                       + x[x.find("<OME"):].replace("Image0", "&c;")),
            lambda x: x.replace("<Pixels", "<Pixel", 1),
        ]
        return _with_xml(raw, changes[choice], scratch)
    if kind == 4:  # truncated anywhere
        return raw[:int(rng.integers(0, len(raw)))]
    data = bytearray(raw)
    if kind == 5:  # an IFD entry's count or value replaced
        entries = _ifd_entries(raw)
        for _ in range(int(rng.integers(1, 4))):
            if not entries:
                break
            at = int(rng.choice(entries)) + int(rng.choice([4, 8]))
            value = int(rng.choice([0, 1, 2, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
                                    int(rng.integers(0, len(raw) + 100))]))
            data[at:at + 4] = value.to_bytes(4, "little" if raw[:2] == b"II" else "big")
        return bytes(data)
    if kind == 6:  # byte flips
        for _ in range(int(rng.integers(1, 9))):
            data[int(rng.integers(0, len(data)))] ^= int(rng.integers(1, 256))
        return bytes(data)
    return raw[:int(rng.integers(0, 16))] + bytes(rng.integers(
        0, 256, size=int(rng.integers(1, 4096)), dtype=np.uint8))


@dataclass
class Outcome:
    """What one case did: ``kind`` 'read', 'refused' or 'escaped'; the exception's text;
    the seconds it took; the peak of traced memory, bytes; the file's size, bytes."""

    kind: str
    message: str
    seconds: float
    peak: int
    size: int


def run_case(read: Callable, path, raw: bytes) -> Outcome:
    """Write ``raw`` to ``path``, call ``read(path)`` and classify what happened.

    A ValueError (ImFormatError is one) whose message names the file counts as refused;
    any other exception, or a ValueError that does not name the file, escaped. Memory is
    traced (``tracemalloc``, which sees numpy's buffers) from just before the call.
    """
    path = Path(path)
    path.write_bytes(raw)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read(path)
        kind, message = "read", ""
    except ValueError as exc:
        message = f"{type(exc).__name__}: {exc}"[:300]
        kind = "refused" if os.fspath(path) in str(exc) or path.name in str(exc) \
            else "escaped"
    except Exception as exc:  # noqa: BLE001 - the escapes this fuzzing hunts
        kind, message = "escaped", f"{type(exc).__name__}: {exc}"[:300]
    finally:
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return Outcome(kind, message, seconds, peak, len(raw))
