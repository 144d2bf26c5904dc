"""read_rois on the NanoSIMS grid, directly or through a registration, and the
import_rois recipe step that does it per file in a batch."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_nanosims import (
    Acquisition,
    ImageRegistration,
    read_rois,
    register_images,
    write_rois,
)
from napari_nanosims.steps.recipe import Recipe, run_recipe

NANOSIMS_UM, NANOSIMS_SHAPE = 0.1, (40, 40)
FISH_UM, FISH_SHAPE = 0.05, (60, 70)


def _fish_painting():
    """Cells painted on the FISH image: two red (probe A), one green (probe B)."""
    image = np.zeros(FISH_SHAPE + (3,), np.uint8)
    image[10:24, 10:30] = (255, 0, 0)
    image[34:50, 8:20] = (255, 0, 0)
    image[30:52, 40:64] = (0, 255, 0)
    return image


def _registration():
    """The FISH image lies at (+0.5, +0.7) µm on the NanoSIMS field, rotated by 90°:
    fixed = R (moving) + t, R = [[0, -1], [1, 0]] in (y, x)."""
    moving = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [2.0, 2.5]])
    rotation = np.array([[0.0, -1.0], [1.0, 0.0]])
    fixed = moving @ rotation.T + [0.5 + FISH_SHAPE[1] * FISH_UM, 0.7]
    return register_images(np.zeros(NANOSIMS_SHAPE), np.zeros(FISH_SHAPE),
                           fixed_pixel_um=NANOSIMS_UM, moving_pixel_um=FISH_UM,
                           landmarks=np.stack([fixed, moving], axis=1), model="rigid")


def _expected_on_grid(moving_labels, registration):
    """Nearest moving pixel of every NanoSIMS pixel centre, written out."""
    rows, columns = np.indices(NANOSIMS_SHAPE) * NANOSIMS_UM
    fixed = np.c_[rows.ravel(), columns.ravel()]
    inverse = np.linalg.inv(registration.matrix)
    moving = (np.c_[fixed, np.ones(len(fixed))] @ inverse.T)[:, :2] / FISH_UM
    index = np.round(moving).astype(int)
    inside = np.all((index >= 0) & (index < FISH_SHAPE), axis=1)
    result = np.zeros(len(fixed), int)
    result[inside] = moving_labels[index[inside, 0], index[inside, 1]]
    return result.reshape(NANOSIMS_SHAPE)


def test_painted_rois_on_another_image_come_through_the_registration(tmp_path):
    Image.fromarray(_fish_painting()).save(tmp_path / "fish.png")
    registration = _registration()
    like = (NANOSIMS_SHAPE, NANOSIMS_UM)
    with pytest.raises(ValueError, match="fish.png: its image is 60 x 70 pixels, not 40 x "
                                         "40"):
        read_rois(tmp_path / "fish.png", like)
    labels, classes = read_rois(tmp_path / "fish.png", like, registration=registration)
    on_fish = np.zeros(FISH_SHAPE, int)
    # numbered in raster order of their first pixel
    on_fish[10:24, 10:30], on_fish[30:52, 40:64], on_fish[34:50, 8:20] = 1, 2, 3
    np.testing.assert_array_equal(labels, _expected_on_grid(on_fish, registration))
    assert classes == {1: "#ff0000", 2: "#00ff00", 3: "#ff0000"}
    # an ImageJ set drawn on the FISH image: the same through the registration
    write_rois(on_fish.astype(np.int32), tmp_path / "fish.zip", {1: "A", 2: "B", 3: "A"})
    labels, classes = read_rois(tmp_path / "fish.zip", like, registration=registration)
    np.testing.assert_array_equal(labels, _expected_on_grid(on_fish, registration))
    assert classes == {1: "A", 2: "B", 3: "A"}


def _acquisition(tmp_path):
    rng = np.random.default_rng(0)
    counts = rng.poisson(50.0, (2, 2) + NANOSIMS_SHAPE).astype(float)
    acq = Acquisition.from_arrays(counts, ["12C 14N", "12C 15N"], name="cell01.im",
                                  pixel_size_um=NANOSIMS_UM)
    return acq.replace(path=str(tmp_path / "cell01.im"))


def test_import_rois_step_measures_imported_rois_with_their_classes(tmp_path):
    acq = _acquisition(tmp_path)
    Image.fromarray(_fish_painting()).save(tmp_path / "cell01_fish.png")
    _registration().save(tmp_path / "cell01_fish.json")
    recipe = Recipe((("import_rois", {"path": "{stem}_fish.png",
                                      "registration": "{stem}_fish.json"}),
                     ("roi_table", {"expressions": "12C15N/12C14N"}),
                     ("compare_classes", {"quantity": "12C15N/12C14N"})))
    out = run_recipe(acq, recipe)
    expected, classes = read_rois(tmp_path / "cell01_fish.png", acq,
                                  registration=ImageRegistration.load(
                                      tmp_path / "cell01_fish.json"))
    np.testing.assert_array_equal(out.roi_labels, expected)
    table = out.roi_statistics.drop_duplicates("roi").set_index("roi")["class"]
    assert table.to_dict() == classes
    assert set(out.class_statistics["class"].dropna()) >= {"#ff0000", "#00ff00"}
    record = out.history[-3]
    assert record.name == "import_rois" and record.parameters["rois_found"] == 3
    assert acq.roi_labels is None  # the input is not changed
    # a segment step afterwards replaces the ROIs and forgets their classes
    again = run_recipe(out, Recipe((("segment", {}),)))
    assert again.roi_classes is None


def test_import_rois_names_missing_files(tmp_path):
    acq = _acquisition(tmp_path)
    with pytest.raises(ValueError, match=r"cell01.im: ROI file .*cell01\.rois\.zip not "
                                         "found"):
        run_recipe(acq, Recipe((("import_rois", {"path": "{stem}.rois.zip"}),)))
    (tmp_path / "cell01.rois.zip").write_bytes(b"")
    with pytest.raises(ValueError, match="registration .*none.json not found"):
        run_recipe(acq, Recipe((("import_rois", {"path": "{stem}.rois.zip",
                                                 "registration": "none.json"}),)))
