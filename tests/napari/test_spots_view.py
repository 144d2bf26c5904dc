"""Isotope (spot) files in napari: the reader docks the "NanoSIMS spots" view (a table of
counts per cycle, plots, the chosen ratio's summary) instead of adding image layers.

The package cannot write ``.is`` files, so these tests use the real shared ones (and
broken copies of them); each test skips, with the reason, when they are missing. Runs
under Xvfb (pytest --xvfb-backend=xvfb).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import SHARED_DATA, real_file

from napari_nanosims import open_isotope

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")

GLENDON = "2018-01-19-GLENDON_1_2.is"  # 7 masses on electron multipliers, 3900 cycles
TREASURE = "2020-01-17-TREASURE_2.is"  # 32S on a Faraday cup, 34S on EM2
SIMS = "is01 R1 KH03-27 01.is"


def _need(*names):
    paths = [real_file(name) for name in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        print(f"skipped: {', '.join(missing)} not found in {SHARED_DATA}")
        pytest.skip(f"real isotope files {', '.join(missing)} not found in {SHARED_DATA}")
    return paths


def _view(viewer):
    return viewer.window.dock_widgets["NanoSIMS spots (napari-nanosims)"]


def _horizontal():
    from qtpy.QtCore import Qt

    return Qt.Orientation.Horizontal


def _cell(view, row, column):
    model = view.table.model()
    return model.data(model.index(row, column))


def test_reader_claims_isotope_files_only(tmp_path, demo_file):
    from napari_nanosims._napari.spots import get_spots_reader, read_spot_files

    (spot,) = _need(SIMS)
    assert get_spots_reader(str(spot)) is read_spot_files
    assert get_spots_reader([str(spot), str(spot)]) is read_spot_files
    image_named_is = tmp_path / "image.is"
    shutil.copy(demo_file["path"], image_named_is)  # an .im file (type 27) under .is
    assert get_spots_reader(str(image_named_is)) is None
    assert get_spots_reader(str(tmp_path / "missing.is")) is None
    assert get_spots_reader(str(tmp_path)) is None


def test_files_open_as_a_table_and_plots_not_layers(make_napari_viewer):
    glendon, treasure, sims = _need(GLENDON, TREASURE, SIMS)
    viewer = make_napari_viewer()
    added = viewer.open([str(treasure), str(sims)], plugin="napari-nanosims")
    # The same call napari makes for a dropped file (one reader claims *.is, no dialog).
    added += viewer.open(str(glendon), plugin=None)
    assert added == [] and len(viewer.layers) == 0
    view = _view(viewer)
    names = [view.files.itemText(k) for k in range(view.files.count())]
    assert names == [TREASURE, SIMS, GLENDON]
    # The last file read is shown: one row per cycle, the counts of Cameca's export.
    measurement = open_isotope(glendon)
    assert view.measurement.path == measurement.path
    model = view.table.model()
    assert model.rowCount() == 3900
    headers = [model.headerData(c, _horizontal()) for c in range(model.columnCount())]
    assert headers == ["cycle", "block", "time_s", *measurement.labels]
    for row in (0, 1234, 3899):
        assert _cell(view, row, 0) == str(row + 1)
        assert _cell(view, row, 1) == str(row // 65 + 1)  # 60 blocks of 65 cycles
        for k in range(measurement.n_masses):
            assert float(_cell(view, row, 3 + k)) == measurement.counts[row, k]
    # Plots: counts of every mass, and the ratio per cycle.
    counts_axes, ratio_axes = view.canvas.figure.axes
    assert len(counts_axes.lines) == measurement.n_masses
    plotted = np.concatenate([line.get_ydata() for line in ratio_axes.lines[:2]])
    assert len(plotted) == 3900
    # Opening a file again shows it again, not twice.
    viewer.open(str(sims), plugin="napari-nanosims")
    assert view.files.count() == 3 and view.files.currentText() == SIMS
    assert view.table.model().rowCount() == 100


def test_ratio_chooser_and_summary_are_the_written_out_statistics(make_napari_viewer):
    (glendon,) = _need(GLENDON)
    viewer = make_napari_viewer()
    viewer.open(str(glendon), plugin="napari-nanosims")
    view = _view(viewer)
    # The analysis's first ratio is chosen first.
    assert (view.numerator.currentText(), view.denominator.currentText()) == ("13C", "12C")
    view.dead_time.setChecked(False)  # raw counts: the statistics below use them directly
    view.set_ratio("12C2", "13C")
    counts = open_isotope(glendon).counts
    n, d = counts[:, 2], counts[:, 1]
    ratio = n.sum() / d.sum()
    poisson = ratio * np.sqrt(1 / n.sum() + 1 / d.sum())
    r = n / d
    s = r * np.sqrt(1 / n + 1 / d)
    cycle_se = np.std(r, ddof=1) / np.sqrt(len(r))
    mswd = np.sum(((r - ratio) / s) ** 2) / (len(r) - 1)
    result = view.result
    assert result.expression == "12C2/13C"
    assert result.ratio == pytest.approx(ratio, rel=1e-12)
    assert result.poisson_se == pytest.approx(poisson, rel=1e-12)
    assert result.cycle_se == pytest.approx(cycle_se, rel=1e-12)
    assert result.mswd == pytest.approx(mswd, rel=1e-12)
    text = view.summary.text()
    assert f"12C2/13C = {ratio:.6g} ± {poisson:.2g} (Poisson)" in text
    assert f"SE of cycles: {cycle_se:.2g}" in text
    assert f"MSWD {mswd:.3g}" in text and "3900 of 3900 cycles" in text
    assert view.summary.wordWrap()
    assert view.canvas.figure.axes[1].get_ylabel() == "12C2/13C"
    # Dead time on: the ratio changes (the file's EMs have a dead time) and says so.
    view.dead_time.setChecked(True)
    assert view.result.ratio != pytest.approx(ratio, rel=1e-9)
    # A mass with cycles of 0 counts has no MSWD; the summary says why.
    view.set_ratio("13C 14N", "12C 14N")
    assert "MSWD n/a (cycles with 0 counts)" in view.summary.text()


def test_outliers_are_listed_and_can_be_excluded(make_napari_viewer):
    (treasure,) = _need(TREASURE)
    viewer = make_napari_viewer()
    viewer.open(str(treasure), plugin="napari-nanosims")
    view = _view(viewer)
    model = view.table.model()
    assert model.headerData(3, _horizontal()) == "32S (FC)"  # a cup's reading, not ions
    assert float(_cell(view, 0, 3)) == open_isotope(treasure).counts[0, 0]
    result = view.result
    flagged = np.flatnonzero(result.outliers) + 1
    assert len(flagged) > 0  # the cup file scatters more than counting statistics
    assert (f"{len(flagged)} outlier cycles (> {result.threshold_sigma:.2f} σ): "
            f"{', '.join(str(c) for c in flagged)}") in view.summary.text()
    ratio_axes = view.canvas.figure.axes[1]
    assert list(ratio_axes.lines[1].get_xdata()) == list(flagged)  # drawn as red crosses
    view.exclude.setChecked(True)
    assert len(view.result.cycles) == 150 - len(flagged)
    assert f"{150 - len(flagged)} of 150 cycles" in view.summary.text()


def test_dock_stays_narrow(make_napari_viewer):
    (glendon,) = _need(GLENDON)
    viewer = make_napari_viewer()
    viewer.open(str(glendon), plugin="napari-nanosims")
    view = _view(viewer)
    assert view.minimumSizeHint().width() <= 290
    view.resize(290, 900)
    assert view.width() == 290


def test_unreadable_files_give_one_notification(make_napari_viewer, tmp_path, monkeypatch):
    (sims,) = _need(SIMS)
    shown, errors = [], []
    monkeypatch.setattr("napari.utils.notifications.show_warning", shown.append)
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    short = tmp_path / "short.is"
    short.write_bytes(sims.read_bytes()[:600])  # the header cut off
    viewer = make_napari_viewer()
    viewer.open([str(short), str(sims)], plugin="napari-nanosims", stack=True)
    assert len(shown) == 1 and "short.is: header size" in shown[0]
    assert _view(viewer).files.count() == 1  # the good file is shown
    assert viewer.open(str(short), plugin="napari-nanosims") == []
    assert len(errors) == 1 and "short.is" in errors[0] and "\n" not in errors[0]


def test_without_a_window_the_reader_says_what_to_use(monkeypatch):
    import napari_nanosims._napari.spots as spots

    (sims,) = _need(SIMS)
    monkeypatch.setattr(spots, "_current_viewer", lambda: None)
    with pytest.raises(ValueError, match="open_isotope and spot_table"):
        spots.read_spot_files(str(sims))
