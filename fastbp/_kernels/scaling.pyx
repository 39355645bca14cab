"""Per-column scalings: ``Scale`` (A = s·X, RealMLP's front scale) and
``ParametricActivation`` (A = X + α·(f(X) − X), RealMLP's parametric activations).

Both keep one learned value per column; their gradients are column sums over the
batch, accumulated in double. ``f`` is any element-wise activation of the
activation kernels (one copy of each formula); the parametric layer's forward
keeps f(X) in ``F`` for its backward (f'(X) is computed from X and f(X)).
"""
from cython cimport floating
from libc.string cimport memcpy

from fastbp._kernels.activations cimport bias_activation_forward_ptr, activation_backward_ptr


cdef void scale_forward_ptr(const floating* X, const floating* s, floating* out,
                            Py_ssize_t n, Py_ssize_t d) noexcept nogil:
    """out := X·s (row-broadcast); out may be X."""
    cdef Py_ssize_t i, j
    for i in range(n):
        for j in range(d):
            out[i * d + j] = X[i * d + j] * s[j]


cdef void scale_backward_ptr(const floating* X, const floating* s, const floating* D,
                             floating* dX, floating* ds, Py_ssize_t n,
                             Py_ssize_t d) noexcept nogil:
    """ds := Σ_rows D·X; dX := D·s unless dX is NULL (dX may be D)."""
    cdef Py_ssize_t i, j
    column_product_sums(D, X, <const floating*>NULL, ds, n, d)
    if dX != NULL:
        for i in range(n):
            for j in range(d):
                dX[i * d + j] = D[i * d + j] * s[j]


cdef void parametric_forward_ptr(int act, const floating* X, const floating* alpha,
                                 floating* F, floating* out, Py_ssize_t n,
                                 Py_ssize_t d) noexcept nogil:
    """F := f(X); out := X + α·(F − X) (out may be F: each element read, then written)."""
    cdef Py_ssize_t i, j, idx
    memcpy(F, X, n * d * sizeof(floating))
    bias_activation_forward_ptr(act, F, <const floating*>NULL, F, n, d)
    for i in range(n):
        for j in range(d):
            idx = i * d + j
            out[idx] = X[idx] + alpha[j] * (F[idx] - X[idx])


cdef void parametric_backward_ptr(int act, const floating* X, const floating* alpha,
                                  const floating* F, const floating* D, floating* dX,
                                  floating* dalpha, Py_ssize_t n,
                                  Py_ssize_t d) noexcept nogil:
    """dα := Σ_rows D·(F − X); dX := D + α·(f'(X)·D − D) unless dX is NULL (dX must
    not be D)."""
    cdef Py_ssize_t i, j, idx
    column_product_sums(D, F, X, dalpha, n, d)
    if dX == NULL:
        return
    activation_backward_ptr(act, X, F, D, dX, n, d)   # dX := f'(X)·D
    for i in range(n):
        for j in range(d):
            idx = i * d + j
            dX[idx] = D[idx] + alpha[j] * (dX[idx] - D[idx])


cdef enum:
    COLUMN_BLOCK = 256   # columns summed per pass over the rows (a 2 KiB double accumulator)


cdef void column_product_sums(const floating* D, const floating* X, const floating* Y,
                              floating* out, Py_ssize_t n, Py_ssize_t d) noexcept nogil:
    """out[j] := Σ_i D[i, j]·(X[i, j] − Y[i, j]) (Y NULL: Σ_i D[i, j]·X[i, j]), in double,
    each column's rows added in order. Row by row over blocks of columns: the reads are
    contiguous and the loop vectorises (a column at a time strode through memory); every
    column's sum is the same sequence of double additions, so the bits are too."""
    cdef double acc[COLUMN_BLOCK]
    cdef Py_ssize_t i, j, j0 = 0, m
    cdef const floating* drow
    cdef const floating* xrow
    cdef const floating* yrow
    while j0 < d:
        m = min(<Py_ssize_t>COLUMN_BLOCK, d - j0)
        for j in range(m):
            acc[j] = 0.0
        for i in range(n):
            drow = D + i * d + j0
            xrow = X + i * d + j0
            if Y == NULL:
                for j in range(m):
                    acc[j] += <double>drow[j] * <double>xrow[j]
            else:
                yrow = Y + i * d + j0
                for j in range(m):
                    acc[j] += <double>drow[j] * (<double>xrow[j] - <double>yrow[j])
        for j in range(m):
            out[j0 + j] = <floating>acc[j]
        j0 += m


def scale_forward_into(const floating[:, ::1] X, const floating[::1] s,
                       floating[:, ::1] A_out):
    """A_out := X·s."""
    if X.shape[0] == 0:
        return
    with nogil:
        scale_forward_ptr(&X[0, 0], &s[0], &A_out[0, 0], X.shape[0], X.shape[1])


def scale_backward_into(const floating[:, ::1] X, const floating[::1] s,
                        const floating[:, ::1] dA, floating[:, ::1] dX_out,
                        floating[::1] ds_out):
    """ds_out := Σ dA·X; dX_out := dA·s unless None."""
    cdef floating* dx = NULL
    if X.shape[0] == 0:
        ds_out[:] = 0
        return
    if dX_out is not None:   # (after the empty batch: no [0, 0] of an empty view)
        dx = &dX_out[0, 0]
    with nogil:
        scale_backward_ptr(&X[0, 0], &s[0], &dA[0, 0], dx, &ds_out[0], X.shape[0],
                           X.shape[1])


def parametric_forward_into(int act, const floating[:, ::1] X, const floating[::1] alpha,
                            floating[:, ::1] F_out, floating[:, ::1] A_out):
    """F_out := f(X); A_out := X + α·(F_out − X)."""
    if X.shape[0] == 0:
        return
    with nogil:
        parametric_forward_ptr(act, &X[0, 0], &alpha[0], &F_out[0, 0], &A_out[0, 0],
                               X.shape[0], X.shape[1])


def parametric_backward_into(int act, const floating[:, ::1] X, const floating[::1] alpha,
                             const floating[:, ::1] F, const floating[:, ::1] dA,
                             floating[:, ::1] dX_out, floating[::1] dalpha_out):
    """dalpha_out := Σ dA·(F − X); dX_out := dA + α·(f'(X)·dA − dA) unless None."""
    cdef floating* dx = NULL
    if X.shape[0] == 0:
        dalpha_out[:] = 0
        return
    if dX_out is not None:   # (after the empty batch: no [0, 0] of an empty view)
        dx = &dX_out[0, 0]
    with nogil:
        parametric_backward_ptr(act, &X[0, 0], &alpha[0], &F[0, 0], &dA[0, 0], dx,
                                &dalpha_out[0], X.shape[0], X.shape[1])
