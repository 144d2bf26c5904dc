"""The ``nanosims`` command line: the parser of every command, and ``main``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cache import add_cache_command
from .info import add_info_command
from .process import add_process_command
from .ratio import add_ratio_command
from .recipe import add_recipe_command
from .spots import add_spots_command
from .view import add_view_command

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
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
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
