/* Vectorisable sine and cosine together (the periodic embeddings' cos(2π·f·x) and
 * sin(2π·f·x)).
 *
 * Why: libm's sin and cos are scalar calls (tens of ns a pair); a periodic embedding
 * takes n · n_features · n_frequencies pairs per forward pass, more than its matrix
 * products take at the usual sizes. fb_sincos_array below is branch-free arithmetic
 * that GCC vectorises: a Cody-Waite reduction by π/2 in three parts (exact for
 * |a| <= FB_SINCOS_LIMIT: the quotient has at most 20 bits and π/2's first two parts 33)
 * and fdlibm's kernel polynomials on [-π/4, π/4]; the quadrant picks and signs them.
 * Arguments beyond the limit, and NaN or infinities, go to libm afterwards (a scalar
 * pass over the block). Within 2 ulp of libm (tests/test_layer_periodic.py measures it).
 */
#ifndef FASTBP_SINCOS_H
#define FASTBP_SINCOS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_simd.h"

#define FB_SINCOS_LIMIT 823549.0   /* 2^19 · π/2 */
#define FB_SINCOS_SHIFTER 6755399441055744.0   /* 1.5·2^52: rounds to an integer */

FASTBP_INLINE void fb_sincos(double a, double *s_out, double *c_out) {
    const double t = a * 6.36619772367581382433e-01 + FB_SINCOS_SHIFTER;   /* a·2/π */
    const double q = t - FB_SINCOS_SHIFTER;
    uint64_t bits;
    memcpy(&bits, &t, 8);
    const unsigned n = (unsigned)(bits & 3u);
    /* r = a − q·π/2, π/2 in three parts: fdlibm's pio2_1 and pio2_2 (33 bits each, so
     * their products with q are exact) and pio2_2t, the rest of π/2 */
    const double r = ((a - q * 1.57079632673412561417e+00) - q * 6.07710050630396597660e-11)
                     - q * 2.02226624879595063154e-21;
    const double z = r * r;
    const double sp = -1.66666666666666324348e-01 + z * (8.33333333332248946124e-03
        + z * (-1.98412698298579493134e-04 + z * (2.75573137070700676789e-06
        + z * (-2.50507602534068634195e-08 + z * 1.58969099521155010221e-10))));
    const double S = r + r * z * sp;
    const double cp = 4.16666666666666019037e-02 + z * (-1.38888888888741095749e-03
        + z * (2.48015872894767294178e-05 + z * (-2.75573143513906633035e-07
        + z * (2.08757232129817482790e-09 + z * -1.13596475577881948265e-11))));
    const double hz = 0.5 * z;
    const double w = 1.0 - hz;
    const double C = w + (((1.0 - w) - hz) + z * z * cp);
    const double sv = (n & 1u) ? C : S;
    const double cv = (n & 1u) ? S : C;
    *s_out = (n & 2u) ? -sv : sv;
    *c_out = ((n + 1u) & 2u) ? -cv : cv;
}

/* s[i] = sin(a[i]), c[i] = cos(a[i]) for i < n (clones per instruction set: the same
 * bits on each, see _simd.h). */
FASTBP_CLONES static void fb_sincos_array(const double *a, double *s, double *c,
                                          ptrdiff_t n) {
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        fb_sincos(a[i], &s[i], &c[i]);
    }
    for (i = 0; i < n; i++) {
        if (!(fabs(a[i]) <= FB_SINCOS_LIMIT)) {
            s[i] = sin(a[i]);
            c[i] = cos(a[i]);
        }
    }
}

#endif
