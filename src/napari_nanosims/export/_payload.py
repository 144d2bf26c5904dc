"""A file's data payload read with bounded memory: raw, gzip or bzip2.

A header says how many bytes its data need. Nothing is allocated for them before the
bytes present are known to hold exactly that much: raw data are checked against the
file's size; compressed data are inflated once in pieces of at most :data:`CHUNK` bytes (256 KiB)
(counted, then dropped) and refused when they inflate to more or fewer bytes than the
header needs, then inflated again into the caller's array.
"""

from __future__ import annotations

import bz2
import os
import zlib
from collections.abc import Iterator

from .._errors import ImFormatError

__all__ = ["CHUNK", "MAX_RATIO", "Payload", "ENCODINGS"]

#: Bytes inflated (or read, for raw data) at a time.
CHUNK = 1 << 18
#: Compressed bytes read at a time.
_READ = 1 << 16
#: Largest inflated/compressed ratio accepted: deflate cannot exceed about 1032:1 (one
#: bit per 258 bytes repeated), and we hold bzip2 to the same bound, so that a small
#: file cannot ask for more work than a real one of its size.
MAX_RATIO = 1100
#: Encoding names (as NRRD writes them) -> our kind.
ENCODINGS = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}
#: Trailing bytes accepted after the last compressed member (padding).
_PADDING = b"\0 \t\r\n"


def _decoder(kind: str):
    # zlib.MAX_WBITS | 32: a gzip or a zlib header, whichever the data start with.
    return zlib.decompressobj(zlib.MAX_WBITS | 32) if kind == "gzip" else bz2.BZ2Decompressor()


class Payload:
    """The data of ``path`` from byte ``offset`` on, as ``encoding`` stores them.

    Parameters
    ----------
    handle : binary file
        Open on the file; read from ``offset`` on.
    path : str
        The file, for messages.
    offset : int
        Where the data start, bytes.
    encoding : str
        A key of :data:`ENCODINGS`.
    needed : int
        Bytes the header's sizes and type need.

    Raises
    ------
    ImFormatError
        An unknown encoding; raw data shorter than ``needed``; compressed data claiming
        more than :data:`MAX_RATIO` times their size, corrupt, or inflating to anything
        but ``needed`` bytes. All before anything of size ``needed`` is allocated.
    """

    def __init__(self, handle, path: str, offset: int, encoding: str, needed: int):
        self.handle, self.path, self.offset, self.needed = handle, path, offset, needed
        self._pieces: Iterator[bytes | memoryview] | None = None
        self._piece: memoryview | None = None
        if encoding not in ENCODINGS:
            raise ImFormatError(f"{path}: encoding {encoding!r} is not supported "
                                f"({', '.join(sorted(ENCODINGS))})")
        self.kind = ENCODINGS[encoding]
        available = os.fstat(handle.fileno()).st_size - offset
        if self.kind == "raw":
            if available < needed:
                raise ImFormatError(f"{path}: {max(available, 0)} data bytes where the "
                                    f"header's sizes need {needed}")
            return
        if needed > MAX_RATIO * max(available, 0) + CHUNK:
            raise ImFormatError(f"{path}: {max(available, 0)} bytes of {self.kind} data "
                                f"cannot hold the {needed} bytes the header's sizes need")
        inflated = sum(len(piece) for piece in self._inflated(limit=needed))
        if inflated != needed:
            raise ImFormatError(f"{path}: the {self.kind} data inflate to {inflated} bytes "
                                f"where the header's sizes need {needed}")

    def _inflated(self, limit: int) -> Iterator[bytes]:
        """Inflated pieces (at most CHUNK bytes each) of the whole stream, stopping once
        more than ``limit`` bytes came out. Several members in a row are one stream."""
        self.handle.seek(self.offset)
        decoder, data, produced = _decoder(self.kind), b"", 0
        while True:
            if decoder.eof:
                data = decoder.unused_data or self.handle.read(_READ)
                if not data.strip(_PADDING):
                    return
                decoder = _decoder(self.kind)  # another member follows
            try:
                piece = decoder.decompress(data, CHUNK)
            except (OSError, EOFError, ValueError, zlib.error) as exc:
                raise ImFormatError(f"{self.path}: corrupt {self.kind} data ({exc})") from None
            data = getattr(decoder, "unconsumed_tail", b"")
            if piece:
                produced += len(piece)
                yield piece
                if produced > limit:
                    return
            elif not data and not decoder.eof:
                data = self.handle.read(_READ)
                if not data:
                    raise ImFormatError(f"{self.path}: the {self.kind} data end early "
                                        f"(truncated after {produced} inflated bytes)")

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The ``needed`` bytes, in order, in pieces of at most CHUNK bytes."""
        if self.kind == "raw":
            self.handle.seek(self.offset)
            left = self.needed
            while left:
                piece = self.handle.read(min(left, CHUNK))
                if not piece:  # the file shrank since the check
                    raise ImFormatError(f"{self.path}: the data end early")
                left -= len(piece)
                yield piece
            return
        left = self.needed
        for piece in self._inflated(limit=self.needed):
            yield memoryview(piece)[:left]
            left -= min(left, len(piece))
            if not left:
                return

    def fill(self, buffer) -> None:
        """Fill the writable byte buffer ``buffer`` with the next bytes of the data."""
        if self._pieces is None:
            self._pieces, self._piece = self.chunks(), memoryview(b"")
        assert self._piece is not None  # set together with self._pieces
        target = memoryview(buffer).cast("B")
        at = 0
        while at < len(target):
            if not len(self._piece):
                following = next(self._pieces, None)
                if following is None:  # the file shrank since the check
                    raise ImFormatError(f"{self.path}: the data end early")
                self._piece = memoryview(following)
            n = min(len(self._piece), len(target) - at)
            target[at:at + n] = self._piece[:n]
            self._piece, at = self._piece[n:], at + n
