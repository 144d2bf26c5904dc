"""Opening several files of one field offers "one acquisition (same field)" once, without
the Chains and mosaics widget open. Runs under Xvfb (pytest --xvfb-backend=xvfb)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")

T0 = dt.datetime(2024, 5, 2, 14, 0)


def _file(im_factory, name, stage, minutes):
    counts = np.full((2, 2, 8, 8), 3, dtype=np.uint32)
    return im_factory(name, counts, labels=("12C", "SE"), raster_um=4.0,
                      dwell_time_us=100.0, stage_position_um=stage,
                      analysis_date=T0 + dt.timedelta(minutes=minutes))


def test_opening_files_of_one_field_offers_them_once(make_napari_viewer, qtbot, im_factory,
                                                     monkeypatch):
    from napari_nanosims._napari.widgets.chains_mosaics import ChainsMosaicWidget

    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_info", shown.append)
    offers = lambda: [m for m in shown if "same field" in m]  # noqa: E731
    paths = [_file(im_factory, f"run_{k}.im", (70, 80, 0), minutes=10 * k) for k in (2, 1, 3)]
    elsewhere = _file(im_factory, "elsewhere.im", (900, 80, 0), minutes=5)
    viewer = make_napari_viewer()
    # One call, as for files dropped together: napari reads and adds them one by one.
    viewer.open([str(p) for p in [*paths, elsewhere]], plugin="napari-nanosims")
    assert offers() == []  # not while napari is still adding the files' layers
    qtbot.waitUntil(lambda: len(offers()) == 1, timeout=5000)
    message = offers()[0]
    assert message.startswith("run_1.im, run_2.im, run_3.im: one acquisition (same field)?")
    assert "elsewhere" not in message
    assert "Plugins > napari-nanosims > Chains and mosaics" in message
    # Another file of another field: nothing new to offer.
    viewer.open(str(_file(im_factory, "far.im", (5000, 80, 0), 60)), plugin="napari-nanosims")
    qtbot.wait(50)  # let a pending offer run; none may come
    assert len(offers()) == 1
    # The widget lists the group but does not offer it a second time.
    widget = ChainsMosaicWidget(viewer)
    assert widget.groups.value == tuple(str(p) for p in sorted(paths))
    assert "run_1.im, run_2.im, run_3.im" in widget.status.value
    assert len(offers()) == 1
