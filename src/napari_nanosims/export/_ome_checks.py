"""Checks that hold OME-TIFF reading to bounded memory, before tifffile allocates.

tifffile builds a series from what the OME XML claims: a list entry per plane and, on
reading, an array of the claimed shape with the missing planes zeroed. A 0.5 MiB file
claiming 40 000 frames would take gigabytes. So the claims are checked against the
file first: the planes against the IFDs present, the bytes against the file's size.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from xml.parsers import expat

from .._errors import ImFormatError
from ._description import (
    checked_channels,
    checked_history,
    checked_strings,
    checked_translations,
    loads,
    warn_dropped,
)
from ._payload import MAX_RATIO

__all__ = ["parse_ome_xml", "check_claimed_sizes", "check_series", "checked_description"]

#: Bytes per value of each OME pixel type (unknown types count as 16, the largest).
_ITEMSIZE = {"int8": 1, "uint8": 1, "bit": 1, "int16": 2, "uint16": 2, "int32": 4,
             "uint32": 4, "float": 4, "double": 8, "complex": 8, "double-complex": 16}
_SIZES = ("SizeX", "SizeY", "SizeZ", "SizeC", "SizeT")
#: Deepest nesting of OME XML elements accepted (the schema needs about 6).
MAX_DEPTH = 32


class _Refused(Exception):
    """Raised inside the XML scan to stop it."""


def parse_ome_xml(xml: str, path, file_size: int) -> ElementTree.Element:
    """The OME XML's root element; ImFormatError when it is not well-formed XML.

    The text is first scanned without building a tree (expat): entity declarations,
    nesting deeper than :data:`MAX_DEPTH` and more elements than 64 plus one per 256
    bytes of the file are refused, because a tree of them (tifffile builds one as well)
    takes tens of times the text's size. Real OME metadata nest about 6 deep and have a
    few elements per plane, each plane holding far more than 256 bytes of pixels.
    """
    most = 64 + file_size // 256
    depth = elements = 0

    def start(name, attributes):
        nonlocal depth, elements
        depth, elements = depth + 1, elements + 1
        if depth > MAX_DEPTH or elements > most:
            raise _Refused(f"more than {MAX_DEPTH} levels" if depth > MAX_DEPTH
                           else f"more than {most} elements for a file of {file_size} bytes")

    def end(name):
        nonlocal depth
        depth -= 1

    def entity(*args):
        raise _Refused("they declare entities")

    scanner = expat.ParserCreate()
    scanner.StartElementHandler, scanner.EndElementHandler = start, end
    scanner.EntityDeclHandler = entity
    try:
        for start_at in range(0, len(xml), 1 << 16):  # in pieces: no second copy
            scanner.Parse(xml[start_at:start_at + (1 << 16)], False)
        scanner.Parse("", True)
    except _Refused as exc:
        raise ImFormatError(f"{path}: the OME metadata are refused: {exc}") from None
    except (expat.ExpatError, ValueError) as exc:
        raise ImFormatError(f"{path}: the OME metadata are not valid XML ({exc})") from None
    try:
        return ElementTree.fromstring(xml)
    except (ElementTree.ParseError, RecursionError, ValueError) as exc:
        raise ImFormatError(f"{path}: the OME metadata are not valid XML ({exc})") from None


def check_claimed_sizes(root: ElementTree.Element, tif, path) -> None:
    """Refuse OME metadata claiming more planes than the file has IFDs, or more bytes
    than the file can hold (its size; :data:`MAX_RATIO` times it when compressed).

    Runs before ``tif.series``, which allocates per claimed plane.
    """
    planes = 0
    needed = 0
    for pixels in root.iter():
        if not str(pixels.tag).endswith("Pixels"):
            continue
        try:
            sizes = [int(pixels.get(name, "1")) for name in _SIZES]
        except ValueError:
            raise ImFormatError(f"{path}: unreadable OME Pixels sizes "
                                f"{[pixels.get(name) for name in _SIZES]}") from None
        if min(sizes) < 1:
            raise ImFormatError(f"{path}: OME Pixels sizes must be at least 1, got {sizes}")
        planes += math.prod(sizes[2:])
        needed += math.prod(sizes) * _ITEMSIZE.get(str(pixels.get("Type", "")).lower(), 16)
    file_size = tif.filehandle.size
    first = tif.pages.first
    ratio = 1 if int(first.compression) == 1 else MAX_RATIO
    if needed > ratio * file_size:
        raise ImFormatError(f"{path}: the OME metadata claim {needed} bytes of pixels, "
                            f"more than a file of {file_size} bytes can hold")
    # Each plane is an IFD of its own; the IFD chain is walked once (offsets only).
    if planes > file_size // 8 or planes > len(tif.pages):
        raise ImFormatError(f"{path}: the OME metadata claim {planes} planes; the file "
                            f"holds {len(tif.pages)}")


def check_series(series, path, file_size: int) -> None:
    """Refuse a series with missing planes or planes whose data lie outside the file
    (or, compressed, would inflate beyond :data:`MAX_RATIO` times their bytes)."""
    pages = list(series.pages)
    missing = sum(page is None for page in pages)
    if missing:
        raise ImFormatError(f"{path}: {missing} of the {len(pages)} planes the OME "
                            "metadata describe are not in the file")
    for page in pages:
        offsets, counts = page.dataoffsets, page.databytecounts
        stored = sum(counts)
        if any(o + c > file_size for o, c in zip(offsets, counts, strict=False)) or (
                page.nbytes > (stored if int(page.compression) == 1
                               else MAX_RATIO * stored)):
            raise ImFormatError(f"{path}: a plane of {page.nbytes} bytes has {stored} bytes "
                                "of data in the file")


def checked_description(description: dict, n_channels: int, path) -> dict:
    """Our JSON description with every value the layers and steps use of the right type.

    Values that are not (a list of channels, a list of history records, a dict header,
    a string kind or source, (frames, 2) translations) are left out, named once in an
    ImFormatWarning.
    """
    checks = {
        "channels": lambda v: checked_channels(v, None),
        "history": checked_history,
        "header": lambda v: v if isinstance(v, dict) else None,
        "kind": lambda v: v if isinstance(v, str) else None,
        "source": lambda v: v if isinstance(v, str) else None,
        "translations_px": lambda v: checked_translations(v, len(v) if isinstance(
            v, list) else -1),
        "software": lambda v: v if isinstance(v, dict) else None,
    }
    clean = dict(description)
    dropped = []
    for key, check in checks.items():
        if clean.get(key) is not None and check(clean[key]) is None:
            dropped.append(key)
            del clean[key]
    warn_dropped(path, dropped)
    return clean


def channel_names(pixels, namespace: str, path) -> list[str]:
    """The OME Channel names of ``pixels`` (``'channel <k>'`` for unnamed ones)."""
    names = [channel.get("Name", f"channel {k}")
             for k, channel in enumerate(pixels.findall(f"{namespace}Channel"))]
    if checked_strings(names, len(names)) is None:  # pragma: no cover - XML gives text
        raise ImFormatError(f"{path}: unreadable channel names")
    return names


def loads_description(text: str | None, key: str) -> dict | None:
    """Our description from the OME ``Description`` text: a JSON object holding ``key``;
    None for anything else (foreign text, invalid or too deeply nested JSON)."""
    try:
        parsed = loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) and key in parsed else None
