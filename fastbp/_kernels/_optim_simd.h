/* Optimizer update loops, compiled once per instruction set.
 *
 * Why C: these loops are memory- and divide-bound, and AVX2/AVX-512 double
 * their speed over the SSE2 baseline a portable wheel is built for. GCC's
 * target_clones builds each loop for AVX-512, AVX2 and the baseline and picks
 * one at load time (on Linux with GCC; elsewhere the baseline only). The
 * arithmetic is the same in every clone: IEEE +, -, *, / and sqrt are
 * correctly rounded at any vector width, and -ffp-contract=off forbids FMA
 * contraction, so the clones give bit-identical results.
 *
 * Each kernel is the element update of PyTorch's single-tensor optimizer
 * (torch/optim/{sgd,adagrad,rmsprop,adam}.py), in its order of operations.
 * The common option sets get loops of their own with the flags as constants.
 * _optim_body.h holds the kernels; it is included once per dtype.
 */
#ifndef FASTBP_OPTIM_SIMD_H
#define FASTBP_OPTIM_SIMD_H

#include <math.h>
#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FASTBP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FASTBP_CLONES
#endif
#if defined(__GNUC__) || defined(__clang__)
#define FASTBP_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FASTBP_INLINE static __forceinline
#else
#define FASTBP_INLINE static inline
#endif

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

#endif
