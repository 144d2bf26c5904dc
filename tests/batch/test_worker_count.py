"""The default ``--workers``: one after the other for a few small files, processes when
the work pays for their start (:func:`napari_nanosims.batch.workers.choose_workers`; no
timing here: the estimate's constants are measured by ``benchmarks/bench_batch.py``)."""

from __future__ import annotations

import math

import pytest

from napari_nanosims.batch import workers as rule
from napari_nanosims.batch.workers import choose_workers

MIB = 2**20
DEMO = 35 * MIB  # the demo file: 20 frames x 7 masses x 256 x 256 x 4 bytes
REAL = [2 * MIB, MIB // 2, 2 * MIB, MIB // 2]  # the real files' sizes, each twice


def _demo_seconds() -> float:
    """The estimated seconds of one demo file, written out."""
    return rule.SECONDS_PER_FILE + 35 * rule.SECONDS_PER_MIB


@pytest.mark.parametrize("cores", [1, 2, 4, 16])
def test_a_few_small_files_run_one_after_the_other(cores):
    assert choose_workers([], cores) == 1
    assert choose_workers(REAL, cores) == 1
    assert choose_workers([DEMO] * 6, cores) == 1  # 6 files: the start costs more


def test_many_files_use_the_cores_but_not_more_processes_than_files():
    assert choose_workers([DEMO] * 40, 2) == 2
    assert choose_workers([DEMO] * 40, 1) == 1
    assert choose_workers([DEMO] * 400, 8) == 8
    assert choose_workers([400 * MIB] * 3, 16) == 3  # three big files: three processes


def test_the_pool_starts_where_it_pays_by_the_margin():
    """On 2 cores the pool is chosen from the first n for which
    start + n t / 2 <= margin n t, i.e. n >= start / ((margin - 1/2) t)."""
    first = math.ceil(rule.WORKER_START_S / ((rule.POOL_MARGIN - 0.5) * _demo_seconds()))
    assert choose_workers([DEMO] * (first - 1), 2) == 1
    assert choose_workers([DEMO] * first, 2) == 2


def test_one_large_file_among_small_ones_is_not_spread():
    """The pool cannot be faster than its largest file: a 1 GiB file with a few small
    ones runs one after the other."""
    assert choose_workers([1024 * MIB] + [MIB] * 10, 2) == 1


def test_unreadable_files_count_as_empty(tmp_path):
    from napari_nanosims.batch.workers import workers_for

    assert workers_for([tmp_path / "missing.im"] * 40) == 1  # 40 files of nothing


def test_a_pool_only_on_cores_other_programs_leave_free(tmp_path, monkeypatch):
    """workers_for: the sizes of the files, then the free cores when a pool would pay."""
    from napari_nanosims.batch.workers import workers_for

    paths = []
    for index in range(40):  # demo-sized files, sparse: nothing is written
        path = tmp_path / f"f{index}.im"
        with open(path, "wb") as handle:
            handle.truncate(DEMO)
        paths.append(path)
    looks = []
    monkeypatch.setattr(rule, "default_workers", lambda: 2)
    for free in (2, 1):
        monkeypatch.setattr(rule, "free_cores", lambda free=free: looks.append(free) or free)
        assert workers_for(paths) == free
    assert looks == [2, 1]
    looks.clear()
    assert workers_for(paths[:6]) == 1 and looks == []  # too little work: no look at all


def test_busy_cores_are_a_share_of_the_machine():
    busy = rule._busy_cores(0.05)
    if busy is None:
        pytest.skip("no /proc/stat here")
    import os

    assert 0.0 <= busy <= os.cpu_count()
    assert 1 <= rule.free_cores(0.05) <= rule.default_workers()
