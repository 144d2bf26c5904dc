"""Spot ratios: formulas written out, statistical claims by seeded simulation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import norm

from napari_nanosims import IsotopeMeasurement, correct_isotope, spot_ratio, spot_table
from napari_nanosims.model.header import synthetic_header


def _measurement(n, d, per_block=None, tc=1.0, dead_time_ns=44):
    """A two-mass measurement from ion counts (cycles,) n and d, no file involved."""
    cycles = len(n)
    header = synthetic_header("sim.is", (cycles, 2, 1, 1), ["34S", "32S"], [34.0, 32.0],
                              None, [1, 2], ["EM1", "EM2"], 1.0, 1.0, [dead_time_ns] * 7)
    counts = np.stack([n, d], axis=1).astype(np.float64)
    times = np.cumsum(np.full((cycles, 2), tc), axis=0)
    return IsotopeMeasurement(
        path="sim.is", header=header, labels=("34S", "32S"), masses_amu=(34.0, 32.0),
        detectors=("EM1", "EM2"), counts=counts, counting_time_s=np.full((cycles, 2), tc),
        times_s=times, stored_cps=counts / tc, fc_background=(None, None),
        n_blocks=cycles // (per_block or cycles), cycles_per_block=per_block or cycles,
        rejection_sigma=2.0)


def test_ratio_and_errors_are_the_written_out_formulas():
    n = np.array([400.0, 420, 390, 410])
    d = np.array([9000.0, 9100, 8900, 9050])
    result = spot_ratio(_measurement(n, d), "34S / 32S")
    big_r = n.sum() / d.sum()
    assert result.ratio == pytest.approx(big_r)
    assert result.poisson_se == pytest.approx(big_r * np.sqrt(1 / n.sum() + 1 / d.sum()))
    r = n / d
    assert result.cycle_se == pytest.approx(np.std(r, ddof=1) / 2)
    s = r * np.sqrt(1 / n + 1 / d)
    chi2 = np.sum(((r - big_r) / s) ** 2)
    assert result.chi2 == pytest.approx(chi2)
    assert result.mswd == pytest.approx(chi2 / 3)


def test_dead_time_is_the_image_formula_per_cycle():
    n = np.array([1e5, 2e5])
    corrected = correct_isotope(_measurement(n, n, tc=0.5), dead_time=True)
    expected = n / (1 - n * 44e-9 / 0.5)
    np.testing.assert_allclose(corrected.counts[:, 0], expected)


def test_mswd_of_poisson_cycles_is_about_one():
    rng = np.random.default_rng(7)
    mswds = []
    for _ in range(400):
        n = rng.poisson(2000, 50)
        d = rng.poisson(40000, 50)
        mswds.append(spot_ratio(_measurement(n, d), "34S/32S").mswd)
    # MSWD of 49 degrees of freedom has a standard deviation sqrt(2/49) = 0.2 per run;
    # the mean of 400 runs is 1 within 0.01 (1 sigma).
    assert np.mean(mswds) == pytest.approx(1.0, abs=0.03)
    overdispersed = _measurement(rng.poisson(2000 * rng.uniform(0.9, 1.1, 50)),
                                 rng.poisson(40000, 50))
    assert spot_ratio(overdispersed, "34S/32S").mswd > 5


def test_outlier_rule_false_positive_rates():
    rng = np.random.default_rng(11)
    runs, cycles = 1000, 40
    any_flagged, flagged_2sigma = 0, 0
    for _ in range(runs):
        m = _measurement(rng.poisson(5000, cycles), rng.poisson(50000, cycles))
        any_flagged += spot_ratio(m, "34S/32S").outliers.any()
        flagged_2sigma += spot_ratio(m, "34S/32S", outlier_sigma=2).outliers.sum()
    # Default (Bonferroni, alpha 0.05): any cycle flagged in about 5 % of pure-noise runs
    # (binomial sigma for 1000 runs: 0.7 %).
    assert any_flagged / runs == pytest.approx(0.05, abs=0.025)
    # A fixed 2-sigma rule flags each cycle with probability 2 (1 - Phi(2)) = 4.55 %.
    assert flagged_2sigma / (runs * cycles) == pytest.approx(2 * norm.sf(2), abs=0.005)


def test_an_outlier_cycle_is_flagged_and_can_be_excluded():
    rng = np.random.default_rng(3)
    n, d = rng.poisson(5000, 30).astype(float), rng.poisson(50000, 30).astype(float)
    n[12] *= 1.2
    m = _measurement(n, d)
    result = spot_ratio(m, "34S/32S")
    assert np.flatnonzero(result.outliers).tolist() == [12]
    kept = spot_ratio(m, "34S/32S", exclude_outliers=True)
    keep = np.arange(30) != 12
    assert kept.ratio == pytest.approx(n[keep].sum() / d[keep].sum())


def test_table_has_blocks_and_delta_against_a_standard():
    rng = np.random.default_rng(5)
    n, d = rng.poisson(4000, 20), rng.poisson(90000, 20)
    m = _measurement(n, d, per_block=5)
    table = spot_table([m], "34S/32S", standard=0.045, corrections={"dead_time": False})
    assert list(table["block"]) == ["all", "0", "1", "2", "3"]
    whole = table.iloc[0]
    ratio = n.sum() / d.sum()
    assert whole["delta_permil"] == pytest.approx((ratio / 0.045 - 1) * 1000)
    assert table.iloc[2]["ratio"] == pytest.approx(n[5:10].sum() / d[5:10].sum())
    standard = dataclasses.replace(m)  # a measured standard: its own ratio is delta 0
    again = spot_table([m], "34S/32S", standard=standard, blocks=False,
                       corrections={"dead_time": False})
    assert again.iloc[0]["delta_permil"] == pytest.approx(0.0, abs=1e-9)


def test_bad_expression_names_the_masses():
    m = _measurement(np.ones(3) * 100, np.ones(3) * 100)
    with pytest.raises(ValueError, match="34S, 32S"):
        spot_ratio(m, "34S*32S")
    with pytest.raises(KeyError, match="33S"):
        spot_ratio(m, "33S/32S")
