/* Every instruction-set variant of the optimizer and _vmath loops under its own
 * name, for the test that compares them bit for bit (simd_variants.pyx,
 * tests/test_simd_variants.py).
 *
 * Production code reaches these loops through GCC's target_clones (_simd.h),
 * which picks one clone per CPU at load time, so a test run sees only that one.
 * Here the same bodies are compiled once more per target, with the attribute
 * each clone gets (target("avx512f"), target("avx2"), and none for the
 * baseline), and with a suffix naming it: fb_optim_update_f32_avx2, ... The
 * caller must check that the CPU runs a variant (fb_variant_supported).
 */
#ifndef FASTBP_SIMD_VARIANTS_H
#define FASTBP_SIMD_VARIANTS_H

#include "_optim_simd.h"
#include "_vmath.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && defined(__GLIBC__)
#define FB_HAVE_VARIANTS 1
#else
#define FB_HAVE_VARIANTS 0
#endif

#undef FASTBP_CLONES
#define FB_CAT2(a, b) a##b
#define FB_CAT(a, b) FB_CAT2(a, b)

#define FB_SUFFIX _baseline
#define FASTBP_CLONES __attribute__((unused))
#include "_simd_variant_body.h"
#undef FB_SUFFIX
#undef FASTBP_CLONES

#if FB_HAVE_VARIANTS
#define FB_SUFFIX _avx2
#define FASTBP_CLONES __attribute__((target("avx2"), unused))
#include "_simd_variant_body.h"
#undef FB_SUFFIX
#undef FASTBP_CLONES

#define FB_SUFFIX _avx512
#define FASTBP_CLONES __attribute__((target("avx512f"), unused))
#include "_simd_variant_body.h"
#undef FB_SUFFIX
#undef FASTBP_CLONES
#endif

/* 0 baseline, 1 avx2, 2 avx512: whether this CPU runs it and this build has it. */
static int fb_variant_supported(int v) {
    if (v == 0) return 1;
#if FB_HAVE_VARIANTS
    __builtin_cpu_init();
    if (v == 1) return __builtin_cpu_supports("avx2");
    if (v == 2) return __builtin_cpu_supports("avx512f");
#endif
    return 0;
}

#define FB_DISPATCH(v, fn, args) do { \
        if ((v) == 0) fn##_baseline args; \
        FB_DISPATCH_MORE(v, fn, args) \
    } while (0)
#if FB_HAVE_VARIANTS
#define FB_DISPATCH_MORE(v, fn, args) \
        else if ((v) == 1) fn##_avx2 args; \
        else fn##_avx512 args;
#else
#define FB_DISPATCH_MORE(v, fn, args)
#endif

static void fb_variant_optim_update_f32(int v, float* p, const float* g, void* const* s,
        ptrdiff_t n, const fb_optim_config* c, const fb_optim_step* st) {
    FB_DISPATCH(v, fb_optim_update_f32, (p, g, s, n, c, st));
}
static void fb_variant_optim_update_f64(int v, double* p, const double* g, void* const* s,
        ptrdiff_t n, const fb_optim_config* c, const fb_optim_step* st) {
    FB_DISPATCH(v, fb_optim_update_f64, (p, g, s, n, c, st));
}
/* kernel: 0 tanh, 1 sigmoid, 2 exp_rows (x n×k; row_max, row_sum n), 3 bce_logits (the
 * targets read from out, which then holds the gradient, scale 1; the terms in row_sum,
 * n·k of them); float32 only: 4..7 silu, elu, softplus, gelu, 8..11 their derivatives
 * (dZ for dA = 1). */
static const int fb_variant_acts[4] = {FB_ACT_SILU, FB_ACT_ELU, FB_ACT_SOFTPLUS, FB_ACT_GELU};
static void fb_variant_vmath_f32(int v, int kernel, const float* x, float* out, ptrdiff_t n,
        ptrdiff_t k, double* row_max, double* row_sum) {
    if (kernel == 0) FB_DISPATCH(v, fb_tanh_array_f32, (x, out, n * k));
    else if (kernel == 1) FB_DISPATCH(v, fb_sigmoid_array_f32, (x, out, n * k));
    else if (kernel == 2) FB_DISPATCH(v, fb_exp_rows_f32, (x, out, n, k, row_max, row_sum));
    else if (kernel == 3) FB_DISPATCH(v, fb_bce_logits_terms_f32, (x, out, out, row_sum, n * k, 1.0));
    else if (kernel <= 7)
        FB_DISPATCH(v, fb_act_forward_array_f32, (fb_variant_acts[kernel - 4], x, out, n * k));
    else {
        for (ptrdiff_t i = 0; i < n * k; i++) out[i] = 1.0f;
        FB_DISPATCH(v, fb_act_backward_array_f32,
                    (fb_variant_acts[kernel - 8], x, out, out, n * k));
    }
}
static void fb_variant_vmath_f64(int v, int kernel, const double* x, double* out, ptrdiff_t n,
        ptrdiff_t k, double* row_max, double* row_sum) {
    if (kernel == 0) FB_DISPATCH(v, fb_tanh_array_f64, (x, out, n * k));
    else if (kernel == 1) FB_DISPATCH(v, fb_sigmoid_array_f64, (x, out, n * k));
    else if (kernel == 3) FB_DISPATCH(v, fb_bce_logits_terms_f64, (x, out, out, row_sum, n * k, 1.0));
    else FB_DISPATCH(v, fb_exp_rows_f64, (x, out, n, k, row_max, row_sum));
}

#endif
