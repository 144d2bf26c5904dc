"""Every output of a run lands inside --out: a recipe's export step writes into a
sub-folder of it, and a folder that is absolute or resolves outside (``..``, a symbolic
link pointing out) is refused with one line before any work (``process`` and
``ratio --recipe``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from napari_nanosims import Recipe
from napari_nanosims.batch.single import confine_exports
from napari_nanosims.cli import main
from napari_nanosims.testing.factory import make_im


def _everything(folder: Path) -> list[str]:
    return sorted(os.path.relpath(p, folder) for p in folder.rglob("*")) if folder.exists() \
        else []


@pytest.fixture
def setup(tmp_path):
    """An input file, an empty output folder, a folder beside it that must stay empty,
    and a link inside the output folder pointing at that one."""
    path = make_im(tmp_path / "in" / "a.im", frames=4, shape=(16, 16))
    out, outside = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    outside.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    return path, out, outside


def _recipe(tmp_path, folder: str, step: str = "write_nrrd") -> str:
    recipe = Recipe((("sum_frames", {}), (step, {"folder": folder})))
    return str(recipe.save(tmp_path / f"r{abs(hash((folder, step)))}.toml"))


ATTEMPTS = {
    "absolute": lambda outside: str(outside),
    "absolute inside --out": None,  # filled in by the test: absolute paths are refused too
    "dot-dot": lambda outside: "../elsewhere",
    "dot-dot in the middle": lambda outside: "sub/../../elsewhere",
    "symlink out": lambda outside: "link",
    "under a symlink out": lambda outside: "link/deeper",
}


@pytest.mark.parametrize("command", ["process", "ratio"])
@pytest.mark.parametrize("attempt", list(ATTEMPTS))
@pytest.mark.parametrize("step", ["write_nrrd", "write_ome_tiff", "write_lans"])
def test_an_export_folder_outside_out_is_refused_before_any_work(setup, tmp_path, capsys,
                                                                 command, attempt, step):
    path, out, outside = setup
    folder = (str(out / "sub") if ATTEMPTS[attempt] is None else ATTEMPTS[attempt](outside))
    recipe = _recipe(tmp_path, folder, step)
    extra = ["--expr", "13C/12C"] if command == "ratio" else []
    code = main([command, path, "--out", str(out), "--recipe", recipe, *extra])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: recipe step ") and step in lines[0]
    assert repr(folder) in lines[0] and "sub-folder of the output folder" in lines[0]
    assert _everything(out) == ["link"] and _everything(outside) == []  # no work at all


@pytest.mark.parametrize("command", ["process", "ratio"])
def test_an_export_folder_is_a_sub_folder_of_out(setup, tmp_path, capsys, command):
    path, out, outside = setup
    recipe = _recipe(tmp_path, "exports/nrrd")
    extra = ["--expr", "13C/12C"] if command == "ratio" else []
    cwd = os.getcwd()
    os.chdir(tmp_path)  # a relative folder is not read from the working folder
    try:
        assert main([command, path, "--out", str(out), "--recipe", recipe, *extra]) == 0, \
            capsys.readouterr().err
    finally:
        os.chdir(cwd)
    assert (out / "exports" / "nrrd" / "a.nrrd").is_file()
    assert not (tmp_path / "exports").exists() and _everything(outside) == []
    assert not (Path(path).parent / "a.nrrd").exists()  # not beside the input either


def test_ratio_recipe_exports_follow_out_by_default(setup, tmp_path, capsys):
    """``nanosims ratio --recipe`` with an export step (folder empty) writes into --out,
    not beside the input."""
    path, out, _ = setup
    recipe = _recipe(tmp_path, "", "write_ome_tiff")
    assert main(["ratio", path, "--out", str(out), "--recipe", recipe,
                 "--expr", "13C/12C"]) == 0, capsys.readouterr().err
    assert (out / "a.ome.tif").is_file()
    assert sorted(os.listdir(Path(path).parent)) == ["a.im"]


def test_a_link_inside_out_pointing_inside_is_followed(setup, tmp_path):
    _, out, _ = setup
    (out / "real").mkdir()
    (out / "alias").symlink_to(out / "real", target_is_directory=True)
    recipe = Recipe((("write_nrrd", {"folder": "alias"}), ("write_lans", {"folder": ""})))
    confined = confine_exports(recipe, out, overwrite=True)
    folders = [parameters["folder"] for _, parameters in confined.steps]
    assert folders == [str((out / "real").resolve()), str(out.resolve())]
    assert all(parameters["overwrite"] for _, parameters in confined.steps)
    assert recipe.steps[0][1] == {"folder": "alias"}  # the recipe given is left as it was


def test_process_file_refuses_too(setup, tmp_path):
    """The library's process_file (what every batch worker runs) holds the same rule."""
    from napari_nanosims.batch.single import process_file

    path, out, outside = setup
    recipe = Recipe((("sum_frames", {}), ("write_nrrd", {"folder": "../elsewhere"})))
    with pytest.raises(ValueError, match="outside the output folder"):
        process_file(path, recipe, out)
    assert _everything(out) == ["link"] and _everything(outside) == []
