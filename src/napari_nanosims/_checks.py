"""The one check of a number against its bounds, shared by the algorithms and the steps.

``processing/`` declares the bounds of its tuning numbers next to the code that needs
them and checks them with :func:`check_number`; the steps' :class:`Parameter` definitions
take the same bounds and :meth:`Parameter.check` ends in the same function, so a value is
accepted or refused, with the same message, whichever way it arrives.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from typing import Any, cast

__all__ = ["check_number", "short_repr"]

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to a readable length, nested structures to 3 levels (a value
    read from a file may be a list nested 900 deep or a megabyte long)."""
    return _REPR.repr(value)


def check_number(value: Any, name: str, kind: type, *, unit: str = "",
                 minimum: float | None = None, maximum: float | None = None,
                 above: float | None = None, odd: bool = False, where: str = ""):
    """Return ``value`` as ``kind`` (int or float) within its bounds, or raise ValueError.

    Parameters
    ----------
    value : Any
        The value to check; booleans, strings and arrays are not numbers here.
    name : str
        The argument's name, for the message.
    kind : type
        ``int`` (whole numbers; integral floats are accepted) or ``float`` (finite).
    unit : str
        Unit named in the messages (``'px'``).
    minimum, maximum : float or None
        Inclusive bounds.
    above : float or None
        Exclusive lower bound.
    odd : bool
        Whole numbers must be odd (filter windows).
    where : str
        Prefix of the message (``'remove_hot_pixels: '``).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where}{name} must be a number, not {short_repr(value)}")
    if kind is int:
        if not isinstance(value, numbers.Integral):
            if float(value).is_integer():
                value = int(cast(float, value))  # numbers.Real is untyped for int()
            else:
                raise ValueError(f"{where}{name} must be a whole number, not {value!r}")
        value = int(value)
        if odd and value % 2 == 0:
            raise ValueError(f"{where}{name} must be odd, not {value}")
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{where}{name} must be a finite number, not {value}")
    unit = f" {unit}" if unit else ""
    if above is not None and not value > above:
        raise ValueError(f"{where}{name} must be above {above:g}{unit}; got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}{name} must be at least {minimum:g}{unit}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{where}{name} must be at most {maximum:g}{unit}; got {value}")
    return value
