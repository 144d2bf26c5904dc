"""Peak-switched files (two B fields, alternating scans) written and read back."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nanosims import align_frames, load_mims, open_acquisition, write_im
from napari_nanosims.analysis.accumulate import accumulate
from napari_nanosims.io.reader import MimsFile

# Field 0 then field 1, as the table lists them: EM1, EM2 and SE do not switch; EM3 and
# EM4 count another species of the same nominal mass in field 1.
LABELS = ["12C", "12C2", "12C 13C", "12C 14N", "SE", "12C", "12C2", "12C2 1H", "12C2 2H", "SE"]
AMU = [12.0, 24.0, 25.003, 26.003, 0.0, 12.0, 24.0, 25.008, 26.016, 0.0]
DETECTORS = ["EM1", "EM2", "EM3", "EM4", "SE"] * 2
FIELDS = [0] * 5 + [1] * 5
# Channel -> table position in field 0 and field 1 (None: not counted in that field).
EXPECTED = {"12C": (0, 5), "12C2": (1, 6), "12C 13C": (2, None), "12C 14N": (3, None),
            "SE": (4, 9), "12C2 1H": (None, 7), "12C2 2H": (None, 8)}


@pytest.fixture(params=[False, True], ids=["release4108", "legacy"])
def switched(tmp_path, request):
    rng = np.random.default_rng(4)
    stored = rng.poisson(6, (4, 10, 12, 10)).astype(np.uint16)
    path = write_im(tmp_path / "ps.im", stored, LABELS, AMU, 6.0, 200.0,
                    detectors=DETECTORS, b_fields=FIELDS, legacy=request.param)
    return path, stored


def _expand(stored):
    """Independent expansion: frame 2p + b holds field b's scan of plane p."""
    planes = stored.shape[0]
    out = np.zeros((2 * planes, len(EXPECTED)) + stored.shape[2:], stored.dtype)
    for c, (first, second) in enumerate(EXPECTED.values()):
        for b, k in enumerate((first, second)):
            if k is not None:
                out[b::2, c] = stored[:, k]
    return out


def test_channels_frames_and_detectors(switched):
    path, stored = switched
    acquisition = open_acquisition(path)
    assert acquisition.labels == tuple(EXPECTED)
    assert acquisition.header.n_b_fields == 2
    assert acquisition.shape == (8, 7, 12, 10)
    by_label = {c.label: c for c in acquisition.channels}
    assert by_label["12C"].frames is None and by_label["SE"].frames is None
    assert by_label["12C 13C"].frames == (0, 2, 4, 6)
    assert by_label["12C2 1H"].frames == (1, 3, 5, 7)
    assert by_label["12C 13C"].detector == by_label["12C2 1H"].detector == "EM3"
    assert by_label["SE"].kind == "SE"
    assert by_label["12C2 2H"].mass_amu == pytest.approx(26.016)
    assert by_label["12C 13C"].counting_time_s(8, 120) == pytest.approx(200e-6 * 120 * 4)
    assert by_label["12C"].counting_time_s(8, 120) == pytest.approx(200e-6 * 120 * 8)


def test_counts_read_back_exactly(switched):
    path, stored = switched
    expected = _expand(stored)
    acquisition = open_acquisition(path)
    np.testing.assert_array_equal(np.asarray(acquisition.counts), expected)
    np.testing.assert_array_equal(acquisition.counts[3, 5, 2:4], expected[3, 5, 2:4])
    np.testing.assert_array_equal(acquisition.counts[::3, [0, 6]], expected[::3, [0, 6]])
    np.testing.assert_array_equal(np.asarray(acquisition.channel_counts("12C2 2H")),
                                  expected[:, 6])
    np.testing.assert_array_equal(acquisition.counts.sum(axis=(0, 2, 3)),
                                  expected.sum(axis=(0, 2, 3), dtype=np.uint64))
    np.testing.assert_array_equal(load_mims(path).data[:], expected)
    np.testing.assert_array_equal(np.asarray(MimsFile(path).stored_pixels()), stored)


def test_rates_use_each_channels_own_counting_time(switched):
    path, stored = switched
    total = accumulate(open_acquisition(path))
    rate = total.rate_cps()
    expanded = _expand(stored).astype(float)
    dwell_s = 200e-6
    # 12C 13C: counted in 4 of 8 frames; its rate is its counts over its 4 frames' time.
    np.testing.assert_allclose(rate[2], expanded[0::2, 2].sum(axis=0) / (4 * dwell_s))
    np.testing.assert_allclose(rate[0], expanded[:, 0].sum(axis=0) / (8 * dwell_s))


def test_alignment_refuses_a_channel_missing_from_frames(switched):
    path, _ = switched
    acquisition = open_acquisition(path)
    with pytest.raises(ValueError, match=r"12C 13C was counted in 4 of 8 frames.*12C, 12C2, SE"):
        align_frames(acquisition, channel="12C 13C")
    aligned = align_frames(acquisition, channel="auto")
    assert aligned.history[-1].parameters["channel"] in ("auto", "12C", "12C2")


def test_bad_b_fields_are_refused(tmp_path):
    stored = np.zeros((1, 10, 4, 4), np.uint16)
    with pytest.raises(ValueError, match="b_fields"):
        write_im(tmp_path / "x.im", stored, LABELS, AMU, 6.0, 200.0, detectors=DETECTORS,
                 b_fields=[0] * 6 + [1] * 4)
    assert not (tmp_path / "x.im").exists()


def test_ordinary_files_are_unchanged(im_factory):
    acquisition = open_acquisition(im_factory("plain.im"))
    assert acquisition.header.n_b_fields == 1
    assert all(c.frames is None for c in acquisition.channels)
