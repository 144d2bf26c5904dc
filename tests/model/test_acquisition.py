"""The acquisition model: channels by value, lazy counts, steps that never change inputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs_shared, real_file

from napari_nanosims import (
    Acquisition,
    ImFormatError,
    align_frames,
    clean_hot_pixels,
    default_alignment_channel,
    open_acquisition,
    remove_hot_pixels,
    sum_frames,
    write_im,
)
from napari_nanosims.io.lazy import LazyCounts


@needs_shared
def test_channels_of_the_old_files_by_value():
    with open_acquisition(real_file("OpenMIMS_doc_051117_05-32dRe-03b.im")) as acq:
        assert [c.label for c in acq.channels] == ["12C", "13C", "12C 14N", "12C 15N"]
        assert [c.detector for c in acq.channels] == ["EM1", "EM2", "EM3", "EM4"]
        assert [c.trolley_slot for c in acq.channels] == [1, 2, 3, 4]
        assert [c.kind for c in acq.channels] == ["ion"] * 4
        assert [c.dead_time_ns for c in acq.channels] == [44, 44, 44, 44]
        # the 2005 files have EM4 at 70 % yield, the others at 100 %
        assert [c.em_yield_percent for c in acq.channels] == [100.0, 100.0, 100.0, 70.0]
        assert [c.em_background_cps for c in acq.channels] == [0, 0, 0, 0]
        assert {c.dwell_time_us for c in acq.channels} == {acq.header.dwell_time_us}
        assert acq.channel("12c15n").label == "12C 15N"
        assert isinstance(acq.counts, LazyCounts)
        totals = acq.counts.sum(axis=(0, 2, 3))
        assert isinstance(totals, np.ndarray) and totals.shape == (4,)
    with pytest.raises(ValueError, match="closed"):
        _ = acq.counts


@needs_shared
def test_channels_of_the_grain_mode_file_by_value():
    acq = open_acquisition(real_file("grain mode cameca.im"))
    assert [c.detector for c in acq.channels] == ["EM1", "EM2", "EM3", "EM4", "EM5", "SE",
                                                  "EM6", "EM7"]
    assert [c.kind for c in acq.channels] == ["ion"] * 5 + ["SE"] + ["ion"] * 2
    se = acq.channel("Esi")
    assert se is acq.channel("SE") and se.index == 5 and se.dead_time_ns is None
    assert acq.channel("12C13C").label == "12C 13C"
    assert acq.channel("30Si").dead_time_ns == acq.header.dead_times_ns[6]  # EM7
    with pytest.raises(KeyError, match="no channel '32S'.*'12C2', '12C 13C'"):
        acq.channel("32S")
    assert acq.n_frames == 0  # header only


def test_counts_are_the_same_kind_for_signed_and_cameca_files(tmp_path):
    data = np.random.default_rng(0).integers(0, 9, size=(3, 2, 6, 5)).astype(np.uint32)
    kinds = set()
    for signed in (True, False):
        path = write_im(tmp_path / f"{signed}.im", data, ["12C", "SE"], [12, 0], 5, 100,
                        signed=signed)
        acq = open_acquisition(path)
        kinds.add(type(acq.counts))
        expected = data if signed else np.roll(data, (1, 1), axis=(2, 3))
        np.testing.assert_array_equal(acq.counts.sum(axis=(0, 2, 3)),
                                      expected.sum(axis=(0, 2, 3)))
    assert kinds == {LazyCounts}


def test_from_arrays_and_channel_lookup():
    counts = np.ones((2, 3, 4, 5), np.uint16)
    acq = Acquisition.from_arrays(counts, ["12C", "12C 14N", "SE"], pixel_size_um=0.1)
    assert acq.labels == ("12C", "12C 14N", "SE")
    assert [c.detector for c in acq.channels] == ["EM1", "EM2", "SE"]
    assert [c.kind for c in acq.channels] == ["ion", "ion", "SE"]
    assert acq.channel("esi").index == 2 and acq.se_index == 2
    assert acq.pixel_size_um == 0.1 and acq.history == ()
    with pytest.raises(ValueError, match="labels for 3 masses"):
        Acquisition.from_arrays(counts, ["12C"])
    with pytest.raises(ValueError, match="shape"):
        Acquisition.from_arrays(np.ones((3, 4)), ["12C"])


def _demo_like(seed=0, n_frames=12, labels=("12C", "13C", "12C 14N", "SE")):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(20.0, size=(n_frames, len(labels), 24, 20)).astype(np.uint32)
    counts[2, :3, 5, 5] = 400  # an event spiking every ion channel
    return Acquisition.from_arrays(counts, labels)


def test_steps_never_change_their_input_and_record_history():
    acq = _demo_like()
    before = np.array(acq.counts, copy=True)
    cleaned = clean_hot_pixels(acq, num_outliers=3)
    aligned = align_frames(cleaned, channel="auto")
    summed = sum_frames(aligned)
    np.testing.assert_array_equal(acq.counts, before)
    assert acq.history == () and cleaned.acquisition_id == acq.acquisition_id
    assert [r.name for r in summed.history] == ["remove_hot_pixels", "align_frames",
                                                "sum_frames"]
    assert summed.history[1].parameters["aligned_on"] == "12C 14N"
    assert summed.history[0].version
    # the step's result equals the seed-compatible function on the ion channels
    expected = remove_hot_pixels(before[:, :3], num_outliers=3)
    np.testing.assert_array_equal(cleaned.counts[:, :3], expected)
    np.testing.assert_array_equal(cleaned.counts[:, 3], before[:, 3])  # SE stays raw
    assert cleaned.hot_pixels[2, 5, 5]
    np.testing.assert_array_equal(summed.sums, aligned.counts.sum(axis=0))


def test_auto_alignment_channel_is_the_strongest_ion_channel_without_12c14n():
    acq = _demo_like(labels=("12C", "13C", "SE"))
    counts = np.array(acq.counts)
    counts[:, 1] *= 5  # 13C is the strongest here
    strong = acq.replace(counts=counts)
    assert default_alignment_channel(strong) == "13C"
    assert align_frames(strong).history[-1].parameters["aligned_on"] == "13C"


def test_one_ion_channel_is_cleaned_with_a_warning_and_num_outliers_lowered():
    acq = _demo_like(labels=("12C 14N", "SE"))
    with pytest.warns(UserWarning, match="num_outliers=3 but the file has 1 ion channel"):
        cleaned = clean_hot_pixels(acq)
    assert cleaned.history[-1].parameters["num_outliers"] == 1
    assert cleaned.hot_pixels[2, 5, 5]


@pytest.mark.parametrize("bad, message", [
    (dict(kernel_size=2), "kernel_size must be odd"),
    (dict(outlier_factor=float("nan")), "outlier_factor"),
    (dict(num_outliers=True), "num_outliers"),
    (dict(unknown=1), "unknown parameter"),
])
def test_step_parameters_are_checked_by_their_definition(bad, message):
    with pytest.raises(ValueError, match=message):
        clean_hot_pixels(_demo_like(), **bad)


def test_alignment_padding_is_bounded_by_the_frame():
    with pytest.raises(ValueError, match="at most the frame size"):
        align_frames(_demo_like(), padding=3000)
    with pytest.raises(ValueError, match="upsample_factor must be at most"):
        align_frames(_demo_like(), method="subpixel", upsample_factor=10**6)


def test_open_acquisition_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.im"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(ImFormatError, match="bad.im"):
        open_acquisition(bad)
