# The optimizer kernels and the object an optimizer shares with the compiled engine.
from cython cimport floating

cdef extern from "_optim_config.h" nogil:
    ctypedef struct fb_optim_config:
        int kind
        double lr, momentum, dampening, weight_decay, eps, alpha, beta1, beta2
        int nesterov, centered, decoupled, amsgrad, folded
    ctypedef struct fb_optim_step:
        long long step
        double step_size
        double bc2_sqrt


cdef class OptimizerLink:
    # What a fastbp.optim.Optimizer shares with the engine (fastbp/_kernels/network.pyx):
    # its configuration record (a fastbp._optim_config record, replaced whole on
    # every hyper-parameter assignment), its state tuple (replaced by
    # load_state_dict) and its step counter (advanced by whoever steps).
    cdef public object config
    cdef public tuple state
    cdef public long long step_count


cdef int fill_config(object config, fb_optim_config* c) except -1
cdef void optim_begin_step(const fb_optim_config* c, long long step,
                           fb_optim_step* st) noexcept nogil
cdef void optim_update_ptr(floating* p, const floating* g, void** state, Py_ssize_t size,
                           const fb_optim_config* c, const fb_optim_step* st) noexcept nogil
