"""Dense layer kernels: Z = X·W + b, A = f(Z), and their backward.

Design: the matrix products go to BLAS (``_blas.gemm``); the bias add and the
activation run in one pass over Z right after the GEMM. Backward computes
dZ = f'(Z)·dA, then db = Σ_rows dZ, (unless dX is NULL) dX = dZ·Wᵀ with the
weights as they were in the forward pass, and dW = Xᵀ·dZ last (still in cache
for the optimizer update that reads it next). Shapes: X (n×n_in), W (n_in×n_out),
b (n_out; NULL for a layer without bias, whose db is NULL too), Z, A, dA, dZ
(n×n_out), all C-contiguous; n, n_in, n_out > 0 (the Python boundary handles empty
batches).

Sparse input (a first layer on a CSR matrix): the same layer with X given as the rows
of a ``SparseRows``; Z's row i is Σ_p data[p]·W[indices[p], :] over the stored entries
of X's row r (r = rows[i], or row0 + i), and dW := Xᵀ·dZ scatters data[p]·dZ[i, :]
into dW's rows indices[p]. Work and memory go with the non-zeros, never with
n × n_in; there is no dX (nothing below the first layer needs one).
"""
from cython cimport floating
from libc.string cimport memset

import numpy as np
cimport numpy as cnp

cnp.import_array()

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
    if db != NULL:   # (NULL: a layer without bias)
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


# ---------------------------------------------------------------- ensembles (TabM)
#
# k members side by side in a row: an activation of width k·d is the k members'
# d-vectors one after another (the layout of tabm's (batch, k, d) tensors, so that
# (n, k·d) is also (n·k, d) in memory).
#
# BatchEnsemble linear (tabm.LinearBatchEnsemble, Wen et al. 2020): member m maps x to
# ((x ∘ r_m)·W) ∘ s_m + b_m with W (d_in × d_out) shared and r (k × d_in), s, b
# (k × d_out) its own; forward U := X ∘ r, V := U·W (one product over all n·k rows),
# Y := V ∘ s + b. With a shared input (tabm's EnsembleView before the first layer) X
# is (n, d_in) and every member reads the same row. Backward: db := Σ_rows dY,
# ds := Σ_rows dY ∘ V, dV := dY ∘ s, dW := Uᵀ·dV, dU := dV·Wᵀ, dr := Σ_rows dU ∘ X,
# dX := dU ∘ r (shared: summed over the members).
#
# Linear ensemble (tabm.LinearEnsemble, TabM's heads): member m maps its x_m with its
# own W_m (d_in × d_out) and b_m: one product per member on the strided columns.


cdef void batch_ensemble_forward_ptr(const floating* X, const floating* W,
                                     const floating* r, const floating* s,
                                     const floating* b, floating* U, floating* V,
                                     floating* Y, Py_ssize_t n, Py_ssize_t k,
                                     Py_ssize_t d_in, Py_ssize_t d_out,
                                     bint shared) noexcept nogil:
    """U := X ∘ r, V := U·W, Y := V ∘ s + b (b NULL: no bias); see above."""
    cdef Py_ssize_t i, m, j
    cdef const floating* x
    cdef const floating* rm
    cdef const floating* sm
    cdef const floating* bm
    cdef floating* u
    cdef const floating* v
    cdef floating* y
    for i in range(n):
        for m in range(k):
            x = X + (i * d_in if shared else (i * k + m) * d_in)
            u = U + (i * k + m) * d_in
            rm = r + m * d_in
            for j in range(d_in):
                u[j] = x[j] * rm[j]
    gemm(False, False, n * k, d_out, d_in, 1.0, U, d_in, W, d_out, 0.0, V, d_out)
    for i in range(n):
        for m in range(k):
            v = V + (i * k + m) * d_out
            y = Y + (i * k + m) * d_out
            sm = s + m * d_out
            if b == NULL:
                for j in range(d_out):
                    y[j] = v[j] * sm[j]
            else:
                bm = b + m * d_out
                for j in range(d_out):
                    y[j] = v[j] * sm[j] + bm[j]


cdef void batch_ensemble_backward_ptr(const floating* X, const floating* W,
                                      const floating* r, const floating* s,
                                      const floating* U, const floating* V,
                                      const floating* dY, floating* dV, floating* dU,
                                      floating* dX, floating* dW, floating* dr,
                                      floating* ds, floating* db, Py_ssize_t n,
                                      Py_ssize_t k, Py_ssize_t d_in, Py_ssize_t d_out,
                                      bint shared) noexcept nogil:
    """dW, dr, ds, db (NULL: no bias) and dX (unless NULL) from dY; dV (n·k × d_out)
    and dU (n·k × d_in) are scratch. See above."""
    cdef Py_ssize_t i, m, j, row
    cdef floating g
    memset(ds, 0, k * d_out * sizeof(floating))
    memset(dr, 0, k * d_in * sizeof(floating))
    if db != NULL:
        memset(db, 0, k * d_out * sizeof(floating))
    for i in range(n):
        for m in range(k):
            row = (i * k + m) * d_out
            for j in range(d_out):
                g = dY[row + j]
                ds[m * d_out + j] += g * V[row + j]
                dV[row + j] = g * s[m * d_out + j]
                if db != NULL:
                    db[m * d_out + j] += g
    gemm(False, True, n * k, d_in, d_out, 1.0, dV, d_out, W, d_out, 0.0, dU, d_in)
    if dX != NULL and shared:
        memset(dX, 0, n * d_in * sizeof(floating))
    for i in range(n):
        for m in range(k):
            row = (i * k + m) * d_in
            for j in range(d_in):
                dr[m * d_in + j] += dU[row + j] * X[(i * d_in if shared else row) + j]
                if dX == NULL:
                    continue
                if shared:
                    dX[i * d_in + j] += dU[row + j] * r[m * d_in + j]
                else:
                    dX[row + j] = dU[row + j] * r[m * d_in + j]
    gemm(True, False, d_in, d_out, n * k, 1.0, U, d_in, dV, d_out, 0.0, dW, d_out)


cdef void linear_ensemble_forward_ptr(const floating* X, const floating* W,
                                      const floating* b, floating* Y, Py_ssize_t n,
                                      Py_ssize_t k, Py_ssize_t d_in,
                                      Py_ssize_t d_out) noexcept nogil:
    """Y[:, m] := X[:, m]·W_m + b_m for each member m (b NULL: no bias)."""
    cdef Py_ssize_t i, m, j
    cdef floating* y
    for m in range(k):
        gemm(False, False, n, d_out, d_in, 1.0, X + m * d_in, k * d_in,
             W + m * d_in * d_out, d_out, 0.0, Y + m * d_out, k * d_out)
    if b != NULL:
        for i in range(n):
            y = Y + i * k * d_out
            for j in range(k * d_out):
                y[j] += b[j]


cdef void linear_ensemble_backward_ptr(const floating* X, const floating* W,
                                       const floating* dY, floating* dX, floating* dW,
                                       floating* db, Py_ssize_t n, Py_ssize_t k,
                                       Py_ssize_t d_in, Py_ssize_t d_out) noexcept nogil:
    """db := Σ_rows dY (unless NULL), dX[:, m] := dY[:, m]·W_mᵀ (unless dX is NULL),
    dW_m := X[:, m]ᵀ·dY[:, m]."""
    cdef Py_ssize_t m
    if db != NULL:
        column_sums_ptr(dY, db, n, k * d_out)
    for m in range(k):
        if dX != NULL:
            gemm(False, True, n, d_in, d_out, 1.0, dY + m * d_out, k * d_out,
                 W + m * d_in * d_out, d_out, 0.0, dX + m * d_in, k * d_in)
        gemm(True, False, d_in, d_out, n, 1.0, X + m * d_in, k * d_in, dY + m * d_out,
             k * d_out, 0.0, dW + m * d_in * d_out, d_out)


def batch_ensemble_forward_into(const floating[::1] X, const floating[::1] W,
                                const floating[::1] r, const floating[::1] s, b,
                                floating[::1] U, floating[::1] V, floating[::1] Y,
                                Py_ssize_t n, Py_ssize_t k, Py_ssize_t d_in,
                                Py_ssize_t d_out, bint shared):
    """Fills U, V and Y (flat C-order arrays; b: the flat biases or None)."""
    cdef floating[::1] bv = b
    cdef const floating* bp = NULL if b is None else &bv[0]
    with nogil:
        batch_ensemble_forward_ptr(&X[0], &W[0], &r[0], &s[0], bp, &U[0], &V[0], &Y[0],
                                   n, k, d_in, d_out, shared)


def batch_ensemble_backward_into(const floating[::1] X, const floating[::1] W,
                                 const floating[::1] r, const floating[::1] s,
                                 const floating[::1] U, const floating[::1] V,
                                 const floating[::1] dY, floating[::1] dV_work,
                                 floating[::1] dU_work, dX, floating[::1] dW,
                                 floating[::1] dr, floating[::1] ds, db,
                                 Py_ssize_t n, Py_ssize_t k, Py_ssize_t d_in,
                                 Py_ssize_t d_out, bint shared):
    """Fills dW, dr, ds, db (unless None) and dX (unless None); dV_work, dU_work scratch."""
    cdef floating[::1] dxv = dX
    cdef floating[::1] dbv = db
    cdef floating* dxp = NULL if dX is None else &dxv[0]
    cdef floating* dbp = NULL if db is None else &dbv[0]
    with nogil:
        batch_ensemble_backward_ptr(&X[0], &W[0], &r[0], &s[0], &U[0], &V[0], &dY[0],
                                    &dV_work[0], &dU_work[0], dxp, &dW[0], &dr[0], &ds[0],
                                    dbp, n, k, d_in, d_out, shared)


def linear_ensemble_forward_into(const floating[::1] X, const floating[::1] W, b,
                                 floating[::1] Y, Py_ssize_t n, Py_ssize_t k,
                                 Py_ssize_t d_in, Py_ssize_t d_out):
    """Fills Y (flat C-order arrays; b: the flat biases or None)."""
    cdef floating[::1] bv = b
    cdef const floating* bp = NULL if b is None else &bv[0]
    with nogil:
        linear_ensemble_forward_ptr(&X[0], &W[0], bp, &Y[0], n, k, d_in, d_out)


def linear_ensemble_backward_into(const floating[::1] X, const floating[::1] W,
                                  const floating[::1] dY, dX, floating[::1] dW, db,
                                  Py_ssize_t n, Py_ssize_t k, Py_ssize_t d_in,
                                  Py_ssize_t d_out):
    """Fills dW, db (unless None) and dX (unless None)."""
    cdef floating[::1] dxv = dX
    cdef floating[::1] dbv = db
    cdef floating* dxp = NULL if dX is None else &dxv[0]
    cdef floating* dbp = NULL if db is None else &dbv[0]
    with nogil:
        linear_ensemble_backward_ptr(&X[0], &W[0], &dY[0], dxp, &dW[0], dbp, n, k, d_in,
                                     d_out)


# ---------------------------------------------------------------- sparse input

cdef extern from *:
    """
    #define FB_PREFETCH(addr) __builtin_prefetch((const void*)(addr))
    """
    void FB_PREFETCH(const void* addr) noexcept nogil

# The sparse kernels read (forward) and update (backward) one row of W per stored
# value, at the value's column: rows scattered over a W that is often larger than the
# cache, so each is a wait for memory. Asking for the row AHEAD values later while
# this one is computed overlaps those waits.
cdef enum:
    AHEAD = 8


cdef inline void prefetch_row(const void* row, Py_ssize_t nbytes) noexcept nogil:
    cdef Py_ssize_t off
    for off in range(0, nbytes, 64):
        FB_PREFETCH(<const char*>row + off)

cdef class SparseRows:
    """The rows of a CSR matrix in the form the compiled kernels read: private copies
    of its arrays (values of the model's dtype, int64 indices), checked once here --
    indptr starts at 0, never decreases and ends at nnz; every column index lies in
    [0, n_cols) -- so the kernels index with them unchecked, and no later change
    the caller makes to its own arrays reaches them.

    Parameters: data (nnz,) float32 or float64; indptr (n_rows + 1,) and indices
    (nnz,) integers; n_rows >= 0, n_cols >= 1 (scipy.sparse's CSR arrays).
    """

    def __init__(self, data, indptr, indices, Py_ssize_t n_rows, Py_ssize_t n_cols):
        data = np.array(data, copy=True, order="C")
        if data.dtype not in (np.float32, np.float64) or data.ndim != 1:
            raise TypeError(f"data must be a 1-D float32 or float64 array, got "
                            f"{data.dtype} of shape {data.shape}")
        for name, arr in (("indptr", indptr), ("indices", indices)):
            if np.asarray(arr).dtype.kind not in "iu":
                raise TypeError(f"{name} must hold integers, got {np.asarray(arr).dtype}")
        indptr = np.array(indptr, dtype=np.intp, copy=True, order="C")
        indices = np.array(indices, dtype=np.intp, copy=True, order="C")
        if n_rows < 0 or n_cols < 1:
            raise ValueError(f"shape must be (n_rows >= 0, n_cols >= 1), got "
                             f"({n_rows}, {n_cols})")
        if indptr.shape != (n_rows + 1,) or indices.shape != data.shape:
            raise ValueError(f"a CSR matrix of {n_rows} rows needs indptr of shape "
                             f"({n_rows + 1},) and indices of data's shape {data.shape}; got "
                             f"{indptr.shape} and {indices.shape}")
        if indptr[0] != 0 or indptr[n_rows] != data.shape[0] or (np.diff(indptr) < 0).any():
            raise ValueError("indptr must start at 0, never decrease and end at nnz")
        if data.shape[0] and (indices.min() < 0 or indices.max() >= n_cols):
            raise ValueError(f"column indices must lie in [0, {n_cols})")
        self.data, self.indptr, self.indices = data, indptr, indices
        self.n_rows, self.n_cols = n_rows, n_cols
        self.d = cnp.PyArray_DATA(<cnp.ndarray>data)
        self.ip = <const Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>indptr)
        self.ix = <const Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>indices)

    @property
    def shape(self):
        """(n_rows, n_cols)."""
        return (self.n_rows, self.n_cols)

    @property
    def dtype(self):
        """The values' dtype."""
        return self.data.dtype

    @property
    def nnz(self):
        """The number of stored entries."""
        return self.data.shape[0]

    def __reduce__(self):
        return (SparseRows, (self.data, self.indptr, self.indices, self.n_rows, self.n_cols))

    def __repr__(self):
        return f"SparseRows(shape={self.shape}, nnz={self.nnz}, dtype={self.dtype})"


cdef void sparse_dense_forward_ptr(int act, const floating* data, const Py_ssize_t* indptr,
                                   const Py_ssize_t* indices, const Py_ssize_t* rows,
                                   Py_ssize_t row0, const floating* W, const floating* b,
                                   floating* Z, floating* A,
                                   Py_ssize_t n, Py_ssize_t n_out) noexcept nogil:
    """Z := X_rows·W + b, A := f(Z): X's rows rows[0..n) (row0 + i when rows is NULL)."""
    cdef Py_ssize_t i, r, p, j
    cdef floating v
    cdef floating* z
    cdef const floating* w
    for i in range(n):
        r = rows[i] if rows != NULL else row0 + i
        z = &Z[i * n_out]
        memset(z, 0, n_out * sizeof(floating))
        for p in range(indptr[r], indptr[r + 1]):
            if p + AHEAD < indptr[r + 1]:
                prefetch_row(&W[indices[p + AHEAD] * n_out], n_out * sizeof(floating))
            v = data[p]
            w = &W[indices[p] * n_out]
            for j in range(n_out):
                z[j] += v * w[j]
    bias_activation_forward_ptr(act, Z, b, A, n, n_out)


cdef void sparse_dense_backward_ptr(int act, const floating* data, const Py_ssize_t* indptr,
                                    const Py_ssize_t* indices, const Py_ssize_t* rows,
                                    Py_ssize_t row0, const floating* Z, const floating* A,
                                    const floating* dA, floating* dZ, floating* dW,
                                    floating* db, Py_ssize_t n, Py_ssize_t n_in,
                                    Py_ssize_t n_out, const floating* W,
                                    double l2) noexcept nogil:
    """dZ := f'(Z)·dA; db := Σ_rows dZ; dW := l2·W + X_rowsᵀ·dZ (rows as the forward's;
    l2·W only when l2 != 0: an L2 penalty's gradient, which a dense layer adds in a pass
    of its own, here starts dW instead of the zeros -- one pass over dW fewer, which
    matters where dW is wide and the data term sparse)."""
    cdef Py_ssize_t i, r, p, j
    cdef floating v
    cdef floating* g
    cdef const floating* d
    cdef floating c = <floating>l2
    activation_backward_ptr(act, Z, A, dA, dZ, n, n_out)
    if db != NULL:   # (NULL: a layer without bias)
        column_sums_ptr(dZ, db, n, n_out)
    if l2 != 0.0:
        for i in range(n_in * n_out):
            dW[i] = c * W[i]
    else:
        memset(dW, 0, n_in * n_out * sizeof(floating))
    for i in range(n):
        r = rows[i] if rows != NULL else row0 + i
        d = &dZ[i * n_out]
        for p in range(indptr[r], indptr[r + 1]):
            if p + AHEAD < indptr[r + 1]:
                prefetch_row(&dW[indices[p + AHEAD] * n_out], n_out * sizeof(floating))
            v = data[p]
            g = &dW[indices[p] * n_out]
            for j in range(n_out):
                g[j] += v * d[j]


cdef _check_sparse_call(SparseRows X, W, arrays):
    """The shapes and dtype a sparse kernel call indexes with (checked here: the
    kernels trust them)."""
    if X.data.dtype != W.dtype or W.shape[0] != X.n_cols:
        raise ValueError(f"W must be {X.data.dtype} of shape ({X.n_cols}, n_out), got "
                         f"{W.dtype} {W.shape}")
    for name, arr, shape in arrays:
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if X.n_rows == 0:
        raise ValueError("X must hold at least one row")


def sparse_dense_forward_into(int act, SparseRows X, const floating[:, ::1] W,
                              const floating[::1] b, floating[:, ::1] Z_out,
                              floating[:, ::1] A_out):
    """Z_out := X·W + b, A_out := f(Z_out) for every row of X (shapes checked)."""
    cdef Py_ssize_t n = X.n_rows, k = W.shape[1]
    _check_sparse_call(X, np.asarray(W), (("b", np.asarray(b), (k,)),
                                             ("Z_out", np.asarray(Z_out), (n, k)),
                                             ("A_out", np.asarray(A_out), (n, k))))
    with nogil:
        sparse_dense_forward_ptr(act, <const floating*>X.d, X.ip, X.ix, NULL, 0, &W[0, 0],
                                 &b[0], &Z_out[0, 0], &A_out[0, 0], n, k)


def sparse_dense_backward_into(int act, SparseRows X, const floating[:, ::1] Z,
                               const floating[:, ::1] A, const floating[:, ::1] dA,
                               floating[:, ::1] dZ_work, floating[:, ::1] dW_out,
                               floating[::1] db_out):
    """Fills dZ_work, dW_out (n_cols, k) and db_out for every row of X (shapes checked)."""
    cdef Py_ssize_t n = X.n_rows, k = Z.shape[1]
    _check_sparse_call(X, np.asarray(dW_out), (
        ("Z", np.asarray(Z), (n, k)), ("A", np.asarray(A), (n, k)),
        ("dA", np.asarray(dA), (n, k)), ("dZ_work", np.asarray(dZ_work), (n, k)),
        ("dW_out", np.asarray(dW_out), (X.n_cols, k)), ("db_out", np.asarray(db_out), (k,))))
    with nogil:
        sparse_dense_backward_ptr(act, <const floating*>X.d, X.ip, X.ix, NULL, 0, &Z[0, 0],
                                  &A[0, 0], &dA[0, 0], &dZ_work[0, 0], &dW_out[0, 0],
                                  &db_out[0], n, X.n_cols, k, NULL, 0.0)
