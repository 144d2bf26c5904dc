"""One worker at a time per widget: throttled progress, warnings relayed once, cancel."""

from __future__ import annotations

import dataclasses
import threading
import time
import warnings
from collections.abc import Callable

from ...steps.progress import Cancelled, Progress, relay

__all__ = ["WorkerRunner", "WorkerFailed", "WorkerWarning", "throttled", "PROGRESS_INTERVAL_S"]


PROGRESS_INTERVAL_S = 0.05  # at most 20 progress updates a second reach the GUI


class WorkerFailed(Exception):
    """An error inside a worker, re-raised under a type superqt reports.

    superqt treats a RuntimeError leaving a worker as "the worker was deleted": it emits
    neither ``errored`` nor ``finished``, so the widget would wait for ever in silence.
    """


@dataclasses.dataclass(frozen=True)
class WorkerWarning:
    """A warning raised inside a worker, relayed to the window beside the progress."""

    text: str


def throttled(generator, cancel: threading.Event, interval_s: float = PROGRESS_INTERVAL_S):
    """Relay ``generator``'s :class:`Progress` at most every ``interval_s``; stop when
    cancelled.

    Driven by the one driver (:func:`~napari_nanosims.steps.progress.relay`). Warnings
    raised while the generator works (for example "shift larger than the padding") are
    relayed as :class:`WorkerWarning` items, each distinct message once per run, as soon
    as they occur. Returns the generator's result, or None when cancelled (the inner
    generator is closed, so its thread pools shut down).
    """
    last = 0.0
    relayed: set[str] = set()
    with warnings.catch_warnings(record=True) as caught:
        # "always": the default filter would show a message only the first time in the
        # process, so a second run of the same step would stay silent.
        warnings.simplefilter("always")

        def paced(value):
            nonlocal last
            yield from _new_warnings(caught, relayed)
            now = time.monotonic()
            if now - last >= interval_s:
                last = now
                yield value

        try:
            result = yield from relay(generator, paced, cancel)
        except Cancelled:
            return None
        except RuntimeError as exc:
            raise WorkerFailed(f"{type(exc).__name__}: {exc}") from exc
        finally:
            generator.close()
        yield from _new_warnings(caught, relayed)
        return result


def _new_warnings(caught: list, relayed: set):
    """Yield a :class:`WorkerWarning` for each message in ``caught`` not relayed yet."""
    while caught:
        text = str(caught.pop(0).message)
        if text not in relayed:
            relayed.add(text)
            yield WorkerWarning(text)


class WorkerRunner:
    """Runs one napari thread worker at a time for a widget.

    Disables Run and enables Cancel while a worker runs, shows progress at most 20 times a
    second, hands the result to ``on_returned`` on the GUI thread, shows any error as a
    notification, and forgets the worker when it ends so that nothing is kept alive.
    Cancelling stops the work at its next step: ``on_returned`` is then never called,
    even when the worker had already passed its last step when Cancel was pressed.
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
        """Run ``generator`` (yielding :class:`Progress`) in a worker thread."""
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
        # Checked on the GUI thread when the result arrives: a Cancel pressed during the
        # worker's last step (after its last check) still lets nothing through.
        worker.returned.connect(lambda result, callback=on_returned, cancel=self._cancel:
                                result is not None and not cancel.is_set()
                                and callback(result))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        worker.start()
        return worker

    def _on_yielded(self, value=None) -> None:
        if isinstance(value, WorkerWarning):
            from napari.utils.notifications import show_warning

            show_warning(value.text)
            return
        if not isinstance(value, Progress):
            return
        try:
            self.progress_bar.max = max(int(value.total), 1)
            self.progress_bar.value = min(int(value.done), self.progress_bar.max)
            self.progress_bar.native.setFormat(f"{value.step.replace('_', ' ')}: %p%")
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
