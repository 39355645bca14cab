/* The dropout loops of one dtype: included by _dropout.h with FB_T (float or
 * double) and FB_NAME (the suffix) defined. */

/* keep := the mask of stream `key`; out := A·m, m = scale (kept) or 0 (dropped).
 * Two loops: the integer one vectorises at 64-bit width, the product at FB_T's. */
FASTBP_CLONES static void FB_NAME(fb_dropout_forward)(uint64_t key, uint64_t threshold,
                                                      FB_T scale, const FB_T *A, FB_T *out,
                                                      unsigned char *keep, ptrdiff_t n) {
    fb_dropout_mask(key, threshold, keep, n);
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = A[i] * (keep[i] ? scale : (FB_T)0);
}

/* D := D·m in place (the backward of out = A·m). */
FASTBP_CLONES static void FB_NAME(fb_dropout_backward)(FB_T scale, const unsigned char *keep,
                                                       FB_T *D, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++)
        D[i] = D[i] * (keep[i] ? scale : (FB_T)0);
}
