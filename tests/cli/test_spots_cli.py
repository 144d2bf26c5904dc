"""``nanosims spots`` and ``nanosims cache`` on the command line."""

from __future__ import annotations

import pandas as pd
import pytest

from napari_nanosims.cli.main import main
from tests.conftest import SHARED_DATA, real_file


def test_spots_writes_one_table(tmp_path, capsys):
    source = real_file("2020-01-17-TREASURE_2.is")
    if not source.exists():
        pytest.skip(f"real isotope file not found in {SHARED_DATA}")
    out = tmp_path / "table.csv"
    status = main(["spots", str(source), str(tmp_path / "missing.is"), "--expr", "34S/32S",
                   "--standard", "VCDT 34S/32S", "--out", str(out)])
    assert status == 1  # one file could not be read, the other is in the table
    assert "missing.is" in capsys.readouterr().err
    table = pd.read_csv(out)
    assert set(table["block"]) == {"all"} | {str(b) for b in range(15)}
    assert table.loc[table["block"] == "all", "cycles"].item() == 150
    assert main(["spots", str(source), "--expr", "34S/32S", "--out", str(out)]) == 2


def test_cache_command_says_where(capsys):
    assert main(["cache"]) == 0
    assert "decompressed" in capsys.readouterr().out
