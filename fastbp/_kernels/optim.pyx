"""Optimizer kernels: one fused, in-place pass over each parameter buffer.

Design: the Python caller does the scalar work (bias corrections, step sizes);
each kernel converts its scalars to the buffer's dtype once and then updates
p and its state element by element, in the order of operations of PyTorch's
single-tensor implementation (``torch/optim/{sgd,adagrad,rmsprop,adam}.py``),
so float32 runs in float32 arithmetic like PyTorch and float64 agrees with the
reference to rounding. ``lerp`` is PyTorch's two-sided formula.
"""
from cython cimport floating
from libc.math cimport sqrt


cdef inline floating lerp(floating a, floating b, floating w) noexcept nogil:
    """a + w·(b - a), as torch.lerp (the b-side form for w ≥ 0.5)."""
    if w < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (1 - w)


cdef void sgd_ptr(floating* p, const floating* g, floating* buf, Py_ssize_t size,
                  double lr, double momentum, double dampening, bint nesterov,
                  double weight_decay, bint first_step) noexcept nogil:
    """g' = g + λp; b = g' (first step) or μb + (1-τ)g'; p -= lr·(g' + μb if nesterov else b)."""
    cdef Py_ssize_t i
    cdef floating flr = <floating>lr, mu = <floating>momentum, wd = <floating>weight_decay
    cdef floating keep = <floating>(1.0 - dampening)
    cdef floating d, bi
    for i in range(size):
        d = g[i]
        if weight_decay != 0:
            d = d + wd * p[i]
        if momentum != 0:
            if first_step:
                bi = d
            else:
                bi = mu * buf[i] + keep * d
            buf[i] = bi
            if nesterov:
                d = d + mu * bi
            else:
                d = bi
        p[i] = p[i] - flr * d


cdef void adagrad_ptr(floating* p, const floating* g, floating* sum_sq, Py_ssize_t size,
                      double lr, double eps, double weight_decay) noexcept nogil:
    """g' = g + λp; s += g'²; p -= lr·g'/(√s + eps)."""
    cdef Py_ssize_t i
    cdef floating flr = <floating>lr, feps = <floating>eps, wd = <floating>weight_decay
    cdef floating d, s
    for i in range(size):
        d = g[i]
        if weight_decay != 0:
            d = d + wd * p[i]
        s = sum_sq[i] + d * d
        sum_sq[i] = s
        p[i] = p[i] - flr * (d / (<floating>sqrt(s) + feps))


cdef void rmsprop_ptr(floating* p, const floating* g, floating* sq_avg, floating* buf,
                      floating* grad_avg, Py_ssize_t size, double lr, double alpha, double eps,
                      double momentum, bint centered, double weight_decay) noexcept nogil:
    """v = αv + (1-α)g²; d = √(v - ḡ²) + eps (centered) or √v + eps;
    p -= lr·b with b = μb + g/d (momentum), else p -= lr·g/d."""
    cdef Py_ssize_t i
    cdef floating flr = <floating>lr, fa = <floating>alpha, one_a = <floating>(1.0 - alpha)
    cdef floating feps = <floating>eps, mu = <floating>momentum, wd = <floating>weight_decay
    cdef floating d, v, ga, avg, bi
    for i in range(size):
        d = g[i]
        if weight_decay != 0:
            d = d + wd * p[i]
        v = sq_avg[i] * fa + one_a * (d * d)
        sq_avg[i] = v
        if centered:
            ga = lerp(grad_avg[i], d, one_a)
            grad_avg[i] = ga
            avg = <floating>sqrt(v - ga * ga) + feps
        else:
            avg = <floating>sqrt(v) + feps
        if momentum > 0:
            bi = buf[i] * mu + d / avg
            buf[i] = bi
            p[i] = p[i] - flr * bi
        else:
            p[i] = p[i] - flr * (d / avg)


cdef void adam_ptr(floating* p, const floating* g, floating* m, floating* v, floating* vmax,
                   Py_ssize_t size, double lr, double beta1, double beta2, double eps,
                   double weight_decay, bint decoupled, bint amsgrad, bint folded,
                   double step_size, double bc2_sqrt) noexcept nogil:
    """Adam/AdamW step t with step_size = lr/(1-β₁ᵗ), bc2_sqrt = √(1-β₂ᵗ) (paper mode):
    m = lerp(m, g, 1-β₁); v = β₂v + (1-β₂)g²; p -= step_size·m/(√v̂ /bc2_sqrt + eps).
    folded (scikit-learn): m = β₁m + (1-β₁)g; same v; p -= step_size·m/(√v + eps),
    where the caller passes step_size = lr·√(1-β₂ᵗ)/(1-β₁ᵗ)."""
    cdef Py_ssize_t i
    cdef floating fb1 = <floating>beta1, one_b1 = <floating>(1.0 - beta1)
    cdef floating fb2 = <floating>beta2, one_b2 = <floating>(1.0 - beta2)
    cdef floating feps = <floating>eps, wd = <floating>weight_decay
    cdef floating shrink = <floating>(1.0 - lr * weight_decay)
    cdef floating fstep = <floating>step_size, fbc2 = <floating>bc2_sqrt
    cdef floating d, mi, vi, denom
    for i in range(size):
        d = g[i]
        if weight_decay != 0:
            if decoupled:
                p[i] = p[i] * shrink
            else:
                d = d + wd * p[i]
        if folded:
            mi = fb1 * m[i] + one_b1 * d
        else:
            mi = lerp(m[i], d, one_b1)
        m[i] = mi
        vi = v[i] * fb2 + one_b2 * (d * d)
        v[i] = vi
        if amsgrad:
            if vmax[i] > vi:
                vi = vmax[i]
            vmax[i] = vi
        if folded:
            denom = <floating>sqrt(vi) + feps
        else:
            denom = <floating>sqrt(vi) / fbc2 + feps
        p[i] = p[i] - fstep * (mi / denom)


def sgd_step_into(floating[::1] p, const floating[::1] g, floating[::1] buf,
                  double lr, double momentum, double dampening, bint nesterov,
                  double weight_decay, bint first_step):
    """In-place SGD step on flat buffers (buf may be None when momentum is 0)."""
    cdef floating* b = &buf[0] if momentum != 0 else NULL
    with nogil:
        sgd_ptr(&p[0], &g[0], b, p.shape[0], lr, momentum, dampening, nesterov,
                weight_decay, first_step)


def adagrad_step_into(floating[::1] p, const floating[::1] g, floating[::1] sum_sq,
                      double lr, double eps, double weight_decay):
    """In-place AdaGrad step on flat buffers."""
    with nogil:
        adagrad_ptr(&p[0], &g[0], &sum_sq[0], p.shape[0], lr, eps, weight_decay)


def rmsprop_step_into(floating[::1] p, const floating[::1] g, floating[::1] sq_avg,
                      floating[::1] buf, floating[::1] grad_avg, double lr, double alpha,
                      double eps, double momentum, bint centered, double weight_decay):
    """In-place RMSprop step on flat buffers (buf/grad_avg None when unused)."""
    cdef floating* b = &buf[0] if momentum > 0 else NULL
    cdef floating* ga = &grad_avg[0] if centered else NULL
    with nogil:
        rmsprop_ptr(&p[0], &g[0], &sq_avg[0], b, ga, p.shape[0], lr, alpha, eps,
                    momentum, centered, weight_decay)


def adam_step_into(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v,
                   floating[::1] vmax, double lr, double beta1, double beta2, double eps,
                   double weight_decay, bint decoupled, bint amsgrad, bint folded,
                   double step_size, double bc2_sqrt):
    """In-place Adam/AdamW step on flat buffers (vmax None unless amsgrad)."""
    cdef floating* vm = &vmax[0] if amsgrad else NULL
    with nogil:
        adam_ptr(&p[0], &g[0], &m[0], &v[0], vm, p.shape[0], lr, beta1, beta2, eps,
                 weight_decay, decoupled, amsgrad, folded, step_size, bc2_sqrt)
