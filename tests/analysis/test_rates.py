"""Assimilation and detection limits: formulas against hand computations, and seeded
simulations for the statistical claims (x_net and k come back within their sigmas in
95 % of cells; an excess at the detection limit is detected with the stated power)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from napari_nanosims import Acquisition, assimilation, detection_limit, roi_table

FRACTION = "15N/(14N+15N)"


def _z(p):
    return NormalDist().inv_cdf(p)


def test_detection_limit_formula():
    # (z_0.95 + z_0.8) sqrt(F (1 - F) / N)
    expected = (_z(0.95) + _z(0.8)) * math.sqrt(0.2 * 0.8 / 1e4)
    assert detection_limit(1e4, 0.2) == pytest.approx(expected, rel=1e-12)
    expected = (_z(0.99) + _z(0.9)) * math.sqrt(0.0036630 * (1 - 0.0036630) / 5e5)
    assert detection_limit(5e5, 0.0036630, alpha=0.01, power=0.9) == pytest.approx(
        expected, rel=1e-12)
    many = detection_limit([100, 400], [0.5, 0.5])
    assert many[0] == pytest.approx(2 * many[1], rel=1e-12)  # 1/sqrt(N)
    for bad in (dict(total_counts=0, fraction=0.1), dict(total_counts=10, fraction=1.5),
                dict(total_counts=10, fraction=0.1, alpha=0.0),
                dict(total_counts=10, fraction=0.1, power=1.0)):
        with pytest.raises(ValueError):
            detection_limit(**bad)


@pytest.mark.parametrize("fraction, counts", [(0.2, 1e4), (0.0036630, 2e6)])
def test_an_excess_at_the_detection_limit_is_detected_with_the_stated_power(fraction,
                                                                            counts):
    """20 000 ROIs whose true fraction is the detection limit above F: a one-sided test
    at alpha = 0.05 against F detects 80 % of them (binomial tolerance, 3.3 SD)."""
    rng = np.random.default_rng(7)
    excess = detection_limit(counts, fraction)
    n = 20000
    minor = rng.binomial(int(counts), fraction + excess, n)
    z = (minor / counts - fraction) / math.sqrt(fraction * (1 - fraction) / counts)
    detected = float(np.mean(z > _z(0.95)))
    tolerance = 3.3 * math.sqrt(0.8 * 0.2 / n)
    print(f"F = {fraction}, N = {counts:g}: detected {detected:.4f} (power 0.8)")
    assert abs(detected - 0.8) < tolerance


def test_roi_table_detection_limit_column():
    minor = np.zeros((1, 8, 8))
    major = np.zeros((1, 8, 8))
    labels = np.zeros((8, 8), np.int32)
    labels[:4], labels[4:] = 1, 2
    minor[0, :4], major[0, :4] = 2.0, 500.0   # ROI 1: A = 64, B = 16 000
    minor[0, 4:], major[0, 4:] = 30.0, 70.0   # ROI 2: A = 960, B = 2240
    acq = Acquisition.from_arrays(np.stack([minor, major], axis=1), ["15N", "14N"])
    table = roi_table(acq, labels, ["15N/14N", FRACTION, "100*15N/(14N+15N)", "15N+14N"])
    z = _z(0.95) + _z(0.8)
    for roi, (a, b) in {1: (64, 16000), 2: (960, 2240)}.items():
        n, f = a + b, a / (a + b)
        d_fraction = z * math.sqrt(f * (1 - f) / n)
        rows = table[table["roi"] == roi].set_index("quantity")
        assert rows.loc["15N/(14N+15N)", "detection_limit"] == pytest.approx(d_fraction,
                                                                             rel=1e-9)
        assert rows.loc["100*15N/(14N+15N)", "detection_limit"] == pytest.approx(
            100 * d_fraction, rel=1e-9)
        # R = F / (1 - F): dR/dF = 1 / (1 - F)**2
        assert rows.loc["15N/14N", "detection_limit"] == pytest.approx(
            d_fraction / (1 - f) ** 2, rel=1e-9)
        assert np.isnan(rows.loc["15N+14N", "detection_limit"])
        assert np.isnan(rows.loc["15N", "detection_limit"])


def _fraction_table(x, sigma):
    rois = np.arange(1, len(x) + 1)
    return pd.DataFrame({"roi": rois, "class": "cells", "quantity": FRACTION,
                         "value": x, "sigma": sigma, "area_um2": 2.0 * rois})


def test_assimilation_formulas_by_hand():
    x_i, x_s, hours, d = 0.0036630, 0.5, 24.0, 0.2
    x = np.array([0.0036630, 0.02, 0.1, 0.3])
    sigma = np.array([0.0002, 0.0005, 0.001, 0.002])
    out = assimilation(_fraction_table(x, sigma), FRACTION, natural=x_i, substrate=x_s,
                       hours=hours, content="area_um2", dilution=d)
    rows = {q: out[out["quantity"] == f"{FRACTION} {q}"].set_index("roi")
            for q in ("x_E", "x_net", "k", "assimilation rate")}
    for k in range(4):
        roi = k + 1
        xt = x_i + (x[k] - x_i) / (1 - d)           # label lost in preparation
        st = sigma[k] / (1 - d)
        x_e = (xt - x_i) / (x_s - x_i)
        x_net = (xt - x_i) / (x_s - xt)
        s_net = st * (x_s - x_i) / (x_s - xt) ** 2
        growth = math.log(1 + x_net) / hours
        content = 2.0 * roi
        assert rows["x_E"].loc[roi, "value"] == pytest.approx(x_e, rel=1e-12, abs=1e-15)
        assert rows["x_E"].loc[roi, "sigma"] == pytest.approx(st / (x_s - x_i), rel=1e-12)
        assert rows["x_net"].loc[roi, "value"] == pytest.approx(x_net, rel=1e-12, abs=1e-15)
        assert rows["x_net"].loc[roi, "sigma"] == pytest.approx(s_net, rel=1e-12)
        assert rows["k"].loc[roi, "value"] == pytest.approx(growth, rel=1e-12, abs=1e-15)
        assert rows["k"].loc[roi, "sigma"] == pytest.approx(
            s_net / ((1 + x_net) * hours), rel=1e-12)
        assert rows["assimilation rate"].loc[roi, "value"] == pytest.approx(
            x_e * content / hours, rel=1e-12, abs=1e-15)
        assert rows["assimilation rate"].loc[roi, "sigma"] == pytest.approx(
            st / (x_s - x_i) * content / hours, rel=1e-12)
    # at or beyond the substrate's fraction there is no net assimilation
    beyond = assimilation(_fraction_table(np.array([0.6]), np.array([0.01])), FRACTION,
                          natural=x_i, substrate=x_s)
    assert np.isnan(beyond[beyond["quantity"] == f"{FRACTION} x_net"]["value"]).all()


def test_assimilation_refuses_bad_arguments():
    table = _fraction_table(np.array([0.1]), np.array([0.01]))
    for bad in (dict(natural=0.1, substrate=0.1), dict(natural=-1, substrate=0.5),
                dict(natural=0.0037, substrate=0.5, dilution=1.0),
                dict(natural=0.0037, substrate=0.5, hours=0),
                dict(natural=0.0037, substrate=0.5, content=1e-15)):
        with pytest.raises(ValueError):
            assimilation(table, FRACTION, **bad)


@pytest.mark.slow
def test_known_assimilation_comes_back_within_its_sigmas():
    """2000 cells (4 x 4 px, one frame) with known x_net between 0.02 and 1, label diluted
    by 20 % in preparation, Poisson counts: the ROI table and assimilation give back
    x_net and k within 1.96 sigma in 95 % of cells (binomial tolerance, 3.3 SD)."""
    rng = np.random.default_rng(2021)
    x_i, x_s, hours, d = 0.0036630, 0.98, 24.0, 0.2
    n_cells, side = 2000, 4
    x_net = rng.uniform(0.02, 1.0, n_cells)
    x_true = (x_i + x_net * x_s) / (1 + x_net)             # from x_net = (x-x_i)/(x_S-x)
    x_measured = x_i + (x_true - x_i) * (1 - d)            # what the sample keeps
    grid = (40, 50)
    labels = np.arange(1, n_cells + 1).reshape(grid)
    labels = np.kron(labels, np.ones((side, side), np.int32)).astype(np.int32)
    per_pixel = 400.0
    fraction = x_measured[labels - 1]
    minor = rng.poisson(per_pixel * fraction).astype(float)
    major = rng.poisson(per_pixel * (1 - fraction)).astype(float)
    acq = Acquisition.from_arrays(np.stack([minor, major])[None], ["15N", "14N"])
    table = roi_table(acq, labels, [FRACTION])
    out = assimilation(table, FRACTION, natural=x_i, substrate=x_s, hours=hours,
                       dilution=d)
    n_rows = out[out["quantity"] == f"{FRACTION} x_net"].set_index("roi").loc[
        np.arange(1, n_cells + 1)]
    k_rows = out[out["quantity"] == f"{FRACTION} k"].set_index("roi").loc[
        np.arange(1, n_cells + 1)]
    covered_net = np.mean(np.abs(n_rows["value"] - x_net) <= 1.96 * n_rows["sigma"])
    k_true = np.log1p(x_net) / hours
    covered_k = np.mean(np.abs(k_rows["value"] - k_true) <= 1.96 * k_rows["sigma"])
    tolerance = 3.3 * math.sqrt(0.95 * 0.05 / n_cells)
    print(f"coverage of 1.96 sigma: x_net {covered_net:.4f}, k {covered_k:.4f} "
          f"(nominal 0.95 +- {tolerance:.4f})")
    assert abs(covered_net - 0.95) < tolerance
    assert abs(covered_k - 0.95) < tolerance
