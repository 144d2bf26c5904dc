"""Layer data and acquisition ids in a ViewerModel: no Qt, no window."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nanosims import open_acquisition

napari = pytest.importorskip("napari")


def _files(im_factory):
    """Two files both named cells.im, in folders a and b, of constant counts 1 and 2."""
    return [im_factory(f"{folder}/cells.im", np.full((3, 3, 8, 10), value, np.uint32),
                       labels=["12C", "12C 14N", "SE"], masses_amu=[12, 26, 0])
            for folder, value in (("a", 1), ("b", 2))]


def test_layers_of_two_same_named_files_stay_apart(im_factory):
    from napari.components import ViewerModel

    from napari_nanosims._napari.layers import file_layer_data
    from napari_nanosims._napari.widgets._common import acquisition_choices, acquisition_from_layers

    viewer = ViewerModel()
    acquisitions = [open_acquisition(path) for path in _files(im_factory)]
    for acquisition in acquisitions:
        for data, kwargs, _ in file_layer_data(acquisition):
            viewer.add_image(data, **kwargs)
    assert [layer.name for layer in viewer.layers][:3] == ["12C · cells", "12C 14N · cells",
                                                           "SE · cells"]
    choices = acquisition_choices(viewer)
    assert [value for _, value in choices] == [a.acquisition_id for a in acquisitions]
    assert len({name for name, _ in choices}) == 2  # the folder tells them apart
    for acquisition, value in zip(acquisitions, (1, 2), strict=True):
        rebuilt = acquisition_from_layers(viewer, acquisition.acquisition_id)
        assert rebuilt.labels == acquisition.labels
        assert [c.detector for c in rebuilt.channels] == ["EM1", "EM2", "SE"]
        assert np.all(np.asarray(rebuilt.counts) == value)
        assert rebuilt.header == acquisition.header  # the header survives the metadata
    # only the 12C 14N layer of each file is shown at first
    assert [layer.visible for layer in viewer.layers] == [False, True, False] * 2
    # deleting a channel layer makes the file unusable for processing, not wrong
    viewer.layers.remove(viewer.layers[0])
    assert acquisition_from_layers(viewer, acquisitions[0].acquisition_id) is None


def test_shapes_and_labels_layers_become_roi_images():
    from napari.components import ViewerModel

    from napari_nanosims._napari.widgets._regions import roi_labels

    viewer = ViewerModel()
    image = viewer.add_image(np.zeros((20, 20)))
    shapes = viewer.add_shapes([np.array([[2, 2], [2, 6], [6, 6], [6, 2]]),
                                np.array([[10, 10], [10, 14], [14, 14], [14, 10]])],
                               shape_type="rectangle")
    labels, _ = roi_labels(shapes, image, (20, 20))
    assert labels.dtype == np.int32 and set(np.unique(labels)) == {0, 1, 2}
    assert labels[4, 4] == 1 and labels[12, 12] == 2 and labels[0, 0] == 0
    painted = viewer.add_labels(np.zeros((20, 20), np.int32))
    with pytest.raises(ValueError, match="no ROI on the image"):
        roi_labels(painted, image, (20, 20))
    painted.data[3:5, 3:5] = 7
    assert roi_labels(painted, image, (20, 20))[0].sum() == 4 * 7
