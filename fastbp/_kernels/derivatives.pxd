from cython cimport floating

# f'(Z) and f''(Z) element-wise (d2 may be NULL), for the element-wise activations
cdef void act_derivatives(int act, const floating* Z, const floating* A, floating* d1,
                          floating* d2, Py_ssize_t size) noexcept nogil
