"""The band choice's noise shapes, kept on disk so that a fresh process reads them
instead of measuring them (issue 24: the first call), and the cache helper underneath
(``napari_nanosims._cache.cached_array``): the same numbers as measured, damaged files
replaced, nothing left half-written, no cache folder no failure."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nanosims import register_frames
from napari_nanosims._cache import cache_dir, cached_array
from napari_nanosims.processing.alignment import powers, weighting
from napari_nanosims.processing.alignment.background import local_background
from napari_nanosims.processing.alignment.subpixel import frame_window
from napari_nanosims.testing.simulate import simulate_scene

SHAPE = (120, 120)  # the padded canvas of 96 px frames
REMOVALS = (8.0, float("inf"))


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache folder and an empty memory cache (a new process, a new machine)."""
    monkeypatch.setenv("NAPARI_NANOSIMS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(powers, "_noise_shapes_cache", {})
    return tmp_path / "cache"


def _counting_measurements(monkeypatch) -> list:
    """Record every measurement of noise shapes (white-noise frames summed)."""
    calls: list = []
    original = powers._summed_powers

    def spy(*args, **kwargs):
        calls.append(args[5])
        return original(*args, **kwargs)

    monkeypatch.setattr(powers, "_summed_powers", spy)
    return calls


def _shapes(window=None):
    window = frame_window((96, 96), None, 1.0) if window is None else window
    return powers._noise_shapes(window, SHAPE, local_background,
                                weighting._grid(*SHAPE), REMOVALS)


def _stored_files(folder):
    return sorted(p.name for p in (folder / "alignment").iterdir())


def test_a_new_process_reads_the_noise_shapes_it_would_have_measured(fresh_cache,
                                                                     monkeypatch):
    calls = _counting_measurements(monkeypatch)
    measured = _shapes()
    assert calls == [REMOVALS]  # measured together, once
    assert len(_stored_files(fresh_cache)) == 2  # one file per removal
    monkeypatch.setattr(powers, "_noise_shapes_cache", {})  # a new process
    read = _shapes()
    assert calls == [REMOVALS]  # read, not measured again
    for removal in REMOVALS:
        np.testing.assert_array_equal(read[removal], measured[removal])  # bit for bit
        assert not read[removal].flags.writeable
    # Another window (another frame size, region or smoothing) is another entry.
    other = _shapes(frame_window((96, 96), None, 2.0))
    assert calls == [REMOVALS, REMOVALS]
    assert not np.array_equal(other[8.0], measured[8.0])
    assert len(_stored_files(fresh_cache)) == 4


def test_a_registration_in_a_new_process_gives_the_same_result_from_the_disk(
        fresh_cache, monkeypatch):
    frames = simulate_scene("grain", 6, 2.0, window=96, seed=2)["frames"]
    first = register_frames(frames)
    calls = _counting_measurements(monkeypatch)
    monkeypatch.setattr(powers, "_noise_shapes_cache", {})
    again = register_frames(frames)
    assert calls == []
    np.testing.assert_array_equal(again.translations, first.translations)
    np.testing.assert_array_equal(again.uncertainty_px, first.uncertainty_px)
    assert (again.smoothing_px, again.high_pass_px) == (first.smoothing_px,
                                                        first.high_pass_px)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong shape", "not finite",
                                    "too large", "pickled"])
def test_a_damaged_file_is_measured_again_and_replaced(fresh_cache, monkeypatch, damage):
    measured = _shapes()
    (path, *_) = sorted((fresh_cache / "alignment").glob("*.npy"))
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not an array at all")
    elif damage == "truncated":
        path.write_bytes(good[:len(good) // 2])
    elif damage == "wrong shape":
        np.save(path, np.ones(7))
    elif damage == "not finite":
        np.save(path, np.full(np.load(path).shape, np.nan))
    elif damage == "too large":  # never read: its header could ask for anything
        path.write_bytes(good + b"\0" * 8192)
    else:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    monkeypatch.setattr(powers, "_noise_shapes_cache", {})
    calls = _counting_measurements(monkeypatch)
    again = _shapes()
    assert len(calls) == 1
    for removal in REMOVALS:
        np.testing.assert_array_equal(again[removal], measured[removal])
    assert path.read_bytes() == good  # replaced by a good copy
    assert not list((fresh_cache / "alignment").glob("*.partial"))


def test_without_a_usable_cache_folder_the_shapes_are_measured_every_time(
        tmp_path, monkeypatch):
    blocker = tmp_path / "a file, not a folder"
    blocker.write_text("")
    monkeypatch.setenv("NAPARI_NANOSIMS_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(powers, "_noise_shapes_cache", {})
    calls = _counting_measurements(monkeypatch)
    first = _shapes()
    monkeypatch.setattr(powers, "_noise_shapes_cache", {})
    second = _shapes()
    assert len(calls) == 2
    np.testing.assert_array_equal(first[8.0], second[8.0])


def test_cached_array_writes_under_a_temporary_name_and_checks_what_it_computed(
        fresh_cache, monkeypatch):
    seen = []

    def compute():
        # While the value is being written, no file of that name exists yet.
        seen.append(sorted(p.name for p in cache_dir().rglob("*")))
        return np.arange(3.0)

    value = cached_array("test", ("a", 1), compute, (3,))
    np.testing.assert_array_equal(value, [0.0, 1.0, 2.0])
    assert seen == [[]]
    assert [p.suffix for p in (fresh_cache / "test").iterdir()] == [".npy"]
    np.testing.assert_array_equal(
        cached_array("test", ("a", 1), lambda: pytest.fail("computed again"), (3,)),
        value)
    with pytest.raises(ValueError, match="computed shape"):
        cached_array("test", ("b", 1), lambda: np.zeros(4), (3,))
    assert len(list((fresh_cache / "test").iterdir())) == 1  # nothing stored for it
