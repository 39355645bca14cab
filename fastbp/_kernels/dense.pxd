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
cdef void batch_ensemble_forward_ptr(const floating* X, const floating* W,
                                     const floating* r, const floating* s,
                                     const floating* b, floating* U, floating* V,
                                     floating* Y, Py_ssize_t n, Py_ssize_t k,
                                     Py_ssize_t d_in, Py_ssize_t d_out,
                                     bint shared) noexcept nogil
cdef void batch_ensemble_backward_ptr(const floating* X, const floating* W,
                                      const floating* r, const floating* s,
                                      const floating* U, const floating* V,
                                      const floating* dY, floating* dV, floating* dU,
                                      floating* dX, floating* dW, floating* dr,
                                      floating* ds, floating* db, Py_ssize_t n,
                                      Py_ssize_t k, Py_ssize_t d_in, Py_ssize_t d_out,
                                      bint shared) noexcept nogil
cdef void linear_ensemble_forward_ptr(const floating* X, const floating* W,
                                      const floating* b, floating* Y, Py_ssize_t n,
                                      Py_ssize_t k, Py_ssize_t d_in,
                                      Py_ssize_t d_out) noexcept nogil
cdef void linear_ensemble_backward_ptr(const floating* X, const floating* W,
                                       const floating* dY, floating* dX, floating* dW,
                                       floating* db, Py_ssize_t n, Py_ssize_t k,
                                       Py_ssize_t d_in, Py_ssize_t d_out) noexcept nogil


cdef class SparseRows:
    cdef readonly object data       # (nnz,) float32/float64, private
    cdef readonly object indptr     # (n_rows + 1,) intp, private
    cdef readonly object indices    # (nnz,) intp, private
    cdef readonly Py_ssize_t n_rows
    cdef readonly Py_ssize_t n_cols
    cdef void* d
    cdef const Py_ssize_t* ip
    cdef const Py_ssize_t* ix


cdef void sparse_dense_forward_ptr(int act, const floating* data, const Py_ssize_t* indptr,
                                   const Py_ssize_t* indices, const Py_ssize_t* rows,
                                   Py_ssize_t row0, const floating* W, const floating* b,
                                   floating* Z, floating* A,
                                   Py_ssize_t n, Py_ssize_t n_out) noexcept nogil
cdef void sparse_dense_backward_ptr(int act, const floating* data, const Py_ssize_t* indptr,
                                    const Py_ssize_t* indices, const Py_ssize_t* rows,
                                    Py_ssize_t row0, const floating* Z, const floating* A,
                                    const floating* dA, floating* dZ, floating* dW,
                                    floating* db, Py_ssize_t n, Py_ssize_t n_in,
                                    Py_ssize_t n_out, const floating* W,
                                    double l2) noexcept nogil
