"""``nanosims process`` with the steps on the ROI table: per-ROI tables with classes, a
per-class table per file, and both across all files with a ``file`` column."""

from __future__ import annotations

import pandas as pd
import pytest

from napari_nanosims import make_demo_im
from napari_nanosims.cli.main import main

RECIPE = """
[[steps]]
step = "align_frames"
[[steps]]
step = "segment"
[[steps]]
step = "roi_table"
[steps.parameters]
expressions = "12C15N/12C14N; 100*12C15N/(12C14N+12C15N)"
[[steps]]
step = "classify"
[steps.parameters]
rois = "1-4: control"
rule = "12C15N/12C14N > 0.006"
rule_class = "labelled"
[[steps]]
step = "normalise"
[steps.parameters]
quantity = "12C15N/12C14N"
[[steps]]
step = "assimilation"
[steps.parameters]
fraction = "100*12C15N/(12C14N+12C15N)"
natural = 0.3663
substrate = 98.0
hours = 24.0
[[steps]]
step = "compare_classes"
[steps.parameters]
quantity = "100*12C15N/(12C14N+12C15N) k"
"""


@pytest.mark.slow
def test_process_writes_class_tables_per_file_and_across_files(tmp_path):
    paths = [make_demo_im(tmp_path / f"cells_{k}.im", seed=k, n_frames=3)["path"]
             for k in range(2)]
    recipe = tmp_path / "classes.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "out"
    assert main(["process", *map(str, paths), "--recipe", str(recipe), "--out", str(out),
                 "--workers", "1"]) == 0
    per_file = [pd.read_csv(out / f"cells_{k}_class_table.csv") for k in range(2)]
    rois = [pd.read_csv(out / f"cells_{k}_roi_table.csv") for k in range(2)]
    for table, classes in zip(rois, per_file, strict=True):
        assert {"control", "labelled"} <= set(table["class"].dropna())
        assert (table["quantity"] == "100*12C 15N/(12C 14N+12C 15N) k").any()
        summary = classes[classes["test"] == "summary"].set_index("class")
        counted = table[table["quantity"] == "12C 15N/12C 14N"].groupby("class").size()
        assert summary["n"].to_dict() == counted.to_dict()
    combined = pd.read_csv(out / "class_table.csv")
    assert combined.columns[0] == "file"
    assert set(combined["file"]) == {str(p) for p in paths} | {"all files"}
    across = combined[(combined["file"] == "all files") & (combined["test"] == "summary")]
    both = sum(c[c["test"] == "summary"].set_index("class")["n"] for c in per_file)
    assert across.set_index("class")["n"].to_dict() == both.to_dict()
    assert {"Welch t", "one-way ANOVA", "Kruskal-Wallis", "Levene"} <= set(combined["test"])
    every_roi = pd.read_csv(out / "roi_table.csv")
    assert list(every_roi.columns[:3]) == ["file", "roi", "class"]
