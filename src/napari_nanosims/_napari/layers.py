"""Turn NanoSIMS files and arrays into napari layer data tuples (no Qt, no napari)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..io.lazy import mass_stack
from ..io.reader import ImHeader

# Colormaps that read well on black, one per ion channel in turn; SE is grey.
ION_COLORMAPS = ("magma", "viridis", "inferno", "cividis", "plasma", "turbo", "twilight")
SE_COLORMAP = "gray"


def layer_name(stem: str, label: str, suffix: str = "") -> str:
    """Layer name ``"<file stem> <label>"`` with an optional ``" (suffix)"``."""
    return f"{stem} {label}" + (f" ({suffix})" if suffix else "")


def contrast_limits(stack, max_samples: int = 200_000) -> tuple[float, float]:
    """Contrast limits from the 0.5 and 99.8 percentiles of a subsample of ``stack``.

    Reads at most a few frames and ``max_samples`` values, so it stays fast on
    memory-mapped files.
    """
    n_frames = stack.shape[0]
    frames = np.unique(np.linspace(0, n_frames - 1, min(n_frames, 4)).astype(int))
    sample = np.concatenate([np.asarray(stack[f]).ravel() for f in frames])
    if sample.size > max_samples:
        sample = sample[:: sample.size // max_samples + 1]
    if sample.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(sample, [0.5, 99.8]).astype(float)
    if high <= low:
        high = low + 1.0
    return float(low), float(high)


def nanosims_metadata(header: ImHeader, index: int, history=None) -> dict[str, Any]:
    """The ``layer.metadata['nanosims']`` entry for detector ``index`` of a file."""
    return {
        "header": header.to_dict(),
        "detector_index": int(index),
        "label": header.labels[index],
        "mass_amu": float(header.masses_amu[index]),
        "source_path": header.path,
        "kind": "raw",
        "history": list(history or []),
    }


def image_layer_kwargs(header: ImHeader, index: int, stack, *, suffix: str = "",
                       history=None) -> dict[str, Any]:
    """``viewer.add_image`` keyword arguments for one detector's (frame, y, x) stack."""
    stem = os.path.splitext(os.path.basename(header.path))[0]
    pixel = header.pixel_size_um if np.isfinite(header.pixel_size_um) else 1.0
    is_se = index == header.se_index
    ion_rank = sum(1 for k in range(index) if k != header.se_index)
    return {
        "name": layer_name(stem, header.labels[index], suffix),
        "scale": (1.0, pixel, pixel),
        "units": ("", "µm", "µm") if np.isfinite(header.pixel_size_um) else None,
        "axis_labels": ("frame", "y", "x"),
        "colormap": SE_COLORMAP if is_se else ION_COLORMAPS[ion_rank % len(ION_COLORMAPS)],
        "blending": "additive",
        "contrast_limits": contrast_limits(stack),
        "metadata": {"nanosims": nanosims_metadata(header, index, history)},
    }


def shown_detector(header: ImHeader) -> int:
    """The detector shown when a file opens: 12C 14N when present, else the first ion one.

    The others open hidden: seven additive layers on top of each other hide everything.
    """
    for index, label in enumerate(header.labels):
        if "".join(label.split()) == "12C14N":
            return index
    return next((k for k in range(header.n_masses) if k != header.se_index), 0)


def file_layer_data(header: ImHeader, data) -> list[tuple]:
    """One image layer data tuple per detector of a loaded file."""
    layers = []
    shown = shown_detector(header)
    for index in range(header.n_masses):
        stack = mass_stack(data, index)
        kwargs = image_layer_kwargs(header, index, stack)
        kwargs["visible"] = index == shown
        if kwargs["units"] is None:
            del kwargs["units"]
        layers.append((stack, kwargs, "image"))
    return layers


# Header fields grouped by the file block they come from, for the header panel.
HEADER_GROUPS = (
    ("File", ("path", "file_type_name", "file_type", "release", "byte_order", "header_size",
              "roll_applied", "written_by_napari_nanosims")),
    ("Def_analysis (analysis)", ("analysis_name", "analysis_date", "user",
                                 "stage_position_um", "has_data")),
    ("Mask_im (acquisition)", ("n_frames_header", "analysis_duration_s")),
    ("Tab_mass (masses)", ("n_masses", "labels", "masses_amu", "trolley_slots", "se_index")),
    ("Mask_nano and B field (scan)", ("mask_nano_version", "dwell_time_us", "frame_time_s")),
    ("Anal_param_nano (beam, detectors)", ("comment", "primary_ion", "primary_current_pA",
                                           "raster_um", "dead_times_ns", "em_yields_percent",
                                           "anal_param_nano_release")),
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
    seen = set()
    for title, names in HEADER_GROUPS:
        rows = [(name, _format_value(header[name]), field_unit(name))
                for name in names if name in header]
        seen.update(names)
        if title.startswith("Tab_mass") and "labels" in header:
            for index, label in enumerate(header["labels"]):
                amu = header.get("masses_amu", [None] * (index + 1))[index]
                slot = header.get("trolley_slots", [None] * (index + 1))[index]
                rows.append((f"detector {index}: {label}",
                             f"{amu:.4f}" if isinstance(amu, float) else "-",
                             f"amu (slot {slot})"))
        groups.append((title, rows))
    rest = [(name, _format_value(value), field_unit(name))
            for name, value in header.items() if name not in seen]
    if rest:
        groups.append(("Other", rest))
    return groups
