"""Derivatives of a network's raw output with respect to its input, by forward mode.

Design: one pass over the layers carries, with each sample's activations A, their
derivatives with respect to every input x_j (the tangents T, one row per (sample,
j)) and, for second derivatives, either each d²A/dx_j² (H, hessian_diagonal) or
their sum over j (L, laplacian: the "forward Laplacian"). Through a Dense layer
Z = A·W + b the tangents are linear: T_Z = T_A·W and H_Z = H_A·W (one GEMM each
over all (sample, j) rows, no bias); through its activation A' = f(Z), element-wise,
T_A' = f'(Z)·T_Z and H_A' = f''(Z)·T_Z² + f'(Z)·H_Z (L sums T_Z² over j first).
The first layer's input tangents are the unit vectors, so its T_Z is W's rows
(copied, no GEMM) and its H_Z is 0. f' and f'' are closed forms of Z and of A as
the forward kernel computed it (``act_derivatives``); softmax, which is not
element-wise, is refused by the caller.

Shapes: X (n, n_in); per layer W (k_in, k_out), b (k_out); Y (n, n_out); T and H
(n·n_in, k) row (i·n_in + j) for sample i, input j; L (n, k). The caller allocates
every buffer (``derivatives_into``).

The gradient of one output (or of the outputs' sum) is cheaper by reverse mode: one
backward pass from a seed (``input_gradient_into``), the engine's backward without
the parameter gradients.
"""
from cython cimport floating
from libc.math cimport exp
from libc.string cimport memcpy, memset

from fastbp._kernels._blas cimport gemm
from fastbp._kernels._math cimport (
    ACT_IDENTITY, ACT_SIGMOID, ACT_TANH, ACT_RELU, ACT_LEAKY_RELU, ACT_ELU, ACT_SOFTPLUS,
    ACT_GELU, ACT_SILU, ACT_SELU, ACT_MISH, LEAKY_SLOPE, ELU_ALPHA, SOFTPLUS_THRESHOLD,
    INV_SQRT_2PI, SELU_ALPHA, SELU_SCALE, sigmoid, softplus, gelu_grad, silu_grad,
)
from libc.math cimport tanh
from fastbp._kernels.activations cimport bias_activation_forward_ptr, activation_backward_ptr

#: what derivatives_into computes besides the value (its ``mode``)
MODE_JACOBIAN = 1        # T: every first derivative
MODE_HESSIAN_DIAG = 2    # T and H: every d²y/dx_j²
MODE_LAPLACIAN = 3       # T and L: Σ_j d²y/dx_j²
cdef enum:
    _JAC = 1
    _HESS = 2
    _LAP = 3


cdef void act_derivatives(int act, const floating* Z, const floating* A, floating* d1,
                          floating* d2, Py_ssize_t size) noexcept nogil:
    """d1 := f'(Z), d2 := f''(Z) element-wise (d2 may be NULL); evaluated in double.
    The activations whose derivatives are polynomials of A get a loop each (they
    vectorise); the rest share one."""
    cdef Py_ssize_t i
    cdef double z, a, s, g
    if act == ACT_TANH:
        for i in range(size):
            a = A[i]
            g = 1.0 - a * a
            d1[i] = <floating>g
            if d2 != NULL:
                d2[i] = <floating>(-2.0 * a * g)
        return
    if act == ACT_SIGMOID:
        for i in range(size):
            a = A[i]
            g = a * (1.0 - a)
            d1[i] = <floating>g
            if d2 != NULL:
                d2[i] = <floating>(g * (1.0 - 2.0 * a))
        return
    for i in range(size):
        z = Z[i]
        a = A[i]
        if act == ACT_IDENTITY:
            g, s = 1.0, 0.0
        elif act == ACT_RELU:
            g, s = (1.0 if z > 0 else 0.0), 0.0
        elif act == ACT_LEAKY_RELU:
            g, s = (1.0 if z > 0 else LEAKY_SLOPE), 0.0
        elif act == ACT_ELU:
            if z > 0:
                g, s = 1.0, 0.0
            else:
                g = ELU_ALPHA * exp(z)
                s = g
        elif act == ACT_SOFTPLUS:
            if z > SOFTPLUS_THRESHOLD:
                g, s = 1.0, 0.0
            else:
                g = sigmoid(z)
                s = g * (1.0 - g)
        elif act == ACT_GELU:
            g = gelu_grad(z)
            s = INV_SQRT_2PI * exp(-0.5 * z * z) * (2.0 - z * z)
        elif act == ACT_SELU:
            if z > 0:
                g, s = SELU_SCALE, 0.0
            else:
                g = SELU_SCALE * SELU_ALPHA * exp(z)
                s = g
        elif act == ACT_MISH:   # t = tanh(softplus(z)), t' = (1 - t²)·σ(z)
            a = tanh(softplus(z))
            s = sigmoid(z)
            g = a + z * (1.0 - a * a) * s
            s = (1.0 - a * a) * s * (2.0 + z * ((1.0 - s) - 2.0 * a * s))
        else:   # ACT_SILU
            g = silu_grad(z)
            a = sigmoid(z)
            s = a * (1.0 - a) * (2.0 + z * (1.0 - 2.0 * a))
        d1[i] = <floating>g
        if d2 != NULL:
            d2[i] = <floating>s


cdef void derivative_pass(int n_layers, floating** W, floating** b, const int* acts,
                          const Py_ssize_t* widths, const floating* X, Py_ssize_t n, int mode,
                          floating* Z, floating* A, floating* D1, floating* D2,
                          floating* T, floating* TZ, floating* S, floating* SZ,
                          floating* Y, floating* T_out, floating* S_out) noexcept nogil:
    """The value and the requested derivatives, layer by layer (see the module docstring).

    widths: n_layers + 1 entries (n_in first). Z, A, D1, D2: (n, kmax) scratch; T, TZ:
    (n·n_in, kmax); S, SZ: H's (n·n_in, kmax) or L's (n, kmax) scratch; the outputs
    Y (n, n_out), T_out (n·n_in, n_out), S_out (H: n·n_in × n_out, L: n × n_out)."""
    cdef Py_ssize_t n_in = widths[0], rows = n * n_in, i, j, c, k_in, k, r
    cdef int l
    cdef const floating* inp = X
    cdef floating* dst_A
    cdef floating* dst_T
    cdef floating* dst_S
    cdef floating t
    cdef floating* d1
    cdef floating* d2
    cdef floating* acc_row
    cdef floating* tz
    cdef floating* t_row
    cdef floating* sz
    cdef floating* s_row
    cdef bint last
    for l in range(n_layers):
        k_in = widths[l]
        k = widths[l + 1]
        last = l == n_layers - 1
        dst_A = Y if last else A
        dst_T = T_out if last else T
        dst_S = S_out if last else S
        # the value: Z = inp·W + b, its activation (the forward kernel's bits)
        gemm(False, False, n, k, k_in, 1.0, inp, k_in, W[l], k, 0.0, Z, k)
        bias_activation_forward_ptr(acts[l], Z, b[l], dst_A, n, k)
        # the tangents through the linear part: TZ = T·W (the first layer: W's rows)
        if l == 0:
            for i in range(n):
                memcpy(&TZ[i * n_in * k], W[0], n_in * k * sizeof(floating))
        else:
            gemm(False, False, rows, k, k_in, 1.0, T, k_in, W[l], k, 0.0, TZ, k)
        # the second derivatives through the linear part (the first layer's are 0: no SZ)
        if mode == _HESS and l > 0:
            gemm(False, False, rows, k, k_in, 1.0, S, k_in, W[l], k, 0.0, SZ, k)
        elif mode == _LAP and l > 0:
            gemm(False, False, n, k, k_in, 1.0, S, k_in, W[l], k, 0.0, SZ, k)
        # through the activation
        act_derivatives(acts[l], Z, dst_A, D1, D2 if mode != _JAC else NULL, n * k)
        for i in range(n):
            d1 = &D1[i * k]
            d2 = &D2[i * k]
            if mode == _LAP:
                # L sums T_Z² over the inputs j (in order) in its own output row
                acc_row = &dst_S[i * k]
                memset(acc_row, 0, k * sizeof(floating))
            for j in range(n_in):
                r = (i * n_in + j) * k
                tz = &TZ[r]
                t_row = &dst_T[r]
                if mode == _HESS:
                    s_row = &dst_S[r]
                    if l == 0:
                        for c in range(k):
                            t = tz[c]
                            t_row[c] = d1[c] * t
                            s_row[c] = d2[c] * t * t
                    else:
                        sz = &SZ[r]
                        for c in range(k):
                            t = tz[c]
                            t_row[c] = d1[c] * t
                            s_row[c] = d2[c] * t * t + d1[c] * sz[c]
                else:
                    for c in range(k):
                        t_row[c] = d1[c] * tz[c]
                    if mode == _LAP:
                        for c in range(k):
                            acc_row[c] = acc_row[c] + tz[c] * tz[c]
            if mode == _LAP and l == 0:
                for c in range(k):
                    acc_row[c] = d2[c] * acc_row[c]
            elif mode == _LAP:
                sz = &SZ[i * k]
                for c in range(k):
                    acc_row[c] = d2[c] * acc_row[c] + d1[c] * sz[c]
        inp = dst_A


def derivatives_into(list Ws, list bs, list acts, floating[:, ::1] X, int mode,
                     floating[:, ::1] Y, floating[:, ::1] T_out, S_out, floating[:, ::1] Z,
                     floating[:, ::1] A, floating[:, ::1] D1, floating[:, ::1] D2,
                     floating[:, ::1] T, floating[:, ::1] TZ, S, SZ):
    """The value Y and the derivatives of ``mode`` (MODE_*) of a Dense stack, into the
    caller's buffers (shapes in derivative_pass's docstring; S_out, S and SZ are None
    for MODE_JACOBIAN). The caller checks every shape (fastbp.models)."""
    cdef int n_layers = len(Ws), l
    cdef floating* Wp[64]
    cdef floating* bp[64]
    cdef int ap[64]
    cdef Py_ssize_t widths[65]
    cdef floating[:, ::1] w, so, s, sz
    cdef floating[::1] bb
    cdef floating* so_p = NULL
    cdef floating* s_p = NULL
    cdef floating* sz_p = NULL
    if n_layers < 1 or n_layers > 64:
        raise ValueError("derivatives_into takes 1 to 64 layers")
    if mode not in (_JAC, _HESS, _LAP):
        raise ValueError(f"unknown mode {mode}")
    widths[0] = X.shape[1]
    for l in range(n_layers):
        w = Ws[l]
        bb = bs[l]
        Wp[l] = &w[0, 0]
        bp[l] = &bb[0]
        ap[l] = acts[l]
        widths[l + 1] = w.shape[1]
    if mode != _JAC:
        so = S_out
        s = S
        sz = SZ
        so_p, s_p, sz_p = &so[0, 0], &s[0, 0], &sz[0, 0]
    with nogil:
        derivative_pass(n_layers, Wp, bp, ap, widths, &X[0, 0], X.shape[0], mode, &Z[0, 0],
                        &A[0, 0], &D1[0, 0], &D2[0, 0], &T[0, 0], &TZ[0, 0], s_p, sz_p,
                        &Y[0, 0], &T_out[0, 0], so_p)


cdef void gradient_pass(int n_layers, floating** W, floating** b, const int* acts,
                        const Py_ssize_t* widths, const floating* X, Py_ssize_t n,
                        floating** Z, floating** A, floating** D, const floating* seed,
                        floating* G) noexcept nogil:
    """G := d(Σ_k seed_k·y_k)/dX (n, n_in), by reverse mode: the forward pass keeping every
    layer's Z and A, then from the last layer down dZ = f'(Z)·dA and dA_below = dZ·Wᵀ."""
    cdef int l
    cdef Py_ssize_t k, k_in
    cdef const floating* inp = X
    for l in range(n_layers):
        k_in, k = widths[l], widths[l + 1]
        gemm(False, False, n, k, k_in, 1.0, inp, k_in, W[l], k, 0.0, Z[l], k)
        bias_activation_forward_ptr(acts[l], Z[l], b[l], A[l], n, k)
        inp = A[l]
    memcpy(D[n_layers - 1], seed, n * widths[n_layers] * sizeof(floating))
    for l in range(n_layers - 1, -1, -1):
        k_in, k = widths[l], widths[l + 1]
        activation_backward_ptr(acts[l], Z[l], A[l], D[l], D[l], n, k)
        gemm(False, True, n, k_in, k, 1.0, D[l], k, W[l], k, 0.0,
             G if l == 0 else D[l - 1], k_in)


def input_gradient_into(list Ws, list bs, list acts, floating[:, ::1] X,
                        floating[:, ::1] seed, floating[:, ::1] G, list Zs, list As,
                        list Ds):
    """G := d(Σ_k seed[:, k]·y_k)/dX of a Dense stack (gradient_pass), with the caller's
    per-layer buffers Zs, As, Ds ((n, k_l) each; As[l] may be Zs[l] only where the
    activation's derivative reads A alone). The caller checks every shape."""
    cdef int n_layers = len(Ws), l
    cdef floating* Wp[64]
    cdef floating* bp[64]
    cdef floating* zp[64]
    cdef floating* ap[64]
    cdef floating* dp[64]
    cdef int cp[64]
    cdef Py_ssize_t widths[65]
    cdef floating[:, ::1] w, z, a, d
    cdef floating[::1] bb
    if n_layers < 1 or n_layers > 64:
        raise ValueError("input_gradient_into takes 1 to 64 layers")
    widths[0] = X.shape[1]
    for l in range(n_layers):
        w, bb, z, a, d = Ws[l], bs[l], Zs[l], As[l], Ds[l]
        Wp[l], bp[l], zp[l], ap[l], dp[l] = &w[0, 0], &bb[0], &z[0, 0], &a[0, 0], &d[0, 0]
        cp[l] = acts[l]
        widths[l + 1] = w.shape[1]
    with nogil:
        gradient_pass(n_layers, Wp, bp, cp, widths, &X[0, 0], X.shape[0], zp, ap, dp,
                      &seed[0, 0], &G[0, 0])
