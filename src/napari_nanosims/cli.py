"""The ``nanosims`` command line."""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import time
import sys
import warnings
from collections.abc import Sequence

from ._errors import ImFormatWarning
from ._cli_ratio import add_ratio_command
from ._cli_recipe import _add_step_options, _recipe_from_args
from .io.reader import ImHeader, read_header


def _format_header(header: ImHeader) -> str:
    """A readable multi-line summary of one header."""
    date = header.analysis_date.strftime("%Y-%m-%d %H:%M") if header.analysis_date else "unknown"
    detectors = header.detectors or (None,) * header.n_masses
    masses = ", ".join(
        (f"{label} ({amu:.3f} amu, {detector or 'detector unknown'})" if label != "SE"
         else "SE")
        for label, amu, detector in zip(header.labels, header.masses_amu, detectors))
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


def _warning_line(path, message) -> str:
    text = str(message)
    return f"warning: {text}" if os.path.basename(os.fspath(path)) in text else \
        f"warning: {path}: {text}"


class _Interrupted(BaseException):
    """SIGTERM, turned into an exception so that temporary files are removed on the way out."""


def _on_sigterm(signum, _frame):
    raise _Interrupted(signum)


def _cmd_process(args) -> int:
    try:
        recipe = _recipe_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print(f"error: --workers must be 1 or more, not {args.workers}", file=sys.stderr)
        return 2
    parallel = args.scheduler is not None or (
        len(args.files) > 1 and (args.workers is None or args.workers > 1))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.perf_counter()
    try:
        results = (_process_in_parallel(args, recipe) if parallel
                   else _process_serially(args, recipe))
        failures = sum(not result.ok for result in results)
        tables = [result.roi_table for result in results if result.roi_table is not None]
        if tables:
            failures += _write_combined_table(tables, args)
        _print_summary(results, time.perf_counter() - started)
    except (KeyboardInterrupt, _Interrupted) as exc:
        if parallel:
            from .parallel import interrupt_workers

            interrupt_workers()
        print("interrupted: stopped before finishing; no partial outputs were left",
              file=sys.stderr)
        return 143 if isinstance(exc, _Interrupted) else 130
    except ValueError as exc:  # a scheduler that cannot be reached, a missing extra
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 1 if failures else 0


def _report(result) -> None:
    """Print one file's lines (warnings and errors on standard error)."""
    for warning in result.warnings:
        print(_warning_line(result.path, warning), file=sys.stderr)
    if result.ok:
        for line in result.lines:
            print(line)
    else:
        print(f"error: {result.error}", file=sys.stderr)


def _process_serially(args, recipe):
    from .parallel import process_one

    results = []
    for path in args.files:
        progress = _Progress(os.path.basename(path))
        result = process_one(path, recipe.to_dict(), args.out, args.overwrite,
                             single_threaded=False, progress=progress)
        progress.close()
        _report(result)
        results.append(result)
    return results


def _process_in_parallel(args, recipe):
    """Every file a dask task; a progress bar across the files on standard error."""
    from tqdm import tqdm

    from .parallel import default_workers, run_batch

    where = (f"dask scheduler {args.scheduler}" if args.scheduler
             else f"{args.workers or default_workers()} local worker processes")
    print(f"processing {len(args.files)} files on {where}", file=sys.stderr)
    with tqdm(total=len(args.files), unit="file", file=sys.stderr, disable=None,
              dynamic_ncols=True) as bar:
        failed = []

        def on_result(result):
            with bar.external_write_mode():
                _report(result)
            if not result.ok:
                failed.append(result.path)
            bar.set_postfix(failed=len(failed), refresh=False)
            bar.update(1)

        return run_batch(args.files, recipe, args.out, overwrite=args.overwrite,
                         workers=args.workers, scheduler=args.scheduler, on_result=on_result)


def _print_summary(results, seconds: float) -> None:
    if len(results) < 2:
        return
    failed = [result for result in results if not result.ok]
    print(f"summary: {len(results) - len(failed)} done, {len(failed)} failed, "
          f"{seconds:.1f} s", file=sys.stderr)
    for result in failed:
        print(f"  failed: {result.error}", file=sys.stderr)


def _write_combined_table(tables, args) -> int:
    """One tidy ROI table across all files (a ``file`` column first); 1 if it failed."""
    import pandas as pd

    from .export.ometiff import partial_path

    folder = args.out or os.path.dirname(os.path.abspath(args.files[0]))
    target = os.path.join(folder, "roi_table.csv")
    if os.path.lexists(target) and not args.overwrite:
        print(f"error: {target} exists (use --overwrite to replace)", file=sys.stderr)
        return 1
    combined = pd.concat(tables, ignore_index=True)
    combined = combined[["file"] + [c for c in combined.columns if c != "file"]]
    temporary = partial_path(__import__("pathlib").Path(target))
    combined.to_csv(temporary, index=False)
    os.replace(temporary, target)
    print(f"ROI table of {len(tables)} file(s): {target}")
    return 0


def _cmd_recipe(args) -> int:
    from .processing.recipe import default_recipe

    recipe = default_recipe()
    if args.out:
        try:
            recipe.save(args.out, overwrite=args.overwrite)
        except (FileExistsError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.out}")
        return 0
    print(json.dumps(recipe.to_dict(), indent=2) if args.json else recipe.to_toml(), end="")
    return 0


PANEL = "NanoSIMS"


def open_viewer(paths, *, show: bool = True, viewer=None):
    """A napari viewer with the plugin's panel docked and ``paths`` opened (the demo if empty).

    Uses ``viewer`` when given, else creates one. The panel (Clean, Align and Header tabs)
    is docked first so that the files open into the canvas size they will keep, and the
    view is reset once the window is laid out, so the whole image is in view. Returns the
    viewer. Files that cannot be opened are reported on standard error.
    """
    import napari
    from qtpy.QtCore import Qt, QTimer

    from ._cache import demo_path

    paths = list(paths) or [str(demo_path())]
    if viewer is None:
        viewer = napari.Viewer(title="napari-nanosims", show=show)
    # On the left, under napari's layer list: the column is there anyway, so the canvas
    # keeps about three quarters of the window instead of half.
    dock, _ = viewer.window.add_plugin_dock_widget("napari-nanosims", PANEL, tabify=False)
    viewer.window._qt_window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
    for path in paths:
        try:
            viewer.open(path, plugin="napari-nanosims")
        except Exception as exc:  # napari wraps reader errors in its own types
            print(f"error: {path}: {exc}", file=sys.stderr)
    _arrange(viewer, dock)
    QTimer.singleShot(0, lambda: _arrange(viewer, dock))  # again once the window is laid out
    # napari's start-up objects live as long as the window; frozen, Python's full garbage
    # collections skip them and take 30-70 ms instead of 150-250 ms, which would otherwise
    # stall the window while results are added (benchmarks/bench_gui.py).
    gc.freeze()
    return viewer


def _arrange(viewer, dock) -> None:
    """Give the panel the height the layer list does not need; fit the image in view."""
    from qtpy.QtCore import Qt

    try:
        qt_window, qt_viewer = viewer.window._qt_window, viewer.window._qt_viewer
        docks = [qt_viewer.dockLayerControls, qt_viewer.dockLayerList, dock]
        qt_window.resizeDocks(docks, [280, 270, 410], Qt.Orientation.Vertical)
    except (AttributeError, RuntimeError):  # napari renamed its docks, or the window is gone
        return
    viewer.reset_view()


def no_display_message() -> str | None:
    """Why a window cannot open here (Linux without DISPLAY or WAYLAND_DISPLAY), else None."""
    if not sys.platform.startswith("linux"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    if os.environ.get("QT_QPA_PLATFORM", "").startswith(("offscreen", "minimal")):
        return None
    return ("error: 'nanosims view' opens a window, but there is no display here (neither "
            "DISPLAY nor WAYLAND_DISPLAY is set); run it on a desktop, under "
            "'xvfb-run nanosims view', or use the headless commands "
            "'nanosims info', 'nanosims process' and 'nanosims recipe'")


def _cmd_view(args) -> int:
    message = no_display_message()
    if message:
        print(message, file=sys.stderr)
        return 1
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
        "process", help="run a recipe (default: clean, align, sum) and write sums, stack, record",
        description="For each FILE: run the recipe (default: remove hot pixels, align the "
                    "frames on --align, sum them) and write <stem>_sums.ome.tif (per-mass sums), "
                    "<stem>_aligned.ome.tif (the processed stack) and <stem>_processing.json "
                    "(the recipe used, which --recipe can replay, with translations, hot "
                    "pixels per frame, history and versions). Existing outputs are never "
                    "replaced without --overwrite; a bad file is reported and skipped.")
    process.add_argument("files", nargs="+", help=".im files")
    process.add_argument("--recipe", metavar="FILE",
                         help="recipe (.toml or .json, or a *_processing.json record); "
                              "see 'nanosims recipe'")
    process.add_argument("--out", metavar="DIR", help="output folder (default: next to each file)")
    process.add_argument("--roll", choices=("auto", "yes", "no"), default=None,
                         help="one-pixel roll of release-4108 images on loading "
                              "(default: the recipe's, auto)")
    process.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    process.add_argument("--workers", type=int, metavar="N", default=None,
                         help="files processed at once, each in its own process on one "
                              "core (default: the number of cores; 1: one after the other)")
    process.add_argument("--scheduler", metavar="ADDRESS", default=None,
                         help="run the files on a dask.distributed cluster instead "
                              "(tcp://host:8786; needs the 'distributed' extra)")
    _add_step_options(process)
    process.set_defaults(func=_cmd_process)

    add_ratio_command(sub)

    recipe = sub.add_parser("recipe", help="print a commented default recipe to start from",
                            description="Print the default recipe (TOML with every parameter, "
                                        "its unit and meaning), or write it with --out.")
    recipe.add_argument("--json", action="store_true", help="JSON instead of TOML")
    recipe.add_argument("--out", metavar="FILE", help="write to FILE (.toml or .json)")
    recipe.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    recipe.set_defaults(func=_cmd_recipe)

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
