"""The Correlate tab driven as a user would (issue 22, napari part): a NanoSIMS file made
with make_im and an "EM" image made from the same scene through a known similarity
transform, at another pixel size and with another contrast (inverted, blurred, Gaussian
noise), opened as a plain image layer (scale 1, no units). Landmark pairs are added on
the tab's Points layers as clicks would add them; Apply, Refine (the worker), Save/Load
and "ROIs from this layer" are checked against the known transform.

Runs under Xvfb (pytest --xvfb-backend=xvfb)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import ndimage

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")

FIXED_SHAPE, RASTER_UM = (256, 256), 20.0
FIXED_UM = RASTER_UM / FIXED_SHAPE[1]  # 0.078125 µm
EM_SHAPE, EM_UM = (420, 440), 0.03


def _matrix(angle_deg, scale, shift):
    """EM (y, x) µm -> NanoSIMS (y, x) µm, written out."""
    a = math.radians(angle_deg)
    matrix = np.eye(3)
    matrix[:2, :2] = scale * np.array([[math.cos(a), -math.sin(a)],
                                       [math.sin(a), math.cos(a)]])
    matrix[:2, 2] = shift
    return matrix


TRUTH = _matrix(17.0, 1.1, (3.0, 2.0))


def _apply(matrix, points):
    return (np.c_[points, np.ones(len(points))] @ matrix.T)[:, :2]


def _grid_um(shape, pixel):
    rows, columns = np.indices(shape) * pixel
    return np.c_[rows.ravel(), columns.ravel()]


def _cells(seed=3, n=25, field=RASTER_UM):
    rng = np.random.default_rng(seed)
    centres, radii = [], []
    while len(centres) < n:
        centre, radius = rng.uniform(2, field - 2, 2), rng.uniform(0.7, 1.1)
        if all(np.hypot(*(centre - c)) > radius + r + 0.3
               for c, r in zip(centres, radii, strict=True)):
            centres.append(centre)
            radii.append(radius)
    return np.array(centres), np.array(radii)


def _render(points_um, cells):
    """Brightness (flat-topped blobs) and cell numbers (1..n) at (y, x) µm points."""
    centres, radii = cells
    d2 = ((points_um[:, None, :] - centres[None]) ** 2).sum(-1) / radii ** 2
    inside = d2 < 1
    return np.exp(-d2 ** 2).sum(1), np.where(inside.any(1), inside.argmax(1) + 1, 0)


@pytest.fixture(scope="module")
def scene():
    """(NanoSIMS counts, NanoSIMS cell labels, EM image, EM cell labels)."""
    rng = np.random.default_rng(7)
    cells = _cells()
    brightness, labels = _render(_grid_um(FIXED_SHAPE, FIXED_UM), cells)
    brightness = brightness.reshape(FIXED_SHAPE)
    # two frames of 12C 14N, 12C 15N (cells bright) and SE (on a flat background)
    counts = np.stack([rng.poisson(np.stack([10 * brightness + 0.5, 0.1 * brightness + 0.01,
                                             20 * brightness + 2]))
                       for _ in range(2)]).astype(np.uint16)
    em_brightness, em_labels = _render(_apply(TRUTH, _grid_um(EM_SHAPE, EM_UM)), cells)
    em = ndimage.gaussian_filter(1 - em_brightness.reshape(EM_SHAPE), 3) + \
        rng.normal(0, 0.05, EM_SHAPE)
    return counts, labels.reshape(FIXED_SHAPE), em, em_labels.reshape(EM_SHAPE)


@pytest.fixture
def opened(make_napari_viewer, im_factory, scene):
    from napari_nanosims._napari.widgets import NanoSIMSPanel

    counts, _, em, _ = scene
    path = im_factory("field.im", counts=counts, labels=["12C 14N", "12C 15N", "SE"],
                      raster_um=RASTER_UM)
    viewer = make_napari_viewer()
    viewer.open(path, plugin="napari-nanosims")
    image = viewer.add_image(em, name="EM")  # as any reader opens it: pixels, scale 1
    panel = NanoSIMSPanel(viewer)
    return viewer, panel, panel.correlate, image


def _landmarks(n, noise_px, seed):
    """n pairs (NanoSIMS µm, EM µm): EM points inside the EM field, the NanoSIMS ones
    clicked with Gaussian noise of noise_px NanoSIMS pixels per axis."""
    rng = np.random.default_rng(seed)
    moving = rng.uniform([1.0, 1.0], np.array(EM_SHAPE) * EM_UM - 1.0, (n, 2))
    fixed = _apply(TRUTH, moving) + rng.normal(0, noise_px * FIXED_UM, (n, 2))
    return fixed, moving


def _click_pairs(tab, fixed, moving):
    """Each pair as a user clicks it: on NanoSIMS, then on the EM image (napari's add
    mode calls Points.add with the clicked data coordinates)."""
    from napari_nanosims._napari.widgets._landmarks import FIXED, MOVING

    for a, b in zip(fixed, moving, strict=True):
        tab.landmarks.layer(FIXED).add(a[None])
        tab.landmarks.layer(MOVING).add(b[None])


def _true_error_px(image):
    """RMS distance (NanoSIMS pixels) between where the layer draws EM pixels and where
    they truly are, over the EM field (napari's own data -> world transform)."""
    pixels = _grid_um(EM_SHAPE, 1.0)[::97]
    drawn = np.array([image.data_to_world(p) for p in pixels])
    truth = _apply(TRUTH, pixels * EM_UM)
    return float(np.sqrt(((drawn - truth) ** 2).sum(1).mean())) / FIXED_UM


def _grid(viewer):
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def _ready(tab, image):
    tab.image.reset_choices()
    tab.image.value = image
    assert tab.pixel_size.value == 0  # scale 1 in pixels: "not set" until given
    assert tab.pixel_size.native.text() == "not set"
    assert not tab.pick_landmarks() and "pixel size" in tab.summary.value
    tab.pixel_size.value = EM_UM
    assert tab.reference.value is not None
    assert tab.pick_landmarks()


def test_landmarks_apply_and_overlay(opened, qtbot):
    viewer, panel, tab, image = opened
    from napari_nanosims._napari.widgets._landmarks import FIXED, MOVING

    assert [panel.tabs.tabText(i) for i in range(panel.tabs.count())][-3:] == \
        ["ROIs", "Correlate", "File"]
    _ready(tab, image)
    se = [layer for layer in viewer.layers if layer.metadata.get("nanosims", {})
          .get("label") == "SE"][0]
    assert tab.reference.value == se.metadata["nanosims"]["detector_index"]  # SE first
    # picking: the EM image is beside the NanoSIMS field, in µm
    assert tuple(image.scale) == pytest.approx((EM_UM, EM_UM))
    assert image.translate[1] > RASTER_UM and not _grid(viewer).enabled
    fixed_layer, moving_layer = tab.landmarks.layer(FIXED), tab.landmarks.layer(MOVING)
    assert fixed_layer.name == "landmarks on NanoSIMS"
    assert moving_layer.name == "landmarks on EM"
    fixed, moving = _landmarks(10, 0.5, seed=1)
    _click_pairs(tab, fixed[:1], moving[:1])
    assert "similarity needs 2 pairs" in tab.pairs_note.value
    _click_pairs(tab, fixed[1:], moving[1:])
    assert list(moving_layer.features["pair"]) == list(range(1, 11))
    assert list(moving_layer.text.values) == [str(n) for n in range(1, 11)]
    assert tab.apply() is not None
    assert not _grid(viewer).enabled
    assert viewer.layers.extent.units is not None  # every layer in µm: consistent units
    # the layer's affine is the registration: EM µm -> NanoSIMS µm (no translation)
    matrix = np.asarray(image.affine.affine_matrix)
    np.testing.assert_allclose(matrix, tab.registration.matrix, atol=1e-12)
    assert tuple(image.scale) == pytest.approx((EM_UM, EM_UM))
    assert tuple(image.translate) == (0, 0) and image.data.shape == EM_SHAPE
    # the overlay is where the truth puts it: least squares of 4 parameters from 10
    # pairs with 0.5 px noise err by about 0.5 * sqrt(2 * 4 / 10) = 0.45 px
    error = _true_error_px(image)
    assert 0.05 < error < 1.0
    centre = np.array(EM_SHAPE) / 2
    back = image.world_to_data(_apply(TRUTH, (centre * EM_UM)[None])[0])
    assert np.hypot(*(np.asarray(back) - centre)) * EM_UM < 1.5 * FIXED_UM
    # each pair's residual, shown in µm with 3 digits, is the distance the applied
    # matrix leaves between the pair's points
    shown = dict(re.findall(r"(\d+): ([\d.e-]+) µm", tab.pairs_note.value))
    residuals = np.hypot(*(_apply(matrix, moving) - fixed).T)
    assert [float(shown[str(n)]) for n in range(1, 11)] == pytest.approx(residuals, rel=6e-3)
    rms = float(np.sqrt(np.mean(residuals ** 2)))
    assert f"rms {rms:.3g} µm" in tab.summary.value
    assert "leave-one-out" in tab.summary.value and "leave-one-out" in tab.pairs_note.value
    assert f"{tab.registration.loo_um:.3g}" in tab.summary.value


def test_pairs_are_numbered_completed_moved_and_deleted(opened, qtbot):
    viewer, panel, tab, image = opened
    from napari_nanosims._napari.widgets._landmarks import FIXED, MOVING

    _ready(tab, image)
    fixed, moving = _landmarks(4, 0.0, seed=2)
    _click_pairs(tab, fixed[:3], moving[:3])
    tab.landmarks.layer(FIXED).add(fixed[3][None])  # the 4th only on NanoSIMS so far
    assert "4: on NanoSIMS only" in tab.pairs_note.value
    # the guided mode then asks for the same pair on the EM image
    qtbot.waitUntil(lambda: viewer.layers.selection.active is tab.landmarks.layer(MOVING))
    assert tab.landmarks.layer(MOVING).mode == "add"
    assert "Pair 4" in tab.summary.value and "EM" in tab.summary.value
    tab.landmarks.layer(MOVING).add(moving[3][None])
    assert "on NanoSIMS only" not in tab.pairs_note.value
    assert re.search(r"4: [\d.e-]+ µm", tab.pairs_note.value)
    # a point moved with napari's select mode (its data changed): residuals follow
    layer = tab.landmarks.layer(FIXED)
    data = np.asarray(layer.data).copy()
    data[1] += 5 * FIXED_UM
    layer.data = data
    assert re.search(r"2: 0\.[1-9]", tab.pairs_note.value)  # now far off
    # delete the pair of a point selected in the layer being edited, on both layers
    viewer.layers.selection.active = layer
    layer.selected_data = {1}
    assert tab.delete_pair() == [2]
    for side in (FIXED, MOVING):
        assert sorted(tab.landmarks.layer(side).features["pair"]) == [1, 3, 4]
    assert "2:" not in tab.pairs_note.value
    # one point deleted by napari (the Delete key): its pair is incomplete, and the next
    # click on that side completes it
    moving_layer = tab.landmarks.layer(MOVING)
    moving_layer.selected_data = {0}
    moving_layer.remove_selected()
    assert "1: on NanoSIMS only" in tab.pairs_note.value
    moving_layer.add(moving[0][None])
    assert "on NanoSIMS only" not in tab.pairs_note.value
    assert sorted(moving_layer.features["pair"]) == [1, 3, 4]
    # the model's minimum is shown
    tab.model.value = "projective"
    assert "projective needs 4 pairs" in tab.pairs_note.value


def test_refinement_in_the_worker_improves_a_two_pixel_error(opened, qtbot):
    pytest.importorskip("SimpleITK")
    viewer, panel, tab, image = opened
    _ready(tab, image)
    fixed, moving = _landmarks(6, 2.0, seed=11)
    _click_pairs(tab, fixed, moving)
    tab.apply()
    before = _true_error_px(image)
    assert before > 1.0
    assert tab.run_button.text == "Refine"
    worker = tab.run()
    assert worker is not None and tab.cancel_button.enabled
    qtbot.waitUntil(lambda: tab._runner.worker is None, timeout=120_000)
    after = _true_error_px(image)
    assert after < 0.5 < before
    report = tab.registration.refinement
    assert report["kept"] and report["metric_after"] < report["metric_before"]
    assert "improved, kept" in tab.summary.value
    np.testing.assert_allclose(image.affine.affine_matrix, tab.registration.matrix)


def _settled(widget):
    return widget._runner.worker is None and not widget._debounce.isActive()


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_rois_from_a_labels_layer_are_measured_with_their_classes(opened, qtbot, scene):
    viewer, panel, tab, image = opened
    _, fixed_labels, _, em_labels = scene
    _ready(tab, image)
    fixed, moving = _landmarks(10, 0.5, seed=3)
    _click_pairs(tab, fixed, moving)
    tab.apply()
    cells = np.unique(em_labels[em_labels > 0])
    names = {int(c): ("probe A" if c % 2 else "probe B") for c in cells}
    segmented = viewer.add_labels(em_labels.astype(np.int32), name="FISH cells",
                                  features={"index": cells,
                                            "class": [names[int(c)] for c in cells]})
    tab.labels_layer.reset_choices()
    tab.labels_layer.value = segmented
    layer = tab.rois_from_layer()
    assert layer is not None and layer.metadata["nanosims_rois"] == tab.file.value
    assert tuple(layer.scale) == pytest.approx((FIXED_UM, FIXED_UM))
    assert [str(u) for u in layer.units] == ["micrometer", "micrometer"]
    labels = np.asarray(layer.data)
    assert labels.shape == FIXED_SHAPE
    # every cell wholly inside the EM field keeps IoU > 0.9 with the truth
    inside = tab.registration.inverse(_grid_um(FIXED_SHAPE, FIXED_UM)) / EM_UM
    covered = np.all((inside > 1) & (inside < np.array(EM_SHAPE) - 2),
                     axis=1).reshape(FIXED_SHAPE)
    ious = [_iou(labels == cell, fixed_labels == cell) for cell in cells
            if covered[fixed_labels == cell].all()]
    assert len(ious) >= 5 and min(ious) > 0.9
    classes = {int(k): v for k, v in layer.metadata["nanosims_roi_classes"].items()}
    assert classes == {roi: names[roi] for roi in np.unique(labels[labels > 0])}
    # the ROIs tab took the layer and measured it at once
    rois = panel.rois
    assert rois.roi_layer.value is layer
    qtbot.waitUntil(lambda: rois.statistics is not None and _settled(rois)
                    and rois.statistics.roi.nunique() == len(classes), timeout=30_000)
    measured = rois.statistics.drop_duplicates("roi").set_index("roi").n_pixels
    assert all(measured[roi] == (labels == roi).sum() for roi in classes)
    if hasattr(rois, "classes"):  # the ROIs tab's class panel (issue 21)
        qtbot.waitUntil(lambda: rois.classes.assigned == classes, timeout=10_000)
    # a class image instead: each region one ROI, its value the class
    class_image = np.where(em_labels > 0, 1 + (em_labels % 2 == 0), 0).astype(np.uint8)
    painted = viewer.add_labels(class_image, name="probes")
    tab.labels_layer.reset_choices()
    tab.labels_layer.value = painted
    tab.values_are_classes.value = True
    by_class = tab.rois_from_layer()
    got = {int(k): v for k, v in by_class.metadata["nanosims_roi_classes"].items()}
    regions = np.asarray(by_class.data)
    for roi, value in got.items():
        cell = np.bincount(fixed_labels[regions == roi]).argmax()
        assert value == ("1" if cell % 2 else "2")
    assert panel.rois.roi_layer.value is by_class
    qtbot.waitUntil(lambda: _settled(rois) and rois.statistics.roi.nunique() == len(got),
                    timeout=30_000)


def test_save_and_load_registration(opened, qtbot, tmp_path):
    viewer, panel, tab, image = opened
    _ready(tab, image)
    assert tab.save_registration(tmp_path / "none.json") is None  # nothing applied
    fixed, moving = _landmarks(5, 0.5, seed=4)
    _click_pairs(tab, fixed, moving)
    applied = tab.apply()
    path = tmp_path / "field_em.json"
    assert tab.save_registration(path) == path
    written = path.read_bytes()
    assert tab.save_registration(path) is None and "Not saved" in tab.summary.value
    assert path.read_bytes() == written  # never overwritten silently
    # back in another viewer state: the image in pixels again, no pairs
    tab.delete_pair(list(tab.pairs()))
    image.affine = np.eye(3)
    tab.registration = None
    loaded = tab.load_registration(path)
    np.testing.assert_allclose(loaded.matrix, applied.matrix)
    np.testing.assert_allclose(image.affine.affine_matrix, applied.matrix)
    assert sorted(tab.pairs()) == [1, 2, 3, 4, 5]
    # refused for an image of another size, with the reason
    other = viewer.add_image(np.zeros((50, 60)), name="other", scale=(0.1, 0.1),
                             units=("µm", "µm"))
    tab.image.reset_choices()
    tab.image.value = other
    assert tab.pixel_size.value == pytest.approx(0.1)  # its scale in µm
    assert tab.load_registration(path) is None
    assert "(420, 440)" in tab.summary.value and "(50, 60)" in tab.summary.value


def test_pixel_size_from_the_layer_scale(make_napari_viewer):
    from napari_nanosims._napari.correlate_layers import pixel_size_from_layer

    viewer = make_napari_viewer()
    in_nm = viewer.add_image(np.zeros((4, 4)), scale=(5.0, 5.0), units=("nm", "nm"))
    in_pixels = viewer.add_image(np.zeros((4, 4)), scale=(5.0, 5.0))
    assert pixel_size_from_layer(in_nm) == pytest.approx(0.005)
    assert pixel_size_from_layer(in_pixels) is None
