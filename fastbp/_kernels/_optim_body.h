/* Included by _optim_simd.h with FB_T (float or double), FB_SQRT and FB_NAME set.
 *
 * Each fb_<kind> kernel reads its hyper-parameters from the fb_optim_config and
 * the step's values from the fb_optim_step, and rounds each once to FB_T (the
 * combinations 1 - x and 1 - lr*wd in double first, as the reference does). */

/* torch.lerp: a + w(b - a), or b - (b - a)(1 - w) for w >= 0.5. */
FASTBP_INLINE FB_T FB_NAME(fb_lerp)(FB_T a, FB_T b, FB_T w) {
    return w < (FB_T)0.5 ? a + w * (b - a) : b - (b - a) * ((FB_T)1 - w);
}

FASTBP_INLINE void FB_NAME(sgd_elem)(FB_T* p, const FB_T* g, FB_T* buf, ptrdiff_t i,
        FB_T lr, FB_T mu, FB_T keep, FB_T wd,
        int decay, int use_momentum, int nesterov, int first_step) {
    FB_T d = g[i], b;
    if (decay) d = d + wd * p[i];
    if (use_momentum) {
        b = first_step ? d : mu * buf[i] + keep * d;
        buf[i] = b;
        d = nesterov ? d + mu * b : b;
    }
    p[i] = p[i] - lr * d;
}

FASTBP_CLONES static void FB_NAME(fb_sgd)(FB_T* p, const FB_T* g, FB_T* buf, ptrdiff_t n,
        const fb_optim_config* c, const fb_optim_step* st) {
    ptrdiff_t i;
    FB_T lr = (FB_T)c->lr, mu = (FB_T)c->momentum, keep = (FB_T)(1.0 - c->dampening);
    FB_T wd = (FB_T)c->weight_decay;
    int decay = c->weight_decay != 0, use_momentum = c->momentum != 0;
    int nesterov = c->nesterov, first_step = st->step == 1;
    if (!use_momentum && !decay) {
        for (i = 0; i < n; i++) FB_NAME(sgd_elem)(p, g, buf, i, lr, mu, keep, wd, 0, 0, 0, 0);
    } else if (use_momentum && !decay && !nesterov && !first_step) {
        for (i = 0; i < n; i++) FB_NAME(sgd_elem)(p, g, buf, i, lr, mu, keep, wd, 0, 1, 0, 0);
    } else {
        for (i = 0; i < n; i++)
            FB_NAME(sgd_elem)(p, g, buf, i, lr, mu, keep, wd, decay, use_momentum, nesterov,
                              first_step);
    }
}

FASTBP_INLINE void FB_NAME(adagrad_elem)(FB_T* p, const FB_T* g, FB_T* sum, ptrdiff_t i,
        FB_T lr, FB_T eps, FB_T wd, int decay) {
    FB_T d = g[i], s;
    if (decay) d = d + wd * p[i];
    s = sum[i] + d * d;
    sum[i] = s;
    p[i] = p[i] - lr * (d / (FB_SQRT(s) + eps));
}

FASTBP_CLONES static void FB_NAME(fb_adagrad)(FB_T* p, const FB_T* g, FB_T* sum, ptrdiff_t n,
        const fb_optim_config* c) {
    ptrdiff_t i;
    FB_T lr = (FB_T)c->lr, eps = (FB_T)c->eps, wd = (FB_T)c->weight_decay;
    int decay = c->weight_decay != 0;
    if (!decay) {
        for (i = 0; i < n; i++) FB_NAME(adagrad_elem)(p, g, sum, i, lr, eps, wd, 0);
    } else {
        for (i = 0; i < n; i++) FB_NAME(adagrad_elem)(p, g, sum, i, lr, eps, wd, 1);
    }
}

FASTBP_INLINE void FB_NAME(rmsprop_elem)(FB_T* p, const FB_T* g, FB_T* sq, FB_T* buf,
        FB_T* gavg, ptrdiff_t i, FB_T lr, FB_T alpha, FB_T one_a, FB_T eps, FB_T mu, FB_T wd,
        int decay, int centered, int use_momentum) {
    FB_T d = g[i], v, ga, avg, b;
    if (decay) d = d + wd * p[i];
    v = sq[i] * alpha + one_a * (d * d);
    sq[i] = v;
    if (centered) {
        ga = FB_NAME(fb_lerp)(gavg[i], d, one_a);
        gavg[i] = ga;
        avg = FB_SQRT(v - ga * ga) + eps;
    } else {
        avg = FB_SQRT(v) + eps;
    }
    if (use_momentum) {
        b = buf[i] * mu + d / avg;
        buf[i] = b;
        p[i] = p[i] - lr * b;
    } else {
        p[i] = p[i] - lr * (d / avg);
    }
}

FASTBP_CLONES static void FB_NAME(fb_rmsprop)(FB_T* p, const FB_T* g, FB_T* sq, FB_T* buf,
        FB_T* gavg, ptrdiff_t n, const fb_optim_config* c) {
    ptrdiff_t i;
    FB_T lr = (FB_T)c->lr, alpha = (FB_T)c->alpha, one_a = (FB_T)(1.0 - c->alpha);
    FB_T eps = (FB_T)c->eps, mu = (FB_T)c->momentum, wd = (FB_T)c->weight_decay;
    int decay = c->weight_decay != 0, centered = c->centered, use_momentum = c->momentum > 0;
    if (!decay && !centered && !use_momentum) {
        for (i = 0; i < n; i++)
            FB_NAME(rmsprop_elem)(p, g, sq, buf, gavg, i, lr, alpha, one_a, eps, mu, wd, 0, 0, 0);
    } else {
        for (i = 0; i < n; i++)
            FB_NAME(rmsprop_elem)(p, g, sq, buf, gavg, i, lr, alpha, one_a, eps, mu, wd,
                                  decay, centered, use_momentum);
    }
}

FASTBP_INLINE void FB_NAME(adam_elem)(FB_T* p, const FB_T* g, FB_T* m, FB_T* v, FB_T* vmax,
        ptrdiff_t i, FB_T b1, FB_T one_b1, FB_T b2, FB_T one_b2, FB_T eps, FB_T wd,
        FB_T shrink, FB_T step, FB_T inv_bc2, int coupled, int decoupled, int amsgrad, int folded,
        int lerp_low) {
    FB_T d = g[i], mi, vi, denom;
    if (decoupled) p[i] = p[i] * shrink;
    if (coupled) d = d + wd * p[i];
    if (folded) mi = b1 * m[i] + one_b1 * d;
    else if (lerp_low) mi = m[i] + one_b1 * (d - m[i]);
    else mi = d - (d - m[i]) * ((FB_T)1 - one_b1);
    m[i] = mi;
    vi = v[i] * b2 + one_b2 * (d * d);
    v[i] = vi;
    if (amsgrad) {
        if (vmax[i] > vi) vi = vmax[i];
        vmax[i] = vi;
    }
    denom = folded ? FB_SQRT(vi) + eps : FB_SQRT(vi) * inv_bc2 + eps;
    p[i] = p[i] - step * (mi / denom);
}

FASTBP_CLONES static void FB_NAME(fb_adam)(FB_T* p, const FB_T* g, FB_T* m, FB_T* v,
        FB_T* vmax, ptrdiff_t n, const fb_optim_config* c, const fb_optim_step* st) {
    ptrdiff_t i;
    FB_T b1 = (FB_T)c->beta1, one_b1 = (FB_T)(1.0 - c->beta1);
    FB_T b2 = (FB_T)c->beta2, one_b2 = (FB_T)(1.0 - c->beta2);
    FB_T eps = (FB_T)c->eps, wd = (FB_T)c->weight_decay;
    FB_T shrink = (FB_T)(1.0 - c->lr * c->weight_decay);
    /* 1/sqrt(1-b2^t) once per step, in double, rounded once: one division per element
     * fewer than PyTorch's sqrt(v)/bc2 (Adam is divide-bound on AVX-512), at a cost of
     * at most 1 ulp in the denominator. */
    FB_T step = (FB_T)st->step_size, inv_bc2 = (FB_T)(1.0 / st->bc2_sqrt);
    int decay = c->weight_decay != 0;
    int coupled = decay && !c->decoupled, decoupled = decay && c->decoupled;
    int amsgrad = c->amsgrad, folded = c->folded;
    int low = one_b1 < (FB_T)0.5;  /* which side of torch.lerp's formula applies */
#define FB_ADAM_LOOP(C, D, A, F, L) \
    for (i = 0; i < n; i++) \
        FB_NAME(adam_elem)(p, g, m, v, vmax, i, b1, one_b1, b2, one_b2, eps, wd, shrink, step, \
                           inv_bc2, C, D, A, F, L)
    if (low && !amsgrad && !folded && !coupled && !decoupled) FB_ADAM_LOOP(0, 0, 0, 0, 1);
    else if (low && !amsgrad && !folded && decoupled) FB_ADAM_LOOP(0, 1, 0, 0, 1);
    else if (low && !amsgrad && !folded && coupled) FB_ADAM_LOOP(1, 0, 0, 0, 1);
    else if (!amsgrad && folded && !coupled && !decoupled) FB_ADAM_LOOP(0, 0, 0, 1, 1);
    else FB_ADAM_LOOP(coupled, decoupled, amsgrad, folded, low);
#undef FB_ADAM_LOOP
}

/* One step of the configured optimizer on one buffer; s holds its state arrays in
 * the kind's kernel_state order (NULL where unused). */
static void FB_NAME(fb_optim_update)(FB_T* p, const FB_T* g, void* const* s, ptrdiff_t n,
        const fb_optim_config* c, const fb_optim_step* st) {
    switch (c->kind) {
    case FB_OPT_SGD: FB_NAME(fb_sgd)(p, g, (FB_T*)s[0], n, c, st); break;
    case FB_OPT_ADAGRAD: FB_NAME(fb_adagrad)(p, g, (FB_T*)s[0], n, c); break;
    case FB_OPT_RMSPROP:
        FB_NAME(fb_rmsprop)(p, g, (FB_T*)s[0], (FB_T*)s[1], (FB_T*)s[2], n, c); break;
    default: FB_NAME(fb_adam)(p, g, (FB_T*)s[0], (FB_T*)s[1], (FB_T*)s[2], n, c, st); break;
    }
}
