# Scalar math shared by the kernels, inlined into every module that cimports it.
from cython cimport floating
# Transcendental functions are evaluated in double precision for both dtypes:
# float32 results are then correctly rounded up to libm's error, which keeps
# the float32 tolerance against the reference small and documented.
from libc.math cimport exp, expm1, log1p, erfc, sqrt, fabs, tanh

cdef extern from *:
    """
    #define FASTBP_SQRT1_2 0.70710678118654752440
    #define FASTBP_INV_SQRT_2PI 0.39894228040143267794
    """
    const double SQRT1_2 "FASTBP_SQRT1_2"
    const double INV_SQRT_2PI "FASTBP_INV_SQRT_2PI"

# Activation codes: the index of each name in fastbp._validation.ACTIVATIONS.
cdef enum:
    ACT_IDENTITY = 0
    ACT_SIGMOID = 1
    ACT_TANH = 2
    ACT_RELU = 3
    ACT_LEAKY_RELU = 4
    ACT_ELU = 5
    ACT_SOFTPLUS = 6
    ACT_GELU = 7
    ACT_SILU = 8
    ACT_SOFTMAX = 9

# Loss codes: the index of each name in fastbp._validation.LOSSES.
cdef enum:
    LOSS_MSE = 0
    LOSS_MAE = 1
    LOSS_HUBER = 2
    LOSS_BCE = 3
    LOSS_CE = 4

cdef inline double sigmoid(double z) noexcept nogil:
    """σ(z), in the form that never overflows: e^z/(1+e^z) for z < 0."""
    cdef double e
    if z >= 0.0:
        return 1.0 / (1.0 + exp(-z))
    e = exp(z)
    return e / (1.0 + e)

cdef inline double softplus(double z) noexcept nogil:
    """log(1+e^z), z itself above PyTorch's threshold 20."""
    if z > 20.0:
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

cdef inline double elu(double z) noexcept nogil:
    """z for z > 0, e^z - 1 otherwise (alpha 1)."""
    if z > 0.0:
        return z
    return expm1(z)

cdef inline double log_sigmoid(double z) noexcept nogil:
    """log σ(z) = min(z, 0) - log1p(e^-|z|)."""
    return (z if z < 0.0 else 0.0) - log1p(exp(-fabs(z)))

cdef inline double tanh_fast(double x) noexcept nogil:
    """tanh(x) as Cephes computes it (relative error ~3e-16): 1 - 2/(e^(2|x|)+1)
    with the sign of x for |x| > 0.625, else x + x³·P(x²)/Q(x²). One exp instead
    of libm's expm1 + divisions: about twice as fast, which small tanh networks feel."""
    cdef double a = fabs(x), z
    if a > 0.625:
        if a > 22.0:          # 1 - tanh(22) < 2^-63: rounds to 1
            z = 1.0
        else:
            z = 1.0 - 2.0 / (exp(2.0 * a) + 1.0)
        return z if x > 0 else -z
    z = x * x
    if z == 0.0:
        return x              # keeps the sign of -0.0
    return x + x * z * (((-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z
                          - 1.61468768441708447952e3)
                         / (((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z
                            + 4.84406305325125486048e3))


cdef inline double exp_shifted_row(const floating* x, floating* out, Py_ssize_t k,
                                   double* row_max) noexcept nogil:
    """out[j] := e^(x[j] - max_j x[j]) (out may be x); returns Σ_j out[j] (summed in
    double) and stores the maximum in row_max. The shared first half of softmax,
    log-softmax and the cross-entropy gradient."""
    cdef Py_ssize_t j
    cdef double mx = x[0], s = 0.0, e
    for j in range(1, k):
        if x[j] > mx:
            mx = x[j]
    for j in range(k):
        e = exp(<double>x[j] - mx)
        out[j] = <floating>e
        s += e
    row_max[0] = mx
    return s
