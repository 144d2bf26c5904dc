"""The band choice's noise shapes, kept on disk so that a fresh process reads them
instead of measuring them (issue 24: the first call), and the cache helpers underneath
(``napari_nanosims._cache``): the same numbers as measured, read only where they are
exactly what would be measured, damaged or hostile files ignored and replaced without
allocating what they declare, nothing left half-written, no cache folder no failure."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nanosims import _cache, register_frames
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


def _npy_header(descr: str, shape: tuple) -> bytes:
    """A version 1.0 .npy header declaring ``descr`` and ``shape`` (no data after it)."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


@pytest.mark.parametrize("damage", [
    "garbage", "truncated", "wrong shape", "not finite", "too large", "pickled",
    "huge declared shape", "huge declared dtype", "single precision", "big-endian",
    "fortran order", "zip archive", "a folder"])
def test_a_damaged_file_is_measured_again_and_replaced(fresh_cache, monkeypatch, damage):
    measured = _shapes()
    (path, *_) = sorted((fresh_cache / "alignment").glob("*.npy"))
    good = path.read_bytes()
    rings = np.load(path).shape[0]
    if damage == "garbage":
        path.write_bytes(b"not an array at all")
    elif damage == "truncated":
        path.write_bytes(good[:len(good) // 2])
    elif damage == "wrong shape":
        np.save(path, np.ones(7))
    elif damage == "not finite":
        np.save(path, np.full(rings, np.nan))
    elif damage == "too large":
        path.write_bytes(good + b"\0" * 8192)
    elif damage == "pickled":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif damage == "huge declared shape":  # np.load would try to allocate 7 TiB
        path.write_bytes(_npy_header("<f8", (10 ** 12,)))
    elif damage == "huge declared dtype":  # ... or 2 GB per element
        path.write_bytes(_npy_header("V2000000000", (rings,)))
    elif damage == "single precision":
        np.save(path, np.ones(rings, np.float32))
    elif damage == "big-endian":
        np.save(path, np.ones(rings, ">f8"))
    elif damage == "fortran order":
        path.write_bytes(_npy_header("<f8", (rings,)).replace(b"False", b"True ")
                         + np.ones(rings).tobytes())
    elif damage == "zip archive":
        path.unlink()
        np.savez(path.with_suffix(""), shape=np.ones(rings))
        path.with_suffix(".npz").rename(path)
    else:  # a folder where the file should be: read as missing, and not replaceable
        path.unlink()
        path.mkdir()
    monkeypatch.setattr(powers, "_noise_shapes_cache", {})
    calls = _counting_measurements(monkeypatch)
    again = _shapes()
    assert len(calls) == 1
    for removal in REMOVALS:
        np.testing.assert_array_equal(again[removal], measured[removal])
    if damage != "a folder":
        assert path.read_bytes() == good  # replaced by a good copy
    assert not list((fresh_cache / "alignment").glob("*.partial"))


def test_a_file_is_read_only_where_it_holds_what_would_be_measured(fresh_cache,
                                                                    monkeypatch):
    """The key names what the numbers depend on: a change of the background's code (here
    a removal that differs in the last bits), of the shapes' version or of the canvas
    is a new entry, measured again; the old files are never read for it."""
    measured = _shapes()
    calls = _counting_measurements(monkeypatch)

    def slightly_other_background(counts, sigma_px):
        return local_background(counts, sigma_px) * np.float32(1 + 1e-6)

    slightly_other_background.__module__ = local_background.__module__
    slightly_other_background.__qualname__ = local_background.__qualname__
    monkeypatch.setattr(powers, "_noise_shapes_cache", {})
    other = powers._noise_shapes(frame_window((96, 96), None, 1.0), SHAPE,
                                 slightly_other_background, weighting._grid(*SHAPE),
                                 REMOVALS)
    assert calls == [(8.0,)]  # the same name, other numbers: measured (no removal: read)
    assert not np.array_equal(other[8.0], measured[8.0])
    monkeypatch.setattr(powers, "_noise_shapes_cache", {})
    monkeypatch.setattr(powers, "NOISE_SHAPES_VERSION", powers.NOISE_SHAPES_VERSION + 1)
    _shapes()
    assert calls == [(8.0,), REMOVALS]
    monkeypatch.setattr(powers, "_noise_shapes_cache", {})
    powers._noise_shapes(frame_window((96, 96), None, 1.0), (128, 128), local_background,
                         weighting._grid(128, 128), REMOVALS)
    assert calls == [(8.0,), REMOVALS, REMOVALS]


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


def test_a_copy_is_written_under_a_temporary_name_and_renamed(fresh_cache, monkeypatch):
    key, value = ("a", 1), np.arange(3.0)
    assert _cache.load_cached_array("test", key, (3,)) is None
    real_save = np.save

    def failing_save(handle, array, **kwargs):  # interrupted half-way through writing
        real_save(handle, array, **kwargs)
        handle.truncate(40)
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        _cache.store_cached_array("test", key, value)
    assert list((fresh_cache / "test").iterdir()) == []  # neither a copy nor a part
    monkeypatch.setattr(np, "save", real_save)
    _cache.store_cached_array("test", key, value)
    assert [p.suffix for p in (fresh_cache / "test").iterdir()] == [".npy"]
    np.testing.assert_array_equal(_cache.load_cached_array("test", key, (3,)), value)
    assert _cache.load_cached_array("test", key, (4,)) is None  # another shape asked
    assert _cache.load_cached_array("test", ("a", 2), (3,)) is None


def test_no_home_folder_means_no_copy_and_no_error(monkeypatch):
    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("NAPARI_NANOSIMS_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(_cache.Path, "home", staticmethod(no_home))
    _cache.store_cached_array("test", ("a",), np.ones(2))
    assert _cache.load_cached_array("test", ("a",), (2,)) is None
