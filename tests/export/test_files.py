"""Outputs have one home: temporary names, atomic renames and exists-checks
(export/_files.py), and every output name of a run (export/names.py)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_nanosims.export._files import (
    OutputExistsError,
    OutputWriteError,
    atomic_output,
    atomic_outputs,
    partial_path,
    refuse_existing,
    remove_stale_partials,
)


def _refusal(*paths) -> str:
    """The one message every writer gives for outputs that exist."""
    return ("outputs exist (use --overwrite, or overwrite=True, to replace them): "
            + ", ".join(str(path) for path in paths))


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# -- temporary names, atomic renames -------------------------------------------------------

def test_temporary_name_is_the_final_name_with_the_writers_pid(tmp_path):
    final = tmp_path / "a_sums.ome.tif"
    assert partial_path(final) == tmp_path / f"a_sums.ome.tif.partial-{os.getpid()}"
    assert partial_path(str(final), pid=42) == tmp_path / "a_sums.ome.tif.partial-42"
    with atomic_outputs({"sums": final, "record": tmp_path / "a.json"}) as temporary:
        assert temporary == {"sums": partial_path(final),
                             "record": partial_path(tmp_path / "a.json")}
        for path in temporary.values():
            path.write_text("complete")
        assert not final.exists()  # nothing under a final name before the block ends
    assert sorted(os.listdir(tmp_path)) == ["a.json", "a_sums.ome.tif"]
    assert final.read_text() == "complete"


def test_an_exception_while_writing_leaves_no_file_and_no_partial(tmp_path):
    with pytest.raises(RuntimeError, match="disk full"), \
            atomic_outputs({"a": tmp_path / "a.tif", "b": tmp_path / "b.csv"}) as temporary:
        temporary["a"].write_bytes(b"half")
        raise RuntimeError("disk full")
    assert os.listdir(tmp_path) == []
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "c.tif") as temporary:
        temporary.write_bytes(b"half")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


# -- a failed write names the final file and says why ------------------------------------

@pytest.mark.parametrize("error", [
    lambda temporary: OSError(errno.ENOSPC),
    lambda temporary: OSError(errno.ENOSPC, "No space"),
    lambda temporary: OSError(errno.ENOSPC, "No space left on device", str(temporary))],
    ids=["number only", "number and text", "naming the temporary file"])
def test_a_full_disk_names_the_final_file_and_leaves_nothing(tmp_path, error):
    final = tmp_path / "a_sums.ome.tif"
    with pytest.raises(OutputWriteError) as failed, atomic_output(final) as temporary:
        temporary.write_bytes(b"half")
        raise error(temporary)
    assert str(failed.value) == f"cannot write {final}: No space left on device"
    assert failed.value.errno == errno.ENOSPC and isinstance(failed.value, OSError)
    assert os.listdir(tmp_path) == []


def test_the_failing_file_is_named_when_the_error_says_which(tmp_path):
    finals = {"sums": tmp_path / "s.tif", "record": tmp_path / "r.json"}
    with pytest.raises(OutputWriteError) as failed, atomic_outputs(finals) as temporary:
        temporary["sums"].write_bytes(b"complete")
        open(temporary["record"].parent / "missing" / "r.json", "w")  # noqa: SIM115
    missing = temporary["record"].parent / "missing" / "r.json"
    assert str(failed.value) == (f"cannot write {finals['sums']}, {finals['record']}: "
                                 f"No such file or directory ({missing})")
    with pytest.raises(OutputWriteError) as failed, atomic_outputs(finals) as temporary:
        temporary["sums"].write_bytes(b"complete")
        raise PermissionError(errno.EACCES, "Permission denied", str(temporary["record"]))
    assert str(failed.value) == f"cannot write {finals['record']}: Permission denied"
    with pytest.raises(OutputWriteError) as failed, atomic_outputs(finals) as temporary:
        raise OSError(errno.EIO, "Input/output error")  # which one: the writer did not say
    assert str(failed.value) == (f"cannot write {finals['sums']}, {finals['record']}: "
                                 "Input/output error")
    assert os.listdir(tmp_path) == []


def test_a_failed_rename_names_the_final_file(tmp_path, monkeypatch):
    final = tmp_path / "a.csv"

    def refuse(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(source), str(target))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputWriteError) as failed, atomic_output(final) as temporary:
        temporary.write_text("complete")
    assert str(failed.value) == f"cannot write {final}: Invalid cross-device link"
    assert ".partial-" not in str(failed.value) and os.listdir(tmp_path) == []


# -- nothing overwritten without being asked -----------------------------------------------

def _existing_file(tmp_path) -> Path:
    path = tmp_path / "a_sums.ome.tif"
    path.write_text("the user's")
    return path


def _dangling_link(tmp_path) -> Path:
    path = tmp_path / "a_sums.ome.tif"
    path.symlink_to(tmp_path / "nowhere")
    return path


@pytest.mark.parametrize("make", [_existing_file, _dangling_link],
                         ids=["file", "dangling symlink"])
def test_an_existing_output_is_refused_with_the_one_message(tmp_path, make):
    path = make(tmp_path)
    before = os.readlink(path) if path.is_symlink() else path.read_text()
    with pytest.raises(OutputExistsError) as refused:
        refuse_existing([tmp_path / "other.tif", path])
    assert str(refused.value) == _refusal(path)
    assert isinstance(refused.value, FileExistsError)  # callers catching that still do
    with pytest.raises(OutputExistsError, match="outputs exist") as refused, \
            atomic_outputs({"sums": path}) as temporary:
        temporary["sums"].write_text("new")
    assert str(refused.value) == _refusal(path)
    assert (os.readlink(path) if path.is_symlink() else path.read_text()) == before
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no partial left
    refuse_existing([path], overwrite=True)  # asked: no refusal
    with atomic_output(path, overwrite=True) as temporary:
        temporary.write_text("new")
    assert not path.is_symlink() and path.read_text() == "new"


def test_a_file_that_appears_while_writing_is_not_replaced(tmp_path):
    final = tmp_path / "a.csv"
    with pytest.raises(OutputExistsError) as refused, \
            atomic_outputs({"first": tmp_path / "0.csv", "table": final}) as temporary:
        for path in temporary.values():
            path.write_text("ours")
        final.write_text("someone else's")
    assert str(refused.value) == _refusal(final)
    assert final.read_text() == "someone else's"
    assert sorted(os.listdir(tmp_path)) == ["a.csv"]  # neither output moved, no partial


def _nrrd(path, overwrite):
    from napari_nanosims import Acquisition, write_nrrd

    counts = np.ones((2, 1, 4, 4), np.uint32)
    write_nrrd(Acquisition.from_arrays(counts, ["12C"]), path, overwrite=overwrite)


def _recipe(path, overwrite):
    from napari_nanosims import default_recipe

    default_recipe().save(path, overwrite=overwrite)


def _ratio(path, overwrite):
    from napari_nanosims import Acquisition, evaluate
    from napari_nanosims.export.names import ratio_outputs
    from napari_nanosims.export.ratio import write_derived

    counts = np.full((2, 2, 4, 4), 20, np.uint32)
    derived = evaluate(Acquisition.from_arrays(counts, ["13C", "12C"]), "13C/12C")
    outputs = ratio_outputs(path.with_name("a.im"), None, "13C/12C")
    assert outputs["image"] == path  # the test's file is the ratio image
    write_derived(derived, outputs, overwrite=overwrite)


@pytest.mark.parametrize("write, name", [(_nrrd, "a.nrrd"), (_recipe, "recipe.toml"),
                                         (_ratio, "a_13C_over_12C.ome.tif")])
def test_every_writer_refuses_with_the_one_message(tmp_path, write, name):
    path = tmp_path / name
    path.write_text("the user's")
    with pytest.raises(OutputExistsError) as refused:
        write(path, False)
    assert str(refused.value) == _refusal(path)
    assert path.read_text() == "the user's" and not list(tmp_path.glob("*.partial-*"))
    write(path, True)
    assert path.read_text(errors="replace") != "the user's"


# -- stale partials ------------------------------------------------------------------------

def test_partials_of_dead_processes_are_removed_and_of_live_ones_kept(tmp_path):
    dead = _dead_pid()
    stale = partial_path(tmp_path / "a_sums.ome.tif", pid=dead)
    live_parent = partial_path(tmp_path / "b_sums.ome.tif", pid=os.getppid())
    mine = partial_path(tmp_path / "c_sums.ome.tif")
    lookalike = tmp_path / f"notes.partial-{dead}.txt"  # not a temporary name of ours
    for path in (stale, live_parent, mine, lookalike):
        path.write_bytes(b"x")
    assert remove_stale_partials(tmp_path) == [stale]
    assert sorted(os.listdir(tmp_path)) == sorted(
        p.name for p in (live_parent, mine, lookalike))
    assert remove_stale_partials(tmp_path / "missing") == []


# -- every output name of a run comes from names.py ----------------------------------------

def _predicted_outputs(path, out, labels, expressions, roi_expressions) -> set[Path]:
    """Every file ``nanosims process`` writes for the recipe of the test below, from
    names.py alone."""
    from napari_nanosims.export import names

    stem = Path(path).stem
    predicted = set(names.run_outputs(path, out, aligned=True).values())
    for expression in expressions:
        predicted |= set(names.ratio_outputs(path, out, expression).values())
    predicted |= set(names.roi_outputs(path, out).values())
    predicted |= {out / names.output_name(stem, "nrrd"),
                  out / names.output_name(stem, "ome-tiff"), names.combined_roi_table(out)}
    lans = out / names.output_name(stem, "lans")
    for text in [*labels, *expressions, *roi_expressions]:
        kinds = ("dac", "depth", "mat") if text in labels else ("dac", "depth")
        predicted |= {lans / names.lans_file(names.lans_name(text), kind) for kind in kinds}
    predicted |= {lans / names.lans_file("ROIs", "mat"), lans / names.lans_file("xyalign", "mat")}
    return predicted


def test_every_output_of_a_process_run_is_named_by_names_py(tmp_path, capsys):
    from napari_nanosims import Recipe, make_demo_im
    from napari_nanosims.cli import main

    (tmp_path / "in").mkdir()
    demo = make_demo_im(tmp_path / "in" / "cells.im", n_frames=3, seed=3)
    expressions = ["12C 15N/12C 14N", "13C/(12C+13C)"]
    recipe = Recipe((("align_frames", {}), ("sum_frames", {}),
                     *(("ratio", {"expression": e}) for e in expressions),
                     ("segment", {}), ("roi_table", {"expressions": "13C/12C"}),
                     ("write_nrrd", {}), ("write_ome_tiff", {}), ("write_lans", {})))
    recipe_file = recipe.save(tmp_path / "recipe.toml")
    out = tmp_path / "o"
    assert main(["process", str(demo["path"]), "--out", str(out),
                 "--recipe", str(recipe_file)]) == 0, capsys.readouterr().err
    written = {path for path in out.rglob("*") if path.is_file()}
    assert written == _predicted_outputs(demo["path"], out, list(demo["labels"]),
                                         expressions, ["13C/12C"])
    # A second run is refused before any work, naming outputs of every kind.
    capsys.readouterr()
    assert main(["process", str(demo["path"]), "--out", str(out),
                 "--recipe", str(recipe_file)]) == 1
    err = capsys.readouterr().err
    for name in ("cells_sums.ome.tif", "cells_12C15N_over_12C14N.png", "cells_rois.tif",
                 "cells.nrrd", "cells.ome.tif", os.path.join("cells", "dat")):
        assert str(out / name) in err


def test_output_names_are_those_the_docs_give():
    from napari_nanosims.export import names

    expected = {"sums": "s_sums.ome.tif", "variance": "s_variance.ome.tif",
                "aligned": "s_aligned.ome.tif", "stack": "s_stack.ome.tif",
                "record": "s_processing.json", "rois": "s_rois.tif",
                "roi table": "s_roi_table.csv", "nrrd": "s.nrrd", "ome-tiff": "s.ome.tif",
                "lans": "s"}
    assert {kind: names.output_name("s", kind) for kind in expected} == expected
    assert names.output_name("s", "ratio image", "12C 15N/12C 14N") == \
        "s_12C15N_over_12C14N.ome.tif"
    assert names.output_name("s", "ratio display", "13C*2/(12C+13C)") == \
        "s_13Cx2_over__12C+13C_.png"
    assert names.run_outputs("/d/s.im", None, aligned=False)["stack"] == Path("/d/s_stack.ome.tif")
    assert names.export_outputs("write_lans", "s", "/o") == [Path("/o/s/dat"), Path("/o/s/mat")]
    assert names.export_outputs("ratio", "s", "/o") == []
    with pytest.raises(ValueError, match="unknown output kind"):
        names.output_name("s", "thumbnail")
