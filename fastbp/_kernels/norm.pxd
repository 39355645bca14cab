from cython cimport floating

cdef void layer_norm_forward_ptr(const floating* X, const floating* gamma,
                                 const floating* beta, floating* Xhat, floating* A,
                                 floating* rstd, Py_ssize_t n, Py_ssize_t k,
                                 double eps) noexcept nogil
cdef void layer_norm_backward_ptr(const floating* Xhat, const floating* rstd,
                                  const floating* gamma, const floating* dA, floating* dX,
                                  floating* dgamma, floating* dbeta, Py_ssize_t n,
                                  Py_ssize_t k) noexcept nogil
