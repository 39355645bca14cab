"""Normalisation kernels: LayerNorm over each row (``torch.nn.LayerNorm`` over the
last axis).

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
                                 floating* rstd, Py_ssize_t n, Py_ssize_t k,
                                 double eps) noexcept nogil:
    """Xhat := (X − μ)·r, A := γ·Xhat + β (gamma NULL: A := Xhat), rstd := r, per row."""
    cdef Py_ssize_t i, j
    cdef double mean, var, r, d
    cdef const floating* x
    cdef floating* xh
    cdef floating* a
    for i in range(n):
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
            for j in range(k):
                a[j] = gamma[j] * xh[j] + beta[j]
        elif a != xh:
            memcpy(a, xh, k * sizeof(floating))


cdef void layer_norm_backward_ptr(const floating* Xhat, const floating* rstd,
                                  const floating* gamma, const floating* dA, floating* dX,
                                  floating* dgamma, floating* dbeta, Py_ssize_t n,
                                  Py_ssize_t k) noexcept nogil:
    """dX (unless NULL), and dgamma, dbeta (unless gamma is NULL), from dA."""
    cdef Py_ssize_t i, j
    cdef double sg, sgx, mg, mgx, r, g
    cdef const floating* xh
    cdef const floating* da
    cdef floating* dx
    if gamma != NULL:
        for j in range(k):
            dgamma[j] = 0
            dbeta[j] = 0
    for i in range(n):
        xh = Xhat + i * k
        da = dA + i * k
        if gamma != NULL:
            for j in range(k):
                dgamma[j] += da[j] * xh[j]
                dbeta[j] += da[j]
        if dX == NULL:
            continue
        sg = 0.0
        sgx = 0.0
        for j in range(k):
            g = da[j] * gamma[j] if gamma != NULL else da[j]
            sg += g
            sgx += g * xh[j]
        mg = sg / k
        mgx = sgx / k
        r = rstd[i]
        dx = dX + i * k
        for j in range(k):
            g = da[j] * gamma[j] if gamma != NULL else da[j]
            dx[j] = <floating>(r * (g - mg - xh[j] * mgx))


def layer_norm_forward_into(const floating[:, ::1] X, const floating[::1] gamma,
                            const floating[::1] beta, floating[:, ::1] Xhat_out,
                            floating[:, ::1] A_out, floating[::1] rstd_out, double eps):
    """Fills Xhat_out, A_out and rstd_out (gamma and beta both None: no affine map)."""
    cdef const floating* g = NULL if gamma is None else &gamma[0]
    cdef const floating* b = NULL if beta is None else &beta[0]
    with nogil:
        layer_norm_forward_ptr(&X[0, 0], g, b, &Xhat_out[0, 0], &A_out[0, 0], &rstd_out[0],
                               X.shape[0], X.shape[1], eps)


def layer_norm_backward_into(const floating[:, ::1] Xhat, const floating[::1] rstd,
                             const floating[::1] gamma, const floating[:, ::1] dA,
                             floating[:, ::1] dX_out, floating[::1] dgamma_out,
                             floating[::1] dbeta_out):
    """Fills dX_out (unless None), and dgamma_out, dbeta_out (unless gamma is None)."""
    cdef const floating* g = NULL if gamma is None else &gamma[0]
    cdef floating* dx = NULL if dX_out is None else &dX_out[0, 0]
    cdef floating* dg = NULL if dgamma_out is None else &dgamma_out[0]
    cdef floating* db = NULL if dbeta_out is None else &dbeta_out[0]
    with nogil:
        layer_norm_backward_ptr(&Xhat[0, 0], &rstd[0], g, &dA[0, 0], dx, dg, db,
                                Xhat.shape[0], Xhat.shape[1])
