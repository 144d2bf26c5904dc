"""The registration's first pass, at half resolution, and the canvas it allows.

The first pass places each frame against the running sum of the frames placed before
it; it only needs a start within a pixel or so, since the first refinement pass searches
every whole-pixel shift again (on the binned frames, where they are refined). Frames
binned 2 x 2 carry the same structure down to two pixels at a quarter of the cost, so
the first pass runs on them. Its translations then tell how far the
frames spread: the refinement passes need a padded canvas only as wide as the frame
plus that spread (and a margin), not the quarter of the frame that a drift could
reach before anything was known. A narrower canvas makes every later FFT and every
pixel-wise product cheaper (270 against 320 px for a 256 px frame that drifts by up
to 6 px: a fifth less).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np

from .subpixel import _Spectra
from .sums import _Sums

__all__ = ["BinnedStack", "CANVAS_MARGIN_PX", "FIRST_PASS_HIGH_PASS_PX",
           "HALF_RESOLUTION_MIN_PX", "SMOOTHING_REACH", "canvas_for",
           "first_pass", "half_resolution_first_pass"]

#: Frames whose sides are both at least this many pixels get their first pass at half
#: resolution (below, the whole pass costs little anyway).
HALF_RESOLUTION_MIN_PX = 96
#: Padding of the canvas beyond the frame and the spread of the first pass's
#: translations, pixels: room for the refinement passes to move the frames.
CANVAS_MARGIN_PX = 8
#: ... and at least this many smoothing widths (5 widths of the correlation filter,
#: a Gaussian of sqrt(2) smoothing widths).
SMOOTHING_REACH = 5 * np.sqrt(2.0)
#: Local background removed from the frames of a first pass that is not refined on
#: the binned frames (Gaussian sigma, full-resolution px) when the chosen band has none.
#: The first pass correlates plainly with the running sum: a flat surround keeps the
#: window's shape in the frame, which pulls every frame toward no shift (by up to
#: 4.7 px on a grain whose frames drift 30 px). Without it a single pass more follows
#: on particles, minerals, gradients and mixtures (2 passes instead of 3-4 at 256², 9 %
#: less time at 10 frames and 7 % at 200). Not where the binned refinement follows:
#: there it would settle at the removal's own fixed point, further from the band's.
FIRST_PASS_HIGH_PASS_PX = 8.0


class BinnedStack:
    """A (frames, H, W) stack seen as its 2 x 2 block sums, frame by frame (lazy).

    An odd last row or column is left out.
    """

    def __init__(self, data):
        n_frames, height, width = data.shape
        self.data = data
        self.shape = (n_frames, height // 2, width // 2)

    def __getitem__(self, index: int) -> np.ndarray:
        counts = np.asarray(self.data[index], dtype=np.float32)
        rows, cols = 2 * self.shape[1], 2 * self.shape[2]
        counts = counts[:rows, :cols]
        return counts[0::2, 0::2] + counts[0::2, 1::2] + counts[1::2, 0::2] + counts[1::2, 1::2]


def _binned_region(region: np.ndarray | None) -> np.ndarray | None:
    """A region mask on 2 x 2 blocks: a block is in when most of it is."""
    if region is None:
        return None
    rows, cols = region.shape[0] // 2 * 2, region.shape[1] // 2 * 2
    mask = region[:rows, :cols].astype(np.float32)
    blocks = mask[0::2, 0::2] + mask[0::2, 1::2] + mask[1::2, 0::2] + mask[1::2, 1::2]
    return blocks >= 2


def first_pass(spectra: _Spectra, sums: _Sums, progress: Callable[[], int]
               ) -> Generator[int, None, np.ndarray]:
    """Each frame against the plain running sum of those before it (``sums`` is left
    holding every frame at its translation); returns the translations (frames, 2), px."""
    shifts = np.zeros((spectra.spectra.shape[0], 2))
    sums.add(0, (0.0, 0.0))
    for index in range(1, shifts.shape[0]):
        spectrum = np.conj(spectra.spectra[index]) * sums.total * spectra.filter
        shifts[index] = spectra.peak(spectrum, spectra.whole_pixel_peak(spectrum))[0]
        sums.add(index, shifts[index])
        yield progress()
    return shifts


def half_resolution_first_pass(data, region, weighting, progress: Callable[[], int],
                               refine=None) -> Generator[int, None, np.ndarray]:
    """:func:`first_pass` on the frames binned 2 x 2, with the weighting scaled to
    them (smoothing and background in half the pixels; without ``refine``, a band
    without a background removal gets :data:`FIRST_PASS_HIGH_PASS_PX`), then, when given,
    ``refine(spectra, shifts, sums)`` (a generator returning better shifts: the
    refinement passes on the binned frames, at a quarter of their full cost);
    translations in full pixels."""
    from .weighting import Weighting

    binned = BinnedStack(data)
    high_pass = weighting.high_pass_px
    if refine is None and not np.isfinite(high_pass):
        high_pass = FIRST_PASS_HIGH_PASS_PX
    scaled = Weighting(max(weighting.sigma_px / 2, 0.5), high_pass / 2)
    spectra = _Spectra(binned, _binned_region(region), scaled)
    sums = _Sums(spectra)
    shifts = yield from first_pass(spectra, sums, progress)
    if refine is not None:
        shifts = yield from refine(spectra, shifts, sums)
    return 2.0 * shifts


def canvas_for(frame_shape: tuple[int, int], shifts: np.ndarray, sigma_px: float
               ) -> tuple[int, int]:
    """The padded canvas (rows, cols) for frames of ``frame_shape`` whose translations
    spread as ``shifts`` do (centred on their mid-range), smoothed by ``sigma_px``.

    The padding is the spread plus :data:`CANVAS_MARGIN_PX`, and at least
    :data:`SMOOTHING_REACH` smoothing widths: the smoothing acts on the correlation's
    spectrum, so it wraps around the canvas, and a frame's edge must not reach its
    own other edge through it (the correlation filter is a Gaussian of sigma_px x
    sqrt(2); at 5 of its widths it is below 4e-6).
    """
    import scipy.fft

    spread = np.ptp(np.asarray(shifts, dtype=np.float64), axis=0)
    reach = SMOOTHING_REACH * sigma_px
    rows, cols = (scipy.fft.next_fast_len(length + int(np.ceil(max(extent + CANVAS_MARGIN_PX,
                                                                   reach))), real=True)
                  for length, extent in zip(frame_shape, spread, strict=True))
    return rows, cols
