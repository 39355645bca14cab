"""Normalisation kernels: LayerNorm over each row (``torch.nn.LayerNorm`` over the
last axis), or over each of a row's ``groups`` blocks of k/groups columns (tabm's
``LayerNormEnsemble``: k members side by side, each normalised on its own; γ and β stay
per column). A block is normalised as a row of its width; rstd holds one value per
(row, block), row-major.

Forward, per row x of width k: μ = Σx/k, σ² = Σ(x − μ)²/k (biased, two passes,
accumulated in double for both dtypes), r = 1/√(σ² + eps), x̂ = (x − μ)·r and
a = γ·x̂ + β (a = x̂ without γ and β). The statistics and the normalisation run over
the row while it is in cache; x̂ and r are kept for the backward.

Backward, per row, with g = γ·da (g = da without γ):
dx = r·(g − mean(g) − x̂·mean(g·x̂)); and over the rows dγ = Σ da·x̂, dβ = Σ da,
accumulated in the same pass over the row (they are overwritten, not added to).

Arrays are C-contiguous (n×k), rstd (n,); n, k > 0 (the Python boundary handles
empty batches). ``A`` may be ``Xhat`` (inference writes the output over x̂).
"""
from cython cimport floating
from libc.math cimport sqrt
from libc.string cimport memcpy


cdef void layer_norm_forward_ptr(const floating* X, const floating* gamma,
                                 const floating* beta, floating* Xhat, floating* A,
                                 floating* rstd, Py_ssize_t n, Py_ssize_t width,
                                 Py_ssize_t groups, double eps) noexcept nogil:
    """Xhat := (X − μ)·r, A := γ·Xhat + β (gamma NULL: A := Xhat), rstd := r, per row
    block of k = width/groups columns (γ and β indexed by the row's column)."""
    cdef Py_ssize_t i, j, k = width // groups
    cdef double mean, var, r, d
    cdef const floating* x
    cdef floating* xh
    cdef floating* a
    cdef const floating* gm
    cdef const floating* bt
    for i in range(n * groups):   # block i: row i // groups, columns from (i % groups)·k
        x = X + i * k
        xh = Xhat + i * k
        a = A + i * k
        mean = 0.0
        for j in range(k):
            mean += x[j]
        mean /= k
        var = 0.0
        for j in range(k):
            d = x[j] - mean
            var += d * d
        r = 1.0 / sqrt(var / k + eps)
        rstd[i] = <floating>r
        for j in range(k):
            xh[j] = <floating>((x[j] - mean) * r)
        if gamma != NULL:
            gm = gamma + (i % groups) * k
            bt = beta + (i % groups) * k
            for j in range(k):
                a[j] = gm[j] * xh[j] + bt[j]
        elif a != xh:
            memcpy(a, xh, k * sizeof(floating))


cdef void layer_norm_backward_ptr(const floating* Xhat, const floating* rstd,
                                  const floating* gamma, const floating* dA, floating* dX,
                                  floating* dgamma, floating* dbeta, Py_ssize_t n,
                                  Py_ssize_t width, Py_ssize_t groups) noexcept nogil:
    """dX (unless NULL), and dgamma, dbeta (unless gamma is NULL), from dA; per row
    block of k = width/groups columns, as the forward."""
    cdef Py_ssize_t i, j, k = width // groups
    cdef double sg, sgx, mg, mgx, r, g
    cdef const floating* xh
    cdef const floating* da
    cdef floating* dx
    cdef const floating* gm = NULL
    if gamma != NULL:
        for j in range(width):
            dgamma[j] = 0
            dbeta[j] = 0
    for i in range(n * groups):
        xh = Xhat + i * k
        da = dA + i * k
        if gamma != NULL:
            gm = gamma + (i % groups) * k
            for j in range(k):
                dgamma[(i % groups) * k + j] += da[j] * xh[j]
                dbeta[(i % groups) * k + j] += da[j]
        if dX == NULL:
            continue
        sg = 0.0
        sgx = 0.0
        for j in range(k):
            g = da[j] * gm[j] if gamma != NULL else da[j]
            sg += g
            sgx += g * xh[j]
        mg = sg / k
        mgx = sgx / k
        r = rstd[i]
        dx = dX + i * k
        for j in range(k):
            g = da[j] * gm[j] if gamma != NULL else da[j]
            dx[j] = <floating>(r * (g - mg - xh[j] * mgx))


cdef _check_groups(Py_ssize_t n, Py_ssize_t width, Py_ssize_t groups, Py_ssize_t n_rstd):
    """The kernels index rstd by (row, block): refuse what would overrun it."""
    if groups < 1 or width % groups or n_rstd != n * groups:
        raise ValueError(f"groups ({groups}) must divide the width ({width}), with one rstd "
                         f"per row and group ({n * groups}), got {n_rstd}")


def layer_norm_forward_into(const floating[:, ::1] X, const floating[::1] gamma,
                            const floating[::1] beta, floating[:, ::1] Xhat_out,
                            floating[:, ::1] A_out, floating[::1] rstd_out, double eps,
                            Py_ssize_t groups=1):
    """Fills Xhat_out, A_out and rstd_out (gamma and beta both None: no affine map);
    groups blocks a row (groups divides the width; rstd_out holds n·groups)."""
    cdef const floating* g = NULL if gamma is None else &gamma[0]
    cdef const floating* b = NULL if beta is None else &beta[0]
    _check_groups(X.shape[0], X.shape[1], groups, rstd_out.shape[0])
    with nogil:
        layer_norm_forward_ptr(&X[0, 0], g, b, &Xhat_out[0, 0], &A_out[0, 0], &rstd_out[0],
                               X.shape[0], X.shape[1], groups, eps)


def layer_norm_backward_into(const floating[:, ::1] Xhat, const floating[::1] rstd,
                             const floating[::1] gamma, const floating[:, ::1] dA,
                             floating[:, ::1] dX_out, floating[::1] dgamma_out,
                             floating[::1] dbeta_out, Py_ssize_t groups=1):
    """Fills dX_out (unless None), and dgamma_out, dbeta_out (unless gamma is None)."""
    cdef const floating* g = NULL if gamma is None else &gamma[0]
    cdef floating* dx = NULL if dX_out is None else &dX_out[0, 0]
    cdef floating* dg = NULL if dgamma_out is None else &dgamma_out[0]
    cdef floating* db = NULL if dbeta_out is None else &dbeta_out[0]
    _check_groups(Xhat.shape[0], Xhat.shape[1], groups, rstd.shape[0])
    with nogil:
        layer_norm_backward_ptr(&Xhat[0, 0], &rstd[0], g, &dA[0, 0], dx, dg, db,
                                Xhat.shape[0], Xhat.shape[1], groups)


# ---------------------------------------------------------------- batch normalisation
#
# BatchNorm (``torch.nn.BatchNorm1d``) normalises each feature (column) over the batch.
# Training, per column j over the n rows: μ, σ² (biased), r = 1/√(σ² + eps), x̂, a as
# LayerNorm's, and the running statistics move towards the batch's:
# m ← momentum·μ + (1 − momentum)·m, v ← momentum·σ²·n/(n − 1) + (1 − momentum)·v
# (the unbiased variance; not updated for n = 1, which the Python boundary refuses).
# Inference: a = γ·(x − m)·(1/√(v + eps)) + β. Backward (training):
# dx = γ·r/n·(n·da − Σ da − x̂·Σ da·x̂) per column, dγ = Σ da·x̂, dβ = Σ da.
# ``stats`` is a double workspace of 4k: μ, r, Σ da, Σ da·x̂ (the column sums are
# accumulated row by row, the inner loop over the contiguous columns).


cdef void batch_norm_train_forward_ptr(const floating* X, const floating* gamma,
                                       const floating* beta, floating* Xhat, floating* A,
                                       double* stats, floating* run_mean, floating* run_var,
                                       Py_ssize_t n, Py_ssize_t k, double eps,
                                       double momentum) noexcept nogil:
    """Xhat, A from the batch's statistics (stats[0:k] μ, stats[k:2k] r); the running
    statistics updated unless run_mean is NULL."""
    cdef Py_ssize_t i, j
    cdef double d
    cdef double* mean = stats
    cdef double* r = stats + k
    cdef const floating* x
    cdef floating* xh
    cdef floating* a
    for j in range(k):
        mean[j] = 0.0
        r[j] = 0.0
    for i in range(n):
        x = X + i * k
        for j in range(k):
            mean[j] += x[j]
    for j in range(k):
        mean[j] /= n
    for i in range(n):
        x = X + i * k
        for j in range(k):
            d = x[j] - mean[j]
            r[j] += d * d
    if run_mean != NULL and n > 1:
        for j in range(k):
            run_mean[j] = <floating>(momentum * mean[j] + (1.0 - momentum) * run_mean[j])
            run_var[j] = <floating>(momentum * (r[j] / (n - 1)) + (1.0 - momentum) * run_var[j])
    for j in range(k):
        r[j] = 1.0 / sqrt(r[j] / n + eps)
    for i in range(n):
        x = X + i * k
        xh = Xhat + i * k
        a = A + i * k
        for j in range(k):
            xh[j] = <floating>((x[j] - mean[j]) * r[j])
        if gamma != NULL:
            for j in range(k):
                a[j] = gamma[j] * xh[j] + beta[j]
        elif a != xh:
            memcpy(a, xh, k * sizeof(floating))


cdef void batch_norm_eval_forward_ptr(const floating* X, const floating* gamma,
                                      const floating* beta, const floating* run_mean,
                                      const floating* run_var, floating* A, Py_ssize_t n,
                                      Py_ssize_t k, double eps) noexcept nogil:
    """A := γ·(X − m)/√(v + eps) + β with the running statistics (A may be X's copy)."""
    cdef Py_ssize_t i, j
    cdef const floating* x
    cdef floating* a
    cdef floating xh
    for i in range(n):
        x = X + i * k
        a = A + i * k
        for j in range(k):
            xh = <floating>((x[j] - <double>run_mean[j]) / sqrt(<double>run_var[j] + eps))
            a[j] = gamma[j] * xh + beta[j] if gamma != NULL else xh


cdef void batch_norm_backward_ptr(const floating* Xhat, double* stats, const floating* gamma,
                                  const floating* dA, floating* dX, floating* dgamma,
                                  floating* dbeta, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """dX (unless NULL), dgamma and dbeta (unless gamma is NULL) of a training forward
    whose r is stats[k:2k]; stats[2k:4k] take Σ da and Σ da·x̂."""
    cdef Py_ssize_t i, j
    cdef double* r = stats + k
    cdef double* s = stats + 2 * k
    cdef double* sx = stats + 3 * k
    cdef double c
    cdef const floating* xh
    cdef const floating* da
    cdef floating* dx
    for j in range(k):
        s[j] = 0.0
        sx[j] = 0.0
    for i in range(n):
        xh = Xhat + i * k
        da = dA + i * k
        for j in range(k):
            s[j] += da[j]
            sx[j] += da[j] * xh[j]
    if gamma != NULL:
        for j in range(k):
            dbeta[j] = <floating>s[j]
            dgamma[j] = <floating>sx[j]
    if dX == NULL:
        return
    for i in range(n):
        xh = Xhat + i * k
        da = dA + i * k
        dx = dX + i * k
        for j in range(k):
            c = r[j] / n * (gamma[j] if gamma != NULL else 1.0)
            dx[j] = <floating>(c * (n * <double>da[j] - s[j] - xh[j] * sx[j]))


cdef void batch_norm_eval_backward_ptr(const floating* gamma, const floating* run_var,
                                       const floating* dA, floating* dX, Py_ssize_t n,
                                       Py_ssize_t k, double eps) noexcept nogil:
    """dX of an inference-mode forward (a fixed affine map): γ/√(v + eps)·dA."""
    cdef Py_ssize_t i, j
    for i in range(n):
        for j in range(k):
            dX[i * k + j] = <floating>(dA[i * k + j] * (gamma[j] if gamma != NULL else 1.0)
                                       / sqrt(<double>run_var[j] + eps))


def batch_norm_forward_into(const floating[:, ::1] X, const floating[::1] gamma,
                            const floating[::1] beta, floating[::1] running_mean,
                            floating[::1] running_var, floating[:, ::1] Xhat_out,
                            floating[:, ::1] A_out, double[::1] stats_out, double eps,
                            double momentum, bint training, bint update):
    """Training (batch statistics into stats_out; the running ones updated if
    ``update``) or inference (the running statistics; Xhat_out unused)."""
    cdef const floating* g = NULL if gamma is None else &gamma[0]
    cdef const floating* b = NULL if beta is None else &beta[0]
    with nogil:
        if training:
            batch_norm_train_forward_ptr(&X[0, 0], g, b, &Xhat_out[0, 0], &A_out[0, 0],
                                         &stats_out[0], &running_mean[0] if update else NULL,
                                         &running_var[0], X.shape[0], X.shape[1], eps,
                                         momentum)
        else:
            batch_norm_eval_forward_ptr(&X[0, 0], g, b, &running_mean[0], &running_var[0],
                                        &A_out[0, 0], X.shape[0], X.shape[1], eps)


def batch_norm_backward_into(const floating[:, ::1] Xhat, double[::1] stats,
                             const floating[::1] gamma, const floating[:, ::1] dA,
                             floating[:, ::1] dX_out, floating[::1] dgamma_out,
                             floating[::1] dbeta_out):
    """The training backward: fills dX_out (unless None), dgamma_out, dbeta_out (unless
    gamma is None); stats: the forward's stats_out (its last 2k entries are scratch)."""
    cdef const floating* g = NULL if gamma is None else &gamma[0]
    cdef floating* dx = NULL if dX_out is None else &dX_out[0, 0]
    cdef floating* dg = NULL if dgamma_out is None else &dgamma_out[0]
    cdef floating* db = NULL if dbeta_out is None else &dbeta_out[0]
    with nogil:
        batch_norm_backward_ptr(&Xhat[0, 0], &stats[0], g, &dA[0, 0], dx, dg, db,
                                Xhat.shape[0], Xhat.shape[1])


def batch_norm_eval_backward_into(const floating[::1] running_var, const floating[::1] gamma,
                                  const floating[:, ::1] dA, floating[:, ::1] dX_out,
                                  double eps):
    """The inference-mode backward: dX_out := γ/√(v + eps)·dA."""
    cdef const floating* g = NULL if gamma is None else &gamma[0]
    with nogil:
        batch_norm_eval_backward_ptr(g, &running_var[0], &dA[0, 0], &dX_out[0, 0],
                                     dA.shape[0], dA.shape[1], eps)
