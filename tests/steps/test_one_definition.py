"""One definition per parameter: every step parameter's recipe key, command-line option and
library check agree with its ``Parameter`` (default, bounds, choices).

Every parameter of every step in ``STEPS`` is walked. A parameter is either reachable from
a command (``CLI_COMMANDS``) or listed in ``NOT_IN_CLI`` with the reason. The checks parse
the real ``nanosims`` parser: a value beyond a bound must be refused by argparse, the bound
itself accepted, so an option that re-defines a bound (or forgets to check it) fails here;
a self-check feeds the checker such options. The widgets' controls are checked the same
way in ``tests/napari/test_one_definition_widgets.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from napari_nanosims.cli.main import build_parser
from napari_nanosims.steps.classes import CLASS_STEPS
from napari_nanosims.steps.recipe import Recipe, default_recipe
from napari_nanosims.steps.registry import STEPS

#: Step -> the command whose options set its parameters.
CLI_COMMANDS = {"remove_hot_pixels": "process", "align_frames": "process",
                "correct_qsa": "process", "ratio": "ratio"}

#: (step, parameter) left out of the command line on purpose, with the reason.
NOT_IN_CLI = {
    ("correct_dead_time", "dead_times_ns"): "one number per mass label: a recipe "
    "(or the Correct tab) sets it; --dead-time uses the header's dead times",
    ("subtract_em_background", "background_cps"): "one number per mass label: a recipe "
    "sets it; --em-background uses the header's background",
    ("exclude_frames", "frames"): "frame numbers differ from file to file; a recipe (or "
    "the Align tab) chooses them",
    ("exclude_frames", "flagged"): "nanosims process always leaves flagged frames out "
    "(the default recipe); a recipe can keep them",
    ("segment", "channel"): "segmentation runs from a recipe only (nanosims process "
    "--recipe)",
    ("segment", "method"): "segmentation runs from a recipe only",
    ("segment", "smoothing_px"): "segmentation runs from a recipe only",
    ("segment", "min_area_px"): "segmentation runs from a recipe only",
    ("segment", "split_touching"): "segmentation runs from a recipe only",
    ("roi_table", "expressions"): "ROI tables run from a recipe only",
    **{(step.name, parameter.name): "steps on the ROI table run from a recipe only"
       for step in CLASS_STEPS for parameter in step.parameters},
    **{("import_rois", name): "ROI files (and registrations) differ per file: a recipe "
       "names them with {stem}" for name in ("path", "registration", "min_area_px")},
    **{(step, name): "exports run from a recipe only; nanosims process writes its own "
       "outputs (--out, --overwrite)"
       for step in ("write_nrrd", "write_ome_tiff", "write_lans")
       for name in ("folder", "overwrite")},
}

#: Arguments a command needs besides the option under test.
BASE_ARGS = {"process": ["process", "file.im"],
             "ratio": ["ratio", "file.im", "--expr", "12C15N/12C14N"]}

#: Options whose argparse default is None on purpose: the recipe's value (the parameter's
#: default in the default recipe) is used unless the option is given.
RECIPE_DEFAULT = {"remove_hot_pixels", "align_frames"}


def every_parameter():
    return [(step.name, parameter.name) for step in STEPS.values()
            for parameter in step.parameters]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def option(command: argparse.ArgumentParser, flag: str):
    return next((a for a in command._actions if flag in a.option_strings), None)


def parses(parser, argv) -> bool:
    """Whether argparse accepts ``argv`` (its error message is swallowed)."""
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit:
            return False
    return True


def edge_values(parameter):
    """(values the parameter accepts, values it refuses) at its bounds, as text."""
    if parameter.choices:
        return list(parameter.choices), ["not-a-choice"]
    if parameter.kind not in (int, float):
        return [], []
    whole = parameter.kind is int
    beyond = 2 if parameter.odd else 1  # the next odd number past an odd bound
    good, bad = [], []
    if parameter.above is not None:
        bad.append(parameter.above)
        good.append(parameter.above + parameter.increment)
    elif parameter.minimum is not None:
        good.append(parameter.minimum)
        bad.append(parameter.minimum - beyond)
    if parameter.maximum is not None:
        good.append(parameter.maximum)
        bad.append(parameter.maximum + beyond)
    as_text = (lambda v: str(int(v))) if whole else repr
    return [as_text(v) for v in good], [as_text(v) for v in bad]


def cli_problems(parser, command_name: str, parameter, recipe_default: bool) -> list[str]:
    """What is wrong with ``parameter``'s option of ``command_name`` (empty: nothing)."""
    command = subcommands(parser)[command_name]
    action = option(command, parameter.flag)
    if action is None:
        return [f"{command_name} has no {parameter.flag}"]
    problems = []
    if parameter.required or recipe_default or action.required:
        if action.default is not None:
            problems.append(f"{parameter.flag} default {action.default!r}, expected None")
    elif action.default != parameter.default:
        problems.append(f"{parameter.flag} default {action.default!r}, "
                        f"parameter {parameter.default!r}")
    if not (parameter.required or action.required) and \
            f"default {parameter.default}" not in (action.help or ""):
        problems.append(f"{parameter.flag} help does not name the default")
    good, bad = edge_values(parameter)
    for value in good:
        if not parses(parser, BASE_ARGS[command_name] + [parameter.flag, value]):
            problems.append(f"{parameter.flag} {value} refused; the parameter accepts it")
    for value in bad:
        if parses(parser, BASE_ARGS[command_name] + [parameter.flag, value]):
            problems.append(f"{parameter.flag} {value} accepted; the parameter refuses it")
    return problems


# -- every parameter is accounted for ---------------------------------------------------
def test_every_parameter_is_exposed_or_listed():
    commands = subcommands(build_parser())
    for step_name, name in every_parameter():
        parameter = STEPS[step_name].parameter(name)
        if (step_name, name) in NOT_IN_CLI:
            assert NOT_IN_CLI[step_name, name].strip(), "give the reason"
            if step_name in CLI_COMMANDS:  # a listed parameter is truly not there
                assert option(commands[CLI_COMMANDS[step_name]], parameter.flag) is None
            continue
        assert step_name in CLI_COMMANDS, (
            f"{step_name}.{name}: give it an option or list it in NOT_IN_CLI")
    assert set(NOT_IN_CLI) <= set(every_parameter()), "NOT_IN_CLI names no parameter"


# -- recipe keys ------------------------------------------------------------------------
@pytest.mark.parametrize("step_name, name", every_parameter())
def test_recipe_key(step_name, name):
    step = STEPS[step_name]
    parameter = step.parameter(name)
    # the step's other required parameters, at a value they accept
    others = {p.name: float(edge_values(p)[0][0]) for p in step.parameters
              if p.required and p.name != name}
    if parameter.required:
        with pytest.raises(ValueError, match=f"{name} must be given"):
            step.resolve(others)
        good, bad = edge_values(parameter)
        for value in good:
            Recipe(((step_name, {name: float(value), **others}),))
        for value in bad:
            with pytest.raises(ValueError, match=name):
                Recipe(((step_name, {name: float(value), **others}),))
        return
    assert step.resolve({name: parameter.default, **others})[name] == parameter.default
    assert step.defaults()[name] == parameter.default
    recipe = Recipe.from_dict({"steps": [{"step": step_name,
                                          "parameters": {name: parameter.default,
                                                         **others}}]})
    assert recipe.to_dict()["steps"][0]["parameters"][name] == parameter.default
    good, bad = edge_values(parameter)
    convert = {int: int, float: float}.get(parameter.kind, str)
    for value in good:
        step.resolve({name: convert(float(value) if convert is int else value), **others})
    for value in bad:
        with pytest.raises(ValueError, match=name):
            Recipe(((step_name, {name: convert(float(value) if convert is int
                                               else value), **others}),))


def test_default_recipe_uses_the_parameter_defaults():
    for entry in default_recipe().to_dict()["steps"]:
        step = STEPS[entry["step"]]
        assert entry["parameters"] == step.defaults()


# -- command-line options ----------------------------------------------------------------
CLI_EXPOSED = [(s, n) for s, n in every_parameter() if (s, n) not in NOT_IN_CLI]


@pytest.mark.parametrize("step_name, name", CLI_EXPOSED)
def test_cli_option_matches_the_parameter(step_name, name):
    parameter = STEPS[step_name].parameter(name)
    problems = cli_problems(build_parser(), CLI_COMMANDS[step_name], parameter,
                            recipe_default=step_name in RECIPE_DEFAULT)
    assert not problems, problems


def test_process_without_options_runs_the_parameter_defaults():
    from napari_nanosims.cli.options import _recipe_from_args

    args = build_parser().parse_args(BASE_ARGS["process"])
    recipe = _recipe_from_args(args).to_dict()
    for entry in recipe["steps"]:
        assert entry["parameters"] == STEPS[entry["step"]].defaults()


def test_process_options_set_only_their_own_step(tmp_path):
    """--method and --align belong to align_frames, not to segment's method and channel."""
    from napari_nanosims.cli.options import _recipe_from_args

    recipe_path = tmp_path / "recipe.toml"
    Recipe((("align_frames", {}), ("sum_frames", {}), ("segment", {}))).save(recipe_path)
    args = build_parser().parse_args(BASE_ARGS["process"] + [
        "--recipe", str(recipe_path), "--method", "subpixel", "--align", "13C"])
    steps = dict(_recipe_from_args(args).steps)
    assert (steps["align_frames"]["method"], steps["align_frames"]["channel"]) == \
        ("subpixel", "13C")
    assert (steps["segment"]["method"], steps["segment"]["channel"]) == ("otsu", "auto")


def test_cli_checker_finds_a_redefined_bound():
    """Self-check: options that re-define the ratio kernel are caught."""
    kernel = STEPS["ratio"].parameter("kernel")
    for redefined in (dict(type=int, default=1),  # unchecked: 1-101 not enforced
                      dict(type=int, default=1, choices=range(1, 16, 2)),  # max 15
                      dict(type=int, default=3)):  # another default
        parser = argparse.ArgumentParser(prog="nanosims")
        sub = parser.add_subparsers(dest="command")
        ratio = sub.add_parser("ratio")
        ratio.add_argument("files", nargs="+")
        ratio.add_argument("--expr", action="append")
        ratio.add_argument("--kernel", **redefined)
        assert cli_problems(parser, "ratio", kernel, recipe_default=False)
    # and the real parser passes
    assert not cli_problems(build_parser(), "ratio", kernel, recipe_default=False)


# -- library checks ------------------------------------------------------------------------
def test_library_checks_use_the_parameter_bounds():
    from napari_nanosims.analysis.accumulate import _check_kernel
    from napari_nanosims.analysis.ratios import evaluate
    from napari_nanosims.analysis.rois import segment_rois
    from napari_nanosims.processing.alignment.alignment import UPSAMPLE_BOUNDS
    from napari_nanosims.processing.hot_pixels.hot_pixels import BOUNDS

    kernel = STEPS["ratio"].parameter("kernel")
    assert _check_kernel(int(kernel.maximum)) == kernel.maximum
    for bad in (int(kernel.maximum) + 2, int(kernel.minimum) - 2, 2):
        with pytest.raises(ValueError, match="kernel"):
            _check_kernel(bad)
        with pytest.raises(ValueError):
            kernel.check(bad)
    import inspect

    assert inspect.signature(evaluate).parameters["min_counts"].default == \
        STEPS["ratio"].parameter("min_counts").default
    method = STEPS["segment"].parameter("method")
    assert inspect.signature(segment_rois).parameters["method"].default == method.default
    import numpy as np

    for choice in method.choices:  # every choice of the step is one the function knows
        segment_rois(np.zeros((8, 8)), method=choice)
    clean = STEPS["remove_hot_pixels"]
    for name, bounds in BOUNDS.items():
        parameter = clean.parameter(name)
        for field, value in bounds.items():
            assert getattr(parameter, field) == value, (name, field)
    upsample = STEPS["align_frames"].parameter("upsample_factor")
    for field, value in UPSAMPLE_BOUNDS.items():
        assert getattr(upsample, field) == value
