"""Exception types shared by the reader, the writer and the processing code."""


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
