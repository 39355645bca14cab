from cython cimport floating

cdef void bias_activation_forward_ptr(int act, floating* Z, const floating* b, floating* A,
                                  Py_ssize_t n, Py_ssize_t k) noexcept nogil
cdef void activation_backward_ptr(int act, const floating* Z, const floating* A,
                                  const floating* dA, floating* dZ,
                                  Py_ssize_t n, Py_ssize_t k) noexcept nogil
