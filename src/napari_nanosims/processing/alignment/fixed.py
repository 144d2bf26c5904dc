"""Registration against one fixed frame (``reference=k``): each frame to its fixed point.

The translation is where the correlation's gradient at lag 0 vanishes, the frame's
window (and its copy on the reference) moved along with the frame. Moving a frame to
the peak over the lag gets only part of the way there on a smooth scene: the window's
edges times the scene's level steepen the lag's Hessian, which the move itself cancels
(:class:`.diagnostics.FrameDiagnostics`). On a noise-free grain, ten such steps (at
most a pixel each, from a whole-pixel search the same edges pull toward 0: 2 px found
for 6) left stacks 0.06-0.24 px off (RMS; a frame 0.37 px). After a first move to the
lag's peak, the steps are now Newton's on the fixed point itself, through its Jacobian
(up to 2 px each), and the frame's level is matched where the reference frame's taper
runs out, as the reference's is (``_kernels.weigh``): 0.005-0.009 px off on the same
grains.
"""

from __future__ import annotations

import numpy as np

from .diagnostics import FrameDiagnostics
from .subpixel import _Spectra
from .sums import _Sums

__all__ = ["register_against_fixed", "MAX_STEPS", "STEP_TOLERANCE_PX", "MAX_STEP_PX"]

#: Newton steps on the fixed point, at most ...
MAX_STEPS = 20
#: ... until one moves the frame by no more than this, pixels ...
STEP_TOLERANCE_PX = 1e-3
#: ... each at most this long, pixels.
MAX_STEP_PX = 2.0


def register_against_fixed(spectra: _Spectra, sums: _Sums, index: int,
                           diagnostics: FrameDiagnostics) -> np.ndarray:
    """Frame ``index``'s translation (rows, columns), px, against the frozen reference
    in ``sums``."""
    shift = np.zeros(2)
    spectrum = sums.correlate(index, shift, exclude=False)[0]
    shift = shift + spectra.peak(spectrum, spectra.whole_pixel_peak(spectrum))[0]
    for _ in range(MAX_STEPS):
        correlated = sums.correlate(index, shift, exclude=False, noise=True)
        _, gradient, hessian = spectra.evaluate(correlated[0], (0.0, 0.0))
        jacobian = diagnostics.jacobian(shift, correlated, hessian)
        if np.all(np.linalg.eigvalsh(jacobian + jacobian.T) < 0):
            move = -np.linalg.solve(jacobian, gradient)
        else:  # no fixed point Newton's step can find here: toward the lag's peak
            move = spectra.peak(correlated[0], (0, 0))[0]
        length = float(np.hypot(*move))
        if length > MAX_STEP_PX:
            move *= MAX_STEP_PX / length
        # Within the lags searched (a frame with no structure could walk on otherwise).
        shift = np.clip(shift + move, -np.array(spectra.max_lag), np.array(spectra.max_lag))
        if length <= STEP_TOLERANCE_PX:
            break
    return shift
