"""register_images and resample on synthetic correlative pairs: a NanoSIMS-like image
and an "EM" image made from the same scene through a known transform, at another pixel
size and with another contrast (inverted, blurred, Gaussian instead of Poisson noise)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage

from napari_nanosims import ImageRegistration, register_images, resample
from napari_nanosims.correlate.registration import MIN_PAIRS, MODELS

FIXED_UM, FIXED_SHAPE = 0.078, (256, 256)
MOVING_UM, MOVING_SHAPE = 0.03, (420, 440)


def _cells(seed, n=25, field=20.0):
    """Non-overlapping round cells: centres (y, x) µm and radii µm."""
    rng = np.random.default_rng(seed)
    centres, radii = [], []
    while len(centres) < n:
        centre, radius = rng.uniform(2, field - 2, 2), rng.uniform(0.7, 1.1)
        if all(np.hypot(*(centre - c)) > radius + r + 0.3
               for c, r in zip(centres, radii, strict=True)):
            centres.append(centre)
            radii.append(radius)
    return np.array(centres), np.array(radii)


def _render(points_um, cells):
    """Brightness (flat-topped blobs) and cell labels at (n, 2) (y, x) µm points."""
    centres, radii = cells
    d2 = ((points_um[:, None, :] - centres[None]) ** 2).sum(-1) / radii ** 2
    inside = d2 < 1
    return np.exp(-d2 ** 2).sum(1), np.where(inside.any(1), inside.argmax(1) + 1, 0)


def _matrix(angle_deg, scale, shift, shear=0.0):
    """Moving (y, x) µm -> fixed (y, x) µm, written out."""
    a = math.radians(angle_deg)
    matrix = np.eye(3)
    matrix[:2, :2] = scale * np.array([[math.cos(a), -math.sin(a)],
                                       [math.sin(a), math.cos(a)]]) @ [[1, shear], [0, 1]]
    matrix[:2, 2] = shift
    return matrix


def _grid_um(shape, pixel):
    rows, columns = np.indices(shape) * pixel
    return np.c_[rows.ravel(), columns.ravel()]


def _apply(matrix, points):
    return (np.c_[points, np.ones(len(points))] @ matrix.T)[:, :2]


@pytest.fixture(scope="module")
def pair():
    """(fixed image, fixed labels, EM image, EM labels, true matrix, cells)."""
    rng = np.random.default_rng(7)
    cells = _cells(3)
    truth = _matrix(17.0, 1.1, (3.0, 2.0))
    brightness, labels = _render(_grid_um(FIXED_SHAPE, FIXED_UM), cells)
    fixed = rng.poisson(20 * brightness.reshape(FIXED_SHAPE) + 1).astype(float)
    moving_points = _apply(truth, _grid_um(MOVING_SHAPE, MOVING_UM))
    em_brightness, em_labels = _render(moving_points, cells)
    em = ndimage.gaussian_filter(1 - em_brightness.reshape(MOVING_SHAPE), 3) + \
        rng.normal(0, 0.05, MOVING_SHAPE)
    return (fixed, labels.reshape(FIXED_SHAPE), em, em_labels.reshape(MOVING_SHAPE), truth,
            cells)


def _landmarks(truth, n, noise_px, seed):
    """n pairs: moving points inside the EM field and their fixed points, the fixed ones
    clicked with Gaussian noise of noise_px fixed pixels per axis."""
    rng = np.random.default_rng(seed)
    moving = rng.uniform([1.5, 1.5], np.array(MOVING_SHAPE) * MOVING_UM - 1.5, (n, 2))
    fixed = _apply(truth, moving) + rng.normal(0, noise_px * FIXED_UM, (n, 2))
    return np.stack([fixed, moving], axis=1)


def _true_error_px(registration, truth):
    """RMS distance (fixed pixels) between the registration and the truth over the EM
    field."""
    probe = _grid_um(MOVING_SHAPE, MOVING_UM)[::211]
    error = registration.transform(probe) - _apply(truth, probe)
    return float(np.sqrt((error ** 2).sum(1).mean())) / FIXED_UM


@pytest.mark.parametrize("model, truth", [
    ("similarity", _matrix(17.0, 1.1, (3.0, 2.0))),
    ("affine", _matrix(-8.0, 0.9, (4.0, 1.0), shear=0.1)),
])
def test_landmarks_with_half_pixel_noise_give_the_transform_back(model, truth):
    image = np.zeros(FIXED_SHAPE)
    errors = []
    for seed in range(20):
        landmarks = _landmarks(truth, 10, 0.5, seed)
        result = register_images(image, np.zeros(MOVING_SHAPE), fixed_pixel_um=FIXED_UM,
                                 moving_pixel_um=MOVING_UM, landmarks=landmarks, model=model)
        errors.append(_true_error_px(result, truth))
        # residuals: one per pair, written out from the matrix
        mapped = _apply(result.matrix, landmarks[:, 1])
        np.testing.assert_allclose(result.residuals_um,
                                   np.hypot(*(mapped - landmarks[:, 0]).T))
        assert result.rms_um == pytest.approx(np.sqrt(np.mean(result.residuals_um ** 2)))
    # Least squares with k parameters from n 2-D points of noise sigma: the fitted
    # positions err by about sigma * sqrt(k / n) per axis, i.e. sqrt(2 k / n) * 0.5 px
    # in distance (0.45 px for similarity, 0.55 px for affine over the landmarks' hull).
    k = {"similarity": 4, "affine": 6}[model]
    expected = 0.5 * math.sqrt(2 * k / 10)
    assert np.mean(errors) < 1.5 * expected
    assert np.mean(errors) > 0.3 * expected  # the noise is there: not a fake exact fit


def test_leave_one_out_error_estimates_the_error_at_new_points():
    truth = _matrix(5.0, 1.0, (1.0, 1.0))
    loo, rms, true_point_error = [], [], []
    for seed in range(30):
        landmarks = _landmarks(truth, 8, 1.0, seed)
        result = register_images(np.zeros((8, 8)), np.zeros((8, 8)), fixed_pixel_um=FIXED_UM,
                                 moving_pixel_um=MOVING_UM, landmarks=landmarks)
        loo.append(result.loo_um / FIXED_UM)
        rms.append(result.rms_um / FIXED_UM)
        # a new click's distance from the fit: fit error plus its own noise
        new = _landmarks(truth, 200, 1.0, 1000 + seed)
        true_point_error.append(np.sqrt(np.mean(np.sum(
            (result.transform(new[:, 1]) - new[:, 0]) ** 2, axis=1))) / FIXED_UM)
    assert np.mean(rms) < np.mean(true_point_error)  # residuals are optimistic
    assert np.mean(loo) == pytest.approx(np.mean(true_point_error), rel=0.2)


def test_leave_one_out_by_hand_for_translations():
    landmarks = np.array([[[1.0, 2.0], [0.0, 0.0]], [[3.0, 2.0], [1.0, 1.0]],
                          [[2.0, 5.0], [2.0, 2.0]]])
    result = register_images(np.zeros((4, 4)), np.zeros((4, 4)), fixed_pixel_um=1.0,
                             moving_pixel_um=1.0, landmarks=landmarks, model="translation")
    shifts = landmarks[:, 0] - landmarks[:, 1]
    np.testing.assert_allclose(result.matrix[:2, 2], shifts.mean(axis=0))
    errors = [np.hypot(*(shifts[i] - np.delete(shifts, i, axis=0).mean(axis=0)))
              for i in range(3)]
    assert result.loo_um == pytest.approx(np.sqrt(np.mean(np.square(errors))))


@pytest.mark.parametrize("model", MODELS)
def test_too_few_pairs_are_refused_and_the_minimum_fits_exactly(model):
    truth = _matrix(10.0, 1.2, (1.0, -2.0))
    if model == "projective":
        truth[2, :2] = [0.01, -0.02]
    elif model == "translation":
        truth[:2, :2] = np.eye(2)
    elif model == "rigid":
        truth = _matrix(10.0, 1.0, (1.0, -2.0))
    moving = np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0], [7.0, 8.0]])[:MIN_PAIRS[model]]
    fixed = _apply(truth, moving) if model != "projective" else (
        lambda h: h[:, :2] / h[:, 2:])(np.c_[moving, np.ones(len(moving))] @ truth.T)
    pairs = np.stack([fixed, moving], axis=1)
    images = dict(fixed=np.zeros((4, 4)), moving=np.zeros((4, 4)), fixed_pixel_um=1.0,
                  moving_pixel_um=1.0, model=model)
    with pytest.raises(ValueError, match=f"needs at least {MIN_PAIRS[model]}"):
        register_images(landmarks=pairs[:-1], **images)
    result = register_images(landmarks=pairs, **images)
    np.testing.assert_allclose(result.transform(moving), fixed, atol=1e-9)
    assert math.isnan(result.loo_um)  # no pair to spare


def test_bad_arguments_say_what_is_wrong():
    images = dict(fixed=np.zeros((4, 4)), moving=np.zeros((4, 4)), fixed_pixel_um=1.0,
                  moving_pixel_um=1.0)
    with pytest.raises(ValueError, match="model must be one of"):
        register_images(landmarks=np.zeros((3, 2, 2)), model="elastic", **images)
    with pytest.raises(ValueError, match=r"shape \(n, 2, 2\)"):
        register_images(landmarks=np.zeros((3, 2)), **images)
    with pytest.raises(ValueError, match="needs landmarks"):
        register_images(**images)
    with pytest.raises(ValueError, match="moving_pixel_um"):
        register_images(**{**images, "moving_pixel_um": 0.0}, landmarks=np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="2-D image"):
        register_images(**{**images, "fixed": np.zeros((4, 4, 3))},
                        landmarks=np.zeros((3, 2, 2)))


def test_intensity_refinement_improves_a_two_pixel_landmark_error(pair):
    pytest.importorskip("SimpleITK")
    fixed, _, em, _, truth, _ = pair
    landmarks = _landmarks(truth, 6, 2.0, seed=11)
    start = register_images(fixed, em, fixed_pixel_um=FIXED_UM, moving_pixel_um=MOVING_UM,
                            landmarks=landmarks)
    refined = register_images(fixed, em, fixed_pixel_um=FIXED_UM, moving_pixel_um=MOVING_UM,
                              landmarks=landmarks, refine="intensity")
    assert _true_error_px(start, truth) > 1.0
    assert _true_error_px(refined, truth) < 0.5
    report = refined.refinement
    assert report["kept"] and report["metric_after"] < report["metric_before"]
    assert report["landmark_rms_before_um"] == pytest.approx(start.rms_um)
    assert report["landmark_rms_after_um"] == pytest.approx(refined.rms_um)


def test_labels_carried_across_keep_their_shape(pair):
    fixed, fixed_labels, em, em_labels, truth, _ = pair
    registration = register_images(fixed, em, fixed_pixel_um=FIXED_UM,
                                   moving_pixel_um=MOVING_UM,
                                   landmarks=_landmarks(truth, 10, 0.5, seed=3))
    labels, coverage = resample(em_labels, registration, (FIXED_SHAPE, FIXED_UM))
    assert labels.dtype == em_labels.dtype
    # coverage: 1 where the pixel's centre maps well inside the EM image, 0 far outside
    inside = registration.inverse(_grid_um(FIXED_SHAPE, FIXED_UM)) / MOVING_UM
    deep = np.all((inside > 1) & (inside < np.array(MOVING_SHAPE) - 2), axis=1)
    far = np.any((inside < -2) | (inside > np.array(MOVING_SHAPE) + 1), axis=1)
    assert np.all(coverage.ravel()[deep] == 1) and np.all(coverage.ravel()[far] == 0)
    assert np.all(labels.ravel()[far] == 0)
    # every cell wholly inside the EM field keeps IoU > 0.9 with the truth
    ious = []
    for cell in np.unique(fixed_labels[fixed_labels > 0]):
        truth_mask = fixed_labels == cell
        if not np.all(coverage[truth_mask] == 1):
            continue
        found = labels == cell
        ious.append((found & truth_mask).sum() / (found | truth_mask).sum())
    assert len(ious) >= 8
    assert min(ious) > 0.9


def test_intensities_are_interpolated_linearly():
    moving = np.add.outer(np.arange(6.0), 10 * np.arange(5.0))  # a plane: exact
    registration = register_images(np.zeros((4, 4)), moving, fixed_pixel_um=1.0,
                                   moving_pixel_um=1.0, model="translation",
                                   landmarks=[[[0.0, 0.0], [0.5, 0.25]]])
    values, coverage = resample(moving, registration, ((4, 4), 1.0))
    rows, columns = np.indices((4, 4)) + np.array([0.5, 0.25])[:, None, None]
    np.testing.assert_allclose(values, rows + 10 * columns)
    assert np.all(coverage == 1)
    with pytest.raises(ValueError, match="not the image registered"):
        resample(np.zeros((3, 3)), registration, ((4, 4), 1.0))


def test_saved_registration_loads_back_and_refuses_foreign_json(tmp_path, pair):
    _, _, _, _, truth, _ = pair
    registration = register_images(np.zeros((5, 6)), np.zeros((7, 8)), fixed_pixel_um=0.1,
                                   moving_pixel_um=0.02,
                                   landmarks=_landmarks(truth, 5, 0.5, seed=1))
    path = tmp_path / "reg.json"
    registration.save(path)
    back = ImageRegistration.load(path)
    np.testing.assert_array_equal(back.matrix, registration.matrix)
    np.testing.assert_array_equal(back.landmarks, registration.landmarks)
    assert (back.model, back.fixed_shape, back.moving_shape, back.moving_pixel_um) == \
        ("similarity", (5, 6), (7, 8), 0.02)
    assert back.loo_um == pytest.approx(registration.loo_um)
    with pytest.raises(FileExistsError):
        registration.save(path)
    (tmp_path / "other.json").write_text('{"matrix": "import os"}')
    with pytest.raises(ValueError, match="other.json: not a napari-nanosims"):
        ImageRegistration.load(tmp_path / "other.json")
    broken = dataclasses.replace(registration).to_dict()
    broken["matrix"] = [[1, 0], [0, 1]]
    (tmp_path / "broken.json").write_text(__import__("json").dumps(broken))
    with pytest.raises(ValueError, match="broken.json: matrix must be"):
        ImageRegistration.load(tmp_path / "broken.json")
