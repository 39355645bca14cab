/* Whether an array holds only finite values: the input check of the lean
 * prediction and training paths (network.pyx), built per instruction set.
 *
 * x - x is 0 for every finite x and NaN otherwise: a subtraction, a comparison
 * and an integer OR per element, which vectorise (a floating-point sum would not,
 * without reassociation). Exact at every vector width.
 */
#ifndef FASTBP_FINITE_H
#define FASTBP_FINITE_H

#include <stddef.h>
#include "_simd.h"

FASTBP_CLONES static int fb_all_finite_f32(const float* x, ptrdiff_t n) {
    int bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) bad |= (x[i] - x[i]) != 0;
    return !bad;
}

FASTBP_CLONES static int fb_all_finite_f64(const double* x, ptrdiff_t n) {
    int bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) bad |= (x[i] - x[i]) != 0;
    return !bad;
}

#endif
