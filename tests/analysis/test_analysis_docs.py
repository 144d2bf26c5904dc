"""docs/analysis.md: its Python blocks run in order on the real file and print exactly the
numbers the page shows (the ``text`` block after each), and its recipe loads."""

from __future__ import annotations

import contextlib
import io
import os
import re

import pytest
from conftest import REPO, SHARED_DATA

from napari_nanosims.steps.recipe import Recipe

PAGE = REPO / "docs" / "analysis.md"
BLOCK = re.compile(r"```(python|text|toml)\n(.*?)```", re.S)


def _blocks():
    return [(kind, text) for kind, text in BLOCK.findall(PAGE.read_text())]


@pytest.mark.slow
def test_python_blocks_print_what_the_page_shows(monkeypatch):
    if not (SHARED_DATA / "OpenMIMS_doc_051117_05-32dRe-03b.im").exists():
        pytest.skip(f"real NanoSIMS files not found at {SHARED_DATA}")
    monkeypatch.chdir(REPO)  # the page's paths are relative to the repository
    namespace: dict = {}
    blocks = _blocks()
    ran = 0
    for index, (kind, text) in enumerate(blocks):
        if kind != "python":
            continue
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(text, f"{PAGE.name} block {index}", "exec"), namespace)
        ran += 1
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        if following and following[0] == "text":
            shown = [line.rstrip() for line in following[1].strip().splitlines()]
            printed = [line.rstrip() for line in output.getvalue().strip().splitlines()]
            assert printed == shown, f"block {index} prints other numbers than the page"
    assert ran >= 6


def test_recipe_on_the_page_loads(tmp_path):
    recipes = [text for kind, text in _blocks() if kind == "toml"]
    assert recipes
    path = tmp_path / "classes.toml"
    path.write_text(recipes[0])
    names = [name for name, _ in Recipe.load(os.fspath(path)).steps]
    assert names[-4:] == ["classify", "normalise", "assimilation", "compare_classes"]
