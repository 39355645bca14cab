/* Vectorisable exp, tanh and sigmoid, and the activation loops that use them.
 *
 * Why: libm's exp is a scalar call (about 8 ns an element here), and tanh,
 * sigmoid and softmax spend most of their time in it; in the small networks
 * fastbp is for, that is a large share of a training step. fb_exp below is
 * branch-free arithmetic, so GCC vectorises the loops that call it (4 or 8
 * doubles at a time, _simd.h). Everything is evaluated in double for both
 * dtypes, as the scalar kernels in _math.pxd (softplus, gelu, elu, ...) are,
 * and rounded once.
 *
 * Accuracy: fb_exp is within 2 ulp of e^x over the whole double range
 * (measured against libm in tests/test_vmath.py), including overflow to inf,
 * gradual underflow to subnormals and 0, and NaN. fb_tanh and fb_sigmoid are
 * the only tanh and sigmoid of the kernels (_math.pxd declares fb_sigmoid as its
 * scalar sigmoid). Each instruction-set variant is tested bit for bit against the
 * others (_simd_variants.h).
 */
#ifndef FASTBP_VMATH_H
#define FASTBP_VMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_simd.h"

/* Unsigned, so that the shifts and wrap-arounds below are defined for any input. */
FASTBP_INLINE uint64_t fb_bits(double x) { uint64_t i; memcpy(&i, &x, 8); return i; }
FASTBP_INLINE double fb_from_bits(uint64_t i) { double x; memcpy(&x, &i, 8); return x; }

/* 1.5·2^52: for |v| < 2^51, (v + SHIFTER) - SHIFTER is v rounded to an integer,
 * and the low bits of v + SHIFTER hold that integer. */
#define FB_SHIFTER 6755399441055744.0

/* 2^n for an integral double n in [-1022, 1023], built in the exponent bits. */
FASTBP_INLINE double fb_pow2(double n) {
    return fb_from_bits((fb_bits(n + FB_SHIFTER) - fb_bits(FB_SHIFTER) + 1023u) << 52);
}

/* e^x = 2^n · e^r with n = round(x / ln 2) and r = x - n·ln 2 (Cody and Waite's
 * two-part ln 2, whose high part times n is exact), |r| <= 0.3466; e^r by its
 * Taylor series to r^13/13! (truncation below 5e-18 relative). 2^n is applied as
 * two factors so that results between 2^-1074 and 2^-1022 round once into the
 * subnormals. x is clamped to [-746, 710] first: e^-746 rounds to 0 and e^710 to
 * inf, and NaN passes through (every comparison with it is false). The shifter
 * rounding assumes the default round-to-nearest mode (fastbp never changes it). */
FASTBP_INLINE double fb_exp(double x) {
    const double LOG2E = 1.44269504088896338700e+00;
    const double LN2_HI = 6.93147180369123816490e-01;   /* 32 trailing zero bits */
    const double LN2_LO = 1.90821492927058770002e-10;
    double xc = x < -746.0 ? -746.0 : (x > 710.0 ? 710.0 : x);
    double n = (xc * LOG2E + FB_SHIFTER) - FB_SHIFTER;
    double r = (xc - n * LN2_HI) - n * LN2_LO;
    double p = 1.0 / 6227020800.0;                        /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* n in [-1077, 1025]: halves in [-539, 513], each a normal power of two. */
    double n1 = ((n * 0.5) + FB_SHIFTER) - FB_SHIFTER;
    return (p * fb_pow2(n1)) * fb_pow2(n - n1);
}

/* tanh after Cephes: 1 - 2/(e^(2|x|) + 1) with the sign of x
 * for |x| > 0.625, else x + x³·P(x²)/Q(x²); both evaluated, one selected. |x| is
 * capped at 22 (tanh(22) rounds to 1); -0.0 keeps its sign. */
FASTBP_INLINE double fb_tanh(double x) {
    double a = fabs(x);
    double e = fb_exp(2.0 * (a > 22.0 ? 22.0 : a));
    double big = 1.0 - 2.0 / (e + 1.0);
    double z = x * x;
    double small = x + x * z * (((-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z
                                 - 1.61468768441708447952e3)
                                / (((z + 1.12811678491632931402e2) * z
                                    + 2.23548839060100448583e3) * z
                                   + 4.84406305325125486048e3));
    small = z == 0.0 ? x : small;
    return a > 0.625 ? (x > 0.0 ? big : -big) : small;
}

/* σ(z): 1/(1+e^-z) for z >= 0, e^z/(1+e^z) below (never overflows). */
FASTBP_INLINE double fb_sigmoid(double z) {
    double e = fb_exp(-fabs(z));
    return z >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

#define FB_T float
#define FB_NAME(x) x##_f32
#include "_vmath_body.h"
#undef FB_T
#undef FB_NAME

#define FB_T double
#define FB_NAME(x) x##_f64
#include "_vmath_body.h"
#undef FB_T
#undef FB_NAME

#endif
