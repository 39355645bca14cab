from cython cimport floating

cdef void periodic_forward_ptr(const floating* X, const floating* freq, const floating* W,
                               const floating* b, floating* P, floating* Z, floating* A,
                               Py_ssize_t n, Py_ssize_t F, Py_ssize_t k, Py_ssize_t d,
                               bint lite, bint relu) noexcept nogil
cdef void periodic_backward_ptr(const floating* X, const floating* freq, const floating* W,
                                const floating* P, const floating* Z, const floating* A,
                                floating* D, floating* dX, floating* dfreq, floating* dW,
                                floating* db, floating* dP, Py_ssize_t n, Py_ssize_t F,
                                Py_ssize_t k, Py_ssize_t d, bint lite,
                                bint relu) noexcept nogil
cdef void ple_forward_ptr(const floating* X, const Py_ssize_t* feat, const floating* coef,
                          floating* A, Py_ssize_t n, Py_ssize_t F, Py_ssize_t m) noexcept nogil
cdef void ple_backward_ptr(const floating* X, const Py_ssize_t* feat, const floating* coef,
                           const floating* D, floating* dX, Py_ssize_t n, Py_ssize_t F,
                           Py_ssize_t m) noexcept nogil
cdef void cat_numeric_forward_ptr(const floating* X, const Py_ssize_t* numeric,
                                  floating* A, Py_ssize_t n, Py_ssize_t F, Py_ssize_t n_num,
                                  Py_ssize_t width) noexcept nogil
cdef void cat_column_forward_ptr(const floating* X, const floating* table, floating* A,
                                 Py_ssize_t n, Py_ssize_t F, Py_ssize_t col, Py_ssize_t card,
                                 Py_ssize_t dim, Py_ssize_t width,
                                 Py_ssize_t offset) noexcept nogil
cdef void cat_numeric_backward_ptr(const Py_ssize_t* numeric, const floating* D, floating* dX,
                                   Py_ssize_t n, Py_ssize_t F, Py_ssize_t n_num,
                                   Py_ssize_t width) noexcept nogil
cdef void cat_column_backward_ptr(const floating* X, const floating* D, floating* dtable,
                                  Py_ssize_t n, Py_ssize_t F, Py_ssize_t col, Py_ssize_t card,
                                  Py_ssize_t dim, Py_ssize_t width,
                                  Py_ssize_t offset) noexcept nogil
cdef void periodic_bias_forward_ptr(const floating* X, const floating* freq,
                                    const floating* phase, const floating* W,
                                    const floating* b, floating* P, floating* A,
                                    Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t F, Py_ssize_t k,
                                    Py_ssize_t d) noexcept nogil
cdef void periodic_bias_backward_ptr(const floating* X, const floating* freq,
                                     const floating* W, const floating* P, const floating* D,
                                     floating* dX, floating* dfreq, floating* dphase,
                                     floating* dW, floating* db, floating* dP, Py_ssize_t n,
                                     Py_ssize_t n_in, Py_ssize_t F, Py_ssize_t k,
                                     Py_ssize_t d) noexcept nogil
