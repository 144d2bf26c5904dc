"""The whole clean-and-align pipeline: ``process_image_data`` as in openformat, made right."""

from __future__ import annotations

import warnings
from collections.abc import Generator
from typing import Any

import numpy as np

from ._frames import FrameStack, run_to_completion
from .alignment import iter_apply_translations, iter_infer_translations, translation_steps
from .hot_pixels import iter_infer_hot_pixels, replace_hot_pixels
from ..io.reader import load_mims

__all__ = ["process_image_data", "iter_process_image_data", "find_detector",
           "DEFAULT_REMOVE_HOT_PIXELS"]

# remove_hot_pixels' defaults (the seed's), for reporting what was used.
DEFAULT_REMOVE_HOT_PIXELS = dict(num_outliers=3, kernel_size=3, outlier_factor=1.999,
                                 min_count=0.5, max_repeat_fraction=0.1, num_nonzero=None)


def _normalise_label(label: str) -> str:
    return "".join(label.split()).casefold()


def find_detector(labels, name: str) -> int:
    """Index of detector ``name`` in ``labels``, ignoring white space and case.

    ``'12C14N'`` finds ``'12C 14N'``. Raises ValueError listing the labels otherwise.
    """
    wanted = _normalise_label(str(name))
    for index, label in enumerate(labels):
        if _normalise_label(label) == wanted:
            return index
    raise ValueError(f"no detector {name!r}; available: {', '.join(map(repr, labels))}")


def _unique_names(labels) -> dict[str, int]:
    """Map names to indices, suffixing repeated labels (peak switching) instead of dropping."""
    names: dict[str, int] = {}
    for index, label in enumerate(labels):
        name, repeat = label, 1
        while name in names:
            repeat += 1
            name = f"{label} #{repeat}"
        names[name] = index
    return names


def _labelled(generator, step: str, total: int):
    """Relay a generator's progress as ``(step, done, total)``; return its result."""
    while True:
        try:
            done = next(generator)
        except StopIteration as stop:
            return stop.value
        yield step, done, total


def iter_process_image_data(filename, alignment_detector, padding=8, load_mims_kwargs=None,
                            remove_hot_pixels_kwargs=None, infer_translations_kwargs=None
                            ) -> Generator[tuple[str, int, int], None, dict[str, Any]]:
    """Generator form of :func:`process_image_data` for progress bars and cancelling.

    Yields ``(step, done, total)`` with step ``'hot pixels'``, ``'translations'`` or
    ``'aligning'``; returns the result dict. Nothing is produced if it is stopped early.
    """
    load_mims_kwargs = dict(load_mims_kwargs or {})
    cleaning = dict(remove_hot_pixels_kwargs or {})
    inferring = dict(infer_translations_kwargs or {})
    if "padding" in inferring:
        raise ValueError("give padding as process_image_data's own padding argument, not in "
                         "infer_translations_kwargs (it is used for both inferring and applying)")
    unknown = set(cleaning) - set(DEFAULT_REMOVE_HOT_PIXELS)
    if unknown:
        raise ValueError(f"unknown remove_hot_pixels_kwargs {sorted(unknown)}; known: "
                         f"{sorted(DEFAULT_REMOVE_HOT_PIXELS)}")

    mims = load_mims(filename, **load_mims_kwargs)
    header = mims.header
    if not header.has_data:
        raise ValueError(f"{header.path}: the file holds no pixel data (header only)")
    data = mims.data
    n_frames, n_detectors, height, width = data.shape
    labels = list(header.labels)
    alignment_index = find_detector(labels, alignment_detector)
    se_index = header.se_index
    ion_indices = [k for k in range(n_detectors) if k != se_index]
    if not ion_indices:
        raise ValueError(f"{header.path}: no ion detector to clean (only SE)")

    settings = {**DEFAULT_REMOVE_HOT_PIXELS, **cleaning}
    if settings["num_outliers"] > len(ion_indices):
        warnings.warn(
            f"{header.file_name}: num_outliers={settings['num_outliers']} but the file has only "
            f"{len(ion_indices)} ion detector(s); using num_outliers={len(ion_indices)}",
            UserWarning, stacklevel=2)
        settings["num_outliers"] = len(ion_indices)

    ions = FrameStack([data[:, k] for k in ion_indices]) if se_index is not None else data
    hot_mask, at_candidates = yield from _labelled(
        iter_infer_hot_pixels(ions, keep_filtered="candidates", **settings), "hot pixels",
        n_frames)
    # One copy of the whole file; the SE channel stays raw.
    cleaned = np.array(data, copy=True)
    replace_hot_pixels(cleaned, hot_mask, at_candidates, detectors=ion_indices)

    total = translation_steps(n_frames, inferring.get("method", "sequential"),
                              inferring.get("reference"))
    translations = yield from _labelled(
        iter_infer_translations(cleaned[:, alignment_index], padding=padding, **inferring),
        "translations", total)
    aligned = yield from _labelled(
        iter_apply_translations(cleaned, translations, padding=padding), "aligning", n_frames)
    aligned = aligned[:, :, padding:padding + height, padding:padding + width]

    pixel_size = header.pixel_size_um
    names = _unique_names(labels)
    sums = aligned.sum(axis=0)
    return {
        "total_lookup": {name: sums[index] for name, index in names.items()},
        "detector_names": labels,
        "cleaned": cleaned,
        "translations": translations,
        "aligned": aligned,
        "image_shape": (height, width),
        "image_size": (height * pixel_size, width * pixel_size),
        "pixel_size": pixel_size,
        "alignment_detector_index": alignment_index,
        "se_detector_index": se_index,
        "hot_pixels": hot_mask,
        "remove_hot_pixels_kwargs": settings,
        "header": header,
    }


def process_image_data(filename, alignment_detector, padding=8, load_mims_kwargs=None,
                       remove_hot_pixels_kwargs=None, infer_translations_kwargs=None):
    """Load a ``.im`` file, remove hot pixels, align the frames and sum them.

    Same arguments and keys as ``openformat.mims.process_image_data``, for every file
    (with or without SE, any number of detectors, one frame or many).

    Parameters
    ----------
    filename : str or path-like
        The ``.im`` file.
    alignment_detector : str
        Label of the detector to align on, e.g. ``'12C 14N'`` (white space and case
        are ignored, so ``'12C14N'`` works; ``'SE'`` is allowed).
    padding : int
        Pixels of zero padding for inferring and applying translations.
    load_mims_kwargs, remove_hot_pixels_kwargs, infer_translations_kwargs : dict, optional
        Passed to :func:`load_mims`, :func:`remove_hot_pixels` and
        :func:`infer_translations` (for example ``{'method': 'subpixel'}``).

    Returns
    -------
    dict
        ``total_lookup`` (label -> summed aligned image; repeated labels get ``' #2'``...),
        ``detector_names`` (labels, SE as ``'SE'``), ``cleaned`` (frames, detectors, height,
        width; SE raw, not aligned), ``translations`` (frames, 2) px, ``aligned`` (same shape
        as ``cleaned``), ``image_shape`` (height, width) px, ``image_size`` (height, width)
        µm, ``pixel_size`` µm (from the precise raster of Anal_param_nano),
        ``alignment_detector_index``, ``se_detector_index`` (None without SE), and in
        addition ``hot_pixels`` (frames, height, width) bool, the
        ``remove_hot_pixels_kwargs`` used and the file's ``header``.

    Raises
    ------
    ValueError
        For an unknown alignment detector (the message lists the available ones), a file
        without pixel data, or ``padding`` given inside ``infer_translations_kwargs``.

    Warns
    -----
    UserWarning
        When the file has fewer ion detectors than ``num_outliers``: it is lowered to
        the number of ion detectors.
    """
    return run_to_completion(iter_process_image_data(
        filename, alignment_detector, padding, load_mims_kwargs, remove_hot_pixels_kwargs,
        infer_translations_kwargs))
