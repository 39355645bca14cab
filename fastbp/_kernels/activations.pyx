"""Activation kernels: forward (fused with the bias add) and backward.

float32 evaluates tanh, sigmoid, silu, elu, softplus, gelu, selu and mish in float (_vmath.h:
twice the vector lanes of double, within a few ulp); float64 in double.

Design: one pass over Z does ``Z += b`` and ``A = f(Z)`` (Dense forward calls
it right after the GEMM); the backward computes ``dZ = f'(Z)·dA`` (or the
softmax Jacobian-vector product) in one pass. The switch on the activation is
outside the loops so that each loop is a tight, vectorisable body. Arrays are
C-contiguous (n×k), passed as pointers so that the whole-network step can call
these on its workspaces; ``dZ`` may alias ``dA`` (each element is read before
it is written).
"""
from cython cimport floating
from libc.math cimport exp

from fastbp._kernels._math cimport (
    ACT_IDENTITY, ACT_SIGMOID, ACT_TANH, ACT_RELU, ACT_LEAKY_RELU, ACT_ELU,
    ACT_SOFTPLUS, ACT_GELU, ACT_SILU, ACT_SOFTMAX, ACT_SELU, ACT_MISH, LEAKY_SLOPE, ELU_ALPHA,
    SOFTPLUS_THRESHOLD, sigmoid, softplus, gelu, gelu_grad, silu, silu_grad, elu, selu,
    selu_grad, mish, mish_grad, exp_rows, EXP_BLOCK,
    tanh_array_f32, tanh_array_f64, sigmoid_array_f32, sigmoid_array_f64, exp_shifted_f64,
    act_forward_array_f32, act_backward_array_f32,
)


cdef void softmax_rows(floating* A, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """A[i, :] := exp(A[i, :] - max) / Σ exp(A[i, :] - max), in place."""
    cdef Py_ssize_t i0 = 0, i, j
    cdef floating* row
    cdef double s
    cdef double mx[EXP_BLOCK]
    cdef double sums[EXP_BLOCK]
    for i in range(n):
        if i % EXP_BLOCK == 0:
            i0 = i
            exp_rows(A + i * k, A + i * k, min(n - i, <Py_ssize_t>EXP_BLOCK), k, mx, sums)
        row = A + i * k
        s = 1.0 / sums[i - i0]
        for j in range(k):
            row[j] = <floating>(row[j] * s)


cdef void bias_piecewise_linear(int act, floating* Z, const floating* b, floating* A,
                                Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Z := Z + b (b may be NULL), A := f(Z) in one pass, for identity, relu and leaky relu."""
    cdef Py_ssize_t i, j
    cdef floating z, slope = <floating>LEAKY_SLOPE
    cdef floating* zr
    cdef floating* ar
    for i in range(n):
        zr = Z + i * k
        ar = A + i * k
        if act == ACT_RELU:
            for j in range(k):
                z = zr[j] + b[j] if b != NULL else zr[j]   # GCC unswitches this test
                zr[j] = z
                ar[j] = 0 if z <= 0 else z   # NaN propagates, as torch.relu
        elif act == ACT_LEAKY_RELU:
            # slope·z in the buffer's precision, as PyTorch and NumPy compute it; a
            # pure select of two values, which GCC vectorises
            for j in range(k):
                z = zr[j] + b[j] if b != NULL else zr[j]   # GCC unswitches this test
                zr[j] = z
                ar[j] = z if z > 0 else slope * z
        else:
            for j in range(k):
                z = zr[j] + b[j] if b != NULL else zr[j]   # GCC unswitches this test
                zr[j] = z
                ar[j] = z


cdef void bias_activation_forward_ptr(int act, floating* Z, const floating* b, floating* A,
                                  Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Z := Z + b (row-broadcast; skipped when b is NULL), A := f(Z). A may be Z."""
    cdef Py_ssize_t i, j, idx
    if act == ACT_IDENTITY or act == ACT_RELU or act == ACT_LEAKY_RELU:
        # One pass instead of two: for a large batch Z is out of cache by the second.
        bias_piecewise_linear(act, Z, b, A, n, k)
        return
    if b != NULL:
        for i in range(n):
            for j in range(k):
                Z[i * k + j] += b[j]
    cdef Py_ssize_t size = n * k
    if act == ACT_SIGMOID:
        if floating is float:
            sigmoid_array_f32(Z, A, size)
        else:
            sigmoid_array_f64(Z, A, size)
    elif act == ACT_TANH:
        if floating is float:
            tanh_array_f32(Z, A, size)
        else:
            tanh_array_f64(Z, A, size)
    elif floating is float and (act == ACT_ELU or act == ACT_SOFTPLUS or act == ACT_GELU
                                or act == ACT_SILU or act == ACT_SELU
                                or act == ACT_MISH):   # float32: in float (_vmath.h)
        act_forward_array_f32(act, Z, A, size)
    elif act == ACT_ELU:
        for idx in range(size):
            A[idx] = <floating>elu(Z[idx])
    elif act == ACT_SOFTPLUS:
        for idx in range(size):
            A[idx] = <floating>softplus(Z[idx])
    elif act == ACT_GELU:
        for idx in range(size):
            A[idx] = <floating>gelu(Z[idx])
    elif act == ACT_SILU:
        for idx in range(size):
            A[idx] = <floating>silu(Z[idx])
    elif act == ACT_SELU:   # (float64: libm's expm1, one value at a time)
        for idx in range(size):
            A[idx] = <floating>selu(Z[idx])
    elif act == ACT_MISH:
        for idx in range(size):
            A[idx] = <floating>mish(Z[idx])
    elif act == ACT_SOFTMAX:
        if A != Z:
            for idx in range(size):
                A[idx] = Z[idx]
        softmax_rows(A, n, k)


cdef void activation_backward_ptr(int act, const floating* Z, const floating* A,
                                  const floating* dA, floating* dZ,
                                  Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """dZ := f'(Z)·dA elementwise; softmax: dZ := A·(dA - Σ_j dA_j·A_j) per row."""
    cdef Py_ssize_t i, j, idx
    cdef Py_ssize_t size = n * k
    cdef floating a, d, slope = <floating>LEAKY_SLOPE
    cdef double dot
    if act == ACT_IDENTITY:
        if dZ != dA:
            for idx in range(size):
                dZ[idx] = dA[idx]
    elif act == ACT_RELU:
        for idx in range(size):
            # Both loads unconditional, so that GCC emits a blend instead of a branch
            # (a branch on random signs mispredicts half the time: 4x slower).
            d = dA[idx]
            dZ[idx] = 0 if Z[idx] <= 0 else d   # torch's threshold_backward
    elif act == ACT_LEAKY_RELU:
        for idx in range(size):
            d = dA[idx]
            dZ[idx] = d if Z[idx] > 0 else slope * d
    elif act == ACT_SIGMOID:
        for idx in range(size):
            a = A[idx]
            dZ[idx] = dA[idx] * (a * (1 - a))
    elif act == ACT_TANH:
        for idx in range(size):
            a = A[idx]
            dZ[idx] = dA[idx] * (1 - a * a)
    elif floating is float and (act == ACT_ELU or act == ACT_SOFTPLUS or act == ACT_GELU
                                or act == ACT_SILU or act == ACT_SELU
                                or act == ACT_MISH):   # float32: in float (_vmath.h)
        act_backward_array_f32(act, Z, dA, dZ, size)
    elif act == ACT_ELU:
        for idx in range(size):
            d = dA[idx]
            dZ[idx] = d if Z[idx] > 0 else <floating>(d * (ELU_ALPHA * exp(Z[idx])))
    elif act == ACT_SOFTPLUS:
        for idx in range(size):
            d = dA[idx]
            dZ[idx] = d if Z[idx] > SOFTPLUS_THRESHOLD else <floating>(d * sigmoid(Z[idx]))
    elif act == ACT_GELU:
        for idx in range(size):
            dZ[idx] = <floating>(dA[idx] * gelu_grad(Z[idx]))
    elif act == ACT_SILU:
        for idx in range(size):
            dZ[idx] = <floating>(dA[idx] * silu_grad(Z[idx]))
    elif act == ACT_SELU:
        for idx in range(size):
            dZ[idx] = <floating>(dA[idx] * selu_grad(Z[idx]))
    elif act == ACT_MISH:
        for idx in range(size):
            dZ[idx] = <floating>(dA[idx] * mish_grad(Z[idx]))
    elif act == ACT_SOFTMAX:
        for i in range(n):
            dot = 0.0
            for j in range(k):
                dot += <double>dA[i * k + j] * A[i * k + j]
            for j in range(k):
                idx = i * k + j
                dZ[idx] = <floating>(A[idx] * (dA[idx] - dot))


def activation_forward_into(int act, const floating[:, ::1] Z, floating[:, ::1] A_out):
    """A_out := f(Z)."""
    cdef Py_ssize_t n = Z.shape[0], k = Z.shape[1]
    if n == 0 or k == 0:
        return
    with nogil:
        if &A_out[0, 0] != &Z[0, 0]:
            # Copy first so that the fused pass can run in place on A_out.
            _copy(&Z[0, 0], &A_out[0, 0], n * k)
        bias_activation_forward_ptr(act, &A_out[0, 0], <const floating*>NULL, &A_out[0, 0], n, k)


def activation_backward_into(int act, const floating[:, ::1] Z, const floating[:, ::1] A,
                             const floating[:, ::1] dA, floating[:, ::1] dZ_out):
    """dZ_out := dL/dZ given dL/dA."""
    cdef Py_ssize_t n = Z.shape[0], k = Z.shape[1]
    if n == 0 or k == 0:
        return
    with nogil:
        activation_backward_ptr(act, &Z[0, 0], &A[0, 0], &dA[0, 0], &dZ_out[0, 0], n, k)


def exp_into(const double[::1] x, double[::1] out):
    """out := e^x with the kernels' vectorised exp (_vmath.h); tests compare it with libm."""
    if x.shape[0] != out.shape[0]:
        raise ValueError("x and out must have the same length")
    if x.shape[0] == 0:
        return
    with nogil:
        exp_shifted_f64(&x[0], &out[0], x.shape[0], 0.0)


cdef void _copy(const floating* src, floating* dst, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t idx
    for idx in range(size):
        dst[idx] = src[idx]
