"""Progress of the steps: a step yields ``(done, total)``; these relay it."""

from __future__ import annotations

__all__ = ["labelled"]


def labelled(generator, step: str):
    """Relay a step's ``(done, total)`` progress as ``(step, done, total)``; return its result."""
    while True:
        try:
            done, total = next(generator)
        except StopIteration as stop:
            return stop.value
        yield step, done, total


def _relay(generator, total: int):
    """Turn a generator's ``done`` counts into ``(done, total)``; return its result."""
    while True:
        try:
            done = next(generator)
        except StopIteration as stop:
            return stop.value
        yield done, total
