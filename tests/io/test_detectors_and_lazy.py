"""Detector slots of every mass, LazyCounts (the roll on access) and non-regular files."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import ORACLE, REAL_FILES, needs_shared, real_file

from napari_nanosims import ImFormatError, load_mims, read_header, sniff_im, write_im
from napari_nanosims.io.lazy import LazyCounts
from napari_nanosims.io.reader import MimsFile

# What the instrument's slot numbers mean (../shared/docs/analysis.md section 1.3).
SLOT_TO_DETECTOR = {1: "EM1", 2: "EM2", 3: "EM3", 4: "EM4", 5: "EM5", 8: "SE", 10: "EM6",
                    11: "EM7"}


@needs_shared
@pytest.mark.parametrize("name", REAL_FILES)
def test_slots_and_detectors_of_the_real_files(name):
    header = read_header(real_file(name))
    expected_slots = ORACLE[name]["mass_index_field"]
    assert list(header.trolley_slots) == expected_slots
    assert list(header.detectors) == [SLOT_TO_DETECTOR[s] for s in expected_slots]
    # The trolley record at index t holds the acquisition index of the mass in slot t.
    trolleys = MimsFile(real_file(name)).blocks["tab_Bfield_nano"][0].m_TrolleyTab
    for mass, slot in enumerate(expected_slots):
        assert trolleys[slot].m_nNum == mass and trolleys[slot].m_nFlagTrolleyValided == 1


@needs_shared
def test_grain_mode_file_detectors_by_value():
    header = read_header(real_file("grain mode cameca.im"))
    assert header.trolley_slots == (1, 2, 3, 4, 5, 8, 10, 11)
    assert header.detectors == ("EM1", "EM2", "EM3", "EM4", "EM5", "SE", "EM6", "EM7")
    assert header.labels[5] == "SE"


@pytest.mark.parametrize("legacy", [False, True])
def test_write_im_writes_the_real_slots(tmp_path, legacy):
    labels = ["12C", "13C", "12C 14N", "SE", "12C 15N", "31P", "32S", "34S"][:8 if not legacy
                                                                            else 6]
    amu = [12, 13, 26, 0, 27, 31, 32, 34][:len(labels)]
    data = np.ones((1, len(labels), 8, 8), np.uint16)
    path = write_im(tmp_path / "s.im", data, labels, amu, 5.0, 1000, legacy=legacy)
    mims = MimsFile(path)
    header = mims.header
    if legacy:  # old files only have EM1-EM5 (and SE in slot 8)
        assert header.trolley_slots == (1, 2, 3, 8, 4, 5)
        assert header.detectors == ("EM1", "EM2", "EM3", "SE", "EM4", "EM5")
    else:
        assert header.trolley_slots == (1, 2, 3, 8, 4, 5, 10, 11)
        assert header.detectors == ("EM1", "EM2", "EM3", "SE", "EM4", "EM5", "EM6", "EM7")
    trolleys = mims.blocks["tab_Bfield_nano"][0].m_TrolleyTab
    for mass, slot in enumerate(header.trolley_slots):
        assert trolleys[slot].m_nNum == mass
    # the Tab_mass index field agrees with the trolley table, as in real files
    assert [r._not_in_spec for r in mims.blocks["tab_mass"]] == list(header.trolley_slots)


@pytest.fixture
def random_file(im_factory):
    """Write uniform counts in [0, 5000); return them and the path."""
    def make(shape=(5, 3, 7, 9), signed=True, seed=0):
        data = np.random.default_rng(seed).integers(0, 5000, size=shape).astype(np.uint32)
        path = im_factory(f"r{int(signed)}.im", data, labels=["12C", "13C", "SE"][:shape[1]],
                          masses_amu=[12, 13, 0][:shape[1]], dwell_time_us=1000,
                          signed=signed)
        return data, path

    return make


KEYS = [0, -1, (slice(None), 1), (1, 2, 3, 4), (Ellipsis, 0), (Ellipsis, -1, slice(2, None)),
        (slice(1, 4), slice(None), slice(None, None, 2), slice(None, None, -3)),
        ([0, 3], 1), (2, Ellipsis), (slice(None), slice(None), [6, 0, 2], 0),
        (0, 0, slice(3, 3)), (slice(None), 0, np.array([1, 5]), slice(None)),
        (1, 2, np.array([True, False, True, False, False, False, True]))]


@pytest.mark.parametrize("key", KEYS, ids=[repr(k) for k in KEYS])
def test_unsigned_release_4108_files_are_rolled_on_access(random_file, key):
    data, path = random_file(signed=False)
    mims = load_mims(path)
    assert mims.header.roll_applied == (1, 1)
    counts = mims.data
    assert isinstance(counts, LazyCounts) and counts.memory_mapped
    rolled = np.roll(data, (1, 1), axis=(2, 3))
    np.testing.assert_array_equal(counts[key], rolled[key])
    np.testing.assert_array_equal(np.asarray(counts), rolled)
    one_mass = counts.mass(1)
    assert isinstance(one_mass, LazyCounts) and one_mass.shape == rolled[:, 1].shape
    for mass_key in (0, (slice(None), 3), (Ellipsis, slice(1, 5), -1), slice(None, None, 2)):
        np.testing.assert_array_equal(one_mass[mass_key], rolled[:, 1][mass_key])


@pytest.mark.parametrize("signed", [True, False])
def test_reductions_match_numpy(random_file, signed, monkeypatch):
    import napari_nanosims.io.lazy as lazy

    monkeypatch.setattr(lazy, "BLOCK_BYTES", 300)  # force several blocks
    data, path = random_file(shape=(6, 3, 5, 4), signed=signed)
    counts = load_mims(path).data
    expected = np.roll(data, (1, 1), axis=(2, 3)) if not signed else data
    for axis in (None, 0, (0, 2, 3), (2, 3), 1, -1):
        assert np.array_equal(counts.sum(axis=axis), expected.sum(axis=axis))
        assert np.array_equal(np.sum(counts, axis=axis), expected.sum(axis=axis))
        assert np.array_equal(counts.max(axis=axis), expected.max(axis=axis))
        assert np.array_equal(counts.min(axis=axis), expected.min(axis=axis))
        np.testing.assert_allclose(counts.mean(axis=axis), expected.mean(axis=axis))


def test_lazy_counts_refuse_bad_indices(random_file):
    _, path = random_file()
    counts = load_mims(path).data
    with pytest.raises(IndexError):
        counts[0, 0, 0, 0, 0]
    with pytest.raises(IndexError):
        counts[0, 0, 99]
    with pytest.raises(ValueError, match="read-only"):
        counts[0] = 1


class _OpenedTheFifo(BaseException):
    """Raised instead of opening the FIFO: an open for reading would wait for a writer
    forever. A BaseException, so no ``except OSError`` or ``except Exception`` hides it."""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_named_im_is_refused_at_once(tmp_path, monkeypatch):
    """Refused from its file type alone: the FIFO is never opened (opening one for reading
    blocks until a writer comes), which is what "at once" needs, whatever the clock says."""
    import builtins
    import io

    fifo = tmp_path / "pipe.im"
    os.mkfifo(fifo)
    fifo_path = os.path.realpath(fifo)

    def refusing_the_fifo(original):
        def open_unless_fifo(file, *args, **kwargs):
            if (isinstance(file, (str, bytes, os.PathLike))
                    and os.path.realpath(os.fsdecode(file)) == fifo_path):
                raise _OpenedTheFifo(file)
            return original(file, *args, **kwargs)
        return open_unless_fifo

    for module in (builtins, io, os):
        monkeypatch.setattr(module, "open", refusing_the_fifo(module.open))
    with pytest.raises(_OpenedTheFifo):  # the guard works: opening it is caught, not a hang
        open(fifo, "rb")  # noqa: SIM115 - the guard raises before anything is opened
    assert sniff_im(fifo) is False
    with pytest.raises(ImFormatError, match="not a regular file"):
        load_mims(fifo)
    with pytest.raises(ImFormatError, match="pipe.im"):
        read_header(fifo)
    with pytest.raises(ImFormatError, match="not a regular file"):
        read_header(tmp_path)  # a folder
