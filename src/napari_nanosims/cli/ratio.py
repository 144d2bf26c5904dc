"""``nanosims ratio``: expressions of the summed masses with their errors, per file."""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..steps.analysis import RATIO
from . import report
from .options import add_parameter_option


def _cmd_ratio(args) -> int:
    from ..analysis.accumulate import accumulate
    from ..analysis.ratios import evaluate
    from ..batch.single import confine_exports
    from ..export.names import output_folder, ratio_outputs
    from ..export.ratio import write_derived
    from ..io.acquisition import open_acquisition
    from ..steps.recipe import Recipe, run_recipe

    try:
        recipe = Recipe.load(args.recipe) if args.recipe else None
        # The recipe's export steps write into --out (sub-folders of it at most), like
        # 'nanosims process': refused before any work if one would write elsewhere.
        confined = {path: confine_exports(recipe, output_folder(os.path.abspath(path),
                                                                args.out), args.overwrite)
                    for path in args.files} if recipe is not None else {}
    except ValueError as exc:
        report.error(exc)
        return 2
    failures = 0
    for path in args.files:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                acquisition = (run_recipe(path, confined[path]) if recipe is not None
                               else open_acquisition(path))
                total = accumulate(acquisition)
                for expression in args.expr:
                    derived = evaluate(total, expression, kernel=args.kernel,
                                       min_counts=args.min_counts,
                                       min_counts_of=args.min_counts_of)
                    written = write_derived(derived, ratio_outputs(path, args.out, expression),
                                            value_range=args.range, overwrite=args.overwrite,
                                            display=args.display, figure=not args.plain_png)
                    finite = derived.value[np.isfinite(derived.value)]
                    median = f"{np.median(finite):.6g}" if finite.size else "no valid pixel"
                    unit = f" {derived.unit}" if derived.unit else ""
                    print(f"{path}: {derived.expression} (median {median}{unit}, "
                          f"kernel {args.kernel})")
                    for key, output in written.items():
                        print(f"  {key:8s} {output}")
            for warning in caught:
                report.warning(warning.message, path)
        except Exception as exc:  # one bad file or expression never stops the others
            failures += 1
            message = str(exc) or type(exc).__name__
            if os.path.basename(os.fspath(path)) not in message:
                message = f"{path}: {message}"
            report.error(message)
    return 1 if failures else 0


def add_ratio_command(sub) -> None:
    """Add the ``ratio`` sub-command to the ``nanosims`` parser."""
    ratio = sub.add_parser(
        "ratio", help="ratio, delta, atom-percent images with their Poisson errors",
        description="For each FILE and expression: sum the frames (after --recipe, if given), "
                    "evaluate the expression with its error per pixel and write "
                    "<stem>_<expression>.ome.tif (float32: value, sigma) and a PNG figure "
                    "(colour bar with the expression, its unit and range; scale bar in µm). "
                    "Expressions use the mass labels, numbers, "
                    "+ - * /, log, log10, sqrt, exp and delta(expr, standard).")
    ratio.add_argument("files", nargs="+", help=".im files")
    add_parameter_option(ratio, RATIO.parameter("expression"), dest="expr", action="append",
                         required=True, note="repeat for several; each is written")
    add_parameter_option(ratio, RATIO.parameter("kernel"))
    add_parameter_option(ratio, RATIO.parameter("min_counts"))
    add_parameter_option(ratio, RATIO.parameter("min_counts_of"))
    ratio.add_argument("--range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help="display range of the PNG (default: 1st-99th percentile)")
    ratio.add_argument("--display", choices=("colormap", "hsi"), default="colormap",
                       help="PNG: the values in the cividis colormap, or the OpenMIMS HSI "
                            "display (ratios and fractions) with its ratio scale "
                            "(default: colormap)")
    ratio.add_argument("--plain-png", action="store_true",
                       help="PNG without colour bar and scale bar: one pixel per image pixel")
    ratio.add_argument("--recipe", metavar="FILE",
                       help="process the file with this recipe first (its export steps "
                            "write into --out)")
    ratio.add_argument("--out", metavar="DIR", help="output folder (default: next to each file)")
    ratio.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    ratio.set_defaults(func=_cmd_ratio)
