"""Opened files that are one field: find them in the viewer, join them (no Qt).

napari reads each dropped file on its own, so the offer to join files comes after they
are open: :func:`same_field_groups` looks at the headers of the files whose layers are in
the viewer and returns the groups that :func:`napari_nanosims.io.chains.same_field` calls
one field; :func:`chain_layer_data` makes the layers of the joined acquisition.
"""

from __future__ import annotations

import os

from ..io.chains import concatenate, same_field
from ..model import ImHeader
from .layers import KIND_RAW, file_layer_data
from .lookups import nanosims_info

__all__ = ["opened_files", "same_field_groups", "chain_layer_data", "offer_text",
           "OFFER_TITLE"]

#: The words the widget offers a group under.
OFFER_TITLE = "one acquisition (same field)"


def opened_files(viewer) -> dict[str, tuple[str, ImHeader]]:
    """Acquisition id -> (file, header) of every ``.im`` file whose raw layers are open.

    Chains already made (their source is not a file on disk) are left out, and a file
    opened twice counts once.
    """
    found: dict[str, tuple[str, ImHeader]] = {}
    paths: set[str] = set()
    for layer in viewer.layers:
        info = nanosims_info(layer)
        if not info or info.get("kind") != KIND_RAW or info["acquisition_id"] in found:
            continue
        path = info.get("source_path") or ""
        # A file opened twice is one file: its first opening stands for it.
        if path.lower().endswith(".im") and os.path.isfile(path) and path not in paths:
            paths.add(path)
            found[info["acquisition_id"]] = (path, ImHeader.from_dict(info["header"]))
    return found


def same_field_groups(viewer) -> list[list[str]]:
    """Groups (two files or more) of opened files that the headers say are one field.

    Each group lists file paths in acquisition order; a file is in at most one group.
    """
    files = list(opened_files(viewer).values())
    groups: list[list[tuple[str, ImHeader]]] = []
    for path, header in files:
        for group in groups:
            if same_field([group[0][1], header]):
                group.append((path, header))
                break
        else:
            groups.append([(path, header)])
    result = []
    for group in groups:
        if len(group) > 1:
            group.sort(key=lambda item: (item[1].analysis_date is None,
                                         item[1].analysis_date or 0, item[0]))
            result.append([path for path, _ in group])
    return result


def offer_text(group: list[str]) -> str:
    """What the widget says about one group: its files and their stage position."""
    names = ", ".join(os.path.basename(path) for path in group)
    return f"{names}: {OFFER_TITLE}"


def chain_layer_data(paths: list[str], order: str = "time") -> list[tuple]:
    """Layer data tuples of the files joined by :func:`napari_nanosims.concatenate`.

    The chain gets its own acquisition id and the name ``<first>_chain<n>``; its layers
    are lazy (the files' memory maps) and its history starts with ``concatenate``.
    Raises ValueError naming what differs when the files cannot be joined.
    """
    return file_layer_data(concatenate(list(paths), order=order))
