"""The one driver of progress generators (a leaf: it imports nothing of the package).

Every long computation of the package is a generator that yields progress and returns
its result (``StopIteration.value``): the frame loops of ``processing/`` yield frame
counts, the steps yield :class:`~napari_nanosims.steps.progress.Progress`. Everything
that runs one goes through :func:`relay` (as a generator: the steps, recipes, the
napari workers) or :func:`run_to_completion` (with a callback: the library's plain
functions, the command line, the batch), so that cancelling, closing and the result
are handled the same way everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterable
from typing import Any

__all__ = ["Cancelled", "relay", "run_to_completion", "should_stop"]


class Cancelled(Exception):
    """Raised by :func:`relay` when its ``cancel`` says stop (the generator is closed)."""


def should_stop(cancel) -> bool:
    """True when ``cancel`` (None, a ``threading.Event`` or a callable) says stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def relay(generator: Generator[Any, Any, Any], each: Callable[[Any], Iterable] | None = None,
          cancel=None) -> Generator[Any, None, Any]:
    """Yield what ``generator`` yields and return what it returns.

    Parameters
    ----------
    generator : generator
        Yields progress, returns a result.
    each : callable, optional
        ``each(value)`` gives the items to yield in place of one value (none, one or
        several: a relabelled progress, nothing when throttled, warnings as well).
        Without it each value is yielded as it is.
    cancel : threading.Event or callable, optional
        Checked before every step of ``generator``: when it says stop, ``generator`` is
        closed (its thread pools shut down) and :class:`Cancelled` is raised.
    """
    while True:
        if should_stop(cancel):
            generator.close()
            raise Cancelled("cancelled")
        try:
            value = next(generator)
        except StopIteration as stop:
            return stop.value
        if each is None:
            yield value
        else:
            yield from each(value)


def run_to_completion(generator: Generator[Any, Any, Any],
                      on_progress: Callable[[Any], None] | None = None, cancel=None):
    """Exhaust a progress generator and return the value it returns.

    ``on_progress`` is called with every value the generator yields; ``cancel`` as in
    :func:`relay` (:class:`Cancelled` is raised).
    """
    relayed = relay(generator, cancel=cancel)
    while True:
        try:
            value = next(relayed)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(value)
