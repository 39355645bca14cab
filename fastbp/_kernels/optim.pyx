"""Optimizer kernels: one fused, in-place pass over each parameter buffer.

Design: the Python caller does the scalar work (bias corrections, step sizes);
each kernel converts its scalars to the buffer's dtype once and then updates
p and its state element by element, in the order of operations of PyTorch's
single-tensor implementation (``torch/optim/{sgd,adagrad,rmsprop,adam}.py``),
so float32 runs in float32 arithmetic like PyTorch and float64 agrees with the
reference to rounding. The loops themselves are C (``_optim_body.h``), built
once per instruction set and chosen at load time; see ``_optim_simd.h``.
"""
from cython cimport floating

cdef extern from "_optim_simd.h" nogil:
    void fb_sgd_f32(float* p, const float* g, float* buf, Py_ssize_t n, float lr, float mu,
                    float keep, float wd, int decay, int use_momentum, int nesterov,
                    int first_step)
    void fb_sgd_f64(double* p, const double* g, double* buf, Py_ssize_t n, double lr, double mu,
                    double keep, double wd, int decay, int use_momentum, int nesterov,
                    int first_step)
    void fb_adagrad_f32(float* p, const float* g, float* s, Py_ssize_t n, float lr, float eps,
                        float wd, int decay)
    void fb_adagrad_f64(double* p, const double* g, double* s, Py_ssize_t n, double lr,
                        double eps, double wd, int decay)
    void fb_rmsprop_f32(float* p, const float* g, float* sq, float* buf, float* gavg,
                        Py_ssize_t n, float lr, float alpha, float one_a, float eps, float mu,
                        float wd, int decay, int centered, int use_momentum)
    void fb_rmsprop_f64(double* p, const double* g, double* sq, double* buf, double* gavg,
                        Py_ssize_t n, double lr, double alpha, double one_a, double eps,
                        double mu, double wd, int decay, int centered, int use_momentum)
    void fb_adam_f32(float* p, const float* g, float* m, float* v, float* vmax, Py_ssize_t n,
                     float b1, float one_b1, float b2, float one_b2, float eps, float wd,
                     float shrink, float step, float bc2, int coupled, int decoupled,
                     int amsgrad, int folded)
    void fb_adam_f64(double* p, const double* g, double* m, double* v, double* vmax,
                     Py_ssize_t n, double b1, double one_b1, double b2, double one_b2,
                     double eps, double wd, double shrink, double step, double bc2,
                     int coupled, int decoupled, int amsgrad, int folded)


cdef void sgd_ptr(floating* p, const floating* g, floating* buf, Py_ssize_t size,
                  double lr, double momentum, double dampening, bint nesterov,
                  double weight_decay, bint first_step) noexcept nogil:
    """g' = g + λp; b = g' (first step) or μb + (1-τ)g'; p -= lr·(g' + μb if nesterov else b)."""
    if floating is float:
        fb_sgd_f32(p, g, buf, size, <float>lr, <float>momentum, <float>(1.0 - dampening),
                   <float>weight_decay, weight_decay != 0, momentum != 0, nesterov, first_step)
    else:
        fb_sgd_f64(p, g, buf, size, lr, momentum, 1.0 - dampening, weight_decay,
                   weight_decay != 0, momentum != 0, nesterov, first_step)


cdef void adagrad_ptr(floating* p, const floating* g, floating* sum_sq, Py_ssize_t size,
                      double lr, double eps, double weight_decay) noexcept nogil:
    """g' = g + λp; s += g'²; p -= lr·g'/(√s + eps)."""
    if floating is float:
        fb_adagrad_f32(p, g, sum_sq, size, <float>lr, <float>eps, <float>weight_decay,
                       weight_decay != 0)
    else:
        fb_adagrad_f64(p, g, sum_sq, size, lr, eps, weight_decay, weight_decay != 0)


cdef void rmsprop_ptr(floating* p, const floating* g, floating* sq_avg, floating* buf,
                      floating* grad_avg, Py_ssize_t size, double lr, double alpha, double eps,
                      double momentum, bint centered, double weight_decay) noexcept nogil:
    """v = αv + (1-α)g²; d = √(v - ḡ²) + eps (centered) or √v + eps;
    p -= lr·b with b = μb + g/d (momentum), else p -= lr·g/d."""
    if floating is float:
        fb_rmsprop_f32(p, g, sq_avg, buf, grad_avg, size, <float>lr, <float>alpha,
                       <float>(1.0 - alpha), <float>eps, <float>momentum, <float>weight_decay,
                       weight_decay != 0, centered, momentum > 0)
    else:
        fb_rmsprop_f64(p, g, sq_avg, buf, grad_avg, size, lr, alpha, 1.0 - alpha, eps, momentum,
                       weight_decay, weight_decay != 0, centered, momentum > 0)


cdef void adam_ptr(floating* p, const floating* g, floating* m, floating* v, floating* vmax,
                   Py_ssize_t size, double lr, double beta1, double beta2, double eps,
                   double weight_decay, bint decoupled, bint amsgrad, bint folded,
                   double step_size, double bc2_sqrt) noexcept nogil:
    """Adam/AdamW step t with step_size = lr/(1-β₁ᵗ), bc2_sqrt = √(1-β₂ᵗ) (paper mode):
    m = lerp(m, g, 1-β₁); v = β₂v + (1-β₂)g²; p -= step_size·m/(√v/bc2_sqrt + eps).
    folded (scikit-learn): m = β₁m + (1-β₁)g; same v; p -= step_size·m/(√v + eps),
    where the caller passes step_size = lr·√(1-β₂ᵗ)/(1-β₁ᵗ)."""
    cdef bint decay = weight_decay != 0
    if floating is float:
        fb_adam_f32(p, g, m, v, vmax, size, <float>beta1, <float>(1.0 - beta1), <float>beta2,
                    <float>(1.0 - beta2), <float>eps, <float>weight_decay,
                    <float>(1.0 - lr * weight_decay), <float>step_size, <float>bc2_sqrt,
                    decay and not decoupled, decay and decoupled, amsgrad, folded)
    else:
        fb_adam_f64(p, g, m, v, vmax, size, beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps,
                    weight_decay, 1.0 - lr * weight_decay, step_size, bc2_sqrt,
                    decay and not decoupled, decay and decoupled, amsgrad, folded)


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
