"""The text files Cameca's software writes beside a data file: ``.chk_is`` and ``.is_txt``.

Both are read leniently (a line that does not parse is skipped): they add information,
they are never needed to read the binary file.
"""

from __future__ import annotations

import os
import re

import numpy as np

__all__ = ["read_chk_is", "read_is_txt"]

_NUMBER = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_MASS_ROW = re.compile(rf"^\s*(\d+)\s+(.+?)\s+({_NUMBER})\s+(\S+)\s+({_NUMBER})\s+"
                       rf"({_NUMBER})\s+({_NUMBER})")
_CURRENT = re.compile(rf"Primary Current before acq\s*:\s*({_NUMBER})?\s*(?:pA)?\s*/\s*"
                      rf"after acq\s*:\s*({_NUMBER})?")


def read_chk_is(path: str | os.PathLike) -> dict:
    """What the ``.chk_is`` beside ``path`` says; an empty dict when there is none.

    Returns
    -------
    dict
        ``'path'``; ``'masses'``: one dict per mass-table row (``number``, ``species``,
        ``mass_amu``, ``detector`` as written, e.g. ``'Tr1'``, ``counting_time_s``,
        ``b_field``, ``radius``); ``'blocks'`` and ``'cycles_per_block'`` when given;
        ``'primary_current_pA'`` (before, after; None where ``N/A``).
    """
    stem = os.path.splitext(os.fspath(path))[0]
    companion = stem + ".chk_is"
    try:
        with open(companion, encoding="latin-1") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return {}
    result: dict = {"path": companion, "masses": []}
    in_table = False
    for line in lines:
        if line.startswith("Mass#"):
            in_table = True
            continue
        if in_table:
            match = _MASS_ROW.match(line)
            if match:
                number, species, amu, detector, tc, b_field, radius = match.groups()
                result["masses"].append(dict(
                    number=int(number), species=" ".join(species.split()),
                    mass_amu=float(amu), detector=detector, counting_time_s=float(tc),
                    b_field=float(b_field), radius=float(radius)))
                continue
            if line.strip():
                in_table = False
        for key, name in (("Block number", "blocks"), ("Meas. per block", "cycles_per_block")):
            if line.startswith(key) and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value.isdigit():
                    result[name] = int(value)
        current = _CURRENT.search(line)
        if current:
            result["primary_current_pA"] = tuple(
                float(v) if v is not None else None for v in current.groups())
    return result


def read_is_txt(path: str | os.PathLike) -> list[dict]:
    """Read Cameca's text export of an isotope file (``.is_txt``).

    Returns
    -------
    list of dict
        One per mass block, in file order: ``species``, ``mass_amu``, ``counting_time_s``
        (the ``Tc`` it prints, rounded to µs), ``times_s`` and ``values`` (float64 arrays
        of its X and Y columns).
    """
    blocks: list[dict] = []
    head = re.compile(rf"M\s*=\s*({_NUMBER})\s*\((.*?)\)\s*:\s*Tc\s*=\s*({_NUMBER})\s*ms")
    with open(path, encoding="latin-1") as handle:
        for line in handle:
            if line.startswith("B ="):
                match = head.search(line)
                if match is None:
                    continue
                blocks.append(dict(species=" ".join(match.group(2).split()),
                                   mass_amu=float(match.group(1)),
                                   counting_time_s=float(match.group(3)) / 1000, rows=[]))
            elif blocks:
                parts = line.split()
                if len(parts) == 2:
                    try:
                        blocks[-1]["rows"].append((float(parts[0]), float(parts[1])))
                    except ValueError:
                        continue
    for block in blocks:
        rows = np.array(block.pop("rows"), dtype=np.float64).reshape(-1, 2)
        block["times_s"], block["values"] = rows[:, 0], rows[:, 1]
    return blocks
