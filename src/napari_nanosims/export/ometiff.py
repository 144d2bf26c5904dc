"""OME-TIFF images with physical pixel size and channel names, written safely."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_ome_tiff", "counts_for_tiff", "remove_stale_partials", "partial_path",
           "software_versions", "atomic_outputs"]

_PARTIAL = re.compile(r"\.partial-(\d+)$")


def software_versions() -> dict[str, str]:
    """Versions of the packages that shape the results."""
    from importlib import metadata

    versions = {}
    for name in ("napari-nanosims", "numpy", "scipy", "scikit-image", "tifffile"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - editable checkouts
            versions[name] = "unknown"
    return versions


def partial_path(path: Path) -> Path:
    """The temporary name ``path`` is written under before it is renamed into place."""
    return path.with_name(path.name + f".partial-{os.getpid()}")


@contextmanager
def atomic_outputs(paths: dict, overwrite: bool = False):
    """Yield temporary paths to write; move them all into place when the block succeeds.

    An interruption or error (SIGINT, SIGTERM, a full disk) leaves no file under a final
    name and no temporary file. A final name that appeared meanwhile is not replaced
    unless ``overwrite``.
    """
    temporary = {key: partial_path(Path(path)) for key, path in paths.items()}
    try:
        yield temporary
        for key, final in paths.items():
            if os.path.lexists(final) and not overwrite:
                raise FileExistsError(f"{final} appeared while writing; not replaced")
            os.replace(temporary[key], final)
    finally:
        for leftover in temporary.values():
            if os.path.lexists(leftover):
                leftover.unlink()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_partials(folder: str | os.PathLike) -> list[Path]:
    """Delete ``*.partial-<pid>`` files in ``folder`` left by processes that no longer exist.

    A process killed while writing (SIGKILL, a power cut) cannot clean up after itself;
    the next run does. Files of live processes are left alone. Returns what was removed.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for candidate in folder.iterdir():
        match = _PARTIAL.search(candidate.name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(
                int(match.group(1))):
            try:
                candidate.unlink()
                removed.append(candidate)
            except OSError:
                pass
    return removed


def _ome_metadata(axes: str, pixel_size_um: float, labels) -> dict[str, Any]:
    metadata: dict[str, Any] = {"axes": axes, "Channel": {"Name": list(labels)}}
    if np.isfinite(pixel_size_um) and pixel_size_um > 0:
        metadata.update(PhysicalSizeX=pixel_size_um, PhysicalSizeXUnit="µm",
                        PhysicalSizeY=pixel_size_um, PhysicalSizeYUnit="µm")
    return metadata


def counts_for_tiff(array) -> np.ndarray:
    """Whole counts as uint32 when they fit (else float64); fractional counts as float32."""
    array = np.asarray(array)
    if array.dtype.kind in "uib":
        if array.size == 0 or (array.min() >= 0 and array.max() <= np.iinfo(np.uint32).max):
            return array.astype(np.uint32, copy=False)
        return array.astype(np.float64)
    return array.astype(np.float32)


def write_ome_tiff(path: str | os.PathLike, array, axes: str, pixel_size_um: float,
                   channel_names) -> Path:
    """Write ``array`` as OME-TIFF at ``path`` (which the caller has renamed into place).

    Parameters
    ----------
    path : path-like
        Target file, written directly (callers write to a :func:`partial_path` first).
    array : array_like
        The image data, axes as in ``axes`` (``'CYX'`` or ``'TCYX'``).
    pixel_size_um : float
        Pixel size in micrometres, stored as ``PhysicalSizeX/Y``.
    channel_names : sequence of str
        One name per channel (the mass labels).
    """
    import tifffile

    tifffile.imwrite(path, counts_for_tiff(array), ome=True,
                     metadata=_ome_metadata(axes, pixel_size_um, channel_names))
    return Path(path)
