"""Where the built-in demo file lives."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, cast

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


def use_user_numba_cache() -> str:
    """Make numba cache its compiled kernels in ``cache_dir()/numba``, not beside our
    installed source files (``cache=True`` writes ``__pycache__/*.nbi`` there otherwise,
    into a folder users may not be able to write, or shared by several environments).

    Only when the user has not chosen: a ``NUMBA_CACHE_DIR`` already set (or numba's
    cache folder already configured) is kept. Call before numba is imported; when numba
    is already imported its configuration is set to the same folder. Either way it is
    numba's one setting for the whole process, so other packages' numba caches go there
    too (still a user cache folder).

    Returns
    -------
    str
        The folder numba uses.
    """
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    config: Any = sys.modules.get("numba.core.config")  # numba's settings, if loaded
    if chosen:
        return chosen
    if config is not None and cast(str, getattr(config, "CACHE_DIR", "")):
        return config.CACHE_DIR
    folder = str(cache_dir() / "numba")
    os.environ["NUMBA_CACHE_DIR"] = folder
    if config is not None:
        config.CACHE_DIR = folder
    return folder
