from cython cimport floating

cdef void sgd_ptr(floating* p, const floating* g, floating* buf, Py_ssize_t size,
                  double lr, double momentum, double dampening, bint nesterov,
                  double weight_decay, bint first_step) noexcept nogil
cdef void adagrad_ptr(floating* p, const floating* g, floating* sum_sq, Py_ssize_t size,
                      double lr, double eps, double weight_decay) noexcept nogil
cdef void rmsprop_ptr(floating* p, const floating* g, floating* sq_avg, floating* buf,
                      floating* grad_avg, Py_ssize_t size, double lr, double alpha, double eps,
                      double momentum, bint centered, double weight_decay) noexcept nogil
cdef void adam_ptr(floating* p, const floating* g, floating* m, floating* v, floating* vmax,
                   Py_ssize_t size, double lr, double beta1, double beta2, double eps,
                   double weight_decay, bint decoupled, bint amsgrad, bint folded,
                   double step_size, double bc2_sqrt) noexcept nogil
