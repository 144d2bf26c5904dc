"""Memory of ``align_frames`` (issue 24, part 2): the step holds one copy of the stack.

The moved variance and raw counts are :class:`MovedFrames`, computed frame by frame on
access from the unaligned arrays; every number read from them, and every number the
steps, analyses and exports compute from them, equals what moving the whole stack at
once gave (the step's former eager arrays).
"""

from __future__ import annotations

import pickle
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_nanosims import Acquisition, accumulate, evaluate, roi_table, run_recipe
from napari_nanosims._errors import AlignmentWarning
from napari_nanosims.export.ometiff import write_acquisition_tiffs
from napari_nanosims.io.chained import ChainedCounts
from napari_nanosims.processing._frames import run_to_completion, set_single_threaded
from napari_nanosims.processing.alignment.moved import MovedFrames
from napari_nanosims.processing.alignment.shifts import iter_apply_translations
from napari_nanosims.processing.alignment.warp import apply_displacements
from napari_nanosims.testing.deform import simulate_deformation
from napari_nanosims.testing.simulate import simulate_scene

LABELS = ["12C", "13C", "12C 14N", "SE"]


def _acquisition(frames, seed=0, masses=3, dtype=np.uint32) -> Acquisition:
    """Ion channels that share one scene (binomial shares of its counts) and a flat SE."""
    rng = np.random.default_rng(seed)
    total = np.asarray(frames).astype(np.int64)
    ions, left = [], total
    for share in np.linspace(0.2, 0.5, masses - 1):
        part = rng.binomial(left, share)
        ions.append(part)
        left = left - part
    ions.append(left)
    se = rng.poisson(30, size=total.shape)
    counts = np.stack(ions + [se], axis=1).astype(dtype)
    labels = LABELS if masses == 3 else [f"m{k}" for k in range(masses)] + ["SE"]
    return Acquisition.from_arrays(counts, labels, pixel_size_um=0.1)


def _drifting(n_frames=8, window=48, seed=1, **options) -> Acquisition:
    simulation = simulate_scene("cells", n_frames, 20.0, window=window, max_drift_px=3.0,
                                seed=seed)
    return _acquisition(simulation["frames"], seed, **options)


def _align(acquisition, method, steps=()):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_recipe(acquisition, list(steps) + [("align_frames", {"method": method})])


def _eager(values, aligned, variance):
    """``values`` moved as the whole stack at once (what the step used to hold)."""
    registration = aligned.registration
    field = getattr(registration, "displacement_px", None)
    if field is not None and np.any(field):
        return apply_displacements(values, aligned.translations, field,
                                   registration.displacement_grid_px, crop=True,
                                   variance=variance)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_to_completion(iter_apply_translations(
            values, aligned.translations, padding=8, crop=True, variance=variance))


def _bilinear(images, translation, power):
    """Written out: content at pixel q goes to q + k (weight 1 - f) and q + k + 1 (weight
    f) along each axis, weights raised to ``power``; what leaves the frame is dropped."""
    images = np.asarray(images, dtype=np.float64)
    _, height, width = images.shape
    out = np.zeros_like(images)

    def pairs(t):
        whole = int(np.floor(t))
        return ((whole, 1.0 - (t - whole)), (whole + 1, t - whole))

    for dy, wy in pairs(float(translation[0])):
        for dx, wx in pairs(float(translation[1])):
            if abs(dy) >= height or abs(dx) >= width:
                continue
            target = (slice(None), slice(max(dy, 0), height + min(dy, 0)),
                      slice(max(dx, 0), width + min(dx, 0)))
            source = (slice(None), slice(max(-dy, 0), height + min(-dy, 0)),
                      slice(max(-dx, 0), width + min(-dx, 0)))
            out[target] += (wy * wx) ** power * images[source]
    return out


# -- the step --------------------------------------------------------------------------
def test_subpixel_variance_is_moved_on_access_with_the_eager_values():
    acquisition = _drifting()
    aligned = _align(acquisition, "subpixel")
    translations = np.asarray(aligned.translations)
    assert np.any(translations != np.round(translations))  # a sub-pixel move
    variance = aligned.variance
    assert isinstance(variance, MovedFrames) and not isinstance(variance, np.ndarray)
    assert aligned.raw_counts is None
    assert variance.shape == aligned.counts.shape and variance.dtype == np.float64
    eager = _eager(acquisition.counts, aligned, variance=True)
    np.testing.assert_array_equal(np.asarray(variance), eager)
    for frame in range(acquisition.n_frames):
        np.testing.assert_array_equal(variance[frame], eager[frame])
        # Raw counts are Poisson: the moved variance is the counts moved with w**2.
        np.testing.assert_allclose(variance[frame], _bilinear(
            acquisition.counts[frame], translations[frame], 2), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(aligned.counts[frame], _bilinear(
            acquisition.counts[frame], translations[frame], 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(variance[3], variance[3])  # the same at every read
    ones = np.ones((acquisition.n_frames, 1) + acquisition.shape[2:], np.float32)
    assert aligned.coverage.dtype == np.float32
    np.testing.assert_array_equal(aligned.coverage,
                                  _eager(ones, aligned, False)[:, 0].astype(np.float32))


def test_piecewise_variance_and_coverage_equal_the_eager_warp():
    sim = simulate_deformation("mineral", "bulge", 8, 20.0, window=96, amplitude_px=3.0,
                               max_drift_px=1.5, seed=4)
    acquisition = _acquisition(sim["frames"], seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)
        aligned = run_recipe(acquisition, [("align_frames", {"method": "piecewise",
                                                             "channel": "sum"})])
    assert np.any(aligned.registration.displacement_px)  # a real warp, not rigid
    assert isinstance(aligned.variance, MovedFrames)
    np.testing.assert_array_equal(np.asarray(aligned.variance),
                                  _eager(acquisition.counts, aligned, variance=True))
    np.testing.assert_array_equal(aligned.variance[5, 2],
                                  _eager(acquisition.counts, aligned, variance=True)[5, 2])
    ones = np.ones((acquisition.n_frames, 1) + acquisition.shape[2:], np.float32)
    np.testing.assert_array_equal(aligned.coverage,
                                  _eager(ones, aligned, False)[:, 0].astype(np.float32))
    # The warp moves each count with weights adding up to 1 and their squares at most 1.
    assert np.all(np.asarray(aligned.variance) <= np.asarray(aligned.counts) + 1e-9)


def test_whole_pixel_moves_stay_exact_and_raw_counts_need_no_variance():
    acquisition = _drifting(seed=2)
    aligned = _align(acquisition, "sequential")
    translations = np.asarray(aligned.translations)
    assert np.all(translations == np.round(translations)) and np.any(translations)
    assert aligned.variance is None  # still Poisson: the counts are moved, not mixed
    corrected = _align(acquisition, "sequential", [("correct_dead_time", {})])
    for name in ("variance", "raw_counts"):
        values, before = getattr(corrected, name), getattr(corrected.unaligned, name)
        assert isinstance(values, MovedFrames) and values.dtype == np.asarray(before).dtype
        for frame, (dy, dx) in enumerate(translations.astype(int)):
            # A whole-pixel move written out: the same values, moved, zeros brought in.
            expected = np.zeros_like(np.asarray(before[frame]))
            height, width = expected.shape[-2:]
            expected[:, max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
                np.asarray(before[frame])[:, max(-dy, 0):height + min(-dy, 0),
                                          max(-dx, 0):width + min(-dx, 0)]
            np.testing.assert_array_equal(values[frame], expected)


def test_corrected_counts_move_variance_and_raw_counts_on_access():
    acquisition = _drifting(seed=3)
    aligned = _align(acquisition, "subpixel", [("correct_dead_time", {})])
    before = aligned.unaligned
    assert isinstance(aligned.variance, MovedFrames)
    assert isinstance(aligned.raw_counts, MovedFrames)
    np.testing.assert_array_equal(np.asarray(aligned.variance),
                                  _eager(before.variance, aligned, variance=True))
    np.testing.assert_array_equal(np.asarray(aligned.raw_counts),
                                  _eager(before.raw_counts, aligned, variance=False))


def test_the_step_holds_one_copy_of_the_stack():
    """Traced allocations of the step: the moved counts (float64) and the coverage, plus
    per-frame temporaries; holding the moved variance too would add a second copy.
    One thread, so that the temporaries do not grow with the machine's cores."""
    acquisition = _drifting(n_frames=16, window=96, masses=6, dtype=np.uint16)
    _align(_drifting(n_frames=3, window=32), "subpixel")  # imports and compilation
    set_single_threaded(True)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        aligned = _align(acquisition, "subpixel")
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
        set_single_threaded(False)
    counts = np.asarray(aligned.counts)
    assert counts.dtype == np.float64
    copy, coverage = counts.nbytes, aligned.coverage.nbytes
    assert peak <= copy + coverage + 0.2 * copy, (peak / copy, coverage / copy)
    held = [name for name in ("variance", "raw_counts")
            if isinstance(getattr(aligned, name), np.ndarray)]
    assert not held


@pytest.mark.parametrize("method", ["translations", "field"])
def test_a_frame_is_moved_with_a_few_images_of_temporaries(method):
    """Moving a frame of seven detectors costs a few single images beyond the output, not
    copies of the whole frame (at 512² each such copy is 14 MiB per frame thread on top
    of the moved stack): measured 2.8 images for a translation (8.8 when each weighted
    copy held all seven detectors) and 10 for a field (35 with frame-sized float64
    copies of the input and of the output, 18.6 with index images and the field's
    interpolation by gathers besides)."""
    from napari_nanosims.processing.alignment.warp import iter_apply_displacements

    rng = np.random.default_rng(0)
    data = rng.poisson(4.0, size=(4, 7, 96, 96)).astype(np.uint16)
    translations = rng.uniform(-3, 3, size=(4, 2))
    field = rng.uniform(-1, 1, size=(4, 2, 3, 3))
    grid = (np.array([10.0, 48.0, 86.0]),) * 2

    def move():
        if method == "translations":
            return iter_apply_translations(data, translations, padding=8)
        return iter_apply_displacements(data, translations, field, grid, padding=8)

    image = 96 * 96 * 8  # one float64 image
    set_single_threaded(True)
    try:
        expected = run_to_completion(move())
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            moved = run_to_completion(move())
            beyond = (tracemalloc.get_traced_memory()[1] - before - moved.nbytes) / image
        finally:
            tracemalloc.stop()
    finally:
        set_single_threaded(False)
    np.testing.assert_array_equal(moved, expected)
    # Nothing leaves the padded frame: every frame's and detector's total is conserved.
    np.testing.assert_allclose(moved.sum(axis=(2, 3)), data.sum(axis=(2, 3)), rtol=1e-12)
    assert beyond <= (4 if method == "translations" else 13), beyond


def test_the_step_gives_the_registrations_freed_memory_back_before_moving(monkeypatch):
    """glibc keeps the registration's freed blocks (about 80 MiB at 512²), which the
    moved stack allocated next cannot use: the step returns them to the system between
    the registration and the move."""
    import napari_nanosims.steps.frames as frame_steps

    events = []
    monkeypatch.setattr(frame_steps, "release_freed_memory", lambda: events.append("trim"))
    original = frame_steps.iter_register_frames

    def registering(*args, **kwargs):
        result = yield from original(*args, **kwargs)
        events.append("registered")
        return result

    monkeypatch.setattr(frame_steps, "iter_register_frames", registering)
    moving = frame_steps.iter_apply_translations

    def moves(*args, **kwargs):
        events.append("move")
        return moving(*args, **kwargs)

    monkeypatch.setattr(frame_steps, "iter_apply_translations", moves)
    _align(_drifting(n_frames=4, window=32), "subpixel")
    assert events == ["registered", "trim", "move"]


def test_freed_memory_is_returned_through_glibc_where_there_is_one():
    import platform

    from napari_nanosims.processing import _frames

    if platform.libc_ver()[0] != "glibc":
        pytest.skip(f"no glibc here ({platform.libc_ver()}): release_freed_memory does nothing")
    assert _frames._malloc_trim() is not None
    _frames.release_freed_memory()  # and it can be called


# -- what reads them ---------------------------------------------------------------------
def _eager_twin(aligned):
    """The same result with the moved arrays held whole, as the step made them before."""
    changes = {}
    before = aligned.unaligned
    if aligned.variance is not None:
        source = before.variance if before.variance is not None else before.counts
        changes["variance"] = _eager(source, aligned, variance=True)
    if aligned.raw_counts is not None:
        changes["raw_counts"] = _eager(before.raw_counts, aligned, variance=False)
    return aligned.replace(**changes)


def _assert_same_accumulation(one, other):
    for name in ("counts", "variance", "raw_counts", "coverage"):
        np.testing.assert_array_equal(getattr(one, name), getattr(other, name))


@pytest.mark.parametrize("corrected", [False, True])
def test_sums_ratios_rois_exclusion_and_exports_see_the_same_numbers(tmp_path, corrected):
    acquisition = _drifting(n_frames=6, window=40, seed=5)
    aligned = _align(acquisition, "subpixel",
                     [("correct_dead_time", {})] if corrected else [])
    twin = _eager_twin(aligned)
    assert isinstance(aligned.variance, MovedFrames) and isinstance(twin.variance, np.ndarray)
    _assert_same_accumulation(accumulate(aligned), accumulate(twin))
    _assert_same_accumulation(accumulate(aligned, [4, 1]), accumulate(twin, [4, 1]))
    for kernel in (1, 3):
        lazy, held = (evaluate(a, "13C/12C", kernel=kernel) for a in (aligned, twin))
        np.testing.assert_array_equal(lazy.value, held.value)
        np.testing.assert_array_equal(lazy.sigma, held.sigma)
    labels = np.zeros(aligned.shape[2:], np.int32)
    labels[5:15, 6:18], labels[22:34, 20:33] = 1, 2
    pd.testing.assert_frame_equal(roi_table(aligned, labels, ["13C/12C"]),
                                  roi_table(twin, labels, ["13C/12C"]))
    # Leaving frames out keeps the moved arrays lazy, with the frames kept.
    steps = [("exclude_frames", {"frames": "1, 3", "flagged": False})]
    kept, kept_twin = run_recipe(aligned, steps), run_recipe(twin, steps)
    assert isinstance(kept.variance, MovedFrames) and kept.variance.shape[0] == 4
    np.testing.assert_array_equal(np.asarray(kept.variance), twin.variance[[0, 2, 4, 5]])
    if corrected:
        assert isinstance(kept.raw_counts, MovedFrames)
        np.testing.assert_array_equal(np.asarray(kept.raw_counts),
                                      twin.raw_counts[[0, 2, 4, 5]])
    _assert_same_accumulation(accumulate(kept), accumulate(kept_twin))
    summed, summed_twin = (run_recipe(a, [("sum_frames", {})]) for a in (kept, kept_twin))
    np.testing.assert_array_equal(summed.sums, summed_twin.sums)
    _assert_same_accumulation(accumulate(summed), accumulate(summed_twin))
    # The variance OME-TIFF (the accumulated variance and the coverage).
    paths = {}
    for name, result in (("lazy", summed), ("held", summed_twin)):
        paths[name] = tmp_path / f"{name}_variance.ome.tif"
        write_acquisition_tiffs(result, {"variance": paths[name]})
    np.testing.assert_array_equal(tifffile.imread(paths["lazy"]),
                                  tifffile.imread(paths["held"]))


# -- the lazy array itself ---------------------------------------------------------------
@pytest.fixture(scope="module")
def moved():
    rng = np.random.default_rng(7)
    source = rng.poisson(4.0, size=(6, 3, 20, 24)).astype(np.uint16)
    translations = rng.uniform(-3, 3, size=(6, 2))
    lazy = MovedFrames(source, translations, variance=True)
    return lazy, np.stack([_bilinear(source[k], translations[k], 2) for k in range(6)])


@pytest.mark.parametrize("key", [
    2, -1, np.int64(4), slice(1, 5, 2), slice(None, None, -1), [3, 0, 3], np.array([5, 1]),
    np.array([True, False, True, False, False, True]), (Ellipsis, 2), (slice(None), 1),
    (slice(None), 1, slice(2, 9)), ([0, 2], [1, 2]), (2, [0, 2]), (slice(None), [2, 0]),
    slice(0, 0), (1, slice(None), 4, 7), ([[0, 1], [2, 3]],)])
def test_moved_frames_index_like_the_moved_stack(moved, key):
    lazy, expected = moved
    assert lazy.dtype == np.float64 and lazy.shape == expected.shape
    np.testing.assert_allclose(lazy[key], expected[key], rtol=1e-12, atol=1e-12)
    assert lazy[key].shape == expected[key].shape


def test_moved_frames_views_reductions_pickling_and_chains(moved):
    lazy, expected = moved
    full = np.asarray(lazy)
    np.testing.assert_allclose(full, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(lazy.mass(1)[2:5], full[2:5, 1])
    assert lazy.mass(1).shape == full[:, 1].shape
    np.testing.assert_array_equal(lazy.select_frames([4, 0])[1], full[0])
    np.testing.assert_array_equal(lazy.sum(axis=0), full.sum(axis=0))
    np.testing.assert_allclose(lazy.sum(axis=(2, 3)), full.sum(axis=(2, 3)), rtol=1e-12)
    np.testing.assert_allclose(lazy.mean(), full.mean(), rtol=1e-12)
    assert lazy.max() == full.max() and lazy.min(axis=1).shape == full.min(axis=1).shape
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(lazy))[3], full[3])
    chained = ChainedCounts([lazy, lazy.select_frames(slice(0, 2))])
    np.testing.assert_array_equal(chained[[7, 1]], np.concatenate([full, full[:2]])[[7, 1]])
    with pytest.raises(ValueError, match="read-only"):
        lazy[0] = 0
    with pytest.raises(IndexError):
        lazy[6]
