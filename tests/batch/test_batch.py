"""Many files at once: a local process pool and a dask.distributed cluster give the serial
results, one bad file never stops the batch, progress and a summary are printed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tifffile

from napari_nanosims import make_demo_im, run_batch
from napari_nanosims.batch.pool import process_one
from napari_nanosims.cli import main
from napari_nanosims.steps.recipe import Recipe


def _files(folder, count=4, n_frames=12):
    paths = [make_demo_im(folder / f"cells_{index}.im", n_frames=n_frames, seed=index)["path"]
             for index in range(count)]
    bad = folder / "broken.im"
    bad.write_bytes(b"not a NanoSIMS file" * 3)
    return [str(p) for p in paths], str(bad)


def _outputs(folder):
    """Every output: TIFF pixels with dtype and OME metadata (its random UUID left out);
    the records without their time stamp."""
    contents = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json":
            contents[path.name] = {k: v for k, v in json.loads(path.read_text()).items()
                                   if k not in ("created", "outputs")}
        elif path.suffix == ".tif":
            with tifffile.TiffFile(path) as tif:
                ome = re.sub(r'UUID="[^"]*"', "", tif.ome_metadata or "")
                contents[path.name] = (tif.asarray().tobytes(), str(tif.asarray().dtype), ome)
        else:
            contents[path.name] = path.read_bytes()
    return contents


def _same(one, two):
    assert one.keys() == two.keys()
    for name in one:
        assert one[name] == two[name], name


ARGS = ["--subpixel", "--max-repeat-fraction", "0.5"]


@pytest.mark.slow
def test_local_pool_matches_serial_and_survives_a_bad_file(tmp_path, capsys):
    paths, bad = _files(tmp_path)
    serial, pool = tmp_path / "serial", tmp_path / "pool"
    assert main(["process", *paths, "--out", str(serial), "--workers", "1", *ARGS]) == 0
    capsys.readouterr()
    code = main(["process", paths[0], bad, *paths[1:], "--out", str(pool), "--workers", "2",
                 *ARGS])
    captured = capsys.readouterr()
    assert code == 1  # one file failed
    assert "processing 5 files on 2 local worker processes" in captured.err
    assert "summary: 4 done, 1 failed" in captured.err
    assert "broken.im" in captured.err and "too short" in captured.err
    for path in paths:
        assert f"{path}: 12 frames" in captured.out
    _same(_outputs(serial), _outputs(pool))


def test_run_batch_reports_every_file_in_order(tmp_path):
    paths, bad = _files(tmp_path, count=3, n_frames=8)
    seen = []
    recipe = Recipe((("align_frames", {}), ("sum_frames", {})))
    results = run_batch([bad, *paths], recipe, tmp_path / "o", workers=2,
                        on_result=lambda r: seen.append(r.path))
    assert [r.path for r in results] == [bad, *paths]
    assert sorted(seen) == sorted([bad, *paths])
    assert [r.ok for r in results] == [False, True, True, True]
    assert all(r.peak_memory_mib > 0 and r.seconds > 0 for r in results)
    # A task never raises, whatever goes wrong.
    failed = process_one(tmp_path / "missing.im", recipe.to_dict())
    assert not failed.ok and "missing.im" in failed.error


@pytest.mark.slow
def test_dask_distributed_cluster_matches_serial(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    paths, _ = _files(tmp_path, count=3, n_frames=10)
    serial, cluster_out = tmp_path / "serial", tmp_path / "cluster"
    assert main(["process", *paths, "--out", str(serial), "--workers", "1", *ARGS]) == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        assert main(["process", *paths, "--out", str(cluster_out), "--scheduler",
                     cluster.scheduler_address, *ARGS]) == 0
    assert "dask scheduler tcp://127.0.0.1" in capsys.readouterr().err
    _same(_outputs(serial), _outputs(cluster_out))


def test_unreachable_scheduler_and_bad_worker_count_are_one_line_errors(tmp_path, capsys,
                                                                         monkeypatch):
    import napari_nanosims.batch.pool

    monkeypatch.setattr(napari_nanosims.batch.pool, "CONNECT_TIMEOUT", "2s")
    paths, _ = _files(tmp_path, count=2, n_frames=6)
    assert main(["process", *paths, "--workers", "0"]) == 2
    assert "--workers must be 1 or more" in capsys.readouterr().err
    code = main(["process", *paths, "--out", str(tmp_path / "o"), "--scheduler",
                 "tcp://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the dask scheduler at tcp://127.0.0.1:1" in err


def test_roi_tables_of_all_files_become_one(tmp_path, capsys):
    paths, _ = _files(tmp_path, count=3, n_frames=8)
    out = tmp_path / "o"
    recipe = Recipe((("align_frames", {}), ("sum_frames", {}), ("segment", {}),
                     ("roi_table", {}))).save(tmp_path / "rois.toml")
    assert main(["process", *paths, "--out", str(out), "--workers", "2",
                 "--recipe", str(recipe)]) == 0
    import pandas as pd

    table = pd.read_csv(out / "roi_table.csv")
    assert table.columns[0] == "file" and set(table["file"]) == set(paths)
    for path in paths:
        single = pd.read_csv(out / (path.split("/")[-1][:-3] + "_roi_table.csv"))
        part = table[table["file"] == path].drop(columns="file").reset_index(drop=True)
        pd.testing.assert_frame_equal(part, single, check_dtype=False)


@pytest.mark.slow
def test_ctrl_c_stops_the_pool_and_leaves_no_partial_file(tmp_path):
    """Ctrl-C reaches the whole process group (as in a terminal): the workers stop and
    remove their temporary files, the command says so in one line and exits with 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    paths, _ = _files(tmp_path, count=6, n_frames=30)
    out = tmp_path / "o"
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from napari_nanosims.cli import main; "
         "sys.exit(main(sys.argv[1:]))", "process", *paths, "--out", str(out),
         "--workers", "2", "--subpixel"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out.exists() and any(out.iterdir())):
            time.sleep(0.05)
        assert out.exists(), "no output appeared"
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert not list(out.glob("*.partial-*"))
    finished = {p.name.split("_")[0] + "_" + p.name.split("_")[1] for p in out.glob("*.json")}
    assert len(finished) < 6  # it did stop


def _full_disk_after(original, half: bytes, when, method: bool = False):
    """A writer that writes ``half`` and then fails as a full disk does, where ``when``
    says (a temporary name); elsewhere it writes as ``original`` does. ``method``: the
    target is its second argument (the first is the object)."""
    import errno

    def write(*args, **kwargs):
        target = args[1] if method else args[0]
        if when(str(target)):
            with open(target, "wb") as handle:
                handle.write(half)
            raise OSError(errno.ENOSPC)  # as a C writer raises it: no text, no file name
        return original(*args, **kwargs)
    return write


@pytest.mark.parametrize("workers", ["1", "2"])
def test_combined_roi_table_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys,
                                                                           monkeypatch,
                                                                           workers):
    import pandas as pd

    paths, _ = _files(tmp_path, count=2, n_frames=6)
    out = tmp_path / "o"
    recipe = Recipe((("sum_frames", {}), ("segment", {}), ("roi_table", {}))).save(
        tmp_path / "rois.toml")
    # Only the combined table (each file's own is <stem>_roi_table.csv).
    monkeypatch.setattr(pd.DataFrame, "to_csv", _full_disk_after(
        pd.DataFrame.to_csv, b"file,label\n",
        lambda target: Path(target).name.startswith("roi_table.csv.partial-"), method=True))
    code = main(["process", *paths, "--out", str(out), "--workers", workers,
                 "--recipe", str(recipe)])
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot write {out / 'roi_table.csv'}: No space left on device"]
    assert "Traceback" not in err and "partial" not in err
    assert not list(out.glob("*.partial-*")) and not (out / "roi_table.csv").exists()
    assert len(list(out.glob("*_roi_table.csv"))) == 2  # each file's own table is there


def test_a_full_disk_while_writing_a_file_names_the_final_file(tmp_path, capsys, monkeypatch):
    import napari_nanosims.export.ometiff as ometiff

    paths, _ = _files(tmp_path, count=1, n_frames=4)
    out = tmp_path / "o"
    monkeypatch.setattr(ometiff, "write_ome_tiff", _full_disk_after(
        ometiff.write_ome_tiff, b"II*\0", lambda target: "_sums.ome.tif.partial-" in target))
    assert main(["process", paths[0], "--out", str(out), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0]
    assert str(out / "cells_0_sums.ome.tif") in errors[0] and "partial" not in errors[0]
    assert not list(out.glob("*"))  # neither final nor temporary files
