from cython cimport floating

cdef void dense_forward_ptr(int act, const floating* X, const floating* W, const floating* b,
                            floating* Z, floating* A,
                            Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil
cdef void dense_backward_ptr(int act, const floating* X, const floating* W,
                             const floating* Z, const floating* A, const floating* dA,
                             floating* dZ, floating* dX, floating* dW, floating* db,
                             Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil
cdef void column_sums_ptr(const floating* M, floating* out, Py_ssize_t n,
                          Py_ssize_t k) noexcept nogil
