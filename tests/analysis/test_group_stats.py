"""Class comparisons, depth trends and label presets: summary statistics and test
statistics written out here (Welch's t, the ANOVA F, Kruskal-Wallis H without ties), the
trend fit against its closed form, and a seeded simulation of the trend test's
false-positive rate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from napari_nanosims import (
    LABEL_PRESETS,
    STANDARDS,
    compare_classes,
    depth_trend,
    roi_table,
)
from napari_nanosims.analysis.expression import parse

GROUPS = {"a": [1.0, 2.5, 3.1, 4.2], "b": [2.2, 5.0, 6.1, 7.3, 9.9], "c": [0.4, 0.7, 8.8]}


def _table(groups=GROUPS):
    rows, roi = [], 1
    for name, values in groups.items():
        for value in values:
            rows.append({"roi": roi, "class": name, "quantity": "x", "value": value,
                         "sigma": 0.1})
            roi += 1
    rows.append({"roi": roi, "class": None, "quantity": "x", "value": 100.0, "sigma": 0.1})
    return pd.DataFrame(rows)


def test_compare_classes_summary_and_tests_by_hand():
    out = compare_classes(_table(), "x")
    summary = out[out["test"] == "summary"].set_index("class")
    assert list(summary.index) == ["a", "b", "c"]  # the ROI without class is left out
    for name, values in GROUPS.items():
        n = len(values)
        mean = sum(values) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        ordered = sorted(values)
        median = (ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2)
        row = summary.loc[name]
        assert row["n"] == n and row["mean"] == pytest.approx(mean)
        assert row["sd"] == pytest.approx(sd) and row["se"] == pytest.approx(sd / math.sqrt(n))
        assert row["median"] == pytest.approx(median)
    # Welch's t for a vs b
    a, b = np.array(GROUPS["a"]), np.array(GROUPS["b"])
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    welch = out[(out["test"] == "Welch t") & (out["class"] == "a vs b")].iloc[0]
    assert welch["statistic"] == pytest.approx(t)
    assert welch["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), dof))
    assert welch["mean"] == pytest.approx(a.mean() - b.mean())
    assert set(out[out["test"] == "Welch t"]["class"]) == {"a vs b", "a vs c", "b vs c"}
    # one-way ANOVA: F = (between SS / (k-1)) / (within SS / (N-k))
    samples = [np.array(v) for v in GROUPS.values()]
    everything = np.concatenate(samples)
    between = sum(len(s) * (s.mean() - everything.mean()) ** 2 for s in samples)
    within = sum(((s - s.mean()) ** 2).sum() for s in samples)
    f = (between / 2) / (within / (len(everything) - 3))
    anova = out[out["test"] == "one-way ANOVA"].iloc[0]
    assert anova["statistic"] == pytest.approx(f)
    assert anova["p_value"] == pytest.approx(stats.f.sf(f, 2, len(everything) - 3))
    # Kruskal-Wallis without ties: H = 12/(N(N+1)) sum R_i^2/n_i - 3(N+1)
    ranks = stats.rankdata(everything)
    n_all, start, h = len(everything), 0, 0.0
    for s in samples:
        h += ranks[start:start + len(s)].sum() ** 2 / len(s)
        start += len(s)
    h = 12 / (n_all * (n_all + 1)) * h - 3 * (n_all + 1)
    kruskal = out[out["test"] == "Kruskal-Wallis"].iloc[0]
    assert kruskal["statistic"] == pytest.approx(h)
    assert kruskal["p_value"] == pytest.approx(stats.chi2.sf(h, 2))
    # Levene (median-centred): the ANOVA F of |x - median| of each group
    deviations = [np.abs(s - np.median(s)) for s in samples]
    flat = np.concatenate(deviations)
    between = sum(len(d) * (d.mean() - flat.mean()) ** 2 for d in deviations)
    within = sum(((d - d.mean()) ** 2).sum() for d in deviations)
    levene = out[out["test"] == "Levene"].iloc[0]
    assert levene["statistic"] == pytest.approx((between / 2) / (within / (n_all - 3)))


def test_compare_classes_counts_enriched_and_handles_one_class():
    table = _table({"a": [1.0, 2.0, 3.0]})
    flags = table.assign(quantity="x enriched", value=[1.0, 0.0, 1.0, 1.0])
    out = compare_classes(pd.concat([table, flags]), "x")
    assert list(out["test"]) == ["summary"]  # one class: nothing to compare
    assert out["n_enriched"].iloc[0] == 2.0  # the ROI without class is not counted
    with pytest.raises(ValueError, match="class"):
        compare_classes(table.drop(columns="class"), "x")


def test_compare_classes_across_files_takes_file_and_roi_together():
    one = _table({"a": [1.0, 2.0], "b": [3.0, 4.0]}).assign(file="f1")
    two = _table({"a": [5.0], "b": [6.0, 7.0]}).assign(file="f2")
    out = compare_classes(pd.concat([one, two], ignore_index=True), "x")
    summary = out[out["test"] == "summary"].set_index("class")
    assert summary.loc["a", "n"] == 3 and summary.loc["a", "mean"] == pytest.approx(8 / 3)
    assert summary.loc["b", "n"] == 4


def _profile(values, sigmas, roi=1):
    return pd.DataFrame({"roi": roi, "frame": np.arange(len(values)), "value": values,
                         "sigma": sigmas})


def test_depth_trend_weighted_fit_by_hand():
    frames = np.arange(6.0)
    values = np.array([1.0, 1.3, 1.1, 1.8, 2.0, 2.4])
    sigmas = np.array([0.1, 0.2, 0.1, 0.3, 0.2, 0.1])
    w = 1 / sigmas ** 2
    fw = (w * frames).sum() / w.sum()
    vw = (w * values).sum() / w.sum()
    s_ff = (w * (frames - fw) ** 2).sum()
    slope = (w * (frames - fw) * (values - vw)).sum() / s_ff
    intercept = vw - slope * fw
    sigma = 1 / math.sqrt(s_ff)
    out = depth_trend(_profile(values, sigmas)).iloc[0]
    assert out["slope"] == pytest.approx(slope) and out["intercept"] == pytest.approx(
        intercept)
    assert out["slope_sigma"] == pytest.approx(sigma)
    assert out["p_value"] == pytest.approx(math.erfc(abs(slope / sigma) / math.sqrt(2)))
    assert out["chi2"] == pytest.approx((w * (values - intercept - slope * frames) ** 2)
                                        .sum())
    assert out["dof"] == 4 and out["frames_used"] == 6
    # frames without counts (sigma 0) are left out; fewer than 3 frames: NaN
    short = depth_trend(_profile([1.0, 2.0, 3.0], [0.1, 0.0, 0.1], roi=7)).iloc[0]
    assert short["roi"] == 7 and short["frames_used"] == 2 and np.isnan(short["slope"])


@pytest.mark.slow
def test_depth_trend_false_positives_at_the_nominal_rate():
    """2000 ROIs x 20 frames of Poisson counts with one ratio: p < 0.05 in 5 % of them
    (binomial tolerance, 3.3 SD); a 20 % change over the frames is found in nearly all."""
    rng = np.random.default_rng(5)
    n_rois, n_frames = 2000, 20
    frame = np.tile(np.arange(n_frames), n_rois)
    roi = np.repeat(np.arange(1, n_rois + 1), n_frames)

    def profile(ratio):
        minor = rng.poisson(400 * ratio).astype(float)
        major = rng.poisson(4000, minor.shape).astype(float)
        value = minor / major
        sigma = value * np.sqrt(1 / minor + 1 / major)
        return pd.DataFrame({"roi": roi, "frame": frame, "value": value, "sigma": sigma})

    null = depth_trend(profile(np.ones(n_rois * n_frames)))
    rate = float(np.mean(null["p_value"] < 0.05))
    trend = depth_trend(profile(1 + 0.2 * frame / (n_frames - 1)))
    found = float(np.mean(trend["p_value"] < 0.05))
    print(f"trend test: false positives {rate:.4f} (nominal 0.05), 20 % trend found "
          f"{found:.4f}")
    assert abs(rate - 0.05) < 3.3 * math.sqrt(0.05 * 0.95 / n_rois)
    assert found > 0.9


def test_presets_parse_and_natural_values_follow_their_standards():
    for name, preset in LABEL_PRESETS.items():
        assert preset.source, name
        labels = ["12C", "13C", "12C 14N", "12C 15N", "13C 14N", "12C2", "12C 13C", "1H",
                  "2H", "16O", "18O", "32S", "34S"]
        parse(preset.ratio, labels)
        if preset.fraction:
            parse(preset.fraction, labels)
        if preset.standard:
            r = STANDARDS[preset.standard]
            assert preset.natural_ratio == r
            assert preset.natural_fraction == pytest.approx(r / (1 + r), rel=1e-12)
            # within 5 % of IUPAC's representative abundance (the minor isotope among
            # all isotopes of the element, so not exactly the two-isotope fraction);
            # ocean water (VSMOW, 0.0156 %) holds more 2H than IUPAC's 0.0115 %
            if name != "2H":
                assert preset.natural_fraction == pytest.approx(preset.iupac_fraction,
                                                                rel=0.05)
    assert LABEL_PRESETS["15N via CN"].natural_fraction == pytest.approx(0.0036630,
                                                                         abs=1e-7)
    assert LABEL_PRESETS["C/N"].natural_fraction is None


def test_presets_on_a_table():
    """The 15N preset's fraction is a quantity roi_table computes."""
    from napari_nanosims import Acquisition

    counts = np.ones((1, 2, 4, 4))
    acq = Acquisition.from_arrays(counts, ["12C 14N", "12C 15N"])
    table = roi_table(acq, np.ones((4, 4), np.int32), [LABEL_PRESETS["15N via CN"].fraction])
    assert table["value"].iloc[-1] == pytest.approx(0.5)
