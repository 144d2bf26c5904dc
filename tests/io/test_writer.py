"""write_im: round trips through our reader, sims and openformat; refusing to overwrite."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pytest
from conftest import real_file

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
    (dict(detectors=["EM1"]), "detectors: need one per mass"),
    (dict(detectors=["EM2", "EM2"]), "detectors: each detector holds one mass"),
    (dict(detectors=["EM9", "EM2"]), "detectors: 'EM9' is not a detector"),
    (dict(detectors=["EM6", "EM2"], legacy=True), "detectors: 'EM6' is not a detector"),
    (dict(detectors=["SE", "EM2"]), "detectors: mass 0"),
    (dict(duration_s=-5), "duration_s"),
    (dict(duration_s=float("nan")), "duration_s"),
    (dict(duration_s="long"), "duration_s"),
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


@pytest.mark.parametrize("legacy, labels, amu, detectors", [
    # RTIimage's layout: 12C2 on EM3, the EM2 trolley unused
    (False, ["12C", "12C2"], [12.0, 24.0], ("EM1", "EM3")),
    (False, ["12C", "13C", "12C2", "SE", "30Si"], [12.0, 13.0, 24.0, 0.0, 29.97],
     ("EM7", "EM2", "EM3", "SE", "EM6")),
    (True, ["12C", "13C", "SE"], [12.0, 13.0, 0.0], ("EM5", "EM4", "SE")),
])
def test_detectors_and_duration_are_written(tmp_path, legacy, labels, amu, detectors):
    data = _stack((3, len(labels), 8, 12), seed=4)
    path = write_im(tmp_path / "d.im", data, labels, amu, 5.0, 100, legacy=legacy,
                    detectors=detectors, duration_s=4321.4)
    header = read_header(path)
    assert header.detectors == detectors
    assert header.analysis_duration_s == 4321  # whole seconds
    assert header.labels == tuple(labels)
    # Writing it back from what was read keeps both.
    again = write_im(tmp_path / "again.im", load_mims(path).data, header.labels,
                     header.masses_amu, header.raster_um, header.dwell_time_us, legacy=legacy,
                     detectors=header.detectors, duration_s=header.analysis_duration_s)
    assert read_header(again).detectors == detectors
    assert read_header(again).analysis_duration_s == 4321
    np.testing.assert_array_equal(np.asarray(load_mims(again).data), data)


def test_unnamed_detectors_take_the_free_multipliers_in_order(tmp_path):
    data = _stack((1, 4, 8, 8))
    path = write_im(tmp_path / "m.im", data, ["12C", "13C", "SE", "12C2"],
                    [12.0, 13.0, 0.0, 24.0], 5.0, 100, detectors=("EM2", None, None, None))
    assert read_header(path).detectors == ("EM2", "EM1", "SE", "EM3")
    # Default duration: the counting time alone, dwell x pixels x frames, whole seconds.
    path = write_im(tmp_path / "t.im", _stack((3, 1, 100, 100)), ["12C"], [12.0], 5.0, 5000)
    assert read_header(path).analysis_duration_s == round(5000e-6 * 100 * 100 * 3)


@pytest.mark.parametrize("name", ["RTIimage.im", "OpenMIMS_doc_040702_06-05mos-03a.im",
                                  "OpenMIMS_doc_051117_05-32dRe-03b.im",
                                  "grain mode cameca.im"])
def test_real_file_rewritten_keeps_detectors_and_duration(tmp_path, name):
    source = real_file(name)
    if not source.exists():
        pytest.skip(f"real file {source} not found (the shared data hold only some files)")
    header = read_header(source)
    if header.has_data and header.n_frames:
        data = np.asarray(load_mims(source).data)
    else:  # header only (grain mode): its header with zero counts
        data = np.zeros((1, header.n_masses, header.height, header.width), np.uint32)
    # The raster is not under test (the RTI file's is garbage): any valid one will do.
    path = write_im(tmp_path / "rewritten.im", data, header.labels, header.masses_amu,
                    10.0, header.dwell_time_us, legacy=header.release < 4108,
                    detectors=header.detectors, duration_s=header.analysis_duration_s)
    again = read_header(path)
    assert again.detectors == header.detectors
    assert again.analysis_duration_s == header.analysis_duration_s
    assert again.labels == header.labels
    np.testing.assert_array_equal(np.asarray(load_mims(path).data), data)
    if "12C2" in header.labels and name.startswith("RTI"):
        assert again.detectors[header.labels.index("12C2")] == "EM3"
