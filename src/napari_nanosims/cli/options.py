"""Recipe options of ``nanosims process``: one option per step parameter, corrections."""

from __future__ import annotations

import argparse


def _option_type(parameter):
    """argparse type for a parameter: its kind, with 'none' for optional ones."""
    def convert(text: str):
        if parameter.optional and text.strip().lower() in ("none", "null", ""):
            return None
        try:
            value = parameter.kind(text) if parameter.kind is not int else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{parameter.flag} takes {parameter.kind.__name__} values, not {text!r}")
        try:
            return parameter.check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parameter.kind.__name__
    return convert


def _add_step_options(parser) -> None:
    """One option per step parameter, from the parameter definitions (default: the recipe's)."""
    from ..steps.parameters import ALIGN_PARAMETERS, HOT_PIXEL_PARAMETERS

    for title, parameters in (("hot pixels", HOT_PIXEL_PARAMETERS),
                              ("alignment", ALIGN_PARAMETERS)):
        group = parser.add_argument_group(f"{title} (override the recipe)")
        for parameter in parameters:
            unit = f" [{parameter.unit}]" if parameter.unit else ""
            group.add_argument(parameter.flag, dest=f"step_{parameter.name}", default=None,
                               type=_option_type(parameter), metavar=parameter.name.upper(),
                               choices=None,
                               help=f"{parameter.help}{unit} (default {parameter.default})")
        if title == "alignment":
            group.add_argument("--subpixel", action="store_true",
                               help="same as --method subpixel")
    group = parser.add_argument_group(
        "detector corrections (per pixel and frame, after cleaning, before aligning)")
    group.add_argument("--dead-time", action="store_true",
                       help="dead-time correction with each detector's dead time from the header")
    group.add_argument("--em-background", action="store_true",
                       help="subtract each electron multiplier's background from the header")
    group.add_argument("--qsa-beta", type=float, metavar="BETA",
                       help="QSA correction with this beta (needs --primary-current; implies "
                            "--dead-time)")
    group.add_argument("--primary-current", type=float, metavar="PA",
                       help="primary current at the sample for QSA, pA")
    group.add_argument("--em-yield", action="store_true",
                       help="divide by each electron multiplier's yield from the header")


def _recipe_from_args(args):
    from ..steps.recipe import Recipe, default_recipe

    recipe = Recipe.load(args.recipe) if args.recipe else default_recipe()
    overrides = {name[len("step_"):]: value for name, value in vars(args).items()
                 if name.startswith("step_") and value is not None}
    if args.subpixel:
        overrides["method"] = "subpixel"
    if overrides:
        recipe = recipe.with_parameters(overrides)
    if args.roll is not None:
        recipe = Recipe(recipe.steps, {"auto": "auto", "yes": True, "no": False}[args.roll])
    return _with_corrections(recipe, args)


def _with_corrections(recipe, args):
    """Add the corrections asked for on the command line, in their order, after cleaning."""
    from ..steps.corrections import ORDER
    from ..steps.recipe import Recipe

    if (args.qsa_beta is None) != (args.primary_current is None):
        raise ValueError("QSA needs both --qsa-beta and --primary-current (the header's "
                         "primary current is not the current at the sample)")
    wanted = {}
    if args.dead_time or args.qsa_beta is not None or args.em_background or args.em_yield:
        wanted["correct_dead_time"] = {}
    if args.em_background:
        wanted["subtract_em_background"] = {}
    if args.qsa_beta is not None:
        wanted["correct_qsa"] = {"beta": args.qsa_beta,
                                 "primary_current_pA": args.primary_current}
    if args.em_yield:
        wanted["correct_em_yield"] = {}
    if not wanted:
        return recipe
    steps = [(name, dict(params)) for name, params in recipe.steps]
    present = {name for name, _ in steps}
    for name, params in wanted.items():
        if name in present:
            steps = [(n, {**p, **params}) if n == name else (n, p) for n, p in steps]
    missing = [name for name in ORDER if name in wanted and name not in present]
    if missing:
        position = next((i + 1 for i, (n, _) in enumerate(steps) if n in ORDER), None)
        if position is None:
            position = 1 if steps and steps[0][0] == "remove_hot_pixels" else 0
        steps[position:position] = [(name, wanted[name]) for name in missing]
    return Recipe(tuple(steps), recipe.roll_data)
