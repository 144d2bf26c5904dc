"""Checks of the JSON our files carry (``.nrrd`` keys, the OME-TIFF description).

The JSON comes from files, and files come from other people: every value is checked
for its type (and its length where it describes the masses or frames) before the
readers use it. A value that fails is left out, and the reader says so once with an
:class:`~napari_nanosims.ImFormatWarning` naming the file and the keys; the data stay
readable.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import numbers
import warnings
from typing import Any

from .._errors import ImFormatWarning

__all__ = ["loads", "checked_history", "checked_channels", "checked_header_values",
           "checked_translations", "checked_strings", "warn_dropped"]

#: Header fields with one value per mass.
_PER_MASS = ("labels", "masses_amu", "trolley_slots", "detectors")


def loads(text: str | None) -> Any:
    """``json.loads`` that raises ValueError for anything unreadable.

    Nesting deeper than Python's recursion limit (a RecursionError inside the decoder)
    and numbers too long to convert count as unreadable, like a syntax error.
    """
    if text is None:
        raise ValueError("missing")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_finite(value) -> bool:
    try:
        return _is_number(value) and math.isfinite(float(value))
    except OverflowError:  # an integer beyond float's range
        return False


def checked_strings(value, count: int) -> list[str] | None:
    """``value`` when it is a list of ``count`` strings, else None."""
    if isinstance(value, list) and len(value) == count and all(
            isinstance(v, str) for v in value):
        return value
    return None


#: The detector names we write.
DETECTORS = {None, "SE", "FC", *(f"EM{k}" for k in range(1, 8))}


def checked_detectors(value, count: int) -> list[str | None] | None:
    """``value`` when it is a list of ``count`` detector names (EM1..EM7, SE, FC) or
    nulls, else None."""
    if isinstance(value, list) and len(value) == count and all(
            (v is None or isinstance(v, str)) and v in DETECTORS for v in value):
        return value
    return None


def checked_history(value) -> list[dict] | None:
    """The history records (dicts with a string ``step`` and a dict of ``parameters``),
    or None when ``value`` is not a list of them."""
    if not isinstance(value, list):
        return None
    records = []
    for entry in value:
        if not (isinstance(entry, dict) and isinstance(entry.get("step"), str)
                and isinstance(entry.get("parameters", {}), dict)
                and isinstance(entry.get("version", ""), str)):
            return None
        records.append(entry)
    return records


def checked_channels(value, count: int | None) -> list[dict] | None:
    """Channel descriptions (dicts with a string ``label``; ``mass_amu`` a number or null;
    ``detector`` and ``kind`` strings or null), ``count`` of them when given; else None."""
    if not isinstance(value, list) or (count is not None and len(value) != count):
        return None
    for entry in value:
        if not (isinstance(entry, dict) and isinstance(entry.get("label"), str)
                and (entry.get("mass_amu") is None or _is_number(entry.get("mass_amu")))
                and all(entry.get(key) is None or isinstance(entry.get(key), str)
                        for key in ("detector", "kind"))):
            return None
    return value


def checked_translations(value, n_frames: int) -> list[list[float]] | None:
    """(frames, 2) finite numbers, or None."""
    if isinstance(value, list) and len(value) == n_frames and all(
            isinstance(row, list) and len(row) == 2 and all(_is_finite(v) for v in row)
            for row in value):
        return value
    return None


def _fits(value, default) -> bool:
    """Whether a JSON ``value`` can stand for a header field whose value is ``default``."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool) and \
            abs(value) < 2**63
    if isinstance(default, float):
        return _is_finite(value)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, tuple):
        if not isinstance(value, list):
            return False
        if any(isinstance(d, str) for d in default):  # labels, detectors
            return all(v is None or isinstance(v, str) for v in value)
        if any(_is_number(d) for d in default):  # masses, slots, dead times...
            return all(_is_finite(v) for v in value)
        return all(v is None or isinstance(v, str) or _is_number(v) for v in value)
    return False


def checked_header_values(values, header) -> tuple[dict[str, Any], list[str]]:
    """The fields of a stored header dict that can replace those of ``header``.

    Parameters
    ----------
    values : Any
        The stored header (JSON), normally :meth:`ImHeader.to_dict` of the original.
    header : ImHeader
        The header built from the file's own shape; it gives each field's type and the
        number of masses.

    Returns
    -------
    (dict, list of str)
        The usable fields (lists as tuples, the date parsed) and the names of the fields
        left out because their type, length or value did not fit.
    """
    if not isinstance(values, dict):
        return {}, ["header"]
    usable: dict[str, Any] = {}
    dropped = []
    for field in dataclasses.fields(header):
        if field.name not in values:
            continue
        value, default = values[field.name], getattr(header, field.name)
        if field.name == "analysis_date":
            try:
                usable[field.name] = (None if value is None
                                      else _dt.datetime.fromisoformat(value))
            except (TypeError, ValueError):
                dropped.append(field.name)
            continue
        if field.name == "se_index":
            fits = value is None or (isinstance(value, int) and not isinstance(value, bool)
                                     and 0 <= value < header.n_masses)
        elif field.name in _PER_MASS:
            fits = _fits(value, default) and len(value) == header.n_masses and (
                field.name != "detectors" or checked_detectors(value, len(value)) is not None)
        else:
            fits = default is not None and _fits(value, default)
        if fits:
            usable[field.name] = tuple(value) if isinstance(value, list) else value
        else:
            dropped.append(field.name)
    return usable, dropped


def warn_dropped(path, dropped: list[str]) -> None:
    """Say once which stored values of ``path`` were left out."""
    if dropped:
        warnings.warn(f"{path}: ignoring unusable napari-nanosims metadata: "
                      f"{', '.join(dropped)}", ImFormatWarning, stacklevel=3)
