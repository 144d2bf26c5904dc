"""One worker at a time per widget: throttled progress, warnings relayed once, cancel."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable

__all__ = ["WorkerRunner", "WorkerFailed", "throttled", "PROGRESS_INTERVAL_S"]


PROGRESS_INTERVAL_S = 0.05  # at most 20 progress updates a second reach the GUI


class WorkerFailed(Exception):
    """An error inside a worker, re-raised under a type superqt reports.

    superqt treats a RuntimeError leaving a worker as "the worker was deleted": it emits
    neither ``errored`` nor ``finished``, so the widget would wait for ever in silence.
    """


def throttled(generator, cancel: threading.Event, interval_s: float = PROGRESS_INTERVAL_S):
    """Relay ``generator``'s progress at most every ``interval_s``; stop when cancelled.

    Warnings raised while the generator works (for example "shift larger than the
    padding") are relayed as ``("warning", message)`` items, each distinct message once
    per run, as soon as they occur. Returns the generator's result, or None when
    cancelled (the inner generator is closed, so its thread pools shut down).
    """
    last = 0.0
    relayed: set[str] = set()
    with warnings.catch_warnings(record=True) as caught:
        # "always": the default filter would show a message only the first time in the
        # process, so a second run of the same step would stay silent.
        warnings.simplefilter("always")
        try:
            while True:
                if cancel.is_set():
                    return None
                try:
                    value = next(generator)
                except StopIteration as stop:
                    yield from _new_warnings(caught, relayed)
                    return stop.value
                except RuntimeError as exc:
                    raise WorkerFailed(f"{type(exc).__name__}: {exc}") from exc
                yield from _new_warnings(caught, relayed)
                now = time.monotonic()
                if now - last >= interval_s:
                    last = now
                    yield value
        finally:
            generator.close()


def _new_warnings(caught: list, relayed: set):
    """Yield ``("warning", text)`` for each message in ``caught`` not relayed yet."""
    while caught:
        text = str(caught.pop(0).message)
        if text not in relayed:
            relayed.add(text)
            yield ("warning", text)


class WorkerRunner:
    """Runs one napari thread worker at a time for a widget.

    Disables Run and enables Cancel while a worker runs, shows progress at most 20 times a
    second, hands the result to ``on_returned`` on the GUI thread, shows any error as a
    notification, and forgets the worker when it ends so that nothing is kept alive.
    Cancelling stops the work at its next step: ``on_returned`` is then never called.
    """

    def __init__(self, run_button, cancel_button, progress_bar):
        self.run_button = run_button
        self.cancel_button = cancel_button
        self.progress_bar = progress_bar
        self.worker = None
        self._cancel = threading.Event()
        self.cancel_button.enabled = False
        self.progress_bar.visible = False

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, generator, *, description: str, on_returned: Callable):
        """Run ``generator`` (yielding ``(step, done, total)``) in a worker thread."""
        from superqt.utils import create_worker  # napari's wrapper keeps every worker alive

        if self.running:
            generator.close()
            return None
        self._cancel = threading.Event()
        # errored is connected here, so superqt does not also re-raise into the event loop
        worker = create_worker(throttled, generator, self._cancel, _start_thread=False,
                               _connect={"errored": lambda exc, what=description:
                                         _notify_error(what, exc)})
        self.progress_bar.value = 0
        self.progress_bar.visible = True
        self.progress_bar.tooltip = description
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(lambda result, callback=on_returned:
                                result is not None and callback(result))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        worker.start()
        return worker

    def _on_yielded(self, value=None) -> None:
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "warning":
            from napari.utils.notifications import show_warning

            show_warning(value[1])
            return
        if not isinstance(value, tuple) or len(value) != 3:
            return
        step, done, total = value
        try:
            self.progress_bar.max = max(int(total), 1)
            self.progress_bar.value = min(int(done), self.progress_bar.max)
            self.progress_bar.native.setFormat(f"{step.replace('_', ' ')}: %p%")
        except RuntimeError:  # the widget is gone; the worker is stopped by close()
            self._cancel.set()

    def _on_finished(self) -> None:
        self.worker = None
        try:
            self.run_button.enabled = True
            self.cancel_button.enabled = False
            self.progress_bar.visible = False
        except RuntimeError:  # the widget was closed while the worker ran
            pass

    def cancel(self, _value=None) -> None:
        """Stop at the next step. The generator then returns None and is closed properly
        (napari's own quit() would leave it suspended, with its thread pool alive)."""
        self._cancel.set()


def _notify_error(what: str, exc: BaseException) -> None:
    from napari.utils import notifications

    notifications.show_error(f"{what} failed: {exc}")
