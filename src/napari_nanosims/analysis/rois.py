"""Regions of interest: segmentation, per-ROI ratios of sums with errors, dispersion tests."""

from __future__ import annotations

import numpy as np

from ..io.acquisition import Acquisition
from .accumulate import Accumulation, accumulate
from .expression import Node, evaluate_node, parse

__all__ = ["segment_rois", "roi_table", "depth_profile"]

THRESHOLDS = ("otsu", "li", "yen", "triangle")


def segment_rois(image, *, method: str = "otsu", smoothing_px: float = 1.0,
                 min_area_px: int = 10, split_touching: bool = True) -> np.ndarray:
    """Find cells (or grains) in an image: threshold, split touching ones, drop small ones.

    Parameters
    ----------
    image : array_like, (height, width)
        Usually a channel's sum; NaN counts as background.
    method : {'otsu', 'li', 'yen', 'triangle'}
        scikit-image threshold of the smoothed image.
    smoothing_px : float
        Gaussian sigma before thresholding, pixels (0: none).
    min_area_px : int
        Objects smaller than this many pixels are removed.
    split_touching : bool
        Split touching objects by a watershed of the distance to the background.

    Returns
    -------
    numpy.ndarray of int32
        Labels 1..N, 0 for the background.
    """
    from scipy import ndimage
    from skimage import filters, morphology, segmentation

    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < 3:
        raise ValueError(f"image must be 2-D (height, width) with at least 3 x 3 pixels; "
                         f"got shape {image.shape}")
    if method not in THRESHOLDS:
        raise ValueError(f"method must be one of {THRESHOLDS}, not {method!r}")
    if isinstance(min_area_px, bool) or not isinstance(min_area_px, (int, np.integer)) or \
            min_area_px < 0:
        raise ValueError(f"min_area_px must be a whole number >= 0, not {min_area_px!r}")
    if not np.isfinite(smoothing_px) or smoothing_px < 0:
        raise ValueError(f"smoothing_px must be a number >= 0, not {smoothing_px!r}")
    finite = np.where(np.isfinite(image), image, 0.0)
    smooth = ndimage.gaussian_filter(finite, smoothing_px) if smoothing_px > 0 else finite
    if np.ptp(smooth) == 0:
        return np.zeros(image.shape, dtype=np.int32)
    threshold = getattr(filters, f"threshold_{method}")(smooth)
    mask = ndimage.binary_fill_holes(smooth > threshold)
    if split_touching:
        # One marker per clear maximum of the (smoothed) distance to the background: an
        # elongated cell has one ridge, two touching cells have two maxima.
        distance = ndimage.distance_transform_edt(mask)
        markers = ndimage.label(morphology.h_maxima(ndimage.gaussian_filter(distance, 1.0),
                                                    0.5))[0]
        labels = segmentation.watershed(-distance, markers, mask=mask)
    else:
        labels = ndimage.label(mask)[0]
    sizes = np.bincount(labels.ravel())
    labels[sizes[labels] < max(int(min_area_px), 1)] = 0
    labels, _, _ = segmentation.relabel_sequential(labels)
    return labels.astype(np.int32)


def _two_terms(node: Node):
    """(A, B) labels for A/B and A/(A+B) (or A/(B+A)) expressions, else None."""
    if node.kind != "binary" or node.value != "/" or node.children[0].kind != "label":
        return None
    a, denominator = node.children[0].value, node.children[1]
    if denominator.kind == "label":
        return a, denominator.value
    if denominator.kind == "binary" and denominator.value == "+" and all(
            child.kind == "label" for child in denominator.children):
        names = [child.value for child in denominator.children]
        if a in names and len(set(names)) == 2:
            return a, next(name for name in names if name != a)
    return None


def _check_labels(labels, shape) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        raise ValueError(f"labels must have the image's shape {tuple(shape)}; got "
                         f"{labels.shape}")
    if labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
        raise ValueError("labels must be non-negative whole numbers (0 = background)")
    return labels.astype(np.int64)


def _per_roi(labels: np.ndarray, image: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``image`` over each ROI 1..n (NaN pixels, outside the field, count 0)."""
    values = np.where(np.isfinite(image), image, 0.0)
    return np.bincount(labels.ravel(), weights=values.ravel(), minlength=n + 1)[1:]


def _frame_sums(acquisition: Acquisition, labels, frames, n, indices):
    """(frames, channels, rois) sums of counts and variances per frame."""
    counts = np.zeros((len(frames), len(indices), n))
    variances = np.zeros_like(counts)
    for row, frame in enumerate(frames):
        images = np.asarray(acquisition.counts[frame], dtype=np.float64)
        frame_variance = (np.asarray(acquisition.variance[frame], dtype=np.float64)
                          if acquisition.variance is not None else images)
        for column, index in enumerate(indices):
            counts[row, column] = _per_roi(labels, images[index], n)
            variances[row, column] = _per_roi(labels, frame_variance[index], n)
    return counts, variances


def _expression_values(node: Node, sums: dict, variances: dict):
    result = evaluate_node(node, sums)
    value = np.broadcast_to(result.value, next(iter(sums.values())).shape).astype(float)
    variance = sum((derivative ** 2) * variances[label]
                   for label, derivative in result.gradient.items())
    return value, np.sqrt(np.asarray(variance, dtype=float) * np.ones_like(value))


def roi_table(source, labels, expressions=(), *, frames=None):
    """One tidy table of ROI statistics: channel totals and expressions with their errors.

    Parameters
    ----------
    source : Acquisition or Accumulation
        An Acquisition keeps its frames, so the dispersion test runs; an Accumulation
        gives sums only.
    labels : array_like of int, (height, width)
        ROI image, 0 = background. No pixel inside an ROI is ever thresholded away.
    expressions : sequence of str
        Expressions of the masses (see :func:`napari_nanosims.evaluate`), evaluated on the
        ROI's summed counts: a ratio of sums, never a mean of pixel ratios.
    frames : sequence of int, optional
        Frames to use (Acquisition only); default all.

    Returns
    -------
    pandas.DataFrame
        One row per ROI and quantity: ``roi``, ``quantity``, ``value``, ``sigma``,
        ``n_pixels``, ``area_um2``, ``centroid_y_um``, ``centroid_x_um``,
        ``equivalent_diameter_um``, ``frames_used``, ``chi2``, ``dof``, ``p_value``,
        ``mswd``. Channel rows hold total counts and sqrt of the summed variance. For
        two-term ratios and fractions, ``chi2`` tests whether ``A/(A+B)`` varies across
        frames more than counting allows (binomial, ``dof`` = frames used - 1); NaN
        where it does not apply.

    Notes
    -----
    ROIs are drawn on the aligned image. For an acquisition aligned with whole-pixel
    shifts, each frame's aligned counts are its raw counts moved by that frame's
    translation, so the per-frame ROI sums are exact Poisson counts. After sub-pixel
    shifts they are interpolated, and the dispersion test is then only approximate.
    """
    import pandas as pd
    from scipy import stats

    frames_kept = isinstance(source, Acquisition)
    if frames is not None and not frames_kept:
        raise ValueError("frames can only be chosen for an Acquisition (an Accumulation "
                         "is already summed)")
    total = accumulate(source, frames) if frames_kept else source
    if not isinstance(total, Accumulation):
        raise ValueError("source must be an Acquisition or an Accumulation, not "
                         f"{type(source).__name__}")
    labels = _check_labels(labels, total.coverage.shape)
    n = int(labels.max()) if labels.size else 0
    rois = np.arange(1, n + 1)
    pixels = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    present = pixels > 0
    yy, xx = np.indices(labels.shape)
    px = total.pixel_size_um
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid_y = (np.bincount(labels.ravel(), yy.ravel(), n + 1)[1:] / pixels + 0.5) * px
        centroid_x = (np.bincount(labels.ravel(), xx.ravel(), n + 1)[1:] / pixels + 0.5) * px
    area = pixels * px ** 2
    geometry = dict(n_pixels=pixels, area_um2=area, centroid_y_um=centroid_y,
                    centroid_x_um=centroid_x,
                    equivalent_diameter_um=2 * np.sqrt(area / np.pi),
                    frames_used=np.full(n, len(total.frames)))
    labels_list = list(total.labels)
    sums = {label: _per_roi(labels, total.counts[k], n) for k, label in enumerate(labels_list)}
    variances = {label: _per_roi(labels, total.variance[k], n)
                 for k, label in enumerate(labels_list)}
    tables = []

    def rows(quantity, value, sigma, chi2=None, dof=None):
        nan = np.full(n, np.nan)
        chi2 = nan if chi2 is None else chi2
        dof = nan if dof is None else dof
        with np.errstate(invalid="ignore", divide="ignore"):
            mswd = chi2 / dof
            p_value = np.where(dof > 0, stats.chi2.sf(chi2, np.maximum(dof, 1)), np.nan)
        tables.append(pd.DataFrame(dict(roi=rois, quantity=quantity, value=value,
                                        sigma=sigma, **geometry, chi2=chi2, dof=dof,
                                        p_value=p_value, mswd=mswd))[present])

    for label in labels_list:
        rows(label, sums[label], np.sqrt(variances[label]))
    for expression in expressions:
        node = parse(expression, labels_list)
        value, sigma = _expression_values(node, sums, variances)
        chi2 = dof = None
        pair = _two_terms(node)
        if pair is not None and frames_kept and len(total.frames) > 1:
            per_frame, _ = _frame_sums(source, labels, total.frames, n,
                                       [labels_list.index(pair[0]), labels_list.index(pair[1])])
            a_k, b_k = per_frame[:, 0], per_frame[:, 1]
            n_k = a_k + b_k
            with np.errstate(invalid="ignore", divide="ignore"):
                p = a_k.sum(axis=0) / n_k.sum(axis=0)
                terms = np.where(n_k > 0, (a_k - n_k * p) ** 2 / (n_k * p * (1 - p)), 0.0)
            used = (n_k > 0).sum(axis=0)
            chi2 = np.where(used > 1, terms.sum(axis=0), np.nan)
            dof = np.where(used > 1, used - 1, np.nan).astype(float)
        rows(node.text(), value, sigma, chi2, dof)
    if not tables:
        return pd.DataFrame(columns=["roi", "quantity", "value", "sigma", *geometry,
                                     "chi2", "dof", "p_value", "mswd"])
    return pd.concat(tables, ignore_index=True)


def depth_profile(source: Acquisition, labels, expression: str):
    """The expression per ROI and frame: ``roi``, ``frame``, ``value``, ``sigma``.

    Uses each frame's ROI sums and their variances (first-order propagation).
    """
    import pandas as pd

    if not isinstance(source, Acquisition):
        raise ValueError("depth_profile needs an Acquisition (its frames), not "
                         f"{type(source).__name__}")
    labels = _check_labels(labels, source.shape[2:])
    n = int(labels.max()) if labels.size else 0
    node = parse(expression, source.labels)
    used = node.labels()
    indices = [source.labels.index(label) for label in used]
    frames = list(range(source.n_frames))
    counts, variances = _frame_sums(source, labels, frames, n, indices)
    present = np.bincount(labels.ravel(), minlength=n + 1)[1:] > 0
    records = []
    for row, frame in enumerate(frames):
        sums = {label: counts[row, k] for k, label in enumerate(used)}
        var = {label: variances[row, k] for k, label in enumerate(used)}
        value, sigma = _expression_values(node, sums, var)
        for roi in np.flatnonzero(present):
            records.append((roi + 1, frame, value[roi], sigma[roi]))
    return pd.DataFrame.from_records(records, columns=["roi", "frame", "value", "sigma"])
