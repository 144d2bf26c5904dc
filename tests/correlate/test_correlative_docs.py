"""docs/correlative.md: its Python blocks run in order (in a temporary folder) and its
recipe loads and runs on the file they make, giving each imported cell its class."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest
from conftest import REPO

from napari_nanosims import open_acquisition
from napari_nanosims.steps.recipe import Recipe, run_recipe

PAGE = REPO / "docs" / "correlative.md"
BLOCK = re.compile(r"```(python|toml)\n(.*?)```", re.S)


def test_page_runs_and_its_recipe_classes_the_cells(tmp_path, monkeypatch):
    pytest.importorskip("SimpleITK")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    blocks = BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        for index, (kind, text) in enumerate(blocks):
            if kind == "python":
                exec(compile(text, f"{PAGE.name} block {index}", "exec"), namespace)
    assert namespace["refined"].refinement["kept"]
    assert namespace["registration"].loo_um < 0.3  # µm: a few pixels at most
    recipe_text = next(text for kind, text in blocks if kind == "toml")
    (tmp_path / "correlate.toml").write_text(recipe_text, encoding="utf-8")
    with open_acquisition(tmp_path / "cell01.im") as acq:
        out = run_recipe(acq, Recipe.load(tmp_path / "correlate.toml"))
    table = out.roi_statistics.drop_duplicates("roi").set_index("roi")
    assert sorted(table["class"]) == [1, 1, 2, 2]  # four cells, two of each probe
    assert set(out.class_statistics["class"].dropna()) >= {1, 2}
    np.testing.assert_array_equal(out.roi_labels, namespace["labels"])
