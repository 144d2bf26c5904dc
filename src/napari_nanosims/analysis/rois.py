"""Regions of interest: segmentation, per-ROI ratios of sums with errors, dispersion tests.

Per-frame ROI sums are exact counts: after alignment each ROI is mapped back into the
frames as they were before it (``Acquisition.unaligned``), so sub-pixel shifts never
interpolate the counts that errors and the dispersion test rely on.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..model import Acquisition
from ._roi_frames import _frame_plan, _frame_sums, _subpixel_history
from .accumulate import Accumulation, _frame_indices
from .bounds import THRESHOLDS
from .classes import check_classes, with_classes
from .expression import Node, evaluate_node, parse
from .rates import detection_limit

__all__ = ["segment_rois", "roi_table", "depth_profile"]


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


# -- dispersion across frames ------------------------------------------------------------
# Positive (A, B) pairs at which an expression of two masses is checked to depend on
# A/B alone (Euler: A df/dA + B df/dB = 0 for a function of the ratio).
_PROBE_A = np.array([1.3, 0.21, 3.7, 17.0, 0.05])
_PROBE_B = np.array([0.7, 5.0, 2.9, 0.04, 11.0])


def _ratio_pair(node: Node):
    """(A, B) when the expression uses two masses and depends on their ratio A/B only
    (A/B, 1000*A/B, 100*A/(A+B), A/(B+A), delta(A/B, R), log(A/B), ...), else None."""
    used = node.labels()
    if len(used) != 2:
        return None
    result = evaluate_node(node, {used[0]: _PROBE_A, used[1]: _PROBE_B})
    d_a = np.broadcast_to(result.gradient.get(used[0], 0.0), _PROBE_A.shape)
    d_b = np.broadcast_to(result.gradient.get(used[1], 0.0), _PROBE_B.shape)
    euler, scale = _PROBE_A * d_a + _PROBE_B * d_b, np.abs(_PROBE_A * d_a) + np.abs(
        _PROBE_B * d_b)
    if not (np.all(np.isfinite(result.value)) and np.all(np.isfinite(scale))
            and np.all(scale > 0) and np.all(np.abs(euler) <= 1e-9 * scale)):
        return None
    return used[0], used[1]


def _binomial_dispersion(a_k: np.ndarray, b_k: np.ndarray):
    """chi2 and dof of A_k ~ Binomial(A_k + B_k, p) across frames (rows), per ROI (columns).

    ``p`` is estimated as sum A / sum(A + B); frames with no counts are skipped; NaN where
    fewer than two frames have counts or one mass has none at all.
    """
    n_k = a_k + b_k
    with np.errstate(invalid="ignore", divide="ignore"):
        p = a_k.sum(axis=0) / n_k.sum(axis=0)
        expected_variance = n_k * p * (1 - p)
        terms = np.where(n_k > 0, (a_k - n_k * p) ** 2 / expected_variance, 0.0)
    used = (n_k > 0).sum(axis=0)
    valid = (used > 1) & (p > 0) & (p < 1)
    chi2 = np.where(valid, terms.sum(axis=0), np.nan)
    return chi2, np.where(valid, used - 1, np.nan).astype(float)


def _weighted_dispersion(values: np.ndarray, sigmas: np.ndarray):
    """chi2 and dof of per-frame values (rows) around their variance-weighted mean."""
    usable = np.isfinite(values) & np.isfinite(sigmas) & (sigmas > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = np.where(usable, 1.0 / np.where(usable, sigmas, 1.0) ** 2, 0.0)
        values = np.where(usable, values, 0.0)
        mean = (weights * values).sum(axis=0) / weights.sum(axis=0)
        chi2 = (weights * (values - mean) ** 2).sum(axis=0)
    used = usable.sum(axis=0)
    return np.where(used > 1, chi2, np.nan), np.where(used > 1, used - 1, np.nan).astype(float)


def _check_labels(labels, shape) -> tuple[np.ndarray, np.ndarray]:
    """The ROI image numbered 1..n in the order of its ids, and the ids (``ids[k]`` is
    the original number of ROI k + 1).

    Memory then grows with the number of ROIs, not with the largest id: one ROI numbered
    10**8 costs what ROI 1 does.
    """
    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        raise ValueError(f"labels must have the image's shape {tuple(shape)}; got "
                         f"{labels.shape}")
    if labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
        raise ValueError("labels must be non-negative whole numbers (0 = background)")
    ids, compact = np.unique(labels, return_inverse=True)
    compact = compact.reshape(labels.shape).astype(np.int64)
    if ids.size and ids[0] == 0:
        return compact, ids[1:].astype(np.int64)
    return compact + 1, ids.astype(np.int64)


def _per_roi(labels: np.ndarray, image: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``image`` over each ROI 1..n (NaN pixels, outside the field, count 0)."""
    values = np.where(np.isfinite(image), image, 0.0)
    return np.bincount(labels.ravel(), weights=values.ravel(), minlength=n + 1)[1:]


def _expression_values(node: Node, sums: dict, variances: dict):
    result = evaluate_node(node, sums)
    value = np.broadcast_to(result.value, next(iter(sums.values())).shape).astype(float)
    variance = sum((derivative ** 2) * variances[label]
                   for label, derivative in result.gradient.items())
    return value, np.sqrt(np.asarray(variance, dtype=float) * np.ones_like(value))


def _warn_inexact(name: str, reason: str) -> None:
    warnings.warn(f"{name}: {reason}; the ROI errors and the dispersion test are "
                  "approximate", UserWarning, stacklevel=3)


def roi_table(source, labels, expressions=(), *, frames=None, classes=None):
    """One tidy table of ROI statistics: channel totals and expressions with their errors.

    Parameters
    ----------
    source : Acquisition or Accumulation
        An Acquisition keeps its frames, so the sums are exact counts and the dispersion
        test runs; an Accumulation gives sums only.
    labels : array_like of int, (height, width)
        ROI image on the (aligned) frames, 0 = background. No pixel inside an ROI is ever
        thresholded away.
    expressions : sequence of str
        Expressions of the masses (see :func:`napari_nanosims.evaluate`), evaluated on the
        ROI's summed counts: a ratio of sums, never a mean of pixel ratios.
    frames : sequence of int, optional
        Frames to use (Acquisition only, indices of its frames); default all.
    classes : mapping, optional
        ``{roi label: class name}`` (text or whole number): the ``class`` column (None
        for the ROIs not named). See :func:`~napari_nanosims.classes_from_labels` and
        :func:`~napari_nanosims.classes_from_rule`.

    Returns
    -------
    pandas.DataFrame
        One row per ROI and quantity: ``roi``, ``class`` (with ``classes``),
        ``quantity``, ``value``, ``sigma``, ``detection_limit``,
        ``n_pixels``, ``area_um2`` (µm²), ``centroid_y_um``, ``centroid_x_um`` (µm),
        ``equivalent_diameter_um`` (µm), ``frames_used``, ``chi2``, ``dof``, ``p_value``,
        ``mswd``, ``sigma_inflated``, ``exact_counts``. ``detection_limit`` is the
        smallest excess of the row's quantity that the ROI's counts can detect (one-sided
        alpha 0.05, power 0.8): for an expression of two masses A, B that depends on A/B
        alone, :func:`~napari_nanosims.detection_limit` of ``N = A + B`` and
        ``F = A/N`` (a fraction) times ``|df/dF|`` (in the row's unit); NaN for channel
        rows and other expressions. Channel rows hold total counts and
        sqrt of the summed variance. ``n_pixels``, the area and the centroid count only
        the ROI's pixels that some used frame covered (coverage > 0). Expression rows
        carry a dispersion test across frames (NaN for an Accumulation or one frame):
        for an expression of two masses A, B that depends on A/B alone, ``chi2`` tests
        whether the raw ``A_k`` are binomial in ``A_k + B_k`` with one fraction for all
        frames (``dof`` = frames used - 1); for other expressions, a variance-weighted
        chi-square of the per-frame values around their weighted mean. ``mswd`` =
        chi2/dof, ``sigma_inflated`` = sigma * sqrt(max(mswd, 1)). ``exact_counts`` says
        whether the sums are of recorded pixels (see Notes).

    Notes
    -----
    ROIs are drawn on the aligned image. When the acquisition was aligned by
    ``align_frames``, it keeps the acquisition before alignment (``unaligned``): each
    ROI is mapped back into each unshifted frame with that frame's translation (a raw
    pixel belongs to the ROI its centre lands in, whole pixels, nothing wraps), and
    the counts of the unshifted frames are summed there. Per-frame ROI sums are then
    exact counts even after sub-pixel shifts, and the binomial test uses the raw counts
    (before detector corrections). Frames left out after alignment are followed. When
    the frames before alignment are not available (or the counts were changed after
    alignment, as a correction after whole-pixel alignment does) the aligned frames are
    summed: exact for whole-pixel shifts, approximate after sub-pixel shifts, which
    warns and sets ``exact_counts`` False.
    """
    import pandas as pd
    from scipy import stats

    frames_kept = isinstance(source, Acquisition)
    if frames is not None and not frames_kept:
        raise ValueError("frames can only be chosen for an Acquisition (an Accumulation "
                         "is already summed)")
    if not frames_kept and not isinstance(source, Accumulation):
        raise ValueError("source must be an Acquisition or an Accumulation, not "
                         f"{type(source).__name__}")
    labels_list = list(source.labels)
    channels = list(range(len(labels_list)))
    if classes is not None:
        classes = check_classes(classes)
    if frames_kept:
        selected = _frame_indices(frames, source.n_frames, source.name)
        labels, ids = _check_labels(labels, source.shape[2:])
        n = ids.size
        plan = _frame_plan(source, selected)
        if not plan.exact:
            _warn_inexact(source.name, plan.reason)
        per_frame, per_frame_variance, per_frame_raw = _frame_sums(plan, labels, n, channels)
        totals, total_variances = per_frame.sum(axis=0), per_frame_variance.sum(axis=0)
        sums = {label: totals[k] for k, label in enumerate(labels_list)}
        variances = {label: total_variances[k] for k, label in enumerate(labels_list)}
        coverage = (np.asarray(source.coverage)[list(selected)].sum(axis=0) if
                    source.coverage is not None else np.ones(labels.shape))
        exact = plan.exact
        n_frames_used = len(selected)
    else:
        labels, ids = _check_labels(labels, source.coverage.shape)
        n = ids.size
        sums = {label: _per_roi(labels, source.counts[k], n)
                for k, label in enumerate(labels_list)}
        variances = {label: _per_roi(labels, source.variance[k], n)
                     for k, label in enumerate(labels_list)}
        coverage = source.coverage
        exact = not _subpixel_history(source.history)
        if not exact:
            _warn_inexact("accumulation", "the sums of a sub-pixel aligned acquisition are "
                          "interpolated counts (pass the aligned Acquisition itself for "
                          "exact counts)")
        n_frames_used = len(source.frames)
    rois = ids  # the ROIs' own numbers
    present = np.bincount(labels.ravel(), minlength=n + 1)[1:] > 0
    if classes is not None:
        check_classes(classes, rois[present])
    covered = np.where(coverage > 0, labels, 0).ravel()
    pixels = np.bincount(covered, minlength=n + 1)[1:]
    yy, xx = np.indices(labels.shape)
    px = source.pixel_size_um
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid_y = (np.bincount(covered, yy.ravel(), n + 1)[1:] / pixels + 0.5) * px
        centroid_x = (np.bincount(covered, xx.ravel(), n + 1)[1:] / pixels + 0.5) * px
    area = pixels * px ** 2
    geometry = dict(n_pixels=pixels, area_um2=area, centroid_y_um=centroid_y,
                    centroid_x_um=centroid_x,
                    equivalent_diameter_um=2 * np.sqrt(area / np.pi),
                    frames_used=np.full(n, n_frames_used))
    tables = []

    def rows(quantity, value, sigma, chi2=None, dof=None, detection=None):
        nan = np.full(n, np.nan)
        chi2 = nan if chi2 is None else chi2
        dof = nan if dof is None else dof
        detection = nan if detection is None else detection
        with np.errstate(invalid="ignore", divide="ignore"):
            mswd = chi2 / dof
            p_value = np.where(dof > 0, stats.chi2.sf(chi2, np.maximum(dof, 1)), np.nan)
            inflated = np.where(np.isfinite(mswd), sigma * np.sqrt(np.maximum(mswd, 1.0)),
                                np.nan)
        tables.append(pd.DataFrame(dict(roi=rois, quantity=quantity, value=value,
                                        sigma=sigma, detection_limit=detection,
                                        **geometry, chi2=chi2, dof=dof,
                                        p_value=p_value, mswd=mswd, sigma_inflated=inflated,
                                        exact_counts=np.full(n, exact)))[present])

    for label in labels_list:
        rows(label, sums[label], np.sqrt(variances[label]))
    for expression in expressions:
        node = parse(expression, labels_list)
        value, sigma = _expression_values(node, sums, variances)
        chi2 = dof = None
        pair = _ratio_pair(node)
        detection = None if pair is None else _detection(node, pair, sums)
        if frames_kept and n_frames_used > 1:
            if pair is not None:
                a, b = (labels_list.index(label) for label in pair)
                chi2, dof = _binomial_dispersion(per_frame_raw[:, a], per_frame_raw[:, b])
            else:
                frame_sums = {label: per_frame[:, k] for k, label in enumerate(labels_list)}
                frame_variances = {label: per_frame_variance[:, k]
                                   for k, label in enumerate(labels_list)}
                chi2, dof = _weighted_dispersion(
                    *_expression_values(node, frame_sums, frame_variances))
        rows(node.text(), value, sigma, chi2, dof, detection)
    if not tables:
        table = pd.DataFrame(columns=["roi", "quantity", "value", "sigma", "detection_limit",
                                      *geometry, "chi2", "dof", "p_value", "mswd",
                                      "sigma_inflated", "exact_counts"])
    else:
        table = pd.concat(tables, ignore_index=True)
    return table if classes is None else with_classes(table, classes)


def _detection(node: Node, pair, sums: dict) -> np.ndarray:
    """Smallest detectable excess of an expression of A/B for each ROI's counts: the
    detection limit of the fraction F = A/(A+B) times |df/dF| = N |df/dA - df/dB|
    (A = F N, B = (1 - F) N at fixed N)."""
    a, b = (np.asarray(sums[label], dtype=float) for label in pair)
    total = a + b
    result = np.full(total.shape, np.nan)
    usable = np.isfinite(total) & (total > 0) & (a >= 0) & (b >= 0)
    if not usable.any():
        return result
    gradient = evaluate_node(node, {pair[0]: a[usable], pair[1]: b[usable]}).gradient
    slope = total[usable] * (np.asarray(gradient.get(pair[0], 0.0))
                             - np.asarray(gradient.get(pair[1], 0.0)))
    limit = detection_limit(total[usable], a[usable] / total[usable])
    result[usable] = np.abs(slope) * limit
    return result


def depth_profile(source: Acquisition, labels, expression: str):
    """The expression of each ROI in each frame.

    Parameters
    ----------
    source : Acquisition
        The frames (aligned or not).
    labels : array_like of int, (height, width)
        ROI image on the (aligned) frames, 0 = background.
    expression : str
        An expression of the masses (see :func:`napari_nanosims.evaluate`).

    Returns
    -------
    pandas.DataFrame
        ``roi``, ``frame`` (index of the frames of ``source``), ``value`` and ``sigma``:
        the expression of the frame's ROI sums and its first-order error from their
        variances. After alignment the ROIs are mapped back into the unshifted frames as
        in :func:`roi_table`, so each frame's sums are exact counts.
    """
    import pandas as pd

    if not isinstance(source, Acquisition):
        raise ValueError("depth_profile needs an Acquisition (its frames), not "
                         f"{type(source).__name__}")
    labels, ids = _check_labels(labels, source.shape[2:])
    n = ids.size
    node = parse(expression, source.labels)
    used = node.labels()
    indices = [source.labels.index(label) for label in used]
    plan = _frame_plan(source, range(source.n_frames))
    if not plan.exact:
        _warn_inexact(source.name, plan.reason)
    counts, variances, _ = _frame_sums(plan, labels, n, indices)
    sums = {label: counts[:, k] for k, label in enumerate(used)}
    var = {label: variances[:, k] for k, label in enumerate(used)}
    if not used:  # a constant: no counts involved
        sums = {"": np.zeros((source.n_frames, n))}
        var = {}
    value, sigma = _expression_values(node, sums, var)  # (frames, rois)
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=n + 1)[1:] > 0)
    frame_index = np.repeat(np.arange(source.n_frames), len(present))
    roi_index = np.tile(present, source.n_frames)
    return pd.DataFrame({"roi": ids[roi_index], "frame": frame_index,
                         "value": value[frame_index, roi_index],
                         "sigma": sigma[frame_index, roi_index]})
