"""Every exception and warning class of the package, one class per kind of problem.

Each is re-exported by the module that raises it, under the same name.
"""


class ImFormatError(ValueError):
    """A file is not a readable Cameca NanoSIMS image file.

    Raised for malformed, truncated, foreign or unsupported files. The message
    always names the file and the field or byte offset at fault.
    """


class ImFormatWarning(UserWarning):
    """A file could be read, but not everything in it is as the header says.

    Emitted, for example, for truncated acquisitions (fewer complete frames than
    the header announces) and for a partial trailing frame that was dropped.
    """


class ShiftBeyondPaddingWarning(UserWarning):
    """A translation is larger than the padding: content leaves the padded frame."""


class AlignmentWarning(UserWarning):
    """Part of an alignment could not be done as asked (a piecewise alignment whose
    patches have too few counts falls back to the rigid one)."""


class HotPixelBlindSpotWarning(UserWarning):
    """With so few frames no pixel can pass the persistence test."""


class CorrectionWarning(UserWarning):
    """Pixels that a correction cannot handle (set to NaN) or handles unreliably."""


class KernelVarianceWarning(UserWarning):
    """Kernel errors that cannot be made exact: neighbouring pixels share counts."""


class FigureWarning(UserWarning):
    """A figure was written without what was asked (matplotlib missing: no colour bar)."""


class RegistrationWarning(UserWarning):
    """An image registration that is not what was asked: a refinement that did not
    improve it and was dropped."""


class RoiFileWarning(UserWarning):
    """Parts of an ROI file that were skipped (lines, points, unknown entries) or ROIs
    that overlap."""
