"""ROI numbers as large as the user likes: memory grows with the number of ROIs, not with
the largest number, and every output keeps the ROIs' own numbers (issue 20, item 7)."""

from __future__ import annotations

import tracemalloc

import numpy as np

from napari_nanosims import accumulate, depth_profile, roi_table
from napari_nanosims.model import Acquisition

LABELS = ["12C", "13C"]


def _acquisition(seed=0, shape=(20, 24)):
    counts = np.random.default_rng(seed).poisson(50, size=(3, 2) + shape).astype(np.float64)
    return Acquisition.from_arrays(counts, LABELS, pixel_size_um=0.1)


def _labels(ids, shape=(20, 24)):
    labels = np.zeros(shape, np.int64)
    labels[2:12, 3:13] = ids[0]  # a 10 x 10 ROI
    labels[14:18, 15:22] = ids[1]
    return labels


def _sums(counts, labels, roi):
    """Counts of each mass inside ``roi``, summed over frames (written out here)."""
    return [counts[:, k][:, labels == roi].sum() for k in range(counts.shape[1])]


def test_a_huge_roi_number_costs_what_a_small_one_does():
    acquisition = _acquisition()
    labels = _labels((7, 10**7))
    roi_table(acquisition, _labels((1, 2)), ["13C/12C"])  # imports pandas, scipy.stats
    depth_profile(acquisition, _labels((1, 2)), "13C/12C")
    tracemalloc.start()
    table = roi_table(acquisition, labels, ["13C/12C"])
    profile = depth_profile(acquisition, labels, "13C/12C")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # one float64 per possible number would be 80 MB per array
    assert peak < 8 * 2**20, peak
    assert sorted(set(table["roi"])) == [7, 10**7]
    assert sorted(set(profile["roi"])) == [7, 10**7]
    counts = np.asarray(acquisition.counts)
    for roi in (7, 10**7):
        expected = _sums(counts, labels, roi)
        rows = table[table["roi"] == roi].set_index("quantity")
        assert rows.loc["12C", "value"] == expected[0]
        assert rows.loc["13C", "value"] == expected[1]
        assert rows.loc["13C/12C", "value"] == expected[1] / expected[0]
        assert rows.loc["12C", "n_pixels"] == (labels == roi).sum()
        frames = profile[profile["roi"] == roi].sort_values("frame")
        per_frame = [counts[f, 1][labels == roi].sum() / counts[f, 0][labels == roi].sum()
                     for f in range(3)]
        np.testing.assert_allclose(frames["value"], per_frame, rtol=1e-12)


def test_numbers_beyond_int32_and_no_background_keep_their_numbers():
    acquisition = _acquisition(1)
    labels = _labels((2**40, 3))
    labels[labels == 0] = 5  # every pixel in some ROI: no background at all
    total = accumulate(acquisition)
    table = roi_table(total, labels)
    counts = np.asarray(acquisition.counts)
    assert sorted(set(table["roi"])) == [3, 5, 2**40]
    for roi in (3, 5, 2**40):
        row = table[(table["roi"] == roi) & (table["quantity"] == "13C")]
        assert row["value"].item() == _sums(counts, labels, roi)[1]
