"""napari-nanosims: open, clean and align Cameca NanoSIMS images.

The package root is Qt-free and napari-free: it holds the reader, the writer,
the processing functions and the command line. The napari plugin lives in
``napari_nanosims._napari`` and is imported only by napari.

Every public name is imported on first use (PEP 562), so that ``import napari_nanosims``
costs no scipy, dask or pandas import; ``_PUBLIC`` says which module holds each name.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__ as __version__

#: Each public name and the module that defines it (relative to this package).
_PUBLIC = {
    "ImFormatError": "._errors",
    "ImFormatWarning": "._errors",
    "ImHeader": ".io.reader",
    "load_mims": ".io.reader",
    "read_header": ".io.reader",
    "sniff_im": ".io.reader",
    "write_im": ".io.writer",
    "make_demo_im": ".io.demo",
    "HotPixelBlindSpotWarning": "._errors",
    "apply_mask": ".processing.hot_pixels",
    "infer_hot_pixels": ".processing.hot_pixels",
    "iter_remove_hot_pixels": ".processing.hot_pixels",
    "median_filter_frames": ".processing.hot_pixels",
    "remove_hot_pixels": ".processing.hot_pixels",
    "ShiftBeyondPaddingWarning": "._errors",
    "apply_translations": ".processing.alignment",
    "infer_translations": ".processing.alignment",
    "iter_apply_translations": ".processing.alignment",
    "iter_infer_translations": ".processing.alignment",
    "register_frames": ".processing.alignment",
    "write_nrrd": ".export.nrrd",
    "read_nrrd": ".export.nrrd",
    "write_lans": ".export.lans",
    "read_ome_tiff": ".export.ometiff",
    "run_batch": ".batch.pool",
    "iter_register_frames": ".processing.alignment",
    "FrameRegistration": ".processing.alignment",
    "iter_infer_hot_pixels": ".processing.hot_pixels",
    "iter_process_image_data": ".steps.pipeline",
    "process_image_data": ".steps.pipeline",
    "Acquisition": ".model",
    "Channel": ".model",
    "HistoryRecord": ".model",
    "open_acquisition": ".io.acquisition",
    "Parameter": ".steps.parameters",
    "Step": ".steps.parameters",
    "STEPS": ".steps.registry",
    "align_frames": ".steps.registry",
    "clean_hot_pixels": ".steps.registry",
    "default_alignment_channel": ".steps.registry",
    "sum_frames": ".steps.registry",
    "Recipe": ".steps.recipe",
    "RecipeCancelled": ".steps.recipe",
    "default_recipe": ".steps.recipe",
    "run_recipe": ".steps.recipe",
    "CorrectionWarning": "._errors",
    "correct_dead_time": ".steps.corrections",
    "correct_em_yield": ".steps.corrections",
    "correct_qsa": ".steps.corrections",
    "subtract_em_background": ".steps.corrections",
    "Accumulation": ".analysis.accumulate",
    "KernelVarianceWarning": "._errors",
    "accumulate": ".analysis.accumulate",
    "DerivedImage": ".analysis.ratios",
    "SignificanceImage": ".analysis.significance",
    "STANDARDS": ".analysis.ratios",
    "evaluate": ".analysis.ratios",
    "hsi_rgb": ".analysis.display",
    "significance": ".analysis.significance",
    "depth_profile": ".analysis.rois",
    "roi_table": ".analysis.rois",
    "segment_rois": ".analysis.rois",
    "open_isotope": ".io.isotope",
    "read_is_txt": ".io._companion",
    "IsotopeMeasurement": ".model.isotope",
    "SpotRatio": ".analysis.spots",
    "correct_isotope": ".analysis.spots",
    "spot_ratio": ".analysis.spots",
    "spot_table": ".analysis.spots",
    "delta_permil": ".analysis.spots",
    "concatenate": ".io.chains",
    "Mosaic": ".io.mosaic",
    "mosaic": ".io.mosaic",
    "write_mosaic_tiffs": ".export.mosaic",
}

__all__ = [
    "ImFormatError",
    "ImFormatWarning",
    "ImHeader",
    "load_mims",
    "read_header",
    "sniff_im",
    "write_im",
    "make_demo_im",
    "HotPixelBlindSpotWarning",
    "apply_mask",
    "infer_hot_pixels",
    "iter_remove_hot_pixels",
    "median_filter_frames",
    "remove_hot_pixels",
    "ShiftBeyondPaddingWarning",
    "apply_translations",
    "infer_translations",
    "iter_apply_translations",
    "iter_infer_translations",
    "register_frames",
    "write_nrrd",
    "read_nrrd",
    "write_lans",
    "read_ome_tiff",
    "run_batch",
    "iter_register_frames",
    "FrameRegistration",
    "iter_infer_hot_pixels",
    "iter_process_image_data",
    "process_image_data",
    "Acquisition",
    "Channel",
    "HistoryRecord",
    "open_acquisition",
    "Parameter",
    "Step",
    "STEPS",
    "align_frames",
    "clean_hot_pixels",
    "default_alignment_channel",
    "sum_frames",
    "Recipe",
    "RecipeCancelled",
    "default_recipe",
    "run_recipe",
    "CorrectionWarning",
    "correct_dead_time",
    "correct_em_yield",
    "correct_qsa",
    "subtract_em_background",
    "Accumulation",
    "KernelVarianceWarning",
    "accumulate",
    "DerivedImage",
    "SignificanceImage",
    "STANDARDS",
    "evaluate",
    "hsi_rgb",
    "significance",
    "depth_profile",
    "roi_table",
    "segment_rois",
    "open_isotope",
    "read_is_txt",
    "IsotopeMeasurement",
    "SpotRatio",
    "correct_isotope",
    "spot_ratio",
    "spot_table",
    "delta_permil",
    "concatenate",
    "Mosaic",
    "mosaic",
    "write_mosaic_tiffs",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use, then keep it here."""
    try:
        module = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
