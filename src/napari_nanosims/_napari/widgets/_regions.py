"""Turn a napari Shapes or Labels layer into a region mask in an image's pixels."""

from __future__ import annotations

import numpy as np


def region_layers(viewer) -> list:
    """The Shapes and Labels layers of the viewer (candidates for an alignment region)."""
    import napari.layers

    return [layer for layer in viewer.layers
            if isinstance(layer, (napari.layers.Shapes, napari.layers.Labels))]


def region_mask(layer, image_layer, frame_shape) -> np.ndarray:
    """Boolean (H, W) mask of ``layer`` in the pixels of ``image_layer``'s frames.

    Shapes are filled polygons (rectangles, ellipses, polygons) mapped through both
    layers' scale and translation; a Labels layer counts where it is non-zero (over all
    its frames when it has a frame axis) and must have the frame's shape. Raises
    ValueError when nothing of the frame is inside.
    """
    import napari.layers
    from skimage.draw import polygon2mask

    height, width = frame_shape
    if isinstance(layer, napari.layers.Labels):
        data = np.asarray(layer.data)
        if data.shape[-2:] != (height, width):
            raise ValueError(f"labels layer {layer.name!r} has shape {data.shape}; the frames "
                             f"are {height} x {width} px")
        mask = data != 0
        mask = mask.reshape((-1, height, width)).any(axis=0)
    else:
        image_scale = np.asarray(image_layer.scale[-2:], float)
        image_translate = np.asarray(image_layer.translate[-2:], float)
        scale = np.asarray(layer.scale[-2:], float)
        translate = np.asarray(layer.translate[-2:], float)
        mask = np.zeros((height, width), bool)
        yy, xx = np.indices((height, width))
        for vertices, kind in zip(layer.data, layer.shape_type, strict=True):
            world = np.asarray(vertices, float)[:, -2:] * scale + translate
            pixels = (world - image_translate) / image_scale
            if kind == "ellipse":  # given by the four corners of its bounding box
                centre = pixels.mean(axis=0)
                radius = np.maximum(np.abs(pixels - centre).max(axis=0), 1e-9)
                mask |= (((yy - centre[0]) / radius[0]) ** 2
                         + ((xx - centre[1]) / radius[1]) ** 2) <= 1
            elif kind in ("rectangle", "polygon"):
                mask |= polygon2mask((height, width), pixels)
    if mask.sum() < 16:
        raise ValueError(f"layer {layer.name!r} covers {int(mask.sum())} px of the frame; "
                         "draw a region of at least 4 x 4 px on the image")
    return mask
