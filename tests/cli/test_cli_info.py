"""``nanosims info`` and the Qt-free import guarantee."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import needs_shared, real_file

from napari_nanosims import write_im
from napari_nanosims.cli import main


def test_info_without_files_describes_the_demo(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "built-in demo" in out
    assert "12C 14N" in out and "20 frames" in out and "µm" in out


@needs_shared
def test_info_on_real_files_text_and_json(capsys):
    path = str(real_file("OpenMIMS_doc_051117_05-32dRe-03b.im"))
    assert main(["info", path]) == 0
    out = capsys.readouterr().out
    assert "release 9" in out and "big-endian" in out and "2005-11-17 18:07" in out
    assert "60000 µs/pixel" in out and "19.991 x 19.991 µm" in out
    assert "12C 14N (26.003 amu, EM3), 12C 15N (26.914 amu, EM4)" in out
    assert main(["info", "--json", path, str(real_file("grain mode cameca.im"))]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records[0]["sample_name"] == "033"
    assert records[1]["detectors"] == ["EM1", "EM2", "EM3", "EM4", "EM5", "SE", "EM6", "EM7"]
    assert records[1]["has_data"] is False and records[1]["labels"][5] == "SE"


def test_info_bad_file_exits_nonzero_and_continues(tmp_path, capsys):
    bad = tmp_path / "bad.im"
    bad.write_bytes(b"nonsense" * 40)
    good = write_im(tmp_path / "good.im", [[[[1, 2], [3, 4]]]], ["12C"], [12.0], 1.0, 10)
    assert main(["info", str(bad), good]) == 1
    captured = capsys.readouterr()
    assert "bad.im" in captured.err and "good.im" in captured.out


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "napari_nanosims.cli", "info", "--json"],
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stdout)[0]["n_masses"] == 7


def test_import_pulls_in_no_qt_and_no_napari():
    code = ("import sys, napari_nanosims, napari_nanosims.cli, napari_nanosims._napari.reader;"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('PyQt5','PyQt6','PySide2','PySide6','qtpy','napari','magicgui','vispy')];"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_view_without_a_display_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main(["view"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no display" in err and "xvfb-run" in err and "nanosims process" in err
    assert "libxcb" not in err
