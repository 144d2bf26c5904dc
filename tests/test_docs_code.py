"""Every code block of README.md and docs/*.md runs as printed (issue 19).

Each ``python`` block runs; the blocks of one page run in order in one namespace, as a
reader would type them, in a temporary folder holding the files the pages name
(``cells_01.im``, ``data/cells_01.im``: the demo acquisition, seed 0; the real files as
``../shared/data/<name>``, as from the repository's root, skipped when missing). Each ``nanosims``
command of a ``bash``/``sh`` block runs in this process through ``cli.main.main``, in the
same folder, after the page's earlier blocks. A block marked
``<!-- docs-test: compile-only (reason) -->`` is compiled (Python), or checked with
``bash -n`` and its ``nanosims`` commands parsed (shell), but not run; see
``tests/docs_blocks.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from docs_blocks import (
    SHELL,
    Block,
    check_shell_syntax,
    nanosims_command,
    parse_nanosims,
    parse_page,
    run_nanosims,
    shell_commands,
)

ROOT = Path(__file__).resolve().parents[1]
# docs/analysis.md runs on a real file and prints numbers the page shows:
# tests/analysis/test_analysis_docs.py runs it and compares what it prints.
TESTED_ELSEWHERE = {"docs/analysis.md"}
PAGES = [page for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
         if page.relative_to(ROOT).as_posix() not in TESTED_ELSEWHERE]


def _collect() -> tuple[list[Block], list[str]]:
    blocks, errors = [], []
    for page in PAGES:
        try:
            blocks.extend(parse_page(page, ROOT))
        except ValueError as exc:
            errors.append(str(exc))
    return blocks, errors


BLOCKS, MARKER_ERRORS = _collect()


class PageRun:
    """One page's namespace and folder; runs its blocks in order, each once."""

    def __init__(self, page: str, folder: Path, blocks: list[Block]):
        self.page = page
        self.folder = folder
        self.blocks = [block for block in blocks if block.page == page]
        self.namespace: dict = {"__name__": "__docs__"}
        self.done: dict[int, str | None] = {}  # index -> None (passed) or why it failed

    def run_through(self, block: Block) -> None:
        """Run the page's earlier blocks that have not run, then ``block``."""
        for earlier in self.blocks[:block.index]:
            if earlier.index not in self.done:
                # its error is reported just below, for the block that needs it
                with contextlib.suppress(Exception):
                    self._run_once(earlier)
            if self.done[earlier.index] is not None:
                pytest.fail(f"not run: the earlier block at {self.page}:{earlier.line} failed "
                            f"({self.done[earlier.index]})")
        self._run_once(block)

    def _run_once(self, block: Block) -> None:
        try:
            self._run(block)
        except BaseException as exc:
            self.done[block.index] = f"{type(exc).__name__}: {str(exc)[:300]}"
            raise
        self.done[block.index] = None

    def _run(self, block: Block) -> None:
        if block.language in SHELL:
            self._run_shell(block)
            return
        code = compile(block.code, block.filename, "exec")
        if not block.compile_only:
            exec(code, self.namespace)

    def _run_shell(self, block: Block) -> None:
        check_shell_syntax(block)
        for text in shell_commands(block):
            command = nanosims_command(text, self.folder, to_run=not block.compile_only)
            if block.compile_only:
                if command is not None:
                    parse_nanosims(command)
            elif command is None:
                raise AssertionError(
                    f"{block.filename}: {text!r} is not a nanosims command; mark the block "
                    "'<!-- docs-test: compile-only (reason) -->' if it is not to be run")
            elif command.argv[:1] == ["view"]:
                raise AssertionError(f"{block.filename}: {text!r} opens a window; mark the "
                                     "block '<!-- docs-test: compile-only (opens a window) -->'")
            else:
                run_nanosims(command, self.folder)


@pytest.fixture(scope="module")
def page_runs(demo_file, tmp_path_factory):
    """A PageRun per page, each in its own folder with the example files."""
    demo = Path(demo_file["path"])
    runs = {}
    for page in sorted({block.page for block in BLOCKS}):
        folder = tmp_path_factory.mktemp(Path(page).stem) / "examples"
        folder.mkdir()
        (folder.parent / "shared").mkdir()
        (folder.parent / "shared" / "data").symlink_to(SHARED_DATA)
        (folder / "cells_01.im").symlink_to(demo)
        (folder / "data").mkdir()
        (folder / "data" / "cells_01.im").symlink_to(demo)
        _chain_and_mosaic_files(folder)
        runs[page] = PageRun(page, folder, BLOCKS)
    return runs


def _chain_and_mosaic_files(folder: Path) -> None:
    """The files usage.md's chains and mosaics examples name: ``a_1.im``..``a_3.im``, one
    field acquired in three parts (10 minutes apart, ``a_2`` first on disk order
    aside), and ``field_1.im``..``field_3.im``, three tiles 20 µm apart on the stage."""
    import datetime as dt

    from napari_nanosims.testing.factory import make_im, poisson_counts

    start = dt.datetime(2024, 3, 1, 9, 0)
    labels = ["12C", "13C", "12C 14N", "12C 15N"]
    for k in range(3):
        make_im(folder / f"a_{k + 1}.im", poisson_counts(3, 4, (32, 32), mean=4.0,
                                                         seed=20 + k),
                labels=labels, analysis_date=start + dt.timedelta(minutes=10 * k),
                stage_position_um=(1200, -3400, 50), duration_s=300)
        make_im(folder / f"field_{k + 1}.im", poisson_counts(2, 4, (32, 32), mean=4.0,
                                                             seed=30 + k),
                labels=labels, raster_um=32.0, stage_position_um=(1000, -2000 + 20 * k, 50))


def test_markers_are_well_formed():
    assert not MARKER_ERRORS, "\n".join(MARKER_ERRORS)


def test_blocks_are_found():
    """The extractor sees the blocks (a broken fence pattern would make every test vacuous)."""
    pages = {block.page for block in BLOCKS}
    assert {"README.md", "docs/rois.md", "docs/ratios.md"} <= pages
    assert any(block.language == "python" and not block.compile_only for block in BLOCKS)
    assert any(block.language in SHELL and not block.compile_only for block in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_docs_block(block, page_runs, monkeypatch):
    run = page_runs[block.page]
    uses_real_files = any("../shared/data/" in earlier.code and not earlier.compile_only
                          for earlier in run.blocks[:block.index + 1])
    if uses_real_files and not SHARED_DATA.is_dir():
        pytest.skip(f"{block.page} uses the real files, not found at {SHARED_DATA}")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(run.folder)
    run.run_through(block)


SAMPLE_PAGE = """# A page

```python
x = 1
```

<!-- docs-test: compile-only (opens a window) -->
```bash
nanosims view \\
    a.im   # a comment
pip install thing
```

```toml
[[steps]]
```

~~~py
y = x + 1
~~~
"""


def test_extractor_on_a_sample_page(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(SAMPLE_PAGE)
    blocks = parse_page(page, tmp_path)
    assert [(b.index, b.line, b.language, b.compile_only) for b in blocks] == [
        (0, 3, "python", None), (1, 8, "bash", "opens a window"), (2, 18, "py", None)]
    assert blocks[0].code == "x = 1\n" and blocks[2].code == "y = x + 1\n"
    assert shell_commands(blocks[1]) == ["nanosims view      a.im   # a comment",
                                         "pip install thing"]
    (tmp_path / "b_1.im").touch()
    (tmp_path / "b_2.im").touch()
    command = nanosims_command("nanosims info b_*.im --json > out.txt  # note", tmp_path)
    assert (command.argv, command.stdout) == (["info", "b_1.im", "b_2.im", "--json"], "out.txt")
    assert nanosims_command("pip install thing", tmp_path) is None
    with pytest.raises(ValueError, match="matches no file"):
        nanosims_command("nanosims info c_*.im", tmp_path)
    assert nanosims_command("nanosims info c_*.im", tmp_path, to_run=False).argv == [
        "info", "c_*.im"]
    with pytest.raises(ValueError, match="not supported"):
        nanosims_command("nanosims info b_1.im | head", tmp_path)


@pytest.mark.parametrize("text, message", [
    ("<!-- docs-test: skip -->\n```python\nx\n```\n", "unknown docs-test directive"),
    ("<!-- docs-test: compile-only -->\n```python\nx\n```\n", "unknown docs-test directive"),
    ("<!-- docs-test: compile-only (why) -->\ntext\n```python\nx\n```\n", "right before"),
    ("<!-- docs-test: compile-only (why) -->\n```toml\nx\n```\n", "never run"),
    ("```python\nx\n```\n<!-- docs-test: compile-only (why) -->\n", "right before"),
])
def test_extractor_refuses_misplaced_or_unknown_markers(tmp_path, text, message):
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(ValueError, match=message):
        parse_page(page, tmp_path)


def test_a_failing_block_fails_and_stops_its_page(tmp_path):
    """The runner reports a block's error and does not run the page's later blocks."""
    page = tmp_path / "page.md"
    page.write_text("```python\nraise RuntimeError('broken example')\n```\n\n"
                    "```python\nx = 1\n```\n")
    blocks = parse_page(page, tmp_path)
    run = PageRun("page.md", tmp_path, blocks)
    with pytest.raises(RuntimeError, match="broken example"):
        run.run_through(blocks[0])
    with pytest.raises(pytest.fail.Exception, match="earlier block at page.md:1 failed"):
        run.run_through(blocks[1])
    assert "x" not in run.namespace


def test_compile_only_compiles_and_does_not_run(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- docs-test: compile-only (why) -->\n```python\nx = 1\n```\n\n"
                    "<!-- docs-test: compile-only (why) -->\n```python\nnot python(\n```\n")
    blocks = parse_page(page, tmp_path)
    run = PageRun("page.md", tmp_path, blocks)
    run.run_through(blocks[0])
    assert "x" not in run.namespace
    with pytest.raises(SyntaxError):
        run.run_through(blocks[1])


def test_shell_blocks_parse_or_refuse_without_running(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- docs-test: compile-only (why) -->\n```bash\nnanosims view a.im\n```\n\n"
                    "<!-- docs-test: compile-only (why) -->\n```bash\nnanosims view --no-such\n"
                    "```\n\n```bash\nnanosims view\n```\n\n```sh\nls results/\n```\n")
    # each block alone, as if first on its page
    blocks = [dataclasses.replace(block, index=0) for block in parse_page(page, tmp_path)]
    runs = [PageRun("page.md", tmp_path, [block]) for block in blocks]
    runs[0].run_through(blocks[0])  # parsed only: a.im does not exist, nothing opens
    with pytest.raises(AssertionError, match="does not parse"):
        runs[1].run_through(blocks[1])
    with pytest.raises(AssertionError, match="opens a window"):
        runs[2].run_through(blocks[2])
    with pytest.raises(AssertionError, match="not a nanosims command"):
        runs[3].run_through(blocks[3])
