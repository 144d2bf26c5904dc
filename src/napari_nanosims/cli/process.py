"""``nanosims process``: run a recipe over files, one after the other or on dask."""

from __future__ import annotations

import os
import sys
import time

from . import report
from .options import _add_step_options, _recipe_from_args
from .report import ProgressLine

__all__ = ["add_process_command"]


def _check_outputs_inside(recipe, args) -> None:
    """Refuse, before any work, a recipe whose export steps would write outside the
    output folder of any of the files (ValueError)."""
    from ..batch.single import confine_exports
    from ..export.names import output_folder

    for folder in dict.fromkeys(output_folder(os.path.abspath(path), args.out)
                                for path in args.files):
        confine_exports(recipe, folder)


def _cmd_process(args) -> int:
    try:
        recipe = _recipe_from_args(args)
        _check_outputs_inside(recipe, args)
    except ValueError as exc:
        report.error(exc)
        return 2
    if args.workers is not None and args.workers < 1:
        report.error(f"--workers must be 1 or more, not {args.workers}")
        return 2
    if args.scheduler is None and args.workers is None and len(args.files) > 1:
        from ..batch.workers import workers_for

        args.workers = workers_for(args.files)  # 1: processes would not pay for their start
        if args.workers == 1:
            print(f"processing {len(args.files)} files one after the other (too little work "
                  "for worker processes to pay off; --workers N to choose)", file=sys.stderr)
    parallel = args.scheduler is not None or (
        len(args.files) > 1 and (args.workers is None or args.workers > 1))
    started = time.perf_counter()
    # SIGINT and SIGTERM (main: KeyboardInterrupt, Interrupted) end the run where it is:
    # the pool stops its workers first, and nothing is written after them.
    try:
        results = (_process_in_parallel(args, recipe) if parallel
                   else _process_serially(args, recipe))
    except ValueError as exc:  # a scheduler that cannot be reached, a missing extra
        report.error(exc)
        return 2
    failures = sum(not result.ok for result in results)
    tables = [result.roi_table for result in results if result.roi_table is not None]
    if tables:
        failures += _write_combined_table(tables, args)
    classes = [result.class_table for result in results if result.class_table is not None]
    if classes:
        failures += _write_combined_classes(classes, tables, args)
    _print_summary(results, time.perf_counter() - started)
    return 1 if failures else 0


def _report(result) -> None:
    """Print one file's lines (warnings and errors on standard error)."""
    for warning in result.warnings:
        report.warning(warning, result.path)
    if result.ok:
        for line in result.lines:
            print(line)
    else:
        report.error(result.error)


def _process_serially(args, recipe):
    from ..batch.pool import process_one

    results = []
    for path in args.files:
        progress = ProgressLine(os.path.basename(path))
        result = process_one(path, recipe.to_dict(), args.out, args.overwrite,
                             single_threaded=False, progress=progress)
        progress.close()
        _report(result)
        results.append(result)
    return results


def _process_in_parallel(args, recipe):
    """Every file a dask task; a progress bar across the files on standard error."""
    from tqdm import tqdm

    from ..batch.pool import run_batch

    where = (f"dask scheduler {args.scheduler}" if args.scheduler
             else f"{args.workers} local worker processes")
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

    from ..export._files import atomic_output
    from ..export.names import combined_roi_table, output_folder

    target = combined_roi_table(output_folder(os.path.abspath(args.files[0]), args.out or None))
    combined = pd.concat(tables, ignore_index=True)
    combined = combined[["file"] + [c for c in combined.columns if c != "file"]]
    try:
        with atomic_output(target, args.overwrite) as temporary:
            combined.to_csv(temporary, index=False)
    except OSError as exc:  # it exists, a full disk, no permission: one line, no partial
        report.error(exc)
        return 1
    print(f"ROI table of {len(tables)} file(s): {target}")
    return 0


def _write_combined_classes(class_tables, roi_tables, args) -> int:
    """Every file's class table (``file`` column first) and, for each quantity, the
    classes compared across all files (``file`` = 'all files'); 1 if it failed."""
    import pandas as pd

    from ..analysis.group_stats import compare_classes
    from ..export._files import atomic_output
    from ..export.names import combined_class_table, output_folder

    target = combined_class_table(output_folder(os.path.abspath(args.files[0]),
                                                args.out or None))
    combined = pd.concat(class_tables, ignore_index=True)
    every_roi = pd.concat(roi_tables, ignore_index=True)
    try:
        across = [compare_classes(every_roi, quantity).assign(file="all files")
                  for quantity in combined["quantity"].unique()]
        combined = pd.concat([combined, *across], ignore_index=True)
        combined = combined[["file"] + [c for c in combined.columns if c != "file"]]
        with atomic_output(target, args.overwrite) as temporary:
            combined.to_csv(temporary, index=False)
    except (OSError, ValueError) as exc:  # exists, disk full, unwritable: one line
        report.error(exc)
        return 1
    print(f"class table of {len(class_tables)} file(s): {target}")
    return 0


def add_process_command(sub) -> None:
    """Add the ``process`` sub-command (recipes over files) to the ``nanosims`` parser."""
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
                              "core (default: chosen from the files' sizes and the cores: "
                              "one after the other unless processes pay for their start; "
                              "1: one after the other)")
    process.add_argument("--scheduler", metavar="ADDRESS", default=None,
                         help="run the files on a dask.distributed cluster instead "
                              "(tcp://host:8786; needs the 'distributed' extra)")
    _add_step_options(process)
    process.set_defaults(func=_cmd_process)
