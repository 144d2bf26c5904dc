"""Write synthetic Cameca NanoSIMS ``.im`` image files.

Two layouts are written, both as ``docs/file-format.md`` describes them:

* the default: release 4108 (Windows "N50 V7" software), little-endian, unsigned
  32-bit pixels, 60 mass slots, Mask_nano version 10 (the layout the seed library
  ``openformat`` reads);
* ``legacy=True``: release 11 (Unix software), big-endian, unsigned 16-bit
  pixels, 10 mass slots, Mask_nano version 8.

Files are signed in an unused header field so that ``load_mims(roll_data='auto')``
returns exactly the pixels that were written.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _layout as L
from ._write_slots import SE_SLOT, _field_slots

__all__ = ["write_im"]

CHUNK_FRAMES_BYTES = 64 * 1024 * 1024


def _layout_offsets(n_masses: int, legacy: bool, n_fields: int = 1) -> dict[str, int]:
    """Offsets of every block of the file we write."""
    tab_mass = L.DEF_ANALYSIS_SIZE + (L.MASK_IM_SIZE_OLD if legacy else L.MASK_IM_SIZE_NEW)
    poly_list = tab_mass + (L.TAB_MASS_SIZE + L.CAL_COND_SIZE) * n_masses
    mask_nano = poly_list + L.POLY_LIST_SIZE
    bfield = mask_nano + L.MASK_NANO_SIZE
    version = 8 if legacy else 10
    anal_param_nano = bfield + L.BFIELD_RECORD_SIZE[version] * n_fields
    def_analysis_bis = anal_param_nano + L.ANAL_PARAM_NANO_SIZE
    anal_param = def_analysis_bis + L.DEF_ANALYSIS_BIS_SIZE
    setup_soft = anal_param + L.ANAL_PARAM_SIZE
    anal_param_nano_bis = setup_soft + L.SETUP_SOFT_SIZE
    header_image = anal_param_nano_bis + L.ANAL_PARAM_NANO_BIS_SIZE
    return dict(tab_mass=tab_mass, poly_list=poly_list, mask_nano=mask_nano, bfield=bfield,
                mask_nano_version=version, anal_param_nano=anal_param_nano,
                def_analysis_bis=def_analysis_bis, anal_param=anal_param,
                setup_soft=setup_soft, anal_param_nano_bis=anal_param_nano_bis,
                header_image=header_image, header_size=header_image + L.HEADER_IMAGE_SIZE)


def _check_text(name: str, value: Any, size: int) -> str:
    text = str(value)
    try:
        encoded = text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} must be Latin-1 text: {text!r}") from exc
    if len(encoded) >= size:
        raise ValueError(f"{name} is longer than {size - 1} characters: {text!r}")
    return text


def _build_header(shape, labels, masses_amu, raster_um, dwell_time_us, legacy,
                  metadata, detectors=None, duration_s=None, fields=None) -> bytes:
    n_frames, n_masses, height, width = shape
    fields = [0] * n_masses if fields is None else list(fields)
    n_fields = max(fields) + 1
    order = ">" if legacy else "<"
    off = _layout_offsets(n_masses, legacy, n_fields)
    header = bytearray(off["header_size"])
    release = 11 if legacy else L.NEW_RELEASE
    bpp = 2 if legacy else 4
    date = metadata.get("analysis_date") or _dt.datetime(2024, 1, 1, 12, 0)
    if not isinstance(date, _dt.datetime):
        raise ValueError(f"analysis_date must be a datetime.datetime, not {date!r}")
    stage = metadata.get("stage_position_um", (0, 0, 0))
    frame_time_s = dwell_time_us * 1e-6 * width * height
    slots = _field_slots(labels, masses_amu, legacy, detectors, fields)
    has_se = SE_SLOT in slots
    if duration_s is None:
        duration_s = frame_time_s * n_frames
    file_name = _check_text("file name", metadata.get("file_name", ""), 64)

    L.encode_block(header, 0, L.DEF_ANALYSIS, order, dict(
        release=release, analysis_type=27, hdr_usr=off["header_size"], sample_type=0,
        data_present=1, sple_pos_x=int(stage[0]), sple_pos_y=int(stage[1]),
        analysis_name=_check_text("analysis_name",
                                  metadata.get("analysis_name", "IMAGE ACQUISITION"), 32),
        username=_check_text("user", metadata.get("user", ""), 16),
        nSamplePosz=int(stage[2]), date=date.strftime("%d.%m.%y"),
        heure=date.strftime("%H:%M")))
    L.encode_block(header, L.DEF_ANALYSIS_SIZE, L.MASK_IM, order, dict(
        filename="", anal_duration=int(round(duration_s)),
        cycle_number=n_frames, nb_mass=n_masses))

    for k, (label, amu) in enumerate(zip(labels, masses_amu, strict=True)):
        start = off["tab_mass"] + L.TAB_MASS_SIZE * k
        L.encode_block(header, start, L.TAB_MASS, order, dict(
            _not_in_spec=slots[k], type_mass=0, mass_amu=float(amu), matrice_ou_trace=0,
            detecteur=0, waiting_time=0.0, counting_time=frame_time_s, offset=0,
            mag_field=0))
        stored_label = "" if slots[k] == SE_SLOT else _check_text("label", label, 63) + " "
        L.encode_block(header, start + L.TAB_MASS_POLY_OFFSET, L.POLYATOMIQUE, order, dict(
            Flag_chiffre=0, chiffre=0, nb_elts=len(stored_label.split()), nb_charges=0,
            string=stored_label))
        # Unused element slots read (0, 0, 1) in real files.
        for e in range(5):
            struct.pack_into(order + "3i", header,
                             start + L.TAB_MASS_POLY_OFFSET + L.POLYATOMIQUE_ELEMENTS_OFFSET
                             + 12 * e, 0, 0, 1)

    L.encode_block(header, off["poly_list"], L.POLY_LIST, order,
                   dict(structname="Poly_list", nb_poly=0))
    L.encode_block(header, off["mask_nano"], L.MASK_NANO, order, dict(
        m_nVersion=off["mask_nano_version"], m_nNX_max=width, m_nNY_max=height,
        m_nNX_low=1, m_nNX_high=width, m_nNY_low=1, m_nNY_high=height,
        m_nNX_lowB=1, m_nNX_highB=width, m_nNY_lowB=1, m_nNY_highB=height,
        m_nElectron_scan=int(has_se), m_nNbBField=n_fields))

    trolley_bytes = L.trolley_size(off["mask_nano_version"])
    for field in range(n_fields):  # one record per B field, each with its trolley table
        bfield = off["bfield"] + L.BFIELD_RECORD_SIZE[off["mask_nano_version"]] * field
        L.encode_block(header, bfield, L.TAB_BFIELD_NANO, order, dict(
            m_nFlagBFieldSelected=1, m_nBField=1000 + field,
            m_nCTperPixel=int(round(dwell_time_us)), m_dCTperPoint=0.0, m_nNbFrame=1))
        members = [k for k, f in enumerate(fields) if f == field]
        for t in range(12):
            start = bfield + L.BFIELD_HEAD_SIZE + trolley_bytes * t
            # The same name later holds lists (the EM values checked below).
            values: Any = dict(m_nFlagTrolleyValided=0, m_nNum=-1)
            owner = [k for k in members if slots[k] == t]
            if owner:  # the trolley record at index t describes slot t
                k = owner[0]
                values = dict(m_pszSymbol="Esi" if t == SE_SLOT else labels[k],
                              m_dAMU=float(masses_amu[k]), m_nFlagTrolleyValided=1, m_nNum=k)
            L.encode_block(header, start, L.TROLLEY, order, values)

    apn = off["anal_param_nano"]
    L.encode_block(header, apn, L.ANAL_PARAM_NANO, order, dict(
        pszNomStruct="Anal_param_nano", nRelease=7 if legacy else 8, nIsN50Large=0,
        pszComment=_check_text("comment", metadata.get("comment", ""), 256)))
    current = metadata.get("primary_current_raw", (2, 2))
    L.encode_block(header, apn + L.AP_PRIMARY_OFFSET, L.AP_PRIMARY, order, dict(
        pszIon=_check_text("primary_ion", metadata.get("primary_ion", "Cs+"), 8),
        nPrimCurrentT0=int(current[0]), nPrimCurrentTEnd=int(current[1]),
        dRaster=float(raster_um)))
    L.encode_block(header, apn + L.AP_SECONDARY_OFFSET, L.AP_SECONDARY, order,
                   dict(dHVSample=-8000.0))
    dead_times = list(metadata.get("dead_times_ns", [44] * 7))
    yields = list(metadata.get("em_yields_percent", [100.0] * 7))
    backgrounds = list(metadata.get("em_backgrounds_cps", [0] * 7))
    for name, values in (("dead_times_ns", dead_times), ("em_yields_percent", yields),
                         ("em_backgrounds_cps", backgrounds)):
        if len(values) != 7:
            raise ValueError(f"{name} needs 7 values (EM1-EM7), got {len(values)}")
    for k in range(5):
        struct.pack_into(order + "dii", header,
                         apn + L.EM_RECORDS_OFFSET + L.EM_RECORD_SIZE * k,
                         float(yields[k]), int(backgrounds[k]), int(dead_times[k]))

    dab = off["def_analysis_bis"]
    L.encode_block(header, dab, L.DEF_ANALYSIS_BIS, order, dict(
        magic=L.DEF_ANALYSIS_BIS_MAGIC, release=1, filename=file_name,
        sample_name=_check_text("sample_name", metadata.get("sample_name", ""), 80),
        experience=_check_text("experiment", metadata.get("experiment", ""), 32),
        method=_check_text("method", metadata.get("method", ""), 32)))
    if metadata.get("signed", True):
        signature = dab + L.WRITER_SIGNATURE_OFFSET
        header[signature:signature + len(L.WRITER_SIGNATURE)] = L.WRITER_SIGNATURE
    header[off["anal_param"]:off["anal_param"] + 10] = b"Anal_param"
    header[off["setup_soft"]:off["setup_soft"] + 10] = b"Setup_soft"

    bis = off["anal_param_nano_bis"]
    L.encode_block(header, bis, L.ANAL_PARAM_NANO_BIS, order,
                   dict(pszNomStruct="Anal_param_nano_bis"))
    for k, record in ((5, L.EM6_RECORD_OFFSET), (6, L.EM7_RECORD_OFFSET)):
        struct.pack_into(order + "dii", header, bis + record, float(yields[k]),
                         int(backgrounds[k]), int(dead_times[k]))

    L.encode_block(header, off["header_image"], L.HEADER_IMAGE, order, dict(
        size_self=L.HEADER_IMAGE_SIZE, type=1 if n_frames > 1 else 0, w=width, h=height,
        d=bpp, n=n_masses, z=n_frames, raster=int(round(raster_um * 1000)),
        nickname=file_name))
    return bytes(header)


def write_im(filename: str | os.PathLike, data, labels: Sequence[str],
             masses_amu: Sequence[float], raster_um: float, dwell_time_us: float,
             *, legacy: bool = False, overwrite: bool = False,
             detectors: Sequence[str | None] | None = None, duration_s: float | None = None,
             b_fields: Sequence[int] | None = None, **metadata: Any) -> str:
    """Write counts as a Cameca NanoSIMS ``.im`` image file.

    Parameters
    ----------
    filename : str or path-like
        Where to write. An existing file is refused unless ``overwrite=True``.
    data : array_like of int
        Counts with shape (frames, masses, height, width); non-negative integers.
        May be lazy (a memory map or dask array): it is written frame by frame.
    labels : sequence of str
        Species label of each mass, e.g. ``'12C 14N'``; ``'SE'`` marks the
        secondary-electron channel (stored, as the instrument does, with no label).
    masses_amu : sequence of float
        Mass of each species, atomic mass units (0.0 for SE).
    raster_um : float
        Field of view (raster), micrometres.
    dwell_time_us : float
        Counting time per pixel, microseconds (stored as a whole number).
    legacy : bool
        False writes release 4108, little-endian, 4-byte pixels; True writes the
        big-endian, 2-byte release-11 layout (counts must then be below 65536).
    overwrite : bool
        Replace an existing file.
    detectors : sequence of str or None, optional
        The detector of each mass: ``'EM1'``..``'EM5'`` (and ``'EM6'``, ``'EM7'`` unless
        ``legacy``) or ``'SE'`` (the SE mass, and only it); each detector once. None (for
        all or for one mass) takes the free electron multipliers in order, EM1 first.
        Stored as the trolley slot of the mass, which is what readers map to detectors.
    b_fields : sequence of int, optional
        Peak switching: the B field (0, 1, ...) of each mass of the table, the masses of
        each field together and as many per field (``[0]*8 + [1]*8`` for 16 masses).
        ``data`` is then as stored: (cycles, table masses, height, width), each plane one
        scan per B field; a detector that does not switch gets the same label in every
        field (merged into one channel on reading). Detectors are assigned per field.
    duration_s : float, optional
        Analysis duration, seconds (stored as whole seconds; it sets the time between
        frames, duration / frames). Default: dwell × pixels × frames, the counting time
        alone; real acquisitions take longer.
    **metadata
        Optional header fields: ``sample_name``, ``comment``, ``user``, ``experiment``,
        ``method``, ``analysis_name``, ``analysis_date`` (datetime),
        ``stage_position_um`` (x, y, z), ``primary_ion``, ``primary_current_raw``
        (start, end), ``dead_times_ns``, ``em_yields_percent`` and ``em_backgrounds_cps``
        (7 values each, EM1-EM7), ``file_name``, and
        ``signed`` (default True): False leaves out the napari-nanosims signature, as in
        files from Cameca's software, so that ``roll_data='auto'`` rolls a release-4108
        file on reading (the stored values are still exactly ``data``).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    FileExistsError
        If ``filename`` exists and ``overwrite`` is False.
    ValueError
        If an argument is inconsistent (shape, label count, counts out of range,
        detectors).

    Notes
    -----
    To write an opened acquisition back with its detectors and duration::

        header = acquisition.header
        write_im(path, acquisition.counts, header.labels, header.masses_amu,
                 header.raster_um, header.dwell_time_us, detectors=header.detectors,
                 duration_s=header.analysis_duration_s)
    """
    known = {"sample_name", "comment", "user", "experiment", "method", "analysis_name",
             "analysis_date", "stage_position_um", "primary_ion", "primary_current_raw",
             "dead_times_ns", "em_yields_percent", "em_backgrounds_cps", "file_name",
             "signed"}
    unknown = set(metadata) - known
    if unknown:
        raise ValueError(f"unknown metadata for write_im: {sorted(unknown)}; "
                         f"known: {sorted(known)}")
    shape = tuple(int(s) for s in np.shape(data))
    if len(shape) != 4:
        raise ValueError(f"data must have shape (frames, masses, height, width), got {shape}")
    n_frames, n_masses, height, width = shape
    if not (0 < n_masses <= (10 if legacy else 60)):
        raise ValueError(f"{n_masses} masses: the file layout holds 1 to "
                         f"{10 if legacy else 60}")
    if not (0 < height <= 16384 and 0 < width <= 16384) or n_frames > 32767:
        raise ValueError(f"data shape {shape} does not fit the file format")
    if len(labels) != n_masses or len(masses_amu) != n_masses:
        raise ValueError(f"need one label and one mass per mass channel ({n_masses}); got "
                         f"{len(labels)} labels and {len(masses_amu)} masses")
    if not (np.isfinite(raster_um) and raster_um > 0):
        raise ValueError(f"raster_um must be a positive number of micrometres, not {raster_um}")
    if not (np.isfinite(dwell_time_us) and dwell_time_us > 0):
        raise ValueError(f"dwell_time_us must be positive, not {dwell_time_us}")
    if duration_s is not None:
        try:
            seconds = float(duration_s)
        except (TypeError, ValueError):
            seconds = float("nan")
        if not (np.isfinite(seconds) and 0 <= round(seconds) < 2**31):
            raise ValueError(f"duration_s must be a number of seconds from 0 to 2**31 - 1, "
                             f"not {duration_s!r}")
    path = os.fspath(filename)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")

    if b_fields is not None:
        fields = [int(f) for f in b_fields]
        n_fields = max(fields, default=-1) + 1
        if (len(fields) != n_masses or n_fields < 1 or min(fields) < 0 or
                fields != sorted(fields) or n_masses % n_fields
                or any(fields.count(f) != n_masses // n_fields for f in range(n_fields))):
            raise ValueError(f"b_fields must give each of the {n_masses} masses its B field "
                             f"(0, 1, ...), field by field with as many masses per field; "
                             f"got {list(b_fields)}")
    metadata.setdefault("file_name", os.path.basename(path)[:63])
    header = _build_header(shape, list(labels), list(masses_amu), float(raster_um),
                           float(dwell_time_us), legacy, metadata,
                           None if detectors is None else list(detectors), duration_s,
                           None if b_fields is None else list(b_fields))
    dtype = np.dtype(">u2" if legacy else "<u4")
    limit = np.iinfo(dtype).max
    frame_bytes = n_masses * height * width * dtype.itemsize
    frames_per_chunk = max(1, CHUNK_FRAMES_BYTES // max(frame_bytes, 1))
    # Write next to the target and rename at the end, so that a failure never
    # leaves a half-written file under the requested name.
    temporary = f"{path}.partial-{os.getpid()}"
    try:
        with open(temporary, "wb") as handle:
            handle.write(header)
            for start in range(0, n_frames, frames_per_chunk):
                chunk = np.asarray(data[start:start + frames_per_chunk])
                if chunk.dtype.kind not in "ui" and not (
                        chunk.dtype.kind == "f" and np.all(chunk == np.round(chunk))):
                    raise ValueError(f"data must hold integer counts, not {chunk.dtype}")
                if chunk.size and (chunk.min() < 0 or chunk.max() > limit):
                    raise ValueError(f"counts must lie in 0..{limit} for this layout; found "
                                     f"{chunk.min()}..{chunk.max()}")
                handle.write(chunk.astype(dtype, copy=False).tobytes())
        if overwrite:
            os.replace(temporary, path)
        else:
            # os.link fails if the target appeared meanwhile: nothing is overwritten.
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise FileExistsError(f"{path} appeared while writing; not replaced") from None
            except OSError:  # file systems without hard links
                if os.path.exists(path):
                    raise FileExistsError(f"{path} exists; not replaced") from None
                os.replace(temporary, path)
            if os.path.exists(temporary):
                os.unlink(temporary)
    except BaseException as exc:
        if os.path.exists(temporary):
            os.unlink(temporary)
        if isinstance(exc, OSError) and not isinstance(exc, FileExistsError):
            # Name the file asked for, never the temporary one, and say "No space left
            # on device" for a full disk (also when raised as OSError(ENOSPC)).
            number = exc.errno if exc.errno is not None else (
                exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], int) else None)
            reason = ("No space left on device" if number == errno.ENOSPC
                      else exc.strerror or (os.strerror(number) if number else str(exc)))
            raise OSError(number, f"cannot write {path}: {reason}") from exc
        raise
    return path
