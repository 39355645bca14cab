"""Dense layer kernels: Z = X·W + b, A = f(Z), and their backward.

Design: the matrix products go to BLAS (``_blas.gemm``); the bias add and the
activation run in one pass over Z right after the GEMM. Backward computes
dZ = f'(Z)·dA, then db = Σ_rows dZ, (unless dX is NULL) dX = dZ·Wᵀ with the
weights as they were in the forward pass, and dW = Xᵀ·dZ last (still in cache
for the optimizer update that reads it next). Shapes:
X (n×n_in), W (n_in×n_out), b (n_out), Z, A, dA, dZ (n×n_out), all
C-contiguous; n, n_in, n_out > 0 (the Python boundary handles empty batches).
"""
from cython cimport floating

from fastbp._kernels._blas cimport gemm
from fastbp._kernels.activations cimport bias_activation_forward_ptr, activation_backward_ptr


cdef void column_sums_ptr(const floating* M, floating* out, Py_ssize_t n,
                          Py_ssize_t k) noexcept nogil:
    """out := Σ_i M[i, :] (row by row, the order NumPy's sum(axis=0) uses)."""
    cdef Py_ssize_t i, j
    for j in range(k):
        out[j] = M[j]
    for i in range(1, n):
        for j in range(k):
            out[j] += M[i * k + j]


cdef void dense_forward_ptr(int act, const floating* X, const floating* W, const floating* b,
                            floating* Z, floating* A,
                            Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """Z := X·W + b, A := f(Z)."""
    gemm(False, False, n, n_out, n_in, 1.0, X, n_in, W, n_out, 0.0, Z, n_out)
    bias_activation_forward_ptr(act, Z, b, A, n, n_out)


cdef void dense_backward_ptr(int act, const floating* X, const floating* W,
                             const floating* Z, const floating* A, const floating* dA,
                             floating* dZ, floating* dX, floating* dW, floating* db,
                             Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """dZ := f'(Z)·dA; db := Σ_rows dZ; dX := dZ·Wᵀ (if dX is not NULL); dW := Xᵀ·dZ.

    dW comes last so that it is still in cache when the caller's optimizer update reads it."""
    activation_backward_ptr(act, Z, A, dA, dZ, n, n_out)
    column_sums_ptr(dZ, db, n, n_out)
    if dX != NULL:
        gemm(False, True, n, n_in, n_out, 1.0, dZ, n_out, W, n_out, 0.0, dX, n_in)
    gemm(True, False, n_in, n_out, n, 1.0, X, n_in, dZ, n_out, 0.0, dW, n_out)


def dense_forward_into(int act, const floating[:, ::1] X, const floating[:, ::1] W,
                       const floating[::1] b, floating[:, ::1] Z_out, floating[:, ::1] A_out):
    """Z_out := X·W + b, A_out := f(Z_out)."""
    with nogil:
        dense_forward_ptr(act, &X[0, 0], &W[0, 0], &b[0], &Z_out[0, 0], &A_out[0, 0],
                          X.shape[0], X.shape[1], W.shape[1])


def dense_backward_into(int act, const floating[:, ::1] X, const floating[:, ::1] W,
                        const floating[:, ::1] Z, const floating[:, ::1] A,
                        const floating[:, ::1] dA, floating[:, ::1] dZ_work,
                        floating[:, ::1] dX_out, floating[:, ::1] dW_out, floating[::1] db_out,
                        bint need_dX):
    """Fills dZ_work, dW_out, db_out and, if need_dX, dX_out."""
    cdef floating* dX = &dX_out[0, 0] if need_dX else NULL
    with nogil:
        dense_backward_ptr(act, &X[0, 0], &W[0, 0], &Z[0, 0], &A[0, 0], &dA[0, 0],
                           &dZ_work[0, 0], dX, &dW_out[0, 0], &db_out[0],
                           X.shape[0], X.shape[1], W.shape[1])
