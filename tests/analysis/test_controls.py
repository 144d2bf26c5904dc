"""Controls and standards: excess over pooled controls, the enrichment rule, IMF
calibration and delta. Every expected number is written out here from the counts; the
statistical claim (unlabelled cells are called enriched in at most the nominal 0.135 %)
is checked by seeded simulation."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from napari_nanosims import calibrate, normalise

RATIO = "15N/14N"


def _table(minor, major, classes, minor_label="15N", major_label="14N", variance=None):
    """A ROI table as roi_table writes it: channel rows (counts, sqrt of the variance)
    and the ratio of sums with its first-order error, one class per ROI."""
    minor, major = np.asarray(minor, float), np.asarray(major, float)
    v_minor, v_major = (minor, major) if variance is None else variance
    rois = np.arange(1, len(minor) + 1)
    ratio = minor / major
    sigma = ratio * np.sqrt(v_minor / minor ** 2 + v_major / major ** 2)
    rows = []
    for quantity, value, error in ((minor_label, minor, np.sqrt(v_minor)),
                                   (major_label, major, np.sqrt(v_major)),
                                   (f"{minor_label}/{major_label}", ratio, sigma)):
        rows.append(pd.DataFrame({"roi": rois, "class": classes, "quantity": quantity,
                                  "value": value, "sigma": error, "p_value": np.nan}))
    return pd.concat(rows, ignore_index=True)


def _rows(table, quantity):
    return table[table["quantity"] == quantity].set_index("roi")


def test_normalise_against_pooled_controls_by_hand():
    minor = [40, 44, 36, 41, 80, 39]
    major = [10000, 11000, 9500, 10200, 10000, 9900]
    classes = ["control"] * 4 + ["cells", "cells"]
    table = _table(minor, major, classes)
    out = normalise(table, RATIO)
    # control value: the ratio of the controls' summed counts
    pooled = (40 + 44 + 36 + 41) / (10000 + 11000 + 9500 + 10200)
    control_ratios = [40 / 10000, 44 / 11000, 36 / 9500, 41 / 10200]
    mean = sum(control_ratios) / 4
    sd = math.sqrt(sum((r - mean) ** 2 for r in control_ratios) / 3)
    se = sd / 2
    excess = _rows(out, f"{RATIO} excess")
    enriched = _rows(out, f"{RATIO} enriched")
    for roi in range(1, 7):
        a, b = minor[roi - 1], major[roi - 1]
        ratio = a / b
        sigma = ratio * math.sqrt(1 / a + 1 / b)
        assert excess.loc[roi, "value"] == pytest.approx(ratio - pooled, rel=1e-12)
        expected_sigma = math.sqrt(sigma ** 2 + se ** 2)
        assert excess.loc[roi, "sigma"] == pytest.approx(expected_sigma, rel=1e-12)
        z = (ratio - pooled) / expected_sigma
        p = 0.5 * math.erfc(z / math.sqrt(2))  # one-sided normal tail
        assert excess.loc[roi, "p_value"] == pytest.approx(p, rel=1e-9)
        assert enriched.loc[roi, "p_value"] == pytest.approx(p, rel=1e-9)
    # 4 controls: the threshold is the t prediction bound with a 3-sigma tail
    tail = 1 - NormalDist().cdf(3.0)
    k = stats.t.ppf(1 - tail, 3) * math.sqrt(1 + 1 / 4)
    assert k > 3
    for roi in range(1, 7):
        flag = 1.0 if excess.loc[roi, "value"] > k * sd else 0.0
        assert enriched.loc[roi, "value"] == flag
    # ROI 5 (0.008 against 0.004) is far above the controls, ROI 6 is one of them
    assert enriched.loc[5, "value"] == 1.0 and enriched.loc[6, "value"] == 0.0
    assert out["class"].notna().all()
    assert len(out) == len(table) + 12 and len(table) == 18  # the input is unchanged


def test_normalise_with_two_controls_uses_the_poisson_error_and_no_rule():
    table = _table([40, 44, 90], [10000, 11000, 10000], ["control", "control", "cells"])
    out = normalise(table, "15N / 14N")
    pooled_a, pooled_b = 84, 21000
    pooled = pooled_a / pooled_b
    poisson = pooled * math.sqrt(1 / pooled_a + 1 / pooled_b)
    row = _rows(out, f"{RATIO} excess").loc[3]
    ratio = 90 / 10000
    assert row["value"] == pytest.approx(ratio - pooled, rel=1e-12)
    assert row["sigma"] == pytest.approx(
        math.sqrt((ratio * math.sqrt(1 / 90 + 1 / 10000)) ** 2 + poisson ** 2), rel=1e-12)
    assert _rows(out, f"{RATIO} enriched")["value"].isna().all()


def test_normalise_atom_percent_excess_and_separate_control_table():
    # quantity 100*A/(A+B): the excess is in atom-%
    minor, major = [37, 36, 38, 200], [10000, 9800, 10100, 10000]
    table = _table(minor, major, ["control"] * 3 + ["cells"])
    fraction = "100*15N/(15N+14N)"
    rows = []
    for roi, (a, b) in enumerate(zip(minor, major, strict=True), start=1):
        f = 100 * a / (a + b)
        sigma = 100 * math.sqrt(a * b / (a + b) ** 3)
        rows.append({"roi": roi, "class": table["class"][roi - 1], "quantity": fraction,
                     "value": f, "sigma": sigma, "p_value": np.nan})
    table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
    out = normalise(table, fraction)
    pooled = 100 * (37 + 36 + 38) / (37 + 36 + 38 + 10000 + 9800 + 10100)
    got = _rows(out, f"{fraction} excess").loc[4, "value"]
    assert got == pytest.approx(100 * 200 / 10200 - pooled, rel=1e-12)
    # the controls measured in another acquisition: the same numbers
    controls = table[table["class"] == "control"]
    cells = table[table["class"] == "cells"]
    other = normalise(cells, fraction, control=controls)
    assert _rows(other, f"{fraction} excess").loc[4, "value"] == pytest.approx(got, rel=1e-12)


def test_normalise_refuses_missing_classes():
    table = _table([1, 2, 3], [10, 10, 10], ["a", "b", "c"])
    with pytest.raises(ValueError, match="control"):
        normalise(table, RATIO)
    with pytest.raises(ValueError, match="no rows"):
        normalise(table, "14N/15N/15N", control="a")
    with pytest.raises(ValueError, match="class"):
        normalise(table.drop(columns="class"), RATIO)


@pytest.mark.slow
def test_unlabelled_cells_are_called_enriched_at_most_at_the_nominal_rate():
    """300 experiments x (20 controls + 80 unlabelled cells), all alike: cells differ
    biologically (SD 2 % of the ratio) and by counting. The rule may call at most the
    nominal 0.135 % enriched (binomial tolerance, 3 SD); a plain 3-SD rule, whose
    false-positive rate with 20 controls is about 0.4 %, would fail here."""
    rng = np.random.default_rng(21)
    n_trials, n_controls, n_cells = 300, 20, 80
    natural = 0.0036765
    flagged = total = 0
    labelled_found = 0
    for _ in range(n_trials):
        n = n_controls + n_cells + 5
        major = rng.poisson(2e5, n).astype(float)
        ratio = natural * (1 + 0.02 * rng.standard_normal(n))
        ratio[-5:] *= 1.5  # 5 labelled cells, far above the controls' scatter
        minor = rng.poisson(major * ratio).astype(float)
        classes = ["control"] * n_controls + ["cells"] * (n - n_controls)
        out = normalise(_table(minor, major, classes), RATIO)
        enriched = _rows(out, f"{RATIO} enriched")["value"].to_numpy()
        flagged += int(enriched[n_controls:n_controls + n_cells].sum())
        labelled_found += int(enriched[-5:].sum())
        total += n_cells
    nominal = 1 - NormalDist().cdf(3.0)
    limit = total * nominal + 3 * math.sqrt(total * nominal * (1 - nominal))
    print(f"false positives {flagged} of {total} ({flagged / total:.5f}; nominal "
          f"{nominal:.5f}, limit {limit:.1f}); labelled found {labelled_found} of "
          f"{5 * n_trials}")
    assert flagged <= limit
    assert labelled_found >= 0.95 * 5 * n_trials  # the rule is not blind


def test_calibrate_imf_and_delta_by_hand():
    minor = [120, 118, 125, 300]
    major = [10000, 9900, 10300, 20000]
    table = _table(minor, major, ["standard"] * 3 + ["sample"],
                   minor_label="13C", major_label="12C")
    true = 0.0112372
    out = calibrate(table, "13C/12C", "standard", true, reference="VPDB 13C/12C")
    measured = (120 + 118 + 125) / (10000 + 9900 + 10300)
    ratios = [120 / 10000, 118 / 9900, 125 / 10300]
    mean = sum(ratios) / 3
    se = math.sqrt(sum((r - mean) ** 2 for r in ratios) / 2) / math.sqrt(3)
    alpha = measured / true
    calibrated = _rows(out, "13C/12C calibrated")
    delta = _rows(out, "13C/12C delta")
    for roi in range(1, 5):
        a, b = minor[roi - 1], major[roi - 1]
        value, sigma = a / b, a / b * math.sqrt(1 / a + 1 / b)
        corrected = value / alpha
        expected_sigma = corrected * math.sqrt((sigma / value) ** 2 + (se / measured) ** 2)
        assert calibrated.loc[roi, "value"] == pytest.approx(corrected, rel=1e-12)
        assert calibrated.loc[roi, "sigma"] == pytest.approx(expected_sigma, rel=1e-12)
        assert delta.loc[roi, "value"] == pytest.approx(1000 * (corrected / true - 1),
                                                        rel=1e-9)
        assert delta.loc[roi, "sigma"] == pytest.approx(1000 * expected_sigma / true,
                                                        rel=1e-12)
    # a standard acquired separately: its table, all ROIs
    standard = table[table["class"] == "standard"].assign(**{"class": None})
    sample = table[table["class"] == "sample"]
    separate = calibrate(sample, "13C/12C", standard, true)
    assert _rows(separate, "13C/12C calibrated").loc[4, "value"] == pytest.approx(
        calibrated.loc[4, "value"], rel=1e-12)
    with pytest.raises(ValueError, match="true_value"):
        calibrate(table, "13C/12C", "standard", 0.0)
    with pytest.raises(ValueError, match="reference"):
        calibrate(table, "13C/12C", "standard", true, reference="PDB?")
