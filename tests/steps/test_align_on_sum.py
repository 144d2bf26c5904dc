"""``align_frames(channel='sum')``: the frames aligned on the sum of the ion channels, with
the default method (issue 20, item 8: it failed on every file)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nanosims import align_frames, open_acquisition
from napari_nanosims.testing.simulate import simulate_scene


def _drifting_counts(seed=0):
    """Three ion channels that share one drifting scene (known translations), and a flat
    SE image; each ion channel is a binomial share of the scene's counts."""
    simulation = simulate_scene("cells", 5, 12.0, window=64, max_drift_px=4.0, seed=seed)
    rng = np.random.default_rng(seed)
    total = simulation["frames"].astype(np.int64)
    first = rng.binomial(total, 0.2)
    second = rng.binomial(total - first, 0.4)
    se = rng.poisson(50, size=total.shape)
    counts = np.stack([first, second, total - first - second, se], axis=1)
    return counts.astype(np.uint32), simulation["translations_px"]


@pytest.mark.parametrize("method", [None, "sequential", "subpixel"])
def test_align_on_the_sum_of_the_ion_channels(im_factory, method):
    counts, truth = _drifting_counts()
    path = im_factory("sum.im", counts, labels=["12C", "13C", "12C 14N", "SE"])
    acquisition = open_acquisition(path)
    options = {} if method is None else {"method": method}  # None: the default method
    aligned = align_frames(acquisition, channel="sum", **options)
    record = aligned.history[-1]
    assert record.name == "align_frames" and record.parameters["aligned_on"] == "sum"
    # Up to a common offset (the reference frame), the simulated translations; whole
    # pixels for the sequential method.
    found = np.asarray(aligned.translations, float)
    error = (found - found.mean(axis=0)) - (truth - truth.mean(axis=0))
    assert np.abs(error).max() < (0.75 if record.parameters["method"] == "sequential"
                                  else 0.3), (found, truth)
    assert np.asarray(acquisition.counts).sum() == counts.sum()  # input untouched
