"""Hot-pixel detection and removal: identical to openformat 0.3.1, faster, never in place."""

from __future__ import annotations

import warnings

import numpy as np
import openformat.mims as seed
import pytest
from scipy import ndimage

from napari_nanosims import (
    HotPixelBlindSpotWarning,
    apply_mask,
    infer_hot_pixels,
    iter_remove_hot_pixels,
    load_mims,
    median_filter_frames,
    remove_hot_pixels,
    write_im,
)
from napari_nanosims.io.lazy import LazyCounts


def _stack(rng, n_frames, n_detectors, height, width, level, spike_rate=0.004,
           dtype=np.int32):
    """Poisson counts with correlated spikes, a persistent bright spot and edge spikes."""
    data = rng.poisson(level, size=(n_frames, n_detectors, height, width))
    events = rng.random((n_frames, height, width)) < spike_rate
    spikes = rng.integers(5, 80, size=(n_frames, n_detectors, height, width))
    chosen = rng.random((n_frames, n_detectors, height, width)) < 0.8
    data = data + np.where(events[:, None] & chosen, spikes, 0)
    data[:, :, 0, 0] += 40  # a spike in a corner, in every frame (a feature, vetoed)
    if n_frames > 3:
        data[2, :, -1, width // 2] += 60  # an edge event in one frame
    return data.astype(dtype)


CASES = []
for case in range(40):
    rng = np.random.default_rng(case)
    CASES.append(dict(
        seed=case,
        n_frames=int(rng.choice([2, 5, 11, 12, 30, 100])),
        n_detectors=int(rng.integers(1, 9)),
        height=int(rng.choice([9, 16, 33])),
        width=int(rng.choice([9, 16, 40])),
        level=float(rng.choice([0.05, 0.5, 2.0, 6.0])),
        kernel_size=int(rng.choice([3, 3, 5])),
        dtype=rng.choice([np.int32, np.uint16, np.uint32, np.int64]),
    ))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"seed{c['seed']}")
def test_identical_to_openformat(case):
    rng = np.random.default_rng(1000 + case["seed"])
    data = _stack(rng, case["n_frames"], case["n_detectors"], case["height"], case["width"],
                  case["level"], dtype=case["dtype"])
    original = data.copy()
    p = case["n_detectors"]
    k = case["kernel_size"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HotPixelBlindSpotWarning)
        # remove_hot_pixels with its defaults (num_outliers=3 needs 3 detectors)
        num_outliers = min(3, p)
        expected = seed.remove_hot_pixels(data, num_outliers=num_outliers, kernel_size=k,
                                          max_repeat_fraction=0.2)
        ours = remove_hot_pixels(data, num_outliers=num_outliers, kernel_size=k,
                                 max_repeat_fraction=0.2)
        np.testing.assert_array_equal(ours, expected)
        assert ours.dtype == expected.dtype
        # infer_hot_pixels with its own (different) defaults, and other parameters
        for params in (dict(), dict(outlier_factor=2, min_count=1),
                       dict(outlier_factor=1.5, min_count=0.25, num_nonzero=1),
                       dict(outlier_factor=2.5, min_count=2, max_repeat_fraction=0.5)):
            mask_e, filt_e = seed.infer_hot_pixels(data, num_outliers, k, return_filtered=True,
                                                   **params)
            mask_o, filt_o = infer_hot_pixels(data, num_outliers, k, return_filtered=True,
                                              **params)
            np.testing.assert_array_equal(mask_o, mask_e)
            np.testing.assert_array_equal(filt_o, filt_e)
            np.testing.assert_array_equal(infer_hot_pixels(data, num_outliers, k, **params),
                                          mask_e)
    np.testing.assert_array_equal(data, original)


def test_both_internal_paths_agree_with_openformat():
    """Sparse data takes the per-pixel path, dense data the whole-frame path."""
    rng = np.random.default_rng(5)
    for level in (0.02, 0.3, 8.0):
        data = _stack(rng, 30, 6, 64, 48, level, spike_rate=0.01)
        np.testing.assert_array_equal(remove_hot_pixels(data), seed.remove_hot_pixels(data))


@pytest.mark.parametrize("level, dtype", [(300.0, np.uint32), (300.0, np.int32),
                                          (70000.0, np.uint32), (2.5, np.float64)])
def test_bright_and_float_data_agree_with_openformat(level, dtype):
    """Counts above 255 (16-bit work type), above 65535 (no threshold table), floats."""
    rng = np.random.default_rng(int(level))
    data = _stack(rng, 14, 4, 24, 20, level, spike_rate=0.01, dtype=np.int64)
    events = rng.random((14, 1, 24, 20)) < 0.01  # correlated: every detector tripled
    data = np.where(events, data * 3, data).astype(dtype)
    assert infer_hot_pixels(data, 3, outlier_factor=1.999, min_count=0.5).any()
    for params in (dict(), dict(outlier_factor=2, min_count=1)):
        np.testing.assert_array_equal(remove_hot_pixels(data, **params),
                                      seed.remove_hot_pixels(data, **params))
        np.testing.assert_array_equal(infer_hot_pixels(data, 3, **params),
                                      seed.infer_hot_pixels(data, 3, **params))


def test_finds_the_demo_hot_pixels(demo_file):
    data = np.asarray(load_mims(demo_file["path"]).data)[:, :6]
    mask = infer_hot_pixels(data, 3, 3, 1.999, 0.5)
    for frame, row, col in demo_file["hot_pixels"]:
        assert mask[frame, row, col]
    cleaned = remove_hot_pixels(data)
    frame, row, col = demo_file["hot_pixels"][0]
    window = data[frame, :, max(row - 1, 0):row + 2, max(col - 1, 0):col + 2]
    assert np.all(cleaned[frame, :, row, col] <= window.max(axis=(1, 2)))
    assert np.all(cleaned[frame, :, row, col] < data[frame, :, row, col])


def test_median_filter_frames_equals_scipy():
    rng = np.random.default_rng(2)
    for dtype, high in ((np.uint8, 200), (np.uint16, 60000), (np.uint32, 10**7),
                        (np.float32, 100)):
        data = rng.integers(0, high, size=(4, 3, 21, 17)).astype(dtype)
        for k in (1, 3, 5):
            np.testing.assert_array_equal(median_filter_frames(data, k),
                                          ndimage.median_filter(data, (1, 1, k, k)))


def test_lazy_input_works_and_is_untouched(tmp_path):
    rng = np.random.default_rng(3)
    data = _stack(rng, 15, 4, 32, 32, 1.0, dtype=np.uint32)
    path = write_im(tmp_path / "s.im", data, ["12C", "13C", "12C 14N", "12C 15N"],
                    [12, 13, 26, 27], 10.0, 1000)
    lazy = load_mims(path).data
    assert isinstance(lazy, LazyCounts) and lazy.memory_mapped
    np.testing.assert_array_equal(remove_hot_pixels(lazy), seed.remove_hot_pixels(data))
    np.testing.assert_array_equal(np.asarray(lazy), data)


def test_blind_spot_warns_and_eleven_frames_find_the_event():
    rng = np.random.default_rng(4)
    for n_frames in (10, 11):
        data = rng.poisson(1.0, size=(n_frames, 3, 16, 16)).astype(np.int32)
        data[3, :, 8, 8] = 50
        if n_frames == 10:
            with pytest.warns(HotPixelBlindSpotWarning, match="10 frames"):
                mask = infer_hot_pixels(data, 3, outlier_factor=1.999, min_count=0.5)
            assert not mask.any()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error", HotPixelBlindSpotWarning)
                mask = infer_hot_pixels(data, 3, outlier_factor=1.999, min_count=0.5)
            assert mask[3, 8, 8]
        np.testing.assert_array_equal(
            mask, seed.infer_hot_pixels(data, 3, outlier_factor=1.999, min_count=0.5))


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_outliers=0), "num_outliers"),
    (dict(num_outliers=5), "num_outliers"),
    (dict(kernel_size=0), "kernel_size"),
    (dict(kernel_size=2.5), "kernel_size"),
    (dict(num_nonzero=9), "num_nonzero"),
    (dict(max_repeat_fraction=-1), "max_repeat_fraction"),
])
def test_bad_parameters_raise_valueerror(kwargs, message):
    data = np.ones((12, 4, 8, 8), np.int32)
    with pytest.raises(ValueError, match=message):
        remove_hot_pixels(data, **kwargs)


def test_bad_shapes_raise_valueerror():
    with pytest.raises(ValueError, match="4 dimensions"):
        remove_hot_pixels(np.ones((12, 8, 8)))
    with pytest.raises(ValueError, match="mask must have shape"):
        apply_mask(np.ones((2, 3, 4, 4)), np.ones((2, 4, 5), bool), 0)
    with pytest.raises(ValueError, match="replacement_values"):
        apply_mask(np.ones((2, 3, 4, 4)), np.ones((2, 4, 4), bool), [1, 2])


def test_apply_mask_matches_openformat_for_every_replacement_form():
    rng = np.random.default_rng(6)
    data = rng.integers(0, 9, size=(3, 2, 5, 5)).astype(np.int32)
    mask = rng.random((3, 5, 5)) < 0.3
    n = int(mask.sum()) * 2
    for replacement in (rng.integers(0, 9, size=data.shape), 7, np.arange(n)):
        original = data.copy()
        np.testing.assert_array_equal(apply_mask(data, mask, replacement),
                                      seed.apply_mask(data, mask, replacement))
        np.testing.assert_array_equal(data, original)


def test_iterator_reports_progress_and_cancelling_leaves_nothing():
    rng = np.random.default_rng(7)
    data = _stack(rng, 20, 4, 24, 24, 1.0)
    steps = list(_collect(iter_remove_hot_pixels(data)))
    assert steps[:-1] == list(range(1, 21))
    cleaned, mask = steps[-1]
    np.testing.assert_array_equal(cleaned, seed.remove_hot_pixels(data))
    generator = iter_remove_hot_pixels(data)
    assert next(generator) == 1
    generator.close()  # what a GUI's Cancel does
    with pytest.raises(StopIteration):
        next(generator)


def _collect(generator):
    while True:
        try:
            yield next(generator)
        except StopIteration as stop:
            yield stop.value
            return


@pytest.mark.parametrize("bad, message", [
    (dict(outlier_factor=float("nan")), "outlier_factor"),
    (dict(outlier_factor=0), "outlier_factor must be above 0"),
    (dict(outlier_factor=-2.0), "outlier_factor"),
    (dict(outlier_factor=float("inf")), "outlier_factor"),
    (dict(min_count=float("nan")), "min_count"),
    (dict(min_count=-1), "min_count"),
    (dict(kernel_size=4), "kernel_size must be odd"),
    (dict(kernel_size=True), "kernel_size"),
    (dict(num_outliers=True), "num_outliers"),
    (dict(num_nonzero=True), "num_nonzero"),
    (dict(max_repeat_fraction=float("nan")), "max_repeat_fraction"),
    (dict(outlier_factor="2"), "outlier_factor must be a number"),
])
def test_parameters_are_validated_with_their_names(bad, message):
    from napari_nanosims import remove_hot_pixels

    data = np.ones((4, 3, 8, 8), np.uint16)
    with pytest.raises(ValueError, match=message):
        remove_hot_pixels(data, **{"num_outliers": 2, **bad})


@pytest.mark.parametrize("data, message", [
    (np.ones((2, 3, 0, 8)), "at least one detector, row and column"),
    (np.array([[[["a"]]]]), "must hold numbers"),
    (np.empty((2, 3, 4, 4), dtype=object), "must hold numbers"),
])
def test_unusable_stacks_get_a_clear_error(data, message):
    from napari_nanosims import remove_hot_pixels

    with pytest.raises(ValueError, match=message):
        remove_hot_pixels(data, num_outliers=1)


@pytest.mark.parametrize("dtype, high", [(np.uint8, 40), (np.uint16, 3000), (np.int16, 900),
                                         (np.int32, 20), (np.uint32, 10**7), (np.int64, 7),
                                         (np.uint64, 50)])
@pytest.mark.parametrize("shape", [(6, 4, 1, 9), (7, 3, 2, 2), (12, 5, 17, 23)])
def test_fused_kernel_identical_to_openformat(dtype, high, shape, monkeypatch):
    """The numba kernel (integer counts, float factor) gives the seed's results, also for
    negative values, one-pixel-wide frames and counts beyond 16 bits."""
    from napari_nanosims.processing.hot_pixels import hot_pixels as module

    calls = []
    original = module.kernel_candidates
    monkeypatch.setattr(module, "kernel_candidates",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    rng = np.random.default_rng(int(high) + shape[2])
    data = rng.integers(0 if np.dtype(dtype).kind == "u" else -3, high, size=shape)
    spikes = rng.random(shape[:1] + shape[2:]) < 0.05
    data = np.where(spikes[:, None], data * 4 + 5, data).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HotPixelBlindSpotWarning)
        for kwargs in (dict(), dict(outlier_factor=2.5, min_count=2, num_nonzero=1),
                       dict(outlier_factor=1.2, min_count=0.25, num_outliers=2)):
            kwargs.setdefault("num_outliers", min(3, shape[1]))
            expected = seed.remove_hot_pixels(data, max_repeat_fraction=0.3, **kwargs)
            ours = remove_hot_pixels(data, max_repeat_fraction=0.3, **kwargs)
            np.testing.assert_array_equal(ours, expected)
            mask = infer_hot_pixels(data, kwargs["num_outliers"], 3,
                                    kwargs.get("outlier_factor", 1.999),
                                    kwargs.get("min_count", 0.5), 0.3,
                                    kwargs.get("num_nonzero"))
            np.testing.assert_array_equal(mask, seed.infer_hot_pixels(
                data, kwargs["num_outliers"], 3, kwargs.get("outlier_factor", 1.999),
                kwargs.get("min_count", 0.5), 0.3, kwargs.get("num_nonzero")))
    assert calls  # the kernel did the work
