"""Expressions over mass images: parser, values, propagated errors, HSI colours, z-scores."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nanosims import (
    Acquisition,
    accumulate,
    correct_dead_time,
    evaluate,
    hsi_rgb,
    significance,
)
from napari_nanosims.analysis.display import openmims_colour_table

LABELS = ["12C", "13C", "12C 14N", "12C 15N", "12C2", "12C 13C", "SE"]


def _source(means=(400, 5, 900, 4, 300, 7, 50), shape=(3, 16, 16), seed=0):
    rng = np.random.default_rng(seed)
    counts = np.stack([rng.poisson(m, size=shape) for m in means], axis=1).astype(np.uint32)
    return Acquisition.from_arrays(counts, LABELS), counts.sum(axis=0).astype(np.float64)


@pytest.mark.parametrize("expression, expected", [
    ("12C15N/12C14N", lambda m: m[3] / m[2]),
    ("12C 15N / 12C 14N", lambda m: m[3] / m[2]),
    ("13C/(12C+13C)", lambda m: m[1] / (m[0] + m[1])),
    ("100*12C15N/(12C14N+12C15N)", lambda m: 100 * m[3] / (m[2] + m[3])),
    ("12C13C/(2*12C2)", lambda m: m[5] / (2 * m[4])),
    ("1+2*12C-12C2/3", lambda m: 1 + 2 * m[0] - m[4] / 3),
    ("-12C+13C*-2", lambda m: -m[0] + m[1] * -2),
    ("(12C+13C)/2/12C2", lambda m: (m[0] + m[1]) / 2 / m[4]),
    ("log(12C)+log10(13C)-sqrt(12C2)*exp(0.5)",
     lambda m: np.log(m[0]) + np.log10(m[1]) - np.sqrt(m[4]) * np.exp(0.5)),
    ("delta(13C/12C, 0.011180)", lambda m: (m[1] / m[0] / 0.011180 - 1) * 1000),
    ("Esi/SE", lambda m: m[6] / m[6]),
])
def test_expressions_evaluate_as_written(expression, expected):
    acq, sums = _source()
    result = evaluate(acq, expression, min_counts=0)  # the formulas, at every pixel
    with np.errstate(divide="ignore", invalid="ignore"):
        truth = expected(sums)
    np.testing.assert_allclose(result.value, np.where(np.isfinite(truth), truth, np.nan),
                               rtol=1e-12)


def test_units_labels_and_text():
    acq, _ = _source()
    assert evaluate(acq, "delta(12C15N/12C14N, 0.0036765)").unit == "per mil"
    assert evaluate(acq, "100*12C15N/(12C14N+12C15N)").unit == "%"
    ratio = evaluate(acq, "12C15N/12C14N")
    assert ratio.unit == "" and ratio.expression == "12C 15N/12C 14N"
    assert ratio.channels_used == ("12C 15N", "12C 14N")
    assert ratio.history[-1].name == "evaluate"
    # '12C' never matches inside '12C14N' or '12C2', and the longest label wins
    assert evaluate(acq, "12C2/12C").channels_used == ("12C2", "12C")


@pytest.mark.parametrize("bad, message", [
    ("32S/12C", "unknown mass label '32S' at position 0.*'12C 14N'"),
    ("12C15N/", "at position 7"),
    ("12C15N/(12C14N", "expected '\\)' at position 14"),
    ("12C 15N 12C", "unexpected text after the expression at position 8"),
    ("log(12C, 13C)", "log\\(\\) takes 1 argument"),
    ("delta(13C/12C, 12C)", "standard of delta\\(\\) must be a number"),
    ("__import__('os')", "unknown mass label"),
    ("", "empty"),
])
def test_parser_errors_name_the_position_and_the_labels(bad, message):
    acq, _ = _source()
    with pytest.raises(ValueError, match=message):
        evaluate(acq, bad)


def test_errors_of_ratio_and_fraction_match_the_closed_forms():
    acq, sums = _source()
    a, b = sums[3], sums[2]
    # default min_counts: pixels under 10 raw counts of 12C 15N (mean 12 here) are NaN
    kept = (a >= 10) & (b >= 10)
    assert 0 < kept.sum() < kept.size
    ratio = evaluate(acq, "12C15N/12C14N")
    np.testing.assert_allclose(ratio.sigma, np.where(kept, (a / b) * np.sqrt(1 / a + 1 / b),
                                                     np.nan), rtol=1e-10)
    fraction = evaluate(acq, "12C15N/(12C14N+12C15N)")
    np.testing.assert_allclose(fraction.sigma, np.where(
        kept, np.sqrt(b ** 2 * a + a ** 2 * b) / (a + b) ** 2, np.nan), rtol=1e-10)
    np.testing.assert_allclose(fraction.numerator, a)
    np.testing.assert_allclose(fraction.denominator, a + b)
    # corrected counts: their own variance, not the counts, enters the error; the
    # threshold is on the raw counts (the same pixels)
    corrected = accumulate(correct_dead_time(acq, dead_times_ns=5000.0))
    result = evaluate(corrected, "12C15N/12C14N")
    va, vb = corrected.variance[3], corrected.variance[2]
    ca, cb = corrected.counts[3], corrected.counts[2]
    np.testing.assert_allclose(result.sigma, np.where(
        kept, (ca / cb) * np.sqrt(va / ca ** 2 + vb / cb ** 2), np.nan), rtol=1e-10)


def test_kernel_sums_counts_before_the_expression_and_nan_is_never_zero():
    acq, sums = _source()
    result = evaluate(acq, "12C15N/12C14N", kernel=3)
    from scipy import ndimage

    box = np.ones((3, 3))
    a = ndimage.convolve(sums[3], box, mode="constant")
    b = ndimage.convolve(sums[2], box, mode="constant")
    np.testing.assert_allclose(result.value, a / b)
    np.testing.assert_allclose(result.sigma, a / b * np.sqrt(1 / a + 1 / b))
    counts = np.ones((1, 7, 4, 4), np.uint32) * 10
    counts[0, 2, 0, 0] = 0  # a zero denominator
    zero = evaluate(Acquisition.from_arrays(counts, LABELS), "12C15N/12C14N")
    assert np.isnan(zero.value[0, 0]) and np.isnan(zero.sigma[0, 0])
    low = evaluate(acq, "12C15N/12C14N", min_counts=1000)
    assert np.all(np.isnan(low.value))  # 12C 15N never reaches 1000 counts
    with pytest.raises(ValueError, match="kernel must be an odd"):
        evaluate(acq, "12C/13C", kernel=2)


@pytest.mark.parametrize("expression, means", [
    ("12C15N/12C14N", (400, 5, 2000, 150, 300, 7, 50)),
    ("12C15N/(12C14N+12C15N)", (400, 5, 300, 120, 300, 7, 50)),
    ("delta(13C/12C, 0.011180)", (1000, 120, 300, 4, 300, 7, 50)),
])
def test_predicted_errors_match_the_poisson_scatter(expression, means):
    acq, _ = _source(means=means, shape=(1, 200, 200), seed=11)
    result = evaluate(acq, expression)
    empirical = np.nanstd(result.value)
    predicted = np.sqrt(np.nanmean(result.sigma ** 2))
    assert predicted == pytest.approx(empirical, rel=0.05)


def test_openmims_colour_table_at_the_documented_points():
    points = {0.0: (0.0, 0.22, 0.83), 0.25: (0.01, 0.63, 1.0), 0.5: (0.42, 1.0, 0.42),
              0.75: (1.0, 0.63, 0.01), 0.875: (1.0, 0.34, 0.34), 1.0: (0.83, 0.22, 0.83)}
    for fraction, colour in points.items():
        h = int(np.floor(fraction * 65535))
        np.testing.assert_allclose(openmims_colour_table(h), colour, atol=0.01)
    cyan, yellow = openmims_colour_table([int(0.375 * 65535), int(0.625 * 65535)])
    assert cyan[2] > 0.8 and cyan[1] > 0.8 and cyan[0] < 0.3
    assert yellow[0] > 0.8 and yellow[1] > 0.8 and yellow[2] < 0.3


def test_hsi_rgb_openmims_thresholds_intensity_and_range():
    counts = np.zeros((1, 7, 2, 3), np.uint32)
    counts[0, 2] = [[100, 200, 400], [0, 400, 400]]     # D (12C 14N)
    counts[0, 3] = [[1, 2, 8], [1, 0, 40]]              # N (12C 15N)
    derived = evaluate(Acquisition.from_arrays(counts, LABELS), "12C15N/12C14N", min_counts=0)
    rgb = hsi_rgb(derived, value_range=(0.01, 0.05))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert not rgb[1, 0].any() and not rgb[1, 1].any()  # D = 0, N = 0: black
    # value 0.01 (at the low end): the blue end at full intensity of D=100 -> floor(255*0)
    d = counts[0, 2].astype(float)
    level = np.floor((d - 0) * 255 / (400 - 0))
    expected = np.floor(openmims_colour_table(65535) * level[1, 2])  # 0.1 >= high: top
    np.testing.assert_array_equal(rgb[1, 2], expected.astype(np.uint8))
    h = np.floor((0.02 - 0.01) * 65535 / 0.04)
    np.testing.assert_array_equal(rgb[0, 2], np.floor(openmims_colour_table(int(h))
                                                       * level[0, 2]).astype(np.uint8))
    with pytest.raises(ValueError, match="value_range"):
        hsi_rgb(derived, value_range=(1, 1))
    lut = np.linspace(0, 1, 256)[:, None] * np.ones((1, 3))
    grey = hsi_rgb(derived, value_range=(0.0, 0.1), mode="modulated", colormap=lut)
    assert grey[1, 0].tolist() == [0, 0, 0]  # NaN is black
    assert grey[0, 2, 0] == round(0.02 / 0.1 * 255)


def test_significance_is_a_unit_normal_without_enrichment():
    rng = np.random.default_rng(5)
    r = 0.0036765
    b = rng.poisson(20000, size=(1, 100, 100))
    a = rng.binomial(b, r / (1 + r)) + 0  # natural abundance
    a[0, :5, :5] += 300  # an enriched patch
    counts = np.zeros((1, 7, 100, 100), np.uint32)
    counts[:, 2], counts[:, 3] = b - a, a
    z = significance(Acquisition.from_arrays(counts, LABELS), "12C15N", "12C14N", r)
    natural = z.value[10:, 10:]
    assert abs(natural.mean()) < 0.05 and natural.std() == pytest.approx(1.0, rel=0.05)
    assert z.value[:5, :5].min() > 5
    with pytest.raises(ValueError, match="natural_ratio"):
        significance(Acquisition.from_arrays(counts, LABELS), "12C15N", "12C14N", 0)


def test_cli_ratio_and_a_recipe_ratio_step(tmp_path, capsys):
    import json

    import tifffile
    from imageio.v3 import imread

    from napari_nanosims import write_im
    from napari_nanosims.cli import main

    acq, sums = _source(shape=(4, 20, 24))
    path = write_im(tmp_path / "r.im", np.asarray(acq.counts), LABELS,
                    [12, 13, 26, 27, 24, 25, 0], 5.0, 1000)
    out = tmp_path / "o"
    assert main(["ratio", path, "--expr", "12C15N/12C14N", "--kernel", "3",
                 "--out", str(out)]) == 0
    image = tifffile.imread(out / "r_12C15N_over_12C14N.ome.tif")
    expected = evaluate(acq, "12C15N/12C14N", kernel=3)
    np.testing.assert_allclose(image[0], expected.value.astype(np.float32))
    np.testing.assert_allclose(image[1], expected.sigma.astype(np.float32))
    # a figure: the image (zoomed) with a colour bar and a scale bar beside it
    assert imread(out / "r_12C15N_over_12C14N.png").shape[1] > 24 * 2
    assert main(["ratio", path, "--expr", "12C15N/12C14N", "--out", str(out)]) == 1
    assert "outputs exist" in capsys.readouterr().err
    assert main(["ratio", path, "--expr", "32S/12C", "--out", str(out)]) == 1
    assert "unknown mass label '32S'" in capsys.readouterr().err
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"steps": [
        {"step": "ratio", "parameters": {"expression": "13C/(12C+13C)", "kernel": 1}}]}))
    assert main(["process", path, "--recipe", str(recipe), "--out", str(tmp_path / "p")]) == 0
    fraction = tifffile.imread(tmp_path / "p" / "r_13C_over__12C+13C_.ome.tif")
    # the step's default min_counts (10 raw counts of each mass used) masks pixels as NaN
    kept = (sums[0] >= 10) & (sums[1] >= 10)
    np.testing.assert_allclose(fraction[0], np.where(
        kept, sums[1] / (sums[0] + sums[1]), np.nan).astype(np.float32))


def _low_count_source(minor_mean=1.8, major_mean=200.0, se_mean=3.0, shape=(96, 96), seed=3):
    """One frame of 12C (major), 13C (minor) and SE with Poisson counts."""
    rng = np.random.default_rng(seed)
    counts = np.stack([rng.poisson(major_mean, shape), rng.poisson(minor_mean, shape),
                       rng.poisson(se_mean, shape)])[None].astype(np.uint32)
    return Acquisition.from_arrays(counts, ["12C", "13C", "SE"]), counts[0].astype(np.float64)


def _gehrels_or_poisson_variance(n):
    """Gehrels (1986) one-sigma upper-limit error sqrt(n + 0.75) + 1, squared, under 10
    counts; the Poisson variance n from 10 on."""
    return np.where(n < 10, (np.sqrt(n + 0.75) + 1) ** 2, n)


def test_zero_counts_never_give_a_zero_error():
    acq, counts = _low_count_source()
    major, minor = counts[0], counts[1]
    assert 0.12 < np.mean(minor == 0) < 0.21  # e**-1.8 = 16.5 % of pixels count no 13C
    kept_all = evaluate(acq, "13C/12C", min_counts=0)
    finite = np.isfinite(kept_all.value)
    assert finite.all()
    assert not np.any(kept_all.sigma[finite] == 0)
    # sigma**2 = V_A/B**2 + A**2 V_B/B**4 with Gehrels' error for counts under 10
    va, vb = _gehrels_or_poisson_variance(minor), _gehrels_or_poisson_variance(major)
    np.testing.assert_allclose(kept_all.sigma, np.sqrt(va / major ** 2
                                                       + minor ** 2 * vb / major ** 4),
                               rtol=1e-12)
    zero = minor == 0
    np.testing.assert_allclose(kept_all.sigma[zero], (np.sqrt(0.75) + 1) / major[zero])
    # after a correction, the error at 0 counts is Gehrels' in corrected units: the
    # variance per raw count of the image (V/n summed), the yield 1/0.8 squared here
    corrected = accumulate(acq.with_step("scaled", {}, counts=np.asarray(acq.counts) / 0.8,
                                         variance=np.asarray(acq.counts) / 0.8 ** 2,
                                         raw_counts=acq.counts))
    scaled = evaluate(corrected, "13C/12C", min_counts=0)
    cb = major / 0.8
    np.testing.assert_allclose(scaled.sigma[zero], (np.sqrt(0.75) + 1) / 0.8 / cb[zero],
                               rtol=1e-12)
    assert not np.any(scaled.sigma[np.isfinite(scaled.value)] == 0)


def test_default_min_counts_masks_pixels_under_10_raw_counts_after_the_kernel():
    from scipy import ndimage

    acq, counts = _low_count_source()
    box = np.ones((3, 3))
    a = ndimage.convolve(counts[1], box, mode="constant")
    b = ndimage.convolve(counts[0], box, mode="constant")
    result = evaluate(acq, "13C/12C", kernel=3)  # default min_counts = 10
    masked = (a < 10) | (b < 10)
    assert 0.05 < masked.mean() < 0.95
    np.testing.assert_array_equal(np.isnan(result.value), masked)
    np.testing.assert_array_equal(np.isnan(result.sigma), masked)
    np.testing.assert_allclose(result.value[~masked], (a / b)[~masked], rtol=1e-12)
    assert result.history[-1].parameters["min_counts"] == 10.0
    # corrected counts: the threshold stays on the raw counts
    corrected = accumulate(correct_dead_time(acq, dead_times_ns=200.0))
    np.testing.assert_array_equal(np.isnan(evaluate(corrected, "13C/12C", kernel=3).value),
                                  masked)
    # the SE image is no ion count: never tested against min_counts (mean 3 counts here)
    se = evaluate(acq, "12C/SE")
    np.testing.assert_array_equal(np.isnan(se.value), counts[2] == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        se_sigma = np.sqrt(1 / counts[2] ** 2 * counts[0] + counts[0] ** 2 / counts[2] ** 4
                           * counts[2])  # Poisson variance of SE, no Gehrels
    np.testing.assert_allclose(se.sigma, np.where(counts[2] > 0, se_sigma, np.nan))
    # the ratio step, the CLI and evaluate share the default
    import inspect

    from napari_nanosims.analysis.ratios import DEFAULT_MIN_COUNTS
    from napari_nanosims.cli import build_parser
    from napari_nanosims.steps.registry import STEPS

    assert DEFAULT_MIN_COUNTS == 10
    assert inspect.signature(evaluate).parameters["min_counts"].default == DEFAULT_MIN_COUNTS
    assert STEPS["ratio"].defaults()["min_counts"] == DEFAULT_MIN_COUNTS
    assert build_parser().parse_args(["ratio", "x.im", "--expr", "13C/12C"]).min_counts \
        == DEFAULT_MIN_COUNTS


@pytest.mark.parametrize("bad", [[10], -1, float("nan"), True, "10", float("inf")])
def test_min_counts_is_validated(bad):
    acq, _ = _source()
    with pytest.raises(ValueError, match="min_counts"):
        evaluate(acq, "12C15N/12C14N", min_counts=bad)


def test_cli_median_is_over_the_unmasked_pixels(tmp_path, capsys):
    import re

    from scipy import ndimage

    from napari_nanosims import write_im
    from napari_nanosims.cli import main

    rng = np.random.default_rng(8)
    counts = np.stack([rng.poisson(200.0, (2, 40, 48)), rng.poisson(0.9, (2, 40, 48))],
                      axis=1).astype(np.uint32)
    path = write_im(tmp_path / "low.im", counts, ["12C", "13C"], [12, 13], 5.0, 1000)
    assert main(["ratio", path, "--expr", "13C/12C", "--kernel", "3",
                 "--out", str(tmp_path / "o")]) == 0
    printed = float(re.search(r"median ([0-9.e+-]+)", capsys.readouterr().out).group(1))
    box = np.ones((3, 3))
    sums = counts.sum(axis=0).astype(np.float64)
    a = ndimage.convolve(sums[1], box, mode="constant")
    b = ndimage.convolve(sums[0], box, mode="constant")
    kept = (a >= 10) & (b >= 10)
    assert 0.05 < kept.mean() < 0.95
    assert printed == pytest.approx(np.median((a / b)[kept]), rel=1e-5)
    assert printed != pytest.approx(np.median(a / b), rel=1e-3)


def test_standards_hold_vpdb_and_vcdt():
    from napari_nanosims import STANDARDS

    assert STANDARDS["VPDB 13C/12C"] == 0.0112372     # Craig (1957)
    assert STANDARDS["VCDT 34S/32S"] == 0.0441626     # Ding et al. (2001)
    assert STANDARDS["AIR 15N/14N"] == 0.0036765
