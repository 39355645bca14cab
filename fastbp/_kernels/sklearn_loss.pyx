"""scikit-learn's log loss, for fastbp.sklearn's objective (fastbp.Objective's
``log_loss_clip``): the probabilities clipped to [eps, 1-eps] before the log, as
scikit-learn's ``log_loss`` computes its loss values. Only the value differs from
fastbp's cross-entropies from logits (the gradient is theirs), so these kernels
compute the value alone: a cheap correction of fastbp's value where no output can
reach the clip (``clip_correction_ptr``), else the clipped loss whole
(``clipped_log_loss_ptr``). The compiled engine calls them when the model's
objective asks for it; nothing else does.
"""
from cython cimport floating
from libc.math cimport log, fabs, exp

from fastbp._kernels._math cimport LOSS_CE, sigmoid, log_sigmoid
from fastbp._kernels.losses cimport add


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
            lse = log(s)   # the plain loss as cross_entropy computes it: (max - o) + lse
            if labels != NULL:
                plain = (mx - row[labels[i]]) + lse
                clipped = -log(clip(exp(row[labels[i]] - mx) / s, eps))
            else:
                plain = clipped = 0.0
                for j in range(k):
                    y = target[i * k + j]
                    if y != 0.0:
                        plain += y * ((mx - row[j]) + lse)
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
