from cython cimport floating

cdef double clip_correction_ptr(int loss, const floating* out, const floating* target,
                                const Py_ssize_t* labels, const double* w, Py_ssize_t n,
                                Py_ssize_t k, double eps, bint* recompute) noexcept nogil

cdef double clipped_log_loss_ptr(int loss, const floating* out, const floating* target,
                                 const Py_ssize_t* labels, const double* w, Py_ssize_t n,
                                 Py_ssize_t k, double eps) noexcept nogil
