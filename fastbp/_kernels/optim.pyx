"""Optimizer kernels: one fused, in-place pass over each parameter buffer.

Design: the Python caller does the scalar work (bias corrections, step sizes);
each kernel converts its scalars to the buffer's dtype once and then updates
p and its state element by element, in the order of operations of PyTorch's
single-tensor implementation (``torch/optim/{sgd,adagrad,rmsprop,adam}.py``),
so float32 runs in float32 arithmetic like PyTorch and float64 agrees with the
reference to rounding. ``lerp`` is PyTorch's two-sided formula.
"""
from cython cimport floating
from libc.math cimport sqrt, sqrtf


cdef inline floating fsqrt(floating x) noexcept nogil:
    """sqrt in the buffer's precision (sqrtf for float32, as PyTorch and NumPy do)."""
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating lerp(floating a, floating b, floating w) noexcept nogil:
    """a + w·(b - a), as torch.lerp (the b-side form for w ≥ 0.5)."""
    if w < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (1 - w)


# Each kernel applies one inline element update in a loop. The common option
# combinations get loops of their own in which the flags are compile-time
# constants: GCC then drops the branches and vectorises the loop.

cdef inline void sgd_elem(floating* p, const floating* g, floating* buf, Py_ssize_t i,
                          floating flr, floating mu, floating keep, floating wd,
                          bint decay, bint use_momentum, bint nesterov, bint first_step) noexcept nogil:
    cdef floating d = g[i], bi
    if decay:
        d = d + wd * p[i]
    if use_momentum:
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


cdef void sgd_ptr(floating* p, const floating* g, floating* buf, Py_ssize_t size,
                  double lr, double momentum, double dampening, bint nesterov,
                  double weight_decay, bint first_step) noexcept nogil:
    """g' = g + λp; b = g' (first step) or μb + (1-τ)g'; p -= lr·(g' + μb if nesterov else b)."""
    cdef Py_ssize_t i
    cdef floating flr = <floating>lr, mu = <floating>momentum, wd = <floating>weight_decay
    cdef floating keep = <floating>(1.0 - dampening)
    cdef bint decay = weight_decay != 0, use_momentum = momentum != 0
    if not use_momentum and not decay:
        for i in range(size):
            sgd_elem(p, g, buf, i, flr, mu, keep, wd, False, False, False, False)
    elif use_momentum and not decay and not nesterov and not first_step:
        for i in range(size):
            sgd_elem(p, g, buf, i, flr, mu, keep, wd, False, True, False, False)
    else:
        for i in range(size):
            sgd_elem(p, g, buf, i, flr, mu, keep, wd, decay, use_momentum, nesterov, first_step)


cdef void adagrad_ptr(floating* p, const floating* g, floating* sum_sq, Py_ssize_t size,
                      double lr, double eps, double weight_decay) noexcept nogil:
    """g' = g + λp; s += g'²; p -= lr·g'/(√s + eps)."""
    cdef Py_ssize_t i
    cdef floating flr = <floating>lr, feps = <floating>eps, wd = <floating>weight_decay
    cdef floating d, s
    if weight_decay == 0:
        for i in range(size):
            d = g[i]
            s = sum_sq[i] + d * d
            sum_sq[i] = s
            p[i] = p[i] - flr * (d / (fsqrt(s) + feps))
    else:
        for i in range(size):
            d = g[i] + wd * p[i]
            s = sum_sq[i] + d * d
            sum_sq[i] = s
            p[i] = p[i] - flr * (d / (fsqrt(s) + feps))


cdef inline void rmsprop_elem(floating* p, const floating* g, floating* sq_avg, floating* buf,
                              floating* grad_avg, Py_ssize_t i, floating flr, floating fa,
                              floating one_a, floating feps, floating mu, floating wd,
                              bint decay, bint centered, bint use_momentum) noexcept nogil:
    cdef floating d = g[i], v, ga, avg, bi
    if decay:
        d = d + wd * p[i]
    v = sq_avg[i] * fa + one_a * (d * d)
    sq_avg[i] = v
    if centered:
        ga = lerp(grad_avg[i], d, one_a)
        grad_avg[i] = ga
        avg = fsqrt(v - ga * ga) + feps
    else:
        avg = fsqrt(v) + feps
    if use_momentum:
        bi = buf[i] * mu + d / avg
        buf[i] = bi
        p[i] = p[i] - flr * bi
    else:
        p[i] = p[i] - flr * (d / avg)


cdef void rmsprop_ptr(floating* p, const floating* g, floating* sq_avg, floating* buf,
                      floating* grad_avg, Py_ssize_t size, double lr, double alpha, double eps,
                      double momentum, bint centered, double weight_decay) noexcept nogil:
    """v = αv + (1-α)g²; d = √(v - ḡ²) + eps (centered) or √v + eps;
    p -= lr·b with b = μb + g/d (momentum), else p -= lr·g/d."""
    cdef Py_ssize_t i
    cdef floating flr = <floating>lr, fa = <floating>alpha, one_a = <floating>(1.0 - alpha)
    cdef floating feps = <floating>eps, mu = <floating>momentum, wd = <floating>weight_decay
    cdef bint decay = weight_decay != 0, use_momentum = momentum > 0
    if not decay and not centered and not use_momentum:
        for i in range(size):
            rmsprop_elem(p, g, sq_avg, buf, grad_avg, i, flr, fa, one_a, feps, mu, wd,
                         False, False, False)
    else:
        for i in range(size):
            rmsprop_elem(p, g, sq_avg, buf, grad_avg, i, flr, fa, one_a, feps, mu, wd,
                         decay, centered, use_momentum)


cdef inline void adam_elem(floating* p, const floating* g, floating* m, floating* v,
                           floating* vmax, Py_ssize_t i, floating fb1, floating one_b1,
                           floating fb2, floating one_b2, floating feps, floating wd,
                           floating shrink, floating fstep, floating fbc2,
                           bint coupled, bint decoupled, bint amsgrad, bint folded,
                           bint lerp_low) noexcept nogil:
    cdef floating d = g[i], mi, vi, denom
    if decoupled:
        p[i] = p[i] * shrink
    if coupled:
        d = d + wd * p[i]
    if folded:
        mi = fb1 * m[i] + one_b1 * d
    elif lerp_low:
        mi = m[i] + one_b1 * (d - m[i])
    else:
        mi = d - (d - m[i]) * (1 - one_b1)
    m[i] = mi
    vi = v[i] * fb2 + one_b2 * (d * d)
    v[i] = vi
    if amsgrad:
        if vmax[i] > vi:
            vi = vmax[i]
        vmax[i] = vi
    if folded:
        denom = fsqrt(vi) + feps
    else:
        denom = fsqrt(vi) / fbc2 + feps
    p[i] = p[i] - fstep * (mi / denom)


cdef void adam_ptr(floating* p, const floating* g, floating* m, floating* v, floating* vmax,
                   Py_ssize_t size, double lr, double beta1, double beta2, double eps,
                   double weight_decay, bint decoupled, bint amsgrad, bint folded,
                   double step_size, double bc2_sqrt) noexcept nogil:
    """Adam/AdamW step t with step_size = lr/(1-β₁ᵗ), bc2_sqrt = √(1-β₂ᵗ) (paper mode):
    m = lerp(m, g, 1-β₁); v = β₂v + (1-β₂)g²; p -= step_size·m/(√v/bc2_sqrt + eps).
    folded (scikit-learn): m = β₁m + (1-β₁)g; same v; p -= step_size·m/(√v + eps),
    where the caller passes step_size = lr·√(1-β₂ᵗ)/(1-β₁ᵗ)."""
    cdef Py_ssize_t i
    cdef floating fb1 = <floating>beta1, one_b1 = <floating>(1.0 - beta1)
    cdef floating fb2 = <floating>beta2, one_b2 = <floating>(1.0 - beta2)
    cdef floating feps = <floating>eps, wd = <floating>weight_decay
    cdef floating shrink = <floating>(1.0 - lr * weight_decay)
    cdef floating fstep = <floating>step_size, fbc2 = <floating>bc2_sqrt
    cdef bint decay = weight_decay != 0
    cdef bint coupled = decay and not decoupled, dec = decay and decoupled
    cdef bint low = one_b1 < 0.5   # which side of torch.lerp's formula applies
    if low and not amsgrad and not folded:
        if not decay:
            for i in range(size):
                adam_elem(p, g, m, v, vmax, i, fb1, one_b1, fb2, one_b2, feps, wd, shrink,
                          fstep, fbc2, False, False, False, False, True)
        elif dec:
            for i in range(size):
                adam_elem(p, g, m, v, vmax, i, fb1, one_b1, fb2, one_b2, feps, wd, shrink,
                          fstep, fbc2, False, True, False, False, True)
        else:
            for i in range(size):
                adam_elem(p, g, m, v, vmax, i, fb1, one_b1, fb2, one_b2, feps, wd, shrink,
                          fstep, fbc2, True, False, False, False, True)
    else:
        for i in range(size):
            adam_elem(p, g, m, v, vmax, i, fb1, one_b1, fb2, one_b2, feps, wd, shrink,
                      fstep, fbc2, coupled, dec, amsgrad, folded, low)


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
