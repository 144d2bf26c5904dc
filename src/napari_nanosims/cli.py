"""The ``nanosims`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence

from ._errors import ImFormatWarning
from .io.reader import ImHeader, read_header


def _format_header(header: ImHeader) -> str:
    """A readable multi-line summary of one header."""
    date = header.analysis_date.strftime("%Y-%m-%d %H:%M") if header.analysis_date else "unknown"
    masses = ", ".join(
        f"{label} ({amu:.3f} amu)" if label != "SE" else "SE"
        for label, amu in zip(header.labels, header.masses_amu))
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
        f"  primary beam: {header.primary_ion or '?'} "
        f"{header.primary_current_pA[0]} pA",
    ]
    return "\n".join(lines)


def _cmd_info(args) -> int:
    paths = args.files
    if not paths:
        from ._cache import demo_path

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
            print(f"error: {exc}", file=sys.stderr)
            continue
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        if args.json:
            records.append(header.to_dict())
        else:
            print(_format_header(header))
    if args.json:
        print(json.dumps(records, indent=2, ensure_ascii=False))
    return 1 if failures else 0


class _Progress:
    """One status line per file on standard error, redrawn in place on a terminal."""

    def __init__(self, name: str):
        self.name = name
        self.tty = sys.stderr.isatty()
        self.last = None

    def __call__(self, step: str, done: int, total: int) -> None:
        if self.tty:
            print(f"\r  {self.name}: {step} {done}/{total}   ", end="", file=sys.stderr,
                  flush=True)
        elif step != self.last:
            print(f"  {self.name}: {step} ...", file=sys.stderr, flush=True)
        self.last = step

    def close(self) -> None:
        if self.tty and self.last is not None:
            print(file=sys.stderr)


def _cmd_process(args) -> int:
    from .processing._frames import run_to_completion
    from .export.ometiff import output_paths, write_processing_outputs
    from .processing.pipeline import iter_process_image_data

    inferring = {"method": "subpixel" if args.subpixel else "sequential"}
    if args.subpixel:
        inferring["upsample_factor"] = args.upsample_factor
    parameters = {"alignment_detector": args.align, "padding": args.padding,
                  "infer_translations_kwargs": inferring,
                  "load_mims_kwargs": {"roll_data": args.roll}}
    roll = {"auto": "auto", "yes": True, "no": False}[args.roll]
    failures = 0
    for path in args.files:
        progress = _Progress(os.path.basename(path))
        try:
            if not args.overwrite:
                existing = [str(p) for p in output_paths(path, args.out).values() if p.exists()]
                if existing:
                    raise FileExistsError(f"outputs exist (use --overwrite to replace): "
                                          f"{', '.join(existing)}")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                steps = iter_process_image_data(
                    path, args.align, padding=args.padding,
                    load_mims_kwargs={"roll_data": roll},
                    infer_translations_kwargs=inferring)
                result = run_to_completion(
                    steps, on_progress=lambda step, show=progress: show(*step))
            progress.close()
            for warning in caught:
                print(f"warning: {path}: {warning.message}", file=sys.stderr)
            written = write_processing_outputs(result, path, args.out, parameters=parameters,
                                               overwrite=args.overwrite)
            hot = int(result["hot_pixels"].sum())
            print(f"{path}: {result['aligned'].shape[0]} frames, {hot} hot pixels replaced, "
                  f"aligned on {result['detector_names'][result['alignment_detector_index']]}")
            for key, output in written.items():
                print(f"  {key:8s} {output}")
        except (ValueError, OSError) as exc:
            progress.close()
            failures += 1
            message = str(exc)
            if os.fspath(path) not in message:
                message = f"{path}: {message}"
            print(f"error: {message}", file=sys.stderr)
    return 1 if failures else 0


WIDGETS = ("Remove hot pixels", "Align frames", "NanoSIMS header")


def open_viewer(paths, *, show: bool = True, viewer=None):
    """A napari viewer with the three dock widgets and ``paths`` opened (the demo if empty).

    Uses ``viewer`` when given, else creates one. Returns the viewer. Files that cannot
    be opened are reported on standard error.
    """
    import napari

    from ._cache import demo_path

    paths = list(paths) or [str(demo_path())]
    if viewer is None:
        viewer = napari.Viewer(title="napari-nanosims", show=show)
    for name in WIDGETS:
        viewer.window.add_plugin_dock_widget("napari-nanosims", name)
    for path in paths:
        try:
            viewer.open(path, plugin="napari-nanosims")
        except Exception as exc:  # napari wraps reader errors in its own types
            print(f"error: {path}: {exc}", file=sys.stderr)
    return viewer


def _cmd_view(args) -> int:
    try:
        import napari
    except ImportError:
        print("error: napari is not installed; install it with "
              "python -m pip install 'napari-nanosims[napari]' PyQt6", file=sys.stderr)
        return 1
    open_viewer(args.files)
    napari.run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nanosims", description="Open, clean and align Cameca NanoSIMS .im images.")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="summarise the header of .im files")
    info.add_argument("files", nargs="*", help=".im files (none: the built-in demo)")
    info.add_argument("--json", action="store_true", help="print JSON for machines")
    info.set_defaults(func=_cmd_info)

    process = sub.add_parser(
        "process", help="remove hot pixels, align frames and write sums, stacks and a record",
        description="For each FILE: remove hot pixels (openformat's method), align the frames "
                    "on one detector, and write <stem>_sums.ome.tif (per-mass sums of the aligned "
                    "frames), <stem>_aligned.ome.tif (the aligned stack) and "
                    "<stem>_processing.json (translations, hot pixels per frame, parameters, "
                    "versions). Existing outputs are never replaced without --overwrite.")
    process.add_argument("files", nargs="+", help=".im files")
    process.add_argument("--align", required=True, metavar="LABEL",
                         help="detector to align on, e.g. '12C 14N' (spaces optional)")
    process.add_argument("--out", metavar="DIR", help="output folder (default: next to each file)")
    process.add_argument("--subpixel", action="store_true",
                         help="sub-pixel alignment (default: the seed's whole-pixel method)")
    process.add_argument("--upsample-factor", type=int, default=20,
                         help="sub-pixel precision is 1/N pixel (default 20)")
    process.add_argument("--padding", type=int, default=8,
                         help="padding around frames for alignment, pixels (default 8)")
    process.add_argument("--roll", choices=("auto", "yes", "no"), default="auto",
                         help="one-pixel roll of the images on loading (default auto)")
    process.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    process.set_defaults(func=_cmd_process)

    view = sub.add_parser("view", help="open napari with the NanoSIMS widgets and files",
                          description="Open napari with the hot-pixel, alignment and header "
                                      "widgets docked and FILEs loaded (the built-in demo when "
                                      "none is given).")
    view.add_argument("files", nargs="*", help=".im files (none: the built-in demo)")
    view.set_defaults(func=_cmd_view)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
