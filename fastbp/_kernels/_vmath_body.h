/* Included by _vmath.h with FB_T (float or double) and FB_NAME set. */

#ifdef FB_F32_BODY
#define FB_TANH(z) fb_tanhf(z)
#define FB_SIGMOID(z) fb_sigmoidf(z)
#else
#define FB_TANH(z) fb_tanh((double)(z))
#define FB_SIGMOID(z) fb_sigmoid((double)(z))
#endif

/* A[i] := tanh(Z[i]) for i < n (A may be Z). */
FASTBP_CLONES static void FB_NAME(fb_tanh_array)(const FB_T* Z, FB_T* A, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) A[i] = (FB_T)FB_TANH(Z[i]);
}

/* A[i] := σ(Z[i]) for i < n (A may be Z). */
FASTBP_CLONES static void FB_NAME(fb_sigmoid_array)(const FB_T* Z, FB_T* A, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) A[i] = (FB_T)FB_SIGMOID(Z[i]);
}
#undef FB_TANH
#undef FB_SIGMOID

#ifdef FB_F32_BODY
/* float32's other activations (act: FB_ACT_* of _table.h): A[i] := f(Z[i]) (A may be
 * Z), and dZ[i] := f'(Z[i])·dA[i] (dZ may be dA), as the double kernels of _math.pxd
 * and activations.pyx compute them, in float. */
FASTBP_CLONES static void FB_NAME(fb_act_forward_array)(int act, const float* Z, float* A,
                                                       ptrdiff_t n) {
    const float alpha = (float)FB_ELU_ALPHA;
    if (act == FB_ACT_SILU)
        for (ptrdiff_t i = 0; i < n; i++) A[i] = Z[i] * fb_sigmoidf(Z[i]);
    else if (act == FB_ACT_ELU)
        for (ptrdiff_t i = 0; i < n; i++) {
            float z = Z[i];
            A[i] = z > 0.0f ? z : alpha * fb_expm1_negf(z > 0.0f ? 0.0f : z);
        }
    else if (act == FB_ACT_SOFTPLUS)
        for (ptrdiff_t i = 0; i < n; i++) A[i] = fb_softplusf(Z[i]);
    else if (act == FB_ACT_GELU)
        for (ptrdiff_t i = 0; i < n; i++) A[i] = Z[i] * fb_normal_cdff(Z[i]);
    else if (act == FB_ACT_SELU)
        for (ptrdiff_t i = 0; i < n; i++) {
            float z = Z[i];
            A[i] = (float)FB_SELU_SCALE * (z > 0.0f ? z : (float)FB_SELU_ALPHA *
                                           fb_expm1_negf(z > 0.0f ? 0.0f : z));
        }
    else if (act == FB_ACT_MISH)
        for (ptrdiff_t i = 0; i < n; i++) A[i] = Z[i] * fb_tanh_softplusf(Z[i]);
}

FASTBP_CLONES static void FB_NAME(fb_act_backward_array)(int act, const float* Z,
                                                        const float* dA, float* dZ,
                                                        ptrdiff_t n) {
    const float alpha = (float)FB_ELU_ALPHA;
    const float inv_sqrt_2pi = 0.398942280401432678f;
    if (act == FB_ACT_SILU)
        for (ptrdiff_t i = 0; i < n; i++) {
            float z = Z[i], s = fb_sigmoidf(z);
            dZ[i] = dA[i] * (s * (1.0f + z * fb_sigmoid_complementf(z)));
        }
    else if (act == FB_ACT_ELU)
        for (ptrdiff_t i = 0; i < n; i++) {
            float z = Z[i], d = dA[i];
            dZ[i] = z > 0.0f ? d : d * (alpha * fb_expf(z > 0.0f ? 0.0f : z));
        }
    else if (act == FB_ACT_SOFTPLUS)
        for (ptrdiff_t i = 0; i < n; i++) {
            float z = Z[i], d = dA[i];
            dZ[i] = z > (float)FB_SOFTPLUS_THRESHOLD ? d : d * fb_sigmoidf(z);
        }
    else if (act == FB_ACT_GELU)
        for (ptrdiff_t i = 0; i < n; i++) {
            float z = Z[i];
            dZ[i] = dA[i] * (fb_normal_cdff(z) + z * inv_sqrt_2pi * fb_gauss_kernelf(z));
        }
    else if (act == FB_ACT_SELU)
        for (ptrdiff_t i = 0; i < n; i++) {
            float z = Z[i], d = dA[i];
            dZ[i] = (float)FB_SELU_SCALE * (z > 0.0f ? d : d * ((float)FB_SELU_ALPHA *
                                            fb_expf(z > 0.0f ? 0.0f : z)));
        }
    else if (act == FB_ACT_MISH)
        for (ptrdiff_t i = 0; i < n; i++) dZ[i] = dA[i] * fb_mish_gradf(Z[i]);
}
#endif

/* out[j] := e^(x[j] - shift) for j < k (out may be x); returns the sum of the
 * unrounded values, added in order in double (the sequential sum the reference's
 * tolerances assume).
 * The exps go through a small double buffer so that they vectorise while the
 * sum keeps its sequential order. */
FASTBP_CLONES static double FB_NAME(fb_exp_shifted)(const FB_T* x, FB_T* out, ptrdiff_t k,
                                                   double shift) {
    double buf[64], s = 0.0;
    for (ptrdiff_t start = 0; start < k; start += 64) {
        ptrdiff_t m = k - start < 64 ? k - start : 64;
        for (ptrdiff_t j = 0; j < m; j++) buf[j] = fb_exp((double)x[start + j] - shift);
        for (ptrdiff_t j = 0; j < m; j++) {
            out[start + j] = (FB_T)buf[j];
            s += buf[j];
        }
    }
    return s;
}

/* For each row i < n of x (n×k, row-major): row_max[i] := max_j x[i,j],
 * out[i,j] := e^(x[i,j] - row_max[i]) and row_sum[i] := the sum of the unrounded
 * exps, added in order in double (out may be x). The softmax / cross-entropy
 * first half. Short rows are batched so that the exps of many rows run as one
 * vectorised loop; rows longer than the buffer go through fb_exp_shifted. */
FASTBP_CLONES static void FB_NAME(fb_exp_rows)(const FB_T* x, FB_T* out, ptrdiff_t n,
                                              ptrdiff_t k, double* row_max, double* row_sum) {
    enum { BUF = 256 };
    double buf[BUF];
    if (k <= 0) return;
    ptrdiff_t rows = k <= BUF ? BUF / k : 1;
    for (ptrdiff_t i0 = 0; i0 < n; i0 += rows) {
        ptrdiff_t m = n - i0 < rows ? n - i0 : rows;
        for (ptrdiff_t i = i0; i < i0 + m; i++) {
            const FB_T* row = x + i * k;
            double mx = row[0];
            for (ptrdiff_t j = 1; j < k; j++) mx = row[j] > mx ? row[j] : mx;
            row_max[i] = mx;
            if (k > BUF) row_sum[i] = FB_NAME(fb_exp_shifted)(row, out + i * k, k, mx);
            else for (ptrdiff_t j = 0; j < k; j++) buf[(i - i0) * k + j] = (double)row[j] - mx;
        }
        if (k > BUF) continue;
        for (ptrdiff_t t = 0; t < m * k; t++) buf[t] = fb_exp(buf[t]);
        for (ptrdiff_t i = i0; i < i0 + m; i++) {
            double s = 0.0;
            for (ptrdiff_t j = 0; j < k; j++) {
                double e = buf[(i - i0) * k + j];
                out[i * k + j] = (FB_T)e;
                s += e;
            }
            row_sum[i] = s;
        }
    }
}

/* The binary cross-entropy on logits, element-wise, for i < n: term[i] := (1 − y)·x −
 * log σ(x) (in double, for the caller's ordered sum) and d[i] := (σ(x) − y)·scale, with
 * x = o[i], y = t[i]; σ and log σ share one e^−|x| (the same bits as fb_sigmoid's and
 * fb_log_sigmoid's). */
FASTBP_CLONES static void FB_NAME(fb_bce_logits_terms)(const FB_T* o, const FB_T* t, FB_T* d,
                                                      double* term, ptrdiff_t n,
                                                      double scale) {
    for (ptrdiff_t i = 0; i < n; i++) {
        double x = o[i], y = t[i];
        double e = fb_exp(-fabs(x));
        double log_sig = (x < 0.0 ? x : 0.0) - fb_log1p_unit(e);
        double sig = x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        term[i] = (1.0 - y) * x - log_sig;
        d[i] = (FB_T)((sig - y) * scale);
    }
}
