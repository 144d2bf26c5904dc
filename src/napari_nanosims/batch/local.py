"""The local process pool of a batch: worker processes that each take one file at a time.

Why not dask's multiprocessing scheduler (or ``concurrent.futures``) here: one worker
that dies (killed, out of memory) breaks the whole pool there and every file in it
fails, and dask hands files out in chunks of six, so that small batches ran on one
process. Here the parent gives each idle worker the next file and watches every
worker's process, so that

* a worker that dies costs only the file it had (reported as failed, in one line); a
  new worker takes its place and the other files finish;
* SIGINT and SIGTERM to the parent stop every worker at once (SIGTERM, then SIGKILL
  after :data:`STOP_GRACE_S`), hand out no further file and leave no temporary file; the
  parent then passes the signal on to the handler it had (the command line says
  "stopped before finishing");
* workers stop when the parent is gone (``kill -9``): Linux sends them SIGTERM
  (``PR_SET_PDEATHSIG``), and elsewhere they notice between frames that their parent
  changed, or that their pipe to it closed.

Workers start with SIGINT blocked: Ctrl-C in a terminal reaches the whole process group,
and only the parent decides what happens (no traceback from a worker starting up).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import wait

__all__ = ["run_local", "STOP_GRACE_S"]

#: Seconds the workers get to remove their temporary files after SIGTERM before they
#: are killed outright (their temporary files are then removed by the parent).
STOP_GRACE_S = 1.2

#: Seconds between two looks of the parent at its signals and workers when nothing
#: happens: the latency of a stop.
_POLL_S = 0.05

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class _Stop(BaseException):
    """In a worker: stop now (SIGTERM, the parent gone). A BaseException, so that no
    ``except Exception`` on the way keeps the file going; ``finally`` blocks still remove
    temporary files."""


#: In a worker: the signal that told it to stop (0: none yet).
_stop_signal = 0


def _raise_stop(signum, _frame):
    global _stop_signal
    _stop_signal = signum  # seen again between frames if this raise is swallowed
    raise _Stop(signum)


def _quiet_about_stop(unraisable) -> None:
    """``sys.unraisablehook`` of a worker: a stop raised where Python can only print it
    (inside a ctypes callback of numba's compiler, say) is not news; the worker stops at
    its next frame instead."""
    if not isinstance(unraisable.exc_value, _Stop):
        sys.__unraisablehook__(unraisable)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to send this process SIGTERM when its parent ends (a no-op elsewhere,
    where :func:`_check_parent` does it between frames)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent ended before the request was made
        raise _Stop(signal.SIGTERM)


def _check_parent(parent_pid: int):
    """A progress callback that stops the worker when its parent is gone."""
    def check(*_progress) -> None:
        if _stop_signal or os.getppid() != parent_pid:
            raise _Stop(_stop_signal or signal.SIGTERM)
    return check


def _worker_main(connection, parent_pid: int, task: Callable) -> None:
    """A worker process: announce itself, then run ``task`` on files until told to end."""
    try:
        sys.unraisablehook = _quiet_about_stop
        signal.signal(signal.SIGTERM, _raise_stop)
        _die_with_parent(parent_pid)
        connection.send(("ready", os.getpid()))
        check = _check_parent(parent_pid)
        while True:
            arguments = connection.recv()
            if arguments is None:
                return
            connection.send(task(*arguments, progress=check))
    except (_Stop, EOFError, BrokenPipeError, ConnectionResetError):
        # Stopped, or the parent is gone: the temporary files were removed on the way out.
        sys.exit(128 + signal.SIGTERM)


class _Worker:
    """The parent's view of one worker process."""

    def __init__(self, context, parent_pid: int, task: Callable):
        ours, theirs = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(theirs, parent_pid, task),
                                       daemon=True, name="nanosims-worker")
        self.connection = ours
        self.task: tuple | None = None  # the file it has
        self.ready = False  # it said so
        self.closed = False  # its pipe closed (it ended)
        blocked = _block_sigint()
        try:
            self.process.start()
        finally:
            _restore_mask(blocked)
        theirs.close()

    def receive(self):
        """The worker's next message, or None when its pipe closed."""
        try:
            return self.connection.recv()
        except (EOFError, OSError):
            return None


def _block_sigint():
    """Block SIGINT in this thread while a worker starts, so that the worker inherits it
    blocked (a new process keeps the signal mask of the thread that started it)."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    # multiprocessing's resource tracker, started with the first spawned process,
    # unblocks SIGINT on its way: it must run before the mask is set.
    with contextlib.suppress(Exception):
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _restore_mask(previous) -> None:
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"its worker process was killed ({name})"
    if exitcode == 128 + signal.SIGTERM:
        return "its worker process was stopped (SIGTERM)"
    return f"its worker process ended unexpectedly (exit status {exitcode})"


@contextlib.contextmanager
def _deferred_signals():
    """While the pool runs, SIGINT and SIGTERM only record themselves (the loop then
    stops the workers); yields the list they are recorded in. Only in the main thread
    (elsewhere Python does not allow handlers, and the caller's stay as they are)."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught, {}
        return
    previous = {}

    def record(signum, _frame):
        caught.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is signal.SIG_IGN or handler is None:
            continue  # ignored before: stays ignored
        previous[signum] = handler
        signal.signal(signum, record)
    try:
        yield caught, previous
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _pass_on(signum: int, handler) -> None:
    """Hand a signal the pool held back to the handler that was there before."""
    if callable(handler):
        handler(signum, None)  # Python's SIGINT handler raises KeyboardInterrupt
    else:  # the system's default: end the process as the signal would have
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def _remove_partials(tasks, recipe_dict) -> None:
    """Temporary files of killed workers, in the folders their files write to (the
    output folder, its LANS folders and the export steps' folders)."""
    from ..export._files import remove_stale_partials
    from ..export.names import output_folder, output_name
    from ..steps.recipe import Recipe
    from .single import confine_exports

    for path, _recipe, out_dir, _overwrite in tasks:
        folders = [output_folder(path, out_dir)]
        with contextlib.suppress(Exception):  # a recipe refused for this file wrote nothing
            confined = confine_exports(Recipe.from_dict(recipe_dict), folders[0])
            folders += [p["folder"] for name, p in confined.steps if name.startswith("write_")]
        lans = output_name(os.path.splitext(os.path.basename(path))[0], "lans")
        for folder in folders:
            for candidate in (folder, os.path.join(folder, lans, "dat"),
                              os.path.join(folder, lans, "mat")):
                with contextlib.suppress(OSError):
                    remove_stale_partials(candidate)


def _stop(workers: list[_Worker], recipe_dict) -> None:
    """End every worker: idle ones are told, the others get SIGTERM and then SIGKILL."""
    for worker in workers:
        if worker.task is None and worker.ready and not worker.closed:
            with contextlib.suppress(OSError):
                worker.connection.send(None)
                continue
        with contextlib.suppress(OSError):
            worker.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
    killed = []
    for worker in workers:
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
            if worker.task is not None:
                killed.append(worker.task)
        worker.connection.close()
    if killed:
        _remove_partials(killed, recipe_dict)


def _drain(worker: _Worker, finished: Callable) -> None:
    """Take in what ``worker`` sent: that it is ready, or a file's result."""
    while not worker.closed and worker.connection.poll():
        message = worker.receive()
        if message is None:
            worker.closed = True
        elif isinstance(message, tuple):  # ("ready", pid)
            worker.ready = True
        else:
            worker.task = None
            finished(message)


def run_local(paths: list[str], recipe_dict: dict, out_dir, overwrite: bool, workers: int,
              finished: Callable, task: Callable, failed: Callable) -> None:
    """Process ``paths`` on up to ``workers`` local processes, one file per task.

    ``task(path, recipe_dict, out_dir, overwrite, progress=...)`` runs in a worker and
    returns a result (:func:`~napari_nanosims.batch.pool.process_one`: a module-level
    function, for the worker to import). ``finished(result)`` is called in this thread
    as each file ends; a file whose worker died gets ``failed(path, error)`` instead, and
    the others go on. SIGINT and SIGTERM stop
    every worker within about :data:`STOP_GRACE_S` seconds and are then passed on to the
    handlers there were (in the main thread); no file is handed out after them.
    """
    context = multiprocessing.get_context("spawn")
    parent = os.getpid()
    queue = deque((path, recipe_dict, out_dir, overwrite) for path in paths)
    wanted = min(workers, len(queue))
    pool: list[_Worker] = []
    failed_starts = 0
    with _deferred_signals() as (caught, previous):
        try:
            while (queue or any(w.task is not None for w in pool)) and not caught:
                busy = sum(w.task is not None for w in pool)
                for _ in range(min(wanted, len(queue) + busy) - len(pool)):
                    pool.append(_Worker(context, parent, task))
                wait([w.connection for w in pool if not w.closed]
                     + [w.process.sentinel for w in pool], timeout=_POLL_S)
                for worker in pool:
                    _drain(worker, finished)
                for worker in [w for w in pool if not w.process.is_alive()]:
                    _drain(worker, finished)  # what it sent before it ended
                    pool.remove(worker)
                    worker.connection.close()
                    if worker.task is not None:
                        finished(failed(worker.task[0], (
                            f"{worker.task[0]}: not processed: "
                            f"{_death_reason(worker.process.exitcode)}")))
                        _remove_partials([worker.task], recipe_dict)
                        worker.task = None
                    elif not worker.ready:
                        failed_starts += 1
                    if failed_starts > wanted + 2:  # workers cannot start at all
                        reason = _death_reason(worker.process.exitcode)
                        while queue:
                            path = queue.popleft()[0]
                            finished(failed(path, (
                                f"{path}: not processed: {reason} while starting")))
                if caught:
                    break
                for worker in pool:
                    if worker.ready and worker.task is None and queue:
                        worker.task = queue.popleft()
                        # A worker that died meanwhile is noticed above, next time round,
                        # with this file.
                        with contextlib.suppress(OSError):
                            worker.connection.send(worker.task)
        finally:
            _stop(pool, recipe_dict)
        if caught:
            _pass_on(caught[0], previous[caught[0]])
