"""Test-only entry points: the optimizer and _vmath loops of one named instruction-set
variant (baseline, avx2, avx512), so that a test can compare every variant bit for
bit. Production code never calls these; it runs the target_clones clone that the
loader picks for the CPU (_simd.h). See _simd_variants.h.
"""
cimport numpy as cnp
import numpy as np

from fastbp._kernels.optim cimport fb_optim_config, fb_optim_step, fill_config

cnp.import_array()

cdef extern from "_simd_variants.h" nogil:
    int fb_variant_supported(int v)
    void fb_optim_begin_step(const fb_optim_config* c, long long step, fb_optim_step* st)
    void fb_variant_optim_update_f32(int v, float* p, const float* g, void** s, Py_ssize_t n,
                                     const fb_optim_config* c, const fb_optim_step* st)
    void fb_variant_optim_update_f64(int v, double* p, const double* g, void** s,
                                     Py_ssize_t n, const fb_optim_config* c,
                                     const fb_optim_step* st)
    void fb_variant_vmath_f32(int v, int kernel, const float* x, float* out, Py_ssize_t n,
                              Py_ssize_t k, double* row_max, double* row_sum)
    void fb_variant_vmath_f64(int v, int kernel, const double* x, double* out, Py_ssize_t n,
                              Py_ssize_t k, double* row_max, double* row_sum)

#: the variants, in the order of their codes
VARIANTS = ("baseline", "avx2", "avx512")
#: the _vmath kernels, in the order of their codes
VMATH_KERNELS = ("tanh", "sigmoid", "exp_rows", "bce_logits", "silu", "elu", "softplus", "gelu",
                 "silu_grad", "elu_grad", "softplus_grad", "gelu_grad")
#: the kernels only float32 has (float64 runs the scalar double kernels of _math.pxd)
FLOAT32_ONLY = VMATH_KERNELS[4:]


cdef int _variant(str name) except -1:
    if name not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {name!r}")
    cdef int v = VARIANTS.index(name)
    if not fb_variant_supported(v):
        raise RuntimeError(f"this CPU or build cannot run the {name} variant")
    return v


def supported(str name):
    """Whether this CPU (and this build: x86-64 Linux with GCC) runs variant ``name``."""
    if name not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {name!r}")
    return bool(fb_variant_supported(VARIANTS.index(name)))


cdef void* _data(a) except? NULL:
    if a is None:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray?>a)


def optim_update(str variant, config, cnp.ndarray p, cnp.ndarray g, tuple state,
                 long long step):
    """Step ``step`` of the optimizer ``config`` on the flat C-contiguous buffers p, g and
    ``state`` (up to three, in config.kernel_state order, None where unused), all of
    one dtype, with the loops of ``variant``."""
    cdef int v = _variant(variant)
    cdef fb_optim_config c
    cdef fb_optim_step st
    cdef void* s[3]
    cdef int j
    for arr in (p, g) + tuple(a for a in state if a is not None):
        if not isinstance(arr, cnp.ndarray) or arr.dtype != p.dtype or arr.ndim != 1 \
                or arr.shape[0] != p.shape[0] or not arr.flags.c_contiguous:
            raise ValueError("p, g and the state must be flat C-contiguous arrays of one "
                             "dtype and length")
    if p.dtype.num not in (cnp.NPY_FLOAT32, cnp.NPY_FLOAT64):
        raise TypeError("the arrays must be float32 or float64")
    fill_config(config, &c)
    fb_optim_begin_step(&c, step, &st)
    for j in range(3):
        s[j] = _data(state[j]) if j < len(state) else NULL
    if p.dtype.num == cnp.NPY_FLOAT32:
        fb_variant_optim_update_f32(v, <float*>cnp.PyArray_DATA(p), <float*>cnp.PyArray_DATA(g),
                                    s, p.shape[0], &c, &st)
    else:
        fb_variant_optim_update_f64(v, <double*>cnp.PyArray_DATA(p),
                                    <double*>cnp.PyArray_DATA(g), s, p.shape[0], &c, &st)


def vmath(str variant, str kernel, cnp.ndarray x):
    """``kernel`` ("tanh", "sigmoid" element-wise; "exp_rows": e^(x - row max) and the
    row sums; "bce_logits": the gradient σ(x) - 1 and, in place of the row sums, the
    terms -log σ(x) of the binary cross-entropy for targets 1; float32 only: "silu", "elu", "softplus", "gelu" and their "*_grad", f'(x)) of the C-contiguous 2-D float array x with the loops of ``variant``;
    returns (out, row_max, row_sum) (the last two None for the element-wise ones)."""
    cdef int v = _variant(variant)
    if kernel not in VMATH_KERNELS:
        raise ValueError(f"kernel must be one of {VMATH_KERNELS}, got {kernel!r}")
    cdef int code = VMATH_KERNELS.index(kernel)
    if code >= 4 and x.dtype != np.float32:
        raise TypeError(f"{kernel} has float32 loops only")
    if x.ndim != 2 or not x.flags.c_contiguous or x.dtype.num not in (cnp.NPY_FLOAT32,
                                                                       cnp.NPY_FLOAT64):
        raise ValueError("x must be a C-contiguous 2-D float32 or float64 array")
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1]
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, x.shape, x.dtype.num, 0)
    cdef cnp.ndarray row_max = cnp.PyArray_ZEROS(1, x.shape, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray row_sum = np.zeros(n * k if code == 3 else n)
    if code == 3:   # the targets, read from out
        out[...] = 1
    cdef double* rm = <double*>cnp.PyArray_DATA(row_max)
    cdef double* rs = <double*>cnp.PyArray_DATA(row_sum)
    if x.dtype.num == cnp.NPY_FLOAT32:
        fb_variant_vmath_f32(v, code, <float*>cnp.PyArray_DATA(x),
                             <float*>cnp.PyArray_DATA(out), n, k, rm, rs)
    else:
        fb_variant_vmath_f64(v, code, <double*>cnp.PyArray_DATA(x),
                             <double*>cnp.PyArray_DATA(out), n, k, rm, rs)
    if code == 3:
        return out, None, row_sum.reshape(n, k)
    if code != 2:
        return out, None, None
    return out, row_max, row_sum
