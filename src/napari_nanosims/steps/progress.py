"""The one progress protocol of the steps: they yield :class:`Progress`.

A step's generator yields ``Progress(step, done, total)`` and returns its result; the
algorithms below it (``processing/``) yield frame counts, which :func:`counted` turns
into Progress. Whoever runs a step drives it with the one driver of ``_progress``:
:func:`relay` as a generator (recipes, the napari workers), :func:`run_to_completion`
with a callback (library functions, the command line, the batch).
"""

from __future__ import annotations

import dataclasses

from .._progress import Cancelled, relay, run_to_completion, should_stop

__all__ = ["Progress", "counted", "Cancelled", "relay", "run_to_completion",
           "should_stop"]


@dataclasses.dataclass(frozen=True)
class Progress:
    """How far a step is: ``done`` of ``total`` units of work of ``step``.

    ``message`` is an optional line for the user (empty when the numbers say it all).
    """

    step: str
    done: int
    total: int
    message: str = ""

    def as_tuple(self) -> tuple[str, int, int]:
        """``(step, done, total)``: the public form of :func:`~napari_nanosims.run_recipe`'s
        callback and of ``iter_process_image_data``."""
        return self.step, self.done, self.total


def counted(generator, step: str, total: int, offset: int = 0):
    """Relay an algorithm's ``done`` counts as ``Progress(step, offset + done, total)``;
    return its result."""
    return (yield from relay(generator, lambda done: (Progress(step, offset + done, total),)))

