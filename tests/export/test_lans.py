"""LANS-compatible outputs, read back as lans2r and LANS read them."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.io import loadmat

from napari_nanosims import make_demo_im, run_recipe, write_lans
from napari_nanosims.analysis.rois import depth_profile, roi_table
from napari_nanosims.export.lans import DAC_COLUMNS, lans_name
from napari_nanosims.model import Acquisition
from napari_nanosims.steps.recipe import Recipe


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
    # Total counts in full (aligned counts are fractional after sub-pixel shifts).
    np.testing.assert_allclose(rows[:, 3], counts["value"], rtol=1e-11)
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


# -- lans2r's reading, mirrored -------------------------------------------------------------
# lans2r 1.2 (KopfLab/lans2r, R/read_data_files.R), read_roi_data(ion_data_only = TRUE,
# load_zstacks = TRUE), which load_LANS_summary() calls with these defaults:
#   dac_pattern    <- "^([0-9A-Z]+)\\.dac$"
#   zstack_pattern <- "^([0-9A-Z]+)\\-z.dat$"
#   stop("there are no z-stack ion .dat files ...") when no file matches zstack_pattern.
# read_roi_ion_data_file: read.table(file, header = TRUE, skip = 1, fill = TRUE,
#   comment.char = "", sep = "\t", check.names = FALSE); needs the columns
#   "# i", "Xi", "Yi", "MEANi", "Poiss_Ei", "Poiss_%Ei", "SIZEi", "PIXELSi", "LWratio";
#   value = MEANi, plane = "all", ROI = "# i".
# read_roi_ion_zstack_data_file: read.table(file, header = FALSE, skip = 3,
#   comment.char = "", sep = "\t"); V1 is the plane; the other columns are gathered in
#   order and numbered ROI = rep(seq(1, n()/2), each = 2): even V = value, odd V = sigma.
# calculate_ratios(c(`m`, `M`)): value m / M (iso.R), per ROI and plane.
_LANS2R_DAC = re.compile(r"^([0-9A-Z]+)\.dac$")
_LANS2R_ZSTACK = re.compile(r"^([0-9A-Z]+)\-z.dat$")
_LANS2R_DAC_COLUMNS = ("# i", "Xi", "Yi", "MEANi", "Poiss_Ei", "Poiss_%Ei", "SIZEi",
                       "PIXELSi", "LWratio")


def _lans2r_read_roi_data(dat_folder):
    """{(ion, plane, roi): value} as lans2r's read_roi_data() with its defaults reads it,
    with plane 'all' from the .dac files and '1', '2', ... from the -z.dat files."""
    names = sorted(p.name for p in dat_folder.iterdir())
    dac_files = [n for n in names if _LANS2R_DAC.match(n)]
    zstack_files = [n for n in names if _LANS2R_ZSTACK.match(n)]
    assert dac_files, "lans2r: there are no ion .dac files in this folder"
    assert zstack_files, "lans2r: there are no z-stack ion .dat files in this folder"
    data, rois = {}, {}
    for name in dac_files:
        ion = _LANS2R_DAC.match(name).group(1)
        lines = (dat_folder / name).read_text(encoding="latin-1").splitlines()[1:]
        header = lines[0].split("\t")
        assert not set(_LANS2R_DAC_COLUMNS) - set(header), header
        for line in lines[1:]:
            fields = line.split("\t")
            assert len(fields) == len(header), line  # else read.table shifts columns
            row = dict(zip(header, fields, strict=True))
            roi = int(row["# i"])
            data[ion, "all", roi] = float(row["MEANi"])
            rois.setdefault(ion, set()).add(roi)
    for name in zstack_files:
        ion = _LANS2R_ZSTACK.match(name).group(1)
        lines = (dat_folder / name).read_text(encoding="latin-1").splitlines()[3:]
        for line in lines:
            fields = line.split("\t")
            # An empty field (a trailing tab) would be an NA column and shift the pairs.
            assert all(fields) and len(fields) % 2 == 1, line
            plane = fields[0]
            for position, (value, _sigma) in enumerate(
                    zip(fields[1::2], fields[2::2], strict=True)):
                roi = position + 1  # lans2r numbers the ROIs by column position
                assert roi in rois[ion]  # left_join with the .dac rows finds it
                data[ion, plane, roi] = float(value)
    return data


def _counts_acquisition(seed, cells, n_frames=4):
    """12C2, 12C 13C and 13C counts with a 13C atom fraction of 1.07 % (natural) in ROI
    cells 1 and 2 % elsewhere in ROIs; 12C2 about 300 counts per pixel per frame in cells."""
    rng = np.random.default_rng(seed)
    c2 = np.where(cells > 0, 300.0, 20.0)
    fraction = np.where(cells == 1, 0.0107, 0.02)
    dimer = c2 * 2 * fraction / (1 - fraction)  # 12C13C / 12C2 = 2 f / (1 - f)
    c13 = c2 * fraction  # any third mass
    expected = np.stack([c2, dimer, c13])
    counts = rng.poisson(np.broadcast_to(expected, (n_frames,) + expected.shape))
    return Acquisition.from_arrays(counts.astype(np.float64), ["12C2", "12C 13C", "13C"],
                                   pixel_size_um=0.1, dwell_time_us=1000.0)


def _cells(shape=(24, 24), ids=(1, 2)):
    cells = np.zeros(shape, np.int32)
    cells[3:10, 4:12] = ids[0]
    cells[14:21, 12:22] = ids[1]
    return cells


def _roi_sums(cells, image, rois):
    """Sum of ``image`` over each ROI id in ``rois`` (written out here, not the library's)."""
    return np.array([image[cells == roi].sum() for roi in rois])


def test_lans2r_default_load_gets_per_mass_planes_and_ratios(tmp_path):
    """lans2r's load_LANS_summary() with its defaults finds one <mass>-z.dat per mass;
    its per-plane, per-ROI counts are the sums of the counts, and calculate_ratios on them
    gives the ROI table's ratio of summed counts, per ROI ('all') and per plane."""
    cells = _cells()
    acquisition = _counts_acquisition(5, cells).replace(roi_labels=cells)
    # Dead-time corrected counts are fractional: they must be written in full.
    result = run_recipe(acquisition, Recipe((("correct_dead_time", {}),
                                             ("ratio", {"expression": "12C13C/12C2"}),
                                             ("roi_table", {"expressions": "13C/12C2"}))))
    counts = np.asarray(result.counts, dtype=np.float64)
    assert not np.allclose(counts, np.round(counts))
    folder = tmp_path / "analysis1"
    write_lans(result, folder)
    data = _lans2r_read_roi_data(folder / "dat")
    ions = {"12C2": 0, "12C13C": 1, "13C": 2}
    assert {key[0] for key in data} == set(ions)  # the expressions are not read as ions
    for ion, channel in ions.items():
        for roi in (1, 2):
            assert data[ion, "all", roi] == pytest.approx(
                _roi_sums(cells, counts[:, channel].sum(axis=0), [roi])[0], rel=1e-11)
            for frame in range(result.n_frames):
                assert data[ion, str(frame + 1), roi] == pytest.approx(
                    _roi_sums(cells, counts[frame, channel], [roi])[0], rel=1e-11)
    # calculate_ratios(c(`12C13C`, `12C2`)) against our ROI table and depth profile.
    labels = result.roi_labels
    table = roi_table(result, labels, ["12C13C/12C2"])
    ours = table[table["quantity"] == "12C 13C/12C2"].set_index("roi")["value"]
    profile = depth_profile(result, labels, "12C13C/12C2")
    for roi in (1, 2):
        assert data["12C13C", "all", roi] / data["12C2", "all", roi] == pytest.approx(
            ours[roi], rel=1e-11)
        for frame in range(result.n_frames):
            mine = profile[(profile.roi == roi) & (profile.frame == frame)]["value"].item()
            assert data["12C13C", str(frame + 1), roi] / data["12C2", str(frame + 1), roi] \
                == pytest.approx(mine, rel=1e-11)
    # The expressions have their own files, which lans2r reads only without ion_data_only.
    assert (folder / "dat" / "12C13C-12C2-z.dat").exists()
    assert (folder / "dat" / "13C-12C2.dac").exists()


def test_dimer_ratio_is_written_as_the_ratio(tmp_path):
    """12C13C/(2*12C2), the Ratio tab's dimer preset, from a ratio step (its parsed
    expression) and from a roi_table step: the .dac and -z.dat files hold the ratio of
    the summed counts (about 0.011), not 12C13C/2*12C2."""
    cells = _cells()
    acquisition = _counts_acquisition(8, cells).replace(roi_labels=cells)
    result = run_recipe(acquisition, Recipe((
        ("ratio", {"expression": "12C13C/(2*12C2)"}),
        ("roi_table", {"expressions": "100*12C13C/(12C13C+2*12C2); 12C13C/(12C2*2)"}))))
    folder = tmp_path / "dimers"
    write_lans(result, folder)
    counts = np.asarray(result.counts, dtype=np.float64)
    dimer = [_roi_sums(cells, counts[k, 1], (1, 2)) for k in range(result.n_frames)]
    c2 = [_roi_sums(cells, counts[k, 0], (1, 2)) for k in range(result.n_frames)]
    a, b = np.sum(dimer, axis=0), np.sum(c2, axis=0)
    expected = {"12C13C-(2-12C2)": a / (2 * b),
                "100-12C13C-(12C13C+2-12C2)": 100 * a / (a + 2 * b),
                "12C13C-(12C2-2)": a / (b * 2)}
    for name, values in expected.items():
        _, columns, rows = _read_dac(folder / "dat" / f"{name}.dac")
        np.testing.assert_allclose(rows[:, 3], values, rtol=2e-4)
    ratio = a / (2 * b)
    assert 0.0100 < ratio[0] < 0.0117  # 1.07 % 13C in ROI 1
    depth = (folder / "dat" / "12C13C-(2-12C2)-z.dat").read_text().splitlines()
    assert depth[0] == "# dimers: 12C 13C/(2*12C2)"
    planes = np.array([line.split("\t") for line in depth[3:]], dtype=float)
    np.testing.assert_array_equal(planes[:, 0], np.arange(1, result.n_frames + 1))
    per_plane = np.array(dimer) / (2 * np.array(c2))
    np.testing.assert_allclose(planes[:, [1, 3]], per_plane, rtol=2e-3)  # %.3e... %.4e


def test_roi_ids_are_numbered_as_lans_numbers_them(tmp_path):
    """ROI ids with gaps (drawn ROIs, one deleted) are written 1..N in order in every file,
    since lans2r numbers a depth profile's ROIs by column position."""
    cells = _cells(ids=(2, 5))
    acquisition = _counts_acquisition(9, cells).replace(roi_labels=cells)
    folder = tmp_path / "gaps"
    write_lans(acquisition, folder, expressions=["13C/12C2"])
    data = _lans2r_read_roi_data(folder / "dat")
    counts = np.asarray(acquisition.counts, dtype=np.float64)
    for lans_roi, our_roi in ((1, 2), (2, 5)):
        assert data["13C", "all", lans_roi] == _roi_sums(cells, counts[:, 2].sum(axis=0),
                                                         [our_roi])[0]
        assert data["13C", "3", lans_roi] == _roi_sums(cells, counts[2, 2], [our_roi])[0]
    mask = loadmat(folder / "mat" / "ROIs.mat")["Maskimg"]
    np.testing.assert_array_equal(mask, np.select([cells == 2, cells == 5], [1, 2], 0))


def test_bad_expressions_are_refused(tmp_path):
    cells = _cells()
    acquisition = _counts_acquisition(1, cells).replace(roi_labels=cells)
    with pytest.raises(ValueError, match="no mass"):
        write_lans(acquisition, tmp_path / "a", expressions=["2*3"])
    with pytest.raises(ValueError, match="same LANS file name|both be written"):
        write_lans(acquisition, tmp_path / "b", expressions=["13C/12C2", "13C*12C2"])
    with pytest.raises(ValueError, match="unknown mass label"):
        write_lans(acquisition, tmp_path / "c", expressions=["15N/14N"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("labels, expressions, clash", [
    (["12C2", "12C 13C", "12C13C"], None, "mass '12C 13C' and mass '12C13C'"),
    (["12C2", "12C 13C", "13C"], ["13C/12C2", "13C*12C2"],
     "expression '13C/12C2' and expression '13C\\*12C2'"),
    (["12C2", "13C", "13C-12C2"], ["13C/12C2"], "mass '13C-12C2' and expression '13C/12C2'"),
])
def test_names_that_mangle_to_one_file_are_refused_before_writing(tmp_path, labels,
                                                                  expressions, clash):
    """Two masses (or expressions) whose LANS file names are equal would overwrite each
    other's data: refused, naming both, with nothing written."""
    counts = np.random.default_rng(0).poisson(30, size=(2, 3, 24, 24)).astype(float)
    acquisition = Acquisition.from_arrays(counts, labels).replace(roi_labels=_cells())
    folder = tmp_path / "clash"
    with pytest.raises(ValueError, match=f"{clash} would both be written as"):
        write_lans(acquisition, folder, expressions=expressions)
    assert not folder.exists()


def test_masses_differing_only_in_case_are_one_file_on_windows_and_macos(tmp_path):
    counts = np.random.default_rng(1).poisson(30, size=(2, 2, 24, 24)).astype(float)
    acquisition = Acquisition.from_arrays(counts, ["13C", "13c"]).replace(
        roi_labels=_cells())
    with pytest.raises(ValueError, match="mass '13C' and mass '13c' would both be written "
                                         "as '13c'"):
        write_lans(acquisition, tmp_path / "case", expressions=[])
    assert not (tmp_path / "case").exists()
