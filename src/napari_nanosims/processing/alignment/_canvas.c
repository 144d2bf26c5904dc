/*
 * The whole-canvas arithmetic of the sub-pixel passes in C: the twins of the numpy
 * formulas in _kernels.py and of the numba loops in _fused.py (same names, same
 * arguments, same results to single-precision rounding). Each is one loop over the
 * canvas with the interpreter lock released, as the numba ones.
 *
 * Why C besides numba: loading numba's kernels costs about half a second per process
 * even from its disk cache (its import and typing tables), which a first registration
 * pays (issue 24 asks a first call to cost within 0.5 s of later ones). This module is
 * built at install when a C compiler is there (setup.py, an optional extension) and
 * loads in about a millisecond; without it _kernels falls back to numba and numpy.
 *
 * Arrays come through the buffer protocol: single-precision floats ("f"), complex
 * singles ("Zf", pairs of floats) and doubles ("d"), in native byte order, each row
 * contiguous (any row stride). Shapes are checked before any loop: a wrong array
 * raises TypeError or ValueError naming the argument, never reads outside it.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef enum { REAL32, REAL64, COMPLEX64 } Kind;

typedef struct {
    Py_buffer view;
    int held;
} Array;

/* Row i of a 2-d array (or the start of a 1-d one). */
#define ROW(array, type, i) \
    ((type *)((char *)(array).view.buf + (i) * (array).view.strides[0]))
#define ROW_COUNT(array) ((array).view.shape[0])
#define COLUMN_COUNT(array) ((array).view.shape[1])

/* LOOP marks the functions holding a loop over the canvas. With gcc (6 or later) or
 * clang (14 or later) on x86-64 Linux with glibc each is compiled twice, for any x86-64
 * (SSE2) and for AVX2, and the loader picks the one the processor runs (about 2.5x
 * faster on shifts and on the sums: numba's kernels, which this module replaces, are
 * compiled for the machine they run on). Elsewhere, or with CANVAS_ONE_TARGET defined
 * (the tests build it so, to run the SSE2 loops too), once for the default target. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) \
    && !defined(CANVAS_ONE_TARGET)
#define LOOP __attribute__((target_clones("avx2", "default")))
#else
#define LOOP
#endif

/* Helpers of the loops, inlined into each compiled version of them. */
#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

/* SUMS(...) before a loop lets gcc and clang add its terms in vector lanes and then the
 * lanes (OpenMP's simd reduction; setup.py passes -fopenmp-simd, no threads): sums in
 * double precision whose order, and so whose last bit, depends on the vector width and
 * the compiler. The loop may not carry anything from one pixel to the next but the
 * sums: every caller's outputs are apart from its inputs (shift_spectrum's ``out`` may
 * be its ``spectrum``, pixel for pixel, and its loop has no SUMS). */
#if defined(__GNUC__)
#define PRAGMA(text) _Pragma(#text)
#define SUMS(...) PRAGMA(omp simd reduction(+:__VA_ARGS__))
#else
#define SUMS(...)
#endif

static const char *kind_name(Kind kind)
{
    return kind == REAL32 ? "float32" : kind == REAL64 ? "float64" : "complex64";
}

/* Take a buffer of ``kind`` and ``ndim`` dimensions from ``object`` (writable when
 * asked); on failure set a Python error naming ``name`` and return -1. */
static int take(PyObject *object, Array *array, Kind kind, int ndim, int writable,
                const char *name)
{
    int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    const char *format, *expected = kind == REAL32 ? "f" : kind == REAL64 ? "d" : "Zf";
    Py_ssize_t itemsize = kind == REAL32 ? 4 : 8;

    array->held = 0;
    if (PyObject_GetBuffer(object, &array->view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a %s%s array", name,
                     writable ? "writable " : "", kind_name(kind));
        return -1;
    }
    array->held = 1;
    format = array->view.format ? array->view.format : "B";
    if (format[0] == '@' || format[0] == '=') {
        format++;
    }
    if (strcmp(format, expected) != 0 || array->view.itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s must be %s in native byte order, not format '%s'",
                     name, kind_name(kind), array->view.format ? array->view.format : "B");
        return -1;
    }
    if (array->view.ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must have %d dimension(s), not %d", name, ndim,
                     array->view.ndim);
        return -1;
    }
    if (array->view.shape[ndim - 1] > 1 && array->view.strides[ndim - 1] != itemsize) {
        PyErr_Format(PyExc_ValueError, "%s must be contiguous along its last axis", name);
        return -1;
    }
    return 0;
}

static void release(Array *arrays, int count)
{
    for (int k = 0; k < count; k++) {
        if (arrays[k].held) {
            PyBuffer_Release(&arrays[k].view);
            arrays[k].held = 0;
        }
    }
}

/* What a kernel takes at one position: the argument's name, kind and dimensions, and
 * whether it writes there. */
typedef struct {
    const char *name;
    Kind kind;
    int ndim;
    int writable;
} Spec;

/* Take ``count`` arrays from ``objects`` as ``specs`` say, marking every one of them not
 * held first; -1 with a Python error at the first that cannot be taken (the caller
 * releases what was: release(arrays, count)). */
static int take_all(PyObject **objects, Array *arrays, const Spec *specs, int count)
{
    for (int k = 0; k < count; k++) {
        arrays[k].held = 0;
    }
    for (int k = 0; k < count; k++) {
        if (take(objects[k], &arrays[k], specs[k].kind, specs[k].ndim, specs[k].writable,
                 specs[k].name) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ValueError unless ``array``'s length along ``axis`` is ``length``. */
static int check_length(const Array *array, int axis, Py_ssize_t length, const char *name,
                        const char *of)
{
    if (array->view.shape[axis] != length) {
        PyErr_Format(PyExc_ValueError, "%s has %zd %s, expected %zd (%s)", name,
                     array->view.shape[axis], axis == 0 ? "rows" : "columns", length, of);
        return -1;
    }
    return 0;
}

static int check_same_shape(const Array *array, const Array *like, const char *name,
                            const char *like_name)
{
    return check_length(array, 0, like->view.shape[0], name, like_name) < 0
        || check_length(array, 1, like->view.shape[1], name, like_name) < 0 ? -1 : 0;
}

/* A value per row and per column (phases, frequencies) for a spectrum's rows and
 * columns: ValueError naming them unless their lengths match. */
static int check_per_axis(const Array *per_row, const Array *per_column,
                          const Array *spectrum, const char *names)
{
    if (per_row->view.shape[0] != spectrum->view.shape[0]
        || per_column->view.shape[0] != spectrum->view.shape[1]) {
        PyErr_Format(PyExc_ValueError, "%s have %zd and %zd values for a spectrum of %zd x %zd",
                     names, per_row->view.shape[0], per_column->view.shape[0],
                     spectrum->view.shape[0], spectrum->view.shape[1]);
        return -1;
    }
    return 0;
}

enum { REPLACE, ADD, SUBTRACT };

/* One row of spectrum * (row * column), complex singles as pairs, into target (which
 * may be the source): replaced, added or subtracted (``mode`` constant once inlined). */
INLINE void shift_row(const float *source, float *target, const float *columns,
                      float row_re, float row_im, Py_ssize_t n_columns, int mode)
{
    for (Py_ssize_t j = 0; j < n_columns; j++) {
        float column_re = columns[2 * j], column_im = columns[2 * j + 1];
        float phase_re = row_re * column_re - row_im * column_im;
        float phase_im = row_re * column_im + row_im * column_re;
        float value_re = source[2 * j], value_im = source[2 * j + 1];
        float moved_re = value_re * phase_re - value_im * phase_im;
        float moved_im = value_re * phase_im + value_im * phase_re;
        if (mode == REPLACE) {
            target[2 * j] = moved_re;
            target[2 * j + 1] = moved_im;
        } else if (mode == ADD) {
            target[2 * j] += moved_re;
            target[2 * j + 1] += moved_im;
        } else {
            target[2 * j] -= moved_re;
            target[2 * j + 1] -= moved_im;
        }
    }
}

LOOP static void shift_loop(const Array *spectrum, const Array *row_phase,
                            const Array *column_phase, Array *out, int mode)
{
    const float *rows = ROW(*row_phase, float, 0), *columns = ROW(*column_phase, float, 0);
    Py_ssize_t n_rows = ROW_COUNT(*spectrum), n_columns = COLUMN_COUNT(*spectrum);

    for (Py_ssize_t i = 0; i < n_rows; i++) {
        const float *source = ROW(*spectrum, float, i);
        float *target = ROW(*out, float, i);
        float row_re = rows[2 * i], row_im = rows[2 * i + 1];
        if (mode == REPLACE) {
            shift_row(source, target, columns, row_re, row_im, n_columns, REPLACE);
        } else if (mode == ADD) {
            shift_row(source, target, columns, row_re, row_im, n_columns, ADD);
        } else {
            shift_row(source, target, columns, row_re, row_im, n_columns, SUBTRACT);
        }
    }
}

static PyObject *shift_spectrum(PyObject *self, PyObject *args)
{
    static const Spec specs[4] = {{"spectrum", COMPLEX64, 2, 0},
                                  {"row_phase", COMPLEX64, 1, 0},
                                  {"column_phase", COMPLEX64, 1, 0},
                                  {"out", COMPLEX64, 2, 1}};
    PyObject *objects[4];
    Array a[4];

    if (!PyArg_ParseTuple(args, "OOOO:shift_spectrum", &objects[0], &objects[1],
                          &objects[2], &objects[3])) {
        return NULL;
    }
    if (take_all(objects, a, specs, 4) < 0
        || check_per_axis(&a[1], &a[2], &a[0], "row_phase and column_phase") < 0
        || check_same_shape(&a[3], &a[0], "out", "spectrum") < 0) {
        release(a, 4);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    shift_loop(&a[0], &a[1], &a[2], &a[3], REPLACE);
    Py_END_ALLOW_THREADS
    release(a, 4);
    Py_INCREF(objects[3]);
    return objects[3];
}

static PyObject *add_shifted(PyObject *self, PyObject *args)
{
    static const Spec specs[4] = {{"total", COMPLEX64, 2, 1},
                                  {"spectrum", COMPLEX64, 2, 0},
                                  {"row_phase", COMPLEX64, 1, 0},
                                  {"column_phase", COMPLEX64, 1, 0}};
    PyObject *objects[4];
    Array a[4];
    double sign;

    if (!PyArg_ParseTuple(args, "OOOOd:add_shifted", &objects[0], &objects[1], &objects[2],
                          &objects[3], &sign)) {
        return NULL;
    }
    if (take_all(objects, a, specs, 4) < 0
        || check_per_axis(&a[2], &a[3], &a[1], "row_phase and column_phase") < 0
        || check_same_shape(&a[0], &a[1], "total", "spectrum") < 0) {
        release(a, 4);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    shift_loop(&a[1], &a[2], &a[3], &a[0], sign > 0 ? ADD : SUBTRACT);
    Py_END_ALLOW_THREADS
    release(a, 4);
    Py_RETURN_NONE;
}

/* Written as one comparison each (maxss, minss on x86): no branch to mispredict. */
INLINE float larger(float value, float bound)
{
    return value > bound ? value : bound;
}

INLINE float smaller(float value, float bound)
{
    return value < bound ? value : bound;
}

INLINE float clip01(float value)
{
    return smaller(larger(value, 0.0f), 1.0f);
}

/* One pixel of weigh's first loop: the frame and the reference under their common
 * weight (and the reference's variance). Returns the window times the weight, and
 * the reference and the frame times the weight in ``weighted_reference`` and
 * ``weighted_frame`` (the three sums' terms). */
INLINE float weigh_pixel(const float *summed, const float *coverage, const float *mine,
                                const float *placed, float *frame_part, float *reference,
                                float *noise, Py_ssize_t j, int exclude, int want_noise,
                                float *weighted_reference, float *weighted_frame)
{
    float summed_here = summed[j], covered = coverage[j], window = placed[j];
    if (exclude) {
        summed_here -= mine[j];
        covered -= window;
    }
    /* summed / max(coverage, 1) is the mean times min(coverage, 1): continuous where the
     * coverage runs out, as the same factor on the frame. */
    float weight = clip01(covered);
    float scale = window / larger(covered, 1.0f);
    float value = summed_here * scale;
    reference[j] = value;
    frame_part[j] = mine[j] * weight;
    if (want_noise) {
        noise[j] = scale * scale * larger(covered, 0.0f);
    }
    *weighted_reference = value * weight;
    *weighted_frame = frame_part[j] * weight;
    return window * weight;
}

/* weigh's first loop over one row, adding to the three sums; inlined with ``exclude``
 * and ``want_noise`` constant (weigh_loop), so that neither is tested per pixel. */
INLINE void weigh_row(const Array *a, Py_ssize_t i, int exclude, int want_noise,
                      double *total_weight, double *reference_weight, double *frame_weight)
{
    const float *summed = ROW(a[0], float, i), *coverage = ROW(a[1], float, i);
    const float *mine = ROW(a[2], float, i), *placed = ROW(a[3], float, i);
    float *frame_part = ROW(a[4], float, i), *reference = ROW(a[5], float, i);
    float *noise = want_noise ? ROW(a[6], float, i) : NULL;
    Py_ssize_t n_columns = COLUMN_COUNT(a[0]);
    double total = 0.0, weighted = 0.0, weighted_frames = 0.0;

    SUMS(total, weighted, weighted_frames)
    for (Py_ssize_t j = 0; j < n_columns; j++) {
        float weighted_reference, weighted_frame;
        float weighted_window = weigh_pixel(summed, coverage, mine, placed, frame_part,
                                            reference, noise, j, exclude, want_noise,
                                            &weighted_reference, &weighted_frame);
        total += (double)weighted_window;
        weighted += (double)weighted_reference;
        weighted_frames += (double)weighted_frame;
    }
    *total_weight += total;
    *reference_weight += weighted;
    *frame_weight += weighted_frames;
}

/* The loops of weigh (see _kernels.weigh); returns the total weight. */
LOOP static double weigh_loop(Array *a, int exclude, int want_noise)
{
    const Array *coverage = &a[1], *placed = &a[3];
    Array *frame_part = &a[4], *reference = &a[5];
    Py_ssize_t n_rows = ROW_COUNT(a[0]), n_columns = COLUMN_COUNT(a[0]);
    double total_weight = 0.0, reference_weight = 0.0, frame_weight = 0.0;

    for (Py_ssize_t i = 0; i < n_rows; i++) {
        if (exclude && want_noise) {
            weigh_row(a, i, 1, 1, &total_weight, &reference_weight, &frame_weight);
        } else if (exclude) {
            weigh_row(a, i, 1, 0, &total_weight, &reference_weight, &frame_weight);
        } else if (want_noise) {
            weigh_row(a, i, 0, 1, &total_weight, &reference_weight, &frame_weight);
        } else {
            weigh_row(a, i, 0, 0, &total_weight, &reference_weight, &frame_weight);
        }
    }
    if (total_weight > 0) {
        /* Levels matched under the common weight, the frame's as the reference's. */
        float reference_level = (float)(reference_weight / total_weight);
        float frame_level = (float)(frame_weight / total_weight);
        for (Py_ssize_t i = 0; i < n_rows; i++) {
            const float *coverage_row = ROW(*coverage, float, i);
            const float *placed_row = ROW(*placed, float, i);
            float *frame_row = ROW(*frame_part, float, i);
            float *reference_row = ROW(*reference, float, i);
            for (Py_ssize_t j = 0; j < n_columns; j++) {
                float covered = exclude ? coverage_row[j] - placed_row[j] : coverage_row[j];
                float common = placed_row[j] * clip01(covered);
                reference_row[j] -= reference_level * common;
                frame_row[j] -= frame_level * common;
            }
        }
    }
    return total_weight;
}

static PyObject *weigh(PyObject *self, PyObject *args)
{
    static const Spec specs[7] = {{"summed", REAL32, 2, 0}, {"coverage", REAL32, 2, 0},
                                  {"mine", REAL32, 2, 0}, {"placed", REAL32, 2, 0},
                                  {"frame_part", REAL32, 2, 1}, {"reference", REAL32, 2, 1},
                                  {"noise", REAL32, 2, 1}};
    PyObject *objects[7], *exclude_object, *want_noise_object;
    Array a[7];
    int exclude, want_noise, count, failed;
    double total_weight;

    if (!PyArg_ParseTuple(args, "OOOOOOOOO:weigh", &objects[0], &objects[1], &objects[2],
                          &objects[3], &exclude_object, &want_noise_object, &objects[4],
                          &objects[5], &objects[6])) {
        return NULL;
    }
    exclude = PyObject_IsTrue(exclude_object);
    want_noise = PyObject_IsTrue(want_noise_object);
    if (exclude < 0 || want_noise < 0) {
        return NULL;
    }
    /* The noise is taken and written only when wanted (the registration passes an
     * empty array). */
    count = want_noise ? 7 : 6;
    a[6].held = 0;
    failed = take_all(objects, a, specs, count) < 0;
    for (int k = 1; k < count && !failed; k++) {
        failed = check_same_shape(&a[k], &a[0], specs[k].name, "summed") < 0;
    }
    if (failed) {
        release(a, 7);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    total_weight = weigh_loop(a, exclude, want_noise);
    Py_END_ALLOW_THREADS
    release(a, 7);
    return PyFloat_FromDouble(total_weight);
}

/* conj(frame_spectrum) * reference_spectrum * smoothing into out (a[0..3]). */
LOOP static void cross_loop(Array *a)
{
    Py_ssize_t n_columns = COLUMN_COUNT(a[0]);

    for (Py_ssize_t i = 0; i < ROW_COUNT(a[0]); i++) {
        const float *frame = ROW(a[0], float, i), *reference = ROW(a[1], float, i);
        const float *smoothing = ROW(a[2], float, i);
        float *out = ROW(a[3], float, i);
        for (Py_ssize_t j = 0; j < n_columns; j++) {
            /* conj(frame) * reference * smoothing */
            float frame_re = frame[2 * j], frame_im = frame[2 * j + 1];
            float reference_re = reference[2 * j], reference_im = reference[2 * j + 1];
            out[2 * j] = (frame_re * reference_re + frame_im * reference_im) * smoothing[j];
            out[2 * j + 1] = (frame_re * reference_im - frame_im * reference_re)
                             * smoothing[j];
        }
    }
}

static PyObject *cross_spectrum(PyObject *self, PyObject *args)
{
    static const Spec specs[4] = {{"frame_spectrum", COMPLEX64, 2, 0},
                                  {"reference_spectrum", COMPLEX64, 2, 0},
                                  {"smoothing", REAL32, 2, 0}, {"out", COMPLEX64, 2, 1}};
    PyObject *objects[4];
    Array a[4];

    if (!PyArg_ParseTuple(args, "OOOO:cross_spectrum", &objects[0], &objects[1],
                          &objects[2], &objects[3])) {
        return NULL;
    }
    if (take_all(objects, a, specs, 4) < 0
        || check_same_shape(&a[1], &a[0], "reference_spectrum", "frame_spectrum") < 0
        || check_same_shape(&a[2], &a[0], "smoothing", "frame_spectrum") < 0
        || check_same_shape(&a[3], &a[0], "out", "frame_spectrum") < 0) {
        release(a, 4);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    cross_loop(a);
    Py_END_ALLOW_THREADS
    release(a, 4);
    Py_INCREF(objects[3]);
    return objects[3];
}

/* The moved, smoothed spectrum times 1j omega_y and 1j omega_x (a[0..7]). */
LOOP static void derivative_loop(Array *a)
{
    const float *rows = ROW(a[1], float, 0), *columns = ROW(a[2], float, 0);
    const double *omega_y = ROW(a[3], double, 0), *omega_x = ROW(a[4], double, 0);
    Py_ssize_t n_columns = COLUMN_COUNT(a[0]);

    for (Py_ssize_t i = 0; i < ROW_COUNT(a[0]); i++) {
        const float *source = ROW(a[0], float, i), *smoothing = ROW(a[5], float, i);
        float *out_y = ROW(a[6], float, i), *out_x = ROW(a[7], float, i);
        float row_re = rows[2 * i], row_im = rows[2 * i + 1], along_y = (float)omega_y[i];
        for (Py_ssize_t j = 0; j < n_columns; j++) {
            float column_re = columns[2 * j], column_im = columns[2 * j + 1];
            float phase_re = row_re * column_re - row_im * column_im;
            float phase_im = row_re * column_im + row_im * column_re;
            float value_re = source[2 * j], value_im = source[2 * j + 1];
            float moved_re = (value_re * phase_re - value_im * phase_im) * smoothing[j];
            float moved_im = (value_re * phase_im + value_im * phase_re) * smoothing[j];
            float along_x = (float)omega_x[j];
            /* times 1j * omega: (re, im) -> (-im omega, re omega) */
            out_y[2 * j] = -moved_im * along_y;
            out_y[2 * j + 1] = moved_re * along_y;
            out_x[2 * j] = -moved_im * along_x;
            out_x[2 * j + 1] = moved_re * along_x;
        }
    }
}

static PyObject *derivative_spectra(PyObject *self, PyObject *args)
{
    static const Spec specs[8] = {{"spectrum", COMPLEX64, 2, 0},
                                  {"row_phase", COMPLEX64, 1, 0},
                                  {"column_phase", COMPLEX64, 1, 0},
                                  {"omega_y", REAL64, 1, 0}, {"omega_x", REAL64, 1, 0},
                                  {"smoothing", REAL32, 2, 0}, {"out_y", COMPLEX64, 2, 1},
                                  {"out_x", COMPLEX64, 2, 1}};
    PyObject *objects[8];
    Array a[8];
    int failed;

    if (!PyArg_ParseTuple(args, "OOOOOOOO:derivative_spectra", &objects[0], &objects[1],
                          &objects[2], &objects[3], &objects[4], &objects[5], &objects[6],
                          &objects[7])) {
        return NULL;
    }
    failed = take_all(objects, a, specs, 8) < 0
        || check_per_axis(&a[1], &a[2], &a[0], "row_phase and column_phase") < 0
        || check_per_axis(&a[3], &a[4], &a[0], "omega_y and omega_x") < 0
        || check_same_shape(&a[5], &a[0], "smoothing", "spectrum") < 0
        || check_same_shape(&a[6], &a[0], "out_y", "spectrum") < 0
        || check_same_shape(&a[7], &a[0], "out_x", "spectrum") < 0;
    if (failed) {
        release(a, 8);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    derivative_loop(a);
    Py_END_ALLOW_THREADS
    release(a, 8);
    Py_RETURN_NONE;
}

/* weights * |spectrum|^2 at column j of a row, squared in double precision (a float's
 * square overflows from 1.8e19). */
INLINE double power_term(const float *spectrum, const float *weights, Py_ssize_t j)
{
    double re = spectrum[2 * j], im = spectrum[2 * j + 1];
    return (double)weights[j] * (re * re + im * im);
}

/* sum(weights * |spectrum|^2) over a[0] (spectrum) and a[1] (weights). */
LOOP static double power_loop(const Array *a)
{
    Py_ssize_t n_columns = COLUMN_COUNT(a[0]);
    double total = 0.0;

    for (Py_ssize_t i = 0; i < ROW_COUNT(a[0]); i++) {
        const float *spectrum = ROW(a[0], float, i), *weights = ROW(a[1], float, i);
        double row_total = 0.0;
        SUMS(row_total)
        for (Py_ssize_t j = 0; j < n_columns; j++) {
            row_total += power_term(spectrum, weights, j);
        }
        total += row_total;
    }
    return total;
}

static PyObject *weighted_power(PyObject *self, PyObject *args)
{
    static const Spec specs[2] = {{"spectrum", COMPLEX64, 2, 0}, {"weights", REAL32, 2, 0}};
    PyObject *objects[2];
    Array a[2];
    double total = 0.0;

    if (!PyArg_ParseTuple(args, "OO:weighted_power", &objects[0], &objects[1])) {
        return NULL;
    }
    if (take_all(objects, a, specs, 2) < 0
        || check_same_shape(&a[1], &a[0], "weights", "spectrum") < 0) {
        release(a, 2);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    total = power_loop(a);
    Py_END_ALLOW_THREADS
    release(a, 2);
    return PyFloat_FromDouble(total);
}

/* sum(w gy gy), sum(w gy gx), sum(w gx gx), w = scale * max(weight, 0), over the rows
 * and columns of a[0] (weight; a[1] and a[2] the gradients, at least as large). */
LOOP static void moments_loop(const Array *a, double scale, double *yy, double *yx,
                              double *xx)
{
    Py_ssize_t n_columns = COLUMN_COUNT(a[0]);

    for (Py_ssize_t i = 0; i < ROW_COUNT(a[0]); i++) {
        const float *weight = ROW(a[0], float, i);
        const float *gradient_y = ROW(a[1], float, i), *gradient_x = ROW(a[2], float, i);
        double row_yy = 0.0, row_yx = 0.0, row_xx = 0.0;
        SUMS(row_yy, row_yx, row_xx)
        for (Py_ssize_t j = 0; j < n_columns; j++) {
            double w = (double)larger(weight[j], 0.0f) * scale;
            double gy = gradient_y[j], gx = gradient_x[j];
            row_yy += w * gy * gy;
            row_yx += w * gy * gx;
            row_xx += w * gx * gx;
        }
        *yy += row_yy;
        *yx += row_yx;
        *xx += row_xx;
    }
}

static PyObject *gradient_moments(PyObject *self, PyObject *args)
{
    static const Spec specs[3] = {{"weight", REAL32, 2, 0}, {"gradient_y", REAL32, 2, 0},
                                  {"gradient_x", REAL32, 2, 0}};
    PyObject *objects[3];
    Array a[3];
    double scale, yy = 0.0, yx = 0.0, xx = 0.0;

    if (!PyArg_ParseTuple(args, "OdOO:gradient_moments", &objects[0], &scale, &objects[1],
                          &objects[2])) {
        return NULL;
    }
    if (take_all(objects, a, specs, 3) < 0) {
        release(a, 3);
        return NULL;
    }
    /* The gradients cover the canvas, the weight a frame's pixels: at least as large. */
    for (int k = 1; k < 3; k++) {
        if (ROW_COUNT(a[k]) < ROW_COUNT(a[0]) || COLUMN_COUNT(a[k]) < COLUMN_COUNT(a[0])) {
            PyErr_Format(PyExc_ValueError, "%s (%zd x %zd) is smaller than weight (%zd x %zd)",
                         specs[k].name, ROW_COUNT(a[k]),
                         COLUMN_COUNT(a[k]), ROW_COUNT(a[0]), COLUMN_COUNT(a[0]));
            release(a, 3);
            return NULL;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    moments_loop(a, scale, &yy, &yx, &xx);
    Py_END_ALLOW_THREADS
    release(a, 3);
    return Py_BuildValue("(ddd)", yy, yx, xx);
}

static PyMethodDef methods[] = {
    {"shift_spectrum", shift_spectrum, METH_VARARGS,
     "shift_spectrum(spectrum, row_phase, column_phase, out): out = spectrum * "
     "outer(row_phase, column_phase) (out may be spectrum); returns out."},
    {"add_shifted", add_shifted, METH_VARARGS,
     "add_shifted(total, spectrum, row_phase, column_phase, sign): total += sign * "
     "spectrum * outer(row_phase, column_phase), in place (sign > 0 adds, else subtracts)."},
    {"weigh", weigh, METH_VARARGS,
     "weigh(summed, coverage, mine, placed, exclude, want_noise, frame_part, reference, "
     "noise): frame and reference under their common weight (see _kernels.weigh); "
     "returns the total weight."},
    {"cross_spectrum", cross_spectrum, METH_VARARGS,
     "cross_spectrum(frame_spectrum, reference_spectrum, smoothing, out): out = "
     "conj(frame_spectrum) * reference_spectrum * smoothing; returns out."},
    {"derivative_spectra", derivative_spectra, METH_VARARGS,
     "derivative_spectra(spectrum, row_phase, column_phase, omega_y, omega_x, smoothing, "
     "out_y, out_x): the moved, smoothed spectrum times 1j * omega_y (per row) into out_y "
     "and times 1j * omega_x (per column) into out_x."},
    {"weighted_power", weighted_power, METH_VARARGS,
     "weighted_power(spectrum, weights): sum(weights * |spectrum|^2), in double precision."},
    {"gradient_moments", gradient_moments, METH_VARARGS,
     "gradient_moments(weight, scale, gradient_y, gradient_x): (sum(w gy gy), sum(w gy gx), "
     "sum(w gx gx)) with w = scale * max(weight, 0), over weight's rows and columns."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_canvas",
    "The whole-canvas arithmetic of the sub-pixel passes, in C (the GIL released).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__canvas(void)
{
    return PyModule_Create(&module);
}
