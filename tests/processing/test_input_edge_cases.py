"""Inputs at the edges of their types (issue 20, item 11): big-endian stacks, 64-bit
integers near their limits, NaN counts, and where numba keeps its compiled kernels."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from napari_nanosims import infer_translations, register_frames, remove_hot_pixels
from napari_nanosims.testing.simulate import simulate_scene


def _hot_stack():
    counts = np.random.default_rng(4).poisson(5, size=(40, 4, 32, 32)).astype("<u4")
    counts[[2, 17], :, 5, 5] = 200  # a hot pixel in every detector, in two frames
    return counts


def test_big_endian_stacks_are_cleaned_as_native_ones():
    counts = _hot_stack()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        native = remove_hot_pixels(counts)
        swapped = remove_hot_pixels(counts.astype(">u4"))
    np.testing.assert_array_equal(native, swapped)
    assert (native[[2, 17], :, 5, 5] < 200).all()  # the hot pixel was replaced


def _drifting(seed=1):
    return simulate_scene("cells", 4, 20.0, window=48, max_drift_px=3.0, seed=seed)["frames"]


@pytest.mark.parametrize("offset, dtype", [
    (np.iinfo(np.uint64).max - 1000, np.uint64),   # near uint64's maximum
    (np.iinfo(np.int64).min, np.int64),            # near int64's minimum
    (2**62, np.int64),
])
def test_64_bit_counts_near_their_limits_align_as_small_ones(offset, dtype):
    frames = _drifting()
    assert frames.max() < 1000
    shifted = (frames.astype(dtype) + np.array(offset, dtype=dtype)).astype(dtype)
    for method in ("sequential", "subpixel"):
        np.testing.assert_array_equal(infer_translations(shifted, method=method),
                                      infer_translations(frames, method=method))


def test_nan_counts_are_refused_naming_the_frames():
    frames = _drifting().astype(np.float64)
    frames[2, 10, 10] = np.nan
    frames[3, 0, 0] = np.inf
    for call in (lambda: infer_translations(frames), lambda: register_frames(frames)):
        with pytest.raises(ValueError, match=r"data hold 2 NaN or infinite value\(s\) in "
                                             r"frame\(s\) 2, 3; alignment needs finite"):
            call()


_NUMBA_CHILD = """
import numpy as np, warnings
from napari_nanosims import remove_hot_pixels
import numba.core.config as config
counts = np.random.default_rng(0).poisson(5, size=(8, 4, 16, 16)).astype(np.uint32)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    remove_hot_pixels(counts)
print(config.CACHE_DIR)
"""


def _child(environment):
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_CACHE_DIR"}
    env.update(environment)
    done = subprocess.run([sys.executable, "-c", _NUMBA_CHILD], env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_numba_caches_in_the_user_cache_folder_unless_the_user_chose(tmp_path):
    ours = tmp_path / "cache"
    assert _child({"NAPARI_NANOSIMS_CACHE": str(ours)}) == str(ours / "numba")
    assert any(ours.joinpath("numba").rglob("*.nbi"))  # the kernels were cached there
    chosen = tmp_path / "mine"
    assert _child({"NAPARI_NANOSIMS_CACHE": str(ours),
                   "NUMBA_CACHE_DIR": str(chosen)}) == str(chosen)
