"""The three real files in ../shared/data against oracle.json and against sims."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import ORACLE, REAL_FILES, needs_shared, real_file

from napari_nanosims import ImHeader, load_mims, read_header
from napari_nanosims.io.lazy import LazyCounts

pytestmark = needs_shared


@pytest.fixture(params=REAL_FILES or ["missing"])
def real(request):
    if not REAL_FILES:
        pytest.skip("oracle.json missing")
    name = request.param
    return name, ORACLE[name], load_mims(real_file(name))


def test_header_matches_oracle(real):
    name, ref, mims = real
    header: ImHeader = mims.header
    assert header.byte_order == {"big": ">", "little": "<"}[ref["byte_order"]]
    assert header.release == ref["release"]
    assert header.file_type == ref["file_type"]
    assert header.header_size == ref["header_size"]
    assert header.n_masses == ref["n_masses"]
    assert header.width == ref["width"] and header.height == ref["height"]
    assert header.bytes_per_pixel == ref["bytes_per_pixel"]
    assert list(header.labels) == ref["mass_labels"]
    assert list(header.masses_amu) == ref["mass_amu"]
    assert header.se_index == ref["se_mass_index"]
    assert header.raster_um == pytest.approx(ref["raster_um_primary_beam"], rel=1e-12)
    assert header.pixel_size_um == pytest.approx(ref["pixel_size_um"], rel=1e-12)
    assert header.dwell_time_us == ref["dwell_time_us"]
    assert header.frame_time_s == pytest.approx(ref["frame_time_s_from_dwell"])
    assert header.sample_name == ref["sample_name"]
    assert header.comment == ref["comment"]
    assert header.analysis_date.isoformat() == ref["analysis_date"]
    assert list(header.stage_position_um) == ref["stage_position_um"]
    assert header.primary_ion == ref["primary_ion"]
    assert list(header.primary_current_raw) == ref["primary_current_pA"]  # unit unknown
    assert list(header.dead_times_ns) == ref["em_deadtime_ns"]
    assert header.mask_nano_version == ref["mask_nano_version"]
    assert header.anal_param_nano_release == ref["anal_param_nano_release"]
    assert header.has_data == ref["data_included"]
    assert header.n_frames == ref["n_frames"]
    assert mims.def_analysis.hdr_usr == ref["header_size"]
    assert mims.tab_mass[0].mass.string.strip() == ref["mass_labels_raw"][0]


def test_header_section_offsets_match_oracle(real):
    from napari_nanosims.io.reader import MimsFile

    name, ref, _ = real
    offsets = MimsFile(real_file(name)).blocks["_offsets"]
    for key, value in ref["section_offsets"].items():
        if key in offsets:
            assert offsets[key] == value, key


def test_pixels_match_oracle(real):
    name, ref, mims = real
    data = mims.data
    header = mims.header
    if not ref["data_included"]:
        assert data.shape == (0, ref["n_masses"], ref["height"], ref["width"])
        assert not header.has_data
        return
    assert isinstance(data, LazyCounts) and data.memory_mapped, "pixels must be mapped, not read"
    with pytest.raises(ValueError, match="read-only"):
        data[0, 0, 0, 0] = 1
    assert data.shape == (ref["n_frames"], ref["n_masses"], ref["height"], ref["width"])
    assert data.dtype.kind == "u" and data.dtype.itemsize == ref["bytes_per_pixel"]
    assert data.sum(axis=(0, 2, 3)).tolist() == ref["per_mass_total_counts"]
    assert data.max(axis=(0, 2, 3)).tolist() == ref["per_mass_max"]
    stored_dtype = np.dtype(f"{header.byte_order}u{header.bytes_per_pixel}")
    stored = np.asarray(data).astype(stored_dtype).tobytes()  # the bytes as in the file
    assert hashlib.sha256(stored).hexdigest() == ref["sha256_pixel_bytes"]
    probes = ref["probe_frame0_mass0"]
    frame = data[0, 0]
    h, w = frame.shape
    assert frame[0, 0] == probes["[0,0]"] and frame[0, 1] == probes["[0,1]"]
    assert frame[1, 0] == probes["[1,0]"] and frame[h - 1, w - 1] == probes["[h-1,w-1]"]
    assert frame[10, 20] == probes["[10,20] (row10,col20)"]
    assert frame[20, 10] == probes["[20,10] (row20,col10)"]
    weights = np.arange(h * w, dtype=np.int64).reshape(h, w)
    assert int((frame.astype(np.int64) * weights).sum()) == probes["sum(value*(row*width+col))"]


def test_old_files_are_not_rolled_by_default(real):
    name, ref, mims = real
    assert mims.header.roll_applied == (0, 0)
    if ref["data_included"]:
        rolled = load_mims(real_file(name), roll_data=True)
        assert rolled.header.roll_applied == (1, 1)
        np.testing.assert_array_equal(np.asarray(rolled.data),
                                      np.roll(np.asarray(mims.data), 1, axis=(2, 3)))


def test_agrees_with_sims(real):
    sims = pytest.importorskip("sims")
    name, ref, mims = real
    peer = sims.SIMS(str(real_file(name)))
    assert list(mims.header.labels) == [str(s) for s in peer.header["label list"]]
    if ref["data_included"]:
        peer_data = np.asarray(peer.data)
        if peer_data.ndim == 3:  # sims drops the frame axis of single-frame files
            peer_data = peer_data[:, None]
        np.testing.assert_array_equal(np.asarray(mims.data), peer_data.transpose(1, 0, 2, 3))


def test_read_header_is_json_friendly(real):
    import json

    name, ref, _ = real
    header = read_header(real_file(name))
    text = json.dumps(header.to_dict())
    assert json.loads(text)["labels"] == ref["mass_labels"]
    assert json.loads(text)["analysis_date"] == ref["analysis_date"]
