"""Where the built-in demo file lives."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DEMO_FILE_NAME = "nanosims_demo_seed0.im"


def cache_dir() -> Path:
    """The folder for generated files: ``$NAPARI_NANOSIMS_CACHE``, else the user cache."""
    override = os.environ.get("NAPARI_NANOSIMS_CACHE")
    if override:
        folder = Path(override)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        folder = Path(base) / "napari-nanosims"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def demo_path() -> Path:
    """Path of the built-in demo acquisition, written on first use (seed 0)."""
    from .io.demo import make_demo_im
    from .io.reader import read_header

    path = cache_dir() / DEMO_FILE_NAME
    if path.exists():
        try:
            read_header(path)
            return path
        except ValueError:
            path.unlink()  # a damaged cache file is ours to replace
    with contextlib.suppress(FileExistsError):  # another process wrote it meanwhile
        make_demo_im(path, seed=0)
    return path
