# Scalar math shared by the kernels, inlined into every module that cimports it.
from cython cimport floating
# These scalar functions are evaluated in double precision (float64 models, and the
# places that need double); float32 activations run _vmath.h's float versions.
from libc.math cimport exp, expm1, log1p, erfc, sqrt, fabs, tanh

cdef extern from *:
    """
    #define FASTBP_SQRT1_2 0.70710678118654752440
    #define FASTBP_INV_SQRT_2PI 0.39894228040143267794
    """
    const double SQRT1_2 "FASTBP_SQRT1_2"
    const double INV_SQRT_2PI "FASTBP_INV_SQRT_2PI"

# Activation, loss, optimizer and layer codes and the shared constants
# (ACT_RELU, LOSS_CE, LEAKY_SLOPE, ...): written from fastbp/_table.py at build time.
include "_table.pxi"

# The vectorisable exp and the loops over it (see _vmath.h).
cdef extern from "_vmath.h" nogil:
    double sigmoid "fb_sigmoid"(double z)  # σ(z); e^z/(1+e^z) for z < 0, never overflows
    double log_sigmoid "fb_log_sigmoid"(double z)  # min(z, 0) - log1p(e^-|z|)
    void bce_logits_terms_f32 "fb_bce_logits_terms_f32"(const float* o, const float* t,
                                                        float* d, double* term, Py_ssize_t n,
                                                        double scale)
    void bce_logits_terms_f64 "fb_bce_logits_terms_f64"(const double* o, const double* t,
                                                        double* d, double* term, Py_ssize_t n,
                                                        double scale)
    void tanh_array_f32 "fb_tanh_array_f32"(const float* Z, float* A, Py_ssize_t n)
    void tanh_array_f64 "fb_tanh_array_f64"(const double* Z, double* A, Py_ssize_t n)
    void sigmoid_array_f32 "fb_sigmoid_array_f32"(const float* Z, float* A, Py_ssize_t n)
    void sigmoid_array_f64 "fb_sigmoid_array_f64"(const double* Z, double* A, Py_ssize_t n)
    double exp_shifted_f64 "fb_exp_shifted_f64"(const double* x, double* out, Py_ssize_t k,
                                                double shift)
    void act_forward_array_f32 "fb_act_forward_array_f32"(int act, const float* Z, float* A,
                                                          Py_ssize_t n)
    void act_backward_array_f32 "fb_act_backward_array_f32"(int act, const float* Z,
                                                            const float* dA, float* dZ,
                                                            Py_ssize_t n)
    void exp_rows_f32 "fb_exp_rows_f32"(const float* x, float* out, Py_ssize_t n, Py_ssize_t k,
                                        double* row_max, double* row_sum)
    void exp_rows_f64 "fb_exp_rows_f64"(const double* x, double* out, Py_ssize_t n,
                                        Py_ssize_t k, double* row_max, double* row_sum)

cdef inline double softplus(double z) noexcept nogil:
    """log(1+e^z), z itself above PyTorch's threshold (SOFTPLUS_THRESHOLD, 20)."""
    if z > SOFTPLUS_THRESHOLD:
        return z
    return log1p(exp(z))

cdef inline double gelu(double z) noexcept nogil:
    """z·Φ(z) with Φ(z) = erfc(-z/√2)/2 (exact GELU; erfc avoids 1+erf cancellation)."""
    return 0.5 * z * erfc(-z * SQRT1_2)

cdef inline double gelu_grad(double z) noexcept nogil:
    """Φ(z) + z·φ(z)."""
    return 0.5 * erfc(-z * SQRT1_2) + z * INV_SQRT_2PI * exp(-0.5 * z * z)

cdef inline double silu(double z) noexcept nogil:
    """z·σ(z)."""
    return z * sigmoid(z)

cdef inline double silu_grad(double z) noexcept nogil:
    """σ(z)·(1 + z·(1-σ(z)))."""
    cdef double s = sigmoid(z)
    return s * (1.0 + z * (1.0 - s))

cdef inline double selu(double z) noexcept nogil:
    """scale·z for z > 0, scale·alpha·(e^z - 1) otherwise (torch.selu's constants)."""
    if z > 0.0:
        return SELU_SCALE * z
    return SELU_SCALE * SELU_ALPHA * expm1(z)

cdef inline double selu_grad(double z) noexcept nogil:
    """scale for z > 0, scale·alpha·e^z otherwise."""
    if z > 0.0:
        return SELU_SCALE
    return SELU_SCALE * SELU_ALPHA * exp(z)

cdef inline double mish(double z) noexcept nogil:
    """z·tanh(softplus(z)) (torch's mish, its softplus threshold 20)."""
    return z * tanh(softplus(z))

cdef inline double mish_grad(double z) noexcept nogil:
    """t + z·(1 - t²)·σ(z), t = tanh(softplus(z))."""
    cdef double t = tanh(softplus(z))
    return t + z * (1.0 - t * t) * sigmoid(z)

cdef inline double elu(double z) noexcept nogil:
    """z for z > 0, alpha·(e^z - 1) otherwise (alpha: ELU_ALPHA, 1)."""
    if z > 0.0:
        return z
    return ELU_ALPHA * expm1(z)


# Rows per block for the callers of exp_rows, which keep a block's maxima and sums
# on the stack.
cdef enum:
    EXP_BLOCK = 64

cdef inline void exp_rows(const floating* x, floating* out, Py_ssize_t n, Py_ssize_t k,
                          double* row_max, double* row_sum) noexcept nogil:
    """out[i, j] := e^(x[i, j] - max_j x[i, j]) for the n rows of x (out may be x),
    with each row's maximum and sum (in double) in row_max and row_sum. The shared
    first half of softmax and the cross-entropies (_vmath.h)."""
    if floating is float:
        exp_rows_f32(x, out, n, k, row_max, row_sum)
    else:
        exp_rows_f64(x, out, n, k, row_max, row_sum)
