"""Shared fixtures: the real files in ../shared/data, synthetic files, an open-file guard."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

# napari keeps user settings (such as the *.im reader preference) in a file; point it at
# a throw-away one before napari is imported, so tests never touch the user's settings.
os.environ.setdefault("NAPARI_CONFIG", os.path.join(tempfile.mkdtemp(prefix="napari-cfg-"),
                                                    "settings.yaml"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ORACLE_PATH = SHARED_DATA / "oracle.json"


def _oracle():
    if not ORACLE_PATH.exists():
        return {}
    return json.loads(ORACLE_PATH.read_text())["files"]


ORACLE = _oracle()
REAL_FILES = sorted(ORACLE)
needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real NanoSIMS files not found at {SHARED_DATA}")


def real_file(name: str) -> Path:
    return SHARED_DATA / name


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Generated files (the demo) go to a per-session temporary cache, never ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "nanosims-cache"
    monkeypatch.setenv("NAPARI_NANOSIMS_CACHE", str(cache))
    # Remembered widget parameters go to a fresh folder for every test.
    config = tmp_path_factory.mktemp("nanosims-config")
    monkeypatch.setenv("NAPARI_NANOSIMS_CONFIG_DIR", str(config))


@pytest.fixture
def no_leaked_files():
    """Fail if the test leaves a file of ours open (as nd2's test suite does)."""
    import gc

    import psutil

    process = psutil.Process()
    before = {f.path for f in process.open_files()}
    yield
    gc.collect()
    leaked = {f.path for f in process.open_files()} - before
    leaked = {p for p in leaked if p.endswith(".im") or ".partial-" in p}
    assert not leaked, f"files left open: {leaked}"


@pytest.fixture(scope="session")
def demo_file(tmp_path_factory):
    """The demo acquisition (seed 0) and its ground truth, written once per session."""
    from napari_nanosims import make_demo_im

    folder = tmp_path_factory.mktemp("demo")
    truth = make_demo_im(folder / "cells_01.im", seed=0)
    return truth


@pytest.fixture
def im_factory(tmp_path):
    """Write a synthetic ``.im`` file: ``im_factory(name, counts=None, **options) -> path``.

    ``name`` is relative to the test's ``tmp_path`` (an absolute path is taken as is); the
    options are those of :func:`napari_nanosims.testing.factory.make_im` (seeded Poisson
    counts unless ``counts`` is given).
    """
    from napari_nanosims.testing.factory import make_im

    def make(name="a.im", counts=None, **options):
        return make_im(tmp_path / name, counts, **options)

    return make


def pytest_report_header(config):
    return [f"shared data: {SHARED_DATA} ({'found' if SHARED_DATA.is_dir() else 'MISSING'})",
            f"CI={os.environ.get('CI', '')}"]
