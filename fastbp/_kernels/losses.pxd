from cython cimport floating
from libc.math cimport isfinite

cdef double loss_forward_backward_ptr(int loss, const floating* out, const floating* target,
                                      const Py_ssize_t* labels, floating* d_out,
                                      Py_ssize_t n, Py_ssize_t k) noexcept nogil

cdef bint labels_in_range_ptr(const Py_ssize_t* labels, Py_ssize_t n,
                              Py_ssize_t k) noexcept nogil

cdef double weighted_loss_ptr(int loss, const floating* out, const floating* target,
                              const Py_ssize_t* labels, const double* w, floating* d_out,
                              Py_ssize_t n, Py_ssize_t k) noexcept nogil

cdef inline void add(double* total, double* comp, double x) noexcept nogil:
    """total += x with Kahan's compensation: the mean over a large batch keeps
    float64's 1e-16 relative error instead of drifting by ~n·eps."""
    cdef double y = x - comp[0]
    cdef double t = total[0] + y
    # Past an infinity the compensation would turn inf into NaN: drop it there.
    comp[0] = (t - total[0]) - y if isfinite(t) else 0.0
    total[0] = t
