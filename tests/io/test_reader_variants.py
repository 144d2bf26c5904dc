"""Every layout variant of the format, truncated files, and bad input."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from _variants import make_variant

from napari_nanosims import (
    ImFormatError,
    ImFormatWarning,
    load_mims,
    read_header,
    sniff_im,
    write_im,
)

LABELS = ["12C", "12C 14N", "31P", "SE"]
AMU = [12.0, 26.0, 31.0, 0.0]


@pytest.fixture
def stack():
    return np.random.default_rng(7).integers(0, 500, size=(4, 4, 20, 28)).astype(np.uint32)


@pytest.fixture
def new_file(im_factory, stack):
    return im_factory("new.im", stack, labels=LABELS, masses_amu=AMU, raster_um=9.0,
                      dwell_time_us=500)


@pytest.fixture
def legacy_file(im_factory, stack):
    return im_factory("old.im", stack, labels=LABELS, masses_amu=AMU, raster_um=9.0,
                      dwell_time_us=500, legacy=True)


@pytest.mark.parametrize("version, release, drop_bis, source", [
    (2, 5, True, "legacy"),
    (4, 9, True, "legacy"),
    (8, 11, False, "legacy"),
    (9, 4108, False, "new"),
    (10, 4108, False, "new"),
])
def test_mask_nano_versions_and_releases(tmp_path, stack, new_file, legacy_file, version,
                                         release, drop_bis, source, no_leaked_files):
    base = new_file if source == "new" else legacy_file
    path = make_variant(base, tmp_path / f"v{version}.im", mask_nano_version=version,
                        release=release, drop_bis=drop_bis)
    mims = load_mims(path, roll_data=False)
    assert mims.header.mask_nano_version == version
    assert mims.header.release == release
    assert mims.header.labels == tuple(LABELS) and mims.header.se_index == 3
    assert mims.header.dwell_time_us == 500 and mims.header.raster_um == 9.0
    assert ("anal_param_nano_bis" in mims) == (not drop_bis)
    np.testing.assert_array_equal(np.asarray(mims.data), stack)
    del mims


@pytest.mark.parametrize("options", [
    dict(poly_tag=False), dict(stray_poly_tag=True), dict(junk=True),
    dict(junk=True, stray_poly_tag=True, poly_tag=False),
])
@pytest.mark.parametrize("source", ["new", "legacy"])
def test_missing_or_stray_poly_list_and_junk(tmp_path, stack, new_file, legacy_file,
                                             options, source):
    base = new_file if source == "new" else legacy_file
    path = make_variant(base, tmp_path / "variant.im", **options)
    mims = load_mims(path, roll_data=False)
    assert mims.header.labels == tuple(LABELS)
    np.testing.assert_array_equal(np.asarray(mims.data), stack)


def test_unknown_mask_nano_version_falls_back_to_tag_search(tmp_path, new_file, stack):
    raw = bytearray(new_file_bytes := Path(new_file).read_bytes())
    from napari_nanosims.io.reader import MimsFile

    mask_nano = MimsFile(new_file).blocks["_offsets"]["mask_nano"]
    struct.pack_into("<i", raw, mask_nano, 77)
    path = tmp_path / "v77.im"
    path.write_bytes(bytes(raw))
    assert len(new_file_bytes) == len(raw)
    np.testing.assert_array_equal(np.asarray(load_mims(path).data), stack)


def test_byte_order_detected_and_forced(new_file, legacy_file):
    assert load_mims(new_file).header.byte_order == "<"
    assert load_mims(legacy_file).header.byte_order == ">"
    assert load_mims(legacy_file, byte_order=">").header.byte_order == ">"
    with pytest.raises(ImFormatError, match="byte order"):
        load_mims(legacy_file, byte_order="<")
    with pytest.raises(ValueError, match="byte_order"):
        load_mims(new_file, byte_order="big")


def test_non_square_is_rows_then_columns(tmp_path):
    data = np.zeros((1, 1, 3, 5), np.uint32)
    data[0, 0, 2, 4] = 7  # last row, last column
    data[0, 0, 0, 3] = 5  # first row, fourth column
    path = write_im(tmp_path / "ns.im", data, ["12C"], [12.0], 3.0, 100)
    out = np.asarray(load_mims(path).data)
    assert out.shape == (1, 1, 3, 5)
    assert out[0, 0, 2, 4] == 7 and out[0, 0, 0, 3] == 5
    header = read_header(path)
    assert (header.height, header.width) == (3, 5)


def test_roll_auto_rolls_only_files_of_the_4108_software(tmp_path, new_file, stack):
    # Remove our signature: now it looks like a file of the Cameca release-4108 software.
    from napari_nanosims.io import _layout as L
    from napari_nanosims.io.reader import MimsFile

    raw = bytearray(Path(new_file).read_bytes())
    at = MimsFile(new_file).blocks["_offsets"]["def_analysis_bis"] + L.WRITER_SIGNATURE_OFFSET
    raw[at:at + len(L.WRITER_SIGNATURE)] = bytes(len(L.WRITER_SIGNATURE))
    path = tmp_path / "cameca.im"
    path.write_bytes(bytes(raw))
    mims = load_mims(path)
    assert mims.header.roll_applied == (1, 1)
    np.testing.assert_array_equal(np.asarray(mims.data), np.roll(stack, 1, axis=(2, 3)))
    assert load_mims(path, roll_data=False).header.roll_applied == (0, 0)
    with pytest.raises(ValueError, match="roll_data"):
        load_mims(path, roll_data="yes")


def test_header_only_file(tmp_path, new_file):
    from napari_nanosims.io.reader import MimsFile

    info = MimsFile(new_file)
    raw = bytearray(Path(new_file).read_bytes()[:info.header_size])
    struct.pack_into("<i", raw, 16, 0)  # data included: no
    path = tmp_path / "header_only.im"
    path.write_bytes(bytes(raw))
    mims = load_mims(path)
    assert not mims.header.has_data
    assert mims.data.shape == (0, 4, 20, 28)


def _frame_bytes(stack):
    return stack[0].size * 4


def test_truncated_file_reads_complete_frames_and_warns(tmp_path, new_file, stack):
    raw = Path(new_file).read_bytes()
    path = tmp_path / "cut.im"
    path.write_bytes(raw[:len(raw) - _frame_bytes(stack) - 100])  # 2 complete + partial
    with pytest.warns(ImFormatWarning, match=r"announces 4 frames.*holds 2 complete.*partial"):
        mims = load_mims(path)
    assert mims.header.n_frames == 2 and mims.header.n_frames_header == 4
    np.testing.assert_array_equal(np.asarray(mims.data), stack[:2])


def test_one_extra_frame_is_read(tmp_path, new_file, stack):
    raw = Path(new_file).read_bytes()
    path = tmp_path / "extra.im"
    path.write_bytes(raw + stack[0].astype("<u4").tobytes())
    with pytest.warns(ImFormatWarning, match="holds 5"):
        mims = load_mims(path)
    assert mims.data.shape[0] == 5
    np.testing.assert_array_equal(np.asarray(mims.data[4]), stack[0])


def test_trailing_bytes_are_ignored_with_a_warning(tmp_path, new_file, stack):
    path = tmp_path / "tail.im"
    path.write_bytes(Path(new_file).read_bytes() + b"\0" * 10)
    with pytest.warns(ImFormatWarning, match="10 bytes"):
        mims = load_mims(path)
    np.testing.assert_array_equal(np.asarray(mims.data), stack)


@pytest.mark.parametrize("content, message", [
    (b"", "too short"),
    (b"\0" * 200, "file type"),
    (b"P7 332\n" * 40, "file type"),
    (b"Image type: RGB image\r\nName: x\r\n\x1a" + b"\0" * 1000, "file type"),  # Pillow IM
    (struct.pack("<3i", 5, 22, 500) + b"\0" * 600, "type 22"),
    (struct.pack("<3i", 4108, 27, 10**9) + b"\0" * 600, "header size"),
])
def test_foreign_files_raise_imformaterror_naming_the_file(tmp_path, content, message,
                                                          no_leaked_files):
    path = tmp_path / "foreign.im"
    path.write_bytes(content)
    with pytest.raises(ImFormatError, match=message) as info:
        load_mims(path)
    assert "foreign.im" in str(info.value)
    assert not sniff_im(path)


def test_missing_file_is_imformaterror(tmp_path):
    with pytest.raises(ImFormatError, match="nothere.im"):
        load_mims(tmp_path / "nothere.im")


def test_corrupt_header_fields(tmp_path, new_file):
    from napari_nanosims.io.reader import MimsFile

    info = MimsFile(new_file)
    offsets = info.blocks["_offsets"]
    cases = {
        "masses": (124 + 284, 1000),
        "Header_image": (offsets["header_image"], 12),
        "magic": (offsets["def_analysis_bis"], 1),
        "bytes per pixel": (offsets["header_image"] + 10, 3),
    }
    for message, (offset, value) in cases.items():
        raw = bytearray(Path(new_file).read_bytes())
        code = "<h" if message == "bytes per pixel" else "<i"
        struct.pack_into(code, raw, offset, value)
        path = tmp_path / f"corrupt_{offset}.im"
        path.write_bytes(bytes(raw))
        with pytest.raises(ImFormatError, match=message):
            load_mims(path)


def test_file_is_opened_read_only(tmp_path, new_file, stack):
    import os
    import stat

    os.chmod(new_file, stat.S_IRUSR)
    try:
        mims = load_mims(new_file)
        np.testing.assert_array_equal(np.asarray(mims.data), stack)
        with pytest.raises(ValueError):
            mims.data[0, 0, 0, 0] = 1
    finally:
        os.chmod(new_file, stat.S_IRUSR | stat.S_IWUSR)


def test_files_are_closed_on_success_and_error(tmp_path, new_file, no_leaked_files):
    mims = load_mims(new_file)
    total = int(np.asarray(mims.data).sum())
    assert total > 0
    del mims
    bad = tmp_path / "bad.im"
    raw = bytearray(Path(new_file).read_bytes())
    struct.pack_into("<i", raw, 124 + 284, 0)
    bad.write_bytes(bytes(raw))
    with pytest.raises(ImFormatError):
        load_mims(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_header(new_file)
