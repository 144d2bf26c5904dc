"""LANS-compatible outputs, read back as lans2r and LANS read them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import loadmat

from napari_nanosims import make_demo_im, run_recipe
from napari_nanosims.analysis.rois import depth_profile, roi_table
from napari_nanosims import write_lans
from napari_nanosims.export.lans import DAC_COLUMNS, lans_name
from napari_nanosims.processing.recipe import Recipe


def _read_dac(path):
    """What lans2r does: skip the first comment line, take the column names from the
    second (its '# ' removed), then one whitespace-separated row per ROI."""
    lines = path.read_text(encoding="latin-1").splitlines()
    columns = lines[1].lstrip("#").split()
    rows = [line.split() for line in lines[2:] if line.strip()]
    return lines[0], columns, np.array(rows, dtype=float)


@pytest.fixture
def analysed(tmp_path):
    demo = make_demo_im(tmp_path / "cells.im", n_frames=6, seed=6)
    recipe = Recipe((("align_frames", {}), ("sum_frames", {}),
                     ("ratio", {"expression": "12C 15N/12C 14N"}), ("segment", {}),
                     ("roi_table", {})))
    return run_recipe(demo["path"], recipe)


def test_dac_mat_and_depth_files(tmp_path, analysed):
    folder = tmp_path / "cells"
    written = write_lans(analysed, folder)
    labels = analysed.roi_labels
    table = roi_table(analysed, labels, ["12C 15N/12C 14N"])
    n_rois = int(labels.max())
    # lans2r reads ion files matching ^[0-9A-Z]+\.dac$ and checks these column names.
    ion = folder / "dat" / "12C14N.dac"
    assert ion.name.removesuffix(".dac").isalnum() and ion.name[:-4] == ion.name[:-4].upper()
    first, columns, rows = _read_dac(ion)
    assert first == "# cells : 12C14N" and tuple(columns) == DAC_COLUMNS
    counts = table[table["quantity"] == "12C 14N"]
    np.testing.assert_array_equal(rows[:, 0], counts["roi"])
    np.testing.assert_array_equal(rows[:, 3], np.round(counts["value"]))  # total counts
    np.testing.assert_array_equal(rows[:, 7], counts["n_pixels"])
    np.testing.assert_allclose(rows[:, 6], counts["equivalent_diameter_um"], atol=1e-4)
    # Centroids in 1-based pixels, as LANS writes them.
    yy, xx = np.indices(labels.shape)
    first_roi = labels == rows[0, 0]
    assert rows[0, 1] == pytest.approx(xx[first_roi].mean() + 1, abs=0.01)
    assert rows[0, 2] == pytest.approx(yy[first_roi].mean() + 1, abs=0.01)
    assert np.all(rows[:, 8] >= 1)  # length over width
    ratio_file = folder / "dat" / f"{lans_name('12C 15N/12C 14N')}.dac"
    assert ratio_file.name == "12C15N-12C14N.dac"
    _, columns, ratio_rows = _read_dac(ratio_file)
    expected = table[table["quantity"] == "12C 15N/12C 14N"]
    np.testing.assert_allclose(ratio_rows[:, 3], expected["value"], rtol=1e-4)
    np.testing.assert_allclose(ratio_rows[:, 4], expected["sigma"], rtol=1e-4)
    assert "e" in ratio_file.read_text().splitlines()[2].split("\t")[3]  # %.4e
    # Depth profile: a row per plane, value and error per ROI.
    depth = (folder / "dat" / "12C15N-12C14N-z.dat").read_text().splitlines()
    assert depth[0] == "# cells: 12C 15N/12C 14N" and depth[2].startswith("# plane")
    profile = depth_profile(analysed, labels, "12C 15N/12C 14N")
    values = np.array([line.split() for line in depth[3:]], dtype=float)
    assert values.shape == (analysed.n_frames, 1 + 2 * n_rois)
    first_roi_profile = profile[profile["roi"] == 1].sort_values("frame")
    np.testing.assert_allclose(values[:, 1], first_roi_profile["value"], rtol=1e-3)
    # MAT files as lans2r's read_map_data reads them.
    mat = loadmat(folder / "mat" / "12C14N.mat")
    np.testing.assert_allclose(mat["IM"], analysed.sums[2])
    np.testing.assert_array_equal(mat["CELLS"], labels)
    assert mat["xyscale"].item() == pytest.approx(analysed.header.raster_um)
    assert mat["noplanes"].item() == analysed.n_frames
    np.testing.assert_allclose(mat["vscale"], [[analysed.sums[2].min(), analysed.sums[2].max()]])
    np.testing.assert_array_equal(loadmat(folder / "mat" / "ROIs.mat")["Maskimg"], labels)
    np.testing.assert_allclose(loadmat(folder / "mat" / "xyalign.mat")["xyalign"],
                               analysed.translations)
    assert set(written) >= {"dat/12C14N.dac", "mat/12C14N.mat"}


def test_never_overwrites_and_needs_rois(tmp_path, analysed):
    folder = tmp_path / "cells"
    write_lans(analysed, folder)
    before = (folder / "dat" / "12C14N.dac").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        write_lans(analysed, folder)
    assert (folder / "dat" / "12C14N.dac").read_bytes() == before
    write_lans(analysed, folder, overwrite=True)
    assert not list(folder.rglob("*.partial-*"))
    with pytest.raises(ValueError, match="no ROIs"):
        write_lans(analysed.replace(roi_labels=None), tmp_path / "other")


def test_lans_names():
    assert lans_name("12C 15N/12C 14N") == "12C15N-12C14N"
    assert lans_name("13C/(12C+13C)*100") == "13C-(12C+13C)-100"
    assert lans_name("1.5*12C") == "1d5-12C"


def test_export_steps_in_a_recipe_through_the_cli(tmp_path, capsys):
    """write_nrrd, write_ome_tiff and write_lans as recipe steps: into --out by default,
    never over existing files unless --overwrite."""
    import json

    from napari_nanosims.cli import main
    from napari_nanosims.export.nrrd import read_nrrd
    from napari_nanosims.export.ometiff import read_ome_tiff

    demo = make_demo_im(tmp_path / "cells.im", n_frames=5, seed=7)
    recipe = Recipe((("align_frames", {}), ("sum_frames", {}), ("segment", {}),
                     ("roi_table", {"expressions": "13C/12C"}),
                     ("write_nrrd", {}), ("write_ome_tiff", {}), ("write_lans", {}))
                    ).save(tmp_path / "export.toml")
    out = tmp_path / "o"
    assert main(["process", str(demo["path"]), "--out", str(out), "--recipe", str(recipe)]) == 0
    assert read_nrrd(out / "cells.nrrd").labels == tuple(demo["labels"])
    assert read_ome_tiff(out / "cells.ome.tif")["axes"] == "TCYX"
    assert (out / "cells" / "dat" / "13C-12C.dac").exists()
    assert (out / "cells" / "mat" / "12C14N.mat").exists()
    record = json.loads((out / "cells_processing.json").read_text())
    assert [s["parameters"].get("folder") for s in record["steps"]
            if s["step"].startswith("write_")] == ["", "", ""]  # replays follow --out
    capsys.readouterr()
    before = (out / "cells.nrrd").stat().st_mtime_ns
    assert main(["process", str(demo["path"]), "--out", str(out), "--recipe", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert "exist" in err and "--overwrite" in err
    assert (out / "cells.nrrd").stat().st_mtime_ns == before
    assert main(["process", str(demo["path"]), "--out", str(out), "--recipe", str(recipe),
                 "--overwrite"]) == 0
