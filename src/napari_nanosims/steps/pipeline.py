"""The whole clean-and-align pipeline: ``process_image_data`` as in openformat, made right.

It is a fixed recipe (remove hot pixels, align frames, sum) run step by step over an
:class:`~napari_nanosims.io.acquisition.Acquisition`, so it shares every parameter
definition and policy with :func:`~napari_nanosims.run_recipe`, the CLI and napari.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ..io.acquisition import open_acquisition
from .frames import ALIGN_FRAMES, REMOVE_HOT_PIXELS, SUM_FRAMES, _alignment_channel
from .progress import relay, run_to_completion

__all__ = ["process_image_data", "iter_process_image_data", "find_detector",
           "DEFAULT_REMOVE_HOT_PIXELS"]

# remove_hot_pixels' defaults (the seed's), for reporting what was used.
DEFAULT_REMOVE_HOT_PIXELS = REMOVE_HOT_PIXELS.defaults()


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


def _as_tuples(generator, name: str):
    """A step's Progress as the ``(name, done, total)`` this public generator documents."""
    return (yield from relay(generator, lambda progress: ((name, progress.done,
                                                           progress.total),)))


def iter_process_image_data(filename, alignment_detector, padding=8, load_mims_kwargs=None,
                            remove_hot_pixels_kwargs=None, infer_translations_kwargs=None
                            ) -> Generator[tuple[str, int, int], None, dict[str, Any]]:
    """Generator form of :func:`process_image_data` for progress bars and cancelling.

    Yields ``(step, done, total)`` with step ``'hot pixels'``, ``'translations'``... ; returns
    the result dict. Nothing is produced if it is stopped early.
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
    unknown = set(load_mims_kwargs) - {"byte_order", "roll_data"}
    if unknown:
        raise ValueError(f"unknown load_mims_kwargs {sorted(unknown)}; known: "
                         "['byte_order', 'roll_data']")
    cleaning = REMOVE_HOT_PIXELS.resolve(cleaning)
    aligning = ALIGN_FRAMES.resolve({**inferring, "channel": str(alignment_detector),
                                     "padding": padding})

    raw = open_acquisition(filename, **load_mims_kwargs)
    if raw.n_frames == 0:
        raise ValueError(f"{raw.header.path}: the file holds no pixel data (header only)")
    alignment_index = _alignment_channel(raw, aligning["channel"]).index
    cleaned = yield from _as_tuples(REMOVE_HOT_PIXELS.iterate(raw, **cleaning), "hot pixels")
    aligned = yield from _as_tuples(ALIGN_FRAMES.iterate(cleaned, **aligning), "aligning")
    summed = yield from _as_tuples(SUM_FRAMES.iterate(aligned), "summing")

    header = raw.header
    height, width = header.height, header.width
    pixel_size = header.pixel_size_um
    names = _unique_names(raw.labels)
    used_cleaning = {k: v for k, v in cleaned.history[-1].parameters.items()
                     if k in DEFAULT_REMOVE_HOT_PIXELS}
    return {
        "total_lookup": {name: summed.sums[index] for name, index in names.items()},
        "detector_names": list(raw.labels),
        "cleaned": cleaned.counts,
        "translations": aligned.translations,
        "aligned": aligned.counts,
        "image_shape": (height, width),
        "image_size": (height * pixel_size, width * pixel_size),
        "pixel_size": pixel_size,
        "alignment_detector_index": alignment_index,
        "se_detector_index": header.se_index,
        "hot_pixels": cleaned.hot_pixels,
        "remove_hot_pixels_kwargs": used_cleaning,
        "header": header,
        "acquisition": summed,
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
