"""Turn acquisitions and results into napari layer data tuples (no Qt, no napari)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..model import Acquisition

# Colormaps that read well on black; SE is grey.
ION_COLORMAPS = ("magma", "viridis", "inferno", "cividis", "plasma", "turbo", "twilight")
SE_COLORMAP = "gray"
# The colormap of common species, so that a mass looks the same in every file whatever
# detector recorded it (labels compared without spaces). Isotope pairs differ.
SPECIES_COLORMAPS = {
    "12C": "viridis", "13C": "plasma", "12C14N": "magma", "12C15N": "inferno",
    "31P": "cividis", "32S": "turbo", "34S": "twilight", "16O": "cividis", "18O": "inferno",
    "1H": "viridis", "2H": "plasma", "12C2": "viridis", "12C13C": "plasma",
    "19F": "twilight", "28Si": "turbo", "13C14N": "plasma", "12C14N2": "twilight",
}


def mass_colormap(label: str) -> str:
    """The colormap of a mass label: the same in every file (never by detector slot).

    Common species have a fixed one (:data:`SPECIES_COLORMAPS`); any other label gets one
    from a checksum of its text, so it is the same in every file and session as well.
    """
    import zlib

    key = "".join(str(label).split())
    if key.upper() == "SE":
        return SE_COLORMAP
    if key in SPECIES_COLORMAPS:
        return SPECIES_COLORMAPS[key]
    return ION_COLORMAPS[zlib.crc32(key.encode()) % len(ION_COLORMAPS)]


KIND_RAW = "raw"
NAME_SEPARATOR = " · "
# The word a kind of layer shows in its name: short, so that napari's layer list, which
# cuts long names in the middle, keeps it.
NAME_WORDS = {"aligned sum": "sum", "ratio sigma": "sigma", "ratio display": "RGB"}


def layer_name(label: str, stem: str, kind: str = KIND_RAW) -> str:
    """``"12C 14N · cells_01"``, or ``"cleaned 12C 14N · cells_01"`` for derived layers.

    napari's layer list elides long names in the middle and keeps both ends: the kind
    word ("cleaned", "aligned", "sum", "ratio", "sigma") comes first and the file last, so
    both stay readable; the folder and the full path are in ``metadata['nanosims']``.
    """
    word = NAME_WORDS.get(kind, kind)
    head = label if kind == KIND_RAW else f"{word} {label}"
    return f"{head}{NAME_SEPARATOR}{stem}"


def contrast_limits(stack, max_samples: int = 200_000) -> tuple[float, float]:
    """Contrast limits from the 0.5 and 99.8 percentiles of a subsample of ``stack``.

    Reads at most a few frames and ``max_samples`` values, so it stays fast on
    memory-mapped files. NaN values are ignored.
    """
    n_frames = stack.shape[0]
    frames = np.unique(np.linspace(0, n_frames - 1, min(n_frames, 4)).astype(int))
    sample = np.concatenate([np.asarray(stack[f]).ravel() for f in frames]) if n_frames else \
        np.zeros(0)
    if sample.size > max_samples:
        sample = sample[:: sample.size // max_samples + 1]
    sample = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample
    if sample.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(sample, [0.5, 99.8]).astype(float)
    if high <= low:
        high = low + 1.0
    return float(low), float(high)


def nanosims_metadata(acquisition: Acquisition, index: int, kind: str = KIND_RAW
                      ) -> dict[str, Any]:
    """The ``layer.metadata['nanosims']`` entry for channel ``index`` of an acquisition.

    ``acquisition_id`` ties every layer of one opened file together (derived layers keep
    it); the plugin finds related layers by it, never by name.
    """
    channel = acquisition.channels[index]
    path = acquisition.path or acquisition.header.path
    return {
        "acquisition_id": acquisition.acquisition_id,
        "header": acquisition.header.to_dict(),
        "detector_index": int(index),
        "label": channel.label,
        "mass_amu": float(channel.mass_amu),
        "detector": channel.detector,
        "source_path": path,
        "folder": os.path.dirname(os.path.abspath(path)) if path else "",
        "file_tag": acquisition.stem,
        "kind": kind,
        "history": acquisition.history_dicts(),
    }


def channel_layer_kwargs(acquisition: Acquisition, index: int, stack, *,
                         kind: str = KIND_RAW) -> dict[str, Any]:
    """``viewer.add_image`` keyword arguments for one channel's (frame, y, x) stack."""
    header = acquisition.header
    pixel = header.pixel_size_um if np.isfinite(header.pixel_size_um) else 1.0
    is_se = index == acquisition.se_index
    label = acquisition.channels[index].label
    kwargs = {
        "name": layer_name(label, acquisition.stem, kind),
        "scale": (1.0, pixel, pixel),
        "axis_labels": ("frame", "y", "x"),
        "colormap": SE_COLORMAP if is_se else mass_colormap(label),
        "blending": "additive",
        "contrast_limits": contrast_limits(stack),
        "metadata": {"nanosims": nanosims_metadata(acquisition, index, kind)},
    }
    if np.isfinite(header.pixel_size_um):
        kwargs["units"] = ("", "µm", "µm")
    return kwargs


def shown_channel(acquisition: Acquisition) -> int:
    """The channel shown when a file opens: 12C 14N when present, else the first ion one.

    The others open hidden: seven additive layers on top of each other hide everything.
    """
    for channel in acquisition.channels:
        if "".join(channel.label.split()) == "12C14N":
            return channel.index
    return next((c.index for c in acquisition.ion_channels), 0)


def file_layer_data(acquisition: Acquisition) -> list[tuple]:
    """One image layer data tuple per channel of an opened acquisition (lazy stacks)."""
    layers = []
    shown = shown_channel(acquisition)
    for index in range(len(acquisition.channels)):
        stack = acquisition.channel_counts(index)
        kwargs = channel_layer_kwargs(acquisition, index, stack)
        kwargs["visible"] = index == shown
        layers.append((stack, kwargs, "image"))
    return layers


def derived_layer_data(source_info: dict, source_kwargs: dict, data, kind: str,
                       history: list, *, two_d: bool = False) -> tuple:
    """A layer data tuple for a result derived from a channel layer (computed off the GUI).

    ``source_info`` is the source layer's ``metadata['nanosims']``, ``source_kwargs`` its
    scale, units, axis labels, colormap, blending and visibility. The result keeps the
    acquisition id, gets ``kind`` and ``history``, and is visible where its source was.
    """
    info = dict(source_info, kind=kind, history=list(history))
    kwargs = {key: value for key, value in source_kwargs.items()
              if key in ("scale", "units", "axis_labels", "colormap", "blending", "visible")}
    if two_d:
        for key in ("scale", "units", "axis_labels"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])[-2:]
    stem = info.get("file_tag") or os.path.splitext(os.path.basename(info["source_path"]))[0]
    kwargs["name"] = layer_name(info["label"], stem, kind)
    kwargs["metadata"] = {"nanosims": info}
    kwargs["contrast_limits"] = contrast_limits(data[None] if two_d else data)
    return data, kwargs, "image"


# Header fields grouped by the file block they come from, for the header panel.
HEADER_GROUPS = (
    ("File", ("path", "file_type_name", "file_type", "release", "byte_order", "header_size",
              "roll_applied", "written_by_napari_nanosims")),
    ("Def_analysis (analysis)", ("analysis_name", "analysis_date", "user",
                                 "stage_position_um", "has_data")),
    ("Mask_im (acquisition)", ("n_frames_header", "analysis_duration_s")),
    ("Tab_mass (masses)", ("n_masses", "labels", "masses_amu", "trolley_slots", "detectors",
                           "se_index")),
    ("Mask_nano and B field (scan)", ("mask_nano_version", "dwell_time_us", "frame_time_s")),
    ("Anal_param_nano (beam, detectors)", ("comment", "primary_ion", "primary_current_raw",
                                           "raster_um", "dead_times_ns", "em_yields_percent",
                                           "em_backgrounds_cps", "anal_param_nano_release")),
    ("Def_analysis_bis (sample)", ("sample_name", "experiment", "method")),
    ("Header_image (image)", ("width", "height", "bytes_per_pixel", "n_frames",
                              "pixel_size_um")),
)
_UNIT_SUFFIXES = (("_um", "µm"), ("_us", "µs"), ("_ns", "ns"), ("_pA", "pA"),
                  ("_amu", "amu"), ("_percent", "%"), ("_s", "s"))
_PIXEL_FIELDS = {"width": "px", "height": "px", "header_size": "bytes",
                 "bytes_per_pixel": "bytes"}


def field_unit(name: str) -> str:
    """The unit of a header field, from its name (``raster_um`` -> ``µm``)."""
    if name in _PIXEL_FIELDS:
        return _PIXEL_FIELDS[name]
    for suffix, unit in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return ""


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_value(v) for v in value)
    if value is None:
        return "-"
    return str(value)


def header_rows(header: dict[str, Any]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Group a header dict (``ImHeader.to_dict()``) into (group, [(field, value, unit)]).

    Every field appears exactly once; fields not in a known group go to "Other".
    The masses group also gets one row per detector (label, mass, slot).
    """
    groups = []
    seen: set[str] = set()
    for title, names in HEADER_GROUPS:
        rows = [(name, _format_value(header[name]), field_unit(name))
                for name in names if name in header]
        seen.update(names)
        if title.startswith("Tab_mass") and "labels" in header:
            for index, label in enumerate(header["labels"]):
                amu = header.get("masses_amu", [None] * (index + 1))[index]
                slot = header.get("trolley_slots", [None] * (index + 1))[index]
                detector = (header.get("detectors") or [None] * (index + 1))[index]
                rows.append((f"mass {index}: {label}",
                             f"{amu:.4f}" if isinstance(amu, float) else "-",
                             f"amu, {detector or 'unknown detector'} (slot {slot})"))
        groups.append((title, rows))
    rest = [(name, _format_value(value), field_unit(name))
            for name, value in header.items() if name not in seen]
    if rest:
        groups.append(("Other", rest))
    return groups


_RESULT_KINDS: dict[str | None, str] = {"sums": "sum", "variance": "variance", "stack": "stack"}


def result_layer_data(content: dict, path: str) -> list[tuple]:
    """Image layer tuples for an OME-TIFF (or .nrrd) that napari-nanosims wrote.

    ``content`` is what :func:`~napari_nanosims.export.ometiff.read_ome_tiff` returns. One
    layer per channel, named ``"<channel> · <kind> · <file>"``, with the pixel size in µm,
    the colormap and contrast of the channel, and the header and history in
    ``metadata['nanosims']`` (a new ``acquisition_id``: the widgets treat these as
    results, not as a file to process).
    """
    import uuid

    description = content.get("description") or {}
    data, axes = content["data"], content["axes"]
    names = list(content["channel_names"])
    channels = description.get("channels") or [{"label": n, "kind": "ion"} for n in names]
    kind = _RESULT_KINDS.get(description.get("kind"), "result")
    if kind == "stack" and any(h.get("step") == "align_frames"
                               for h in description.get("history", [])):
        kind = "aligned"
    stem = os.path.splitext(os.path.basename(description.get("source") or path))[0]
    pixel = float(content.get("pixel_size_um") or float("nan"))
    acquisition_id = uuid.uuid4().hex
    se_names = {c["label"] for c in channels if c.get("kind") == "SE"}
    shown = next((n for n in names if "".join(n.split()) == "12C14N"),
                 next((n for n in names if n not in se_names and n != "coverage"), names[0]))
    layers = []
    for index, name in enumerate(names):
        stack = data[:, index] if axes.startswith("T") else data[index]
        base = name[4:-1] if name.startswith("var(") else name
        is_grey = base in se_names or name == "coverage"
        colormap = SE_COLORMAP if is_grey else mass_colormap(base)
        two_d = stack.ndim == 2
        kwargs = {
            "name": layer_name(name, stem, kind),
            "scale": ((1.0,) if not two_d else ()) + ((pixel, pixel) if np.isfinite(pixel)
                                                       else (1.0, 1.0)),
            "axis_labels": ("y", "x") if two_d else ("frame", "y", "x"),
            "colormap": colormap,
            "blending": "additive",
            "visible": name == shown,
            "contrast_limits": contrast_limits(stack[None] if two_d else stack),
            "metadata": {"nanosims": {
                "acquisition_id": acquisition_id,
                "header": description.get("header", {}),
                "history": description.get("history", []),
                "label": name,
                "kind": kind,
                "source_path": str(path),
                "folder": os.path.dirname(os.path.abspath(path)),
                "file_tag": stem,
                "detector_index": index,
                "mass_amu": next((c.get("mass_amu") for c in channels
                                  if c["label"] == base), None),
                "detector": next((c.get("detector") for c in channels
                                  if c["label"] == base), None),
            }},
        }
        if np.isfinite(pixel):
            kwargs["units"] = ("µm", "µm") if two_d else ("", "µm", "µm")
        layers.append((stack, kwargs, "image"))
    return layers
