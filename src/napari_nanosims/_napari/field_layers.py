"""The displacement field of a piecewise alignment as a Vectors layer, and its note (no Qt).

After ``align_frames`` with ``method='piecewise'`` the Align tab shows the field over
the aligned stacks: one arrow per patch centre per frame that kept a field, drawn
:func:`~napari_nanosims.processing.alignment.warp.arrow_scale` times longer than the
displacement (napari's ``length``, so the layer's data stay the field itself, pixels).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..model import Acquisition
from ..processing.alignment.piecewise import patch_side_px
from ..processing.alignment.warp import arrow_scale, displacement_vectors
from .layers import NAME_SEPARATOR
from .lookups import KIND_FIELD, NOT_A_CHANNEL

__all__ = ["field_layer_data", "field_note", "has_field", "FIELD_COLORMAP"]

#: Colour of the arrows by their length (pixels): bright at both ends, over any image.
FIELD_COLORMAP = "cool"


def has_field(registration) -> bool:
    """Whether a registration carries a displacement field that is not 0 everywhere."""
    field = getattr(registration, "displacement_px", None)
    return field is not None and bool(np.any(np.asarray(field)))


def field_layer_data(source: tuple[dict, dict[str, Any]], result: Acquisition
                     ) -> tuple | None:
    """A ``(data, kwargs, 'vectors')`` layer data tuple of ``result``'s field, or None.

    Parameters
    ----------
    source : (dict, dict)
        ``metadata['nanosims']`` and :func:`~.lookups.layer_state` of one of the file's
        stacks: the arrows take its scale (µm per pixel), units and axis labels, so that
        they lie over the image, frame first (they follow the frame slider).
    result : Acquisition
        The aligned acquisition (``result.registration`` from ``method='piecewise'``).

    Returns
    -------
    tuple or None
        None when the registration has no field or it is 0 everywhere (rigid kept).
        Otherwise the arrows, (n, 2, 3) (frame, row, column) in pixels: starts at the
        patch centres, directions the displacement beyond each frame's translation;
        ``length`` (and ``metadata['nanosims']['arrow_scale']``) the factor they are
        drawn longer by; coloured by ``magnitude_px``.
    """
    registration = result.registration
    if not has_field(registration):
        return None
    factor = arrow_scale(registration)
    vectors = displacement_vectors(registration)
    magnitude = np.hypot(vectors[:, 1, 1], vectors[:, 1, 2])
    rows, cols = (np.asarray(g, dtype=np.float64) for g in registration.displacement_grid_px)
    steps = [float(g[1] - g[0]) for g in (rows, cols) if g.size > 1]
    info, state = source
    info = dict(info, kind=KIND_FIELD, detector_index=NOT_A_CHANNEL[KIND_FIELD],
                label=KIND_FIELD, history=result.history_dicts(), arrow_scale=factor)
    stem = info.get("file_tag") or os.path.splitext(os.path.basename(info["source_path"]))[0]
    kwargs: dict[str, Any] = {key: tuple(state[key]) for key in ("scale", "units",
                                                                 "axis_labels") if key in state}
    kwargs.update(
        name=f"{KIND_FIELD}{NAME_SEPARATOR}{stem}", metadata={"nanosims": info},
        features={"magnitude_px": magnitude}, edge_color="magnitude_px",
        edge_colormap=FIELD_COLORMAP,
        edge_contrast_limits=(0.0, max(float(magnitude.max(initial=0.0)), 1e-6)),
        # a line width of a sixteenth of the patch spacing (pixels): thin beside the
        # arrows, never a hairline
        edge_width=float(np.clip(min(steps, default=16.0) / 16.0, 0.5, 4.0)),
        length=factor, vector_style="arrow", visible=True)
    return vectors, kwargs, "vectors"


def field_note(registration) -> str:
    """What the Align tab says about a registration's field ('' for rigid methods)."""
    field = getattr(registration, "displacement_px", None)
    if field is None:
        return ""
    if not has_field(registration):
        return "displacement field not significant on any frame (rigid kept)"
    field = np.asarray(field, dtype=np.float64)
    kept = int(np.count_nonzero(np.any(field != 0, axis=(1, 2, 3))))
    longest = float(np.max(np.hypot(field[:, 0], field[:, 1])))
    side = patch_side_px(registration)
    return (f"displacement field on {kept} of {len(field)} frames ({side} px patches), up "
            f"to {longest:.2g} px (arrows x{arrow_scale(registration):g})")
