"""ROI files of other programs read into a label image and classes, on the pixels of the
image they were drawn on.

* ImageJ / Fiji / OpenMIMS ``.roi`` files and ``.zip`` sets (roifile decodes the
  entries): rectangles, ovals, polygons, freehand and traced outlines and composite
  shapes, filled as ImageJ fills them: a pixel belongs to an ROI when its centre is
  inside (ImageJ's coordinates put pixel (row, column) on ``[column, column + 1) x
  [row, row + 1)``). Lines and points enclose nothing and are skipped. OpenMIMS's
  serialized Java entries (``locations.pos``, ``group``, ``group_map``, ``tag``,
  ``tag_map``) are never deserialized; the group names of ``group_map`` are read as
  plain strings (:mod:`._java_serial`) and become the ROIs' classes.
* LANS ``cells.mat`` (``Maskimg``, read with ``scipy.io.loadmat``: numbers only).
* Painted masks (PNG, TIFF): each connected region of one colour is an ROI and the colour
  (``'#rrggbb'``; the value for one-channel images) its class.

Every size is checked before anything is allocated; a file that cannot be read raises
:class:`ImFormatError` naming it.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import NoReturn

import numpy as np

from .._errors import ImFormatError, RoiFileWarning

__all__ = ["read_roi_labels", "fill_imagej_rois", "ROI_SUFFIXES", "MASK_SUFFIXES"]

ROI_SUFFIXES = (".roi", ".zip")
MASK_SUFFIXES = (".png", ".tif", ".tiff")
#: OpenMIMS's serialized Java entries of an ROI zip (never deserialized).
OPENMIMS_ENTRIES = ("locations.pos", "group", "group_map", "tag", "tag_map")
MAX_ENTRIES = 100_000
MAX_ENTRY_BYTES = 16 * 2**20
MAX_TOTAL_BYTES = 256 * 2**20
MAX_PIXELS = 2**26  # an 8192 x 8192 image
MAX_CROSSINGS = 4_000_000  # outline crossings of pixel rows, per ROI
_AREA_TYPES = {0: "polygon", 1: "rectangle", 2: "oval", 7: "freehand", 8: "traced"}


def _fail(path, what: str) -> NoReturn:
    raise ImFormatError(f"{os.fspath(path)}: {what}")


def _scanline_fill(outlines, shape) -> np.ndarray:
    """Even-odd fill of closed outlines (ImageJ x, y coordinates): the pixels whose
    centre is inside, by crossings of the pixel rows' centre lines (no loop over pixels;
    memory in proportion to the crossings, which are counted first)."""
    height, width = shape
    starts, ends = [], []
    for points in outlines:
        points = np.asarray(points, dtype=np.float64)
        if len(points) >= 3:
            starts.append(points)
            ends.append(np.roll(points, -1, axis=0))
    mask = np.zeros(shape, dtype=bool)
    if not starts:
        return mask
    a, b = np.concatenate(starts), np.concatenate(ends)
    low, high = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    # Rows r with low <= r + 0.5 < high (half-open: a vertex is crossed once).
    first = np.clip(np.ceil(low - 0.5), 0, height).astype(np.int64)
    last = np.clip(np.ceil(high - 0.5), 0, height).astype(np.int64)
    counts = np.maximum(last - first, 0)
    if counts.sum() > MAX_CROSSINGS:
        raise ValueError(f"an outline crosses the pixel rows {counts.sum()} times (at most "
                         f"{MAX_CROSSINGS})")
    edge = np.repeat(np.arange(len(a)), counts)
    rows = np.repeat(first, counts) + (np.arange(counts.sum()) - np.repeat(
        np.cumsum(counts) - counts, counts))
    y = rows + 0.5
    x = a[edge, 0] + (y - a[edge, 1]) * (b[edge, 0] - a[edge, 0]) / (b[edge, 1] - a[edge, 1])
    order = np.lexsort((x, rows))
    rows, x = rows[order], x[order]
    # Pair the crossings of each row: (1st, 2nd), (3rd, 4th)... (an even number per row).
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    opening = rank % 2 == 0
    row, x_in = rows[opening], x[opening]
    x_out = x[np.flatnonzero(opening) + 1]
    # Pixel c is inside when x_in <= c + 0.5 < x_out.
    column_in = np.clip(np.ceil(x_in - 0.5), 0, width).astype(np.int64)
    column_out = np.clip(np.ceil(x_out - 0.5), 0, width).astype(np.int64)
    steps = np.zeros((height, width + 1), dtype=np.int32)
    np.add.at(steps, (row, column_in), 1)
    np.add.at(steps, (row, column_out), -1)
    return np.cumsum(steps[:, :width], axis=1) > 0


def _fill_one(roi, shape) -> np.ndarray | None:
    """The pixels of one ImageJ ROI on a ``shape`` image (None: not an area)."""
    kind = int(roi.roitype)
    composite = getattr(roi, "multi_coordinates", None) is not None
    if kind not in _AREA_TYPES and not composite:
        return None
    if composite:
        return _scanline_fill(roi.coordinates(multi=True), shape)
    if kind in (1, 2):  # rectangle, oval: their bounds (sub-pixel ones when given)
        if roi.subpixelrect:
            left, top, width, height = roi.xd, roi.yd, roi.widthd, roi.heightd
        else:
            left, top = roi.left, roi.top
            width, height = roi.right - roi.left, roi.bottom - roi.top
        rows = np.arange(shape[0]) + 0.5
        columns = np.arange(shape[1]) + 0.5
        if kind == 1:
            return ((rows >= top) & (rows < top + height))[:, None] & \
                ((columns >= left) & (columns < left + width))[None, :]
        if width <= 0 or height <= 0:
            return np.zeros(shape, dtype=bool)
        dy = ((rows - (top + height / 2)) / (height / 2)) ** 2
        dx = ((columns - (left + width / 2)) / (width / 2)) ** 2
        return dy[:, None] + dx[None, :] <= 1.0
    return _scanline_fill([roi.coordinates()], shape)


def fill_imagej_rois(rois, shape, source="ROIs", groups=None):
    """Label image and classes of decoded ImageJ ROIs (``roifile.ImagejRoi``) on a
    (height, width) image.

    ``rois`` is a list of (name, ImagejRoi). ROIs are numbered 1, 2... in file order,
    areas only; where they overlap the later one wins (a :class:`RoiFileWarning` says
    how many pixels). Classes: ``groups[name]`` (OpenMIMS), else ImageJ's group number
    when it is set.
    """
    labels = np.zeros(shape, dtype=np.int32)
    classes, skipped, overlap, number = {}, 0, 0, 0
    for name, roi in rois:
        try:
            mask = _fill_one(roi, shape)
        except ValueError as exc:
            raise ImFormatError(f"{source}: ROI {name!r}: {exc}") from None
        if mask is None:
            skipped += 1
            continue
        number += 1
        overlap += int(np.count_nonzero(labels[mask]))
        labels[mask] = number
        if groups and name in groups:
            classes[number] = groups[name]
        elif getattr(roi, "group", 0):
            classes[number] = int(roi.group)
    if skipped:
        warnings.warn(f"{source}: {skipped} line or point ROI(s) skipped (they enclose no "
                      "pixels)", RoiFileWarning, stacklevel=3)
    if overlap:
        warnings.warn(f"{source}: ROIs overlap on {overlap} pixel(s); each such pixel "
                      "belongs to the later ROI", RoiFileWarning, stacklevel=3)
    return labels, classes


def _imagej_entries(path: Path):
    """(name, ImagejRoi) of a .roi file or every .roi entry of a zip, and the OpenMIMS
    groups (ROI name -> group name) when the zip has them."""
    import roifile

    from ._java_serial import JavaStreamError, group_map

    def decode(name, data):
        try:
            return roifile.ImagejRoi.frombytes(data)
        except Exception as exc:  # roifile raises several kinds for bad bytes
            _fail(path, f"entry {name!r} is not an ImageJ ROI ({exc})")

    if path.suffix.lower() == ".roi":
        if path.stat().st_size > MAX_ENTRY_BYTES:
            _fail(path, f"larger than {MAX_ENTRY_BYTES} bytes: not an ROI file")
        return [(path.stem, decode(path.name, path.read_bytes()))], {}
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        _fail(path, f"not a zip archive of ROIs ({exc})")
    entries, groups, total = [], {}, 0
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            _fail(path, f"{len(infos)} entries; at most {MAX_ENTRIES}")
        for info in infos:
            base = info.filename.rsplit("/", 1)[-1]
            if info.is_dir():
                continue
            if not base.lower().endswith(".roi") and base not in ("group_map",):
                if base not in OPENMIMS_ENTRIES:
                    warnings.warn(f"{path}: entry {info.filename!r} is not an ROI; skipped",
                                  RoiFileWarning, stacklevel=4)
                continue
            if info.file_size > MAX_ENTRY_BYTES or total + info.file_size > MAX_TOTAL_BYTES:
                _fail(path, f"entry {info.filename!r} is too large ({info.file_size} bytes)")
            with archive.open(info) as handle:  # read no more than announced
                data = handle.read(info.file_size + 1)
            if len(data) > info.file_size:
                _fail(path, f"entry {info.filename!r} holds more than its announced size")
            total += len(data)
            if base == "group_map":
                try:
                    groups = group_map(data)
                except JavaStreamError as exc:
                    warnings.warn(f"{path}: OpenMIMS groups not readable ({exc}); the ROIs "
                                  "have no classes", RoiFileWarning, stacklevel=4)
                continue
            entries.append((base[:-4], decode(info.filename, data)))
    return entries, groups


def _refuse_size(path, found, shape) -> None:
    """ValueError when the file's image (height, width) is not ``shape``."""
    if shape is not None and tuple(found) != tuple(shape):
        raise ValueError(f"{os.fspath(path)}: its image is {found[0]} x {found[1]} pixels, "
                         f"not {shape[0]} x {shape[1]}: drawn on another image (give the "
                         "registration that maps it)")


def _mat_labels(path: Path, shape) -> np.ndarray:
    from scipy import io as sio

    try:
        found = {name: (size, kind) for name, size, kind in sio.whosmat(path)}
    except Exception as exc:  # scipy raises several kinds for files that are no MAT file
        _fail(path, f"not a MATLAB file scipy can read (LANS saves -v6) ({exc})")
    if "Maskimg" not in found:
        _fail(path, f"no Maskimg variable (LANS cells.mat); it has {sorted(found)[:10]}")
    expected, (shape, kind) = shape, found["Maskimg"]
    if len(shape) != 2 or kind not in ("double", "single", "int8", "uint8", "int16",
                                       "uint16", "int32", "uint32", "int64", "uint64",
                                       "logical"):
        _fail(path, f"Maskimg is {kind} of shape {shape}, not a 2-D image of numbers")
    _refuse_size(path, shape, expected)
    if shape[0] * shape[1] > MAX_PIXELS:
        _fail(path, f"Maskimg has {shape[0]} x {shape[1]} pixels; at most {MAX_PIXELS}")
    values = sio.loadmat(path, variable_names=["Maskimg"])["Maskimg"]
    if values.dtype.kind not in "biuf" or not np.all(np.isfinite(values)) or \
            np.any(values < 0) or np.any(values != np.round(values)) or \
            (values.size and values.max() >= 2**31):
        _fail(path, "Maskimg must hold whole numbers >= 0 (0 = background)")
    return values.astype(np.int32)


def _image_pixels(path: Path, shape) -> np.ndarray:
    """A PNG or TIFF's pixels: (h, w) or (h, w, channels), sizes checked first."""
    if path.suffix.lower() == ".png":
        from PIL import Image

        try:
            with Image.open(path) as image:
                width, height = image.size
                _refuse_size(path, (height, width), shape)
                if width * height > MAX_PIXELS:
                    _fail(path, f"{width} x {height} pixels; at most {MAX_PIXELS}")
                if image.mode == "P":
                    image = image.convert("RGBA")
                elif image.mode == "1":
                    image = image.convert("L")
                return np.asarray(image)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            if isinstance(exc, ValueError) and str(exc).startswith(os.fspath(path)):
                raise
            _fail(path, f"not a readable PNG ({exc})")
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages.first
            if len(tiff.pages) > 1 or not 2 <= len(page.shape) <= 3 or \
                    int(np.prod(page.shape)) > MAX_PIXELS * 4:
                _fail(path, f"{page.shape} pixels in {len(tiff.pages)} page(s): one 2-D "
                            "image (colour or not) is expected")
            planar = len(page.shape) == 3 and page.shape[0] in (3, 4) and \
                page.shape[2] not in (3, 4)
            _refuse_size(path, page.shape[1:] if planar else page.shape[:2], shape)
            pixels = page.asarray()
            return np.moveaxis(pixels, 0, -1) if planar else pixels
    except ValueError as exc:  # ours (ImFormatError is one) name the file already
        if str(exc).startswith(os.fspath(path)):
            raise
        _fail(path, f"not a readable TIFF ({exc})")
    except Exception as exc:  # tifffile raises many kinds for bad files
        _fail(path, f"not a readable TIFF ({exc})")


def _mask_labels(path: Path, pixels: np.ndarray, min_area_px: int, background):
    """Connected regions of one colour (value) -> labels, classes."""
    from skimage.measure import label

    if pixels.ndim == 3 and pixels.shape[2] in (3, 4) and pixels.dtype.kind in "u":
        rgb = pixels[..., :3].astype(np.int64)
        codes = (rgb[..., 0] << 32) | (rgb[..., 1] << 16) | rgb[..., 2]
        if pixels.shape[2] == 4:
            codes = np.where(pixels[..., 3] == 0, -1, codes)  # transparent: background
        digits = 2 * pixels.dtype.itemsize

        def name(code):
            return "#" + "".join(f"{(code >> shift) & 0xFFFF:0{digits}x}"
                                 for shift in (32, 16, 0))
        if isinstance(background, str):
            text = background.lstrip("#")
            if len(text) != 3 * digits or any(c not in "0123456789abcdefABCDEF"
                                               for c in text):
                raise ValueError(f"background {background!r} must be a colour "
                                 f"'#{'rr' * (digits // 2)}{'gg' * (digits // 2)}...'")
            parts = [int(text[i:i + digits], 16) for i in range(0, 3 * digits, digits)]
            background = (parts[0] << 32) | (parts[1] << 16) | parts[2]
    elif pixels.ndim == 2 and pixels.dtype.kind in "biu":
        codes = pixels.astype(np.int64)
        name = int
    else:
        _fail(path, f"a mask must be a one-channel image of whole numbers or an RGB(A) "
                    f"image; got {pixels.dtype} of shape {pixels.shape}")
    if background is None:  # 0 for labels; transparency or the most frequent colour
        if pixels.ndim == 2:
            background = 0
        elif np.any(codes < 0):
            background = -1
        else:
            values, counts = np.unique(codes[codes >= 0], return_counts=True)
            background = int(values[np.argmax(counts)]) if values.size else -1
    codes = np.where(codes == background, -1, codes)
    regions = label(codes + 1, background=0, connectivity=1)
    sizes = np.bincount(regions.ravel())
    keep = sizes >= min_area_px
    keep[0] = False
    number = np.zeros(len(sizes), dtype=np.int32)
    number[keep] = np.arange(1, int(keep.sum()) + 1)
    labels = number[regions]
    code_of = np.zeros(len(sizes), dtype=np.int64)
    code_of[regions.ravel()] = codes.ravel()
    classes = {int(number[k]): name(int(code_of[k])) for k in np.flatnonzero(keep)}
    return labels, classes


def read_roi_labels(path, shape=None, *, min_area_px: int = 4, background=None):
    """Labels and classes of an ROI file, on the pixels of the image it was drawn on.

    Parameters
    ----------
    path : path-like
        ``.roi`` or ``.zip`` (ImageJ, Fiji, OpenMIMS), ``.mat`` (LANS ``cells.mat``),
        ``.png``, ``.tif`` or ``.tiff`` (a painted mask or a label image).
    shape : (int, int), optional
        (height, width) of that image. Needed for ImageJ files (they carry none); the
        others are refused when their size differs.
    min_area_px : int
        Masks only: smaller regions are dropped (anti-aliased edges of paintings).
    background : str or int, optional
        Masks only: the colour (``'#rrggbb'``) or value (one-channel images) that is no
        ROI; default the most frequent colour, 0 for one-channel images. Transparent
        pixels are no ROI either.

    Returns
    -------
    (numpy.ndarray, dict)
        int32 labels (0 = none), and ``{roi: class}`` for the ROIs that have one.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ValueError(f"{os.fspath(path)}: no such ROI file")
    if shape is not None:
        shape = tuple(int(v) for v in shape)
        if len(shape) != 2 or min(shape) < 1 or shape[0] * shape[1] > MAX_PIXELS:
            raise ValueError(f"shape {shape} is not an image size (height, width)")
    if suffix in ROI_SUFFIXES:
        if shape is None:
            raise ValueError(f"{path}: ImageJ ROIs carry no image size; give the image "
                             "they were drawn on (like=, or a registration)")
        entries, groups = _imagej_entries(path)
        _check_bounds(path, entries, shape)
        return fill_imagej_rois(entries, shape, str(path), groups)
    if suffix == ".mat":
        labels, classes = _mat_labels(path, shape), {}
    elif suffix in MASK_SUFFIXES:
        labels, classes = _mask_labels(path, _image_pixels(path, shape),
                                       int(min_area_px), background)
    else:
        raise ValueError(f"{path}: not an ROI file ({', '.join(ROI_SUFFIXES + MASK_SUFFIXES)}"
                         " or .mat)")
    _refuse_size(path, labels.shape, shape)
    return labels, classes


def _check_bounds(path, entries, shape) -> None:
    """Refuse ROI sets drawn on another image: any ROI entirely outside ``shape``."""
    outside = [name for name, roi in entries
               if roi.right <= 0 or roi.bottom <= 0 or roi.left >= shape[1]
               or roi.top >= shape[0]]
    if outside and entries:
        raise ValueError(f"{path}: ROI(s) {outside[:5]} lie outside the {shape[0]} x "
                         f"{shape[1]} image: drawn on another image (give the registration "
                         "that maps them)")
