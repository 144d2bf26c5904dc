"""The canvas arithmetic of the sub-pixel passes, numpy formulas, C kernels and fused
kernels (numba) alike, against the formulas written out here with whole-array operations
in double precision; and when the registration uses which."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nanosims.processing.alignment import _fused, _kernels

SHAPE = (40, 33)  # an odd width, as a half spectrum's


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _compiled():
    """The C kernels; the test is skipped, saying why, where they were not built (.ci/run
    checks that they are on its machine, which has a C compiler)."""
    if _kernels.compiled_kernels is None:
        pytest.skip("the C kernels were not built at install (no C compiler found)")
    return _kernels.compiled_kernels


@pytest.fixture(scope="module")
def one_target_kernels(tmp_path_factory):
    """The C kernels built for the default target alone (CANVAS_ONE_TARGET), with
    setup.py's flags: on an AVX2 machine the installed extension runs its AVX2 loops,
    and these are the others (SSE2 on x86-64). Skipped, saying why, without the source
    (an installed wheel) or a C compiler."""
    import ast
    import importlib.util
    import shutil
    import subprocess
    import sysconfig
    from pathlib import Path

    source = Path(_kernels.__file__).with_name("_canvas.c")
    setup = Path(_kernels.__file__).parents[4] / "setup.py"
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not source.is_file() or not setup.is_file() or compiler is None:
        pytest.skip("no _canvas.c, setup.py or C compiler here (an installed wheel?)")
    assignment = next(node for node in ast.parse(setup.read_text()).body
                      if isinstance(node, ast.Assign)
                      and getattr(node.targets[0], "id", None) == "UNIX_FLAGS")
    flags = ast.literal_eval(assignment.value)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    built = tmp_path_factory.mktemp("one_target") / f"_canvas{suffix}"
    subprocess.run([compiler, *flags, "-DCANVAS_ONE_TARGET", "-shared", "-fPIC",
                    f"-I{sysconfig.get_paths()['include']}", str(source), "-o", str(built)],
                   check=True, capture_output=True, timeout=120)
    spec = importlib.util.spec_from_file_location("_canvas", built)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["numpy", "compiled", "compiled, one target", "fused"])
def kernels(request):
    if request.param == "compiled":
        return _compiled()
    if request.param == "compiled, one target":
        return request.getfixturevalue("one_target_kernels")
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
    frame_part = mine * weight
    total = np.sum(placed * weight)
    if total > 0:  # both levels matched under the weight, where there is any
        reference -= np.sum(reference * weight) / total * placed * weight
        frame_part -= np.sum(frame_part * weight) / total * placed * weight
    return frame_part, reference, scale ** 2 * np.maximum(coverage, 0), total


#: Shapes whose widths leave every remainder after vectors of 4, 8 and 16 values (the
#: compiled loops do the rest apart; canvases come from next_fast_len: 75, 81, 125, ...
#: columns), one row, no row and no column.
ODD_SHAPES = [SHAPE, (3, 7), (2, 15), (1, 16), (5, 23), (4, 26), (6, 29), (2, 44), (2, 11),
              (3, 14), (2, 19), (1, 30), (2, 21), (3, 12), (1, 2), (1, 20), (2, 22), (1, 24),
              (2, 25), (0, 5), (3, 0)]


@pytest.mark.parametrize("shape", ODD_SHAPES)
@pytest.mark.parametrize("want_noise", [True, False])
@pytest.mark.parametrize("exclude", [True, False])
def test_weigh_matches_the_formula(kernels, rng, exclude, want_noise, shape):
    # Coverage from below zero (rounding at the canvas's edges) to several frames, so
    # that both clips act; the frame's window within the coverage.
    placed = rng.uniform(0, 1, shape).astype(np.float32)
    coverage = (placed + rng.uniform(-0.2, 6, shape)).astype(np.float32)
    summed = rng.normal(3, 2, shape).astype(np.float32)
    mine = rng.normal(0, 1, shape).astype(np.float32)
    frame_part, reference, noise = (np.empty(shape, np.float32) for _ in range(3))
    total = kernels.weigh(summed, coverage, mine, placed, exclude, want_noise, frame_part,
                           reference, noise if want_noise else np.empty((0, 0), np.float32))
    expected = _weigh_formula(summed, coverage, mine, placed, exclude)
    outputs = (frame_part, reference, noise) if want_noise else (frame_part, reference)
    for got, want in zip(outputs, expected, strict=False):
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


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_weighted_power_is_the_weighted_sum_of_squared_magnitudes(kernels, rng, shape):
    spectrum = _complex(rng, shape)
    weights = rng.uniform(0, 1, shape).astype(np.float32)
    expected = np.sum(weights * np.abs(spectrum.astype(np.complex128)) ** 2)
    assert kernels.weighted_power(spectrum, weights) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_gradient_moments_sum_over_the_weights_pixels_only(kernels, rng, shape):
    rows, cols = shape
    weight = rng.normal(1, 1, shape).astype(np.float32)  # some negative: clipped
    canvas = (rows + 3, cols + 4)  # the gradients cover the larger canvas
    gradient_y = rng.normal(size=canvas).astype(np.float32)
    gradient_x = rng.normal(size=canvas).astype(np.float32)
    w = 2.5 * np.maximum(weight, 0).astype(np.float64)
    gy = gradient_y[:rows, :cols].astype(np.float64)
    gx = gradient_x[:rows, :cols].astype(np.float64)
    got = kernels.gradient_moments(weight, 2.5, gradient_y, gradient_x)
    np.testing.assert_allclose(got, [np.sum(w * gy * gy), np.sum(w * gy * gx),
                                     np.sum(w * gx * gx)], rtol=1e-6)


def test_the_kernels_depend_on_the_stack_alone_never_on_what_ran_before(monkeypatch):
    # Without the C kernels: numba's from FUSED_MIN_WORK on, the numpy formulas below.
    monkeypatch.setattr(_kernels, "compiled_kernels", None)
    monkeypatch.setattr(_kernels, "_fused", None)  # as in a fresh process
    assert _kernels.choose(_kernels.FUSED_MIN_WORK - 1) is _kernels
    assert _kernels._fused is None  # nothing loaded for a small stack
    assert _kernels.choose(_kernels.FUSED_MIN_WORK) is _fused  # a large one loads them
    assert _kernels.choose(_kernels.FUSED_MIN_WORK - 1) is _kernels  # small ones still not


def test_the_c_kernels_serve_every_stack_when_built(monkeypatch):
    compiled = _compiled()
    monkeypatch.setattr(_kernels, "_fused", None)
    for work in (0, _kernels.FUSED_MIN_WORK - 1, _kernels.FUSED_MIN_WORK, 1e12):
        assert _kernels.choose(work) is compiled
    assert _kernels._fused is None  # numba never loaded for them


def test_a_registration_gives_the_same_result_with_either_kernels(monkeypatch):
    from napari_nanosims import register_frames
    from napari_nanosims.testing.simulate import simulate_scene

    # 32-bit counts: the variance of the diagnostics is single precision all the same.
    frames = simulate_scene("mineral", 8, 2.0, window=96, seed=4)["frames"].astype(np.uint32)
    choices = [_kernels, _fused]
    if _kernels.compiled_kernels is not None:
        choices.append(_kernels.compiled_kernels)
    results = []
    for chosen in choices:
        monkeypatch.setattr(_kernels, "choose", lambda work, chosen=chosen: chosen)
        results.append(register_frames(frames))
    numpy_result, *twins = results
    assert len(twins) == 2 or _kernels.compiled_kernels is None
    for twin in twins:
        # Translations are kept to 0.01 px: a tie may round the other way.
        np.testing.assert_allclose(twin.measured, numpy_result.measured, atol=0.0101)
        np.testing.assert_allclose(twin.uncertainty_px, numpy_result.uncertainty_px,
                                   rtol=1e-4)
        np.testing.assert_allclose(twin.correlation, numpy_result.correlation, rtol=1e-4)


def _starts_numba(fused_from_work: float | None = None) -> bool:
    """Whether registering 12 frames of 128² cells in a fresh process imports numba;
    with ``fused_from_work``, FUSED_MIN_WORK set to it first (0: any stack is large)."""
    import subprocess
    import sys

    script = ("import sys\n"
              "from napari_nanosims import register_frames\n"
              "from napari_nanosims.processing.alignment import _kernels\n"
              "from napari_nanosims.testing.simulate import simulate_scene\n"
              + (f"_kernels.FUSED_MIN_WORK = {fused_from_work}\n"
                 if fused_from_work is not None else "")
              + "register_frames(simulate_scene('cells', 12, 2.0, window=128, seed=1)['frames'])\n"
              "print('numba' in sys.modules)\n")
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=120).stdout.split()
    assert output in (["True"], ["False"]), output
    return output == ["True"]


def test_a_small_registration_in_a_fresh_process_does_not_start_numba():
    """The first call of a process costs what later ones do (issue 24): a small stack
    leaves numba unloaded (its start alone takes about 0.5 s on a 2-core machine)."""
    assert not _starts_numba()


def test_with_the_c_kernels_a_large_registration_does_not_start_numba_either():
    """Every stack counted large (FUSED_MIN_WORK 0): numba would load without the C
    kernels; with them it is not needed."""
    _compiled()
    assert not _starts_numba(fused_from_work=0)


def test_the_c_kernels_refuse_arrays_they_cannot_read_naming_them(rng):
    compiled = _compiled()
    spectrum, (rows, cols) = _complex(rng), _phases(rng)
    out = np.empty_like(spectrum)
    with pytest.raises(TypeError, match="spectrum must be complex64"):
        compiled.shift_spectrum(spectrum.astype(np.complex128), rows, cols, out)
    with pytest.raises(ValueError, match=r"row_phase and column_phase have 39 and 33"):
        compiled.shift_spectrum(spectrum, rows[:-1], cols, out)
    with pytest.raises(ValueError, match="out has 20 rows, expected 40"):
        compiled.shift_spectrum(spectrum, rows, cols, out[:20])
    with pytest.raises(ValueError, match="spectrum must be contiguous along its last axis"):
        compiled.shift_spectrum(np.empty((40, 66), np.complex64)[:, ::2], rows, cols, out)
    read_only = np.empty_like(spectrum)
    read_only.flags.writeable = False
    with pytest.raises(TypeError, match="out must be a writable complex64 array"):
        compiled.shift_spectrum(spectrum, rows, cols, read_only)
    with pytest.raises(ValueError, match="must have 2 dimension"):
        compiled.weighted_power(spectrum[0], np.ones(33, np.float32))
    weight = np.ones((50, 10), np.float32)
    with pytest.raises(ValueError, match=r"gradient_y \(40 x 33\) is smaller than weight"):
        compiled.gradient_moments(weight, 1.0, np.ones(SHAPE, np.float32),
                                  np.ones(SHAPE, np.float32))
    with pytest.raises(ValueError, match=r"gradient_x \(40 x 9\) is smaller than weight"):
        compiled.gradient_moments(weight[:40], 1.0, np.ones(SHAPE, np.float32),
                                  np.ones((40, 9), np.float32))
    with pytest.raises(ValueError, match="total has 20 rows, expected 40"):
        compiled.add_shifted(out[:20], spectrum, rows, cols, 1.0)
    with pytest.raises(ValueError, match="row_phase and column_phase have 40 and 32"):
        compiled.add_shifted(out, spectrum, rows, cols[:-1], 1.0)
    smoothing = np.ones(SHAPE, np.float32)
    omega_y, omega_x = np.zeros(40), np.zeros(33)
    other = np.empty_like(spectrum)
    for arguments, message in [
            ((smoothing[:, :30], out, other), "smoothing has 30 columns, expected 33"),
            ((smoothing, out, other[:39]), "out_x has 39 rows, expected 40"),
            ((smoothing, out[:, :32], other), "out_y has 32 columns, expected 33")]:
        with pytest.raises(ValueError, match=message):
            compiled.derivative_spectra(spectrum, rows, cols, omega_y, omega_x, *arguments)
    with pytest.raises(ValueError, match="omega_y and omega_x have 40 and 32 values"):
        compiled.derivative_spectra(spectrum, rows, cols, omega_y, omega_x[:-1], smoothing,
                                    out, other)
    with pytest.raises(TypeError, match="omega_x must be float64"):
        compiled.derivative_spectra(spectrum, rows, cols, omega_y,
                                    omega_x.astype(np.float32), smoothing, out, other)
    with pytest.raises(ValueError, match="reference_spectrum has 39 rows, expected 40"):
        compiled.cross_spectrum(spectrum, spectrum[:39], smoothing, out)
    with pytest.raises(ValueError, match="smoothing has 32 columns, expected 33"):
        compiled.cross_spectrum(spectrum, spectrum, smoothing[:, :32], out)
    with pytest.raises(ValueError, match="weights has 32 columns, expected 33"):
        compiled.weighted_power(spectrum, smoothing[:, :32])
    summed = np.ones(SHAPE, np.float32)
    for position, name in enumerate(["coverage", "mine", "placed"], start=1):
        arrays = [summed] * 4
        arrays[position] = summed[:, :20]
        with pytest.raises(ValueError, match=f"{name} has 20 columns, expected 33"):
            compiled.weigh(*arrays, True, False, np.empty_like(summed),
                           np.empty_like(summed), np.empty((0, 0), np.float32))
    with pytest.raises(ValueError, match="frame_part has 39 rows, expected 40"):
        compiled.weigh(summed, summed, summed, summed, True, False, summed[:39].copy(),
                       np.empty_like(summed), np.empty((0, 0), np.float32))
    with pytest.raises(TypeError, match="summed must be float32"):
        compiled.weigh(summed.astype(np.float64), summed, summed, summed, True, False,
                       np.empty_like(summed), np.empty_like(summed),
                       np.empty((0, 0), np.float32))
    with pytest.raises(ValueError, match="noise has 3 rows"):  # only checked when wanted
        compiled.weigh(summed, summed, summed, summed, True, True, np.empty_like(summed),
                       np.empty_like(summed), np.empty((3, 33), np.float32))
    compiled.weigh(summed, summed, summed, summed, True, False, np.empty_like(summed),
                   np.empty_like(summed), np.empty((0, 0), np.float32))


def test_the_c_kernels_read_rows_apart_as_numpy_views_give_them(rng):
    """A row stride larger than the row (a view of a larger array), as the gradients of
    the canvas under a frame's weight."""
    compiled = _compiled()
    wide = _complex(rng, (40, 50))
    spectrum, (rows, cols) = wide[:, :33], _phases(rng)
    expected = spectrum.astype(np.complex128) * np.outer(rows, cols)
    out = compiled.shift_spectrum(spectrum, rows, cols, np.empty((40, 33), np.complex64))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
