"""Publication figures of ratio images (issue 19, item 18): the PNG of ``nanosims ratio``
and of the Ratio tab carries a colour bar (quantity, unit, range) and a scale bar in µm;
the HSI display comes with its ratio scale."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")


def _derived(value, pixel_um=0.1, numerator=True, unit=""):
    from napari_nanosims.analysis.ratios import DerivedImage

    value = np.asarray(value, float)
    ones = np.ones_like(value)
    return DerivedImage(value=value, sigma=0.1 * ones, expression="13C/12C", unit=unit,
                        channels_used=("13C", "12C"), pixel_size_um=pixel_um, history=(),
                        numerator=value * 100 if numerator else None,
                        denominator=ones * 100 if numerator else None)


def _near(colour, expected, tolerance=6):
    return np.all(np.abs(np.asarray(colour[:3], float) - np.asarray(expected[:3], float))
                  <= tolerance)


def test_scale_bar_length_is_a_round_quarter_of_the_field():
    from napari_nanosims.export.figure import scale_bar_length_um

    assert scale_bar_length_um(20.0) == 5.0  # 20/4 = 5
    assert scale_bar_length_um(50.0) == 10.0  # 12.5 -> 10
    assert scale_bar_length_um(7.0) == 1.0  # 1.75 -> 1
    assert scale_bar_length_um(3.0) == 0.5  # 0.75 -> 0.5
    with pytest.raises(ValueError, match="field width"):
        scale_bar_length_um(0.0)


def test_colormap_figure_has_the_image_a_colour_bar_and_a_scale_bar(tmp_path):
    from imageio.v3 import imread
    from matplotlib import colormaps

    from napari_nanosims.export.figure import write_ratio_figure

    # left half at the low end of the range, right half at the high end, one NaN corner
    value = np.zeros((64, 80))
    value[:, 40:] = 2.0
    value[:8, :8] = np.nan
    derived = _derived(value, pixel_um=0.25)  # a field of 20 µm: a 5 µm bar = 20 px
    described = write_ratio_figure(derived, tmp_path / "f.png", value_range=(0.0, 2.0))
    picture = imread(tmp_path / "f.png")
    assert picture.shape[0] > 64 and picture.shape[1] > 80 + 40
    assert described["label"] == "13C/12C (ratio)" and described["range"] == (0.0, 2.0)
    cividis = colormaps["cividis"]
    low, high = np.round(np.array(cividis(0.0)) * 255), np.round(np.array(cividis(1.0)) * 255)
    r0, r1, c0, c1 = described["image"]
    zoom = (c1 - c0) / 80
    middle = (r0 + r1) // 2
    assert _near(picture[middle, c0 + int(20 * zoom)], low)
    assert _near(picture[middle, c0 + int(60 * zoom)], high)
    assert _near(picture[r0 + int(2 * zoom), c0 + int(2 * zoom)], (0, 0, 0))  # NaN: black
    # the colour bar: the high end at the top, the low end at the bottom
    r0, r1, c0, c1 = described["colorbar"]
    column = (c0 + c1) // 2
    assert c0 > described["image"][3]  # right of the image
    assert _near(picture[r0 + 3, column], high) and _near(picture[r1 - 3, column], low)
    # the scale bar: 5 µm = 20 image pixels, white, inside the image
    assert described["scale_bar_um"] == 5.0
    r0, r1, c0, c1 = described["scale_bar"]
    assert (c1 - c0) == pytest.approx(20 * zoom, abs=2)
    inner = picture[r0 + 1:r1 - 1, c0 + 2:c1 - 2, :3]
    assert inner.size and (inner >= 240).all()
    assert described["image"][2] <= c0 and c1 <= described["image"][3]


def test_hsi_figure_has_the_hsi_ratio_scale(tmp_path):
    from imageio.v3 import imread

    from napari_nanosims.analysis.display import openmims_colour_table
    from napari_nanosims.export.figure import write_ratio_figure

    derived = _derived(np.linspace(0, 1, 64 * 64).reshape(64, 64), pixel_um=0.3125)
    described = write_ratio_figure(derived, tmp_path / "h.png", value_range=(0.0, 1.0),
                                   display="hsi")
    picture = imread(tmp_path / "h.png")
    r0, r1, c0, c1 = described["colorbar"]
    column = (c0 + c1) // 2
    top, bottom = openmims_colour_table([65535, 0]) * 255
    assert _near(picture[r0 + 2, column], top, 10)
    assert _near(picture[r1 - 2, column], bottom, 10)
    assert described["display"] == "hsi"
    with pytest.raises(ValueError, match="ratio or fraction"):
        write_ratio_figure(_derived(np.ones((8, 8)), numerator=False), tmp_path / "x.png",
                           value_range=(0.0, 1.0), display="hsi")
    with pytest.raises(ValueError, match="value_range"):
        write_ratio_figure(derived, tmp_path / "x.png", value_range=(1.0, 1.0))


def test_cli_ratio_writes_the_figure_the_hsi_option_and_the_plain_png(tmp_path, capsys):
    from imageio.v3 import imread

    from napari_nanosims import make_demo_im
    from napari_nanosims.cli import main

    path = tmp_path / "d.im"
    make_demo_im(path, seed=1)
    out = tmp_path / "o"
    assert main(["ratio", str(path), "--expr", "12C15N/12C14N", "--out", str(out)]) == 0
    figure = imread(out / "d_12C15N_over_12C14N.png")
    assert figure.shape[0] > 256 and figure.shape[1] > 256 + 60
    assert main(["ratio", str(path), "--expr", "12C15N/12C14N", "--display", "hsi",
                 "--out", str(out), "--overwrite"]) == 0
    hsi = imread(out / "d_12C15N_over_12C14N.png")
    assert hsi.shape == figure.shape and not np.array_equal(hsi, figure)
    assert main(["ratio", str(path), "--expr", "12C15N/12C14N", "--plain-png",
                 "--out", str(out), "--overwrite"]) == 0
    assert imread(out / "d_12C15N_over_12C14N.png").shape == (256, 256, 3)
    capsys.readouterr()
    assert main(["ratio", str(path), "--expr", "2*12C14N", "--display", "hsi",
                 "--out", str(out)]) == 1
    assert "ratio or fraction" in capsys.readouterr().err


def test_cli_min_counts_of_masks_on_the_chosen_mass(tmp_path):
    import tifffile

    from napari_nanosims import load_mims, make_demo_im
    from napari_nanosims.cli import main

    path = tmp_path / "d.im"
    make_demo_im(path, seed=2)
    out = tmp_path / "o"
    assert main(["ratio", str(path), "--expr", "13C/12C", "--min-counts", "30",
                 "--min-counts-of", "12C14N", "--out", str(out)]) == 0
    value = tifffile.imread(out / "d_13C_over_12C.ome.tif")[0]
    mims = load_mims(path)
    sums = np.asarray(mims.data, float).sum(axis=0)
    labels = list(mims.header.labels)
    c13, c12, cn = (sums[labels.index(name)] for name in ("13C", "12C", "12C 14N"))
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = c13 / c12
    expected[cn < 30] = np.nan
    np.testing.assert_allclose(value, expected.astype(np.float32), rtol=1e-6,
                               equal_nan=True)
    assert main(["ratio", str(path), "--expr", "13C/12C", "--min-counts-of", "SE",
                 "--out", str(tmp_path / "p")]) == 1


def test_without_matplotlib_the_plain_png_is_written_with_a_warning(tmp_path, monkeypatch):
    from imageio.v3 import imread

    from napari_nanosims import FigureWarning
    from napari_nanosims.export import ratio

    monkeypatch.setattr(ratio, "find_spec", lambda name: None)  # as if not installed
    derived = _derived(np.tile(np.linspace(0, 1, 40), (30, 1)))  # 0 left, 1 right
    paths = {"image": tmp_path / "r.ome.tif", "display": tmp_path / "r.png"}
    with pytest.warns(FigureWarning, match="figures"):
        ratio.write_derived(derived, paths)
    plain = imread(paths["display"])
    assert plain.shape == (30, 40, 3)
    # a grey ramp without matplotlib's colormaps: left dark, right bright
    assert plain[15, 0].max() < 30 and plain[15, -1].min() > 225
