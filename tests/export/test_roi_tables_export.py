"""export/tables.py: the per-ROI and per-class tables and their sidecar, written together,
never over existing files unless asked."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from napari_nanosims.export._files import OutputExistsError
from napari_nanosims.export.tables import table_outputs, write_roi_tables


@pytest.fixture
def tables():
    per_roi = pd.DataFrame({"roi": [1, 2], "class": ["control", None],
                            "quantity": ["13C/12C"] * 2, "value": [0.011, 0.012],
                            "sigma": [1e-4, 2e-4]})
    per_class = pd.DataFrame({"quantity": ["13C/12C"], "test": ["summary"],
                              "class": ["control"], "n": [1], "mean": [0.011]})
    return per_roi, per_class


def test_names_follow_the_csv_name(tmp_path):
    names = table_outputs(tmp_path / "run.2024.csv", classes=True, parquet=True)
    assert {kind: path.name for kind, path in names.items()} == {
        "roi csv": "run.2024.csv", "sidecar": "run.2024.json",
        "class csv": "run.2024_classes.csv", "roi parquet": "run.2024.parquet",
        "class parquet": "run.2024_classes.parquet"}
    assert [p.name for p in table_outputs(tmp_path / "t", classes=False,
                                          parquet=False).values()] == ["t.csv", "t.json"]


def test_written_together_and_never_over_existing_files(tmp_path, tables):
    per_roi, per_class = tables
    written = write_roi_tables(tmp_path / "t.csv", per_roi, per_class,
                               {"file": "a.im", "classes": {"1": "control"}}, parquet=False)
    assert [p.name for p in written] == ["t.csv", "t.json", "t_classes.csv"]
    back = pd.read_csv(written[0])
    pd.testing.assert_frame_equal(back.drop(columns="class"), per_roi.drop(columns="class"))
    assert back["class"].iloc[0] == "control" and back["class"].isna().iloc[1]
    pd.testing.assert_frame_equal(pd.read_csv(written[2]), per_class)
    sidecar = json.loads(written[1].read_text())
    assert sidecar["file"] == "a.im" and sidecar["classes"] == {"1": "control"}
    assert sidecar["tables"] == {"roi csv": "t.csv", "class csv": "t_classes.csv"}
    # one companion exists: nothing is written, and it says which
    (tmp_path / "u_classes.csv").write_text("mine")
    with pytest.raises(OutputExistsError, match="u_classes.csv"):
        write_roi_tables(tmp_path / "u.csv", per_roi, per_class, parquet=False)
    assert not (tmp_path / "u.csv").exists() and not (tmp_path / "u.json").exists()
    assert (tmp_path / "u_classes.csv").read_text() == "mine"
    before = written[0].read_bytes()
    with pytest.raises(OutputExistsError):
        write_roi_tables(tmp_path / "t.csv", per_roi.iloc[:1], parquet=False)
    assert written[0].read_bytes() == before
    write_roi_tables(tmp_path / "t.csv", per_roi.iloc[:1], per_class, overwrite=True,
                     parquet=False)
    assert len(pd.read_csv(written[0])) == 1
    assert not list(tmp_path.glob("*.partial-*"))
