"""The user cache: the built-in demo file, numba's compiled kernels, and arrays that are
slow to compute and the same every time (:func:`cached_array`)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

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


#: Extra bytes a cached array's file may have beyond its numbers (the .npy header).
_NPY_HEADER_MAX = 4096


def cached_array(kind: str, key: tuple, compute: Callable[[], np.ndarray],
                 shape: tuple[int, ...]) -> np.ndarray:
    """``compute()``, a float64 array of ``shape``, read from the user cache when an
    earlier process stored it under the same ``key``, else computed and stored there.

    For numbers that take a noticeable time, are the same every time for the same
    ``key`` (which must name everything they depend on: inputs, versions) and are
    needed again in every new process (the first call of a registration). The file is
    ``cache_dir()/kind/<digest of key>.npy``; one that cannot be read, is too large,
    or holds another shape or non-finite numbers is ignored and replaced. Written under
    a temporary name and renamed, so that a process reading it never sees a part (not
    an output of the user's: :mod:`napari_nanosims.export._files` handles those). A
    cache folder that cannot be written costs only the computation.
    """
    import hashlib

    digest = hashlib.blake2b(repr((kind, key)).encode(), digest_size=20).hexdigest()
    try:
        path: Path | None = cache_dir() / kind / f"{digest}.npy"
    except OSError:  # no cache folder (an unwritable home): computed every time
        path = None
    if path is not None:
        stored = _read_cached(path, tuple(shape))
        if stored is not None:
            return stored
    value = np.asarray(compute(), dtype=np.float64)
    if value.shape != tuple(shape):
        raise ValueError(f"cached_array({kind!r}): computed shape {value.shape}, "
                         f"expected {tuple(shape)}")
    if path is not None:
        with contextlib.suppress(OSError):  # a cache that cannot be written: no copy
            _write_cached(path, value)
    return value


def _read_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The float64 array of ``shape`` stored at ``path``, or None (missing, too large
    for it, unreadable, another shape, not finite)."""
    try:
        if path.stat().st_size > 8 * int(np.prod(shape)) + _NPY_HEADER_MAX:
            return None
        with open(path, "rb") as handle:
            value = np.load(handle, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if value.dtype != np.float64 or value.shape != shape or not np.all(np.isfinite(value)):
        return None
    return value


def _write_cached(path: Path, value: np.ndarray) -> None:
    """``value`` to ``path`` under a temporary name in the same folder, then renamed."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    handle_fd, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial",
                                            dir=path.parent)
    try:
        with os.fdopen(handle_fd, "wb") as handle:
            np.save(handle, value, allow_pickle=False)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
