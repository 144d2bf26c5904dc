"""The ``nanosims`` command line: the parser of every command, and ``main``.

The command modules (and with them numpy and the readers) are imported inside
:func:`main`, so that Ctrl-C at any moment after Python started is one line, not a
traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

__all__ = ["build_parser", "main", "Interrupted", "INTERRUPTED"]

#: What every command says when SIGINT or SIGTERM stops it.
INTERRUPTED = "interrupted: stopped before finishing; no partial outputs were left"


class Interrupted(BaseException):
    """SIGTERM, turned into an exception so that temporary files are removed on the way
    out (as KeyboardInterrupt does for SIGINT)."""


def _on_sigterm(signum, _frame):
    raise Interrupted(signum)


def build_parser() -> argparse.ArgumentParser:
    from .cache import add_cache_command
    from .info import add_info_command
    from .process import add_process_command
    from .ratio import add_ratio_command
    from .recipe import add_recipe_command
    from .spots import add_spots_command
    from .view import add_view_command

    parser = argparse.ArgumentParser(
        prog="nanosims", description="Open, clean and align Cameca NanoSIMS .im images.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_info_command(sub)
    add_process_command(sub)
    add_ratio_command(sub)
    add_recipe_command(sub)
    add_spots_command(sub)
    add_cache_command(sub)
    add_view_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (130 after SIGINT, 143 after
    SIGTERM, with one line on standard error)."""
    # SIGTERM (kill, timeout, a job scheduler) ends a command the way Ctrl-C does: its
    # temporary files removed, one line. Not for 'view', whose Qt event loop owns it.
    handle_sigterm = (threading.current_thread() is threading.main_thread()
                      and (argv if argv is not None else sys.argv[1:])[:1] != ["view"])
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if handle_sigterm else None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return args.func(args)
    except (KeyboardInterrupt, Interrupted) as exc:
        print(INTERRUPTED, file=sys.stderr)
        return 143 if isinstance(exc, Interrupted) else 130
    finally:
        if handle_sigterm:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
