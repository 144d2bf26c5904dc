"""Arguments of the wrong type give a ValueError naming the argument, not a TypeError;
box sums take time and memory linear in the image (issue 20, item 11)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_nanosims import evaluate, hsi_rgb, significance
from napari_nanosims.analysis._box import _box_sum
from napari_nanosims.model import Acquisition


@pytest.fixture(scope="module")
def acquisition():
    counts = np.random.default_rng(0).poisson(5, size=(3, 2, 16, 16)).astype(np.uint32)
    return Acquisition.from_arrays(counts, ["12C", "13C"])


@pytest.mark.parametrize("value", [[1], "x", "0.01", {"a": 1}, np.array([1, 2]), True,
                                   float("nan")])
def test_significance_natural_ratio(acquisition, value):
    with pytest.raises(ValueError, match="natural_ratio must be a number above 0"):
        significance(acquisition, "13C", "12C", natural_ratio=value)


@pytest.mark.parametrize("value", [[1], "x", {"a": 1}, True, float("nan")])
def test_evaluate_min_counts(acquisition, value):
    with pytest.raises(ValueError, match="min_counts must be a number"):
        evaluate(acquisition, "13C/12C", min_counts=value)


@pytest.mark.parametrize("name, value", [
    ("value_range", None), ("value_range", [1]), ("value_range", "x"), ("value_range", 5),
    ("value_range", (0, "a")), ("value_range", ("0", "1")), ("value_range", (1, 0)),
    ("value_range", (np.nan, 1)), ("value_range", (True, 2)),
    ("thresholds", None), ("thresholds", "ab"), ("rgb_range", "ab"), ("rgb_range", (0,)),
    ("intensity_ranges", 5), ("intensity_ranges", [(0, "x"), None])])
def test_hsi_rgb_names_the_argument(acquisition, name, value):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        derived = evaluate(acquisition, "13C/12C")
    options = {"value_range": (0.0, 2.0), name: value}
    with pytest.raises(ValueError, match=f"^{name} must be (two finite numbers|None or two)"):
        hsi_rgb(derived, **options)


def test_hsi_rgb_intensity_range_of_the_modulated_mode(acquisition):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        derived = evaluate(acquisition, "13C/12C")
    with pytest.raises(ValueError, match="^intensity_range must be two finite numbers"):
        hsi_rgb(derived, value_range=(0, 2), mode="modulated", colormap=np.eye(3),
                intensity=np.ones((16, 16)), intensity_range="x")


def _box_sum_by_windows(image, kernel):
    """The box sum written out: every window of the zero-padded image, summed."""
    half = kernel // 2
    padded = np.pad(image, half)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel, kernel))
    return windows.sum(axis=(2, 3))


@pytest.mark.parametrize("kernel", [3, 7, 101])
def test_box_sums_match_the_windows(kernel):
    image = np.random.default_rng(kernel).poisson(4, size=(40, 130)).astype(np.float64)
    np.testing.assert_array_equal(_box_sum(image, kernel), _box_sum_by_windows(image, kernel))
    image[5, 7] = np.nan  # NaN stays NaN: every box touching it
    touched = _box_sum_by_windows(np.isnan(image).astype(float), kernel) > 0
    summed = _box_sum(image, kernel)
    assert np.isnan(summed[touched]).all() and np.isfinite(summed[~touched]).all()


def test_box_sum_memory_does_not_grow_with_the_kernel():
    import tracemalloc

    image = np.random.default_rng(0).poisson(4, size=(256, 256)).astype(np.float64)
    peaks = {}
    for kernel in (3, 101):
        tracemalloc.start()
        _box_sum(image, kernel)
        peaks[kernel] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[101] < 1.5 * peaks[3], peaks
