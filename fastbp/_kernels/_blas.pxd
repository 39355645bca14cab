from cython cimport floating

cdef void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
               double alpha, const floating* A, Py_ssize_t lda,
               const floating* B, Py_ssize_t ldb,
               double beta, floating* C, Py_ssize_t ldc) noexcept nogil

cdef double dot_self(const floating* x, Py_ssize_t n) noexcept nogil
cdef void axpy(Py_ssize_t n, double a, const floating* x, floating* y) noexcept nogil
