"""The rule for short stacks (``short_stack_repeat_fraction``): what the docs tell users to
do by hand, applied; pixels hot in one frame only are cleaned."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nanosims.processing.hot_pixels import infer_hot_pixels, short_stack_repeat_fraction


@pytest.mark.parametrize("frames", [1, 2, 5, 10])
def test_a_blind_value_becomes_one_and_a_half_frames(frames):
    assert short_stack_repeat_fraction(frames, 0.1) == pytest.approx(1.5 / frames)


@pytest.mark.parametrize(("frames", "value"), [(11, 0.1), (2, 0.6), (1, 1.2), (3, 0.0)])
def test_values_that_can_flag_or_mean_none_are_kept(frames, value):
    assert short_stack_repeat_fraction(frames, value) == value


def test_two_frames_clean_a_one_frame_hit_and_keep_a_recurring_one():
    rng = np.random.default_rng(7)
    data = rng.poisson(4, size=(2, 3, 20, 20)).astype(np.uint32)
    data[0, :, 5, 5] = 500      # hot in frame 0 only: noise
    data[:, :, 12, 12] = 500    # in both frames: a feature
    used = short_stack_repeat_fraction(2, 0.1)
    with pytest.warns(UserWarning):  # the seed's value is blind on two frames
        blind = infer_hot_pixels(data, 3, max_repeat_fraction=0.1)
    assert not blind.any()
    mask = infer_hot_pixels(data, 3, max_repeat_fraction=used)
    assert mask[0, 5, 5] and not mask[1, 5, 5]
    assert not mask[:, 12, 12].any()
