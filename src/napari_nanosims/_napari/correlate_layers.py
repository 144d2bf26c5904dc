"""Qt-free helpers of the Correlate tab: the NanoSIMS reference and the external image
among the layers, landmark pairs read from two Points layers, the layer transforms of a
registration, and ROIs carried from a Labels layer on the external image onto the
NanoSIMS grid.

Coordinates follow :mod:`napari_nanosims.correlate.registration`: (y, x) µm, pixel
(row, column) of an image with pixel size ``p`` centred at ``(row * p, column * p)``.
The fixed (NanoSIMS) µm are those of the reference layer's pixels, so a layer that the
viewer shows translated (files side by side) adds its translation on top.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np

from ..correlate.registration import MIN_PAIRS, MODELS, ImageRegistration, register_images
from ..correlate.resample import resample
from ..steps.parameters import Parameter
from .lookups import (
    KIND_ALIGNED,
    KIND_CLEANED,
    KIND_CORRECTED,
    layer_file,
    nanosims_info,
    source_layers,
)

__all__ = ["SUM_OF_IONS", "PAIR", "LANDMARK_KEY", "IMAGE_KEY", "CLASSES_KEY", "PIXEL_SIZE",
           "MODEL", "reference_choices", "reference_layer", "reference_stacks", "sum_frames",
           "grid_of_layer", "external_choices", "labels_choices", "image_shape", "as_plane",
           "pixel_size_from_layer", "landmark_pairs", "next_pair_number", "complete", "fit_pairs",
           "format_um",
           "pairs_text", "displayed_matrix", "layer_affine", "grid_off", "classes_of_labels_layer",
           "rois_from_labels", "refinement_text"]

#: The reference key of the sum of the ion masses (channel indices are >= 0).
SUM_OF_IONS = -1
#: The feature of the landmark Points layers that numbers the pairs.
PAIR = "pair"
#: Metadata of the landmark layers: "fixed" or "moving", and the image's layer id.
LANDMARK_KEY, IMAGE_KEY = "nanosims_landmarks", "nanosims_landmarks_image"
#: Metadata of the ROI layers made from an external Labels layer: {roi: class}.
CLASSES_KEY = "nanosims_roi_classes"
#: The layers the reference is read from, most processed first (as the ROIs tab).
SOURCE_KINDS = (KIND_ALIGNED, KIND_CORRECTED, KIND_CLEANED)

#: The tab's own settings, defined once (no step has them: registration is interactive).
PIXEL_SIZE = Parameter("moving_pixel_um", None, float, "pixel size of the external image "
                       "(from the layer's scale when it is in µm; else enter it)",
                       unit="µm", above=0.0, maximum=1e6, required=True,
                       title="pixel size", step=0.001)
MODEL = Parameter("model", "similarity", str, "the transform fitted to the pairs: "
                  + ", ".join(f"{m} ({MIN_PAIRS[m]}+ pairs)" for m in MODELS),
                  choices=MODELS)


# -- the layers -------------------------------------------------------------------------
def reference_choices(viewer, acquisition_id) -> list[tuple[str, int]]:
    """(name, key) of the file's images a registration can use: SE, each mass and the
    sum of the ion masses (key :data:`SUM_OF_IONS`)."""
    if acquisition_id is None:
        return []
    layers = source_layers(viewer, acquisition_id, SOURCE_KINDS)
    # source_layers returns only layers with nanosims metadata
    choices = [(cast(dict, nanosims_info(layer))["label"], index)
               for index, layer in layers.items()]
    if sum(1 for layer in layers.values() if not _is_se(layer)) > 1:
        choices.append(("sum of ion masses", SUM_OF_IONS))
    return choices


def _is_se(layer) -> bool:
    info = cast(dict, nanosims_info(layer))  # a file's layer (of source_layers)
    return info.get("detector") == "SE" or info.get("label") == "SE"


def reference_layer(viewer, acquisition_id, key):
    """The layer whose pixel grid the reference is on (the first ion mass for the sum)."""
    layers = source_layers(viewer, acquisition_id, SOURCE_KINDS)
    if not layers:
        return None
    if key == SUM_OF_IONS:
        ions = [index for index, layer in layers.items() if not _is_se(layer)]
        return layers[min(ions or layers)]
    return layers.get(key)


def reference_stacks(viewer, acquisition_id, key) -> list:
    """The layer data the reference sums: one channel's, or every ion mass's."""
    layers = source_layers(viewer, acquisition_id, SOURCE_KINDS)
    chosen = ([layer for layer in layers.values() if not _is_se(layer)]
              if key == SUM_OF_IONS else [layers[key]])
    return [layer.data for layer in chosen]


def sum_frames(stacks) -> np.ndarray:
    """The reference as a 2-D float64 image: (frames, y, x) or (y, x) arrays summed over
    their frames and added (pixels no frame covered count 0). Reads lazy data one frame
    at a time: call it in a worker."""
    total = None
    for data in stacks:
        planes = [data] if np.ndim(data) == 2 else (data[i] for i in range(len(data)))
        for plane in planes:
            values = np.nan_to_num(np.asarray(plane, dtype=np.float64))
            total = values if total is None else total + values
    return cast(np.ndarray, total)  # the callers pass one stack or more: never None


def grid_of_layer(layer) -> tuple[tuple[int, int], float, np.ndarray]:
    """(height, width), pixel size (µm) and (y, x) translation (µm) of a file's layer."""
    shape = cast(tuple[int, int], tuple(int(v) for v in layer.data.shape[-2:]))
    return shape, float(layer.scale[-1]), np.asarray(layer.translate[-2:], dtype=float)


def _is_ours(layer) -> bool:
    metadata = getattr(layer, "metadata", None) or {}
    return layer_file(layer) is not None or LANDMARK_KEY in metadata


def external_choices(viewer) -> list[tuple[str, object]]:
    """Image layers not of an opened file (any reader's): 2-D, or 2-D RGB(A)."""
    return [(layer.name, layer) for layer in viewer.layers
            if layer.__class__.__name__ == "Image" and not _is_ours(layer)
            and image_shape(layer) is not None]


def labels_choices(viewer, image) -> list[tuple[str, object]]:
    """Labels layers (not the plugin's ROI layers) on ``image``'s pixels."""
    shape = image_shape(image) if image is not None else None
    return [(layer.name, layer) for layer in viewer.layers
            if layer.__class__.__name__ == "Labels" and not _is_ours(layer)
            and shape is not None and tuple(_base(layer).shape) == shape]


def _base(layer):
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def image_shape(layer) -> tuple[int, int] | None:
    """(height, width) of a 2-D (or RGB) image layer; None for other layers."""
    data = _base(layer)
    rgb = getattr(layer, "rgb", False)
    if np.ndim(data) != (3 if rgb else 2):
        return None
    return cast(tuple[int, int], tuple(int(v) for v in data.shape[:2]))  # ndim >= 2


def as_plane(data, rgb: bool) -> np.ndarray:
    """An external image's data as a 2-D float32 array (RGB: the mean of the colours)."""
    data = np.asarray(data)
    if rgb:
        data = data[..., :3].mean(axis=-1)
    return data.astype(np.float32)


_UNIT_UM = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, "angstrom": 1e-4}


def pixel_size_from_layer(layer) -> float | None:
    """The pixel size (µm) a layer's scale says when its units are lengths; else None
    (a scale in pixels says nothing about the sample)."""
    units = getattr(layer, "units", None)
    if not units:
        return None
    factor = _UNIT_UM.get(str(units[-1]))
    scale = float(layer.scale[-1])
    if factor is None or not math.isfinite(scale) or scale <= 0:
        return None
    return scale * factor


# -- landmark pairs ---------------------------------------------------------------------
def _numbered(layer) -> dict[int, np.ndarray]:
    if layer is None or len(layer.data) == 0:
        return {}
    numbers = layer.features[PAIR].to_numpy() if PAIR in layer.features else \
        np.arange(1, len(layer.data) + 1)
    points = np.asarray(layer.data, dtype=float)[:, -2:]
    return {int(n): points[i] for i, n in enumerate(numbers)}


def landmark_pairs(fixed_layer, moving_layer) -> dict[int, tuple]:
    """pair number -> (fixed (y, x) µm or None, moving (y, x) µm or None), by number."""
    fixed, moving = _numbered(fixed_layer), _numbered(moving_layer)
    return {n: (fixed.get(n), moving.get(n)) for n in sorted(set(fixed) | set(moving))}


def next_pair_number(pairs: dict, side: int) -> int:
    """The number the next point on ``side`` (0 fixed, 1 moving) gets: the first pair
    that lacks that side, else a new pair."""
    missing = [n for n, pair in pairs.items() if pair[side] is None]
    return missing[0] if missing else max(pairs, default=0) + 1


def complete(pairs: dict) -> tuple[list[int], np.ndarray]:
    """Numbers of the complete pairs and their (n, 2, 2) landmarks (fixed, moving)."""
    numbers = [n for n, (a, b) in pairs.items() if a is not None and b is not None]
    landmarks = np.array([[pairs[n][0], pairs[n][1]] for n in numbers], dtype=float)
    return numbers, landmarks.reshape(len(numbers), 2, 2)


def fit_pairs(pairs: dict, model: str, fixed_grid, moving_shape, moving_pixel_um):
    """The landmark registration of the complete pairs, or (None, why not)."""
    numbers, landmarks = complete(pairs)
    if len(numbers) < MIN_PAIRS[model]:
        return None, (f"{model} needs {MIN_PAIRS[model]} pairs at least; "
                      f"{len(numbers)} complete")
    shape, pixel_um = fixed_grid
    try:
        # The landmark fit reads only the images' sizes: no pixels are loaded here.
        registration = register_images(
            np.broadcast_to(np.float32(0), shape), np.broadcast_to(np.float32(0),
                                                                    moving_shape),
            fixed_pixel_um=pixel_um, moving_pixel_um=moving_pixel_um, landmarks=landmarks,
            model=model)
    except ValueError as exc:
        return None, str(exc)
    return registration, ""


def pairs_text(pairs: dict, model: str, registration, why: str = "") -> str:
    """Each pair's residual (µm, 3 digits), the incomplete pairs, RMS and
    leave-one-out error."""
    if not pairs:
        return f"No pairs yet; {model} needs {MIN_PAIRS[model]} at least."
    numbers, _ = complete(pairs)
    parts = []
    residuals = dict(zip(numbers, registration.residuals_um, strict=True)) \
        if registration is not None else {}
    for n, (fixed, moving) in pairs.items():
        if fixed is None:
            parts.append(f"{n}: on the image only")
        elif moving is None:
            parts.append(f"{n}: on NanoSIMS only")
        elif n in residuals:
            parts.append(f"{n}: {format_um(residuals[n])} µm")
        else:
            parts.append(f"{n}: -")
    text = "Pairs (residual): " + " · ".join(parts)
    if registration is None:
        return f"{text}. {why}."
    text += f". {model}: rms {format_um(registration.rms_um)} µm"
    loo = registration.loo_um
    text += (f", leave-one-out {format_um(loo)} µm" if math.isfinite(loo) else
             f"; exact with {MIN_PAIRS[model]}: add pairs for a check")
    if len(residuals) > MIN_PAIRS[model] + 1:
        worst = max(residuals, key=residuals.__getitem__)
        if residuals[worst] > 3 * np.median(list(residuals.values())):
            text += f". Pair {worst} lies far off: a wrong click?"
    return text + "."


def format_um(value: float) -> str:
    """3 significant digits; rounding noise of an exact fit shows as 0."""
    return f"{value:.3g}" if abs(value) >= 1e-6 else "0"


def refinement_text(registration: ImageRegistration) -> str:
    """What the intensity refinement did, from the library's report."""
    report = registration.refinement or {}
    before, after = report.get("metric_before"), report.get("metric_after")
    text = "Refined by mutual information: "
    if before is not None and after is not None:
        text += (f"metric {before:.3g} -> {after:.3g} ("
                 + ("better" if after < before else "not better") + ")")
    if report.get("landmark_rms_before_um") is not None:
        text += (f"; landmark rms {format_um(report['landmark_rms_before_um'])} -> "
                 f"{format_um(report['landmark_rms_after_um'])} µm")
    return text + ("; improved, kept." if report.get("kept") else
                   "; not improved: the landmark fit is kept.")


# -- transforms -------------------------------------------------------------------------
def displayed_matrix(registration: ImageRegistration) -> tuple[np.ndarray, str]:
    """The matrix a layer can show, and a note. napari draws affine transforms only: a
    projective registration is shown by the affine fit of its landmarks."""
    if registration.model != "projective" or registration.landmarks is None:
        return registration.matrix, ""
    pairs = registration.landmarks
    affine = register_images(np.broadcast_to(np.float32(0), registration.fixed_shape),
                             np.broadcast_to(np.float32(0), registration.moving_shape),
                             fixed_pixel_um=registration.fixed_pixel_um,
                             moving_pixel_um=registration.moving_pixel_um,
                             landmarks=pairs, model="affine")
    return affine.matrix, ("napari draws affine transforms only: the image is shown by "
                           "the affine fit; ROIs use the projective one")


def layer_affine(matrix: np.ndarray, translate) -> np.ndarray:
    """A layer's 3x3 affine: the registration (moving µm -> fixed µm), then the
    reference layer's translation (fixed µm -> world)."""
    shift = np.eye(3)
    shift[:2, 2] = np.asarray(translate, dtype=float)[-2:]
    return shift @ np.asarray(matrix, dtype=float)


def grid_off(viewer) -> None:
    """napari's grid mode off (the layers overlay); ``canvas.grid`` since napari 0.9."""
    canvas = getattr(viewer, "canvas", None)
    (canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid
     ).enabled = False


# -- ROIs -------------------------------------------------------------------------------
def classes_of_labels_layer(layer) -> dict[int, str]:
    """{label: class} from a Labels layer's features ("class" column; the "index"
    column, else the row, is the label value)."""
    features = getattr(layer, "features", None)
    if features is None or "class" not in features:
        return {}
    values = (features["index"].to_numpy() if "index" in features
              else np.arange(len(features)))
    return {int(value): str(name) for value, name in zip(values, features["class"],
                                                         strict=True)
            if int(value) > 0 and name is not None and str(name) not in ("", "nan")}


def rois_from_labels(labels, registration: ImageRegistration, grid, *,
                     values_are_classes: bool = False, classes: dict | None = None):
    """A label image on the external image -> int32 ROIs on the NanoSIMS grid and their
    classes.

    ``values_are_classes``: each connected region of one value is an ROI and the value
    its class (a class image: probe A = 1, probe B = 2); otherwise each value is an ROI
    and ``classes`` ({value: class}) names them. Labels are carried by nearest neighbour
    (:func:`resample`); ROIs that fall outside the grid are dropped.
    """
    data = np.asarray(labels)
    if data.ndim != 2 or data.dtype.kind not in "biu":
        raise ValueError(f"the labels must be a 2-D image of whole numbers; got "
                         f"{data.dtype} of shape {data.shape}")
    if values_are_classes:
        from skimage.measure import label

        regions = label(data, background=0, connectivity=1)
        found = np.zeros(int(regions.max()) + 1, dtype=np.int64)
        found[regions.ravel()] = data.ravel()
        classes = {int(region): str(int(found[region]))
                   for region in range(1, len(found))}
        data = regions
    on_grid, _ = resample(data.astype(np.int32), registration, grid, labels=True)
    kept = set(np.unique(on_grid[on_grid > 0]).tolist())
    return on_grid.astype(np.int32), {roi: name for roi, name in (classes or {}).items()
                                      if roi in kept}
