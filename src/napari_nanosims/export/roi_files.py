"""ROIs written for other programs: an ImageJ ``rois.zip`` (Fiji, OpenMIMS) and a LANS
``cells.mat``.

Each ROI of a label image becomes the outline of its pixels along the pixel edges, so
that ImageJ (a pixel is inside when its centre is) fills exactly the same pixels: one
traced polygon, or a composite shape when the ROI has holes or several parts. Classes go
into ImageJ's ROI group number (1-255) and, for OpenMIMS, into the ``group`` and
``group_map`` entries it reads (a list of group names and a map ROI name -> group name,
in the string form of OpenMIMS's older files, written here byte by byte after the Java
Object Serialization Specification; nothing of Java runs).
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from ._files import atomic_output

__all__ = ["write_rois", "outline_loops"]

# Directed pixel edges with the ROI on their right (y downwards): per side of a pixel
# (row, column), the edge's start and end corner offsets (x, y).
_SIDES = {"top": ((0, 0), (1, 0), (-1, 0)), "right": ((1, 0), (1, 1), (0, 1)),
          "bottom": ((1, 1), (0, 1), (1, 0)), "left": ((0, 1), (0, 0), (0, -1))}


def outline_loops(mask: np.ndarray) -> list[np.ndarray]:
    """Closed outlines (x, y corner coordinates, ImageJ's) of a boolean mask along the
    pixel edges, collinear corners dropped. Filled even-odd (or by winding) with the
    pixel-centre rule they give back exactly the mask."""
    padded = np.pad(mask, 1)
    starts, ends = [], []
    for offsets in _SIDES.values():
        (sx, sy), (ex, ey), (dr, dc) = offsets
        outside = ~padded[1 + dr:padded.shape[0] - 1 + dr, 1 + dc:padded.shape[1] - 1 + dc]
        rows, columns = np.nonzero(mask & outside)
        starts.append(np.stack([columns + sx, rows + sy], axis=1))
        ends.append(np.stack([columns + ex, rows + ey], axis=1))
    start, end = np.concatenate(starts), np.concatenate(ends)
    following: dict[tuple, list[int]] = {}
    for index, corner in enumerate(map(tuple, start.tolist())):  # one pass over the edges
        following.setdefault(corner, []).append(index)
    used = np.zeros(len(start), dtype=bool)
    loops = []
    for first in range(len(start)):  # walks the perimeter, each edge once
        if used[first]:
            continue
        loop, edge = [], first
        while not used[edge]:
            used[edge] = True
            loop.append(start[edge])
            candidates = [e for e in following[tuple(end[edge].tolist())] if not used[e]]
            if not candidates:
                break
            edge = candidates[0]
        points = np.array(loop)
        before, after = np.roll(points, 1, axis=0), np.roll(points, -1, axis=0)
        turn = (points[:, 0] - before[:, 0]) * (after[:, 1] - points[:, 1]) - \
            (points[:, 1] - before[:, 1]) * (after[:, 0] - points[:, 0])
        loops.append(points[turn != 0])
    return loops


def _imagej_roi(loops: list[np.ndarray], name: str, group: int):
    import roifile

    if len(loops) == 1:
        roi = roifile.ImagejRoi.frompoints(loops[0].astype(np.int32), name=name)
        roi.roitype = roifile.ROI_TYPE.TRACED
        roi.options = roifile.ROI_OPTIONS.NONE
    else:  # holes or parts: a composite shape (MOVETO x y, LINETO x y..., CLOSE)
        path = []
        for loop in loops:
            path += [0.0, *map(float, loop[0])]
            for point in loop[1:]:
                path += [1.0, *map(float, point)]
            path.append(4.0)
        every = np.concatenate(loops)
        roi = roifile.ImagejRoi()
        roi.roitype = roifile.ROI_TYPE.RECT
        roi.name = name
        roi.multi_coordinates = np.array(path, dtype=np.float32)
        roi.shape_roi_size = len(path)
        roi.left, roi.top = (int(v) for v in every.min(axis=0))
        roi.right, roi.bottom = (int(v) for v in every.max(axis=0))
    roi.group = group
    return roi


def _java_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return b"\x74" + struct.pack(">H", len(data)) + data


def _java_array_list(names: list[str]) -> bytes:
    """``ArrayList<String>`` serialized (stream magic included)."""
    head = (b"\xac\xed\x00\x05\x73\x72" + struct.pack(">H", 19) + b"java.util.ArrayList"
            + bytes.fromhex("7881d21d99c7619d") + b"\x03\x00\x01I" + struct.pack(">H", 4)
            + b"size\x78\x70")
    body = struct.pack(">i", len(names)) + b"\x77\x04" + struct.pack(">i", len(names))
    return head + body + b"".join(map(_java_string, names)) + b"\x78"


def _java_hash_map(pairs: dict[str, str]) -> bytes:
    """``HashMap<String, String>`` serialized (stream magic included)."""
    capacity = 16
    while capacity * 0.75 < len(pairs):
        capacity *= 2
    head = (b"\xac\xed\x00\x05\x73\x72" + struct.pack(">H", 17) + b"java.util.HashMap"
            + bytes.fromhex("0507dac1c31660d1") + b"\x03\x00\x02F" + struct.pack(">H", 10)
            + b"loadFactorI" + struct.pack(">H", 9) + b"threshold\x78\x70")
    body = struct.pack(">fi", 0.75, int(capacity * 0.75)) + b"\x77\x08" + \
        struct.pack(">ii", capacity, len(pairs))
    items = b"".join(_java_string(k) + _java_string(v) for k, v in pairs.items())
    return head + body + items + b"\x78"


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "iu" or \
            (labels.size and labels.min() < 0):
        raise ValueError(f"labels must be a 2-D image of whole numbers >= 0; got "
                         f"{labels.dtype} of shape {labels.shape}")
    return labels


def write_rois(labels, path, classes=None, *, overwrite: bool = False) -> Path:
    """Write the ROIs of a label image for ImageJ/Fiji/OpenMIMS or LANS.

    Parameters
    ----------
    labels : array_like of int, (height, width)
        ROIs, 0 = background.
    path : path-like
        ``<name>.zip`` (ImageJ ROI set; OpenMIMS names it ``<image>.rois.zip``) or
        ``<name>.mat`` (LANS: ``Maskimg``, saved as LANS saves ``cells.mat``).
    classes : mapping, optional
        ``{roi: class}``. In the zip: ImageJ's group number (the classes in sorted order
        as 1, 2...; at most 255) and OpenMIMS's groups. LANS keeps classes in another
        file: a ``.mat`` gets none.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The file written (atomically: a partial file never has the final name).
    """
    from ..analysis.classes import check_classes

    labels = _check_labels(labels)
    path = Path(path)
    present = np.unique(labels[labels > 0])
    classes = check_classes(classes or {}, present.tolist())
    suffix = path.suffix.lower()
    if suffix == ".mat":
        from scipy import io as sio

        with atomic_output(path, overwrite) as temporary, open(temporary, "wb") as handle:
            sio.savemat(handle, {"Maskimg": labels.astype(np.float64)}, format="5",
                        do_compression=False)
        return path
    if suffix != ".zip":
        raise ValueError(f"{os.fspath(path)}: write_rois writes .zip (ImageJ, OpenMIMS) or "
                         ".mat (LANS)")
    names = sorted({str(name) for name in classes.values()})
    if len(names) > 255:
        raise ValueError(f"{len(names)} classes; ImageJ ROI groups hold at most 255")
    group_of = {name: number for number, name in enumerate(names, start=1)}
    from scipy import ndimage

    boxes = ndimage.find_objects(labels)
    with atomic_output(path, overwrite) as temporary, \
            zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for roi_number in present.tolist():
            box = boxes[roi_number - 1]
            loops = outline_loops(labels[box] == roi_number)
            shift = np.array([box[1].start, box[0].start])
            name = str(roi_number)
            group = group_of.get(str(classes.get(roi_number)), 0)
            roi = _imagej_roi([loop + shift for loop in loops], name, group)
            archive.writestr(f"{name}.roi", roi.tobytes())
        if classes:
            archive.writestr("group", _java_array_list(names))
            archive.writestr("group_map", _java_hash_map(
                {str(roi): str(name) for roi, name in classes.items()}))
    return path
