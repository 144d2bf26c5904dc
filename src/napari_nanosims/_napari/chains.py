"""Opened files that are one field: find them in the viewer, join them (no Qt).

napari reads each dropped file on its own, so the offer to join files comes after they
are open: :func:`same_field_groups` looks at the headers of the files whose layers are in
the viewer and returns the groups that :func:`napari_nanosims.io.chains.same_field` calls
one field; :func:`chain_layer_data` makes the layers of the joined acquisition.

The ``.im`` reader calls :func:`offer_same_field_soon` after each file: once napari has
added the layers of every file being opened (the next turn of the event loop), one
notification names the groups not offered before in that viewer and points to the
"Chains and mosaics" widget, which joins them. The widget and the reader share what was
offered (:func:`new_offers`), so no group is offered twice.
"""

from __future__ import annotations

import os
import weakref
from functools import partial

from ..io.chains import concatenate, same_field
from ..io.compressed import COMPRESSED_SUFFIXES
from ..model import ImHeader
from .layers import KIND_RAW, file_layer_data
from .lookups import nanosims_info

__all__ = ["opened_files", "same_field_groups", "chain_layer_data", "offer_text",
           "OFFER_TITLE", "new_offers", "offer_message", "offer_same_field_soon"]

#: The words the widget offers a group under.
OFFER_TITLE = "one acquisition (same field)"
#: Where the offer is taken up (napari.yaml's widget, under the plugin's display name).
WIDGET_MENU = "Plugins > napari-nanosims > Chains and mosaics"

# Per viewer (by id, dropped when the viewer is collected): the groups offered so far,
# and whether an offer is already waiting for the event loop.
_OFFERED: dict[int, set[tuple[str, ...]]] = {}
_PENDING: set[int] = set()


#: An .im file, plain or compressed (io/compressed.py).
_IM_SUFFIXES = (".im",) + tuple(".im" + suffix for suffix in COMPRESSED_SUFFIXES)


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
        if path.lower().endswith(_IM_SUFFIXES) and os.path.isfile(path) and path not in paths:
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


def new_offers(viewer) -> list[list[str]]:
    """The same-field groups of ``viewer`` not offered before in it; marks them offered."""
    key = id(viewer)
    if key not in _OFFERED:
        _OFFERED[key] = set()
        weakref.finalize(viewer, _OFFERED.pop, key, None)
    offered = _OFFERED[key]
    fresh = [group for group in same_field_groups(viewer) if tuple(group) not in offered]
    offered.update(tuple(group) for group in fresh)
    return fresh


def offer_message(groups: list[list[str]]) -> str:
    """One notification's text for these groups."""
    lines = [f"{offer_text(group)}?" for group in groups]
    lines.append(f"The headers say {'these files are' if len(groups) == 1 else 'each line is'}"
                 f" one field: {WIDGET_MENU}, 'One acquisition (same field)', joins them.")
    return "\n".join(lines)


def offer_same_field_soon() -> None:
    """Offer, once, to join opened files of one field, after napari has added the layers
    of the files being opened (so dropping three files gives one offer of three).

    Does nothing without a napari window (scripts, tests on a bare ViewerModel). The
    viewer is napari's active one: napari does not hand readers their viewer.
    """
    try:
        from napari import current_viewer
        from qtpy.QtCore import QTimer
    except ImportError:  # pragma: no cover - the reader also works without napari's Qt
        return
    viewer = current_viewer()
    if viewer is None or id(viewer) in _PENDING:
        return
    _PENDING.add(id(viewer))
    # A weak reference: a viewer closed before the timer fires is not kept alive.
    QTimer.singleShot(0, partial(_offer_now, weakref.ref(viewer), id(viewer)))


def _still_opening() -> bool:
    """True while napari's "Opening Files" progress runs: ``viewer.open`` processes
    events between files, so a timer can fire before the last file's layers are in."""
    from napari.utils import progress

    # progress._all_instances is how napari's activity dock finds running progress bars;
    # without it (another napari) offers come as files are added, a group at a time.
    running = getattr(progress, "_all_instances", ())
    return any(getattr(bar, "desc", "") == "Opening Files" for bar in list(running))


def _offer_now(reference, key: int) -> None:
    viewer = reference()
    if viewer is None:
        _PENDING.discard(key)
        return
    if _still_opening():
        from qtpy.QtCore import QTimer

        QTimer.singleShot(50, partial(_offer_now, reference, key))
        return
    _PENDING.discard(key)
    try:
        groups = new_offers(viewer)
    except RuntimeError:  # the viewer is closing
        return
    if groups:
        from napari.utils.notifications import show_info

        show_info(offer_message(groups))
