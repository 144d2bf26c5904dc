"""Smoothing trials of the sub-pixel registration: only the kept trial speaks (issue 20,
item 11: a discarded trial warned "none of the frames registered" while the result was
fine)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_nanosims import register_frames
from napari_nanosims.processing.alignment import registration
from napari_nanosims.testing.simulate import simulate_scene


def _scene():
    return simulate_scene("cells", 5, 15.0, window=48, max_drift_px=3.0, seed=2)["frames"]


def _with_failed_trial(monkeypatch, failing_scales):
    """Make the trials at ``failing_scales`` register nothing (no frame significant, so
    every frame flagged), as a too-weak or too-strong smoothing does on some scenes; the
    registration itself runs unchanged. Returns the scales tried, in order."""
    real_spectra, real_diagnostics = registration._Spectra, registration._diagnostics
    seen = []

    def spectra(data, region, smoothing_scale=1.0):
        made = real_spectra(data, region, smoothing_scale=smoothing_scale)
        made.trial_scale = smoothing_scale
        seen.append(smoothing_scale)
        return made

    def diagnostics(spectra, shifts, sums, reference):
        correlation, significance, uncertainty = real_diagnostics(spectra, shifts, sums,
                                                                  reference)
        if spectra.trial_scale in failing_scales:
            significance = np.zeros_like(significance)
        return correlation, significance, uncertainty

    monkeypatch.setattr(registration, "_Spectra", spectra)
    monkeypatch.setattr(registration, "_diagnostics", diagnostics)
    return seen


def test_a_discarded_trial_that_registered_nothing_does_not_warn(monkeypatch):
    frames = _scene()
    scales = registration.smoothing_scales(len(frames))
    assert len(scales) > 1  # several trials for a short stack
    seen = _with_failed_trial(monkeypatch, {scales[0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        result = register_frames(frames)
    assert seen == list(scales)  # the failed trial did run, and was discarded
    assert not result.flagged.all() and np.abs(result.translations).max() > 0


def test_the_warning_stays_when_the_kept_result_registered_nothing(monkeypatch):
    frames = _scene()
    _with_failed_trial(monkeypatch, set(registration.smoothing_scales(len(frames))))
    with pytest.warns(UserWarning, match="none of the 5 frames registered") as caught:
        result = register_frames(frames)
    assert len([w for w in caught if "none of the" in str(w.message)]) == 1  # said once
    assert np.all(result.translations == 0)
