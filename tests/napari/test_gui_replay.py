"""A session in the window is a recipe: Clean, Correct and Align (sub-pixel, frames left
out by the frame range and by the flagged check box) give sums whose history, as a
recipe, makes ``nanosims process --recipe`` write the same arrays."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from napari_nanosims import Recipe, run_recipe

pytestmark = [pytest.mark.gui, pytest.mark.slow]
napari = pytest.importorskip("napari")

LABELS = ["12C", "13C", "12C 14N", "12C 15N"]
EMPTY_FRAME = 9  # a beam interruption: the sub-pixel alignment flags it


@pytest.fixture
def drifting_file(im_factory) -> str:
    """Five cells drifting 0.41, -0.33 px per frame over 12 frames; frame 9 nearly empty."""
    rng = np.random.default_rng(5)
    n_frames, size = 12, 48
    drift = np.array([0.41, -0.33])[None] * np.arange(n_frames)[:, None]
    yy, xx = np.indices((size, size)) + 0.5
    centres = np.array([[12, 12], [12, 34], [34, 14], [33, 35], [24, 24]], float)
    frames = []
    for frame in range(n_frames):
        inside = np.zeros((size, size), bool)
        for cy, cx in centres:
            inside |= ((yy - cy - drift[frame, 0]) ** 2
                       + (xx - cx - drift[frame, 1]) ** 2 <= 25)
        rate = (1.0 + 30.0 * inside) * (0.002 if frame == EMPTY_FRAME else 1.0)
        frames.append(np.stack([rate * factor for factor in (1.0, 0.5, 2.0, 0.3)]))
    counts = rng.poisson(np.stack(frames)).astype(np.uint32)
    return im_factory("drift.im", counts, labels=LABELS)


def _run(qtbot, widget, timeout=60_000):
    from napari_nanosims._napari.widgets._common import LayerAdder

    assert widget.run() is not None
    qtbot.waitUntil(lambda: widget._runner.worker is None, timeout=timeout)
    qtbot.waitUntil(lambda: not LayerAdder._active, timeout=timeout)


def test_window_session_replays_with_nanosims_process(make_napari_viewer, qtbot, tmp_path,
                                                      drifting_file, monkeypatch):
    import tifffile

    from napari_nanosims._napari.widgets import (
        AlignFramesWidget,
        CorrectionsWidget,
        HotPixelWidget,
    )
    from napari_nanosims.cli import main

    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    viewer = make_napari_viewer()
    viewer.open(drifting_file, plugin="napari-nanosims")
    cleaner, corrector = HotPixelWidget(viewer), CorrectionsWidget(viewer)
    aligner = AlignFramesWidget(viewer)
    _run(qtbot, cleaner)
    corrector.dead_time.value = True
    _run(qtbot, corrector)
    aligner.method.value = "sub-pixel"
    aligner.leave_out_flagged.value = True
    aligner.first_frame.value, aligner.last_frame.value = 1, 10
    _run(qtbot, aligner)
    assert not errors

    sums = {label: viewer.layers[f"sum {label} · drift"] for label in LABELS}
    history = sums["12C 14N"].metadata["nanosims"]["history"]
    assert [h["step"] for h in history] == ["remove_hot_pixels", "correct_dead_time",
                                            "align_frames", "exclude_frames", "sum_frames"]
    excluded = history[3]["parameters"]["excluded"]
    assert excluded == [0, EMPTY_FRAME, 11]  # the frame range and the flagged frame
    # the stacks keep every frame; the sums hold the frames kept
    stack = viewer.layers["aligned 12C 14N · drift"].data
    kept = [f for f in range(12) if f not in excluded]
    np.testing.assert_array_equal(sums["12C 14N"].data, np.asarray(stack)[kept].sum(axis=0))

    recipe = Recipe.from_history(history)
    assert [name for name, _ in recipe.steps] == [h["step"] for h in history]
    # the library replays it to the very numbers of the window (float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        replayed = run_recipe(drifting_file, recipe)
    for index, label in enumerate(LABELS):
        np.testing.assert_array_equal(sums[label].data, replayed.sums[index])

    # and so does the command line, into its OME-TIFF (float32 after sub-pixel shifts)
    recipe_path = recipe.save(tmp_path / "session.toml")
    out = tmp_path / "out"
    assert main(["process", drifting_file, "--recipe", str(recipe_path),
                 "--out", str(out)]) == 0
    written = tifffile.imread(out / "drift_sums.ome.tif")
    for index, label in enumerate(LABELS):
        np.testing.assert_array_equal(sums[label].data.astype(written.dtype), written[index])
    record = json.loads((out / "drift_processing.json").read_text())
    assert [h["step"] for h in record["history"]] == [h["step"] for h in history]
    for ours, theirs in zip(history, record["history"], strict=True):
        assert ours["parameters"] == theirs["parameters"], ours["step"]
