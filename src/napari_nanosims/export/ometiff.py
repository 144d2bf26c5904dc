"""OME-TIFF images with physical pixel size and channel names, written safely."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ImFormatError
from ._ome_checks import (
    channel_names,
    check_claimed_sizes,
    check_series,
    checked_description,
    loads_description,
    parse_ome_xml,
)

__all__ = ["write_ome_tiff", "write_acquisition_tiffs", "counts_for_tiff",
           "software_versions", "json_ready", "acquisition_description", "read_ome_tiff",
           "OmeTiffContent", "DESCRIPTION_KEY", "frame_interval_s", "content_uuid"]

#: Key of our JSON object in the OME ``Image/Description``: it marks files we wrote.
DESCRIPTION_KEY = "napari_nanosims"

#: Namespace of the OME UUIDs we derive from a file's content (:func:`content_uuid`).
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "napari-nanosims/ome-tiff")

def software_versions() -> dict[str, str]:
    """Versions of the packages that shape the results."""
    return dict(_installed_versions())


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    """Looked up once per process: reading the packages' metadata costs about 5 ms a
    package, and a file's outputs ask four times (a tenth of a demo file's processing)."""
    from importlib import metadata

    versions = []
    for name in ("napari-nanosims", "numpy", "scipy", "scikit-image", "tifffile"):
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:  # pragma: no cover - editable checkouts
            versions.append((name, "unknown"))
    return tuple(versions)


def json_ready(value):
    """``value`` with numpy arrays and scalars turned into JSON types (recursively)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def acquisition_description(acquisition, kind: str) -> dict[str, Any]:
    """What our OME-TIFFs carry in their description: enough to reopen them with units,
    channel names and the processing history (``kind``: 'sums', 'variance' or 'stack')."""
    return json_ready({
        DESCRIPTION_KEY: 1,
        "kind": kind,
        "source": acquisition.path or acquisition.header.path,
        "software": software_versions(),
        "channels": [{"label": c.label, "mass_amu": c.mass_amu, "detector": c.detector,
                      "kind": c.kind} for c in acquisition.channels],
        "pixel_size_um": acquisition.pixel_size_um,
        "translations_px": acquisition.translations,
        "history": acquisition.history_dicts(),
        "header": acquisition.header.to_dict(),
    })


def frame_interval_s(header) -> float | None:
    """Time between frames of an acquisition, s: the analysis duration over its frames.

    Parameters
    ----------
    header : ImHeader
        Its ``analysis_duration_s`` (whole seconds, from the file) and its frames: the
        larger of the frames the header plans (``n_frames_header``) and those readable
        (``n_frames``), so a truncated file keeps the interval of the complete one.

    Returns
    -------
    float or None
        Seconds per frame (the OME ``TimeIncrement`` of stacks); None when the header
        has no duration (synthetic data).
    """
    duration = float(getattr(header, "analysis_duration_s", 0) or 0)
    frames = max(int(getattr(header, "n_frames_header", 0) or 0), int(header.n_frames))
    return duration / frames if duration > 0 and frames else None


def content_uuid(array: np.ndarray, metadata: dict[str, Any]) -> str:
    """A UUID that is a function of what an OME-TIFF holds: same content, same UUID.

    Parameters
    ----------
    array : numpy.ndarray
        The image data as they will be stored.
    metadata : dict
        Everything else the file holds: axes, channel names, pixel size, time increment
        and the description with the history, i.e. the recipe that made the data.

    Returns
    -------
    str
        :func:`uuid.uuid5`, in a napari-nanosims namespace, of the SHA-256 of the array's
        dtype, shape and values (little-endian) and of the metadata as sorted JSON.
        Identical runs therefore write identical files, and any change to the data or
        the recipe gives another UUID. About 0.13-0.27 s per 184 MB.
    """
    digest = hashlib.sha256()
    data = np.ascontiguousarray(array)
    data = data.astype(data.dtype.newbyteorder("<"), copy=False)
    digest.update(f"{data.dtype.str} {data.shape}".encode())
    digest.update(data.reshape(-1).view(np.uint8))  # type: ignore[arg-type]  # buffer, no copy
    digest.update(json.dumps(metadata, sort_keys=True, ensure_ascii=True,
                             default=str).encode())
    return str(uuid.uuid5(_UUID_NAMESPACE, digest.hexdigest()))


def _ome_metadata(axes: str, pixel_size_um: float, labels, description=None,
                  time_increment_s=None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"axes": axes, "Channel": {"Name": list(labels)}}
    if np.isfinite(pixel_size_um) and pixel_size_um > 0:
        metadata.update(PhysicalSizeX=pixel_size_um, PhysicalSizeXUnit="µm",
                        PhysicalSizeY=pixel_size_um, PhysicalSizeYUnit="µm")
    if time_increment_s is not None and np.isfinite(time_increment_s) and time_increment_s > 0:
        metadata.update(TimeIncrement=float(time_increment_s), TimeIncrementUnit="s")
    if description is not None:
        metadata["Description"] = json.dumps(description, ensure_ascii=False)
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
                   channel_names, description: dict | None = None,
                   time_increment_s: float | None = None) -> Path:
    """Write ``array`` as OME-TIFF at ``path`` (which the caller has renamed into place).

    Parameters
    ----------
    path : path-like
        Target file, written directly (callers write to a temporary name first:
        :func:`napari_nanosims.export._files.atomic_outputs`).
    array : array_like
        The image data, axes as in ``axes`` (``'CYX'`` or ``'TCYX'``).
    pixel_size_um : float
        Pixel size in micrometres, stored as ``PhysicalSizeX/Y``.
    channel_names : sequence of str
        One name per channel (the mass labels).
    description : dict, optional
        JSON stored as the OME ``Image/Description`` (:func:`acquisition_description`).
    time_increment_s : float, optional
        Time between frames, seconds (``TimeIncrement``; stacks: pass
        :func:`frame_interval_s` of the acquisition's header).

    Whole counts stay integers (uint32), fractional ones become float32; a stack of one
    frame keeps its T axis. The OME ``UUID`` is :func:`content_uuid` of the data and the
    metadata, and the file carries no time stamp, so writing the same content twice gives
    the same bytes.
    """
    import tifffile

    data = counts_for_tiff(array)
    metadata = _ome_metadata(axes, pixel_size_um, channel_names, description,
                             time_increment_s)
    metadata["UUID"] = f"urn:uuid:{content_uuid(data, metadata)}"
    tifffile.imwrite(path, data, ome=True, photometric="minisblack", metadata=metadata)
    return Path(path)



def write_acquisition_tiffs(acquisition, paths: dict, *, frames_header=None) -> dict:
    """Write the OME-TIFFs of an acquisition that ``paths`` asks for, with our description.

    Parameters
    ----------
    acquisition : Acquisition
        The processed acquisition.
    paths : dict
        Kind -> file, for any of ``'sums'`` (CYX: the summed counts, ``acquisition.sums``
        or the frames' sum), ``'variance'`` (CYX float32: ``var(<label>)`` per channel and
        ``coverage``, from :func:`~napari_nanosims.analysis.accumulate.accumulate`) and
        ``'stack'`` (TCYX: the counts). The files are written directly (callers write to
        temporary names).
    frames_header : ImHeader, optional
        The header whose frame interval the stack carries as ``TimeIncrement``
        (:func:`frame_interval_s`; default the acquisition's).

    Returns
    -------
    dict
        ``paths``.
    """
    labels, pixel = acquisition.labels, acquisition.pixel_size_um
    for kind, path in paths.items():
        if kind == "sums":
            sums = acquisition.sums if acquisition.sums is not None else np.asarray(
                acquisition.counts).sum(axis=0)
            write_ome_tiff(path, sums, "CYX", pixel, labels,
                           acquisition_description(acquisition, "sums"))
        elif kind == "variance":
            from ..analysis.accumulate import accumulate

            accumulation = accumulate(acquisition)
            variance = np.concatenate([accumulation.variance, accumulation.coverage[None]])
            write_ome_tiff(path, variance.astype(np.float32), "CYX", pixel,
                           [f"var({label})" for label in labels] + ["coverage"],
                           acquisition_description(acquisition, "variance"))
        elif kind == "stack":
            write_ome_tiff(path, acquisition.counts, "TCYX", pixel, labels,
                           acquisition_description(acquisition, "stack"),
                           time_increment_s=frame_interval_s(
                               acquisition.header if frames_header is None else frames_header))
        else:
            raise ValueError(f"unknown OME-TIFF kind {kind!r}: 'sums', 'variance' or 'stack'")
    return paths

class OmeTiffContent(dict):
    """What :func:`read_ome_tiff` returns: ``data``, ``axes``, ``channel_names``,
    ``pixel_size_um``, ``time_increment_s`` and ``description`` (our JSON, or None)."""


def read_ome_tiff(path: str | os.PathLike, *, ours_only: bool = False,
                  metadata_only: bool = False) -> OmeTiffContent | None:
    """Read an OME-TIFF with its axes, channel names, pixel size and our description.

    With ``ours_only``, returns None for any TIFF that napari-nanosims did not write
    (no OME metadata, or no ``napari_nanosims`` description). With ``metadata_only`` the
    pixels are not read (``data`` is None): a cheap check.

    Raises
    ------
    ImFormatError
        (a ValueError) naming the file: not a TIFF, malformed OME XML, metadata that
        claim more planes than the file has IFDs or more bytes than it can hold (checked
        before anything is allocated for them), planes missing or outside the file, and
        for our files axes other than CYX/TCYX or channel names that do not match the
        data. Memory: the pixels plus the file's metadata.

    Warns
    -----
    ImFormatWarning
        Values of our description of the wrong type are named and left out.
    """
    import tifffile

    try:
        return _read_ome_tiff(os.fspath(path), ours_only, metadata_only, tifffile)
    except ImFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - tifffile meets hostile bytes in many ways
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # the file cannot be opened: FileNotFoundError, PermissionError...
        raise ImFormatError(f"{os.fspath(path)}: not a readable OME-TIFF "
                            f"({type(exc).__name__}: {exc})") from None


def _read_ome_tiff(path: str, ours_only: bool, metadata_only: bool, tifffile):
    # _multifile=False: OME metadata naming other files never make us open them.
    with tifffile.TiffFile(path, _multifile=False) as tif:
        xml = tif.ome_metadata
        if not xml:
            if ours_only:
                return None
            raise ImFormatError(f"{path}: not an OME-TIFF (no OME metadata)")
        root = parse_ome_xml(xml, path, tif.filehandle.size)
        namespace = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
        image = root.find(f"{namespace}Image")
        pixels = image.find(f"{namespace}Pixels") if image is not None else None
        element = image.find(f"{namespace}Description") if image is not None else None
        description = loads_description(element.text if element is not None else None,
                                        DESCRIPTION_KEY)
        if ours_only and description is None:
            return None
        if pixels is None:
            raise ImFormatError(f"{path}: the OME metadata have no Image/Pixels")
        names = channel_names(pixels, namespace, path)
        size, increment = (_float_or_nan(pixels.get(key)) for key in
                           ("PhysicalSizeX", "TimeIncrement"))
        check_claimed_sizes(root, tif, path)  # before tif.series allocates per plane
        series = tif.series[0]
        axes = series.axes
        if description is not None:
            description = checked_description(description, len(names), path)
        if metadata_only:
            return OmeTiffContent(data=None, axes=axes, channel_names=names,
                                  pixel_size_um=size, time_increment_s=None,
                                  description=description)
        check_series(series, path, tif.filehandle.size)
        data = series.asarray()
    if description is not None:
        data, axes = _our_axes(data, axes, description, names, path)
    return OmeTiffContent(data=data, axes=axes, channel_names=names, pixel_size_um=size,
                          time_increment_s=increment if np.isfinite(increment) else None,
                          description=description)


def _float_or_nan(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _our_axes(data, axes: str, description: dict, names: list, path):
    """Our files' data as CYX (sums, variance) or TCYX (stacks): tifffile drops axes of
    length one (a stack of one frame, one channel), which are put back; anything else,
    or a channel axis whose length is not the number of names, is refused."""
    wanted = "TCYX" if description.get("kind") == "stack" else "CYX"
    if data.dtype.kind not in "uif":
        raise ImFormatError(f"{path}: pixel type {data.dtype}; napari-nanosims writes "
                            "integers or floats")
    if not set(axes) <= set(wanted) or len(axes) != data.ndim or \
            [a for a in wanted if a in axes] != list(axes):
        raise ImFormatError(f"{path}: axes {axes!r}; napari-nanosims writes {wanted!r}")
    for axis in wanted:
        if axis not in axes:
            data = np.expand_dims(data, wanted.index(axis))
    if data.shape[wanted.index("C")] != len(names):
        raise ImFormatError(f"{path}: {data.shape[wanted.index('C')]} channels in the data "
                            f"and {len(names)} channel names")
    return data, wanted
