"""Compressed .im files: decompressed once into the cache, reused, bounded."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from napari_nanosims import ImFormatError, open_acquisition
from napari_nanosims.io.compressed import cache_folder, clear_cache, decompressed_path
from napari_nanosims.io.reader import sniff_im


def _compress(path, suffix):
    raw = Path(path).read_bytes()
    target = f"{path}{suffix}"
    if suffix == ".zip":
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(os.path.basename(path), raw)
    else:
        opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}[suffix]
        with opener(target, "wb") as out:
            out.write(raw)
    return target


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"])
def test_compressed_file_opens_like_the_plain_one(im_factory, suffix):
    plain = im_factory("a.im")
    packed = _compress(plain, suffix)
    assert sniff_im(packed)
    expected = np.asarray(open_acquisition(plain).counts)
    acquisition = open_acquisition(packed)
    assert acquisition.counts.memory_mapped
    assert acquisition.stem == "a" and acquisition.path == os.path.abspath(packed)
    np.testing.assert_array_equal(np.asarray(acquisition.counts), expected)
    assert decompressed_path(packed).parent == cache_folder()


def test_cache_is_reused_and_renewed_when_the_file_changes(im_factory):
    packed = _compress(im_factory("b.im"), ".gz")
    first = decompressed_path(packed)
    stamp = first.stat().st_mtime_ns
    assert decompressed_path(packed) == first and first.stat().st_mtime_ns == stamp
    os.utime(packed, ns=(stamp + 10**9, stamp + 10**9))  # touched: a new identity
    assert decompressed_path(packed) != first
    files, _ = clear_cache()
    assert files >= 2 and not list(cache_folder().iterdir())


def test_bad_archives_give_one_error_and_no_cache_file(im_factory, tmp_path):
    plain = im_factory("c.im")
    two = tmp_path / "two.im.zip"
    with zipfile.ZipFile(two, "w") as archive:
        archive.write(plain, "c.im")
        archive.write(plain, "d.im")
    corrupt = tmp_path / "corrupt.im.gz"
    corrupt.write_bytes(gzip.compress(Path(plain).read_bytes())[:200])
    # A "bomb": a valid header that announces one small frame, followed by 50 MB of zeros.
    raw = Path(plain).read_bytes()
    bomb = tmp_path / "bomb.im.gz"
    bomb.write_bytes(gzip.compress(raw + bytes(50 * 2**20), compresslevel=1))
    for path, message in ((two, "exactly one .im"), (corrupt, "cannot decompress"),
                          (bomb, "more than the")):
        with pytest.raises(ImFormatError, match=message) as info:
            open_acquisition(path)
        assert path.name in str(info.value)
    folder = cache_folder()
    assert not folder.exists() or not [p for p in folder.iterdir()]
