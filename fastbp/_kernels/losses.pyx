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
    LOSS_MSE, LOSS_MAE, LOSS_HUBER, LOSS_BCE, LOSS_CE, LOSS_POISSON, sigmoid, log_sigmoid,
    exp_rows, EXP_BLOCK,
)


cdef inline void add(double* total, double* comp, double x) noexcept nogil:
    """total += x with Kahan's compensation: the mean over a large batch keeps
    float64's 1e-16 relative error instead of drifting by ~n·eps."""
    cdef double y = x - comp[0]
    cdef double t = total[0] + y
    # Past an infinity the compensation would turn inf into NaN: drop it there.
    comp[0] = (t - total[0]) - y if isfinite(t) else 0.0
    total[0] = t


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
    """delta 1: L = mean(r²/2 if |r| < 1 else |r| - 1/2), dL/do = clip(r, -1, 1)/N."""
    cdef Py_ssize_t i
    cdef double s = 0.0, c = 0.0
    cdef floating scale = <floating>(1.0 / size)
    cdef floating r, a
    for i in range(size):
        r = o[i] - t[i]
        a = fabs(r)
        if a >= 1:
            add(&s, &c, <double>a - 0.5)
            d[i] = scale if r > 0 else -scale
        else:   # also a NaN residual, which then propagates
            add(&s, &c, 0.5 * <double>r * r)
            d[i] = r * scale
    return s / size


cdef double bce_logits(const floating* o, const floating* t, floating* d, Py_ssize_t size) noexcept nogil:
    """L = mean((1-y)·x - log σ(x)), dL/dx = (σ(x) - y)/N."""
    cdef Py_ssize_t i
    cdef double s = 0.0, c = 0.0, x, y
    cdef double scale = 1.0 / size
    for i in range(size):
        x = o[i]
        y = t[i]
        add(&s, &c, (1.0 - y) * x - log_sigmoid(x))
        d[i] = <floating>((sigmoid(x) - y) * scale)
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
        lse = mx[i - i0] + log(s)
        if labels != NULL:
            add(&total, &c, lse - row[labels[i]])
            scale = inv_n / s
            for j in range(k):
                drow[j] = <floating>(drow[j] * scale)
            drow[labels[i]] = <floating>(drow[labels[i]] - inv_n)
        else:
            ysum = 0.0
            for j in range(k):
                y = t[i * k + j]
                ysum += y
                add(&total, &c, y * (lse - row[j]))
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
    loss is by construction the same formula row by row (API.md, sample weights)."""
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


cdef inline double clip(double p, double eps) noexcept nogil:
    return eps if p < eps else (1.0 - eps if p > 1.0 - eps else p)


cdef double clip_correction_ptr(int loss, const floating* out, const floating* target,
                                const Py_ssize_t* labels, const double* w, Py_ssize_t n,
                                Py_ssize_t k, double eps, bint* recompute) noexcept nogil:
    """What clipping the probabilities to [eps, 1-eps] before the log (scikit-learn's
    log loss) adds to fastbp's (binary) cross-entropy from logits, in that loss's
    normalisation: (1/Σw)·Σ_i w_i·(ℓ_i clipped - ℓ_i).

    Only outputs that can reach the clip are visited: a sigmoid p of logit x leaves
    [eps, 1-eps] only for |x| > -log(eps) - 1 (roughly), a softmax p only when its
    row's logits span more than -log(eps) - log(k); elsewhere the two losses agree to
    rounding. So an unsaturated batch costs one pass of comparisons, no exp. One more
    case is visited: scikit-learn's binary loss takes log(1 - p) of p = σ(x) rounded to
    the float, which is off by up to ulp(1)/(1 - p) once x > 0; from x > -0.15·log(eps)
    (5.4 in float64) that error passes 1e-13 and the value is taken as it computes it.

    Sets *recompute when a visited sample's own loss exceeds 1e3: subtracting it back
    out of the batch's loss would then cost precision, and the caller computes the
    clipped loss whole (clipped_log_loss_ptr) instead."""
    cdef Py_ssize_t i, j
    cdef const floating* row
    cdef double total = 0.0, wsum = 0.0, wi, mx, lo, s, lse, p, y, x, plain, clipped
    cdef double limit = -log(eps) - 1.0, rounded = -0.15 * log(eps)
    recompute[0] = False
    if loss == LOSS_CE and k > 1:
        limit = -log(eps) - log(<double>k) - 1.0
    for i in range(n):
        wi = 1.0 if w == NULL else w[i]
        wsum += wi
        if wi == 0.0:
            continue
        row = out + i * k
        if loss == LOSS_CE:
            mx = lo = row[0]
            for j in range(1, k):
                if row[j] > mx:
                    mx = row[j]
                elif row[j] < lo:
                    lo = row[j]
            if k > 1 and mx - lo <= limit:
                continue
            s = 0.0
            for j in range(k):
                s += exp(row[j] - mx)
            lse = mx + log(s)
            if labels != NULL:
                plain = lse - row[labels[i]]
                clipped = -log(clip(exp(row[labels[i]] - mx) / s, eps))
            else:
                plain = clipped = 0.0
                for j in range(k):
                    y = target[i * k + j]
                    if y != 0.0:
                        plain += y * (lse - row[j])
                        clipped -= y * log(clip(exp(row[j] - mx) / s, eps))
            if not plain <= 1e3:
                recompute[0] = True
                return 0.0
            total += wi * (clipped - plain)
        else:
            for j in range(k):
                x = row[j]
                y = target[i * k + j]
                if fabs(x) <= limit and not (x > rounded and y != 1.0):
                    continue
                p = clip(sigmoid(x), eps)
                plain = (1.0 - y) * x - log_sigmoid(x)
                clipped = 0.0
                if y != 0.0:
                    clipped -= y * log(p)
                if y != 1.0:
                    clipped -= (1.0 - y) * log(1.0 - p)
                if not plain <= 1e3:
                    recompute[0] = True
                    return 0.0
                total += wi * (clipped - plain) / k
    return total / wsum


cdef double clipped_log_loss_ptr(int loss, const floating* out, const floating* target,
                                 const Py_ssize_t* labels, const double* w, Py_ssize_t n,
                                 Py_ssize_t k, double eps) noexcept nogil:
    """scikit-learn's log-loss value (the loss only, no gradient): sigmoid or softmax
    probabilities clipped to [eps, 1-eps] before the log, so a saturated sample costs
    at most -log(eps). Normalised as fastbp's loss of the same name (binary: the mean
    over a sample's k outputs; cross-entropy: per sample), then the (weighted) mean
    over samples. Equals the unclipped loss to rounding while no probability is within
    eps of 0 or 1."""
    cdef Py_ssize_t i, j
    cdef const floating* row
    cdef double total = 0.0, c = 0.0, wsum = 0.0, wi, li, mx, s, p, y
    for i in range(n):
        wi = 1.0 if w == NULL else w[i]
        wsum += wi
        if wi == 0.0:
            continue
        row = out + i * k
        li = 0.0
        if loss == LOSS_CE:
            mx = row[0]
            for j in range(1, k):
                if row[j] > mx:
                    mx = row[j]
            s = 0.0
            for j in range(k):
                s += exp(row[j] - mx)
            if labels != NULL:
                li = -log(clip(exp(row[labels[i]] - mx) / s, eps))
            else:
                for j in range(k):
                    y = target[i * k + j]
                    if y != 0.0:
                        li -= y * log(clip(exp(row[j] - mx) / s, eps))
        else:
            for j in range(k):
                p = clip(sigmoid(row[j]), eps)
                y = target[i * k + j]
                if y != 0.0:
                    li -= y * log(p)
                if y != 1.0:
                    li -= (1.0 - y) * log(1.0 - p)
            li /= k
        add(&total, &c, wi * li)
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
