# Dropout masks and their application (the C loops are in _dropout.h). The engine
# (network.pyx) calls these inline wrappers; dropout.pyx holds fastbp.ops' entry points.
from cython cimport floating
from libc.stdint cimport uint64_t

cdef extern from "_dropout.h" nogil:
    uint64_t dropout_layer_key "fb_dropout_layer_key"(uint64_t seed, uint64_t layer)
    uint64_t dropout_step_key "fb_dropout_step_key"(uint64_t layer_key, uint64_t step)
    uint64_t dropout_threshold "fb_dropout_threshold"(double p)
    void dropout_mask "fb_dropout_mask"(uint64_t key, uint64_t threshold, unsigned char* keep,
                                        Py_ssize_t n)
    void dropout_forward_f32 "fb_dropout_forward_f32"(uint64_t key, uint64_t threshold,
                                                      float scale, const float* A, float* out,
                                                      unsigned char* keep, Py_ssize_t n)
    void dropout_forward_f64 "fb_dropout_forward_f64"(uint64_t key, uint64_t threshold,
                                                      double scale, const double* A,
                                                      double* out, unsigned char* keep,
                                                      Py_ssize_t n)
    void dropout_backward_f32 "fb_dropout_backward_f32"(float scale, const unsigned char* keep,
                                                        float* D, Py_ssize_t n)
    void dropout_backward_f64 "fb_dropout_backward_f64"(double scale,
                                                        const unsigned char* keep, double* D,
                                                        Py_ssize_t n)


cdef inline void dropout_forward_ptr(uint64_t key, uint64_t threshold, double scale,
                                     const floating* A, floating* out, unsigned char* keep,
                                     Py_ssize_t n) noexcept nogil:
    """keep := the mask of stream ``key`` (n elements); out := A·m, m = scale or 0,
    with scale (1/(1-p)) rounded to the buffer's dtype."""
    if floating is float:
        dropout_forward_f32(key, threshold, <float>scale, A, out, keep, n)
    else:
        dropout_forward_f64(key, threshold, scale, A, out, keep, n)


cdef inline void dropout_backward_ptr(double scale, const unsigned char* keep, floating* D,
                                      Py_ssize_t n) noexcept nogil:
    """D := D·m in place."""
    if floating is float:
        dropout_backward_f32(<float>scale, keep, D, n)
    else:
        dropout_backward_f64(scale, keep, D, n)
