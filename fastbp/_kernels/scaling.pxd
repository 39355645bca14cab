from cython cimport floating

cdef void scale_forward_ptr(const floating* X, const floating* s, floating* out,
                            Py_ssize_t n, Py_ssize_t d) noexcept nogil
cdef void scale_backward_ptr(const floating* X, const floating* s, const floating* D,
                             floating* dX, floating* ds, Py_ssize_t n,
                             Py_ssize_t d) noexcept nogil
cdef void parametric_forward_ptr(int act, const floating* X, const floating* alpha,
                                 floating* F, floating* out, Py_ssize_t n,
                                 Py_ssize_t d) noexcept nogil
cdef void parametric_backward_ptr(int act, const floating* X, const floating* alpha,
                                  const floating* F, const floating* D, floating* dX,
                                  floating* dalpha, Py_ssize_t n,
                                  Py_ssize_t d) noexcept nogil
