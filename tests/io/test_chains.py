"""concatenate: chained acquisitions of one field as one lazy Acquisition."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from napari_nanosims import Acquisition, align_frames, concatenate, open_acquisition
from napari_nanosims.io.chained import ChainedCounts
from napari_nanosims.io.chains import same_field
from napari_nanosims.testing.factory import poisson_counts

T0 = dt.datetime(2024, 3, 1, 9, 0)
FIELD = (1200, -3400, 50)


def _chain_files(im_factory, frames=(3, 4, 2), **options):
    """Files of one field, each started 10 minutes after the one before."""
    paths, arrays = [], []
    for k, n in enumerate(frames):
        counts = poisson_counts(n, 4, (16, 20), mean=4.0, seed=10 + k)
        paths.append(im_factory(f"part{k}.im", counts, analysis_date=T0 + dt.timedelta(
            minutes=10 * k), stage_position_um=FIELD, duration_s=300, **options))
        arrays.append(counts)
    return paths, arrays


def test_frames_are_the_files_frames_in_time_order_without_copying(im_factory):
    paths, arrays = _chain_files(im_factory)
    chain = concatenate([paths[2], paths[0], paths[1]])  # given out of order
    expected = np.concatenate(arrays)  # written in time order
    assert chain.shape == expected.shape
    assert isinstance(chain.counts, ChainedCounts) and chain.counts.memory_mapped
    assert np.array_equal(np.asarray(chain.counts), expected)
    record = chain.history[-1]
    assert record.name == "concatenate"
    assert [p.rsplit("/", 1)[-1] for p in record.parameters["files"]] == \
        ["part0.im", "part1.im", "part2.im"]
    assert record.parameters["frames"] == [3, 4, 2]
    assert record.parameters["first_frames"] == [0, 3, 7]
    assert chain.header.n_frames == 9 and chain.header.analysis_duration_s == 900
    assert chain.name == "part0_chain3.im"


@pytest.mark.parametrize("key", [
    np.s_[:], np.s_[2:6], np.s_[::-1], np.s_[8:1:-3], np.s_[[8, 0, 3, 3]], np.s_[4],
    np.s_[-1], np.s_[:, 1], np.s_[1:8, 2, 3:7, [1, 2]], np.s_[..., 0],
    np.s_[[6, 1], [0, 1], :, [2, 3]], np.s_[np.arange(9) % 2 == 0], np.s_[3:3],
    np.s_[:, :, 5, :], np.s_[2:5, [0, 3]]])
def test_indexing_matches_numpy_on_the_joined_array(im_factory, key):
    paths, arrays = _chain_files(im_factory)
    chain = concatenate(paths)
    expected = np.concatenate(arrays)[key]
    got = chain.counts[key]
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_reductions_and_mass_views_match_numpy(im_factory):
    paths, arrays = _chain_files(im_factory)
    counts = concatenate(paths).counts
    full = np.concatenate(arrays)
    assert np.array_equal(counts.sum(axis=(0, 2, 3)), full.sum(axis=(0, 2, 3), dtype=np.uint64))
    assert np.array_equal(counts.max(axis=0), full.max(axis=0))
    assert np.array_equal(counts.min(axis=1), full.min(axis=1))
    assert np.allclose(counts.mean(axis=(2, 3)), full.mean(axis=(2, 3)))
    se = counts.mass(3)
    assert se.shape == (9, 16, 20) and np.array_equal(np.asarray(se), full[:, 3])
    assert np.array_equal(se.sum(axis=0), full[:, 3].sum(axis=0))
    assert counts.part_of_frame(3) == 1 and counts.part_of_frame(8) == 2


def test_chained_counts_are_read_only(im_factory):
    paths, _ = _chain_files(im_factory)
    with pytest.raises(ValueError, match="read-only"):
        concatenate(paths).counts[0] = 1


def test_steps_run_on_a_chain_and_record_after_concatenate(im_factory):
    paths, arrays = _chain_files(im_factory, frames=(2, 2, 2))
    aligned = align_frames(concatenate(paths), channel="SE")
    assert [r.name for r in aligned.history] == ["concatenate", "align_frames"]
    assert aligned.translations.shape == (6, 2)


def test_acquisitions_are_accepted_and_given_order_kept(im_factory):
    a = Acquisition.from_arrays(poisson_counts(2, 2, seed=1), ["12C", "SE"], name="a")
    b = Acquisition.from_arrays(poisson_counts(3, 2, seed=2), ["12C", "SE"], name="b")
    with pytest.raises(ValueError, match="no date in the header of b, a"):
        concatenate([b, a])
    chain = concatenate([b, a], order="given")
    assert np.array_equal(np.asarray(chain.counts),
                          np.concatenate([np.asarray(b.counts), np.asarray(a.counts)]))


@pytest.mark.parametrize("change, message", [
    (dict(labels=("12C", "13C", "12C 15N", "SE")), r"masses differ \(12C, 13C, 12C 14N, SE vs "
                                                   r"12C, 13C, 12C 15N, SE\)"),
    (dict(raster_um=10.0), r"raster differs \(5 µm vs 10 µm\); pixel size differs"),
    (dict(dwell_time_us=200.0), r"dwell time differs \(100 µs vs 200 µs\)"),
    (dict(shape=(16, 16)), r"image size differs \(20 x 16 px vs 16 x 16 px\)"),
    (dict(detectors=("EM2", "EM1", "EM3", "SE")), "detectors differ"),
])
def test_mixed_files_are_refused_naming_what_differs(im_factory, change, message):
    paths, _ = _chain_files(im_factory, frames=(2,))
    shape = change.pop("shape", (16, 20))
    other = im_factory("other.im", poisson_counts(2, 4, shape, seed=3),
                       analysis_date=T0 + dt.timedelta(hours=1), stage_position_um=FIELD,
                       **change)
    with pytest.raises(ValueError, match=r"cannot join part0\.im and other\.im: " + message):
        concatenate([paths[0], other])


def test_overlapping_times_a_file_twice_and_empty_input_are_refused(im_factory):
    first = im_factory("first.im", frames=2, analysis_date=T0, duration_s=1800)
    second = im_factory("second.im", frames=2, analysis_date=T0 + dt.timedelta(minutes=10))
    with pytest.raises(ValueError, match=r"second\.im started at 2024-03-01 09:10, before "
                                         r"first\.im \(started 2024-03-01 09:00, 1800 s\)"):
        concatenate([first, second])
    assert concatenate([first, second], order="given").n_frames == 4
    with pytest.raises(ValueError, match="the same file is given twice: first.im"):
        concatenate([first, first])
    with pytest.raises(ValueError, match="at least one"):
        concatenate([])
    with pytest.raises(ValueError, match="a list of paths"):
        concatenate(first)
    with pytest.raises(ValueError, match="order must be"):
        concatenate([first], order="name")


def test_aligned_inputs_are_refused(im_factory):
    paths, _ = _chain_files(im_factory, frames=(2, 2))
    aligned = align_frames(open_acquisition(paths[0]), channel="SE")
    with pytest.raises(ValueError, match="part0.im already has translations"):
        concatenate([aligned, paths[1]])


def test_same_field_reads_the_headers(im_factory):
    paths, _ = _chain_files(im_factory, frames=(2, 2))
    headers = [open_acquisition(p).header for p in paths]
    assert same_field(headers)
    moved = im_factory("moved.im", frames=2, stage_position_um=(1250, -3400, 50))
    assert not same_field(headers + [open_acquisition(moved).header])
    zero = [open_acquisition(im_factory(f"z{k}.im", frames=2)).header for k in range(2)]
    assert not same_field(zero)  # (0, 0) says nothing about the field
    assert not same_field(headers[:1])


@pytest.mark.slow
def test_alignment_across_the_file_boundary_is_continuous(im_factory):
    """One drifting field written as two files: the chain aligns as the whole run does."""
    from napari_nanosims.testing.simulate import simulate_scene

    simulation = simulate_scene("cells", 16, 30.0, window=64, max_drift_px=4.0,
                                drift="linear", seed=3)
    frames = simulation["frames"]  # (16, 64, 64)
    counts = np.stack([frames, frames], axis=1)  # an ion image and "SE" from the same field
    labels = ("12C", "SE")
    late = im_factory("late.im", counts[8:], labels=labels, raster_um=10.0,
                      analysis_date=T0 + dt.timedelta(minutes=30), stage_position_um=FIELD)
    early = im_factory("early.im", counts[:8], labels=labels, raster_um=10.0,
                       analysis_date=T0, stage_position_um=FIELD)
    whole = im_factory("whole.im", counts, labels=labels, raster_um=10.0)
    chain = align_frames(concatenate([late, early]), channel="12C", method="subpixel")
    reference = align_frames(open_acquisition(whole), channel="12C", method="subpixel")
    # The chain is the run: the same translations as one file holding every frame ...
    np.testing.assert_allclose(chain.translations, reference.translations, atol=1e-9)
    # ... and they follow the true drift through frames 7 -> 8 (the file boundary).
    error = chain.translations - simulation["translations_px"]
    error -= np.median(error, axis=0)
    assert np.max(np.abs(error)) < 0.5
    true_step = np.diff(simulation["translations_px"], axis=0)[7]
    assert np.max(np.abs(np.diff(chain.translations, axis=0)[7] - true_step)) < 0.5


def test_peak_switched_files_keep_each_mass_in_its_own_frames(im_factory):
    # Two B fields: 12C and 13C in the first scan of each cycle, 12C 15N and SE in the second.
    counts = np.ones((3, 4, 8, 8), dtype=np.uint32)
    options = dict(labels=("12C", "13C", "12C 15N", "SE"), masses_amu=(12, 13, 27, 0),
                   b_fields=(0, 0, 1, 1), stage_position_um=FIELD)
    first = im_factory("ps0.im", counts, analysis_date=T0, **options)
    second = im_factory("ps1.im", counts, analysis_date=T0 + dt.timedelta(hours=1), **options)
    chain = concatenate([second, first])
    n = open_acquisition(first).n_frames  # 6 scans: 3 cycles x 2 B fields
    assert chain.n_frames == 2 * n
    assert chain.channel("12C").frames == tuple(range(0, 2 * n, 2))
    assert chain.channel("SE").frames == tuple(range(1, 2 * n, 2))
    plain = im_factory("plain.im", np.ones((6, 4, 8, 8), dtype=np.uint32),
                       labels=options["labels"], masses_amu=options["masses_amu"],
                       analysis_date=T0 + dt.timedelta(hours=2), stage_position_um=FIELD)
    with pytest.raises(ValueError, match=r"peak switching differs \(2 vs 1 B fields"):
        concatenate([first, plain])
