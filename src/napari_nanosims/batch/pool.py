"""Many files at once: a local process pool, or a dask.distributed cluster.

Each file is one task that runs the whole recipe and writes its outputs (the same
:func:`~napari_nanosims.batch.process_file` as a serial run) on a single thread, so that
N workers use N cores and nothing oversubscribes them. A task never raises: a file that
fails comes back as a :class:`FileResult` with the reason, and the others go on. Locally
the files go one at a time to worker processes (:mod:`.local`: a lost worker costs only
its file, signals stop everything); on a cluster dask.distributed schedules them (and
shows the dashboard), and whatever is left is cancelled when the run ends early.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from .workers import default_workers, workers_for

#: How long to try reaching a dask scheduler before giving up.
CONNECT_TIMEOUT = "10s"

#: Seconds between two looks of a cluster task at whether its client still wants it.
_CLUSTER_CHECK_S = 0.25

__all__ = ["FileResult", "process_one", "run_batch", "default_workers"]


@dataclasses.dataclass
class FileResult:
    """What processing one file gave, as a task returns it.

    Attributes
    ----------
    path : str
        The input file.
    ok : bool
        Outputs written.
    error : str or None
        Why not, in one line.
    lines : list of str
        What the command line prints for the file (frames, hot pixels, outputs).
    warnings : list of str
        Warnings raised while processing.
    written : dict of str
        Output kind -> path.
    roi_table : pandas.DataFrame or None
        The ROI table, when the recipe has ROI steps.
    class_table : pandas.DataFrame or None
        The per-class table, when the recipe has ``compare_classes`` steps.
    seconds : float
        Wall time of the task, s.
    peak_memory_mib : float
        Peak resident memory of the process while it ran the task, MiB (Linux; elsewhere
        since the process started).
    start_memory_mib : float
        Resident memory of that process when the task started, MiB: the task itself
        needed at most ``peak_memory_mib - start_memory_mib``.
    """

    path: str
    ok: bool
    error: str | None = None
    lines: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    written: dict = dataclasses.field(default_factory=dict)
    roi_table: Any = None
    class_table: Any = None
    seconds: float = 0.0
    peak_memory_mib: float = 0.0
    start_memory_mib: float = 0.0


def _reset_peak_memory() -> None:
    """Make the process's peak resident memory start again from now (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:  # not Linux, or not allowed: the peak then covers the whole process
        pass


def _memory_mib() -> tuple[float, float]:
    """(resident, peak resident) memory of this process, MiB (Linux; else the peak only)."""
    values = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, amount = line.split(":")
                    values[key] = float(amount.split()[0]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    peak = values.get("VmHWM", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return values.get("VmRSS", 0.0), peak


def _summary_lines(path, acquisition, written) -> list[str]:
    hot = acquisition.hot_pixels
    aligned = next((r.parameters.get("aligned_on") for r in acquisition.history
                    if r.name == "align_frames"), None)
    lines = [f"{path}: {acquisition.n_frames} frames"
             + (f", {int(hot.sum())} hot pixels replaced" if hot is not None else "")
             + (f", aligned on {aligned}" if aligned else "")]
    lines += [f"  {key:8s} {output}" for key, output in written.items()]
    return lines


def _error_line(path, exc: BaseException) -> str:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        message = "not enough memory for this file"
    elif isinstance(exc, OSError) and "No space left on device" not in message:
        from ..export._files import os_error_reason

        if os_error_reason(exc) == "No space left on device":
            where = f"{exc.filename}: " if exc.filename else ""
            message = f"{where}No space left on device"
    if os.fspath(path) not in message and os.path.basename(os.fspath(path)) not in message:
        message = f"{path}: {message}"
    return message


def process_one(path, recipe: dict, out_dir=None, overwrite: bool = False,
                single_threaded: bool = True, progress: Callable | None = None,
                cancel=None) -> FileResult:
    """Run a recipe (as :meth:`Recipe.to_dict` gives it) on one file; never raises
    an ``Exception`` (a ``BaseException`` such as KeyboardInterrupt goes through, after
    the temporary files are removed).

    With ``single_threaded`` the frame loops and BLAS use one thread (what a batch
    worker must do); the results are the same either way. ``cancel`` as in
    :func:`~napari_nanosims.batch.process_file`: the file then fails as cancelled and
    nothing of it is written.
    """
    from threadpoolctl import threadpool_limits

    from ..processing._frames import set_single_threaded
    from ..steps.recipe import Recipe
    from .single import process_file

    started = time.perf_counter()
    path = os.fspath(path)

    _reset_peak_memory()
    result = FileResult(path=path, ok=False, start_memory_mib=_memory_mib()[0])
    set_single_threaded(single_threaded)
    try:
        with warnings.catch_warnings(record=True) as caught, \
                threadpool_limits(limits=1 if single_threaded else None):
            warnings.simplefilter("always")
            acquisition, written = process_file(path, Recipe.from_dict(recipe), out_dir,
                                                overwrite=overwrite, progress=progress,
                                                cancel=cancel)
        result.ok = True
        result.written = {key: os.fspath(value) for key, value in written.items()}
        result.lines = _summary_lines(path, acquisition, written)
        result.warnings = [str(w.message) for w in caught]
        if acquisition.roi_statistics is not None:
            result.roi_table = acquisition.roi_statistics.assign(file=path)
        if acquisition.class_statistics is not None:
            result.class_table = acquisition.class_statistics.assign(file=path)
    except Exception as exc:  # one bad file never stops the batch: say why, go on
        result.error = _error_line(path, exc)
    finally:
        set_single_threaded(False)
    result.seconds = time.perf_counter() - started
    result.peak_memory_mib = _memory_mib()[1]
    return result


def run_batch(paths: Iterable, recipe, out_dir=None, *, overwrite: bool = False,
              workers: int | None = None, scheduler=None,
              on_result: Callable[[FileResult], None] | None = None) -> list[FileResult]:
    """Process files in parallel on dask; return a :class:`FileResult` per file.

    Parameters
    ----------
    paths : iterable of path-like
        The ``.im`` files.
    recipe : Recipe
        The steps, the same for every file.
    out_dir : path-like, optional
        Output folder (default: beside each input).
    overwrite : bool
        Replace existing outputs.
    workers : int, optional
        Local worker processes (default: :func:`~.workers.workers_for` the files, from their sizes
        and the free cores: 1 for a few small files; 1: in this process, one file after the
        other, each using the cores for its frames); ignored with ``scheduler``. Each
        takes one file at a time; one that dies costs only its file. SIGINT or SIGTERM
        (in the main thread) stops them all within about 1.5 s, leaving no temporary
        file, and then goes to the handler there was.
    scheduler : str or distributed.Client, optional
        Address of a running dask.distributed scheduler (``tcp://host:8786``) or a client;
        needs the ``distributed`` extra. When the run ends early (an error, a signal), the
        files not yet done are cancelled, and those running stop before writing.
    on_result : callable, optional
        Called with each :class:`FileResult` as its file ends (in the calling thread).

    Returns
    -------
    list of FileResult
        In the order of ``paths``.
    """
    paths = [os.fspath(p) for p in paths]
    recipe_dict = recipe.to_dict()
    results: dict[str, FileResult] = {}

    def finished(result: FileResult):
        results[result.path] = result
        if on_result is not None:
            on_result(result)

    if scheduler is not None:
        _on_cluster(paths, recipe_dict, out_dir, overwrite, scheduler, finished)
    else:
        _on_local_pool(paths, recipe_dict, out_dir, overwrite, workers or workers_for(paths),
                       finished)
    return [results[path] for path in paths]


def _client_gone(stop_name: str) -> Callable[[], bool]:
    """In a cluster task: a ``cancel`` that says stop when the client set its stop event
    or released this task (it cancelled it, or it went away); looked up at most every
    :data:`_CLUSTER_CHECK_S`."""
    from distributed import Event, get_worker

    worker = get_worker()
    key = worker.get_current_task()
    event = Event(stop_name)
    last: dict[str, Any] = {"time": 0.0, "stop": False}

    def stop() -> bool:
        now = time.monotonic()
        if last["stop"] or now - last["time"] < _CLUSTER_CHECK_S:
            return last["stop"]
        last["time"] = now
        try:  # the worker's own view of the task (not a public API: any failure = go on)
            state = worker.state.tasks[key].state
        except Exception:
            state = None
        try:
            last["stop"] = state in ("cancelled", "released", "forgotten") or event.is_set()
        except Exception:  # the scheduler is gone: nobody can take the result, so stop
            last["stop"] = True
        return last["stop"]
    return stop


def _cluster_task(path, recipe_dict, out_dir, overwrite, stop_name) -> FileResult:
    """One file on a dask.distributed worker; stops when its client is gone."""
    return process_one(path, recipe_dict, out_dir, overwrite, cancel=_client_gone(stop_name))


def _on_cluster(paths, recipe_dict, out_dir, overwrite, scheduler, finished):
    import uuid

    try:
        from distributed import Client, Event, as_completed
    except ImportError:
        raise ValueError("--scheduler needs dask.distributed: pip install "
                         "'napari-nanosims[distributed]'") from None
    if isinstance(scheduler, Client):
        client = scheduler
    else:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ValueError(f"cannot reach the dask scheduler at {scheduler}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                             "; is 'dask scheduler' running there?") from None
    stop_name = f"nanosims-stop-{uuid.uuid4().hex}"
    futures: dict = {}
    try:
        stop = Event(stop_name, client=client)
        futures = {client.submit(_cluster_task, path, recipe_dict, out_dir, overwrite,
                                 stop_name, key=f"nanosims-{index}-{os.path.basename(path)}",
                                 pure=False, retries=0): path
                   for index, path in enumerate(paths)}
        for future in as_completed(list(futures)):
            try:
                finished(future.result())
            except Exception as exc:  # the worker died (out of memory, killed), or the
                # scheduler: one line naming the file (dask's reason may have several)
                reason = (str(exc) or type(exc).__name__).strip().splitlines()[0]
                finished(FileResult(path=futures[future], ok=False,
                                    error=f"{futures[future]}: not processed: {reason}"))
    finally:
        # Ended early (an error, SIGINT, SIGTERM): nothing more may run or write. Queued
        # files are cancelled; running ones see the event (or their cancellation) and
        # stop before writing.
        unfinished = [future for future in futures if not future.done()]
        if unfinished:
            try:
                stop.set()
                client.cancel(unfinished, force=True)
            except Exception:  # the scheduler is gone: so is the work
                pass
        if client is not scheduler:
            client.close()


def _in_this_process(paths, recipe_dict, out_dir, overwrite, finished):
    for path in paths:  # the frame loops may use every core: no other file runs
        finished(process_one(path, recipe_dict, out_dir, overwrite, single_threaded=False))


def _on_local_pool(paths, recipe_dict, out_dir, overwrite, workers, finished):
    """Worker processes taking one file at a time (:func:`.local.run_local`)."""
    if workers == 1:
        _in_this_process(paths, recipe_dict, out_dir, overwrite, finished)
        return
    from .local import run_local

    run_local(paths, recipe_dict, out_dir, overwrite, workers, finished, process_one,
              lambda path, error: FileResult(path=path, ok=False, error=error))
