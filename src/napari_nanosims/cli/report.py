"""How the commands tell the user: warning lines and a per-file progress line."""

from __future__ import annotations

import os
import sys

__all__ = ["error", "warning", "warning_line", "ProgressLine"]


class ProgressLine:
    """The progress of one file on standard error: a tqdm bar on a terminal, else one
    line per step (for logs).

    The ``progress(step, done, total)`` callback of
    :func:`~napari_nanosims.batch.single.process_file`, which drives the steps with the one
    driver (``run_to_completion``) and hands each step's Progress over as those three.
    """

    def __init__(self, name: str):
        from tqdm import tqdm

        self.name = name
        self.last: str | None = None
        # disable=None: tqdm switches itself off when standard error is not a terminal.
        self.bar = tqdm(total=1, desc=name, unit="frame", file=sys.stderr, disable=None,
                        leave=False, dynamic_ncols=True)

    def __call__(self, step: str, done: int, total: int) -> None:
        if self.bar.disable:
            if step != self.last:
                print(f"  {self.name}: {step} ...", file=sys.stderr, flush=True)
        else:
            if step != self.last:
                self.bar.reset(total=max(int(total), 1))
                self.bar.set_description(f"{self.name}: {step}", refresh=False)
            self.bar.n = int(done)
            self.bar.refresh()
        self.last = step

    def close(self) -> None:
        self.bar.close()


def warning_line(path, message) -> str:
    text = str(message)
    return f"warning: {text}" if os.path.basename(os.fspath(path)) in text else \
        f"warning: {path}: {text}"


def error(message) -> None:
    """The one way a command reports an error: ``error: <message>`` on standard error."""
    print(f"error: {message}", file=sys.stderr)


def warning(message, path=None) -> None:
    """The one way a command reports a warning, naming the file when the text does not."""
    print(warning_line(path, message) if path is not None else f"warning: {message}",
          file=sys.stderr)
