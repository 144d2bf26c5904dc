"""How the commands tell the user: warning lines and a per-file progress line."""

from __future__ import annotations

import os
import sys

__all__ = ["warning_line", "ProgressLine"]


class ProgressLine:
    """One status line per file on standard error, redrawn in place on a terminal.

    The ``progress(step, done, total)`` callback of
    :func:`~napari_nanosims.batch.single.process_file`, which drives the steps with the one
    driver (``run_to_completion``) and hands each step's Progress over as those three.
    """

    def __init__(self, name: str):
        self.name = name
        self.tty = sys.stderr.isatty()
        self.last = None

    def __call__(self, step: str, done: int, total: int) -> None:
        if self.tty:
            print(f"\r  {self.name}: {step} {done}/{total}   ", end="", file=sys.stderr,
                  flush=True)
        elif step != self.last:
            print(f"  {self.name}: {step} ...", file=sys.stderr, flush=True)
        self.last = step

    def close(self) -> None:
        if self.tty and self.last is not None:
            print(file=sys.stderr)


def warning_line(path, message) -> str:
    text = str(message)
    return f"warning: {text}" if os.path.basename(os.fspath(path)) in text else \
        f"warning: {path}: {text}"
