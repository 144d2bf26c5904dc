"""The user cache: the built-in demo file, numba's compiled kernels, and arrays that are
slow to compute and the same every time (:func:`load_cached_array`)."""

from __future__ import annotations

import contextlib
import os
import sys
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


#: Largest .npy header read from the cache, bytes (numpy writes 128 for a 1-D array).
_NPY_HEADER_MAX = 1024


def _cached_path(kind: str, key: tuple) -> Path | None:
    """``cache_dir()/kind/<digest of key>.npy``, or None when there is no cache folder
    (an unwritable or unknown home)."""
    import hashlib

    digest = hashlib.blake2b(repr((kind, key)).encode(), digest_size=20).hexdigest()
    try:
        return cache_dir() / kind / f"{digest}.npy"
    except (OSError, RuntimeError):  # RuntimeError: Path.home() without a home
        return None


def load_cached_array(kind: str, key: tuple, shape: tuple[int, ...]) -> np.ndarray | None:
    """A float64 array of ``shape`` that :func:`store_cached_array` kept under ``key``.

    For numbers that take a noticeable time, are the same every time for the same
    ``key`` (which must name everything they depend on) and are needed again in every
    new process (the first call of a registration).

    Parameters
    ----------
    kind : str
        The cache's sub-folder (what the numbers are).
    key : tuple
        What the numbers depend on; its ``repr`` is hashed into the file name.
    shape : tuple of int
        The array's shape.

    Returns
    -------
    numpy.ndarray or None
        None when there is no such file, or it is not a regular file, or its header is
        not exactly that of a little-endian float64 array of ``shape`` in C order and a
        size to match, or it holds numbers that are not finite. The header is checked
        before anything is allocated: a damaged or hostile file never decides a size.
    """
    import stat

    path = _cached_path(kind, key)
    if path is None:
        return None
    expected = 8 * int(np.prod(shape))
    try:
        # Not a FIFO or a device (opening one could block), and no larger than it can be.
        status = path.stat()
        if not stat.S_ISREG(status.st_mode) or status.st_size > expected + _NPY_HEADER_MAX:
            return None
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            stored_shape, fortran_order, dtype = read_header(
                handle, max_header_size=_NPY_HEADER_MAX)
            if (tuple(stored_shape) != tuple(shape) or fortran_order
                    or dtype != np.dtype("<f8")
                    or status.st_size != handle.tell() + expected):
                return None
            value = np.frombuffer(handle.read(expected), dtype="<f8").reshape(shape).copy()
    except Exception:  # noqa: BLE001 - any damage (a bad header, a zip...): not cached
        return None
    return value if bool(np.all(np.isfinite(value))) else None


def store_cached_array(kind: str, key: tuple, value: np.ndarray) -> None:
    """Keep ``value`` (float64) for :func:`load_cached_array` under ``key``: written
    under a temporary name in the same folder, then renamed, so that a process reading
    it never sees a part (not an output of the user's: those go through
    :mod:`napari_nanosims.export._files`). Without a writable cache folder it keeps
    nothing and raises nothing."""
    import tempfile

    path = _cached_path(kind, key)
    if path is None:
        return
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle_fd, temporary = tempfile.mkstemp(prefix=f".{path.stem}.",
                                                suffix=".partial", dir=path.parent)
        try:
            with os.fdopen(handle_fd, "wb") as handle:
                np.save(handle, np.ascontiguousarray(value, dtype="<f8"),
                        allow_pickle=False)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
