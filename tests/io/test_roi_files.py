"""ROI files read into labels (io/roi_files.py): ImageJ/OpenMIMS .roi and .zip of every
shape against an independent rasterisation (matplotlib's point-in-polygon on the pixel
centres; the ellipse equation), OpenMIMS's Java entries (never deserialized), LANS
cells.mat written with scipy, painted masks; hostile files refused with the file named."""

from __future__ import annotations

import struct
import zipfile

import numpy as np
import pytest
import roifile
from matplotlib.path import Path as MplPath

from napari_nanosims import ImFormatError, RoiFileWarning
from napari_nanosims.io.roi_files import read_roi_labels

SHAPE = (60, 70)

# Written by Java's ObjectOutputStream (OpenMIMS's way): a HashMap<String, ROIgroup>
# {"1": cells, "2": control, "3": cells} (com.nrims.ROIgroup: groupName, groupType,
# tagName; ROIs 1 and 3 share one ROIgroup object, so the stream refers back to it) and
# a locations.pos HashMap<String, ArrayList<Integer[]>>.
GROUP_MAP = bytes.fromhex(
    "aced0005737200116a6176612e7574696c2e486173684d61700507dac1c31660d103000246000a6c"
    "6f6164466163746f724900097468726573686f6c6478703f4000000000000c770800000010000000"
    "037400013173720012636f6d2e6e72696d732e524f4967726f75707db6728d58274f840200034c00"
    "0967726f75704e616d657400124c6a6176612f6c616e672f537472696e673b4c000967726f757054"
    "79706571007e00044c00077461674e616d6571007e0004787074000563656c6c737400066e6f726d"
    "616c7400032e2e2e740001327371007e0003740007636f6e74726f6c71007e000771007e00087400"
    "013371007e000578"
)
LOCATIONS = bytes.fromhex(
    "aced0005737200116a6176612e7574696c2e486173684d61700507dac1c31660d103000246000a6c"
    "6f6164466163746f724900097468726573686f6c6478703f4000000000000c770800000010000000"
    "0174000131737200136a6176612e7574696c2e41727261794c6973747881d21d99c7619d03000149"
    "000473697a65787000000001770400000001757200145b4c6a6176612e6c616e672e496e74656765"
    "723bfe97ada00183e21b020000787000000003737200116a6176612e6c616e672e496e7465676572"
    "12e2a0a4f781873802000149000576616c7565787200106a6176612e6c616e672e4e756d62657286"
    "ac951d0b94e08b0200007870000000017371007e0007000000027371007e0007000000037878"
)


def _centres_inside(outline_xy, shape=SHAPE):
    """Independent rasterisation: pixels whose centre (column + 0.5, row + 0.5) is inside
    the closed outline (ImageJ x, y), by matplotlib."""
    rows, columns = np.indices(shape)
    centres = np.c_[columns.ravel() + 0.5, rows.ravel() + 0.5]
    return MplPath(np.asarray(outline_xy, float)).contains_points(centres).reshape(shape)


def _odd_polygon(rng, n=8):
    """Integer vertices where every edge has an odd dx + dy, so that no pixel centre lies
    on an edge ((c + 1/2 - x0) dy = (r + 1/2 - y0) dx has no integer solution); n must
    be even, as the odd steps of a closed outline are."""
    while True:
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(8, 25, n)
        points = np.round(np.c_[35 + radius * np.cos(angles),
                                30 + radius * np.sin(angles)]).astype(int)
        steps = np.diff(np.vstack([points, points[:1]]), axis=0)
        if np.all(steps.sum(axis=1) % 2 == 1):
            return points


def _write(path, rois, names=None):
    roifile.roiwrite(path, rois, name=names)
    return path


def test_polygons_freehand_and_subpixel_outlines_fill_their_pixel_centres(tmp_path):
    rng = np.random.default_rng(0)
    for case in range(6):
        points = _odd_polygon(rng)
        for kind in (roifile.ROI_TYPE.POLYGON, roifile.ROI_TYPE.FREEHAND):
            roi = roifile.ImagejRoi.frompoints(points)
            roi.roitype = kind
            labels, classes = read_roi_labels(_write(tmp_path / f"p{case}.roi", roi), SHAPE)
            np.testing.assert_array_equal(labels == 1, _centres_inside(points))
            assert labels.max() == 1 and classes == {}
        floats = rng.uniform([5, 5], [65, 55], (9, 2))
        roi = roifile.ImagejRoi.frompoints(floats)  # sub-pixel coordinates
        labels, _ = read_roi_labels(_write(tmp_path / f"f{case}.roi", roi), SHAPE)
        np.testing.assert_array_equal(labels == 1, _centres_inside(floats))


def test_traced_outline_fills_exactly_the_traced_pixels(tmp_path):
    # A staircase outline along pixel edges, as ImageJ's wand traces a blob.
    outline = np.array([[10, 5], [20, 5], [20, 9], [25, 9], [25, 20], [14, 20], [14, 12],
                        [10, 12]])
    roi = roifile.ImagejRoi.frompoints(outline)
    roi.roitype = roifile.ROI_TYPE.TRACED
    labels, _ = read_roi_labels(_write(tmp_path / "t.roi", roi), SHAPE)
    expected = np.zeros(SHAPE, bool)
    expected[5:9, 10:20] = True
    expected[9:12, 10:25] = True
    expected[12:20, 14:25] = True
    np.testing.assert_array_equal(labels == 1, expected)
    np.testing.assert_array_equal(labels == 1, _centres_inside(outline))


@pytest.mark.parametrize("left, top, right, bottom", [(3, 4, 20, 15), (10, 10, 13, 11),
                                                       (0, 0, 9, 30), (50, 40, 69, 59)])
def test_rectangles_and_ovals_fill_as_imagej(tmp_path, left, top, right, bottom):
    rows, columns = np.indices(SHAPE) + 0.5
    for kind in (roifile.ROI_TYPE.RECT, roifile.ROI_TYPE.OVAL):
        roi = roifile.ImagejRoi(roitype=kind, left=left, top=top, right=right, bottom=bottom)
        labels, _ = read_roi_labels(_write(tmp_path / f"{kind}.roi", roi), SHAPE)
        if kind == roifile.ROI_TYPE.RECT:
            expected = np.zeros(SHAPE, bool)
            expected[top:bottom, left:right] = True
        else:  # the pixel centre inside the ellipse in the bounds
            a, b = (right - left) / 2, (bottom - top) / 2
            expected = ((columns - left - a) / a) ** 2 + ((rows - top - b) / b) ** 2 <= 1
        np.testing.assert_array_equal(labels == 1, expected)


def test_composite_shape_with_a_hole(tmp_path):
    outer = [[5, 5], [40, 5], [40, 40], [5, 40]]
    hole = [[15, 15], [25, 15], [25, 25], [15, 25]]
    path = []
    for loop in (outer, hole):
        path += [0, *loop[0]] + sum(([1, *p] for p in loop[1:]), []) + [4]
    roi = roifile.ImagejRoi(roitype=roifile.ROI_TYPE.RECT, left=5, top=5, right=40,
                            bottom=40, multi_coordinates=np.array(path, np.float32),
                            shape_roi_size=len(path))
    labels, _ = read_roi_labels(_write(tmp_path / "c.roi", roi), SHAPE)
    expected = _centres_inside(outer) & ~_centres_inside(hole)
    np.testing.assert_array_equal(labels == 1, expected)


def _openmims_zip(path, rois, extra=(("group_map", GROUP_MAP),
                                     ("locations.pos", LOCATIONS))):
    with zipfile.ZipFile(path, "w") as archive:
        for name, roi in rois:
            archive.writestr(f"{name}.roi", roi.tobytes())
        for name, data in extra:
            archive.writestr(name, data)
    return path


def _square(x, y, size=6):
    return roifile.ImagejRoi(roitype=roifile.ROI_TYPE.RECT, left=x, top=y, right=x + size,
                             bottom=y + size)


def test_openmims_zip_gives_rois_in_order_with_their_group_names(tmp_path):
    squares = [("1", _square(2, 2)), ("2", _square(20, 2)), ("3", _square(2, 30)),
               ("4", _square(40, 40))]
    labels, classes = read_roi_labels(_openmims_zip(tmp_path / "a.rois.zip", squares),
                                      SHAPE)
    for number, (_, roi) in enumerate(squares, start=1):
        assert np.all(labels[roi.top:roi.bottom, roi.left:roi.right] == number)
    assert np.count_nonzero(labels) == 4 * 36
    assert classes == {1: "cells", 2: "control", 3: "cells"}  # ROI 4 has no group


def test_unreadable_java_entries_are_skipped_never_run(tmp_path):
    # A stream naming a class (as a gadget chain would) is read as data or refused,
    # never looked up; the ROIs still load, without classes.
    hostile = b"\xac\xed\x00\x05\x73\x72" + struct.pack(">H", 8) + b"os.popen" + \
        b"\x00" * 8 + b"\x02\x00\x00\x78\x70\xff"
    squares = [("1", _square(2, 2))]
    for data in (hostile, b"garbage", GROUP_MAP[:40]):
        path = _openmims_zip(tmp_path / "h.zip", squares, (("group_map", data),
                                                          ("group", data)))
        with pytest.warns(RoiFileWarning, match="groups not readable"):
            labels, classes = read_roi_labels(path, SHAPE)
        assert labels.max() == 1 and classes == {}


def test_imagej_group_numbers_become_classes_and_lines_are_skipped(tmp_path):
    first, second = _square(2, 2), _square(20, 20)
    second.group = 3
    line = roifile.ImagejRoi(roitype=roifile.ROI_TYPE.LINE, x1=1, y1=1, x2=30, y2=30,
                             left=1, top=1, right=30, bottom=30)
    path = _write(tmp_path / "set.zip", [first, line, second], names=["a", "b", "c"])
    with pytest.warns(RoiFileWarning, match="1 line or point"):
        labels, classes = read_roi_labels(path, SHAPE)
    assert labels.max() == 2 and classes == {2: 3}


def test_rois_of_another_image_and_hostile_zips_are_refused(tmp_path):
    path = _write(tmp_path / "far.roi", _square(100, 100))
    with pytest.raises(ValueError, match="far.roi: ROI.*outside the 60 x 70 image"):
        read_roi_labels(path, SHAPE)
    with pytest.raises(ValueError, match="carry no image size"):
        read_roi_labels(path)
    (tmp_path / "no.zip").write_bytes(b"PK not a zip")
    with pytest.raises(ImFormatError, match="no.zip: not a zip"):
        read_roi_labels(tmp_path / "no.zip", SHAPE)
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as archive:
        archive.writestr("1.roi", b"Iout" + b"\x00" * 10)
    with pytest.raises(ImFormatError, match="bad.zip: entry '1.roi' is not an ImageJ ROI"):
        read_roi_labels(tmp_path / "bad.zip", SHAPE)
    # a polygon zig-zagging a million times across the rows: refused before filling
    zigzag = np.c_[np.arange(600_000) % 2 * 60, np.linspace(0, 59, 600_000)]
    spiky = roifile.ImagejRoi.frompoints(zigzag.T[::-1].T)
    path = _write(tmp_path / "spiky.roi", spiky)
    with pytest.raises(ImFormatError, match="spiky.roi: ROI .* crosses the pixel rows"):
        read_roi_labels(path, SHAPE)


def test_lans_cells_mat_written_with_scipy(tmp_path):
    from scipy import io as sio

    rng = np.random.default_rng(2)
    mask = np.zeros(SHAPE)
    mask[5:15, 5:20] = 1
    mask[30:50, 40:45] = 2
    mask[rng.random(SHAPE) < 0.01] = 3
    sio.savemat(tmp_path / "cells.mat", {"Maskimg": mask}, format="5")
    labels, classes = read_roi_labels(tmp_path / "cells.mat", SHAPE)
    np.testing.assert_array_equal(labels, mask.astype(int))
    assert labels.dtype == np.int32 and classes == {}
    with pytest.raises(ValueError, match="cells.mat: its image is 60 x 70 pixels, not 30 x "
                                         "70"):
        read_roi_labels(tmp_path / "cells.mat", (30, 70))
    sio.savemat(tmp_path / "cell_array.mat", {"Maskimg": np.array([["a"]], dtype=object)})
    with pytest.raises(ImFormatError, match="cell_array.mat: Maskimg is"):
        read_roi_labels(tmp_path / "cell_array.mat")
    sio.savemat(tmp_path / "other.mat", {"image": mask})
    with pytest.raises(ImFormatError, match="other.mat: no Maskimg"):
        read_roi_labels(tmp_path / "other.mat")
    sio.savemat(tmp_path / "half.mat", {"Maskimg": mask + 0.5})
    with pytest.raises(ImFormatError, match="half.mat: Maskimg must hold whole numbers"):
        read_roi_labels(tmp_path / "half.mat")
    (tmp_path / "text.mat").write_text("not MATLAB")
    with pytest.raises(ImFormatError, match="text.mat: not a MATLAB file"):
        read_roi_labels(tmp_path / "text.mat")


def _painting():
    """White paper, two red cells, one green, a blue one touching the green one, and
    anti-aliased (pinkish) single pixels on a red cell's rim."""
    image = np.full(SHAPE + (3,), 255, np.uint8)
    image[5:15, 5:15] = (255, 0, 0)
    image[30:40, 50:60] = (255, 0, 0)
    image[20:30, 20:30] = (0, 200, 0)
    image[20:30, 30:35] = (0, 0, 255)
    image[15, 5] = (255, 128, 128)
    image[15, 9] = (255, 120, 120)
    return image


def test_painted_png_each_region_of_one_colour_is_an_roi(tmp_path):
    from PIL import Image

    Image.fromarray(_painting()).save(tmp_path / "paint.png")
    labels, classes = read_roi_labels(tmp_path / "paint.png", SHAPE)
    assert labels.max() == 4
    regions = {classes[int(labels[r, c])]: int(labels[r, c])
               for r, c in ((6, 6), (35, 55), (25, 25), (25, 32))[::1]}
    assert sorted(classes.values()) == ["#0000ff", "#00c800", "#ff0000", "#ff0000"]
    assert np.count_nonzero(labels == labels[6, 6]) == 100  # rim pixels dropped
    assert labels[6, 6] != labels[35, 55] and len(regions) == 3
    assert labels[15, 5] == 0 and labels[0, 0] == 0
    # RGBA: transparent pixels are background whatever their colour
    rgba = np.dstack([_painting(), np.full(SHAPE, 255, np.uint8)])
    rgba[:, :, :3][_painting().sum(axis=2) == 765] = 0
    rgba[_painting().sum(axis=2) == 765, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    again, _ = read_roi_labels(tmp_path / "alpha.png", SHAPE)
    np.testing.assert_array_equal(again, labels)
    with pytest.raises(ValueError, match="paint.png: its image is 60 x 70 pixels"):
        read_roi_labels(tmp_path / "paint.png", (70, 60))


def test_label_tiff_value_is_the_class(tmp_path):
    import tifffile

    image = np.zeros(SHAPE, np.uint16)
    image[2:10, 2:10] = 7
    image[20:30, 20:30] = 7
    image[40:50, 5:9] = 300
    tifffile.imwrite(tmp_path / "classes.tif", image)
    labels, classes = read_roi_labels(tmp_path / "classes.tif", SHAPE)
    assert labels.max() == 3 and sorted(classes.values()) == [7, 7, 300]
    assert classes[int(labels[45, 6])] == 300
    (tmp_path / "junk.tif").write_bytes(b"II*\x00junk")
    with pytest.raises(ImFormatError, match="junk.tif: not a readable TIFF"):
        read_roi_labels(tmp_path / "junk.tif", SHAPE)
