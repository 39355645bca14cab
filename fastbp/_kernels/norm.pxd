from cython cimport floating

cdef void layer_norm_forward_ptr(const floating* X, const floating* gamma,
                                 const floating* beta, floating* Xhat, floating* A,
                                 floating* rstd, Py_ssize_t n, Py_ssize_t width,
                                 Py_ssize_t groups, double eps) noexcept nogil
cdef void layer_norm_backward_ptr(const floating* Xhat, const floating* rstd,
                                  const floating* gamma, const floating* dA, floating* dX,
                                  floating* dgamma, floating* dbeta, Py_ssize_t n,
                                  Py_ssize_t width, Py_ssize_t groups) noexcept nogil
cdef void batch_norm_train_forward_ptr(const floating* X, const floating* gamma,
                                       const floating* beta, floating* Xhat, floating* A,
                                       double* stats, floating* run_mean, floating* run_var,
                                       Py_ssize_t n, Py_ssize_t k, double eps,
                                       double momentum) noexcept nogil
cdef void batch_norm_eval_forward_ptr(const floating* X, const floating* gamma,
                                      const floating* beta, const floating* run_mean,
                                      const floating* run_var, floating* A, Py_ssize_t n,
                                      Py_ssize_t k, double eps) noexcept nogil
cdef void batch_norm_backward_ptr(const floating* Xhat, double* stats, const floating* gamma,
                                  const floating* dA, floating* dX, floating* dgamma,
                                  floating* dbeta, Py_ssize_t n, Py_ssize_t k) noexcept nogil
