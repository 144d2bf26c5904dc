"""The piecewise field as arrows (displacement_vectors) and how much longer they are drawn
(arrow_scale): the numbers napari's Vectors layer shows over the aligned stacks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_nanosims.processing.alignment.warp import arrow_scale, displacement_vectors


def _registration(field, rows=(23.5, 47.5, 71.5), cols=(23.5, 47.5)):
    return SimpleNamespace(displacement_px=np.asarray(field, dtype=float),
                           displacement_grid_px=(np.asarray(rows), np.asarray(cols)))


def test_one_arrow_per_patch_centre_of_every_frame_that_kept_a_field():
    field = np.zeros((4, 2, 3, 2))
    field[1, 0, 2, 1] = 0.25   # frame 1: row move at the bottom-right patch
    field[3, 1, 0, 0] = -0.5   # frame 3: column move at the top-left patch
    field[3, 0, 1, 1] = 0.1
    vectors = displacement_vectors(_registration(field), scale=10.0)
    # frames 0 and 2 moved rigidly: no arrows; 2 frames x 3 rows x 2 columns
    assert vectors.shape == (12, 2, 3)
    expected = []
    for frame in (1, 3):
        for i, row in enumerate((23.5, 47.5, 71.5)):
            for j, col in enumerate((23.5, 47.5)):
                expected.append([[frame, row, col],
                                 [0.0, 10.0 * field[frame, 0, i, j],
                                  10.0 * field[frame, 1, i, j]]])
    np.testing.assert_allclose(vectors, np.array(expected))
    # the default scale is the displacement itself, pixels
    np.testing.assert_allclose(displacement_vectors(_registration(field))[:, 1],
                               np.array(expected)[:, 1] / 10.0)


def test_a_rigid_field_has_no_arrows_and_bad_input_is_refused():
    assert displacement_vectors(_registration(np.zeros((5, 2, 3, 2)))).shape == (0, 2, 3)
    with pytest.raises(ValueError, match="no displacement field"):
        displacement_vectors(SimpleNamespace(displacement_px=None, displacement_grid_px=None))
    with pytest.raises(ValueError, match="scale"):
        displacement_vectors(_registration(np.ones((1, 2, 3, 2))), scale=0.0)
    with pytest.raises(ValueError, match="displacement_px must have shape"):
        displacement_vectors(_registration(np.ones((1, 2, 2, 2))))


@pytest.mark.parametrize("longest, expected", [
    (0.3, 50.0),    # 24 / 0.3 = 80 -> 50
    (0.05, 200.0),  # 480 -> 200
    (1.0, 20.0),    # 24 -> 20
    (2.4, 10.0),    # 10 exactly
    (5.0, 2.0),     # 4.8 -> 2
    (30.0, 1.0),    # already longer than a grid step: never shortened
])
def test_arrows_are_lengthened_by_a_round_factor_to_at_most_one_grid_step(longest, expected):
    field = np.zeros((2, 2, 3, 2))
    field[1, 0, 0, 0] = longest * 0.6  # a 3-4-5 triangle: length ``longest``
    field[1, 1, 0, 0] = longest * 0.8
    field[0, 1, 1, 1] = longest * 0.5
    factor = arrow_scale(_registration(field))  # centres 24 px apart
    assert factor == pytest.approx(expected)
    assert factor * longest <= 24.0 + 1e-9 or factor == 1.0
    assert arrow_scale(_registration(field), cells=2.0) >= factor
    assert arrow_scale(_registration(np.zeros((2, 2, 3, 2)))) == 1.0
