/* Optimizer update loops, compiled once per instruction set.
 *
 * Why C: these loops are memory- and divide-bound, and AVX2/AVX-512 double
 * their speed over the SSE2 baseline a portable wheel is built for; each is
 * built once per instruction set, with the same bits from each (_simd.h).
 *
 * Each kernel is the element update of PyTorch's single-tensor optimizer
 * (torch/optim/{sgd,adagrad,rmsprop,adam}.py), in its order of operations, with one
 * exception: Adam multiplies √v by 1/√(1-β₂ᵗ), computed once per step, where PyTorch
 * divides by √(1-β₂ᵗ) (a division fewer per element; at most 1 ulp in the denominator).
 * The common option sets get loops of their own with the flags as constants.
 * _optim_body.h holds the kernels; it is included once per dtype. Every kernel
 * takes the configuration (_optim_config.h) and the step's values by pointer.
 */
#ifndef FASTBP_OPTIM_SIMD_H
#define FASTBP_OPTIM_SIMD_H

#include <math.h>
#include <stddef.h>

#include "_simd.h"
#include "_optim_config.h"

#define FB_T float
#define FB_SQRT sqrtf
#define FB_NAME(x) x##_f32
#include "_optim_body.h"
#undef FB_T
#undef FB_SQRT
#undef FB_NAME

#define FB_T double
#define FB_SQRT sqrt
#define FB_NAME(x) x##_f64
#include "_optim_body.h"
#undef FB_T
#undef FB_SQRT
#undef FB_NAME

/* The step's values (fb_optim_step): t, and Adam's bias corrections. */
static void fb_optim_begin_step(const fb_optim_config* c, long long step, fb_optim_step* st) {
    double bc1, bc2_sqrt;
    st->step = step;
    st->step_size = 0.0;
    st->bc2_sqrt = 0.0;
    if (c->kind == FB_OPT_ADAM) {
        bc1 = 1.0 - pow(c->beta1, (double)step);
        bc2_sqrt = sqrt(1.0 - pow(c->beta2, (double)step));
        st->step_size = c->folded ? c->lr * bc2_sqrt / bc1 : c->lr / bc1;
        st->bc2_sqrt = bc2_sqrt;
    }
}

#endif
