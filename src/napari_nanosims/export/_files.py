"""Writing outputs safely, in one place: temporary names, atomic renames, exists-checks.

Every file napari-nanosims writes goes to a temporary name beside its final one
(:func:`partial_path`: ``<name>.partial-<pid>``) and is renamed into place when it is
complete (:func:`atomic_outputs`), so that an interruption never leaves a half-written
file under a final name. Nothing is replaced unless the caller asks
(:func:`refuse_existing`, :class:`OutputExistsError`). The pid in the temporary name lets
the next run recognise what a process killed outright left behind
(:func:`remove_stale_partials`). A write that fails (a full disk, no permission) is
reported as :class:`OutputWriteError`, naming the final file and not its temporary name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["OutputExistsError", "OutputWriteError", "os_error_reason", "partial_path",
           "existing_outputs", "refuse_existing", "atomic_outputs", "atomic_output",
           "remove_stale_partials"]

#: What a temporary name adds to the final one, followed by the writing process's id.
PARTIAL_MARK = ".partial-"

_PARTIAL = re.compile(re.escape(PARTIAL_MARK) + r"(\d+)$")


class OutputExistsError(FileExistsError):
    """An output exists and the caller did not ask to replace it (``overwrite``)."""


class OutputWriteError(OSError):
    """Writing an output failed (a full disk, no permission, a missing folder).

    ``errno`` is the system's error number, ``filename`` the final name (or names,
    comma-separated, when the failing one cannot be told); ``str()`` is one line:
    ``cannot write <final name>: <reason>`` (``No space left on device`` for ENOSPC).
    """

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


def _error_number(exc: OSError) -> int | None:
    """The error number of ``exc``, also when it was raised as ``OSError(ENOSPC)`` (one
    argument: Python then leaves ``errno`` unset)."""
    if exc.errno is not None:
        return exc.errno
    if len(exc.args) == 1 and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def os_error_reason(exc: OSError) -> str:
    """Why ``exc`` happened, in words, without file names: the system's text for its error
    number (always ``No space left on device`` for a full disk)."""
    number = _error_number(exc)
    if number == errno.ENOSPC:
        return "No space left on device"
    if exc.strerror:
        return exc.strerror
    if number is not None:
        return os.strerror(number)
    return str(exc) or type(exc).__name__


def _write_error(exc: OSError, paths: Mapping[str, str | os.PathLike],
                 temporary: Mapping[str, Path]) -> OutputWriteError:
    """``exc`` (raised while writing ``temporary`` or renaming it) as an
    :class:`OutputWriteError` naming the final file(s)."""
    finals = {os.fspath(temporary[key]): os.fspath(final) for key, final in paths.items()}
    given = [os.fspath(name) for name in (exc.filename, exc.filename2) if name is not None]
    named = [finals[name] for name in given if name in finals]
    # A rename onto a final name names that; failing that, every output (the writer did
    # not say which file it was writing), and a file that is none of ours as it is.
    named = named or [final for final in finals.values() if final in given]
    others = [name for name in given if name not in finals and name not in finals.values()]
    reason = os_error_reason(exc) + (f" ({others[0]})" if others and not named else "")
    named = named or list(finals.values())
    return OutputWriteError(_error_number(exc), reason, ", ".join(named))


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

    Raises
    ------
    OutputWriteError
        When writing or renaming fails with an ``OSError`` (other than
        :class:`OutputExistsError`), naming the final file, not the temporary one.

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
    except (OutputExistsError, OutputWriteError):
        raise
    except OSError as exc:
        raise _write_error(exc, paths, temporary) from exc
    finally:
        for leftover in temporary.values():
            # A removal that fails must not hide why the block failed.
            with contextlib.suppress(OSError):
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
