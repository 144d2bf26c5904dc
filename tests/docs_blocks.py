"""The fenced code blocks of the Markdown documentation, and how to run them.

``tests/test_docs_code.py`` runs every ``python`` block and the ``nanosims`` lines of every
``bash``/``sh`` block of README.md and docs/*.md. One HTML comment right before a fence
changes that, and nothing else does (no guessing from the code)::

    <!-- docs-test: compile-only (opens a window) -->

A compile-only Python block is compiled, not run; in a compile-only shell block every
``nanosims`` command is parsed by the command line's parser, not run. The reason in
parentheses is required, so that the page says why.
"""

from __future__ import annotations

import contextlib
import glob
import io
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

PYTHON = frozenset({"python", "py"})
SHELL = frozenset({"bash", "sh", "shell"})

_FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<language>[^\s`]*)")
_COMMENT = re.compile(r"^\s*<!--\s*docs-test:(?P<directive>.*?)-->\s*$")
_COMPILE_ONLY = re.compile(r"^\s*compile-only\s*\((?P<reason>[^()]+)\)\s*$")
# shell syntax that the runner does not imitate; a command using it is refused, not guessed
_UNSUPPORTED = frozenset({"|", "||", "&&", ";", "&", "<", ">>", "2>", "$("})


@dataclass(frozen=True)
class Block:
    """One fenced block of a Markdown page."""

    page: str          # path relative to the repository, e.g. 'docs/rois.md'
    index: int         # 0-based among the page's Python and shell blocks
    line: int          # 1-based line of the opening fence
    language: str
    code: str
    compile_only: str | None  # the reason, when marked compile-only

    @property
    def id(self) -> str:
        kind = "compile-only" if self.compile_only else "run"
        return f"{self.page}:{self.line}:{self.language}:{kind}"

    @property
    def filename(self) -> str:
        """The name tracebacks show for this block's code."""
        return f"{self.page}, block at line {self.line}"


def parse_page(path: Path, root: Path) -> list[Block]:
    """The Python and shell blocks of one page, in order; other languages are left out.

    Raises
    ------
    ValueError
        A ``docs-test`` comment that is not a known directive, or that is not on the
        line right before a fence (blank lines in between are allowed).
    """
    page = path.relative_to(root).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    pending: tuple[int, str] | None = None  # (line, reason) of a marker waiting for a fence
    number = 0
    while number < len(lines):
        text = lines[number]
        comment = _COMMENT.match(text)
        fence = _FENCE.match(text)
        if comment:
            directive = _COMPILE_ONLY.match(comment["directive"])
            if directive is None:
                raise ValueError(f"{page}:{number + 1}: unknown docs-test directive "
                                 f"{comment['directive'].strip()!r}; the one known is "
                                 "'compile-only (reason)'")
            pending = (number + 1, directive["reason"].strip())
            number += 1
            continue
        if fence is None:
            if text.strip() and pending is not None:
                raise ValueError(f"{page}:{pending[0]}: a docs-test comment must be right "
                                 "before a fenced block")
            number += 1
            continue
        closing = fence["fence"]
        body_start = number + 1
        number += 1
        while number < len(lines) and not lines[number].startswith(closing):
            number += 1
        language = fence["language"].lower()
        if language in PYTHON | SHELL:
            blocks.append(Block(page, len(blocks), body_start, language,
                                "\n".join(lines[body_start:number]) + "\n",
                                pending[1] if pending else None))
        elif pending is not None:
            raise ValueError(f"{page}:{pending[0]}: docs-test marks a {language or 'plain'} "
                             "block, which is never run")
        pending = None
        number += 1  # past the closing fence
    if pending is not None:
        raise ValueError(f"{page}:{pending[0]}: a docs-test comment must be right before a "
                         "fenced block")
    return blocks


def shell_commands(block: Block) -> list[str]:
    """The block's commands: backslash continuations joined, blank lines left out."""
    commands: list[str] = []
    current = ""
    for text in block.code.splitlines():
        if text.rstrip().endswith("\\"):
            current += text.rstrip()[:-1] + " "
            continue
        current += text
        if current.strip():
            commands.append(current.strip())
        current = ""
    if current.strip():
        commands.append(current.strip())
    return commands


def check_shell_syntax(block: Block) -> None:
    """``bash -n``: the block parses as a shell script (nothing is run)."""
    done = subprocess.run(["bash", "-n"], input=block.code, text=True, capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise AssertionError(f"{block.filename}: bash -n says:\n{done.stderr}")


@dataclass(frozen=True)
class NanosimsCommand:
    """A ``nanosims`` command line of a shell block, split as the shell would."""

    text: str
    argv: list[str]         # after 'nanosims', globs expanded
    stdout: str | None      # the file of '> file', if any


def nanosims_command(text: str, cwd: Path, *, to_run: bool = True) -> NanosimsCommand | None:
    """Split one shell command; ``None`` when it does not start with ``nanosims``.

    Globs (``*``) are expanded in ``cwd`` as bash would. When the command is to run, one
    that matches nothing is an error (bash would pass it on unchanged, and the command
    would fail less clearly); when it is only parsed, it is passed on unchanged.
    ``> file`` is the only redirection understood; any other shell syntax is refused.
    """
    words = shlex.split(text, comments=True)
    if not words or words[0] != "nanosims":
        return None
    stdout = None
    if ">" in words:
        at = words.index(">")
        if at != len(words) - 2:
            raise ValueError(f"{text!r}: '>' must be followed by one file name, last")
        stdout = words[-1]
        words = words[:at]
    argv: list[str] = []
    for word in words[1:]:
        if word in _UNSUPPORTED or word.startswith("$("):
            raise ValueError(f"{text!r}: shell syntax {word!r} is not supported here")
        if "*" in word:
            matches = sorted(glob.glob(word, root_dir=cwd))
            if not matches and to_run:
                raise ValueError(f"{text!r}: {word!r} matches no file in the example folder")
            argv.extend(matches or [word])
        else:
            argv.append(word)
    return NanosimsCommand(text, argv, stdout)


def parse_nanosims(command: NanosimsCommand) -> None:
    """Parse a command with the command line's parser, without running it."""
    from napari_nanosims.cli.main import build_parser

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            build_parser().parse_args(command.argv)
    except SystemExit as exc:
        raise AssertionError(f"{command.text!r} does not parse:\n{stderr.getvalue()}") from exc


def run_nanosims(command: NanosimsCommand, cwd: Path) -> str:
    """Run a command in this process (``cli.main.main``); return its standard output.

    Raises AssertionError with the command's output when its exit status is not 0.
    """
    from napari_nanosims.cli.main import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main(command.argv)
        except SystemExit as exc:  # argparse errors
            status = exc.code
    if status != 0:
        raise AssertionError(f"{command.text!r} exited with {status}:\n"
                             f"{stdout.getvalue()}\n{stderr.getvalue()}")
    if command.stdout is not None:
        (cwd / command.stdout).write_text(stdout.getvalue(), encoding="utf-8")
    return stdout.getvalue()
