"""The frame threads: kept for the process, never waited on by themselves, no task left
running once a loop is left, a fresh pool in a forked child."""

import multiprocessing
import threading
import time
import warnings

import pytest

from napari_nanosims.processing import _frames
from napari_nanosims.processing._frames import map_frames


def test_results_come_in_order_and_the_threads_are_kept_between_loops():
    squares = list(map_frames(lambda index: (time.sleep(0.002 * (index % 3)), index ** 2)[1],
                              25, workers=2))
    assert squares == [index ** 2 for index in range(25)]
    # The thread objects themselves (held, so that none is garbage and replaced): the
    # same two serve every loop (starting new ones cost ~1 ms a loop).
    threads = []
    for _ in range(3):
        threads += list(map_frames(lambda index: (time.sleep(0.003),
                                                  threading.current_thread())[1], 8,
                                   workers=2))
    assert all(thread.name.startswith("nanosims") for thread in threads)
    assert len({id(thread) for thread in threads}) == 2


def test_a_loop_inside_a_frame_task_runs_on_that_thread_instead_of_waiting_for_the_pool():
    def outer(index):
        inner = list(map_frames(lambda k: (threading.get_ident(), k), 4, workers=2))
        return index, {ident for ident, _ in inner}, threading.get_ident()

    results = []
    # On a thread of its own, so that a deadlock fails the test instead of hanging it.
    runner = threading.Thread(target=lambda: results.extend(map_frames(outer, 6, workers=2)),
                              daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive(), "a loop inside a frame task waited for the pool"
    assert [index for index, _, _ in results] == list(range(6))
    for _, inner_threads, own in results:
        assert inner_threads == {own}


def test_leaving_a_loop_cancels_what_has_not_started_and_waits_for_what_has():
    finished: list[int] = []
    lock = threading.Lock()

    def slow(index):
        time.sleep(0.05)
        with lock:
            finished.append(index)
        return index

    loop = map_frames(slow, 50, workers=2)
    assert next(loop) == 0
    loop.close()
    count = len(finished)
    time.sleep(0.2)
    assert len(finished) == count  # nothing still running after close()
    assert count < 50  # and the frames not started were cancelled


def test_an_error_in_a_task_reaches_the_caller_and_the_pool_still_works():
    def failing(index):
        if index == 3:
            raise ValueError("frame 3 is broken")
        return index

    with pytest.raises(ValueError, match="frame 3"):
        list(map_frames(failing, 10, workers=2))
    assert list(map_frames(lambda index: index, 10, workers=2)) == list(range(10))


def _child(queue):
    queue.put(sorted(map_frames(lambda index: index * 3, 8, workers=2)))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="no fork on this system")
def test_a_forked_child_gets_threads_of_its_own():
    list(map_frames(lambda index: index, 8, workers=2))  # the parent's pool exists
    assert _frames._POOLS
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        child.start()
    try:
        child.join(30)
        assert child.exitcode == 0  # it did not hang on the parent's (absent) threads
        assert queue.get(timeout=5) == [index * 3 for index in range(8)]
    finally:
        if child.is_alive():
            child.kill()


def test_a_loop_asking_for_other_threads_leaves_a_running_loop_alone():
    first = map_frames(lambda index: index, 30, workers=2)
    assert [next(first) for _ in range(5)] == list(range(5))
    assert list(map_frames(lambda index: -index, 12, workers=3)) == [-i for i in range(12)]
    assert list(first) == list(range(5, 30))  # still submitting to its own pool


def test_the_hot_pixel_work_arrays_are_freed_after_each_run():
    """The kernel's per-thread work arrays (11 MiB a thread for 7 x 512²) went with the
    threads of each run; the threads are kept now, the arrays must not be."""
    import numpy as np

    from napari_nanosims import infer_hot_pixels
    from napari_nanosims.processing.hot_pixels import _hot_fast

    if _hot_fast.kernel() is None:
        pytest.skip("numba's kernel is not available here: no work arrays to free")
    rng = np.random.default_rng(0)
    stack = rng.poisson(2.0, size=(6, 3, 64, 64)).astype(np.uint32)
    held = []
    original = _hot_fast._scratch_arrays

    def recording(images, wide=False):
        held.append(original(images, wide))
        return held[-1]

    _hot_fast._scratch_arrays = recording
    try:
        infer_hot_pixels(stack, 3, outlier_factor=3.0)
    finally:
        _hot_fast._scratch_arrays = original
    assert held  # the kernel ran and used its work arrays
    assert not _hot_fast._scratches  # ... and none is kept after the run


def test_single_threaded_blas_limits_blas_inside_and_restores_it_after():
    from threadpoolctl import threadpool_info

    from napari_nanosims.processing._frames import single_threaded_blas

    def blas_threads():
        return [entry["num_threads"] for entry in threadpool_info()
                if entry["user_api"] == "blas"]

    before = blas_threads()
    if not before:
        pytest.skip("no BLAS library that threadpoolctl can control is loaded")
    with single_threaded_blas():
        assert blas_threads() == [1] * len(before)
    with single_threaded_blas():  # the controller is kept: a second use works the same
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before
