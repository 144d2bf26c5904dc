"""napari-nanosims: open, clean and align Cameca NanoSIMS images.

The package root is Qt-free and napari-free: it holds the reader, the writer,
the processing functions and the command line. The napari plugin lives in
``napari_nanosims._napari`` and is imported only by napari.
"""

from ._errors import ImFormatError, ImFormatWarning
from .reader import ImHeader, load_mims, read_header, sniff_im
from .writer import write_im
from .demo import make_demo_im

__all__ = [
    "ImFormatError",
    "ImFormatWarning",
    "ImHeader",
    "load_mims",
    "read_header",
    "sniff_im",
    "write_im",
    "make_demo_im",
]
__version__ = "0.1.0"
