"""The File tab: the session saved as a recipe replays to identical arrays (library and
``nanosims process``), Undo restores what the last step replaced, Back to raw removes the
results, and exports land where asked without overwriting. Runs under Xvfb."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")


def _wait_idle(qtbot, widget, timeout=60_000):
    from napari_nanosims._napari.widgets._common import LayerAdder

    qtbot.waitUntil(lambda: widget._runner.worker is None, timeout=timeout)
    qtbot.waitUntil(lambda: not LayerAdder._active, timeout=timeout)


def _kind(viewer, kind):
    return {layer.metadata["nanosims"]["label"]: layer for layer in viewer.layers
            if layer.metadata.get("nanosims", {}).get("kind") == kind}


def _drifting_file(im_factory, name, seed):
    rng = np.random.default_rng(seed)
    scene = np.zeros((40, 40))
    scene[8:18, 10:22] = 30.0
    scene[25:33, 20:30] = 20.0
    frames = []
    for frame in range(5):
        shifted = np.roll(scene, (frame % 3, frame // 2), axis=(0, 1))
        frames.append([rng.poisson(shifted + 1.0), rng.poisson(shifted * 0.5 + 1.0)])
    counts = np.asarray(frames, dtype=np.uint16)
    counts[:, 0, 3, 3] = 500  # a hot pixel in every frame of 12C 14N... and a repeat
    return im_factory(name, counts=counts, labels=["12C 14N", "12C 15N"])


@pytest.fixture
def session(make_napari_viewer, qtbot, im_factory):
    from napari_nanosims._napari.viewer import open_viewer

    path = _drifting_file(im_factory, "a.im", 0)
    viewer = make_napari_viewer()
    open_viewer([str(path)], viewer=viewer)
    panel = viewer.window.dock_widgets["NanoSIMS (napari-nanosims)"]
    qtbot.waitUntil(lambda: panel.session.file.value is not None, timeout=10_000)
    return viewer, panel, path


def _clean_and_align(qtbot, panel):
    panel.clean.run()
    _wait_idle(qtbot, panel.clean)
    panel.align.run()
    _wait_idle(qtbot, panel.align)


def test_session_recipe_replays_to_identical_arrays(session, qtbot, tmp_path, im_factory):
    from napari_nanosims import Recipe, run_recipe
    from napari_nanosims.cli.main import main
    from napari_nanosims.export.ometiff import read_ome_tiff

    viewer, panel, path = session
    _clean_and_align(qtbot, panel)
    aligned = _kind(viewer, "aligned")
    assert set(aligned) == {"12C 14N", "12C 15N"}
    written = panel.session.save_recipe(tmp_path / "session.toml")
    assert written is not None and written.is_file()
    assert "Recipe saved" in panel.session.note.value
    recipe = Recipe.load(written)
    names = [name for name, _ in recipe.steps]
    assert names[0] == "remove_hot_pixels" and "align_frames" in names
    replayed = run_recipe(str(path), recipe)
    for channel in replayed.channels:
        np.testing.assert_array_equal(np.asarray(aligned[channel.label].data),
                                      np.asarray(replayed.counts[:, channel.index]))
    # the same recipe through the command line, on another file
    other = _drifting_file(im_factory, "b.im", 1)
    out = tmp_path / "out"
    assert main(["process", str(other), "--recipe", str(written), "--out", str(out)]) == 0
    expected = run_recipe(str(other), recipe)
    stacks = sorted(out.glob("b*.ome.tif"))
    assert stacks, sorted(p.name for p in out.iterdir())
    result = read_ome_tiff(stacks[0])
    result_counts = np.asarray(result["data"])
    np.testing.assert_array_equal(result_counts.reshape(expected.counts.shape),
                                  np.asarray(expected.counts))


def test_undo_restores_what_the_last_step_replaced(session, qtbot):
    viewer, panel, _ = session
    panel.clean.run()
    _wait_idle(qtbot, panel.clean)
    first = {label: np.asarray(layer.data).copy()
             for label, layer in _kind(viewer, "cleaned").items()}
    # a second Clean with other parameters replaces the cleaned layers' data
    panel.clean.controls["outlier_factor"].value = 1.2
    panel.clean.run()
    _wait_idle(qtbot, panel.clean)
    panel.align.run()
    _wait_idle(qtbot, panel.align)
    assert _kind(viewer, "aligned")
    assert panel.session.undo() == "aligned"
    assert not _kind(viewer, "aligned"), "Undo left the aligned layers"
    assert any(layer.visible for layer in _kind(viewer, "cleaned").values())
    assert panel.session.undo() == "cleaned"
    for label, layer in _kind(viewer, "cleaned").items():
        np.testing.assert_array_equal(np.asarray(layer.data), first[label])
    assert panel.session.undo() == "cleaned"
    assert not _kind(viewer, "cleaned")
    assert panel.session.undo() is None
    assert "Nothing to undo" in panel.session.note.value


def test_back_to_raw_removes_every_result(session, qtbot):
    viewer, panel, _ = session
    _clean_and_align(qtbot, panel)
    raw_count = sum(1 for layer in viewer.layers
                    if layer.metadata.get("nanosims", {}).get("kind") == "raw")
    removed = panel.session.back_to_raw()
    assert removed >= 4  # cleaned and aligned layers of both masses
    kinds = {layer.metadata.get("nanosims", {}).get("kind") for layer in viewer.layers
             if "nanosims" in layer.metadata}
    assert kinds == {"raw"}
    assert sum(1 for _ in viewer.layers if _.metadata.get("nanosims")) == raw_count
    active = viewer.layers.selection.active
    assert active is not None and active.visible
    assert panel.session.undo() is None  # nothing left to undo after going back to raw


@pytest.mark.parametrize("shown, suffix", [("OME-TIFF (napari, Fiji)", ".ome.tif"),
                                           ("OpenMIMS .nrrd (Stabilizer)", ".nrrd")])
def test_export_from_the_panel_never_overwrites(session, qtbot, tmp_path, shown, suffix):
    viewer, panel, _ = session
    _clean_and_align(qtbot, panel)
    widget = panel.session
    widget.export_format.value = shown
    widget.folder.value = tmp_path
    widget.run()
    _wait_idle(qtbot, widget)
    files = [p for p in tmp_path.iterdir() if p.name.endswith(suffix)]
    assert len(files) == 1, sorted(p.name for p in tmp_path.iterdir())
    assert widget.note.value.startswith("Written:")
    stamp = files[0].stat().st_mtime_ns
    widget.run()
    _wait_idle(qtbot, widget)
    assert widget.note.value.startswith("Not exported:")
    assert files[0].stat().st_mtime_ns == stamp
    widget.overwrite.value = True
    widget.run()
    _wait_idle(qtbot, widget)
    assert widget.note.value.startswith("Written:")


def test_exports_reopen_with_our_reader_without_asking(session, qtbot, tmp_path):
    """napari has several readers for *.ome.tif and *.nrrd; our outputs reopen with ours
    (no MultipleReaderError, which is napari's dialog in a script), other files do not
    get our preference."""
    from napari.plugins.utils import get_preferred_reader
    from napari.settings import get_settings

    viewer, panel, _ = session
    plugins = get_settings().plugins
    saved = dict(plugins.extension2reader)
    folder = tmp_path / "exports [1]"  # fnmatch's special characters in the folder name
    folder.mkdir()
    try:
        for shown in ("OME-TIFF (napari, Fiji)", "OpenMIMS .nrrd (Stabilizer)"):
            panel.session.export_format.value = shown
            panel.session.folder.value = folder
            panel.session.run()
            _wait_idle(qtbot, panel.session)
        written = sorted(folder.iterdir())
        assert [p.suffix for p in written] == [".nrrd", ".tif"]
        for path in written:
            assert get_preferred_reader(path) == "napari-nanosims"
            layers = viewer.open(path)  # no plugin given: napari must not ask
            assert layers
        assert get_preferred_reader(tmp_path / "elsewhere.ome.tif") is None
    finally:
        plugins.extension2reader = saved
