/* One optimizer's configuration as the C kernels read it, and the values of one step.
 *
 * fastbp/_optim_config.py holds the validated record of each optimizer kind;
 * optim.pyx (fill_config) copies it into an fb_optim_config once per binding
 * (the engine) or per call (fastbp.ops, Optimizer.step), and every kernel takes
 * it by pointer. A field a kind does not use is 0.
 */
#ifndef FASTBP_OPTIM_CONFIG_H
#define FASTBP_OPTIM_CONFIG_H

/* fastbp._optim_config's *Config.kind: FB_OPT_SGD, ... from fastbp/_table.py */
#include "_table.h"

typedef struct fb_optim_config {
    int kind;
    double lr, momentum, dampening, weight_decay, eps, alpha, beta1, beta2;
    int nesterov, centered, decoupled, amsgrad, folded;
} fb_optim_config;

/* What depends on the step count, computed once per step (fb_optim_begin_step). */
typedef struct fb_optim_step {
    long long step;      /* counted from 1; SGD's first step is step 1 */
    double step_size;    /* Adam: lr/(1-b1^t) (paper) or lr*sqrt(1-b2^t)/(1-b1^t) (folded) */
    double bc2_sqrt;     /* Adam: sqrt(1-b2^t) */
} fb_optim_step;

#endif
