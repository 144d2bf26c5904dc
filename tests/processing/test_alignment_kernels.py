"""The canvas arithmetic of the sub-pixel passes, numpy formulas and fused kernels
(numba) alike, against the formulas written out here with whole-array operations in
double precision; and when the registration uses which."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nanosims.processing.alignment import _fused, _kernels

SHAPE = (40, 33)  # an odd width, as a half spectrum's


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.fixture(params=["numpy", "fused"])
def kernels(request):
    return _kernels if request.param == "numpy" else _fused


def _complex(rng, shape=SHAPE):
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)


def _phases(rng, shape=SHAPE):
    return (np.exp(1j * rng.uniform(-3, 3, shape[0])).astype(np.complex64),
            np.exp(1j * rng.uniform(-3, 3, shape[1])).astype(np.complex64))


def test_shift_spectrum_multiplies_by_the_outer_product_of_the_phases(kernels, rng):
    spectrum, (rows, cols) = _complex(rng), _phases(rng)
    expected = spectrum.astype(np.complex128) * np.outer(rows, cols)
    out = kernels.shift_spectrum(spectrum, rows, cols, np.empty_like(spectrum))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    in_place = spectrum.copy()
    kernels.shift_spectrum(in_place, rows, cols, in_place)
    np.testing.assert_array_equal(in_place, out)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_add_shifted_adds_or_takes_out_the_moved_spectrum(kernels, rng, sign):
    total, spectrum, (rows, cols) = _complex(rng), _complex(rng), _phases(rng)
    expected = total.astype(np.complex128) + sign * spectrum * np.outer(rows, cols)
    kernels.add_shifted(total, spectrum, rows, cols, sign)
    np.testing.assert_allclose(total, expected, rtol=1e-6, atol=1e-5)


def _weigh_formula(summed, coverage, mine, placed, exclude):
    """The common weight of frame and reference (sums._Sums.correlate), whole arrays."""
    summed, coverage, mine, placed = (a.astype(np.float64)
                                      for a in (summed, coverage, mine, placed))
    if exclude:
        summed, coverage = summed - mine, coverage - placed
    weight = np.clip(coverage, 0, 1)
    scale = placed / np.maximum(coverage, 1)
    reference = summed * scale
    total = np.sum(placed * weight)
    reference -= np.sum(reference * weight) / total * placed * weight
    return mine * weight, reference, scale ** 2 * np.maximum(coverage, 0), total


@pytest.mark.parametrize("exclude", [True, False])
def test_weigh_matches_the_formula(kernels, rng, exclude):
    # Coverage from below zero (rounding at the canvas's edges) to several frames, so
    # that both clips act; the frame's window within the coverage.
    placed = rng.uniform(0, 1, SHAPE).astype(np.float32)
    coverage = (placed + rng.uniform(-0.2, 6, SHAPE)).astype(np.float32)
    summed = rng.normal(3, 2, SHAPE).astype(np.float32)
    mine = rng.normal(0, 1, SHAPE).astype(np.float32)
    frame_part, reference, noise = (np.empty(SHAPE, np.float32) for _ in range(3))
    total = kernels.weigh(summed, coverage, mine, placed, exclude, True, frame_part,
                           reference, noise)
    expected = _weigh_formula(summed, coverage, mine, placed, exclude)
    for got, want in zip((frame_part, reference, noise), expected[:3], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert total == pytest.approx(expected[3], rel=1e-6)


def test_weigh_without_noise_writes_no_noise_and_leaves_an_empty_weight_unlevelled(
        kernels, rng):
    summed = rng.normal(3, 2, SHAPE).astype(np.float32)
    placed = np.zeros(SHAPE, np.float32)  # a frame placed wholly off the canvas
    coverage = rng.uniform(0, 3, SHAPE).astype(np.float32)
    frame_part, reference = np.empty(SHAPE, np.float32), np.empty(SHAPE, np.float32)
    # (The registration passes an empty array here: nothing may be written to it.)
    untouched = np.full(SHAPE, -7.0, np.float32)
    total = kernels.weigh(summed, coverage, np.ones(SHAPE, np.float32), placed, False,
                          False, frame_part, reference, untouched)
    np.testing.assert_array_equal(untouched, -7.0)
    assert total == 0.0
    np.testing.assert_array_equal(reference, 0.0)  # the window is zero everywhere
    np.testing.assert_allclose(frame_part, np.clip(coverage, 0, 1))


def test_cross_spectrum_is_the_smoothed_conjugate_product(kernels, rng):
    frame_spectrum, reference_spectrum = _complex(rng), _complex(rng)
    smoothing = rng.uniform(0, 1, SHAPE).astype(np.float32)
    expected = np.conj(frame_spectrum.astype(np.complex128)) * reference_spectrum * smoothing
    out = kernels.cross_spectrum(frame_spectrum, reference_spectrum, smoothing,
                                  np.empty_like(frame_spectrum))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_derivative_spectra_move_smooth_and_differentiate(kernels, rng):
    spectrum, (rows, cols) = _complex(rng), _phases(rng)
    omega_y = 2 * np.pi * np.fft.fftfreq(SHAPE[0])
    omega_x = 2 * np.pi * np.fft.rfftfreq(2 * SHAPE[1] - 2)
    smoothing = rng.uniform(0, 1, SHAPE).astype(np.float32)
    base = spectrum.astype(np.complex128) * np.outer(rows, cols) * smoothing
    out_y, out_x = np.empty_like(spectrum), np.empty_like(spectrum)
    kernels.derivative_spectra(spectrum, rows, cols, omega_y, omega_x, smoothing, out_y,
                                out_x)
    np.testing.assert_allclose(out_y, base * 1j * omega_y[:, None], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out_x, base * 1j * omega_x[None, :], rtol=1e-5, atol=1e-5)


def test_weighted_power_is_the_weighted_sum_of_squared_magnitudes(kernels, rng):
    spectrum = _complex(rng)
    weights = rng.uniform(0, 1, SHAPE).astype(np.float32)
    expected = np.sum(weights * np.abs(spectrum.astype(np.complex128)) ** 2)
    assert kernels.weighted_power(spectrum, weights) == pytest.approx(expected, rel=1e-6)


def test_gradient_moments_sum_over_the_weights_pixels_only(kernels, rng):
    weight = rng.normal(1, 1, (30, 25)).astype(np.float32)  # some negative: clipped
    gradient_y = rng.normal(size=SHAPE).astype(np.float32)  # the larger canvas
    gradient_x = rng.normal(size=SHAPE).astype(np.float32)
    w = 2.5 * np.maximum(weight, 0).astype(np.float64)
    gy, gx = gradient_y[:30, :25].astype(np.float64), gradient_x[:30, :25].astype(np.float64)
    got = kernels.gradient_moments(weight, 2.5, gradient_y, gradient_x)
    np.testing.assert_allclose(got, [np.sum(w * gy * gy), np.sum(w * gy * gx),
                                     np.sum(w * gx * gx)], rtol=1e-6)


def test_the_kernels_depend_on_the_stack_alone_never_on_what_ran_before(monkeypatch):
    monkeypatch.setattr(_kernels, "_fused", None)  # as in a fresh process
    assert _kernels.choose(_kernels.FUSED_MIN_WORK - 1) is _kernels
    assert _kernels._fused is None  # nothing loaded for a small stack
    assert _kernels.choose(_kernels.FUSED_MIN_WORK) is _fused  # a large one loads them
    assert _kernels.choose(_kernels.FUSED_MIN_WORK - 1) is _kernels  # small ones still not


def test_a_registration_gives_the_same_result_with_either_kernels(monkeypatch):
    from napari_nanosims import register_frames
    from napari_nanosims.testing.simulate import simulate_scene

    # 32-bit counts: the variance of the diagnostics is single precision all the same.
    frames = simulate_scene("mineral", 8, 2.0, window=96, seed=4)["frames"].astype(np.uint32)
    results = []
    for chosen in (_kernels, _fused):
        monkeypatch.setattr(_kernels, "choose", lambda work, chosen=chosen: chosen)
        results.append(register_frames(frames))
    numpy_result, fused_result = results
    # Translations are kept to 0.01 px: a tie may round the other way.
    np.testing.assert_allclose(fused_result.measured, numpy_result.measured, atol=0.0101)
    np.testing.assert_allclose(fused_result.uncertainty_px, numpy_result.uncertainty_px,
                               rtol=1e-4)
    np.testing.assert_allclose(fused_result.correlation, numpy_result.correlation,
                               rtol=1e-4)


def test_a_small_registration_in_a_fresh_process_does_not_start_numba():
    """The first call of a process costs what later ones do (issue 24): a small stack
    leaves numba unloaded (its start alone takes about 0.5 s on a 2-core machine)."""
    import subprocess
    import sys

    script = ("import sys\n"
              "from napari_nanosims import register_frames\n"
              "from napari_nanosims.testing.simulate import simulate_scene\n"
              "register_frames(simulate_scene('cells', 12, 2.0, window=128, seed=1)['frames'])\n"
              "print('numba' in sys.modules)\n")
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=120).stdout.split()
    assert output == ["False"]
