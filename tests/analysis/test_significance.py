"""significance(): exact binomial tails on raw counts, calibration at NanoSIMS counts,
Benjamini-Hochberg control of the false discovery rate, null ratio from controls."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, stats

from napari_nanosims import STANDARDS, Acquisition, correct_dead_time, significance
from napari_nanosims.analysis.significance import SignificanceImage, benjamini_hochberg

VPDB = STANDARDS["VPDB 13C/12C"]
ALPHA = 0.00135  # one-sided tail of a normal beyond z = 3


def _acquisition(major, minor, se=None):
    """One-frame acquisition of 12C (major), 13C (minor) and SE from (H, W) counts."""
    planes = [major, minor, np.full_like(major, 5) if se is None else se]
    return Acquisition.from_arrays(np.stack(planes)[None].astype(np.uint32),
                                   ["12C", "13C", "SE"])


def _homogeneous(minor_mean, ratio, shape, rng):
    """Poisson counts of a sample without enrichment: minor/major = ratio on average."""
    return rng.poisson(minor_mean / ratio, shape), rng.poisson(minor_mean, shape)


# -- the p-value formulas ------------------------------------------------------------
MAJOR = np.array([[90, 100, 40, 0], [250, 3, 88, 1000]])
MINOR = np.array([[0, 4, 2, 0], [9, 1, 1, 30]])


def test_p_values_are_binomial_tails_of_the_raw_counts():
    acq = _acquisition(MAJOR, MINOR)
    k, n = MINOR.astype(float), (MINOR + MAJOR).astype(float)
    p0 = VPDB / (1 + VPDB)
    counted = n > 0
    with np.errstate(invalid="ignore"):
        greater = np.where(counted, stats.binom.sf(k - 1, n, p0), np.nan)   # P(X >= k)
        less = np.where(counted, stats.binom.cdf(k, n, p0), np.nan)         # P(X <= k)
        mid = np.where(counted, stats.binom.sf(k, n, p0) + 0.5 * stats.binom.pmf(k, n, p0),
                       np.nan)
    exact = significance(acq, "13C", "12C", VPDB, method="exact")
    assert isinstance(exact, SignificanceImage)
    np.testing.assert_allclose(exact.p_value, greater, rtol=1e-10)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(exact.value, stats.norm.isf(greater), rtol=1e-10)
    assert np.isnan(exact.p_value[0, 3]) and np.isnan(exact.value[0, 3])  # n = 0
    assert np.isnan(exact.q_value[0, 3]) and not exact.discoveries[0, 3]
    assert exact.n_tested == 7
    low = significance(acq, "13C", "12C", VPDB, method="exact", alternative="less")
    np.testing.assert_allclose(low.p_value, less, rtol=1e-10)
    np.testing.assert_allclose(low.value, -stats.norm.isf(less), rtol=1e-10)
    both = significance(acq, "13C", "12C", VPDB, method="exact", alternative="two-sided")
    np.testing.assert_allclose(both.p_value, np.minimum(1, 2 * np.minimum(greater, less)),
                               rtol=1e-10)
    np.testing.assert_allclose(significance(acq, "13C", "12C", VPDB, method="mid-p").p_value,
                               mid, rtol=1e-10)
    # randomized: the tie at k gets a uniform share, so P(X > k) <= p <= P(X >= k);
    # the same seed gives the same map
    randomized = significance(acq, "13C", "12C", VPDB)
    assert randomized.method == "randomized"
    above = stats.binom.sf(k, n, p0)
    assert np.all((randomized.p_value[counted] >= above[counted] - 1e-15)
                  & (randomized.p_value[counted] <= greater[counted] + 1e-15))
    np.testing.assert_array_equal(randomized.p_value,
                                  significance(acq, "13C", "12C", VPDB).p_value)
    assert not np.array_equal(randomized.p_value[counted], significance(
        acq, "13C", "12C", VPDB, seed=1).p_value[counted])
    # the raw and major counts travel with the result; the record says what was done
    np.testing.assert_array_equal(randomized.numerator, MINOR)
    np.testing.assert_array_equal(randomized.denominator, MAJOR)
    record = randomized.history[-1]
    assert record.name == "significance" and record.parameters["null_source"] == "given"
    assert record.parameters["method"] == "randomized" and record.parameters["fdr"] == 0.05
    unchecked = significance(acq, "13C", "12C", VPDB, fdr=None)
    assert unchecked.q_value is None and unchecked.discoveries is None


def test_corrected_counts_are_not_tested_and_kernels_sum_raw_counts():
    rng = np.random.default_rng(2)
    major, minor = _homogeneous(20.0, VPDB, (30, 40), rng)
    acq = _acquisition(major, minor)
    raw = significance(acq, "13C", "12C", VPDB, method="exact")
    # a dead time of 20 ns at 1 ms dwell raises 12C (1800 counts) by ~4 %: corrected
    # counts would read as a depletion of 13C; the raw counts the acquisition carries
    # are tested
    corrected = correct_dead_time(acq, dead_times_ns=20.0)
    assert np.nanmean(corrected.counts[0, 0] / major) > 1.03
    np.testing.assert_array_equal(
        significance(corrected, "13C", "12C", VPDB, method="exact").p_value, raw.p_value)
    box = np.ones((3, 3))
    k = ndimage.convolve(minor.astype(float), box, mode="constant")
    n = k + ndimage.convolve(major.astype(float), box, mode="constant")
    smoothed = significance(acq, "13C", "12C", VPDB, kernel=3, method="exact")
    np.testing.assert_allclose(smoothed.p_value, stats.binom.sf(k - 1, n, VPDB / (1 + VPDB)),
                               rtol=1e-10)


# -- calibration ---------------------------------------------------------------------
@pytest.mark.parametrize("minor_mean", [0.5, 1, 2, 5, 10, 100])
def test_rate_of_p_below_0_00135_is_nominal_at_nanosims_counts(minor_mean):
    """Homogeneous 13C/12C at VPDB: the fraction of pixels with p < 0.00135 (z > 3)
    lies within 1.5x of 0.00135 either way (the default randomized p-value); the exact
    tail never exceeds it (it is conservative: whole counts)."""
    rng = np.random.default_rng(int(minor_mean * 10))
    major, minor = _homogeneous(minor_mean, VPDB, (384, 384), rng)
    acq = _acquisition(major, minor)
    result = significance(acq, "13C", "12C", VPDB)  # the defaults
    z_rate = np.mean(result.value > stats.norm.isf(ALPHA)) / ALPHA
    assert 1 / 1.5 <= z_rate <= 1.5, f"z > 3 in {z_rate:.2f}x the nominal rate"
    rate = np.mean(result.p_value < ALPHA) / ALPHA
    assert 1 / 1.5 <= rate <= 1.5, f"p < {ALPHA} in {rate:.2f}x the nominal rate"
    exact = significance(acq, "13C", "12C", VPDB, method="exact", fdr=None)
    assert np.mean(exact.p_value < ALPHA) / ALPHA <= 1.5


@pytest.mark.parametrize("alternative", ["less", "two-sided"])
def test_depletion_and_two_sided_tests_are_calibrated(alternative):
    rng = np.random.default_rng(9)
    major, minor = _homogeneous(2.0, STANDARDS["AIR 15N/14N"], (384, 384), rng)
    result = significance(_acquisition(major, minor), "13C", "12C",
                          STANDARDS["AIR 15N/14N"], alternative=alternative, fdr=None)
    rate = np.mean(result.p_value < ALPHA) / ALPHA
    assert 1 / 1.5 <= rate <= 1.5


# -- false discovery rate ------------------------------------------------------------
def test_benjamini_hochberg_q_values():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 4p/i = 0.02, 0.02, 0.04, 0.04, then the
    # running minimum from the largest p down
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02, np.nan])
    np.testing.assert_allclose(benjamini_hochberg(np.array([0.5, 0.9])), [0.9, 0.9])
    assert benjamini_hochberg(np.array([0.9, 0.99]))[1] <= 1
    rng = np.random.default_rng(4)
    sample = np.concatenate([rng.random(900), rng.random(100) * 1e-3])
    q = benjamini_hochberg(sample)
    for alpha in (0.01, 0.05, 0.2):
        # the step-up rule: reject every p <= p_(i*), i* the largest i with
        # p_(i) <= i alpha / m
        ordered = np.sort(sample)
        below = np.nonzero(ordered <= np.arange(1, sample.size + 1) * alpha / sample.size)[0]
        cut = ordered[below[-1]] if below.size else -1.0
        np.testing.assert_array_equal(q <= alpha, sample <= cut)
    if hasattr(stats, "false_discovery_control"):
        np.testing.assert_allclose(q, stats.false_discovery_control(sample), rtol=1e-12)


def test_fdr_0_05_keeps_false_discoveries_under_5_percent():
    """20 % of pixels enriched 3x at 2 expected 13C counts per pixel: averaged over 30
    images, false discoveries are at most 5 % of the discoveries (BH: 0.05 x 80 %)."""
    rng = np.random.default_rng(12)
    shape = (128, 128)
    proportions, found = [], []
    for _ in range(30):
        enriched = rng.random(shape) < 0.2
        major = rng.poisson(2.0 / VPDB, shape)
        minor = rng.poisson(np.where(enriched, 6.0, 2.0))
        result = significance(_acquisition(major, minor), "13C", "12C", VPDB, fdr=0.05,
                              seed=int(rng.integers(1 << 30)))
        discoveries = result.discoveries
        assert discoveries.dtype == bool
        np.testing.assert_array_equal(discoveries, result.q_value <= 0.05)
        false = np.count_nonzero(discoveries & ~enriched)
        proportions.append(false / max(np.count_nonzero(discoveries), 1))
        found.append(np.count_nonzero(discoveries & enriched) / np.count_nonzero(enriched))
    assert np.mean(proportions) <= 0.05
    assert np.mean(found) > 0.2  # and it finds enriched pixels


# -- the null ratio from unlabelled controls -----------------------------------------
def test_null_ratio_from_control_pixels_or_rois_cancels_fractionation():
    """Instrumental fractionation (-5 %) makes an unlabelled cell look depleted against
    the textbook ratio; measured on control pixels, the null ratio cancels it."""
    rng = np.random.default_rng(21)
    shape = (64, 64)
    measured = VPDB * 0.95
    major, minor = _homogeneous(2000.0, measured, shape, rng)
    acq = _acquisition(major, minor)
    rois = np.zeros(shape, np.int32)
    rois[:, :20], rois[:, 20:40], rois[:, 40:] = 1, 2, 3
    against_standard = significance(acq, "13C", "12C", VPDB, alternative="two-sided")
    assert np.mean(against_standard.value[rois == 3]) < -1.5
    control = rois <= 2
    by_mask = significance(acq, "13C", "12C", control=control, alternative="two-sided")
    expected = minor[control].sum() / major[control].sum()
    assert by_mask.null_ratio == pytest.approx(expected, rel=1e-12)
    assert by_mask.null_ratio_sigma == pytest.approx(
        expected * np.sqrt(1 / minor[control].sum() + 1 / major[control].sum()), rel=1e-12)
    assert abs(np.mean(by_mask.value[rois == 3])) < 0.15
    by_rois = significance(acq, "13C", "12C", labels=rois, control_labels=[1, 2],
                           alternative="two-sided")
    np.testing.assert_array_equal(by_rois.p_value, by_mask.p_value)
    assert "control ROIs 1, 2" in by_rois.null_source
    assert by_rois.history[-1].parameters["null_ratio"] == pytest.approx(expected, rel=1e-12)


# -- bad input -----------------------------------------------------------------------
ARGUMENTS = dict(natural_ratio=None, control=None, labels=None, control_labels=None)


@pytest.mark.parametrize("changes, message", [
    ({"natural_ratio": [1]}, "natural_ratio must be a number above 0"),
    ({"natural_ratio": 0}, "natural_ratio"),
    ({"natural_ratio": -0.01}, "natural_ratio"),
    ({"natural_ratio": float("nan")}, "natural_ratio"),
    ({"natural_ratio": "0.011"}, "natural_ratio"),
    ({"natural_ratio": True}, "natural_ratio"),
    ({}, "exactly one null ratio"),
    ({"natural_ratio": 0.01, "control": np.ones((4, 5), bool)}, "exactly one null ratio"),
    ({"control": np.ones((4, 4), bool)}, "control must have the image's shape"),
    ({"control": np.ones((4, 5), int)}, "control must be a boolean mask"),
    ({"control": np.zeros((4, 5), bool)}, "control .* needs counts"),
    ({"labels": np.ones((4, 5), int)}, "control_labels"),
    ({"labels": np.ones((4, 5), int), "control_labels": [9]}, "control_labels \\[9\\]"),
    ({"labels": np.ones((4, 5), int), "control_labels": [0]}, "control_labels"),
    ({"labels": np.ones((4, 5)), "control_labels": [1]}, "labels must be whole"),
    ({"natural_ratio": 0.01, "fdr": 0}, "fdr"),
    ({"natural_ratio": 0.01, "fdr": 1.0}, "fdr"),
    ({"natural_ratio": 0.01, "fdr": "5%"}, "fdr"),
    ({"natural_ratio": 0.01, "alternative": "bigger"}, "alternative"),
    ({"natural_ratio": 0.01, "method": "normal"}, "method"),
    ({"natural_ratio": 0.01, "kernel": 2}, "kernel"),
    ({"natural_ratio": 0.01, "seed": -1}, "seed"),
    ({"natural_ratio": 0.01, "seed": 1.5}, "seed"),
])
def test_bad_arguments_are_value_errors_naming_them(changes, message):
    rng = np.random.default_rng(0)
    acq = _acquisition(rng.poisson(100, (4, 5)), rng.poisson(1, (4, 5)))
    with pytest.raises(ValueError, match=message):
        significance(acq, "13C", "12C", **{**ARGUMENTS, **changes})


def test_labels_must_be_two_ion_masses():
    rng = np.random.default_rng(0)
    acq = _acquisition(rng.poisson(100, (4, 5)), rng.poisson(1, (4, 5)))
    with pytest.raises(ValueError, match="two mass labels"):
        significance(acq, "13C/12C", "12C", 0.01)
    with pytest.raises(ValueError, match="secondary-electron"):
        significance(acq, "13C", "SE", 0.01)
    with pytest.raises(ValueError, match="same mass"):
        significance(acq, "13C", "13C", 0.01)


def test_interpolated_raw_counts_are_rounded_with_a_warning():
    rng = np.random.default_rng(0)
    acq = _acquisition(rng.poisson(100, (4, 5)), rng.poisson(1, (4, 5)))
    shifted = acq.with_step("shifted", {}, raw_counts=np.asarray(acq.counts) + 0.25)
    with pytest.warns(UserWarning, match="not whole numbers"):
        result = significance(shifted, "13C", "12C", 0.01, method="exact")
    np.testing.assert_array_equal(result.p_value,
                                  significance(acq, "13C", "12C", 0.01, method="exact").p_value)
