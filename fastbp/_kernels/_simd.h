/* Shared macros of the C kernel headers (_optim_simd.h, _vmath.h).
 *
 * FASTBP_CLONES: GCC's target_clones builds a loop for AVX-512, AVX2 and the
 * SSE2 baseline a portable wheel targets, and picks one at load time (Linux with
 * GCC only; elsewhere the baseline). Kernels under it use only +, -, *, /, sqrt,
 * comparisons and integer bit operations, all exact or correctly rounded at any
 * vector width, and -ffp-contract=off forbids FMA contraction: every clone gives
 * the same bits.
 */
#ifndef FASTBP_SIMD_H
#define FASTBP_SIMD_H

/* (unused: each module that includes a header uses only some of its kernels)
 * target_clones needs ifunc, which glibc has and musl does not: <limits.h>
 * pulls in the libc's feature header that defines __GLIBC__. */
#include <limits.h>
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && defined(__GLIBC__)
#define FASTBP_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), unused))
#elif defined(__GNUC__) || defined(__clang__)
#define FASTBP_CLONES __attribute__((unused))
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

#endif
