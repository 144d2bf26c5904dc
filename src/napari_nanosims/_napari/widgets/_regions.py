"""Turn a napari Shapes or Labels layer into ROIs or a region mask in an image's pixels.

Shapes and labels are mapped through world coordinates (µm): a Shapes layer drawn with
scale 1 in µm, or one with the image's scale in pixels, gives the same pixels.
"""

from __future__ import annotations

import numpy as np


def region_layers(viewer) -> list:
    """The Shapes and Labels layers of the viewer (candidates for an alignment region)."""
    import napari.layers

    return [layer for layer in viewer.layers
            if isinstance(layer, (napari.layers.Shapes, napari.layers.Labels))]


def _scale_translate(layer) -> tuple[np.ndarray, np.ndarray]:
    """The last two axes' scale and translation of ``layer`` (µm per data unit, µm).

    Raises ValueError when the layer is rotated, sheared or has an affine transform:
    its pixels cannot be mapped by scale and translation alone.
    """
    ndim = layer.ndim
    matrix = np.asarray(layer.affine.affine_matrix, float)
    rotate = np.asarray(getattr(layer, "rotate", np.eye(ndim)), float)
    shear = np.asarray(getattr(layer, "shear", np.zeros(0)), float)
    if (not np.allclose(matrix, np.eye(ndim + 1)) or not np.allclose(rotate, np.eye(ndim))
            or (shear.size and not np.allclose(shear, 0))):
        raise ValueError(f"layer {layer.name!r} is rotated, sheared or has an affine "
                         "transform; draw the ROIs on a layer without one")
    return (np.asarray(layer.scale[-2:], float), np.asarray(layer.translate[-2:], float))


def _to_image_pixels(layer, image_layer, points) -> np.ndarray:
    """(N, 2) data coordinates of ``layer`` -> (N, 2) pixel coordinates of the image."""
    scale, translate = _scale_translate(layer)
    image_scale, image_translate = _scale_translate(image_layer)
    world = np.asarray(points, float)[:, -2:] * scale + translate
    return (world - image_translate) / image_scale


def _shape_mask(kind: str, pixels: np.ndarray, frame_shape) -> np.ndarray | None:
    """Filled (H, W) mask of one shape in image pixels; None for lines and paths."""
    from skimage.draw import polygon2mask

    if kind == "ellipse":  # four corners of its (maybe rotated) bounding box
        centre = pixels.mean(axis=0)
        axes = np.stack([(pixels[1] - pixels[0]) / 2, (pixels[3] - pixels[0]) / 2], axis=1)
        if abs(np.linalg.det(axes)) < 1e-12:
            return np.zeros(frame_shape, bool)
        yy, xx = np.indices(frame_shape)
        offsets = np.stack([yy - centre[0], xx - centre[1]])  # (2, H, W)
        # the pixel in the ellipse's own axes: inside when the length is <= 1
        local = np.tensordot(np.linalg.inv(axes), offsets, axes=1)
        return (local ** 2).sum(axis=0) <= 1
    if kind in ("rectangle", "polygon"):
        return polygon2mask(frame_shape, pixels)
    return None


def _labels_in_image(layer, image_layer, frame_shape) -> tuple[np.ndarray, list[str]]:
    """A Labels layer's values at the image's pixel centres (nearest), projected over
    its leading (frame) axes by the maximum."""
    data = np.asarray(layer.data)
    notes = []
    if data.ndim > 2:
        notes.append(f"{layer.name!r} has {data.ndim - 2} more axis(es) (frames): its ROIs "
                     "are the maximum over them")
        data = data.reshape((-1,) + data.shape[-2:]).max(axis=0)
    scale, translate = _scale_translate(layer)
    image_scale, image_translate = _scale_translate(image_layer)
    if (data.shape == tuple(frame_shape) and np.allclose(scale, image_scale)
            and np.allclose(translate, image_translate)):
        return data.astype(np.int32), notes
    if (data.shape == tuple(frame_shape) and np.allclose(scale, 1.0)
            and np.allclose(translate, 0.0)):
        # A mask of the image's size with no scale was made in pixels (a script's
        # add_labels, another program's mask): read in µm it would be a few pixels.
        notes.append(f"{layer.name!r} has the image's size and no scale: taken as the "
                     "image's pixels")
        return data.astype(np.int32), notes
    # another grid: sample the labels at the image's pixel centres (world coordinates)
    rows, cols = (np.arange(n, dtype=float) for n in frame_shape)
    y = np.rint((rows * image_scale[0] + image_translate[0] - translate[0]) / scale[0])
    x = np.rint((cols * image_scale[1] + image_translate[1] - translate[1]) / scale[1])
    inside_y = (y >= 0) & (y < data.shape[0])
    inside_x = (x >= 0) & (x < data.shape[1])
    labels = np.zeros(frame_shape, np.int32)
    block = data[np.ix_(y[inside_y].astype(int), x[inside_x].astype(int))]
    labels[np.ix_(inside_y, inside_x)] = block
    notes.append(f"{layer.name!r} is on another grid ({data.shape[0]} x {data.shape[1]}); "
                 "sampled at the image's pixels")
    return labels, notes


def roi_labels(layer, image_layer, frame_shape) -> tuple[np.ndarray, str]:
    """ROIs of ``layer`` as an (H, W) int32 label image in ``image_layer``'s pixels.

    Parameters
    ----------
    layer : napari.layers.Labels or napari.layers.Shapes
        A Labels layer (its label values are the ROI numbers; a (frame, y, x) layer, as
        napari's New Labels button makes for a stack, counts by its maximum over the
        frames) or a Shapes layer (rectangles, ellipses and polygons, numbered 1, 2, ...
        in drawing order; a later shape wins where they overlap).
    image_layer : napari.layers.Image
        A layer of the file: its scale (µm per pixel) and translation map world
        coordinates to the image's pixels.
    frame_shape : (int, int)
        The image's (height, width), pixels.

    Returns
    -------
    (numpy.ndarray, str)
        The labels and a one-line note on what was done to get them ('' when nothing).

    Raises
    ------
    ValueError
        When the layer has no ROI on the image (shapes outside the field, an empty
        layer, only lines), or it is rotated or sheared.
    """
    import napari.layers

    frame_shape = tuple(int(n) for n in frame_shape)
    if isinstance(layer, napari.layers.Labels):
        labels, notes = _labels_in_image(layer, image_layer, frame_shape)
    elif isinstance(layer, napari.layers.Shapes):
        labels, notes = np.zeros(frame_shape, np.int32), []
        skipped = 0
        for number, (vertices, kind) in enumerate(zip(layer.data, layer.shape_type,
                                                      strict=True), start=1):
            mask = _shape_mask(kind, _to_image_pixels(layer, image_layer, vertices),
                               frame_shape)
            if mask is None:
                skipped += 1
                continue
            labels[mask] = number
        if skipped:
            notes.append(f"{skipped} line(s) or path(s) of {layer.name!r} have no area: "
                         "left out")
    else:
        raise ValueError(f"layer {layer.name!r} is a {type(layer).__name__} layer; ROIs come "
                         "from a Labels or a Shapes layer")
    if not labels.any():
        raise ValueError(f"layer {layer.name!r} has no ROI on the image ({frame_shape[0]} x "
                         f"{frame_shape[1]} px): paint with the New ROI layer, or draw "
                         "shapes over the image")
    return labels, "; ".join(notes)


def region_mask(layer, image_layer, frame_shape) -> np.ndarray:
    """Boolean (H, W) mask of ``layer`` in the pixels of ``image_layer``'s frames.

    Shapes are filled polygons (rectangles, ellipses, polygons) mapped through both
    layers' scale and translation; a Labels layer counts where it is non-zero (over all
    its frames when it has a frame axis). Raises ValueError when less than 16 px of the
    frame are inside.
    """
    try:
        labels, _ = roi_labels(layer, image_layer, frame_shape)
    except ValueError as exc:
        if "no ROI on the image" not in str(exc):
            raise
        labels = np.zeros(tuple(frame_shape), np.int32)
    mask = labels != 0
    if mask.sum() < 16:
        raise ValueError(f"layer {layer.name!r} covers {int(mask.sum())} px of the frame; "
                         "draw a region of at least 4 x 4 px on the image")
    return mask
