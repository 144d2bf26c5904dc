"""Compressed ``.im`` files (``.im.gz``, ``.im.bz2``, ``.im.xz``, ``.im.zip``): decompressed
once into a cache folder and memory-mapped from there.

The cached copy is named after the file's identity (absolute path, size, modification
time and a hash of its first and last 64 KiB), so a changed or replaced archive is
decompressed again and an unchanged one is reused. Decompression is bounded: the header
is read first, and the output may not exceed the size it announces (one extra frame
allowed, as the reader allows); a zip bomb, a corrupt archive or a zip without exactly
one ``.im`` inside raise one :class:`ImFormatError`.

Cache folder: ``$NAPARI_NANOSIMS_CACHE/decompressed`` when that variable is set, else
``~/.cache/napari-nanosims/decompressed`` (``$XDG_CACHE_HOME`` respected). Clear it with
``nanosims cache --clear`` or by deleting the folder.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import lzma
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from .._errors import ImFormatError
from . import _layout as L

__all__ = ["COMPRESSED_SUFFIXES", "is_compressed", "decompressed_path", "cache_folder",
           "clear_cache", "open_stream"]

COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zip")
CHUNK = 8 * 1024 * 1024
IDENTITY_BYTES = 64 * 1024
MAX_HEADER_SIZE = 4 * 1024 * 1024


def is_compressed(path: str | os.PathLike) -> bool:
    """True for a name ending in ``.gz``, ``.bz2``, ``.xz`` or ``.zip`` (any case)."""
    return os.fspath(path).lower().endswith(COMPRESSED_SUFFIXES)


def cache_folder() -> Path:
    """The folder of decompressed copies (module docstring); not created here."""
    override = os.environ.get("NAPARI_NANOSIMS_CACHE")
    if override:
        return Path(override) / "decompressed"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "napari-nanosims" / "decompressed"


def clear_cache() -> tuple[int, int]:
    """Delete every decompressed copy; returns (files, bytes) removed."""
    folder = cache_folder()
    files = size = 0
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.is_file():
                size += entry.stat().st_size
                files += 1
                entry.unlink()
    return files, size


def _fail(path, message: str) -> ImFormatError:
    return ImFormatError(f"{os.fspath(path)}: {message}")


@contextlib.contextmanager
def open_stream(path: str | os.PathLike):
    """A binary stream of the decompressed content of ``path`` (the one ``.im`` of a zip)."""
    path = os.fspath(path)
    lower = path.lower()
    try:
        if lower.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()
                           and m.filename.lower().endswith((".im", ".is"))]
                if len(members) != 1:
                    names = ", ".join(m.filename for m in members) or "none"
                    raise _fail(path, f"a zip must hold exactly one .im (or .is) file; it holds "
                                f"{len(members)} ({names})")
                with archive.open(members[0]) as stream:
                    yield stream
            return
        opener = cast(Callable[..., Any], {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}[
            os.path.splitext(lower)[1]])
        with opener(path, "rb") as stream:
            yield stream
    except ImFormatError:
        raise
    except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
            KeyError, ValueError) as exc:
        raise _fail(path, f"cannot decompress: {exc}") from exc


def _identity(path: str, info: os.stat_result) -> str:
    digest = hashlib.sha256()
    digest.update(f"{os.path.abspath(path)}\0{info.st_size}\0{info.st_mtime_ns}".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(IDENTITY_BYTES))
        if info.st_size > IDENTITY_BYTES:
            handle.seek(max(info.st_size - IDENTITY_BYTES, IDENTITY_BYTES))
            digest.update(handle.read(IDENTITY_BYTES))
    return digest.hexdigest()[:20]


def _expected_size(path: str, head: bytes) -> int:
    """The largest size the decompressed file may have, from its header."""
    if len(head) < 12:
        raise _fail(path, "the decompressed file is too short for a NanoSIMS header")
    for order in "<>":
        release, file_type, header_size = struct.unpack_from(order + "3i", head)
        if 0 < file_type < 256 and 0 < release < 100000:
            break
    else:
        raise _fail(path, "the decompressed file is not a NanoSIMS file (file type at "
                    "offset 4 is not a small number in either byte order)")
    if not L.DEF_ANALYSIS_SIZE < header_size <= min(len(head), MAX_HEADER_SIZE):
        raise _fail(path, f"header size {header_size} of the decompressed file is impossible")
    if file_type not in L.IMAGE_FILE_TYPES:  # spot files are small: a fixed bound
        return header_size + 256 * 1024 * 1024
    image = head[header_size - L.HEADER_IMAGE_SIZE:header_size]
    _, _, w, h, bpp, n, z = struct.unpack_from(order + "i6h", image)
    frame = max(w, 0) * max(h, 0) * max(bpp, 0) * max(n, 0)
    return header_size + frame * (max(z, 0) + 1)


def decompressed_path(path: str | os.PathLike) -> Path:
    """The path of the decompressed copy of ``path``, decompressing it on first use.

    Raises
    ------
    ImFormatError
        For a corrupt archive, a zip without exactly one ``.im``, content that is not a
        NanoSIMS file, or content larger than its header announces.
    """
    path = os.path.abspath(os.fspath(path))
    try:
        info = os.stat(path)
        key = _identity(path, info)
    except OSError as exc:
        raise _fail(path, f"cannot read the file: {exc.strerror or exc}") from exc
    base = os.path.basename(path)
    stem = base[:base.lower().rfind(".")]
    folder = cache_folder()
    target = folder / f"{key}-{stem}"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f"{target.name}.partial-{os.getpid()}"
    try:
        with open_stream(path) as stream, open(temporary, "wb") as out:
            head = b""
            while len(head) < 12:
                chunk = stream.read(12 - len(head))
                if not chunk:
                    break
                head += chunk
            header_size = max(struct.unpack_from("<i", head, 8)[0] if len(head) >= 12 else 0,
                              struct.unpack_from(">i", head, 8)[0] if len(head) >= 12 else 0)
            head += stream.read(min(max(header_size, 12), MAX_HEADER_SIZE) - len(head))
            limit = _expected_size(path, head)
            out.write(head)
            written = len(head)
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > limit:
                    raise _fail(path, f"decompresses to more than the {limit} bytes its "
                                "header announces; refused (corrupt file or zip bomb)")
                out.write(chunk)
        os.replace(temporary, target)
    except ImFormatError:
        raise
    except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise _fail(path, f"cannot decompress: {exc}") from exc
    finally:
        if temporary.exists():
            temporary.unlink()
    return target
