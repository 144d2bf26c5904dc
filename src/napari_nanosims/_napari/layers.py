"""Turn NanoSIMS files and arrays into napari layer data tuples (no Qt, no napari)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..reader import ImHeader

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


def file_layer_data(header: ImHeader, data) -> list[tuple]:
    """One image layer data tuple per detector of a loaded file."""
    layers = []
    for index in range(header.n_masses):
        stack = data[:, index]
        kwargs = image_layer_kwargs(header, index, stack)
        if kwargs["units"] is None:
            del kwargs["units"]
        layers.append((stack, kwargs, "image"))
    return layers
