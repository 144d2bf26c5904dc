"""npe2 reader contribution for Cameca NanoSIMS ``.im`` files."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

from .._errors import ImFormatWarning
from ..io.acquisition import open_acquisition
from ..io.reader import sniff_im
from .layers import file_layer_data, result_layer_data

IM_SUFFIXES = (".im", ".im.gz", ".im.bz2", ".im.xz", ".im.zip")  # compressed: io/compressed.py


def get_reader(path: str | list[str]) -> Callable | None:
    """Return a reader when every path looks like a NanoSIMS image file, else None.

    Sniffs the first bytes, because Pillow's IM format uses the same extension;
    never raises.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths or not all(str(p).lower().endswith(IM_SUFFIXES) and sniff_im(p) for p in paths):
        return None
    return read_im_layers


def get_results_reader(path: str | list[str]) -> Callable | None:
    """Return a reader for OME-TIFFs napari-nanosims wrote (and None for any other TIFF).

    Only the metadata is read to decide; never raises.
    """
    from ..export.ometiff import read_ome_tiff

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    try:
        if paths and all(str(p).lower().endswith((".ome.tif", ".ome.tiff"))
                         and read_ome_tiff(p, ours_only=True, metadata_only=True) is not None
                         for p in paths):
            return read_result_layers
    except Exception:  # noqa: BLE001 - a reader that cannot tell must say no, not fail
        return None
    return None


def read_result_layers(path: str | list[str]) -> list[tuple]:
    """Read our OME-TIFF results: one image layer per channel, with scale and history."""
    from ..export.ometiff import read_ome_tiff

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers = []
    for one_path in paths:
        content = read_ome_tiff(one_path)
        assert content is not None  # None only with ours_only
        layers.extend(result_layer_data(content, os.fspath(one_path)))
    return layers


def get_nrrd_reader(path: str | list[str]) -> Callable | None:
    """Return a reader for OpenMIMS-layout ``.nrrd`` files (ours, OpenMIMS's, the
    Stabilizer's); None for other files. Reads the header only; never raises."""
    from ..export.nrrd import read_nrrd_header

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    try:
        for one_path in paths:
            if not str(one_path).lower().endswith(".nrrd"):
                return None
            fields, pairs, _ = read_nrrd_header(one_path)
            if len(fields.get("sizes", "").split()) not in (3, 4) or not any(
                    key.startswith(("Mims_", "napari_nanosims_")) for key in pairs):
                return None
    except Exception:  # noqa: BLE001 - a reader that cannot tell must say no, not fail
        return None
    return read_nrrd_layers if paths else None


def read_nrrd_layers(path: str | list[str]) -> list[tuple]:
    """Read OpenMIMS ``.nrrd`` files into one image layer per mass, as for ``.im`` files
    (so that a stack the Stabilizer corrected can be processed further)."""
    from ..export.nrrd import read_nrrd

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers = []
    for one_path in paths:
        layers.extend(file_layer_data(read_nrrd(one_path)))
    return layers


READER_PATTERN = "*.im"
PLUGIN_NAME = "napari-nanosims"


def read_im_layers(path: str | list[str]) -> list[tuple]:
    """Read one or more ``.im`` files into one image layer per detector.

    Truncation warnings and header-only files become notifications. After the first
    successful read, napari is told to open ``*.im`` files with this plugin from now
    on (only when no preference is set), so the reader-choice dialog appears at most once.
    Once napari has added the layers, opened files of one field are offered as one
    acquisition (``chains.offer_same_field_soon``: one notification).
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers = []
    for one_path in paths:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ImFormatWarning)
            acquisition = open_acquisition(one_path)
        _notify_warnings(caught)
        header = acquisition.header
        if not header.has_data:
            _notify_no_data(header)
            continue
        if not acquisition.ion_channels:
            _show("info", f"{header.file_name} has no ion masses (only "
                          f"{', '.join(header.labels) or 'no channel'}): there is nothing to "
                          "clean, correct, align or take a ratio of.")
        layers.extend(file_layer_data(acquisition))
    remember_reader_choice()
    if layers:
        from .chains import offer_same_field_soon

        offer_same_field_soon()
    return layers or [(None,)]


def remember_reader_choice() -> bool:
    """Make napari open ``*.im`` with this plugin when the user has no preference yet.

    Returns True when the preference was set now. Says so in a notification.
    """
    try:
        from napari.settings import get_settings
    except ImportError:  # pragma: no cover - the reader also works without napari
        return False
    plugins = get_settings().plugins
    if READER_PATTERN in plugins.extension2reader:
        return False
    plugins.extension2reader = {**plugins.extension2reader, READER_PATTERN: PLUGIN_NAME}
    _show("info", f"{PLUGIN_NAME} will open .im files directly from now on; change this in "
                  "File > Preferences > Plugins (file extension readers).")
    return True


def _notify_warnings(caught) -> None:
    for warning in caught:
        _show("warning", str(warning.message))


def _notify_no_data(header) -> None:
    date = header.analysis_date.strftime("%Y-%m-%d %H:%M") if header.analysis_date else "?"
    _show("info", f"{header.file_name} holds no pixel data (header only: "
                  f"{', '.join(header.labels)}; acquired {date}).")


def _show(kind: str, message: str) -> None:
    """Show a napari notification when napari is running, else warn."""
    try:
        from napari.utils.notifications import show_info, show_warning
    except ImportError:  # pragma: no cover - the reader also works without napari
        warnings.warn(message, ImFormatWarning, stacklevel=3)
        return
    (show_warning if kind == "warning" else show_info)(message)
