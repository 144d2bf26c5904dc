"""Hot-pixel detection and replacement on (frames, masses, height, width) count arrays."""

from .hot_pixels import (
                         HotPixelBlindSpotWarning,
                         apply_mask,
                         infer_hot_pixels,
                         iter_infer_hot_pixels,
                         iter_remove_hot_pixels,
                         median_filter_frames,
                         remove_hot_pixels,
                         replace_hot_pixels,
                         short_stack_repeat_fraction,
)

__all__ = ["HotPixelBlindSpotWarning", "apply_mask", "infer_hot_pixels", "iter_infer_hot_pixels",
           "iter_remove_hot_pixels", "median_filter_frames", "remove_hot_pixels",
           "replace_hot_pixels", "short_stack_repeat_fraction"]
