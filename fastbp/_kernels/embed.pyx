"""Embeddings of numeric features: periodic (``rtdl_num_embeddings.PeriodicEmbeddings``)
and piecewise-linear (``rtdl_num_embeddings.PiecewiseLinearEncoding``).

Periodic.

Forward, for each feature f of X (n × F): the angles a = (2π·freq[f, j])·x[i, f]
(j < k, in double), P_f = [cos a, sin a] (n × 2k; the vectorised sincos of _sincos.h),
then the feature's own linear map Z[:, f·d:(f+1)·d] = P_f·W_f + b_f (one GEMM per
feature, written straight into the output's columns; ``lite``: one W and b shared by
the features), then ReLU (``relu``). The output is feature-major: feature 0's d values
first. P (F × n × 2k) is kept for the backward.

Backward, from dZ (ReLU's derivative applied first, in place): per feature,
dW_f = P_fᵀ·dZ_f, db_f = Σ_rows dZ_f (lite: summed over the features too),
dP = dZ_f·W_fᵀ, and with g = cos a·dP_sin − sin a·dP_cos (the derivative through
the angle), dfreq[f, j] = Σ_i g·2π·x[i, f] and dx[i, f] = Σ_j g·2π·freq[f, j].
``dP`` is an n × 2k scratch.

Piecewise-linear. Each output column c reads one feature, feat[c], and is
clamp(b_c + w_c·x[feat[c]], lo_c, hi_c), with coef = [w (m), b (m), lo (m), hi (m)]
(``fastbp.layers.embedding.ple_table``: w = 1/bin width, b = −left edge/bin width; a
feature's first bin clamped above at 1, its middle bins to [0, 1], its last below at
0, a lone bin not at all, ±inf marking no bound). Its derivative, w_c where
lo_c ≤ z ≤ hi_c (PyTorch's clamp passes the gradient at the bounds) and 0 elsewhere,
is recomputed from X in the backward.

Categorical (``torch.nn.Embedding`` per coded column). The output row is X's numeric
columns (``numeric``, in order), then each coded column's table row, dim values at
its offset. A code is valid when it is an integer in [0, card): the model checks its
input first (a ValueError naming the cell); here an invalid code still reads nothing
out of bounds, its values become NaN and its backward adds nothing. The backward
scatters dL/dA into the tables' rows (dtable zeroed first) and copies the numeric
columns' dL/dA into dX (the coded columns' dX is 0: a code has no derivative).
"""
from cython cimport floating
from libc.math cimport M_PI, NAN, floor
from libc.string cimport memcpy

from fastbp._kernels._blas cimport gemm
from fastbp._kernels._math cimport ACT_IDENTITY, ACT_RELU
from fastbp._kernels.activations cimport bias_activation_forward_ptr, activation_backward_ptr
from fastbp._kernels.dense cimport column_sums_ptr

cdef extern from "_sincos.h" nogil:
    void fb_sincos_array(const double* a, double* s, double* c, Py_ssize_t n)

cdef enum:
    BLOCK = 1024  # angles per sincos call (stack arrays of 8 KiB each)


cdef void periodic_angles(const floating* X, Py_ssize_t ldx, const floating* freq,
                          const floating* phase, floating* P, Py_ssize_t n,
                          Py_ssize_t k) noexcept nogil:
    """One feature's P (n, 2k) = [cos a, sin a], a = (2π·freq[j])·x[i] (+ phase[j]
    unless NULL), x[i] = X[i·ldx]; angles in double, sincos in blocks."""
    cdef Py_ssize_t i, i0, j, j0, m, rows, k2 = 2 * k, block = BLOCK
    cdef double xv
    cdef double ang[BLOCK]
    cdef double sn[BLOCK]
    cdef double cs[BLOCK]
    cdef floating* row
    if k <= block:   # whole rows per sincos call: as many as the block holds
        rows = block // k
        i0 = 0
        while i0 < n:
            m = min(rows, n - i0)
            for i in range(m):
                xv = X[(i0 + i) * ldx]
                for j in range(k):
                    ang[i * k + j] = (2.0 * M_PI * freq[j]) * xv
                    if phase != NULL:
                        ang[i * k + j] += phase[j]
            fb_sincos_array(ang, sn, cs, m * k)
            for i in range(m):
                row = P + (i0 + i) * k2
                for j in range(k):
                    row[j] = <floating>cs[i * k + j]
                    row[k + j] = <floating>sn[i * k + j]
            i0 += m
    else:            # a row's frequencies in blocks
        for i in range(n):
            xv = X[i * ldx]
            row = P + i * k2
            j0 = 0
            while j0 < k:
                m = min(block, k - j0)
                for j in range(m):
                    ang[j] = (2.0 * M_PI * freq[j0 + j]) * xv
                    if phase != NULL:
                        ang[j] += phase[j0 + j]
                fb_sincos_array(ang, sn, cs, m)
                for j in range(m):
                    row[j0 + j] = <floating>cs[j]
                    row[k + j0 + j] = <floating>sn[j]
                j0 += m


cdef void periodic_forward_ptr(const floating* X, const floating* freq, const floating* W,
                               const floating* b, floating* P, floating* Z, floating* A,
                               Py_ssize_t n, Py_ssize_t F, Py_ssize_t k, Py_ssize_t d,
                               bint lite, bint relu) noexcept nogil:
    """P (F, n, 2k), Z and A (n, F·d); A may be Z (no ReLU, or inference in place)."""
    cdef Py_ssize_t f, i, j, k2 = 2 * k, width = F * d
    cdef floating* z
    for f in range(F):
        periodic_angles(X + f, F, freq + f * k, <const floating*>NULL, P + f * n * k2, n, k)
        gemm(False, False, n, d, k2, 1.0, P + f * n * k2, k2,
             W if lite else W + f * k2 * d, d, 0.0, Z + f * d, width)
    if lite:   # the shared bias, once per feature block
        for i in range(n):
            z = Z + i * width
            for f in range(F):
                for j in range(d):
                    z[f * d + j] += b[j]
        bias_activation_forward_ptr(ACT_RELU if relu else ACT_IDENTITY, Z,
                                    <const floating*>NULL, A, n, width)
    else:      # b (F, d) is a bias over the F·d output columns
        bias_activation_forward_ptr(ACT_RELU if relu else ACT_IDENTITY, Z, b, A, n, width)


cdef void periodic_backward_ptr(const floating* X, const floating* freq, const floating* W,
                                const floating* P, const floating* Z, const floating* A,
                                floating* D, floating* dX, floating* dfreq, floating* dW,
                                floating* db, floating* dP, Py_ssize_t n, Py_ssize_t F,
                                Py_ssize_t k, Py_ssize_t d, bint lite,
                                bint relu) noexcept nogil:
    """D: dL/dA on entry, dL/dZ after (in place); fills dfreq, dW, db and (unless NULL)
    dX; dP: an n × 2k scratch."""
    cdef Py_ssize_t f, i, j, k2 = 2 * k, width = F * d
    cdef double xv, g, gx, c
    cdef const floating* row
    cdef const floating* dp
    activation_backward_ptr(ACT_RELU if relu else ACT_IDENTITY, Z, A, D, D, n, width)
    if lite:
        for j in range(d):
            db[j] = 0
        for i in range(n):
            for f in range(F):
                for j in range(d):
                    db[j] += D[i * width + f * d + j]
    else:
        column_sums_ptr(D, db, n, width)
    for f in range(F):
        gemm(True, False, k2, d, n, 1.0, P + f * n * k2, k2, D + f * d, width,
             1.0 if lite and f > 0 else 0.0, dW if lite else dW + f * k2 * d, d)
        gemm(False, True, n, k2, d, 1.0, D + f * d, width, W if lite else W + f * k2 * d, d,
             0.0, dP, k2)
        for j in range(k):
            dfreq[f * k + j] = 0
        for i in range(n):
            xv = X[i * F + f]
            row = P + (f * n + i) * k2
            dp = dP + i * k2
            gx = 0.0
            for j in range(k):
                g = <double>row[j] * dp[k + j] - <double>row[k + j] * dp[j]
                c = 2.0 * M_PI * g
                dfreq[f * k + j] += <floating>(c * xv)
                gx += c * freq[f * k + j]
            if dX != NULL:
                dX[i * F + f] = <floating>gx


cdef void periodic_bias_forward_ptr(const floating* X, const floating* freq,
                                    const floating* phase, const floating* W,
                                    const floating* b, floating* P, floating* A,
                                    Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t F, Py_ssize_t k,
                                    Py_ssize_t d) noexcept nogil:
    """RealMLP's PBLD: for each of X's first F columns, cos(2π·freq·x + phase)·W_f + b_f
    (d values, feature-major), then X itself: A (n, F·d + n_in). P (F, n, 2k) keeps
    [cos a, sin a] for the backward (the products read its cosines, lda 2k)."""
    cdef Py_ssize_t f, i, k2 = 2 * k, width = F * d + n_in
    for f in range(F):
        periodic_angles(X + f, n_in, freq + f * k, phase + f * k, P + f * n * k2, n, k)
        gemm(False, False, n, d, k, 1.0, P + f * n * k2, k2, W + f * k * d, d, 0.0,
             A + f * d, width)
    for i in range(n):
        for f in range(F * d):
            A[i * width + f] += b[f]
        memcpy(A + i * width + F * d, X + i * n_in, n_in * sizeof(floating))


cdef void periodic_bias_backward_ptr(const floating* X, const floating* freq,
                                     const floating* W, const floating* P, const floating* D,
                                     floating* dX, floating* dfreq, floating* dphase,
                                     floating* dW, floating* db, floating* dP, Py_ssize_t n,
                                     Py_ssize_t n_in, Py_ssize_t F, Py_ssize_t k,
                                     Py_ssize_t d) noexcept nogil:
    """From D = dL/dA (n, F·d + n_in): dW_f = cos(a)ᵀ·D_f, db = Σ_rows D_f, dP = D_f·W_fᵀ;
    with g = −sin a·dP: dphase = Σ_i g, dfreq = Σ_i g·2π·x, and dX (unless NULL) = D's
    last n_in columns plus Σ_j g·2π·freq on the embedded columns. dP: n × k scratch."""
    cdef Py_ssize_t f, i, j, k2 = 2 * k, width = F * d + n_in
    cdef double xv, g, gx, c
    cdef const floating* row
    cdef const floating* dp
    if dX != NULL:
        for i in range(n):
            memcpy(dX + i * n_in, D + i * width + F * d, n_in * sizeof(floating))
    for f in range(F * d):
        db[f] = 0
    for i in range(n):
        for f in range(F * d):
            db[f] += D[i * width + f]
    for f in range(F):
        gemm(True, False, k, d, n, 1.0, P + f * n * k2, k2, D + f * d, width, 0.0,
             dW + f * k * d, d)
        gemm(False, True, n, k, d, 1.0, D + f * d, width, W + f * k * d, d, 0.0, dP, k)
        for j in range(k):
            dfreq[f * k + j] = 0
            dphase[f * k + j] = 0
        for i in range(n):
            xv = X[i * n_in + f]
            row = P + (f * n + i) * k2
            dp = dP + i * k
            gx = 0.0
            for j in range(k):
                g = -<double>row[k + j] * dp[j]
                c = 2.0 * M_PI * g
                dphase[f * k + j] += <floating>g
                dfreq[f * k + j] += <floating>(c * xv)
                gx += c * freq[f * k + j]
            if dX != NULL:
                dX[i * n_in + f] += <floating>gx


def periodic_bias_forward_into(const floating[:, ::1] X, const floating[::1] freq,
                               const floating[::1] phase, const floating[::1] W,
                               const floating[::1] b, floating[::1] P_out,
                               floating[:, ::1] A_out, Py_ssize_t F, Py_ssize_t k,
                               Py_ssize_t d):
    """Fills P_out (F·n·2k) and A_out (n, F·d + n_in); the parameters flat."""
    if X.shape[0] == 0:
        return
    with nogil:
        periodic_bias_forward_ptr(&X[0, 0], &freq[0], &phase[0], &W[0], &b[0], &P_out[0],
                                  &A_out[0, 0], X.shape[0], X.shape[1], F, k, d)


def periodic_bias_backward_into(const floating[:, ::1] X, const floating[::1] freq,
                                const floating[::1] W, const floating[::1] P,
                                const floating[:, ::1] dA, floating[:, ::1] dX_out,
                                floating[::1] dfreq_out, floating[::1] dphase_out,
                                floating[::1] dW_out, floating[::1] db_out,
                                floating[::1] dP_work, Py_ssize_t F, Py_ssize_t k,
                                Py_ssize_t d):
    """Fills the gradients and, unless None, dX_out."""
    cdef floating* dx = NULL
    if X.shape[0] == 0:
        dfreq_out[:] = 0
        dphase_out[:] = 0
        dW_out[:] = 0
        db_out[:] = 0
        return
    if dX_out is not None:   # (after the empty batch: no [0, 0] of an empty view)
        dx = &dX_out[0, 0]
    with nogil:
        periodic_bias_backward_ptr(&X[0, 0], &freq[0], &W[0], &P[0], &dA[0, 0], dx,
                                   &dfreq_out[0], &dphase_out[0], &dW_out[0], &db_out[0],
                                   &dP_work[0], X.shape[0], X.shape[1], F, k, d)


def periodic_forward_into(const floating[:, ::1] X, const floating[::1] freq,
                          const floating[::1] W, const floating[::1] b, floating[::1] P_out,
                          floating[:, ::1] Z_out, floating[:, ::1] A_out, Py_ssize_t k,
                          Py_ssize_t d, bint lite, bint relu):
    """Fills P_out (F·n·2k), Z_out and A_out (n, F·d); the arrays flat where shapes vary."""
    with nogil:
        periodic_forward_ptr(&X[0, 0], &freq[0], &W[0], &b[0], &P_out[0], &Z_out[0, 0],
                             &A_out[0, 0], X.shape[0], X.shape[1], k, d, lite, relu)


def periodic_backward_into(const floating[:, ::1] X, const floating[::1] freq,
                           const floating[::1] W, const floating[::1] P,
                           const floating[:, ::1] Z, const floating[:, ::1] A,
                           floating[:, ::1] D_work, floating[:, ::1] dX_out,
                           floating[::1] dfreq_out, floating[::1] dW_out, floating[::1] db_out,
                           floating[::1] dP_work, Py_ssize_t k, Py_ssize_t d, bint lite,
                           bint relu):
    """D_work holds dL/dA on entry (dL/dZ after); fills the gradients and, unless None,
    dX_out."""
    cdef floating* dx = NULL if dX_out is None else &dX_out[0, 0]
    with nogil:
        periodic_backward_ptr(&X[0, 0], &freq[0], &W[0], &P[0], &Z[0, 0], &A[0, 0],
                              &D_work[0, 0], dx, &dfreq_out[0], &dW_out[0], &db_out[0],
                              &dP_work[0], X.shape[0], X.shape[1], k, d, lite, relu)


cdef void ple_forward_ptr(const floating* X, const Py_ssize_t* feat, const floating* coef,
                          floating* A, Py_ssize_t n, Py_ssize_t F, Py_ssize_t m) noexcept nogil:
    """A (n, m) from X (n, F); see the module docstring (NaN stays NaN)."""
    cdef Py_ssize_t i, c
    cdef floating z
    cdef const floating* x
    cdef floating* a
    for i in range(n):
        x = X + i * F
        a = A + i * m
        for c in range(m):
            z = coef[m + c] + coef[c] * x[feat[c]]
            if z < coef[2 * m + c]:
                z = coef[2 * m + c]
            if z > coef[3 * m + c]:
                z = coef[3 * m + c]
            a[c] = z


cdef void ple_backward_ptr(const floating* X, const Py_ssize_t* feat, const floating* coef,
                           const floating* D, floating* dX, Py_ssize_t n, Py_ssize_t F,
                           Py_ssize_t m) noexcept nogil:
    """dX (n, F) from D = dL/dA (n, m); nothing when dX is NULL (no parameters)."""
    cdef Py_ssize_t i, c
    cdef floating z
    cdef const floating* x
    cdef floating* dx
    if dX == NULL:
        return
    for i in range(n):
        x = X + i * F
        dx = dX + i * F
        for c in range(F):
            dx[c] = 0
        for c in range(m):
            z = coef[m + c] + coef[c] * x[feat[c]]
            if coef[2 * m + c] <= z <= coef[3 * m + c]:
                dx[feat[c]] += D[i * m + c] * coef[c]


def ple_forward_into(const floating[:, ::1] X, const Py_ssize_t[::1] feat,
                     const floating[::1] coef, floating[:, ::1] A_out):
    """Fills A_out (n, m); feat (m,) indexes X's columns, coef is (4·m,) (checked by the
    caller)."""
    with nogil:
        ple_forward_ptr(&X[0, 0], &feat[0], &coef[0], &A_out[0, 0], X.shape[0], X.shape[1],
                        A_out.shape[1])


def ple_backward_into(const floating[:, ::1] X, const Py_ssize_t[::1] feat,
                      const floating[::1] coef, const floating[:, ::1] D,
                      floating[:, ::1] dX_out):
    """Fills dX_out (n, F) from D = dL/dA (n, m)."""
    with nogil:
        ple_backward_ptr(&X[0, 0], &feat[0], &coef[0], &D[0, 0], &dX_out[0, 0], X.shape[0],
                         X.shape[1], D.shape[1])


cdef void cat_numeric_forward_ptr(const floating* X, const Py_ssize_t* numeric,
                                  floating* A, Py_ssize_t n, Py_ssize_t F, Py_ssize_t n_num,
                                  Py_ssize_t width) noexcept nogil:
    """A[:, :n_num] := X[:, numeric]."""
    cdef Py_ssize_t i, j
    for i in range(n):
        for j in range(n_num):
            A[i * width + j] = X[i * F + numeric[j]]


cdef inline bint valid_code(double v, Py_ssize_t card) noexcept nogil:
    return v >= 0 and v < card and v == floor(v)


cdef void cat_column_forward_ptr(const floating* X, const floating* table, floating* A,
                                 Py_ssize_t n, Py_ssize_t F, Py_ssize_t col, Py_ssize_t card,
                                 Py_ssize_t dim, Py_ssize_t width,
                                 Py_ssize_t offset) noexcept nogil:
    """A[:, offset:offset+dim] := table[X[:, col]] (NaN for an invalid code)."""
    cdef Py_ssize_t i, u
    cdef double v
    cdef const floating* row
    cdef floating* a
    for i in range(n):
        v = X[i * F + col]
        a = A + i * width + offset
        if valid_code(v, card):
            row = table + <Py_ssize_t>v * dim
            for u in range(dim):
                a[u] = row[u]
        else:
            for u in range(dim):
                a[u] = NAN


cdef void cat_numeric_backward_ptr(const Py_ssize_t* numeric, const floating* D, floating* dX,
                                   Py_ssize_t n, Py_ssize_t F, Py_ssize_t n_num,
                                   Py_ssize_t width) noexcept nogil:
    """dX := 0, then dX[:, numeric] := D[:, :n_num]."""
    cdef Py_ssize_t i, j
    for i in range(n * F):
        dX[i] = 0
    for i in range(n):
        for j in range(n_num):
            dX[i * F + numeric[j]] = D[i * width + j]


cdef void cat_column_backward_ptr(const floating* X, const floating* D, floating* dtable,
                                  Py_ssize_t n, Py_ssize_t F, Py_ssize_t col, Py_ssize_t card,
                                  Py_ssize_t dim, Py_ssize_t width,
                                  Py_ssize_t offset) noexcept nogil:
    """dtable := Σ over rows of D[:, offset:offset+dim] into each row's code."""
    cdef Py_ssize_t i, u
    cdef double v
    cdef floating* g
    cdef const floating* d
    for i in range(card * dim):
        dtable[i] = 0
    for i in range(n):
        v = X[i * F + col]
        if valid_code(v, card):
            g = dtable + <Py_ssize_t>v * dim
            d = D + i * width + offset
            for u in range(dim):
                g[u] += d[u]


def categorical_forward_into(const floating[:, ::1] X, const Py_ssize_t[::1] layout,
                             list tables, floating[:, ::1] A_out):
    """Fills A_out (n, width). layout: the numeric columns, then (col, card, dim) per
    coded column; tables: their (card, dim) arrays (all checked by the caller)."""
    cdef Py_ssize_t n = X.shape[0], F = X.shape[1], width = A_out.shape[1]
    cdef Py_ssize_t C = len(tables), n_num = F - C, j, offset
    cdef floating[:, ::1] t
    with nogil:
        cat_numeric_forward_ptr(&X[0, 0], &layout[0] if n_num else NULL, &A_out[0, 0], n, F,
                                n_num, width)
    offset = n_num
    for j in range(C):
        t = tables[j]
        with nogil:
            cat_column_forward_ptr(&X[0, 0], &t[0, 0], &A_out[0, 0], n, F,
                                   layout[n_num + 3 * j], layout[n_num + 3 * j + 1],
                                   layout[n_num + 3 * j + 2], width, offset)
        offset += layout[n_num + 3 * j + 2]


def categorical_backward_into(const floating[:, ::1] X, const Py_ssize_t[::1] layout,
                              const floating[:, ::1] D, list dtables_out,
                              floating[:, ::1] dX_out):
    """Fills the tables' gradients (list of (card, dim) arrays) and dX_out (n, F)."""
    cdef Py_ssize_t n = X.shape[0], F = X.shape[1], width = D.shape[1]
    cdef Py_ssize_t C = len(dtables_out), n_num = F - C, j, offset
    cdef floating[:, ::1] g
    with nogil:
        cat_numeric_backward_ptr(&layout[0] if n_num else NULL, &D[0, 0], &dX_out[0, 0], n, F,
                                 n_num, width)
    offset = n_num
    for j in range(C):
        g = dtables_out[j]
        with nogil:
            cat_column_backward_ptr(&X[0, 0], &D[0, 0], &g[0, 0], n, F,
                                    layout[n_num + 3 * j], layout[n_num + 3 * j + 1],
                                    layout[n_num + 3 * j + 2], width, offset)
        offset += layout[n_num + 3 * j + 2]
