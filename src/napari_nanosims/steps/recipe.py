"""Recipes: an ordered list of steps with their parameters, saved as TOML or JSON.

A recipe file looks like this (TOML; JSON holds the same keys)::

    format = "napari-nanosims recipe"
    version = 1
    roll_data = "auto"

    [[steps]]
    step = "remove_hot_pixels"
    [steps.parameters]
    num_outliers = 3

The processing record that ``nanosims process`` writes is a recipe too (with extra keys
that loading ignores), so any result can be reproduced from its record.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from .._checks import short_repr
from ..io.acquisition import Acquisition, open_acquisition
from .parameters import NONE_TEXT
from .progress import Cancelled, relay, run_to_completion
from .registry import STEPS

__all__ = ["Recipe", "RecipeCancelled", "run_recipe", "iter_run_recipe", "default_recipe"]

FORMAT = "napari-nanosims recipe"
VERSION = 1
#: Largest recipe file read, bytes (a processing record is a few tens of KiB).
MAX_RECIPE_BYTES = 16 * 2**20
#: Most steps a recipe may have.
MAX_STEPS = 1000


def _recipe_text(path: Path) -> str:
    """The text of a recipe file: a regular file of at most MAX_RECIPE_BYTES, UTF-8.

    Opened without blocking (a FIFO would wait for a writer) and checked on the open
    file, so nothing is read from a device, a FIFO or a folder.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                             | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the recipe: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise ValueError(f"{path}: not a regular file; a recipe is a .toml or .json file")
    with os.fdopen(descriptor, "rb") as handle:
        try:
            raw = handle.read(MAX_RECIPE_BYTES + 1)
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the recipe: {exc.strerror or exc}") \
                from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise ValueError(f"{path}: more than {MAX_RECIPE_BYTES // 2**20} MiB; not a recipe")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a recipe file: not UTF-8 text (byte {exc.start} is "
                         f"{raw[exc.start:exc.start + 1]!r})") from None
    if "\x00" in text:
        raise ValueError(f"{path}: not a recipe file: it holds NUL bytes (binary data)")
    return text


class RecipeCancelled(Cancelled):
    """Raised by :func:`run_recipe` when its ``cancel`` says stop."""


def _check_roll(value):
    if value in ("auto", True, False):
        return value
    raise ValueError(f"roll_data must be 'auto', true or false; got {short_repr(value)}")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Steps (name, parameters) in order, and how to open the file.

    Every parameter is checked against its step's definition when the recipe is made;
    missing parameters take their defaults when the step runs.
    """

    steps: tuple[tuple[str, dict], ...] = ()
    roll_data: bool | str = "auto"

    def __post_init__(self):
        checked = []
        for entry in self.steps:
            name, parameters = entry if not isinstance(entry, str) else (entry, {})
            if not isinstance(name, str) or name not in STEPS:
                raise ValueError(f"unknown step {short_repr(name)}; known steps: "
                                 f"{', '.join(STEPS)}")
            STEPS[name].resolve(parameters)  # raises ValueError naming the parameter
            checked.append((name, dict(parameters or {})))
        object.__setattr__(self, "steps", tuple(checked))
        object.__setattr__(self, "roll_data", _check_roll(self.roll_data))

    # -- conversions ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "recipe") -> Recipe:
        """A recipe from its dict form (extra keys, such as a record's results, ignored)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("steps"), list):
            raise ValueError(f"{source}: a recipe needs a 'steps' list")
        if len(data["steps"]) > MAX_STEPS:
            raise ValueError(f"{source}: {len(data['steps'])} steps; a recipe has at most "
                             f"{MAX_STEPS}")
        steps = []
        for number, entry in enumerate(data["steps"], start=1):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("step"), str):
                raise ValueError(f"{source}: step {number} needs a 'step' name (text)")
            parameters = entry.get("parameters", {}) or {}
            if not isinstance(parameters, Mapping):
                raise ValueError(f"{source}: step {number} parameters must be a table")
            steps.append((entry["step"], dict(parameters)))
        try:
            return cls(tuple(steps), data.get("roll_data", "auto"))
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    @classmethod
    def from_history(cls, history: Iterable, roll_data: bool | str = "auto") -> Recipe:
        """The recipe that replays a history: an Acquisition's ``history`` or its dicts
        (``layer.metadata["nanosims"]["history"]`` in napari).

        Each record keeps the parameters its step defines; what a step records besides
        (``hot_pixels_total``, ``aligned_on``, ``flagged_frames``, ``excluded``...) is a
        result, not a parameter. Raises ValueError for a step that no recipe knows, or a
        value that cannot be replayed (an alignment region drawn as a mask is recorded
        as a description only).
        """
        steps = []
        for record in history:
            if isinstance(record, Mapping):
                name, parameters = record["step"], record.get("parameters") or {}
            else:
                name, parameters = record.name, record.parameters
            if name not in STEPS:
                raise ValueError(f"history step {name!r} is not a recipe step; known steps: "
                                 f"{', '.join(STEPS)}")
            known = {p.name for p in STEPS[name].parameters}
            steps.append((name, {key: value for key, value in parameters.items()
                                 if key in known}))
        return cls(tuple(steps), roll_data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recipe:
        """Read a recipe (or a processing record) from a ``.toml`` or ``.json`` file.

        Recipes come from other people, so anything else is one ValueError naming the
        file: not a regular file (a FIFO, ``/dev/zero``, a folder: refused without
        reading), more than :data:`MAX_RECIPE_BYTES`, not UTF-8 text, invalid or too
        deeply nested TOML/JSON, more than :data:`MAX_STEPS` steps, or a value of the
        wrong type.
        """
        path = Path(path)
        text = _recipe_text(path)
        try:
            if path.suffix.lower() == ".toml":
                try:
                    import tomllib
                except ImportError:  # Python 3.10
                    import tomli as tomllib
                data = tomllib.loads(text)
            else:
                data = json.loads(text)
        except RecursionError:
            raise ValueError(f"{path}: not a valid recipe file: nested too deeply") from None
        except ValueError as exc:
            raise ValueError(f"{path}: not a valid recipe file: {exc}") from None
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (every parameter resolved, defaults included)."""
        return {"format": FORMAT, "version": VERSION, "roll_data": self.roll_data,
                "steps": [{"step": name, "parameters": STEPS[name].resolve(parameters)}
                          for name, parameters in self.steps]}

    def to_toml(self, comments: bool = True) -> str:
        """TOML text; with ``comments``, each parameter's help and unit above it.

        Written with tomlkit, so any value a parameter can hold (per-label tables such as
        ``dead_times_ns = {"12C" = 40.0}``, text with quotes or backslashes) is valid TOML
        that :meth:`load` reads back to the same recipe.
        """
        import tomlkit

        document = tomlkit.document()
        if comments:
            document.add(tomlkit.comment("napari-nanosims recipe: the steps run in order on "
                                         "each file."))
            document.add(tomlkit.comment("Edit the values; a parameter left out takes its "
                                         "default."))
            document.add(tomlkit.nl())
        document.add("format", FORMAT)
        document.add("version", VERSION)
        document.add("roll_data", self.roll_data)
        steps = tomlkit.aot()
        for name, parameters in self.steps:
            step = STEPS[name]
            entry = tomlkit.table()
            if comments:
                entry.add(tomlkit.comment(f"{step.title}: {step.help}"))
            entry.add("step", name)
            if step.parameters:
                resolved = step.resolve(parameters)
                table = tomlkit.table()
                for parameter in step.parameters:
                    value = resolved[parameter.name]
                    if comments:
                        table.add(tomlkit.comment(
                            parameter.help + (f" [{parameter.unit}]" if parameter.unit else "")))
                    if value is None and parameter.default is not None:
                        # TOML has no null, and leaving it out would mean the default
                        table.add(parameter.name, NONE_TEXT)
                    elif value is None:  # left out: the default, which is None
                        table.add(tomlkit.comment(f"{parameter.name} = (not set)"))
                    else:
                        table.add(parameter.name, _toml_item(value))
                entry.add("parameters", table)
            steps.append(entry)
        document.add(tomlkit.nl())
        document.add("steps", steps)
        return tomlkit.dumps(document)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write as TOML (``.toml``) or JSON (anything else); never overwrites unless asked."""
        from ..export._files import atomic_output

        path = Path(path)
        text = (self.to_toml() if path.suffix.lower() == ".toml"
                else json.dumps(self.to_dict(), indent=2))
        with atomic_output(path, overwrite) as temporary:
            temporary.write_text(text, encoding="utf-8")
        return path

    def with_parameters(self, overrides: Mapping[str, Any]) -> Recipe:
        """A copy where every step that has a parameter of a name in ``overrides`` uses it."""
        steps = []
        for name, parameters in self.steps:
            known = {p.name for p in STEPS[name].parameters}
            steps.append((name, {**parameters, **{k: v for k, v in overrides.items()
                                                   if k in known}}))
        return Recipe(tuple(steps), self.roll_data)


def _toml_item(value):
    """A tomlkit item for a parameter value (a per-label mapping becomes an inline table)."""
    import tomlkit

    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update({str(label): _toml_item(number) for label, number in value.items()})
        return table
    if isinstance(value, (list, tuple)):
        return [_toml_item(v) for v in value]
    return tomlkit.item(value)


def default_recipe() -> Recipe:
    """What ``nanosims process`` does by default: clean, align (auto channel), leave out
    the frames a sub-pixel alignment flags, sum."""
    return Recipe((("remove_hot_pixels", {}), ("align_frames", {}), ("exclude_frames", {}),
                   ("sum_frames", {})))


def iter_run_recipe(source, recipe: Recipe | Iterable | str | os.PathLike, cancel=None):
    """Generator form of :func:`run_recipe`: yields each step's
    :class:`~napari_nanosims.steps.progress.Progress`; returns the final Acquisition."""
    if isinstance(recipe, (str, os.PathLike)):
        recipe = Recipe.load(recipe)
    elif not isinstance(recipe, Recipe):
        recipe = Recipe(tuple(cast(Iterable, recipe)))
    acquisition = (source if isinstance(source, Acquisition)
                   else open_acquisition(source, roll_data=recipe.roll_data))
    if acquisition.n_frames == 0:
        raise ValueError(f"{acquisition.name}: the file holds no pixel data (header only)")
    for name, parameters in recipe.steps:
        try:
            acquisition = yield from relay(STEPS[name].iterate(acquisition, **parameters),
                                           cancel=cancel)
        except Cancelled:
            raise RecipeCancelled(f"{acquisition.name}: cancelled during {name}") from None
    return acquisition


def run_recipe(source, recipe, progress: Callable[[str, int, int], None] | None = None,
               cancel=None) -> Acquisition:
    """Run a recipe on a file or an :class:`Acquisition`; return the final Acquisition.

    Parameters
    ----------
    source : str, path-like or Acquisition
        A ``.im`` file (opened with the recipe's ``roll_data``) or an acquisition.
    recipe : Recipe, path, or iterable of (step name, parameters)
        What to run.
    progress : callable, optional
        Called as ``progress(step_name, done, total)`` as the work advances.
    cancel : callable or threading.Event, optional
        Checked between progress steps; when it returns True (or is set),
        :class:`RecipeCancelled` is raised and nothing is returned.

    Raises
    ------
    ValueError
        For an unknown step, a bad parameter (named in the message) or a file without data.
    """
    return run_to_completion(iter_run_recipe(source, recipe, cancel),
                             None if progress is None else lambda p: progress(*p.as_tuple()))
