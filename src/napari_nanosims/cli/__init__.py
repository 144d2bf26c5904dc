"""The ``nanosims`` command line: one module per command, ``main`` in :mod:`.main`."""

from .main import build_parser, main

__all__ = ["main", "build_parser"]
