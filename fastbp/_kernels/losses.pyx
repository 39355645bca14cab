"""Loss kernels: the mean loss and its gradient with respect to the raw output.

Design: one pass computes both the loss (accumulated in double for both
dtypes) and ``d_out``. Losses take the raw output of the last layer; the
cross entropies work on logits with log-sum-exp shifted by the row maximum,
so logits of magnitude 1e4 stay finite. ``mse``/``mae``/``huber``/binary
cross-entropy average over all n·k elements, cross-entropy over the n samples.
Cross-entropy takes either int labels (``labels``, with ``target`` NULL) or
class probabilities (``target``, with ``labels`` NULL).
"""
from cython cimport floating
from libc.math cimport log, fabs, isfinite, exp

from fastbp._kernels._math cimport (
    LOSS_MSE, LOSS_MAE, LOSS_HUBER, LOSS_BCE, LOSS_CE, LOSS_POISSON, HUBER_DELTA, sigmoid,
    bce_logits_terms_f32, bce_logits_terms_f64, exp_rows, EXP_BLOCK,
)

cdef enum:
    BCE_BLOCK = 256   # elements per block of bce_logits (its terms stay on the stack)


cdef double mse(const floating* o, const floating* t, floating* d, Py_ssize_t size) noexcept nogil:
    """L = mean((o-t)²), dL/do = (2/N)·(o-t)."""
    cdef Py_ssize_t i
    cdef double s = 0.0, c = 0.0
    cdef floating scale = <floating>(2.0 / size)
    cdef floating rf
    for i in range(size):
        rf = o[i] - t[i]
        add(&s, &c, <double>rf * rf)
        d[i] = scale * rf
    return s / size


cdef double mae(const floating* o, const floating* t, floating* d, Py_ssize_t size) noexcept nogil:
    """L = mean(|o-t|), dL/do = sign(o-t)/N (0 where o = t)."""
    cdef Py_ssize_t i
    cdef double s = 0.0, c = 0.0
    cdef floating scale = <floating>(1.0 / size)
    cdef floating r
    for i in range(size):
        r = o[i] - t[i]
        if r > 0:
            add(&s, &c, r)
            d[i] = scale
        elif r < 0:
            add(&s, &c, -r)
            d[i] = -scale
        else:
            add(&s, &c, fabs(r))  # keeps a NaN residual in the loss
            d[i] = r * scale      # 0, or NaN for a NaN residual
    return s / size


cdef double huber(const floating* o, const floating* t, floating* d, Py_ssize_t size) noexcept nogil:
    """delta δ (HUBER_DELTA, 1): L = mean(r²/2 if |r| < δ else δ·(|r| - δ/2)),
    dL/do = clip(r, -δ, δ)/N."""
    cdef Py_ssize_t i
    cdef double s = 0.0, c = 0.0
    cdef floating scale = <floating>(1.0 / size)
    cdef floating edge = <floating>(HUBER_DELTA * scale)
    cdef floating r, a
    for i in range(size):
        r = o[i] - t[i]
        a = fabs(r)
        if a >= HUBER_DELTA:
            add(&s, &c, HUBER_DELTA * (<double>a - 0.5 * HUBER_DELTA))
            d[i] = edge if r > 0 else -edge
        else:   # also a NaN residual, which then propagates
            add(&s, &c, 0.5 * <double>r * r)
            d[i] = r * scale
    return s / size


cdef double bce_logits(const floating* o, const floating* t, floating* d, Py_ssize_t size) noexcept nogil:
    """L = mean((1-y)·x - log σ(x)), dL/dx = (σ(x) - y)/N.

    The terms and gradients a block at a time in a vectorised loop (_vmath_body.h),
    the terms then added in order (the compensated sum of the other losses)."""
    cdef Py_ssize_t i0 = 0, i, m
    cdef double s = 0.0, c = 0.0
    cdef double scale = 1.0 / size
    cdef double terms[BCE_BLOCK]
    while i0 < size:
        m = BCE_BLOCK if size - i0 > BCE_BLOCK else size - i0
        if floating is float:
            bce_logits_terms_f32(o + i0, t + i0, d + i0, terms, m, scale)
        else:
            bce_logits_terms_f64(o + i0, t + i0, d + i0, terms, m, scale)
        for i in range(m):
            add(&s, &c, terms[i])
        i0 += m
    return s / size


cdef double poisson(const floating* o, const floating* t, floating* d, Py_ssize_t size) noexcept nogil:
    """o = log of the mean: L = mean(e^o - y·o), dL/do = (e^o - y)/N. C's exp gives +inf
    (no trap, no warning) past ~709, where the loss itself is infinite, and 0 far below."""
    cdef Py_ssize_t i
    cdef double s = 0.0, c = 0.0, x, y, e
    cdef double scale = 1.0 / size
    for i in range(size):
        x = o[i]
        y = t[i]
        e = exp(x)
        # y·x only where y != 0: 0·(-inf) is never formed, and y = 0 costs nothing.
        add(&s, &c, e - y * x if y != 0.0 else e)
        d[i] = <floating>((e - y) * scale)
    return s / size


cdef double cross_entropy(const floating* o, const floating* t, const Py_ssize_t* labels,
                          floating* d, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """L = mean_i(-Σ_c y_ic·log_softmax(o_i)_c), dL/do_ic = (p_ic·Σ_c y_ic - y_ic)/n.

    e^(o - max) is computed once per element and parked in d (in double for
    float64; float32 keeps it to float precision, within the float32 tolerance),
    a block of rows at a time.
    """
    cdef Py_ssize_t i0 = 0, i, j
    cdef const floating* row
    cdef floating* drow
    cdef double s, lse, total = 0.0, c = 0.0, inv_n = 1.0 / n, ysum, y, scale
    cdef double mx[EXP_BLOCK]
    cdef double sums[EXP_BLOCK]
    for i in range(n):
        if i % EXP_BLOCK == 0:
            i0 = i
            exp_rows(o + i * k, d + i * k, min(n - i, <Py_ssize_t>EXP_BLOCK), k, mx, sums)
        row = o + i * k
        drow = d + i * k
        s = sums[i - i0]
        # -log p_j = (max - o_j) + log Σ e^(o - max): the difference first, so that logits
        # of any magnitude keep log Σ's digits (max + log Σ would round them away)
        lse = log(s)
        if labels != NULL:
            add(&total, &c, (mx[i - i0] - row[labels[i]]) + lse)
            scale = inv_n / s
            for j in range(k):
                drow[j] = <floating>(drow[j] * scale)
            drow[labels[i]] = <floating>(drow[labels[i]] - inv_n)
        else:
            ysum = 0.0
            for j in range(k):
                y = t[i * k + j]
                ysum += y
                add(&total, &c, y * ((mx[i - i0] - row[j]) + lse))
            scale = ysum / s
            for j in range(k):
                drow[j] = <floating>((drow[j] * scale - t[i * k + j]) * inv_n)
    return total * inv_n


cdef double loss_forward_backward_ptr(int loss, const floating* out, const floating* target,
                                      const Py_ssize_t* labels, floating* d_out,
                                      Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Mean loss of out (n×k) against target (or labels); writes dL/d_out."""
    if loss == LOSS_MSE:
        return mse(out, target, d_out, n * k)
    if loss == LOSS_MAE:
        return mae(out, target, d_out, n * k)
    if loss == LOSS_HUBER:
        return huber(out, target, d_out, n * k)
    if loss == LOSS_BCE:
        return bce_logits(out, target, d_out, n * k)
    if loss == LOSS_POISSON:
        return poisson(out, target, d_out, n * k)
    return cross_entropy(out, target, labels, d_out, n, k)


cdef double weighted_loss_ptr(int loss, const floating* out, const floating* target,
                              const Py_ssize_t* labels, const double* w, floating* d_out,
                              Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Σ_i w_i·ℓ_i / Σ_i w_i, ℓ_i the loss of row i alone (the mean over its k outputs
    for the element-wise losses); d_out := its gradient, row i's scaled by w_i/Σw.

    Each row goes through the unweighted kernel as a batch of one, so the weighted
    loss is by construction the same formula row by row (the sample-weight convention of fastbp.Sequential.loss)."""
    cdef Py_ssize_t i, j
    cdef double wsum = 0.0, total = 0.0, c = 0.0, value, r
    for i in range(n):
        wsum += w[i]
    for i in range(n):
        value = loss_forward_backward_ptr(loss, out + i * k,
                                          NULL if target == NULL else target + i * k,
                                          NULL if labels == NULL else labels + i,
                                          d_out + i * k, 1, k)
        r = w[i] / wsum
        if w[i] == 0.0:   # a zero weight drops the row, even one with an infinite loss
            for j in range(k):
                d_out[i * k + j] = 0
            continue
        for j in range(k):
            d_out[i * k + j] = <floating>(d_out[i * k + j] * r)
        add(&total, &c, w[i] * value)
    return total / wsum


def loss_forward_backward_into(int loss, const floating[:, ::1] out,
                               const floating[:, ::1] target, floating[:, ::1] d_out):
    """Mean loss; d_out := dL/d_out. Targets of the output's shape."""
    cdef double value
    with nogil:
        value = loss_forward_backward_ptr(loss, &out[0, 0], &target[0, 0], <const Py_ssize_t*>NULL,
                                          &d_out[0, 0], out.shape[0], out.shape[1])
    return value


def weighted_loss_into(int loss, const floating[:, ::1] out, target, labels,
                       const double[::1] w, floating[:, ::1] d_out):
    """Weighted mean loss (weighted_loss_ptr); target (n, k) of out's dtype, or
    labels (n,) intp for cross-entropy (the other None)."""
    cdef double value
    cdef const floating[:, ::1] t
    cdef const Py_ssize_t[::1] lab
    cdef const floating* tp = NULL
    cdef const Py_ssize_t* lp = NULL
    if labels is not None:
        lab = labels
        lp = &lab[0]
    else:
        t = target
        tp = &t[0, 0]
    with nogil:
        value = weighted_loss_ptr(loss, &out[0, 0], tp, lp, &w[0], &d_out[0, 0], out.shape[0],
                                  out.shape[1])
    return value


def cross_entropy_labels_into(const floating[:, ::1] out, const Py_ssize_t[::1] labels,
                              floating[:, ::1] d_out):
    """Mean cross-entropy of logits against int labels; d_out := dL/d_out."""
    cdef double value
    with nogil:
        value = cross_entropy(&out[0, 0], <const floating*>NULL, &labels[0], &d_out[0, 0],
                              out.shape[0], out.shape[1])
    return value


cdef bint labels_in_range_ptr(const Py_ssize_t* labels, Py_ssize_t n,
                              Py_ssize_t k) noexcept nogil:
    """True iff every one of the n labels lies in [0, k) (the kernels index with them)."""
    cdef Py_ssize_t i
    for i in range(n):
        if labels[i] < 0 or labels[i] >= k:
            return False
    return True


def labels_in_range(const Py_ssize_t[::1] labels, Py_ssize_t k):
    """True iff every label lies in [0, k) (one pass)."""
    cdef bint ok
    with nogil:
        ok = labels_in_range_ptr(&labels[0] if labels.shape[0] else NULL, labels.shape[0], k)
    return ok
