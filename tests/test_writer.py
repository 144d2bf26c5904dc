"""write_im: round trips through our reader, sims and openformat; refusing to overwrite."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pytest

from napari_nanosims import load_mims, make_demo_im, read_header, write_im

LABELS = ["12C", "13C", "12C 14N", "SE"]
AMU = [11.9995, 13.0028, 26.0025, 0.0]


def _stack(shape, seed=0, high=1000):
    return np.random.default_rng(seed).integers(0, high, size=shape).astype(np.uint32)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("shape", [(3, 4, 32, 32), (2, 4, 24, 40), (1, 4, 17, 5)])
def test_round_trip_bit_identical(tmp_path, legacy, shape, no_leaked_files):
    data = _stack(shape)
    path = write_im(tmp_path / "a.im", data, LABELS, AMU, raster_um=12.5, dwell_time_us=2000,
                    legacy=legacy, sample_name="S1", comment="hello",
                    analysis_date=dt.datetime(2021, 3, 4, 5, 6))
    mims = load_mims(path)
    header = mims.header
    assert header.byte_order == (">" if legacy else "<")
    assert header.release == (11 if legacy else 4108)
    assert header.bytes_per_pixel == (2 if legacy else 4)
    assert header.roll_applied == (0, 0)  # our own files are never rolled by 'auto'
    assert mims.data.shape == shape
    np.testing.assert_array_equal(np.asarray(mims.data), data)
    assert header.labels == tuple(LABELS)
    assert header.masses_amu == tuple(AMU)
    assert header.se_index == 3
    assert header.raster_um == 12.5
    assert header.pixel_size_um == pytest.approx(12.5 / shape[3])
    assert header.dwell_time_us == 2000
    assert header.sample_name == "S1" and header.comment == "hello"
    assert header.analysis_date == dt.datetime(2021, 3, 4, 5, 6)
    assert header.written_by_napari_nanosims
    del mims


def test_sims_reads_what_we_write(tmp_path):
    sims = pytest.importorskip("sims")
    for legacy in (False, True):
        data = _stack((3, 4, 24, 40), seed=1)
        path = write_im(tmp_path / f"s{legacy}.im", data, LABELS, AMU, 10.0, 1000,
                        legacy=legacy)
        peer = sims.SIMS(str(path))
        assert [str(s) for s in peer.header["label list"]] == LABELS
        np.testing.assert_array_equal(np.asarray(peer.data).transpose(1, 0, 2, 3), data)


def test_openformat_reads_what_we_write(tmp_path):
    mims_of = pytest.importorskip("openformat.mims")
    data = _stack((3, 4, 32, 32), seed=2)
    path = write_im(tmp_path / "o.im", data, LABELS, AMU, 10.0, 1000)
    peer = mims_of.load_mims(str(path), roll_data=False)
    np.testing.assert_array_equal(peer["data"], data)
    assert [t.mass.string.strip() for t in peer["tab_mass"]] == ["12C", "13C", "12C 14N", ""]
    assert peer["tab_mass"][3].mass_amu == 0.0
    # The seed rolls by default; our reader does the same when asked.
    rolled = mims_of.load_mims(str(path))
    np.testing.assert_array_equal(np.asarray(load_mims(path, roll_data=True).data),
                                  rolled["data"])


def test_refuses_to_overwrite(tmp_path):
    data = _stack((1, 1, 8, 8))
    path = tmp_path / "x.im"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="x.im"):
        write_im(path, data, ["12C"], [12.0], 10.0, 100)
    assert path.read_bytes() == b"precious"
    assert not [p for p in os.listdir(tmp_path) if ".partial" in p]
    write_im(path, data, ["12C"], [12.0], 10.0, 100, overwrite=True)
    np.testing.assert_array_equal(np.asarray(load_mims(path).data), data)


@pytest.mark.parametrize("kwargs, message", [
    (dict(data=np.zeros((2, 8, 8), np.uint32)), "shape"),
    (dict(labels=["a"]), "one label"),
    (dict(raster_um=-1), "raster_um"),
    (dict(dwell_time_us=0), "dwell_time_us"),
    (dict(data=np.full((1, 2, 4, 4), -1)), "counts"),
    (dict(data=np.full((1, 2, 4, 4), 70000), legacy=True), "counts"),
    (dict(data=np.full((1, 2, 4, 4), 0.5)), "integer"),
    (dict(sample_name="x" * 100), "sample_name"),
    (dict(colour="red"), "unknown metadata"),
])
def test_bad_arguments_are_clear_and_leave_nothing(tmp_path, kwargs, message):
    args = dict(data=np.ones((1, 2, 4, 4), np.uint32), labels=["12C", "13C"],
                masses_amu=[12.0, 13.0], raster_um=5.0, dwell_time_us=100)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        write_im(tmp_path / "bad.im", **args)
    assert os.listdir(tmp_path) == []


def test_lazy_input_is_written_frame_by_frame(tmp_path):
    data = _stack((5, 2, 16, 16), seed=3)
    source = write_im(tmp_path / "src.im", data, ["12C", "13C"], [12.0, 13.0], 5.0, 100)
    lazy = load_mims(source).data  # a memory map
    copy = write_im(tmp_path / "copy.im", lazy, ["12C", "13C"], [12.0, 13.0], 5.0, 100)
    np.testing.assert_array_equal(np.asarray(load_mims(copy).data), data)


def test_demo_is_deterministic_and_realistic(tmp_path):
    truth_a = make_demo_im(tmp_path / "a.im", seed=0, n_frames=12, size=64)
    truth_b = make_demo_im(tmp_path / "b.im", seed=0, n_frames=12, size=64)
    assert (tmp_path / "a.im").read_bytes()[:400] == (tmp_path / "b.im").read_bytes()[:400]
    np.testing.assert_array_equal(np.asarray(load_mims(truth_a["path"]).data),
                                  np.asarray(load_mims(truth_b["path"]).data))
    other = make_demo_im(tmp_path / "c.im", seed=1, n_frames=12, size=64)
    assert not np.array_equal(other["drift_px"], truth_a["drift_px"])

    header = read_header(truth_a["path"])
    assert header.labels == ("12C", "13C", "12C 14N", "12C 15N", "31P", "32S", "SE")
    assert header.se_index == 6 and header.n_frames == 12
    data = np.asarray(load_mims(truth_a["path"]).data).astype(float)
    clean = np.ones(data.shape[:1] + data.shape[2:], bool)
    for frame, row, col in truth_a["hot_pixels"]:
        clean[frame, row, col] = False
    means = np.array([data[:, m][clean].mean() for m in range(data.shape[1])])
    # 12C 14N is the brightest ion channel; 13C and 15N are rare isotopes.
    assert means[2] > means[0] > means[1] and means[0] > 10 * means[1]
    assert means[3] < means[2] / 20
    drift = truth_a["drift_px"]
    assert drift.shape == (12, 2) and np.any(np.abs(drift - np.round(drift)) > 0.05)
    for frame, row, col in truth_a["hot_pixels"]:
        # every hot-pixel event spikes all ion channels well above the local level
        assert np.all(data[frame, :6, row, col] >= 15)
