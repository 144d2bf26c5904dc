"""Frame alignment on (frames, height, width) arrays: registration and shifting."""

from .alignment import (
                        FrameRegistration,
                        ShiftBeyondPaddingWarning,
                        apply_translations,
                        infer_translations,
                        iter_apply_translations,
                        iter_infer_translations,
                        iter_register_frames,
                        register_frames,
                        translation_matrix,
                        translation_steps,
)

__all__ = ["FrameRegistration", "ShiftBeyondPaddingWarning", "apply_translations",
           "infer_translations", "iter_apply_translations", "iter_infer_translations",
           "iter_register_frames", "register_frames", "translation_matrix",
           "translation_steps"]
