/* Dropout masks from a counter-based generator, and the loops that apply them.
 *
 * Why counter-based: a mask element is a pure function of (model seed, layer,
 * step, element index), so the compiled engine and fastbp.reference (which
 * implements the same arithmetic in NumPy uint64) draw identical masks, a run
 * is reproducible bit for bit from its seed, and a model saved and reloaded
 * with its optimizer's step count continues with the masks it would have
 * drawn. There is no generator state to save, share between threads or
 * advance.
 *
 * The generator: the stream of one (seed, layer, step) is SplitMix64 (Steele,
 * Lea and Flood, 2014; the seeding generator of xoshiro, which passes BigCrush)
 * started at the key
 *
 *     key = absorb(absorb(mix(seed + GAMMA), layer), step),
 *     absorb(h, x) = mix(h ^ (x·GAMMA + ABSORB)),
 *
 * and its output j, u_j = mix(key + (j + 1)·GAMMA), gives two mask elements:
 * element i takes the 32-bit half h_i of u_(i/2), the low half for even i and
 * the high half for odd i. mix is SplitMix64's finalizer (a bijection of
 * uint64), so distinct layers, and distinct steps of a layer, give distinct
 * keys. Element i is kept iff h_i >= ceil(p·2^32), i.e. iff the 32-bit uniform
 * h_i/2^32 is >= p: the keep probability is 1 - p up to 2^-32. (Two elements
 * per 64-bit output: the hash is most of the cost, and 32 bits resolve p far
 * below anything a training run could notice.)
 *
 * Applying it (inverted dropout): out = a·m with m = 1/(1-p) for a kept
 * element and 0 for a dropped one, in the buffer's precision (a product, not a
 * select, so NaN and inf propagate as in PyTorch). The loops use only integer
 * arithmetic and one correctly rounded multiply, so every target_clones clone
 * (_simd.h) gives the same bits.
 */
#ifndef FASTBP_DROPOUT_H
#define FASTBP_DROPOUT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "_simd.h"

/* The mask loop is 64-bit integer multiplies, which AVX-512DQ does in hardware
 * (vpmullq) and AVX-512F and AVX2 emulate with three 32-bit ones: it gets an
 * x86-64-v4 clone (AVX-512 F, BW, CD, DQ, VL; twice as fast as the AVX-512F one
 * on a Xeon) where GCC can build it (GCC 12 and later), else _simd.h's clones.
 * Integer arithmetic only: every clone gives the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__) \
    && defined(__linux__) && defined(__GLIBC__)
#define FB_DROPOUT_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "avx2", "default"), unused))
#else
#define FB_DROPOUT_CLONES FASTBP_CLONES
#endif

#define FB_DROPOUT_GAMMA 0x9E3779B97F4A7C15ull   /* 2^64 / golden ratio (SplitMix64) */
#define FB_DROPOUT_ABSORB 0x632BE59BD9B4E019ull  /* any odd constant: absorb(h, 0) != h */

/* SplitMix64's finalizer (Stafford's "Mix13"). */
FASTBP_INLINE uint64_t fb_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

FASTBP_INLINE uint64_t fb_dropout_absorb(uint64_t h, uint64_t x) {
    return fb_mix64(h ^ (x * FB_DROPOUT_GAMMA + FB_DROPOUT_ABSORB));
}

/* The key of a layer's stream (once per model and layer) ... */
FASTBP_INLINE uint64_t fb_dropout_layer_key(uint64_t seed, uint64_t layer) {
    return fb_dropout_absorb(fb_mix64(seed + FB_DROPOUT_GAMMA), layer);
}

/* ... and of one step of it (once per layer and step). */
FASTBP_INLINE uint64_t fb_dropout_step_key(uint64_t layer_key, uint64_t step) {
    return fb_dropout_absorb(layer_key, step);
}

/* Keep iff h >= ceil(p·2^32) (at most 2^32: then every element is dropped); p·2^32
 * is exact, so this equals h/2^32 >= p for the 32-bit h. p in [0, 1). */
FASTBP_INLINE uint64_t fb_dropout_threshold(double p) {
    return (uint64_t)ceil(p * 4294967296.0);
}

/* keep[i] := 1 (keep) or 0 (drop), mask element i of the stream `key`, for i < n. */
FB_DROPOUT_CLONES static void fb_dropout_mask(uint64_t key, uint64_t threshold, unsigned char *keep,
                                          ptrdiff_t n) {
    uint64_t counter = key;   /* key + (j + 1)·GAMMA as a running sum: an add, not a multiply */
    ptrdiff_t j;
    for (j = 0; j < n / 2; j++) {
        uint64_t u;
        counter += FB_DROPOUT_GAMMA;
        u = fb_mix64(counter);
        keep[2 * j] = (u & 0xFFFFFFFFu) >= threshold;
        keep[2 * j + 1] = (u >> 32) >= threshold;
    }
    if (n % 2)
        keep[n - 1] = (fb_mix64(counter + FB_DROPOUT_GAMMA) & 0xFFFFFFFFu) >= threshold;
}

#define FB_T float
#define FB_NAME(x) x##_f32
#include "_dropout_body.h"
#undef FB_T
#undef FB_NAME

#define FB_T double
#define FB_NAME(x) x##_f64
#include "_dropout_body.h"
#undef FB_T
#undef FB_NAME

#endif
