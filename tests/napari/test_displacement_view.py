"""The Align tab's view of a piecewise field: a Vectors layer of arrows over the aligned
stacks (positions, directions, scale and units checked against the library's
registration of the same file), replaced on every run, undone and removed with the step,
and never added for a rigid result. Runs under Xvfb."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")

WINDOW = 96  # pixels; the .im files' raster is make_im's default 5 µm
RASTER_UM = 5.0
PIECEWISE = "piecewise (non-rigid)"
FIELD = "displacement field"


def _wait_idle(qtbot, widget, timeout=60_000):
    from napari_nanosims._napari.widgets._common import LayerAdder

    qtbot.waitUntil(lambda: widget._runner.worker is None, timeout=timeout)
    qtbot.waitUntil(lambda: not LayerAdder._active, timeout=timeout)


def _write(im_factory, name, frames, truth):
    """Two masses: 12C 14N (the frames) and a fainter 12C 15N of the same scene."""
    rng = np.random.default_rng(7)
    counts = np.stack([frames, rng.poisson(0.5 * truth)], axis=1).astype(np.uint16)
    return im_factory(name, counts=counts, labels=["12C 14N", "12C 15N"],
                      raster_um=RASTER_UM)


def _deformed(im_factory):
    from napari_nanosims.testing.deform import simulate_deformation

    sim = simulate_deformation("mineral", "bulge", 12, 6.0, window=WINDOW, amplitude_px=2.0,
                               seed=4)
    return _write(im_factory, "deformed.im", sim["frames"], sim["truth"])


def _rigid(im_factory):
    from napari_nanosims.testing.simulate import simulate_scene

    sim = simulate_scene("mineral", 8, 4.0, window=WINDOW, max_drift_px=3, seed=8)
    return _write(im_factory, "rigid.im", sim["frames"], sim["truth"])


def _open(make_napari_viewer, qtbot, path):
    from napari_nanosims._napari.viewer import open_viewer

    viewer = make_napari_viewer()
    open_viewer([str(path)], viewer=viewer)
    panel = viewer.window.dock_widgets["NanoSIMS (napari-nanosims)"]
    qtbot.waitUntil(lambda: panel.align.detector.value is not None, timeout=10_000)
    return viewer, panel


def _field_layers(viewer):
    return [layer for layer in viewer.layers
            if layer.metadata.get("nanosims", {}).get("kind") == FIELD]


def _align(qtbot, panel, method=PIECEWISE):
    panel.align.method.value = method
    assert panel.align.run() is not None
    _wait_idle(qtbot, panel.align)


@pytest.mark.slow  # four alignments, about 10 s
def test_piecewise_alignment_draws_its_field_over_the_aligned_stack(make_napari_viewer,
                                                                     qtbot, im_factory):
    from napari_nanosims import run_recipe

    path = _deformed(im_factory)
    viewer, panel = _open(make_napari_viewer, qtbot, path)
    _align(qtbot, panel)
    layers = _field_layers(viewer)
    assert len(layers) == 1, [layer.name for layer in viewer.layers]
    layer = layers[0]
    assert isinstance(layer, napari.layers.Vectors)
    assert layer.name == f"{FIELD} · deformed"

    # The same alignment through the library: the field the arrows must show.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = run_recipe(str(path), [("align_frames", panel.align.parameters())])
    registration = expected.registration
    field = np.asarray(registration.displacement_px)
    rows, cols = registration.displacement_grid_px
    kept = [k for k in range(len(field)) if np.any(field[k])]
    assert kept, "the deformed stack should keep a field on some frames"

    # Over the image: the stacks' scale, units and axes (else napari warns of
    # "Inconsistent units"), frame first so the arrows follow the frame slider.
    aligned = next(other for other in viewer.layers
                   if other.metadata.get("nanosims", {}).get("kind") == "aligned")
    pixel_um = RASTER_UM / WINDOW
    np.testing.assert_allclose(layer.scale, [1.0, pixel_um, pixel_um])
    np.testing.assert_allclose(layer.scale, aligned.scale)
    np.testing.assert_allclose(layer.translate, aligned.translate)
    assert [str(u) for u in layer.units] == [str(u) for u in aligned.units]
    assert tuple(layer.axis_labels) == ("frame", "y", "x")
    assert viewer.layers.extent.units is not None  # consistent units across layers

    # One arrow per patch centre per frame that kept a field: starts at the centres in
    # world µm, directions the field (pixels) drawn ``length`` times longer.
    starts_world = (np.asarray(layer.data[:, 0]) * np.asarray(layer.scale)
                    + np.asarray(layer.translate))
    want_starts, want_moves = [], []
    for k in kept:
        for i, row in enumerate(rows):
            for j, col in enumerate(cols):
                want_starts.append([k, row * pixel_um, col * pixel_um])
                want_moves.append([0.0, field[k, 0, i, j], field[k, 1, i, j]])
    assert layer.data.shape == (len(kept) * len(rows) * len(cols), 2, 3)
    np.testing.assert_allclose(starts_world, want_starts, atol=1e-9)
    factor = layer.metadata["nanosims"]["arrow_scale"]
    assert layer.length == factor
    np.testing.assert_allclose(layer.data[:, 1] * layer.length,
                               np.array(want_moves) * factor, atol=1e-9)
    # Visible, and not overlapping the next patch: the longest arrow is drawn between a
    # fifth of a grid step and one step long.
    step = float(rows[1] - rows[0])
    longest = float(np.max(np.hypot(field[:, 0], field[:, 1])))
    assert step / 5 <= longest * factor <= step
    np.testing.assert_allclose(layer.features["magnitude_px"],
                               np.hypot(np.array(want_moves)[:, 1],
                                        np.array(want_moves)[:, 2]), atol=1e-9)
    assert f"arrows x{factor:g}" in panel.align.summary.value
    # The patch side the counts chose: 48 px, the least (and half the 96 px frame); the
    # first grid point lies half a side in.
    assert rows[0] == (48 - 1) / 2
    assert "(48 px patches)" in panel.align.summary.value
    assert viewer.layers.selection.active is not layer  # an image stays selected

    # Align again: one field layer, the new one; Undo brings the first back.
    _align(qtbot, panel)
    again = _field_layers(viewer)
    assert len(again) == 1 and again[0] is not layer
    assert len({other.name for other in viewer.layers}) == len(viewer.layers)
    assert panel.session.undo() == "aligned"
    assert _field_layers(viewer) == [layer]
    # A rigid method drops the field: its arrows would no longer match the stack.
    _align(qtbot, panel, "sub-pixel")
    assert not _field_layers(viewer)
    assert "displacement field" not in panel.align.summary.value
    assert panel.session.undo() == "aligned"
    assert _field_layers(viewer) == [layer]
    panel.session.back_to_raw()
    assert not _field_layers(viewer)


def test_a_rigid_stack_adds_no_field_layer(make_napari_viewer, qtbot, im_factory):
    viewer, panel = _open(make_napari_viewer, qtbot, _rigid(im_factory))
    _align(qtbot, panel)
    assert any(layer.metadata.get("nanosims", {}).get("kind") == "aligned"
               for layer in viewer.layers)
    assert not _field_layers(viewer)
    assert not any(isinstance(layer, napari.layers.Vectors) for layer in viewer.layers)
    assert "not significant" in panel.align.summary.value
    assert "rigid kept" in panel.align.summary.value
