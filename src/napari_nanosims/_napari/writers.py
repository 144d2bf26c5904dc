"""npe2 writers: image layers of one acquisition to OpenMIMS .nrrd or to OME-TIFF.

napari's save dialog asks before replacing a file, so these write over an existing file
(under a temporary name, renamed when complete).
"""

from __future__ import annotations

import os

import numpy as np


def _acquisition_from_layers(layer_data: list[tuple]):
    """One acquisition from (data, attributes, type) tuples of image layers: the layers are
    its channels, in order; header and history come from napari-nanosims metadata.

    Returns
    -------
    (Acquisition, ImHeader or None)
        The acquisition (its header has the layers' shape) and the header of the file the
        layers came from, as it was (None for layers without napari-nanosims metadata).
    """
    import dataclasses

    from ..io.header import ImHeader
    from ..model import Acquisition, HistoryRecord, channels_from_header

    images = [(np.asarray(data), attributes) for data, attributes, kind in layer_data
              if kind == "image"]
    if not images:
        raise ValueError("select one or more image layers to save")
    shapes = {data.shape for data, _ in images}
    if len(shapes) != 1:
        raise ValueError(f"the layers to save must have one shape; got {sorted(shapes)}")
    stacks = [data if data.ndim == 3 else data[None] for data, _ in images]
    if stacks[0].ndim != 3:
        raise ValueError("save 2-D images or (frame, y, x) stacks")
    infos = [attributes.get("metadata", {}).get("nanosims", {}) for _, attributes in images]
    labels = [info.get("label") or attributes["name"]
              for info, (_, attributes) in zip(infos, images, strict=True)]
    scale = images[0][1].get("scale") or (1.0, 1.0)
    counts = np.stack(stacks, axis=1)
    acquisition = Acquisition.from_arrays(
        counts, labels, masses_amu=[float(info.get("mass_amu") or 0.0) for info in infos],
        pixel_size_um=float(scale[-1]), name=images[0][1].get("name", "layers"))
    header = acquisition.header
    original = None
    if infos[0].get("header"):
        original = ImHeader.from_dict({**header.to_dict(), **infos[0]["header"]})
        header = dataclasses.replace(
            original, n_frames=counts.shape[0], n_frames_header=counts.shape[0],
            n_masses=counts.shape[1], height=counts.shape[2], width=counts.shape[3],
            labels=tuple(labels), masses_amu=acquisition.header.masses_amu,
            se_index=acquisition.header.se_index,
            trolley_slots=acquisition.header.trolley_slots,
            detectors=acquisition.header.detectors, has_data=True)
    history = tuple(HistoryRecord(h["step"], h.get("parameters", {}), h.get("version", "?"))
                    for h in infos[0].get("history", []) if "step" in h)
    return Acquisition(header=header, channels=channels_from_header(header), counts=counts,
                       history=history), original


def write_nrrd_layers(path: str, layer_data: list[tuple]) -> list[str]:
    """Save image layers (one per mass) as an OpenMIMS ``.nrrd`` file."""
    from ..export.nrrd import write_nrrd

    acquisition, _ = _acquisition_from_layers(layer_data)
    written = os.fspath(write_nrrd(acquisition, path, overwrite=True))
    remember_reader_for_folder(os.path.dirname(written))
    return [written]


def write_ome_tiff_layers(path: str, layer_data: list[tuple]) -> list[str]:
    """Save image layers (one per mass) as an OME-TIFF (TCYX, µm, channel names, history;
    ``TimeIncrement``, the time between frames in s, when the layers came from a file)."""
    from ..export._files import atomic_output
    from ..export.ometiff import write_acquisition_tiffs

    acquisition, original = _acquisition_from_layers(layer_data)
    # The frame interval of the acquisition the layers came from, whatever the number of
    # frames saved (the restored header counts only the frames saved); layers without our
    # metadata have a synthetic header, which has no interval.
    with atomic_output(path, overwrite=True) as temporary:
        write_acquisition_tiffs(acquisition, {"stack": temporary}, frames_header=original)
    remember_reader_for_folder(os.path.dirname(os.path.abspath(path)))
    return [os.fspath(path)]


#: The files napari-nanosims writes that napari has several readers for.
OUR_OUTPUT_PATTERNS = ("*.ome.tif", "*.ome.tiff", "*.nrrd")


def remember_reader_for_folder(folder: str | os.PathLike) -> list[str]:
    """Make napari open the OME-TIFF and ``.nrrd`` files of ``folder`` with this plugin.

    napari asks which reader to use for ``*.ome.tif`` and ``*.nrrd`` (several plugins
    read them) and remembers a choice per file-name pattern. A pattern per folder we
    wrote into (``<folder>/*.ome.tif``...) makes our outputs reopen without the dialog and
    leaves the user's other TIFFs to their own choice. Patterns the user set are never
    changed. Returns the patterns added (none without napari).
    """
    try:
        from napari.settings import get_settings
    except ImportError:  # pragma: no cover - the writers run inside napari
        return []
    from .reader import PLUGIN_NAME

    # napari matches patterns with fnmatch against the real path: escape [, ] ? and *
    real = os.path.realpath(os.fspath(folder))
    escaped = "".join(f"[{c}]" if c in "[]?*" else c for c in real)
    plugins = get_settings().plugins
    added = [f"{escaped}{os.sep}{pattern}" for pattern in OUR_OUTPUT_PATTERNS
             if f"{escaped}{os.sep}{pattern}" not in plugins.extension2reader]
    if added:
        plugins.extension2reader = {**plugins.extension2reader,
                                    **{pattern: PLUGIN_NAME for pattern in added}}
    return added
