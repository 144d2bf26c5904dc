"""One definition per step parameter: default, type, bounds, unit and help.

The library functions validate with these definitions, the command line builds its
options from them, the napari widgets build their controls from them, and recipes
are checked against them. A bad value raises ``ValueError`` naming the parameter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, cast

import numpy as np

from .._checks import check_number, short_repr
from ..processing.alignment.alignment import MAX_UPSAMPLE_FACTOR, UPSAMPLE_BOUNDS
from ..processing.hot_pixels.hot_pixels import BOUNDS as _HOT_PIXEL_BOUNDS
from .progress import run_to_completion

# The bounds mix value types (kinds, numbers, flags): typed loosely for ``**`` expansion.
HOT_PIXEL_BOUNDS = cast("dict[str, dict[str, Any]]", _HOT_PIXEL_BOUNDS)

__all__ = ["Parameter", "Step", "HOT_PIXEL_PARAMETERS", "ALIGN_PARAMETERS", "EXCLUDE_PARAMETERS",
           "MAX_UPSAMPLE_FACTOR",
           "parameter"]


#: The text that stands for None where a format has no null (TOML recipes, the CLI).
NONE_TEXT = "none"


@dataclasses.dataclass(frozen=True)
class Parameter:
    """A step parameter.

    Attributes
    ----------
    name : str
        Keyword argument name (``num_outliers``).
    default : Any
        Default value.
    kind : type
        ``int``, ``float``, ``bool`` or ``str``.
    help : str
        One sentence for tooltips, ``--help`` and recipe comments.
    unit : str
        Physical unit (``'px'``, ``'counts'``), empty when dimensionless.
    minimum, maximum : float or None
        Inclusive bounds for numbers.
    above : float or None
        Exclusive lower bound for numbers (``outlier_factor`` must be above 0).
    choices : tuple or None
        Allowed values for strings.
    optional : bool
        None is allowed (and means what ``help`` says).
    odd : bool
        Whole numbers must be odd (filter windows).
    cli_name : str or None
        Command-line option name when it differs from ``--name-with-dashes``.
    per_label : bool
        The value may also be a mapping from mass label to a number (one per channel).
    mask_ok : bool
        The value may also be a 2-D boolean array (a mask drawn in napari); recorded in
        the history as a description, not the array.
    text_format : callable or None
        For text values: called with the value, raises ValueError when it is malformed
        (so that a recipe fails before any work, not in the middle).
    required : bool
        There is no default: the value must be given (``default`` is None), because any
        default would be a number nobody measured (QSA's beta and primary current).
    title : str or None
        The words a widget shows when the name is not one to read ('align on' for
        ``channel``); the unit is added by :attr:`label`.
    step : float or None
        Increment of a widget's spin box (None: 2 for odd whole numbers, 1 for other
        whole numbers, 0.01 for other numbers).
    """

    name: str
    default: Any
    kind: type
    help: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    choices: tuple | None = None
    optional: bool = False
    odd: bool = False
    cli_name: str | None = None
    per_label: bool = False
    mask_ok: bool = False
    text_format: Any = None
    required: bool = False
    title: str | None = None
    step: float | None = None

    @property
    def flag(self) -> str:
        """The command-line option, e.g. ``--num-outliers``."""
        return "--" + (self.cli_name or self.name.replace("_", "-"))

    @property
    def label(self) -> str:
        """A short label with the unit, for widgets: ``kernel_size (px)``, ``align on``."""
        return (self.title or self.name) + (f" ({self.unit})" if self.unit else "")

    @property
    def increment(self) -> float:
        """A widget's spin-box step (see ``step``)."""
        if self.step is not None:
            return self.step
        if self.kind is int:
            return 2 if self.odd else 1
        return 0.01

    def check(self, value: Any, owner: str = "") -> Any:
        """Return ``value`` converted to this parameter's type, or raise ValueError."""
        where = f"{owner}: " if owner else ""
        if self.per_label and isinstance(value, Mapping):
            checked = {}
            for label, number in value.items():
                if not isinstance(label, str):
                    raise ValueError(f"{where}{self.name} keys must be mass labels, "
                                     f"not {short_repr(label)}")
                checked[label] = dataclasses.replace(self, per_label=False, optional=False,
                                                     name=f"{self.name}[{label!r}]").check(
                    number, owner)
            return checked
        if self.optional and self.kind is not str and isinstance(value, str) \
                and value.strip().lower() == NONE_TEXT:
            value = None  # how TOML, which has no null, writes None (see Recipe.to_toml)
        if value is None:
            if self.optional:
                return None
            if self.required:
                raise ValueError(f"{where}{self.name} must be given; it has no default "
                                 f"({self.help})")
            raise ValueError(f"{where}{self.name} must be given (None is not allowed)")
        if self.kind is bool:
            if isinstance(value, bool) or type(value).__name__ == "bool_":
                return bool(value)
            raise ValueError(f"{where}{self.name} must be true or false, not "
                             f"{short_repr(value)}")
        if self.mask_ok and getattr(value, "ndim", 0) == 2:
            return np.asarray(value).astype(bool)
        if self.kind is str:
            if not isinstance(value, str):
                raise ValueError(f"{where}{self.name} must be text, not {short_repr(value)}")
            if self.choices is not None and value not in self.choices:
                raise ValueError(f"{where}{self.name} must be one of "
                                 f"{', '.join(map(repr, self.choices))}; got "
                                 f"{short_repr(value)}")
            if self.text_format is not None and value:
                try:
                    self.text_format(value)
                except ValueError as exc:
                    raise ValueError(f"{where}{exc}") from None
            return value
        return check_number(value, self.name, self.kind, unit=self.unit,
                            minimum=self.minimum, maximum=self.maximum, above=self.above,
                            odd=self.odd, where=where)


@dataclasses.dataclass(frozen=True)
class Step:
    """A processing step: a generator function over an Acquisition and its parameters.

    ``run(acquisition, **parameters)`` yields :class:`~napari_nanosims.steps.progress.Progress`
    and returns the new Acquisition. Calling the step runs it to completion.
    """

    name: str
    title: str
    help: str
    parameters: tuple[Parameter, ...]
    run: Callable[..., Generator]

    def parameter(self, name: str) -> Parameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise KeyError(f"step {self.name!r} has no parameter {name!r}")

    def defaults(self) -> dict[str, Any]:
        """Every parameter's default."""
        return {p.name: p.default for p in self.parameters}

    def resolve(self, parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated with ``parameters``, each checked; unknown names raise."""
        parameters = dict(parameters or {})
        known = {p.name for p in self.parameters}
        unknown = set(parameters) - known
        if unknown:
            raise ValueError(f"step {self.name!r}: unknown parameter(s) "
                             f"{', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        return {p.name: p.check(parameters.get(p.name, p.default), self.name)
                for p in self.parameters}

    def iterate(self, acquisition, **parameters):
        """Generator: yields :class:`~napari_nanosims.steps.progress.Progress`, returns the
        new Acquisition."""
        resolved = self.resolve(parameters)
        return (yield from self.run(acquisition, **resolved))

    def __call__(self, acquisition, **parameters):
        return run_to_completion(self.iterate(acquisition, **parameters))


def check_all(parameters: Sequence[Parameter], values: Mapping[str, Any], owner: str):
    """Check ``values`` against the parameters of the same names (others pass through)."""
    by_name = {p.name: p for p in parameters}
    return {name: by_name[name].check(value, owner) if name in by_name else value
            for name, value in values.items()}


# -- the definitions of the processing steps' parameters ------------------------------

HOT_PIXEL_PARAMETERS = (
    Parameter("num_outliers", 3, int, "ion channels that must flag a pixel in the same "
              "frame for it to be hot (lowered, with a warning, to the number of ion "
              "channels when larger)", minimum=1, maximum=60),
    Parameter("kernel_size", 3, help="median filter window (odd)",
              **HOT_PIXEL_BOUNDS["kernel_size"]),
    Parameter("outlier_factor", 1.999, help="a pixel is an outlier when its count is at "
              "least this many times its local median", step=0.001,
              **HOT_PIXEL_BOUNDS["outlier_factor"]),
    Parameter("min_count", 0.5, help="floor of the local median in that test",
              **HOT_PIXEL_BOUNDS["min_count"]),
    Parameter("max_repeat_fraction", 0.1, help="pixels flagged in at least this fraction "
              "of the frames are kept as real features; a value above 1 turns the rule off, "
              "which single-frame files need (one hit is 1/1 of their frames)",
              **HOT_PIXEL_BOUNDS["max_repeat_fraction"]),
    Parameter("num_nonzero", None, int, "ion channels in which a hot pixel must be "
              "non-zero (None: all of them)", minimum=1, maximum=60, optional=True),
)

ALIGN_PARAMETERS = (
    Parameter("channel", "auto", str, "channel to align on: a mass label ('12C 14N', "
              "spaces optional), 'SE', 'sum' (all ion channels added), or 'auto' (12C 14N "
              "when present, else the ion channel with the most counts in frame 0)",
              cli_name="align", title="align on"),
    Parameter("method", "sequential", str, "'sequential': openformat's whole-pixel "
              "method; 'subpixel': sub-pixel registration; 'piecewise': sub-pixel, then a "
              "smooth non-rigid displacement field from overlapping patches (counts "
              "conserved)", choices=("sequential", "subpixel", "piecewise")),
    Parameter("upsample_factor", 100, help="sub-pixel translations are rounded to 1/N "
              "pixel ('subpixel' only)", **UPSAMPLE_BOUNDS),
    Parameter("padding", 8, int, "zeros around each frame while shifting (at most the "
              "frame size)", unit="px", minimum=0, maximum=16384),
    Parameter("reference", None, int, "frame to register every frame against "
              "('subpixel' only; None: the mean of the other frames)", minimum=0,
              maximum=10**6, optional=True),
    Parameter("region", None, str, "register on this part of the frame only, "
              "'top:bottom, left:right' in pixels (end excluded), so that what drifts "
              "outside it cannot pull the result ('subpixel' only; None: the whole frame; "
              "in the library also a boolean mask of the frame's shape)", optional=True,
              mask_ok=True, text_format=lambda text: _rectangle(text),
              title="register inside"),
)

EXCLUDE_PARAMETERS = (
    Parameter("frames", "", str, "frames to leave out, 0-based: '3, 7-9' (empty: none)",
              text_format=lambda text: _frame_list(text)),
    Parameter("flagged", True, bool, "also leave out the frames a sub-pixel alignment "
              "flagged as not registering (empty frames, beam interruptions, pure noise)",
              title="leave out flagged frames"),
)


def _rectangle(text: str):
    from ..processing.alignment.region import parse_rectangle

    return parse_rectangle(text)


def _frame_list(text: str):
    """Syntax of a frame list ('3, 7-9'); the frame numbers are checked by the step."""
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"frames: {part!r} is not a frame number or a range like "
                             "'7-9'") from None
        if low < 0 or high < low:
            raise ValueError(f"frames: {part!r} is not a range of frame numbers from 0 up")


def parameter(name: str) -> Parameter:
    """The definition of a hot-pixel or alignment parameter, by name."""
    for definition in HOT_PIXEL_PARAMETERS + ALIGN_PARAMETERS:
        if definition.name == name:
            return definition
    raise KeyError(name)
