"""The synthetic-file factory writes what it is given, and the same file for the same seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_nanosims import load_mims, read_header
from napari_nanosims.testing.factory import default_masses, make_im, poisson_counts


def test_drawn_counts_are_seeded_poisson_and_read_back(tmp_path):
    path = make_im(tmp_path / "sub" / "a.im", frames=3, shape=(8, 10), mean=4.0, seed=5)
    expected = np.random.default_rng(5).poisson(4.0, size=(3, 4, 8, 10)).astype(np.uint32)
    np.testing.assert_array_equal(np.asarray(load_mims(path).data), expected)
    header = read_header(path)
    assert list(header.labels) == ["12C", "13C", "12C 14N", "SE"]
    assert list(header.masses_amu) == [12.0, 13.0, 14.0, 0.0]
    # the header holds the file name: compare files of the same name
    again = make_im(tmp_path / "again" / "a.im", frames=3, shape=(8, 10), mean=4.0, seed=5)
    assert Path(path).read_bytes() == Path(again).read_bytes()
    other = make_im(tmp_path / "other" / "a.im", frames=3, shape=(8, 10), mean=4.0, seed=6)
    assert Path(path).read_bytes() != Path(other).read_bytes()


def test_given_counts_and_options_reach_the_file(im_factory):
    counts = np.arange(2 * 2 * 3 * 4, dtype=np.uint32).reshape(2, 2, 3, 4)
    path = im_factory("given.im", counts, labels=["12C 14N", "SE"], masses_amu=[26.0, 0.0],
                      raster_um=7.0, dwell_time_us=250, legacy=True)
    mims = load_mims(path)
    np.testing.assert_array_equal(np.asarray(mims.data), counts)
    assert mims.header.byte_order == ">"  # legacy reached write_im
    assert mims.header.raster_um == 7.0 and mims.header.dwell_time_us == 250


def test_poisson_counts_and_default_masses():
    counts = poisson_counts(2, 3, (4, 5), mean=2.0, seed=1)
    assert counts.shape == (2, 3, 4, 5) and counts.dtype == np.uint32
    np.testing.assert_array_equal(counts, poisson_counts(2, 3, (4, 5), mean=2.0, seed=1))
    assert default_masses(["12C", "SE", "13C"]) == [12.0, 0.0, 14.0]
