"""Lazy reader for Cameca NanoSIMS ``.im`` image files.

Reads both header generations (release < 4108 with 10 mass slots, release
4108 with 60), both byte orders, 2- and 4-byte pixels, header-only files and
truncated acquisitions. Pixels are memory-mapped read-only, so opening a
multi-gigabyte file costs almost no memory. ``docs/file-format.md`` describes
the layout this module follows.
"""

from __future__ import annotations

import os
import stat
import struct
import warnings

import numpy as np

from .._errors import ImFormatWarning
from . import _layout as L
from ._switching import switched_layout
from .compressed import decompressed_path, is_compressed, open_stream
from .header import ImHeader, _fail, _parse_date, mass_slots, parse_header_blocks
from .lazy import LazyCounts, PeakSwitchedCounts

__all__ = ["ImHeader", "read_header", "load_mims", "sniff_im", "MimsFile"]

# A header larger than this is certainly corrupt (real ones are about 25 KiB);
# the check keeps a flipped header_size from making us read a huge buffer.
MAX_HEADER_SIZE = 4 * 1024 * 1024

def _detect_byte_order(path, head: bytes, forced: str | None) -> str:
    """Choose the byte order in which the file type (offset 4) is a small positive number."""
    if forced is not None:
        if forced not in ("<", ">"):
            raise ValueError(f"byte_order must be None, '<' or '>', not {forced!r}")
        (file_type,) = struct.unpack_from(forced + "i", head, 4)
        if not 0 < file_type < 256:
            raise _fail(path, f"file type at offset 4 reads {file_type} with byte order "
                        f"{forced!r}; this is not a NanoSIMS file in that byte order")
        return forced
    plausible = [order for order in ("<", ">")
                 if 0 < struct.unpack_from(order + "i", head, 4)[0] < 256]
    if len(plausible) != 1:
        raise _fail(path, "not a Cameca NanoSIMS file: the file type at offset 4 "
                    f"({head[4:8].hex()}) is not a small number in either byte order")
    return plausible[0]


def sniff_im(path: str | os.PathLike) -> bool:
    """Return True when ``path`` starts like a Cameca NanoSIMS image file.

    Looks only at the first 12 bytes (release, file type, header size) and the
    file size; never raises for unreadable or foreign files. For a compressed file
    (``.im.gz``, ``.bz2``, ``.xz``, ``.zip``) the first bytes of its content.
    """
    if is_compressed(path):
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return False
            with open_stream(path) as stream:
                head = stream.read(12)
        except (ValueError, OSError):
            return False
        return len(head) == 12 and any(
            struct.unpack(order + "3i", head)[1] in L.IMAGE_FILE_TYPES for order in "<>")
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            return False
        size = info.st_size
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    if len(head) < 12 or size < L.DEF_ANALYSIS_SIZE:
        return False
    for order in ("<", ">"):
        release, file_type, header_size = struct.unpack(order + "3i", head)
        if (file_type in L.IMAGE_FILE_TYPES and 0 < release < 100000
                and L.DEF_ANALYSIS_SIZE < header_size <= size):
            return True
    return False


class MimsFile:
    """Everything :func:`load_mims` reads from one file (internal helper)."""

    def __init__(self, path, byte_order=None, roll_data="auto"):
        self.path = os.path.abspath(os.fspath(path))
        path = self.path
        # A compressed file is read from its decompressed copy in the cache (once).
        self.data_path = os.fspath(decompressed_path(path)) if is_compressed(path) else path
        try:
            info = os.stat(self.data_path)
            if not stat.S_ISREG(info.st_mode):
                raise _fail(path, "not a regular file (a folder, FIFO or device); "
                            "NanoSIMS images are ordinary files")
            file_size = info.st_size
            with open(self.data_path, "rb") as handle:
                head = handle.read(12)
                if len(head) < 12 or file_size < L.DEF_ANALYSIS_SIZE:
                    raise _fail(path, f"file of {file_size} bytes is too short for a "
                                "NanoSIMS header")
                order = _detect_byte_order(path, head, byte_order)
                release, file_type, header_size = struct.unpack(order + "3i", head)
                if file_type not in L.IMAGE_FILE_TYPES:
                    name = L.FILE_TYPES.get(file_type, "unknown")
                    raise _fail(path, f"file type {file_type} ({name}) is not supported; "
                                "only image files (types 27, 29, 39) are")
                if not 0 < release < 100000:
                    raise _fail(path, f"release number {release} at offset 0 is implausible")
                if not L.DEF_ANALYSIS_SIZE < header_size <= min(file_size, MAX_HEADER_SIZE):
                    raise _fail(path, f"header size {header_size} at offset 8 is impossible "
                                f"for a file of {file_size} bytes")
                handle.seek(0)
                header_bytes = handle.read(header_size)
        except OSError as exc:
            raise _fail(path, f"cannot read the file: {exc.strerror or exc}") from exc
        self.byte_order = order
        self.blocks = parse_header_blocks(path, header_bytes, order)
        self._build_header(file_size, header_size, roll_data)

    def _build_header(self, file_size: int, header_size: int, roll_data) -> None:
        path, blocks, order = self.path, self.blocks, self.byte_order
        da, hi, mask_nano = blocks["def_analysis"], blocks["header_image"], blocks["mask_nano"]
        ap = blocks["anal_param_nano"]
        dab = blocks["def_analysis_bis"]
        tab_mass = blocks["tab_mass"]
        n_masses = len(tab_mass)
        data_included = da.data_present == 1

        width, height = hi.w, hi.h
        if width <= 0 or height <= 0:
            # Header-only files may leave Header_image empty; the scan frame says it too.
            width, height = mask_nano.m_nNX_max, mask_nano.m_nNY_max
        if data_included and not (0 < width <= 16384 and 0 < height <= 16384):
            raise _fail(path, f"image size {hi.w} x {hi.h} pixels in Header_image (offset "
                        f"{header_size - 84 + 6}) is impossible")
        if not (0 < width <= 16384 and 0 < height <= 16384):
            width = height = 0
        bpp = hi.d
        if bpp not in (2, 4):
            if data_included:
                raise _fail(path, f"bytes per pixel is {bpp} in Header_image (offset "
                            f"{header_size - 84 + 10}); only 2 and 4 are known")
            bpp = 4 if da.release >= L.NEW_RELEASE else 2
        if data_included and hi.n != n_masses:
            raise _fail(path, f"Header_image holds {hi.n} masses (offset "
                        f"{header_size - 84 + 12}) but Mask_im lists {n_masses}")

        n_frames_header = max(int(hi.z), 0)
        frame_bytes = n_masses * width * height * bpp
        available = file_size - header_size
        n_frames = 0
        if data_included and frame_bytes > 0:
            complete, remainder = divmod(available, frame_bytes)
            name = os.path.basename(path)
            if complete < n_frames_header:
                warnings.warn(
                    f"{name}: truncated acquisition: the header announces {n_frames_header} "
                    f"frames but the file holds {complete} complete frames"
                    + (f" and {remainder} bytes of a partial frame, which were dropped"
                       if remainder else ""), ImFormatWarning, stacklevel=4)
                n_frames = complete
            elif complete == n_frames_header + 1 and remainder == 0:
                # OpenMIMS does the same: some files hold one frame more than announced.
                warnings.warn(f"{name}: the header announces {n_frames_header} frames but "
                              f"the file holds {complete}; reading all {complete}",
                              ImFormatWarning, stacklevel=4)
                n_frames = complete
            else:
                n_frames = n_frames_header
                if remainder or complete > n_frames_header:
                    extra = available - n_frames * frame_bytes
                    warnings.warn(f"{name}: {extra} bytes after the {n_frames} frames the "
                                  "header announces were ignored", ImFormatWarning,
                                  stacklevel=4)
        self.n_frames = n_frames
        self.shape = (n_frames, n_masses, height, width)
        self.dtype = np.dtype(f"{order}u{bpp}")
        self.header_size = header_size

        if roll_data == "auto":
            roll = da.release >= L.NEW_RELEASE and not dab.written_by_napari_nanosims
        elif isinstance(roll_data, (bool, np.bool_)):
            roll = bool(roll_data)
        else:
            raise ValueError(f"roll_data must be True, False or 'auto', not {roll_data!r}")
        self.roll = roll and n_frames > 0

        trolleys = blocks["tab_Bfield_nano"][0].m_TrolleyTab
        se_index, slots, detectors = mass_slots(tab_mass, trolleys,
                                                old_layout=da.release < L.NEW_RELEASE)
        labels = [" ".join(record.mass.string.split()) for record in tab_mass]
        if se_index is not None:
            labels[se_index] = "SE"
        masses_amu = tuple(float(record.mass_amu) for record in tab_mass)
        bfields = blocks["tab_Bfield_nano"]
        self.switched = None
        switching = {}
        if len(bfields) > 1 and n_masses % len(bfields) == 0:
            # Peak switching: one channel per species, one frame per B-field scan.
            self.switched = layout = switched_layout(tab_mass, bfields,
                                                     da.release < L.NEW_RELEASE, n_frames)
            labels, masses_amu = list(layout["labels"]), layout["masses_amu"]
            se_index, slots, detectors = (layout["se_index"], layout["slots"],
                                          layout["detectors"])
            switching = dict(n_b_fields=len(bfields),
                             channel_frames=layout["channel_frames"],
                             dwell_times_us=layout["dwell_times_us"])
            n_frames, n_frames_header = (n_frames * len(bfields),
                                         n_frames_header * len(bfields))
        raster_um = ap.prim.dRaster
        if not (np.isfinite(raster_um) and 0 < raster_um < 10000):
            raster_um = hi.raster / 1000.0 if hi.raster > 0 else float("nan")
        dwell_us = float(blocks["tab_Bfield_nano"][0].m_nCTperPixel)
        em = [(ap[f"nEM{k}DeadTime"], ap[f"dEM{k}Yield"], ap[f"nEM{k}Background"])
              for k in range(1, 6)]
        bis = blocks.get("anal_param_nano_bis")
        if bis is not None:
            em += [(bis[f"nEM{k}DeadTime"], bis[f"dEM{k}Yield"], bis[f"nEM{k}Background"])
                   for k in (6, 7)]
        self.header = ImHeader(
            path=path,
            byte_order=order,
            release=da.release,
            file_type=da.analysis_type,
            file_type_name=L.FILE_TYPES[da.analysis_type],
            has_data=data_included and n_frames > 0,
            n_frames=n_frames,
            n_frames_header=n_frames_header,
            n_masses=len(labels),
            width=width,
            height=height,
            bytes_per_pixel=bpp,
            labels=tuple(labels),
            masses_amu=masses_amu,
            se_index=se_index,
            trolley_slots=slots,
            raster_um=float(raster_um),
            pixel_size_um=float(raster_um / width) if width else float("nan"),
            dwell_time_us=dwell_us,
            frame_time_s=dwell_us * width * height * 1e-6,
            sample_name=dab.sample_name,
            comment=ap.pszComment,
            user=da.username,
            experiment=dab.experience,
            method=dab.method,
            analysis_name=da.analysis_name,
            analysis_date=_parse_date(da.date, da.heure),
            analysis_duration_s=blocks["mask_im"].anal_duration,
            stage_position_um=(da.sple_pos_x, da.sple_pos_y, da.nSamplePosz),
            primary_ion=ap.prim.pszIon,
            primary_current_raw=(ap.prim.nPrimCurrentT0, ap.prim.nPrimCurrentTEnd),
            dead_times_ns=tuple(int(dead) for dead, _, _ in em),
            em_yields_percent=tuple(float(y) for _, y, _ in em),
            em_backgrounds_cps=tuple(int(b) for _, _, b in em),
            detectors=detectors,
            header_size=header_size,
            mask_nano_version=mask_nano.m_nVersion,
            anal_param_nano_release=ap.nRelease,
            roll_applied=(1, 1) if self.roll else (0, 0),
            written_by_napari_nanosims=bool(dab.written_by_napari_nanosims),
            **switching,
        )

    def pixels(self) -> LazyCounts:
        """The counts (frames, masses, height, width) as :class:`LazyCounts`.

        Backed by a read-only ``numpy.memmap`` of the stored values; the roll, when
        applied, happens on access, so opening costs no pixel reads whatever the file.
        """
        stored = self.stored_pixels()
        if self.switched is not None:
            return PeakSwitchedCounts(stored, self.switched["source"])
        return stored

    def stored_pixels(self) -> LazyCounts:
        """The counts as stored: (planes, table masses, height, width); for files without
        peak switching the same as :meth:`pixels`."""
        if self.n_frames == 0:
            return LazyCounts(np.zeros(self.shape, dtype=self.dtype.newbyteorder("=")))
        try:
            stored = np.memmap(self.data_path, dtype=self.dtype, mode="r",
                               offset=self.header_size, shape=self.shape)
        except (OSError, ValueError) as exc:
            raise _fail(self.path, f"cannot map the pixel data: {exc}") from exc
        return LazyCounts(stored, (1, 1) if self.roll else (0, 0))


def read_header(filename: str | os.PathLike) -> ImHeader:
    """Read the header of a NanoSIMS ``.im`` file.

    Parameters
    ----------
    filename : str or path-like
        The ``.im`` file.

    Returns
    -------
    ImHeader
        The decoded header. Reading it never touches the pixel data.

    Raises
    ------
    ImFormatError
        If the file is not a readable NanoSIMS image file.
    """
    return MimsFile(filename, roll_data=False).header


def load_mims(filename: str | os.PathLike, byte_order: str | None = None,
              roll_data: bool | str = "auto") -> L.Block:
    """Load a NanoSIMS ``.im`` image file, as ``openformat.mims.load_mims`` does but right.

    Parameters
    ----------
    filename : str or path-like
        The ``.im`` file; it is opened read-only.
    byte_order : {None, '<', '>'}
        None detects the byte order from the file; ``'<'`` or ``'>'`` forces it.
    roll_data : {'auto', True, False}
        True shifts every image cyclically by one pixel along both axes (the seed's
        fix for the pixel-position glitch of the release-4108 software); False keeps
        the stored order; ``'auto'`` rolls only files of the release-4108 Cameca
        software and leaves older files (and files made by :func:`write_im`) as stored.

    Returns
    -------
    Block
        A dict with attribute access holding the seed's header blocks present in the
        file (``def_analysis``, ``mask_im``, ``tab_mass``, ``cal_cond``, ``poly_list``,
        ``polyatomique``, ``mask_nano``, ``tab_Bfield_nano``, ``anal_param_nano``,
        ``def_analysis_bis``, ``anal_param_nano_bis`` when present, ``header_image``),
        ``header`` (an :class:`ImHeader`) and ``data``: the counts with shape
        (frames, masses, height, width) as unsigned integers, a read-only
        :class:`~napari_nanosims.io.lazy.LazyCounts` over a memory map of the file:
        indexing reads only what it selects and returns numpy arrays.

    Raises
    ------
    ImFormatError
        If the file is malformed, truncated inside its header, foreign or unsupported.

    Warns
    -----
    ImFormatWarning
        When the file holds fewer (or one more) complete frames than the header says.
    """
    mims_file = MimsFile(filename, byte_order=byte_order, roll_data=roll_data)
    result = L.Block({k: v for k, v in mims_file.blocks.items() if not k.startswith("_")})
    result["header"] = mims_file.header
    result["data"] = mims_file.pixels()
    return result
