"""The installed version of napari-nanosims, from the package metadata."""

from importlib import metadata

try:
    __version__ = metadata.version("napari-nanosims")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
