"""npe2 sample-data contribution: the built-in demo acquisition."""

from __future__ import annotations

from .._cache import demo_path
from .reader import read_im_layers


def nanosims_demo() -> list[tuple]:
    """The ``make_demo_im`` acquisition (seed 0), written once to the cache folder and
    opened through the same reader as a real file."""
    return read_im_layers(str(demo_path()))
