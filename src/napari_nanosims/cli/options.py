"""Options made from step parameters (one builder for any command), and the recipe of
``nanosims process`` from its options."""

from __future__ import annotations

import argparse

__all__ = ["add_parameter_option", "parameter_option_help"]


def _option_type(parameter):
    """argparse type for a parameter: its kind, checked by the parameter ('none' for
    optional ones), so that a bad value is refused before any file is read."""
    def convert(text: str):
        if parameter.optional and text.strip().lower() in ("none", "null", ""):
            return None
        try:
            value = parameter.kind(text) if parameter.kind is not int else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{parameter.flag} takes {parameter.kind.__name__} values, not {text!r}"
            ) from None
        try:
            return parameter.check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parameter.kind.__name__
    return convert


def _allowed(parameter) -> str:
    """The values a parameter accepts, in words: ``1 to 101, odd``."""
    if parameter.choices:
        return "one of " + ", ".join(parameter.choices)
    if parameter.kind not in (int, float):
        return ""
    parts = []
    if parameter.above is not None:
        parts.append(f"above {parameter.above:g}")
    elif parameter.minimum is not None:
        parts.append(f"from {parameter.minimum:g}")
    if parameter.maximum is not None:
        parts.append(f"to {parameter.maximum:g}")
    if parameter.odd:
        parts.append("odd")
    if parameter.optional:
        parts.append("'none' allowed")
    return " ".join(parts[:2]) + "".join(f", {part}" for part in parts[2:])


def parameter_option_help(parameter, note: str = "", required: bool = False) -> str:
    """``--help`` text of a parameter's option: help, unit, allowed values, default."""
    unit = f" [{parameter.unit}]" if parameter.unit else ""
    allowed = _allowed(parameter)
    allowed = f"; {allowed}" if allowed else ""
    default = ("required" if required else "no default" if parameter.required
               else f"default {parameter.default}")
    note = f"; {note}" if note else ""
    # argparse formats help with %: a literal one is written twice
    return f"{parameter.help}{unit} ({default}{allowed}){note}".replace("%", "%%")


def add_parameter_option(group, parameter, *, dest: str | None = None,
                         recipe_default: bool = False, note: str = "", **behaviour):
    """Add ``parameter``'s option to an argparse parser or group; returns the action.

    The flag, type, bounds (checked by :meth:`Parameter.check` when the command line is
    parsed), default, help and unit all come from the parameter; nothing is repeated here.

    Parameters
    ----------
    group : argparse.ArgumentParser or argument group
    parameter : Parameter
    dest : str, optional
        Attribute of the parsed arguments (default: the parameter's name).
    recipe_default : bool
        The option's value is None unless given, so that a recipe's value is kept; the
        help still names the parameter's default (that of the default recipe).
    note : str
        What the option does on this command beyond setting the parameter.
    **behaviour
        argparse behaviour that is not a definition (``action='append'``, ``required``).
    """
    required = bool(behaviour.get("required"))
    default = None if recipe_default or parameter.required or required else parameter.default
    return group.add_argument(parameter.flag, dest=dest or parameter.name, default=default,
                              type=_option_type(parameter), metavar=parameter.name.upper(),
                              help=parameter_option_help(parameter, note, required),
                              **behaviour)


def _add_step_options(parser) -> None:
    """One option per step parameter, from the parameter definitions (default: the recipe's)."""
    from ..steps.corrections import QSA
    from ..steps.frames import ALIGN_FRAMES, REMOVE_HOT_PIXELS

    for title, step in (("hot pixels", REMOVE_HOT_PIXELS), ("alignment", ALIGN_FRAMES)):
        group = parser.add_argument_group(f"{title} (override the recipe)")
        for parameter in step.parameters:
            # the step in the name: segment has a 'channel' and a 'method' too
            add_parameter_option(group, parameter, dest=f"step_{step.name}.{parameter.name}",
                                 recipe_default=True)
        if title == "alignment":
            group.add_argument("--subpixel", action="store_true",
                               help="same as --method subpixel")
    group = parser.add_argument_group(
        "detector corrections (per pixel and frame, after cleaning, before aligning)")
    group.add_argument("--dead-time", action="store_true",
                       help="dead-time correction with each detector's dead time from the header")
    group.add_argument("--em-background", action="store_true",
                       help="subtract each electron multiplier's background from the header")
    add_parameter_option(group, QSA.parameter("beta"), dest="qsa_beta",
                         note="QSA correction with this beta (needs --primary-current; "
                              "implies --dead-time)")
    add_parameter_option(group, QSA.parameter("primary_current_pA"), dest="primary_current",
                         note="for QSA (with --qsa-beta)")
    group.add_argument("--em-yield", action="store_true",
                       help="divide by each electron multiplier's yield from the header")


def _recipe_from_args(args):
    from ..steps.recipe import Recipe, default_recipe

    recipe = Recipe.load(args.recipe) if args.recipe else default_recipe()
    overrides: dict[str, dict] = {}  # step -> the parameters given on the command line
    for key, value in vars(args).items():
        if key.startswith("step_") and value is not None:
            step, _, name = key[len("step_"):].partition(".")
            overrides.setdefault(step, {})[name] = value
    if args.subpixel:
        overrides.setdefault("align_frames", {})["method"] = "subpixel"
    if overrides:
        recipe = Recipe(tuple((name, {**parameters, **overrides.get(name, {})})
                              for name, parameters in recipe.steps), recipe.roll_data)
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
