"""OpenMIMS .nrrd: read back with pynrrd as OpenMIMS and the NanoSIMS Stabilizer do, and
with our own reader (also after the Stabilizer's pynrrd re-write)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import numpy as np
import pytest
from conftest import needs_shared, real_file

from napari_nanosims import (  # the package root exports them
    make_demo_im,
    open_acquisition,
    read_nrrd,
    run_recipe,
    write_nrrd,
)
from napari_nanosims.steps.recipe import Recipe

nrrd = pytest.importorskip("nrrd")


@pytest.fixture
def demo(tmp_path):
    return make_demo_im(tmp_path / "cells.im", n_frames=5, seed=4)


def test_raw_counts_as_uint16_in_openmims_layout(tmp_path, demo):
    acquisition = open_acquisition(demo["path"])
    path = write_nrrd(acquisition, tmp_path / "cells.nrrd")
    data, header = nrrd.read(str(path))
    counts = np.asarray(acquisition.counts)
    frames, masses, height, width = counts.shape
    assert header["type"] == "uint16" and header["encoding"] == "raw"
    assert data.shape == (width, height, frames, masses)  # x fastest, masses slowest
    # Element order: data[x, y, plane, mass] is counts[plane, mass, y, x].
    np.testing.assert_array_equal(data, counts.transpose(3, 2, 0, 1))
    assert header["Mims_mass_symbols"] == "12C 13C 12C14N 12C15N 31P 32S -"
    assert header["Mims_mass_numbers"].split()[2] == f"{acquisition.channels[2].mass_amu:.2f}"
    assert float(header["Mims_dwell_time"]) == pytest.approx(
        acquisition.header.dwell_time_us / 1000)
    assert float(header["Mims_pixel_width"]) == pytest.approx(acquisition.pixel_size_um * 1000)
    assert header["Mims_deadtime_correction_applied"] == "false"
    # The Stabilizer's lookup of its reference channel.
    index = header["Mims_mass_symbols"].split(" ").index("12C14N")
    np.testing.assert_array_equal(data[..., index].transpose(2, 1, 0), counts[:, 2])
    # The raw header ends at the first empty line, no value holds ': ' (OpenMIMS's rules).
    raw = path.read_bytes()
    text = raw[:raw.index(b"\n\n")].decode("latin-1")
    assert all(": " not in line.partition(":=")[2] for line in text.splitlines())
    assert len(raw) - raw.index(b"\n\n") - 2 == counts.size * 2


def test_corrected_and_aligned_counts_as_float32_with_flags(tmp_path, demo):
    recipe = Recipe((("correct_dead_time", {}),
                     ("correct_qsa", {"beta": 0.5, "primary_current_pA": 2.0}),
                     ("align_frames", {"method": "subpixel"})))
    acquisition = run_recipe(demo["path"], recipe)
    path = write_nrrd(acquisition, tmp_path / "corrected.nrrd")
    data, header = nrrd.read(str(path))
    assert data.dtype.kind == "f" and data.dtype.itemsize == 4
    np.testing.assert_allclose(data, np.asarray(acquisition.counts, np.float32).transpose(
        3, 2, 0, 1))
    assert header["Mims_deadtime_correction_applied"] == "true"
    assert header["Mims_QSA_correction_applied"] == "true"
    assert header["Mims_QSA_FC_Obj"] == "2"
    betas = [float(v) for v in header["Mims_QSA_betas"].split(",")]
    assert betas[:6] == [0.5] * 6 and betas[6] == 0  # SE is not corrected
    back = read_nrrd(path)
    assert back.labels == acquisition.labels
    assert [h.name for h in back.history] == ["correct_dead_time", "correct_qsa",
                                              "align_frames"]
    np.testing.assert_allclose(back.translations, acquisition.translations)
    with pytest.raises(FileExistsError):
        write_nrrd(acquisition, path)
    assert not list(tmp_path.glob("*.partial-*"))


def test_read_back_ours_and_the_stabilizers_rewrite(tmp_path, demo):
    acquisition = open_acquisition(demo["path"])
    path = write_nrrd(acquisition, tmp_path / "cells.nrrd")
    back = read_nrrd(path)
    np.testing.assert_array_equal(back.counts, np.asarray(acquisition.counts))
    assert back.labels == acquisition.labels
    assert back.pixel_size_um == pytest.approx(acquisition.pixel_size_um)
    assert back.header.sample_name == acquisition.header.sample_name
    assert back.channels[-1].kind == "SE"
    # The Stabilizer writes its float32 result with pynrrd and the input's header.
    data, header = nrrd.read(str(path))
    stabilised = tmp_path / "cells_stabilized.nrrd"
    nrrd.write(str(stabilised), (data * 1.5).astype(np.float32), header)
    again = read_nrrd(stabilised)
    np.testing.assert_allclose(again.counts, np.asarray(acquisition.counts) * 1.5)
    assert again.labels == acquisition.labels
    assert again.pixel_size_um == pytest.approx(acquisition.pixel_size_um)
    # A file written by OpenMIMS has only the Mims_ keys: symbols become labels.
    bare = {k: v for k, v in header.items() if not k.startswith("napari_nanosims")}
    nrrd.write(str(tmp_path / "openmims.nrrd"), data, bare)
    plain = read_nrrd(tmp_path / "openmims.nrrd")
    assert plain.labels == ("12C", "13C", "12C14N", "12C15N", "31P", "32S", "SE")
    assert plain.pixel_size_um == pytest.approx(acquisition.pixel_size_um)


@pytest.mark.parametrize("content, message", [
    (b"P5 not nrrd", "not a NRRD file"),
    (b"NRRD0004\ntype: float\nsizes: 4 4\n\n", "sizes"),
    (b"NRRD0004\ntype: complex\nsizes: 2 2 1 1\n\n", "type"),
    (b"NRRD0004\ntype: uint16\nsizes: 64 64 10 2\nendian: big\n\n\x00\x01", "data bytes"),
    (b"NRRD0004\ntype: uint16\nsizes: 2 2 1 1\n", "no end"),
])
def test_bad_nrrd_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.nrrd"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_nrrd(path)


@needs_shared
def test_real_file_to_nrrd(tmp_path):
    acquisition = open_acquisition(real_file("OpenMIMS_doc_040702_06-05mos-03a.im"))
    data, header = nrrd.read(str(write_nrrd(acquisition, tmp_path / "real.nrrd")))
    assert header["Mims_mass_symbols"] == " ".join(
        "".join(label.split()) for label in acquisition.labels)
    np.testing.assert_array_equal(data, np.asarray(acquisition.counts).transpose(3, 2, 0, 1))


# --- OpenMIMS's header reader, written out independently (Nrrd_Reader.getHeaderInfo) ---
# Java reads each line (ending at \n, \r or \r\n) as Latin-1, trims characters <= ' ' at
# both ends, splits it on the regex ":\s+" (Java's \s: space, \t, \n, \x0b, \f, \r) and
# keeps the first part; a key-value line's value is what follows ":=" in that part.
_JAVA_SPLIT = re.compile(r":[ \t\n\x0b\f\r]+")


def _openmims_values(path) -> dict[str, str]:
    raw = path.read_bytes()
    values = {}
    for line in re.split(rb"\r\n|\r|\n", raw[:raw.index(b"\n\n")]):
        text = line.decode("latin-1")
        text = text.strip("".join(chr(c) for c in range(33)))
        if not text or text.startswith("#"):
            continue
        part = _JAVA_SPLIT.split(text)[0]
        if ":=" in part:
            key, value = part[:part.index(":=")], part[part.index(":=") + 2:]
            values[key] = value
    return values


def _written_values(path) -> dict[str, str]:
    raw = path.read_bytes()
    lines = raw[:raw.index(b"\n\n")].decode("latin-1").split("\n")
    return dict(line.split(":=", 1) for line in lines if ":=" in line)


def test_openmims_reads_every_value_whole(tmp_path, demo):
    acquisition = open_acquisition(demo["path"])
    sample = "cell:\tA  B: C:\x0bD"
    comment = "note: one\ttwo\r\nthree:  four"
    header = dataclasses.replace(acquisition.header, sample_name=sample, comment=comment,
                                 user="me:\tyou")
    acquisition = acquisition.replace(header=header)
    path = write_nrrd(acquisition, tmp_path / "colons.nrrd")
    openmims, written = _openmims_values(path), _written_values(path)
    # OpenMIMS loses nothing of any key-value line (at most white space at the line's end).
    assert set(openmims) == set(written)
    for key, value in written.items():
        assert openmims[key] == value.rstrip(), key
    # The plain values lose only the white space after each colon.
    assert openmims["Mims_sample_name"] == "cell:A  B:C:D"
    assert openmims["Mims_user_name"] == "me:you"
    # The JSON keys give back the exact text, to OpenMIMS's reader and to ours.
    assert json.loads(openmims["napari_nanosims_header"])["sample_name"] == sample
    assert json.loads(openmims["napari_nanosims_header"])["comment"] == comment
    back = read_nrrd(path)
    assert back.header.sample_name == sample and back.header.comment == comment
    # pynrrd (the Stabilizer's reader) reads the same header.
    assert nrrd.read_header(str(path))["Mims_sample_name"] == "cell:A  B:C:D"


def _checksum_by_hand(path) -> str:
    """SHA-256 of the file's values as big-endian float64, masses slowest, x fastest."""
    data, _ = nrrd.read(str(path))  # (x, y, plane, mass)
    values = np.asarray(data, dtype=np.float64).transpose(3, 2, 1, 0)  # mass, plane, y, x
    return hashlib.sha256(np.ascontiguousarray(values).astype(">f8").tobytes()).hexdigest()


def test_data_changed_by_another_tool_are_not_labelled_as_ours(tmp_path, demo):
    recipe = Recipe((("align_frames", {"method": "sequential"}),))
    acquisition = run_recipe(demo["path"], recipe)
    path = write_nrrd(acquisition, tmp_path / "aligned.nrrd")
    data, header = nrrd.read(str(path))
    assert data.dtype.kind == "u" and data.dtype.itemsize == 2  # big-endian uint16
    history = acquisition.history_dicts()

    # pynrrd's rewrite of the same values (little-endian, as float32 too) is still ours.
    for kind in (np.uint16, np.float32):
        same = tmp_path / f"same_{np.dtype(kind).name}.nrrd"
        nrrd.write(str(same), data.astype(kind), header)
        back = read_nrrd(same)
        assert [h.to_dict() for h in back.history] == history
        np.testing.assert_array_equal(back.translations, acquisition.translations)

    # The Stabilizer keeps frame 0 and warps the others, with the header copied unchanged.
    warped = data.astype(np.float32)
    warped[:, :, 1:, :] = np.roll(warped[:, :, 1:, :], 1, axis=0) * 0.5
    stabilised = tmp_path / "aligned_stabilized.nrrd"
    nrrd.write(str(stabilised), warped, header)
    back = read_nrrd(stabilised)
    np.testing.assert_array_equal(back.counts, warped.transpose(2, 3, 1, 0))
    assert [h.name for h in back.history] == ["changed_outside_napari_nanosims"]
    record = back.history[0].parameters
    assert record["before"] == history
    assert back.translations is None
    # what still describes the data is kept
    assert back.labels == acquisition.labels
    assert back.header.sample_name == acquisition.header.sample_name

    # The checksum is the one documented, computed here from the values as pynrrd reads them.
    assert header["napari_nanosims_data_sha256"] == _checksum_by_hand(path)
    assert record["data_sha256_recorded"] == header["napari_nanosims_data_sha256"]
    assert record["data_sha256_found"] == _checksum_by_hand(stabilised)

    # One count changed is enough.
    nudged = data.copy()
    nudged[5, 7, 2, 0] += 1
    nrrd.write(str(tmp_path / "nudged.nrrd"), nudged, header)
    assert read_nrrd(tmp_path / "nudged.nrrd").history[0].name == \
        "changed_outside_napari_nanosims"
    # Our history without a checksum cannot be trusted either.
    unchecked = {k: v for k, v in header.items() if k != "napari_nanosims_data_sha256"}
    nrrd.write(str(tmp_path / "unchecked.nrrd"), data, unchecked)
    back = read_nrrd(tmp_path / "unchecked.nrrd")
    assert [h.name for h in back.history] == ["changed_outside_napari_nanosims"]
    assert back.history[0].parameters["before"] == history
