"""``nanosims info``: a summary of the header of each file."""

from __future__ import annotations

import json
import warnings

from .._errors import ImFormatWarning
from ..io.reader import ImHeader, read_header
from . import report

__all__ = ["add_info_command"]


def _format_header(header: ImHeader) -> str:
    """A readable multi-line summary of one header."""
    date = header.analysis_date.strftime("%Y-%m-%d %H:%M") if header.analysis_date else "unknown"
    detectors = header.detectors or (None,) * header.n_masses
    masses = ", ".join(
        (f"{label} ({amu:.3f} amu, {detector or 'detector unknown'})" if label != "SE"
         else "SE")
        for label, amu, detector in zip(header.labels, header.masses_amu, detectors,
                                        strict=True))
    data = (f"{header.n_frames} frames" if header.has_data
            else "no pixel data (header only)")
    if header.has_data and header.n_frames != header.n_frames_header:
        data += f" (header announces {header.n_frames_header})"
    lines = [
        f"{header.path}",
        f"  type        : {header.file_type_name} (type {header.file_type}, release "
        f"{header.release}, {'little' if header.byte_order == '<' else 'big'}-endian, "
        f"{header.bytes_per_pixel}-byte pixels)",
        f"  masses      : {masses}",
        f"  frames      : {data}",
        f"  image       : {header.width} x {header.height} pixels, "
        f"{header.raster_um:.3f} x {header.raster_um * header.height / max(header.width, 1):.3f}"
        f" µm, {header.pixel_size_um * 1000:.1f} nm/pixel",
        f"  dwell time  : {header.dwell_time_us:g} µs/pixel "
        f"({header.frame_time_s:.2f} s per frame)",
        f"  date        : {date}",
        f"  sample      : {header.sample_name or '-'}"
        + (f"  comment: {header.comment}" if header.comment else ""),
        f"  primary beam: {header.primary_ion or '?'}; header field 'primary current' "
        f"(unit unknown): {_raw_current(header.primary_current_raw[0])} at start, "
        f"{_raw_current(header.primary_current_raw[1])} at end",
    ]
    return "\n".join(lines)


def _raw_current(value: int) -> str:
    """The header's primary-current field as stored; 2**31 - 1 marks 'not measured'."""
    return "not measured" if value == 2**31 - 1 else str(value)


def _cmd_info(args) -> int:
    paths = args.files
    if not paths:
        from .._cache import demo_path

        paths = [str(demo_path())]
        if not args.json:
            print("No file given: describing the built-in demo acquisition.\n")
    failures = 0
    records = []
    for path in paths:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ImFormatWarning)
                header = read_header(path)
        except (ValueError, OSError) as exc:
            failures += 1
            report.error(exc)
            continue
        for warning in caught:
            report.warning(warning.message)
        if args.json:
            records.append(header.to_dict())
        else:
            print(_format_header(header))
    if args.json:
        print(json.dumps(records, indent=2, ensure_ascii=False))
    return 1 if failures else 0


def add_info_command(sub) -> None:
    """Add the ``info`` sub-command (header summaries) to the ``nanosims`` parser."""
    info = sub.add_parser("info", help="summarise the header of .im files")
    info.add_argument("files", nargs="*", help=".im files (none: the built-in demo)")
    info.add_argument("--json", action="store_true", help="print JSON for machines")
    info.set_defaults(func=_cmd_info)
