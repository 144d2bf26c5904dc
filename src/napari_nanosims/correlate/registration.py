"""Registration of an external image to a NanoSIMS image from landmark pairs, optionally
refined by mutual information; saved and loaded as JSON.

Coordinates are micrometres in napari's axis order, (y, x): a pixel (row, column) of an
image with pixel size ``p`` has its centre at ``(row * p, column * p)``, as napari
places it with ``scale=(p, p)``. :attr:`ImageRegistration.matrix` maps moving (y, x) µm
to fixed (y, x) µm, so a napari layer of the moving image with ``scale=(p_moving,
p_moving)`` and ``affine=matrix`` overlays the NanoSIMS layers (scale ``p_fixed``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings

import numpy as np

from .._errors import RegistrationWarning

__all__ = ["ImageRegistration", "register_images", "MODELS", "MIN_PAIRS",
           "RegistrationWarning"]

#: The models, fewest parameters first.
MODELS = ("translation", "rigid", "similarity", "affine", "projective")
#: The fewest landmark pairs that determine each model.
MIN_PAIRS = {"translation": 1, "rigid": 2, "similarity": 2, "affine": 3, "projective": 4}
#: The most landmark pairs (a click tool makes tens; more is a mistake or hostile input).
MAX_PAIRS = 10_000
_FORMAT = "napari-nanosims image registration"


def _fit(model: str, moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """The 3x3 matrix of ``model`` that best maps ``moving`` onto ``fixed`` points
    (least squares; scikit-image's estimators for all but the translation)."""
    if model == "translation":  # least squares: the mean displacement
        matrix = np.eye(3)
        matrix[:2, 2] = (fixed - moving).mean(axis=0)
        return matrix
    from skimage import transform

    kind = {"rigid": transform.EuclideanTransform,
            "similarity": transform.SimilarityTransform,
            "affine": transform.AffineTransform,
            "projective": transform.ProjectiveTransform}[model]
    # Points in (y, x) order give the matrix in (y, x) order: the estimators treat the
    # two columns alike (a swap of axes keeps rotations rotations).
    if hasattr(kind, "from_estimate"):
        estimated = kind.from_estimate(moving, fixed)
        ok = bool(estimated)
    else:  # scikit-image < 0.26
        estimated = kind()
        ok = estimated.estimate(moving, fixed)
    if not ok or not np.all(np.isfinite(estimated.params)):
        raise ValueError(f"landmarks: the {model} model cannot be fitted to these pairs "
                         "(points on one line, or repeated?)")
    return np.asarray(estimated.params, dtype=np.float64)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    homogeneous = np.c_[points, np.ones(len(points))] @ matrix.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return homogeneous[:, :2] / homogeneous[:, 2:]


def _check_landmarks(landmarks, model: str) -> np.ndarray:
    try:
        pairs = np.asarray(landmarks, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("landmarks must be numbers of shape (n, 2, 2): n pairs of "
                         "(fixed (y, x) µm, moving (y, x) µm)") from None
    if pairs.ndim != 3 or pairs.shape[1:] != (2, 2):
        raise ValueError("landmarks must have shape (n, 2, 2): n pairs of (fixed (y, x) "
                         f"µm, moving (y, x) µm); got {pairs.shape}")
    if not np.all(np.isfinite(pairs)):
        raise ValueError("landmarks must be finite numbers (µm)")
    if len(pairs) > MAX_PAIRS:
        raise ValueError(f"landmarks: {len(pairs)} pairs; at most {MAX_PAIRS}")
    if len(pairs) < MIN_PAIRS[model]:
        raise ValueError(f"landmarks: the {model} model needs at least {MIN_PAIRS[model]} "
                         f"pair(s) of points; got {len(pairs)}")
    return pairs


def _check_image(image, name: str) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 2 or array.dtype.kind not in "biuf" or min(array.shape) < 2:
        raise ValueError(f"{name} must be a 2-D image of numbers (at least 2 x 2 pixels); "
                         f"got {array.dtype} of shape {array.shape}")
    return array


def _check_pixel(value, name: str) -> float:
    from .._checks import check_number

    return check_number(value, name, float, unit="µm", above=0.0, maximum=1e6)


@dataclasses.dataclass(frozen=True, eq=False)
class ImageRegistration:
    """Where a moving (external) image lies on a fixed (NanoSIMS) image.

    Attributes
    ----------
    matrix : numpy.ndarray
        (3, 3) homogeneous matrix mapping moving (y, x) µm to fixed (y, x) µm (napari's
        axis order: a layer's ``affine``).
    model : str
        One of :data:`MODELS`.
    fixed_pixel_um, moving_pixel_um : float
        Pixel sizes, µm.
    fixed_shape, moving_shape : tuple of int
        (height, width) of the two images, pixels.
    landmarks : numpy.ndarray or None
        (n, 2, 2) pairs of (fixed (y, x) µm, moving (y, x) µm).
    refinement : dict or None
        What the intensity refinement did (see :func:`register_images`).
    """

    matrix: np.ndarray
    model: str
    fixed_pixel_um: float
    moving_pixel_um: float
    fixed_shape: tuple[int, int]
    moving_shape: tuple[int, int]
    landmarks: np.ndarray | None = None
    refinement: dict | None = None

    def transform(self, points_um) -> np.ndarray:
        """Map moving (y, x) µm points, shape (n, 2) or (2,), to fixed (y, x) µm."""
        points = np.asarray(points_um, dtype=np.float64)
        single = points.ndim == 1
        points = np.atleast_2d(points)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"points_um must have shape (n, 2) in (y, x) µm; got "
                             f"{np.shape(points_um)}")
        mapped = _apply(self.matrix, points)
        return mapped[0] if single else mapped

    def inverse(self, points_um) -> np.ndarray:
        """Map fixed (y, x) µm points, shape (n, 2) or (2,), to moving (y, x) µm."""
        inverted = dataclasses.replace(self, matrix=np.linalg.inv(self.matrix))
        return inverted.transform(points_um)

    @property
    def residuals_um(self) -> np.ndarray:
        """Per landmark: the distance between its fixed point and its mapped moving
        point, µm (empty without landmarks)."""
        if self.landmarks is None:
            return np.zeros(0)
        mapped = self.transform(self.landmarks[:, 1])
        return np.hypot(*(mapped - self.landmarks[:, 0]).T)

    @property
    def rms_um(self) -> float:
        """Root mean square of :attr:`residuals_um` (NaN without landmarks)."""
        residuals = self.residuals_um
        return float(np.sqrt(np.mean(residuals ** 2))) if residuals.size else math.nan

    @property
    def loo_um(self) -> float:
        """Leave-one-out error, µm: the RMS distance of each landmark from where the
        model fitted to the other pairs puts it. It estimates the error at a point that
        is not a landmark (the residuals themselves are too optimistic). NaN with no more
        pairs than the model needs."""
        if self.landmarks is None or len(self.landmarks) <= MIN_PAIRS[self.model]:
            return math.nan
        errors = []
        for left_out in range(len(self.landmarks)):
            rest = np.delete(self.landmarks, left_out, axis=0)
            try:
                matrix = _fit(self.model, rest[:, 1], rest[:, 0])
            except ValueError:  # the others alone are degenerate: no estimate
                return math.nan
            point = _apply(matrix, self.landmarks[left_out:left_out + 1, 1])[0]
            errors.append(np.hypot(*(point - self.landmarks[left_out, 0])))
        return float(np.sqrt(np.mean(np.square(errors))))

    # -- JSON ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain JSON-ready values (what :meth:`save` writes)."""
        return {"format": _FORMAT, "version": 1, "model": self.model,
                "matrix": self.matrix.tolist(), "fixed_pixel_um": self.fixed_pixel_um,
                "moving_pixel_um": self.moving_pixel_um,
                "fixed_shape": list(self.fixed_shape), "moving_shape": list(self.moving_shape),
                "landmarks": None if self.landmarks is None else self.landmarks.tolist(),
                "residuals_um": self.residuals_um.tolist(),
                "rms_um": None if math.isnan(self.rms_um) else self.rms_um,
                "refinement": self.refinement}

    @classmethod
    def from_dict(cls, values, source: str = "registration") -> ImageRegistration:
        """The registration :meth:`to_dict` described, checked (ValueError naming
        ``source`` and the field otherwise)."""
        if not isinstance(values, dict) or values.get("format") != _FORMAT:
            raise ValueError(f"{source}: not a napari-nanosims image registration "
                             f"(no \"format\": \"{_FORMAT}\")")
        try:
            model = values["model"]
            if model not in MODELS:
                raise ValueError(f"model {model!r} is not one of {', '.join(MODELS)}")
            matrix = np.asarray(values["matrix"], dtype=np.float64)
            if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)) or \
                    abs(np.linalg.det(matrix)) < 1e-300:
                raise ValueError("matrix must be an invertible 3 x 3 matrix of numbers")
            shapes = []
            for key in ("fixed_shape", "moving_shape"):
                shape = tuple(int(v) for v in values[key])
                if len(shape) != 2 or min(shape) < 1 or max(shape) > 10**6:
                    raise ValueError(f"{key} must be (height, width) in pixels")
                shapes.append(shape)
            landmarks = values.get("landmarks")
            if landmarks is not None:
                landmarks = _check_landmarks(landmarks, model)
            refinement = values.get("refinement")
            if refinement is not None and not isinstance(refinement, dict):
                raise ValueError("refinement must be an object or null")
            return cls(matrix, model, _check_pixel(values["fixed_pixel_um"], "fixed_pixel_um"),
                       _check_pixel(values["moving_pixel_um"], "moving_pixel_um"),
                       shapes[0], shapes[1], landmarks, refinement)
        except KeyError as exc:
            raise ValueError(f"{source}: the field {exc.args[0]!r} is missing") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from None

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the registration as JSON (atomically; an existing file is kept unless
        ``overwrite``)."""
        from ..export._files import atomic_output

        text = json.dumps(self.to_dict(), indent=2)
        with atomic_output(path, overwrite) as temporary:
            temporary.write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> ImageRegistration:
        """Read a registration :meth:`save` wrote (ValueError naming the file if it is
        not one)."""
        name = os.fspath(path)
        try:
            if os.path.getsize(name) > 16 * 2**20:  # 10 000 landmarks take < 1 MB
                raise ValueError(f"{name}: too large for a registration file")
            with open(name, encoding="utf-8") as handle:
                values = json.load(handle)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{name}: not a JSON registration file ({exc})") from None
        return cls.from_dict(values, name)


def register_images(fixed, moving, *, fixed_pixel_um: float, moving_pixel_um: float,
                    landmarks=None, model: str = "similarity",
                    refine: str | None = None) -> ImageRegistration:
    """Register a moving (external) image to a fixed (NanoSIMS) image.

    Parameters
    ----------
    fixed : array_like, (height, width)
        The NanoSIMS image (an SE image or a mass sum).
    moving : array_like, (height, width)
        The external image (EM, fluorescence, confocal, Raman...).
    fixed_pixel_um, moving_pixel_um : float
        Their pixel sizes, µm (they may differ a hundredfold).
    landmarks : array_like, (n, 2, 2), optional
        n pairs of (fixed (y, x) µm, moving (y, x) µm): the same feature clicked on both
        images. At least :data:`MIN_PAIRS` [model] pairs. Without landmarks (only with
        ``refine="intensity"``) the refinement starts from the images' centres on top of
        each other, no rotation.
    model : str
        ``"translation"``, ``"rigid"`` (rotation + translation), ``"similarity"`` (+ one
        scale), ``"affine"`` (+ shear, two scales) or ``"projective"``.
    refine : None or "intensity"
        ``"intensity"``: refine the landmark fit by maximising the Mattes mutual
        information of the two images (SimpleITK, ``pip install
        napari-nanosims[correlate]``; any contrast: inverted EM against SE works). Not
        for the projective model.

    Returns
    -------
    ImageRegistration
        Its ``refinement`` says (with ``refine``) the metric before and after, the
        landmark RMS before and after (µm; the landmark fit minimises it, so refining
        can only raise it: a rise beyond the clicking error means the refinement went
        astray) and whether the refined matrix was kept. It is kept when the metric
        improved and the landmark RMS stayed below twice the landmark fit's RMS plus one
        fixed pixel; otherwise a :class:`RegistrationWarning` says so and the landmark
        fit is returned.

    Raises
    ------
    ValueError
        An unknown model, too few pairs, images that are not 2-D, bad pixel sizes.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    if refine not in (None, "intensity"):
        raise ValueError(f"refine must be None or 'intensity'; got {refine!r}")
    fixed = _check_image(fixed, "fixed")
    moving = _check_image(moving, "moving")
    fixed_pixel_um = _check_pixel(fixed_pixel_um, "fixed_pixel_um")
    moving_pixel_um = _check_pixel(moving_pixel_um, "moving_pixel_um")
    if landmarks is None:
        if refine is None:
            raise ValueError("register_images needs landmarks, or refine='intensity' to "
                             "register the images by their contents alone")
        pairs = None
        centre = np.array([(np.array(fixed.shape) - 1) / 2 * fixed_pixel_um,
                           (np.array(moving.shape) - 1) / 2 * moving_pixel_um])
        matrix = _fit("translation", centre[1:], centre[:1])
    else:
        pairs = _check_landmarks(landmarks, model)
        matrix = _fit(model, pairs[:, 1], pairs[:, 0])
    result = ImageRegistration(matrix, model, fixed_pixel_um, moving_pixel_um,
                               tuple(fixed.shape), tuple(moving.shape), pairs)
    if refine is None:
        return result
    if model == "projective":
        raise ValueError("refine='intensity' supports the translation, rigid, similarity "
                         "and affine models, not projective")
    from ._intensity import refine_by_mutual_information

    refined, before, after = refine_by_mutual_information(
        fixed, moving, matrix, model, fixed_pixel_um, moving_pixel_um)
    candidate = dataclasses.replace(result, matrix=refined)
    report = {"method": "Mattes mutual information (SimpleITK)",
              "metric_before": before, "metric_after": after}
    keep = after < before  # SimpleITK's metric is the negative mutual information
    if pairs is not None:
        rms_before, rms_after = result.rms_um, candidate.rms_um
        report.update(landmark_rms_before_um=rms_before, landmark_rms_after_um=rms_after)
        keep = keep and rms_after <= 2 * rms_before + fixed_pixel_um
    report["kept"] = bool(keep)
    if not keep:
        warnings.warn("register_images: the intensity refinement did not improve the "
                      "registration (metric or landmark residuals); the landmark fit is "
                      "kept", RegistrationWarning, stacklevel=2)
        return dataclasses.replace(result, refinement=report)
    return dataclasses.replace(candidate, refinement=report)
