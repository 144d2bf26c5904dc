"""``nanosims spots``: ratios of isotope (spot) files, ``.is``, into one CSV table."""

from __future__ import annotations

import glob
import os
import re
import warnings

from . import report


def _expand(patterns: list[str]) -> list[str]:
    """The files named, with shell patterns expanded (for shells that do not)."""
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else []
        files.extend(matches or [pattern])
    return files


def _cmd_spots(args) -> int:
    from ..analysis.spots import spot_table
    from ..export._files import atomic_output
    from ..io.isotope import open_isotope

    corrections = {"dead_time": not args.no_dead_time, "em_yield": args.yield_,
                   "background": args.background}
    options = {"outlier_sigma": args.outlier_sigma, "exclude_outliers": args.exclude_outliers}
    try:
        if args.out and os.path.exists(args.out) and not args.overwrite:
            raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
        standard = args.standard
        if standard is not None and re.fullmatch(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?",
                                                 standard.strip()):
            standard = float(standard)
    except (ValueError, FileExistsError) as exc:
        report.error(exc)
        return 2
    measurements, failures = [], 0
    for path in _expand(args.files):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                measurements.append(open_isotope(path))
            for warning in caught:
                report.warning(warning.message, path)
        except Exception as exc:  # one bad file never stops the others
            failures += 1
            report.error(exc if os.path.basename(path) in str(exc) else f"{path}: {exc}")
    if not measurements:
        report.error("no readable .is file")
        return 1
    try:
        table = spot_table(measurements, args.expr, standard=standard,
                           blocks=not args.no_blocks, corrections=corrections, **options)
    except (ValueError, KeyError) as exc:
        report.error(exc.args[0] if isinstance(exc, KeyError) else exc)
        return 2
    if args.out:
        with atomic_output(args.out, overwrite=args.overwrite) as temporary:
            table.to_csv(temporary, index=False)
        print(f"{len(table)} rows, {len(measurements)} files -> {args.out}")
    else:
        print(table.to_csv(index=False), end="")
    return 1 if failures else 0


def add_spots_command(sub) -> None:
    """Add the ``spots`` sub-command to the ``nanosims`` parser."""
    spots = sub.add_parser(
        "spots", help="isotope ratios of spot files (.is) into one table",
        description="For each .is FILE and each --expr: the whole-run ratio (and one per "
                    "block) with its Poisson error, the standard error of the cycles, "
                    "chi-square/MSWD, outlier cycles and, with --standard, delta (permil). "
                    "Writes one tidy CSV table (docs/ratios.md, 'Spot files').")
    spots.add_argument("files", nargs="+", help=".is files (shell patterns are expanded)")
    spots.add_argument("--expr", action="append", required=True,
                       help="ratio of two masses, e.g. '34S/32S'; repeat for several")
    spots.add_argument("--standard", metavar="RATIO|NAME|FILE",
                       help="reference for delta: a number, a standard's name (e.g. "
                            "'VCDT 34S/32S') or a measured standard .is file")
    spots.add_argument("--outlier-sigma", type=float, default=None,
                       help="flag cycles further than this many Poisson sigmas from the "
                            "ratio (default: Bonferroni threshold, 5%% per file)")
    spots.add_argument("--exclude-outliers", action="store_true",
                       help="compute ratios without the flagged cycles")
    spots.add_argument("--no-dead-time", action="store_true",
                       help="do not correct the electron multipliers' dead time")
    spots.add_argument("--yield", dest="yield_", action="store_true",
                       help="correct the electron multipliers' yield")
    spots.add_argument("--background", action="store_true",
                       help="subtract the electron multipliers' dark-count background")
    spots.add_argument("--no-blocks", action="store_true", help="whole runs only")
    spots.add_argument("--out", metavar="CSV", help="table file (default: standard output)")
    spots.add_argument("--overwrite", action="store_true", help="replace an existing table")
    spots.set_defaults(func=_cmd_spots)
