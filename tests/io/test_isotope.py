"""Isotope (spot) files, ``.is``: the real files against Cameca's own text export, and the
bad-input cases on edited copies of them."""

from __future__ import annotations

import shutil
import struct
import warnings

import numpy as np
import pytest

from napari_nanosims import ImFormatError, ImFormatWarning, open_isotope, read_is_txt
from tests.conftest import SHARED_DATA, real_file

PAIRS = ["2018-01-19-GLENDON_1_2", "2020-01-17-TREASURE_2"]
SIMS_FILE = "is01 R1 KH03-27 01"


def _need(name: str):
    if not real_file(name).exists():
        pytest.skip(f"real isotope file {name} not found in {SHARED_DATA}")
    return real_file(name)


@pytest.mark.parametrize("stem", PAIRS)
def test_counts_are_the_values_of_the_text_export(stem):
    measurement = open_isotope(_need(stem + ".is"))
    exported = read_is_txt(_need(stem + ".is_txt"))
    assert [b["species"] for b in exported] == list(measurement.labels)
    for k, block in enumerate(exported):
        np.testing.assert_array_equal(measurement.counts[:, k], block["values"])
        np.testing.assert_allclose(measurement.times_s[:, k], block["times_s"], rtol=1e-6)
        # The export prints Tc in ms with three decimals.
        assert measurement.counting_time_s[0, k] == pytest.approx(block["counting_time_s"],
                                                                   abs=5e-7)
        assert measurement.masses_amu[k] == pytest.approx(block["mass_amu"], abs=5e-4)


def test_faraday_cup_conversion_reproduces_the_stored_rates():
    measurement = open_isotope(_need("2020-01-17-TREASURE_2.is"))
    assert measurement.detectors == ("FC", "EM2")
    assert measurement.fc_background == (3266.0, None)
    v, t = measurement.counts[:, 0], measurement.counting_time_s[:, 0]
    expected = (v / t - 3266.0) * 6241.42  # written out: cup reading -> ions per second
    np.testing.assert_allclose(measurement.fc_cps()[:, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(measurement.fc_cps(), measurement.stored_cps, rtol=1e-9)


def test_header_fields_and_the_companion_file():
    measurement = open_isotope(_need(SIMS_FILE + ".is"))
    assert measurement.labels == ("1H", "2H", "12C", "16O", "16O 1H")
    assert measurement.detectors == ("EM1", "EM2", "EM3", "EM5", "EM6")  # .chk_is: Tr1..Tr6
    assert measurement.counts.shape == (100, 5)
    assert measurement.counts.dtype == np.float64
    assert measurement.header.file_type == 26
    assert measurement.header.stage_position_um[:2] == (16970, 3648)  # .chk_is says so
    assert measurement.ratios[0] == ("2H", "1H")
    chk = measurement.companion
    assert [row["species"] for row in chk["masses"]] == list(measurement.labels)
    assert all(row["counting_time_s"] == pytest.approx(tc, abs=5e-4) for row, tc in
               zip(chk["masses"], measurement.counting_time_s[0], strict=True))
    assert chk["primary_current_pA"] == (23234.0, 22846.0)


def _copy(tmp_path, stem="2020-01-17-TREASURE_2"):
    source = _need(stem + ".is")
    target = tmp_path / "copy.is"
    shutil.copyfile(source, target)
    data = bytearray(target.read_bytes())
    header_size = struct.unpack_from("<i", data, 8)[0]
    return target, data, header_size


def test_aborted_analysis_warns_and_reads_the_cycles_done(tmp_path):
    target, data, header_size = _copy(tmp_path)
    full = open_isotope(real_file("2020-01-17-TREASURE_2.is"))
    # Rewrite the data with 40 cycles per mass, as an aborted analysis leaves them.
    out = bytearray(data[:header_size]) + struct.pack("<i", 2)
    for k in range(2):
        out += struct.pack("<i", 40) + full.times_s[:40, k].astype("<f8").tobytes() \
            + full.stored_cps[:40, k].astype("<f8").tobytes()
    target.write_bytes(bytes(out))
    with pytest.warns(ImFormatWarning, match="150 cycles planned, 40"):
        aborted = open_isotope(target)
    np.testing.assert_array_equal(aborted.counts, full.counts[:40])


def test_header_only_file_has_no_cycles(tmp_path):
    target, data, header_size = _copy(tmp_path)
    target.write_bytes(bytes(data[:header_size]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        measurement = open_isotope(target)
    assert measurement.counts.shape == (0, 2)
    assert not measurement.header.has_data


@pytest.mark.parametrize("edit, message", [
    ("more_cycles", "cycles do not match the header"),
    ("masses", "hold 3 masses"),
    ("cut", "file ends inside"),
    ("type", "not a NanoSIMS isotope file"),
])
def test_bad_files_give_one_clear_error(tmp_path, edit, message):
    target, data, header_size = _copy(tmp_path)
    if edit == "more_cycles":
        struct.pack_into("<i", data, 148, 100)  # header plans 100, each mass holds 150
    elif edit == "masses":
        struct.pack_into("<i", data, header_size, 3)
    elif edit == "cut":
        data = data[:-100]
    else:
        struct.pack_into("<i", data, 4, 27)
    target.write_bytes(bytes(data))
    with pytest.raises(ImFormatError, match=message) as info:
        open_isotope(target)
    assert "copy.is" in str(info.value)
