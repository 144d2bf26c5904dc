"""napari-nanosims: open, clean and align Cameca NanoSIMS images.

The package root is Qt-free and napari-free: it holds the reader, the writer,
the processing functions and the command line. The napari plugin lives in
``napari_nanosims._napari`` and is imported only by napari.
"""

from ._errors import ImFormatError, ImFormatWarning
from .io.reader import ImHeader, load_mims, read_header, sniff_im
from .io.writer import write_im
from .io.demo import make_demo_im
from .processing.alignment import (FrameRegistration, ShiftBeyondPaddingWarning,
                                   apply_translations, infer_translations,
                                   iter_apply_translations, iter_infer_translations,
                                   iter_register_frames, register_frames)
from .processing.pipeline import iter_process_image_data, process_image_data
from .io.acquisition import Acquisition, Channel, HistoryRecord, open_acquisition
from .processing.parameters import Parameter, Step
from .processing.steps import (STEPS, align_frames, clean_hot_pixels,
                               default_alignment_channel, sum_frames)
from .processing.recipe import Recipe, RecipeCancelled, default_recipe, run_recipe
from .processing.corrections import (CorrectionWarning, correct_dead_time, correct_em_yield,
                                     correct_qsa, subtract_em_background)
from .analysis.accumulate import Accumulation, KernelVarianceWarning, accumulate
from .analysis.ratios import (STANDARDS, DerivedImage, SignificanceImage, evaluate,
                              significance)
from .analysis.display import hsi_rgb
from .analysis.rois import depth_profile, roi_table, segment_rois
from .export.lans import write_lans
from .export.nrrd import read_nrrd, write_nrrd
from .export.ometiff import read_ome_tiff
from .parallel import run_batch
from .processing.hot_pixels import (HotPixelBlindSpotWarning, apply_mask, infer_hot_pixels,
                         iter_infer_hot_pixels, iter_remove_hot_pixels,
                         median_filter_frames, remove_hot_pixels)

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
]
__version__ = "0.1.0"
