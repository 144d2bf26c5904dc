"""Refinement of a registration by mutual information, with SimpleITK (the optional
``[correlate]`` extra).

Mutual information compares the two images through their joint histogram, so it needs
no common contrast: an inverted, blurred EM image against a NanoSIMS SE image works.
SimpleITK works in (x, y) order and its transforms map fixed points to moving points,
the reverse of :attr:`ImageRegistration.matrix`; the conversions are here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["refine_by_mutual_information"]

_SWAP = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # (y, x) <-> (x, y)


def _sitk():
    try:
        import SimpleITK
    except ImportError:
        raise ImportError("refine='intensity' needs SimpleITK: pip install "
                          "'napari-nanosims[correlate]' (or pip install SimpleITK)") from None
    return SimpleITK


def _image(sitk, array: np.ndarray, pixel_um: float, origin_um: float):
    """A float32 SimpleITK image with its pixel size and the centre of pixel 0 (µm);
    NaN (pixels no frame covered) become the smallest value."""
    values = np.asarray(array, dtype=np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        values = np.where(finite, values, values[finite].min() if finite.any() else 0.0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(values))
    image.SetSpacing((pixel_um, pixel_um))
    image.SetOrigin((origin_um, origin_um))
    return image


def _coarser(moving: np.ndarray, moving_pixel_um: float, fixed_pixel_um: float):
    """The moving image averaged over k x k blocks so that its pixels are no finer than
    half the fixed pixels (a 5 nm SEM image against 80 nm NanoSIMS pixels would otherwise
    be sampled at a few points per fixed pixel and alias); with its pixel size and the
    position of its first pixel's centre (µm)."""
    k = max(1, int(fixed_pixel_um / (2 * moving_pixel_um)))
    if k == 1:
        return moving.astype(np.float32), moving_pixel_um, 0.0
    height, width = (moving.shape[0] // k) * k, (moving.shape[1] // k) * k
    blocks = moving[:height, :width].astype(np.float32).reshape(height // k, k, width // k, k)
    return blocks.mean(axis=(1, 3)), k * moving_pixel_um, (k - 1) / 2 * moving_pixel_um


def _to_sitk(sitk, matrix: np.ndarray, model: str, centre):
    """The SimpleITK transform (fixed (x, y) -> moving (x, y)) of our moving -> fixed
    (y, x) ``matrix``, its centre of rotation at ``centre`` (x, y) µm."""
    forward = _SWAP @ np.linalg.inv(matrix) @ _SWAP
    linear, offset = forward[:2, :2], forward[:2, 2]
    if model == "translation":
        return sitk.TranslationTransform(2, tuple(float(v) for v in offset))
    transform = {"rigid": sitk.Euler2DTransform, "similarity": sitk.Similarity2DTransform,
                 "affine": lambda: sitk.AffineTransform(2)}[model]()
    centre = np.asarray(centre, dtype=np.float64)
    transform.SetCenter(tuple(float(v) for v in centre))
    if model == "affine":
        transform.SetMatrix(tuple(float(v) for v in linear.ravel()))
    else:
        # Rotation angle and (similarity) scale of the landmark fit; rigid fits are
        # rotations already, similarity fits a scale times a rotation.
        transform.SetAngle(float(np.arctan2(linear[1, 0], linear[0, 0])))
        if model == "similarity":
            transform.SetScale(float(np.sqrt(abs(np.linalg.det(linear)))))
    # x -> L (x - c) + c + t = L x + offset  =>  t = offset - c + L c
    actual = np.asarray(transform.GetMatrix()).reshape(2, 2)
    transform.SetTranslation(tuple(float(v) for v in offset - centre + actual @ centre))
    return transform


def _from_sitk(transform) -> np.ndarray:
    """Our moving -> fixed (y, x) matrix from a SimpleITK fixed -> moving transform."""
    if hasattr(transform, "GetMatrix"):
        linear = np.asarray(transform.GetMatrix(), dtype=np.float64).reshape(2, 2)
        centre = np.asarray(transform.GetCenter(), dtype=np.float64)
        offset = np.asarray(transform.GetTranslation(), dtype=np.float64) + centre \
            - linear @ centre
    else:  # a translation
        linear, offset = np.eye(2), np.asarray(transform.GetOffset(), dtype=np.float64)
    forward = np.eye(3)
    forward[:2, :2], forward[:2, 2] = linear, offset
    return np.linalg.inv(_SWAP @ forward @ _SWAP)


def refine_by_mutual_information(fixed: np.ndarray, moving: np.ndarray, matrix: np.ndarray,
                                 model: str, fixed_pixel_um: float, moving_pixel_um: float,
                                 iterations: int = 300):
    """Maximise the Mattes mutual information from ``matrix`` on.

    Two resolution levels (half, then full); a regular-step gradient descent with the
    parameters scaled by the physical shift they cause. All pixels are sampled, so the
    result is deterministic.

    Returns
    -------
    (numpy.ndarray, float, float)
        The refined matrix (moving (y, x) µm -> fixed (y, x) µm) and the metric (negative
        mutual information: lower is better) before and after.
    """
    sitk = _sitk()
    fixed_image = _image(sitk, fixed, fixed_pixel_um, 0.0)
    coarse, coarse_pixel, origin = _coarser(moving, moving_pixel_um, fixed_pixel_um)
    moving_image = _image(sitk, coarse, coarse_pixel, origin)
    centre = (np.array(fixed.shape[::-1]) - 1) / 2 * fixed_pixel_um
    initial = _to_sitk(sitk, matrix, model, centre)

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=fixed_pixel_um, minStep=1e-4 * fixed_pixel_um,
        numberOfIterations=iterations, relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([fixed_pixel_um, 0.0])
    method.SetInitialTransform(initial, inPlace=False)
    before = float(method.MetricEvaluate(fixed_image, moving_image))
    final = method.Execute(fixed_image, moving_image)
    if hasattr(final, "GetNthTransform"):  # Execute wraps it in a composite
        final = final.GetNthTransform(0)
    final = {"translation": sitk.TranslationTransform, "rigid": sitk.Euler2DTransform,
             "similarity": sitk.Similarity2DTransform,
             "affine": sitk.AffineTransform}[model](final)
    check = sitk.ImageRegistrationMethod()
    check.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    check.SetMetricSamplingStrategy(check.NONE)
    check.SetInterpolator(sitk.sitkLinear)
    check.SetInitialTransform(final, inPlace=False)
    after = float(check.MetricEvaluate(fixed_image, moving_image))
    return _from_sitk(final), before, after
