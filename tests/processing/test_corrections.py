"""Detector corrections and accumulation, against formulas written out here and simulation."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import tifffile
from conftest import needs_shared, real_file

from napari_nanosims import (
    Acquisition,
    CorrectionWarning,
    accumulate,
    align_frames,
    clean_hot_pixels,
    correct_dead_time,
    correct_em_yield,
    correct_qsa,
    open_acquisition,
    subtract_em_background,
    sum_frames,
)
from napari_nanosims.cli import main
from napari_nanosims.testing.factory import poisson_counts

E = 1.602176634e-19
LABELS = ["12C", "13C", "12C 14N", "SE"]


@pytest.fixture
def written(im_factory):
    """Open a written file: Poisson(200) counts, 4 frames of 12 x 10 pixels, unless given."""
    def make(legacy=False, dwell_us=1000, counts=None, seed=0, **metadata):
        if counts is None:
            counts = poisson_counts(4, len(LABELS), (12, 10), mean=200, seed=seed)
        path = im_factory(f"c{int(legacy)}.im", counts, labels=LABELS,
                          masses_amu=[12, 13, 26, 0], dwell_time_us=dwell_us, legacy=legacy,
                          **metadata)
        return open_acquisition(path), counts

    return make


@pytest.mark.parametrize("legacy", [False, True])
def test_dead_time_per_pixel_and_frame_on_written_files(written, legacy):
    taus = [30, 40, 50, 44, 44, 44, 44]
    acq, n = written(legacy, dwell_us=100, dead_times_ns=taus)
    out = correct_dead_time(acq)
    t = 100e-6
    for k, tau in enumerate(taus[:3]):  # 12C, 13C, 12C 14N on EM1, EM2, EM3
        x = n[:, k] * tau * 1e-9 / t
        expected = n[:, k] / (1 - x)
        np.testing.assert_allclose(out.counts[:, k], expected, rtol=1e-12)
        np.testing.assert_allclose(out.variance[:, k], expected ** 2 / n[:, k], rtol=1e-12)
    np.testing.assert_array_equal(out.counts[:, 3], n[:, 3])  # SE passes unchanged
    assert out.counts.dtype == np.float64
    np.testing.assert_array_equal(out.raw_counts, n)
    record = out.history[-1]
    assert record.name == "correct_dead_time"
    assert record.parameters["unchanged_channels"] == ["SE"]
    assert record.parameters["dead_times_used_ns"] == {"12C": 30.0, "13C": 40.0,
                                                       "12C 14N": 50.0}
    np.testing.assert_array_equal(np.asarray(acq.counts), n)  # input unchanged


@needs_shared
@pytest.mark.parametrize("name", ["OpenMIMS_doc_040702_06-05mos-03a.im",
                                  "OpenMIMS_doc_051117_05-32dRe-03b.im"])
def test_dead_time_on_the_real_files(name):
    acq = open_acquisition(real_file(name))
    n = np.asarray(acq.counts, dtype=np.float64)
    out = correct_dead_time(acq)
    t = acq.header.dwell_time_us * 1e-6
    for k, channel in enumerate(acq.channels):
        tau = acq.header.dead_times_ns[k] * 1e-9  # EM k+1 measures mass k in these files
        expected = n[:, k] / (1 - n[:, k] * tau / t)
        np.testing.assert_allclose(out.counts[:, k], expected, rtol=1e-12)
        assert channel.detector == f"EM{k + 1}"
    assert np.nanmax(out.counts / np.maximum(n, 1)) > 1  # it did something


def test_dead_time_nan_and_unreliable_pixels_are_reported(written):
    counts = np.full((2, 4, 6, 6), 10, np.uint32)
    counts[0, 0, 0, 0] = 2000   # x = 2000 * 44 ns / 50 us = 1.76 -> impossible
    counts[0, 1, 1, 1] = 150    # x = 0.132 -> unreliable
    acq, _ = written(dwell_us=50, counts=counts)
    with pytest.warns(CorrectionWarning) as caught:
        out = correct_dead_time(acq)
    messages = " ".join(str(w.message) for w in caught)
    assert "1 pixel(s) counted more than the detector can" in messages
    assert "1 pixel(s) the counter was dead more than 10%" in messages
    assert np.isnan(out.counts[0, 0, 0, 0]) and np.isnan(out.variance[0, 0, 0, 0])
    assert np.isfinite(out.counts[0, 1, 1, 1])
    assert out.history[-1].parameters["nan_pixels"] == 1


def test_dead_time_override_and_missing_dwell():
    counts = np.full((1, 2, 3, 3), 100.0)
    acq = Acquisition.from_arrays(counts, ["12C", "SE"], dwell_time_us=10.0)
    out = correct_dead_time(acq, dead_times_ns={"12C": 20})
    np.testing.assert_allclose(out.counts[0, 0], 100 / (1 - 100 * 20e-9 / 10e-6))
    with pytest.raises(ValueError, match="dwell time of 12C"):
        correct_dead_time(Acquisition.from_arrays(counts, ["12C", "SE"], dwell_time_us=0.0))
    with pytest.raises(ValueError, match="dead_times_ns"):
        correct_dead_time(acq, dead_times_ns={"12C": -1})


def test_qsa_formula_order_and_refusals(written):
    acq, n = written(dwell_us=1000)
    with pytest.raises(ValueError, match="run correct_dead_time first"):
        correct_qsa(acq, 0.5, 2.0)
    dead = correct_dead_time(acq)
    with pytest.raises(ValueError, match="primary_current_pA must be above 0"):
        correct_qsa(dead, 0.5, 0.0)
    out = correct_qsa(dead, {"12C": 0.7, "13C": 0.5}, 0.1)  # 624 primaries: K about 0.3
    primaries = 0.1e-12 * 1e-3 / E
    assert np.all(np.isfinite(out.counts))
    assert 0.1 < np.mean(out.counts[:, 0] / dead.counts[:, 0]) - 1 < 0.5  # a real correction
    for k, beta in ((0, 0.7), (1, 0.5)):
        c = dead.counts[:, k]
        k_exp = c / primaries
        expected = np.where(k_exp >= 2, np.nan, c * (1 + beta * (k_exp / (1 - k_exp / 2))))
        np.testing.assert_allclose(out.counts[:, k], expected, rtol=1e-12)
        ratio = out.counts[:, k] / c
        np.testing.assert_allclose(out.variance[:, k], dead.variance[:, k] * ratio ** 2)
    np.testing.assert_array_equal(out.counts[:, 2], dead.counts[:, 2])  # no beta: unchanged
    assert out.history[-1].parameters["unchanged_channels"] == ["12C 14N", "SE"]
    with pytest.raises(ValueError, match="already applied"):
        correct_qsa(out, 0.5, 2.0)
    with pytest.raises(ValueError, match="correct_dead_time must come before correct_qsa"):
        correct_dead_time(out.replace(history=out.history[1:]))


def test_qsa_diverging_pixels_are_nan(written):
    acq, _ = written(dwell_us=1000)
    primaries_per_dwell = 2.0e-12 * 1e-3 / E  # 12 483 primaries
    counts = np.array(acq.counts, dtype=np.float64)
    counts[0, 0, 0, 0] = 2.5 * primaries_per_dwell
    with pytest.warns(CorrectionWarning, match="2 or more detected ions per primary"):
        out = correct_qsa(correct_dead_time(acq.replace(counts=counts),
                                            dead_times_ns=0.0), 0.5, 2.0)
    assert np.isnan(out.counts[0, 0, 0, 0])


def test_background_and_yield(written):
    acq, n = written(dwell_us=2000, em_backgrounds_cps=[500, 0, 0, 0, 0, 0, 0],
                     em_yields_percent=[100, 80, 100, 100, 100, 100, 100])
    dead = correct_dead_time(acq)
    background = subtract_em_background(dead)
    np.testing.assert_allclose(background.counts[:, 0], dead.counts[:, 0] - 500 * 2e-3)
    np.testing.assert_array_equal(background.variance, dead.variance)
    with pytest.warns(CorrectionWarning, match="different yields"):
        yielded = correct_em_yield(background)
    np.testing.assert_allclose(yielded.counts[:, 1], background.counts[:, 1] / 0.8)
    np.testing.assert_allclose(yielded.variance[:, 1], background.variance[:, 1] / 0.64)
    with pytest.raises(ValueError, match="subtract_em_background must come before"):
        subtract_em_background(yielded.replace(history=yielded.history[:1]
                                               + yielded.history[2:]))
    assert [r.name for r in yielded.history] == ["correct_dead_time", "subtract_em_background",
                                                 "correct_em_yield"]


def test_corrections_refused_after_sums_and_subpixel_shifts_allowed_after_whole_pixels():
    from napari_nanosims.testing.simulate import simulate_scene

    rng = np.random.default_rng(2)
    # A structured, drifting 12C image (pure noise would not register: no shifts at all).
    moving = simulate_scene("mineral", 8, 30.0, window=48, max_drift_px=3, seed=2)["frames"]
    counts = np.stack([moving, rng.poisson(30, size=moving.shape)], axis=1).astype(np.uint32)
    acq = Acquisition.from_arrays(counts, ["12C", "SE"])
    with pytest.raises(ValueError, match="after the frames were summed"):
        correct_dead_time(sum_frames(acq))
    with pytest.raises(ValueError, match="sub-pixel shifts"):
        correct_dead_time(align_frames(acq, method="subpixel"))
    whole = align_frames(acq)
    corrected = correct_dead_time(whole)  # exact: every pixel keeps a recorded count
    assert corrected.history[-1].name == "correct_dead_time"
    with pytest.raises(ValueError, match="before the detector corrections"):
        clean_hot_pixels(correct_dead_time(acq))


def _dead_counter(rate_cps, dwell_s, tau_s, runs, rng):
    """Counts a non-paralysable counter records: pulses within tau of a counted one are lost."""
    expected = rate_cps * dwell_s
    n_max = int(expected + 10 * np.sqrt(expected) + 20)
    times = np.cumsum(rng.exponential(1 / rate_cps, size=(runs, n_max)), axis=1)
    last = np.full(runs, -np.inf)
    recorded = np.zeros(runs, dtype=np.int64)
    for k in range(n_max):
        t = times[:, k]
        counted = (t < dwell_s) & (t - last >= tau_s)
        recorded += counted
        last = np.where(counted, t, last)
    return recorded


def test_monte_carlo_dead_counter_correction_is_unbiased_and_keeps_relative_error():
    rng = np.random.default_rng(7)
    rate, dwell, tau, runs = 1e6, 1e-3, 44e-9, 20_000
    n = _dead_counter(rate, dwell, tau, runs, rng)
    acq = Acquisition.from_arrays(n.reshape(runs, 1, 1, 1).astype(np.uint32), ["12C"],
                                  dwell_time_us=dwell * 1e6, dead_times_ns=[44] * 7)
    c = correct_dead_time(acq).counts[:, 0, 0, 0]
    truth = rate * dwell
    assert n.mean() < truth * 0.97  # the counter really lost pulses
    standard_error = c.std() / np.sqrt(runs)
    assert abs(c.mean() - truth) < 4 * standard_error
    # the relative error of c equals that of n's Poisson expectation, 1/sqrt(n)
    relative = c.std() / c.mean()
    assert relative == pytest.approx(1 / np.sqrt(n.mean()), rel=0.03)


def _shifted(translations, n_frames=6, size=24, level=5.0, seed=3):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(level, size=(n_frames, 2, size, size)).astype(np.float64)
    acq = Acquisition.from_arrays(counts, ["12C", "SE"])
    from napari_nanosims import apply_translations

    shifted = apply_translations(counts, np.asarray(translations), padding=4)[:, :, 4:-4, 4:-4]
    ones = np.ones((n_frames, 1, size, size))
    coverage = apply_translations(ones, np.asarray(translations), padding=4)[:, 0, 4:-4, 4:-4]
    return acq, counts, acq.replace(counts=shifted, coverage=coverage,
                                    translations=np.asarray(translations))


def test_accumulation_with_integer_shifts():
    translations = np.array([[0, 0], [1, 0], [0, -2], [2, 1], [-1, 0], [0, 3]])
    acq, counts, shifted = _shifted(translations)
    total = accumulate(shifted)
    expected_coverage = np.zeros((24, 24))
    for dy, dx in translations:
        mask = np.zeros((24, 24))
        mask[max(dy, 0):24 + min(dy, 0), max(dx, 0):24 + min(dx, 0)] = 1
        expected_coverage += mask
    np.testing.assert_array_equal(total.coverage, expected_coverage)
    inside = total.coverage > 0
    # totals conserved: every recorded count that stayed in the field is summed once
    np.testing.assert_allclose(np.nansum(total.counts[0][inside]),
                               shifted.counts[:, 0].sum())
    assert total.counts.dtype == np.float64 and total.frames == tuple(range(6))
    np.testing.assert_array_equal(total.variance[0][inside], total.counts[0][inside])
    assert np.all(np.isnan(total.mean_per_frame()[:, ~inside]))
    partial = accumulate(shifted, frames=[0, 2])
    assert partial.frames == (0, 2)
    np.testing.assert_allclose(partial.counts[0], shifted.counts[[0, 2], 0].sum(axis=0))


def test_accumulated_edge_means_are_unbiased():
    level = 5.0
    translations = np.array([[k % 3, -(k % 4)] for k in range(40)])
    means = []
    for seed in range(5):
        _, _, shifted = _shifted(translations, n_frames=40, level=level, seed=seed)
        means.append(accumulate(shifted).mean_per_frame()[0])
    mean = np.nanmean(np.stack(means), axis=0)
    edge = np.zeros((24, 24), bool)
    edge[:3] = edge[:, -4:] = True
    # the edge pixels, covered by fewer frames, average the true level (zeros would pull
    # them down by up to 75 %)
    assert np.nanmean(mean[edge]) == pytest.approx(level, rel=0.03)


def test_accumulation_with_subpixel_alignment_has_fractional_coverage():
    from scipy import ndimage

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:48, 0:48]
    scene = 5 + 200 * np.exp(-((yy - 20) ** 2 + (xx - 26) ** 2) / 40.0)
    drift = [(0.0, 0.0), (0.4, -0.3), (0.9, -0.7), (1.3, -1.2), (1.7, -1.4)]
    frames = [rng.poisson(ndimage.shift(scene, d, order=1)) for d in drift]
    counts = np.stack([np.stack([f, f]) for f in frames]).astype(np.uint32)
    aligned = align_frames(Acquisition.from_arrays(counts, ["12C", "SE"]), method="subpixel")
    total = accumulate(aligned)
    assert total.coverage.max() == pytest.approx(5.0, abs=1e-5)  # the middle: every frame
    edge = total.coverage[total.coverage < 4.999]
    assert np.any(np.abs(edge - np.round(edge)) > 0.05)  # fractions at the shifted edges
    assert np.nansum(total.counts[0]) == pytest.approx(aligned.counts[:, 0].sum(), rel=1e-9)


def test_recipe_and_cli_with_corrections_write_variance_and_coverage(written, tmp_path, capsys):
    acq, n = written(dwell_us=100)
    out = tmp_path / "o"
    assert main(["process", acq.path, "--out", str(out), "--qsa-beta", "0.6",
                 "--primary-current", "2", "--max-repeat-fraction", "1.5"]) == 0
    record = json.loads((out / "c0_processing.json").read_text())
    assert [s["step"] for s in record["steps"]] == ["remove_hot_pixels", "correct_dead_time",
                                                    "correct_qsa", "align_frames",
                                                    "exclude_frames", "sum_frames"]
    with tifffile.TiffFile(out / "c0_variance.ome.tif") as tif:
        variance = tif.asarray()
        assert "var(12C 14N)" in tif.ome_metadata and "coverage" in tif.ome_metadata
    sums = tifffile.imread(out / "c0_sums.ome.tif")
    assert sums.dtype == np.float32 and variance.shape == (5, 12, 10)
    assert np.all(variance[-1] <= 4) and variance[-1].max() == 4  # coverage: 4 frames
    assert main(["process", acq.path, "--out", str(tmp_path / "p"), "--qsa-beta", "0.6"]) == 2
    assert "needs both --qsa-beta and --primary-current" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        replay = tmp_path / "replay"
        assert main(["process", acq.path, "--recipe", str(out / "c0_processing.json"),
                     "--out", str(replay)]) == 0
    assert tifffile.imread(replay / "c0_sums.ome.tif").tobytes() == sums.tobytes()
