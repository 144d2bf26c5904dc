"""Writing outputs safely, in one place: temporary names, atomic renames, exists-checks.

Every file napari-nanosims writes goes to a temporary name beside its final one
(:func:`partial_path`: ``<name>.partial-<pid>``) and is renamed into place when it is
complete (:func:`atomic_outputs`), so that an interruption never leaves a half-written
file under a final name. Nothing is replaced unless the caller asks
(:func:`refuse_existing`, :class:`OutputExistsError`). The pid in the temporary name lets
the next run recognise what a process killed outright left behind
(:func:`remove_stale_partials`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["OutputExistsError", "partial_path", "existing_outputs", "refuse_existing",
           "atomic_outputs", "atomic_output", "remove_stale_partials"]

#: What a temporary name adds to the final one, followed by the writing process's id.
PARTIAL_MARK = ".partial-"

_PARTIAL = re.compile(re.escape(PARTIAL_MARK) + r"(\d+)$")


class OutputExistsError(FileExistsError):
    """An output exists and the caller did not ask to replace it (``overwrite``)."""


def partial_path(path: str | os.PathLike, pid: int | None = None) -> Path:
    """The temporary name ``path`` is written under before it is renamed into place.

    Parameters
    ----------
    path : path-like
        The final name.
    pid : int, optional
        The writing process (default: this one).

    Returns
    -------
    pathlib.Path
        ``<path>.partial-<pid>``, in the same folder (a rename there is atomic).
    """
    path = Path(path)
    return path.with_name(f"{path.name}{PARTIAL_MARK}{os.getpid() if pid is None else pid}")


def existing_outputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Those of ``paths`` that exist, dangling symbolic links included (a link the user
    put at an output name is the user's file too)."""
    return [Path(path) for path in paths if os.path.lexists(path)]


def refuse_existing(paths: Iterable[str | os.PathLike], overwrite: bool = False) -> None:
    """Raise :class:`OutputExistsError` naming every one of ``paths`` that exists, unless
    ``overwrite``.

    The one message for every writer and command: it names the files and how to
    replace them.
    """
    if overwrite:
        return
    found = existing_outputs(paths)
    if found:
        raise OutputExistsError("outputs exist (use --overwrite, or overwrite=True, to "
                                f"replace them): {', '.join(map(str, found))}")


@contextmanager
def atomic_outputs(paths: Mapping[str, str | os.PathLike],
                   overwrite: bool = False) -> Iterator[dict[str, Path]]:
    """Yield temporary paths to write; move them all into place when the block succeeds.

    Parameters
    ----------
    paths : mapping
        Key -> final path. The folders must exist.
    overwrite : bool
        Replace final names that exist; otherwise :class:`OutputExistsError`, before the
        block runs and again before the renames (a file that appeared meanwhile).

    Yields
    ------
    dict
        Key -> temporary path (:func:`partial_path`) to write.

    An interruption or error (SIGINT, SIGTERM, a full disk) leaves no file under a final
    name and no temporary file.
    """
    refuse_existing(paths.values(), overwrite)
    temporary = {key: partial_path(path) for key, path in paths.items()}
    try:
        yield temporary
        refuse_existing(paths.values(), overwrite)
        for key, final in paths.items():
            os.replace(temporary[key], final)
    finally:
        for leftover in temporary.values():
            if os.path.lexists(leftover):
                leftover.unlink()


@contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """:func:`atomic_outputs` for one file: yields its temporary path."""
    with atomic_outputs({"file": path}, overwrite) as temporary:
        yield temporary["file"]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_partials(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files in ``folder`` of processes that no longer exist.

    A process killed while writing (SIGKILL, a power cut) cannot clean up after itself;
    the next run does. Files of live processes, this one included, are left alone.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for candidate in folder.iterdir():
        match = _PARTIAL.search(candidate.name)
        if not match:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _process_alive(pid):
            try:
                candidate.unlink()
                removed.append(candidate)
            except OSError:  # gone meanwhile, or not ours to remove: not our concern
                pass
    return removed
