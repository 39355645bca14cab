"""Optimizer updates on flat buffers, in place, and the optimizer-engine link.

Element-wise formulas follow PyTorch's single-tensor implementations
(``_single_tensor_{sgd,adagrad,rmsprop,adam}`` in ``torch/optim/{sgd,adagrad,rmsprop,adam}.py``),
so float32 runs in float32 arithmetic like PyTorch and float64 agrees with the
reference to rounding. The loops themselves are C (``_optim_body.h``), built
once per instruction set and chosen at load time; see ``_optim_simd.h``. Every
kernel reads the optimizer's configuration from one ``fb_optim_config``
(``_optim_config.h``), filled from the Python record by ``fill_config``.
"""
from cython cimport floating

cimport numpy as cnp

cnp.import_array()

from libc.stddef cimport ptrdiff_t

from fastbp._kernels._math cimport OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM

cdef extern from "_split.h" nogil:
    ctypedef void (*fb_range_fn)(void* ctx, ptrdiff_t lo, ptrdiff_t hi) noexcept nogil
    void fb_split2(fb_range_fn fn, void* ctx, ptrdiff_t n, ptrdiff_t elem_bytes)
    void fb_split_set_threads(int n)
    int fb_split_get_threads()
    long long fb_split_get_count()
    ptrdiff_t FB_SPLIT_MIN_BYTES

cdef extern from "_optim_simd.h" nogil:
    void fb_optim_begin_step(const fb_optim_config* c, long long step, fb_optim_step* st)
    void fb_optim_update_f32(float* p, const float* g, void** s, Py_ssize_t n,
                             const fb_optim_config* c, const fb_optim_step* st)
    void fb_optim_update_f64(double* p, const double* g, void** s, Py_ssize_t n,
                             const fb_optim_config* c, const fb_optim_step* st)


cdef class OptimizerLink:
    """An optimizer's configuration record, state tuple and step counter, in one typed
    object that the compiled engine reads and advances without Python lookups."""

    def __init__(self, config, tuple state, long long step_count=0):
        self.config = config
        self.state = state
        self.step_count = step_count

    def __reduce__(self):
        return OptimizerLink, (self.config, self.state, self.step_count)


cdef int fill_config(object config, fb_optim_config* c) except -1:
    """Copy a fastbp._optim_config record into the kernels' struct (0 where a kind has
    no such field)."""
    cdef int kind = config.kind
    if kind not in (OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM):
        raise TypeError(f"no compiled optimizer of kind {kind}")
    c.kind = kind
    c.lr = config.lr
    c.momentum = getattr(config, "momentum", 0.0)
    c.dampening = getattr(config, "dampening", 0.0)
    c.weight_decay = getattr(config, "weight_decay", 0.0)
    c.eps = getattr(config, "eps", 0.0)
    c.alpha = getattr(config, "alpha", 0.0)
    c.beta1 = getattr(config, "beta1", 0.0)
    c.beta2 = getattr(config, "beta2", 0.0)
    c.nesterov = getattr(config, "nesterov", False)
    c.centered = getattr(config, "centered", False)
    c.decoupled = getattr(config, "decoupled", False)
    c.amsgrad = getattr(config, "amsgrad", False)
    c.folded = getattr(config, "folded", False)
    return 0


cdef void optim_begin_step(const fb_optim_config* c, long long step,
                           fb_optim_step* st) noexcept nogil:
    """The values of step t shared by every buffer of that step (Adam's bias corrections)."""
    fb_optim_begin_step(c, step, st)


cdef struct UpdateJob:
    # one optimizer update, for update_range to run on a part [lo, hi) of the buffers
    void* p
    const void* g
    void* s[3]
    bint f32
    const fb_optim_config* c
    const fb_optim_step* st


cdef void update_range(void* ctx, ptrdiff_t lo, ptrdiff_t hi) noexcept nogil:
    """The update of elements [lo, hi): every state array is per element, like p."""
    cdef UpdateJob* job = <UpdateJob*>ctx
    cdef void* s[3]
    cdef int k
    cdef size_t size = sizeof(float) if job.f32 else sizeof(double)
    for k in range(3):
        s[k] = NULL if job.s[k] == NULL else <void*>(<char*>job.s[k] + lo * size)
    if job.f32:
        fb_optim_update_f32(<float*>job.p + lo, <const float*>job.g + lo, s, hi - lo,
                            job.c, job.st)
    else:
        fb_optim_update_f64(<double*>job.p + lo, <const double*>job.g + lo, s, hi - lo,
                            job.c, job.st)


def set_element_threads(int n):
    """Run the optimizer updates of large buffers on two threads (n >= 2) or one
    (set by fastbp.threads with the BLAS thread count; see _split.h)."""
    fb_split_set_threads(n)


def get_element_threads():
    """1 or 2: the threads an optimizer update of a large buffer runs on."""
    return fb_split_get_threads()


def split_count():
    """How many updates have run on two threads in this process (for the tests)."""
    return fb_split_get_count()


#: the smallest buffer (bytes) whose update is split over two threads
SPLIT_MIN_BYTES = FB_SPLIT_MIN_BYTES


cdef void optim_update_ptr(floating* p, const floating* g, void** state, Py_ssize_t size,
                           const fb_optim_config* c, const fb_optim_step* st) noexcept nogil:
    """One step of the configured optimizer on one buffer; ``state`` holds the kind's
    state arrays in its kernel_state order (NULL where unused).

    SGD: g' = g + λp; b = g' (step 1) or μb + (1-τ)g'; p -= lr·(g' + μb if nesterov else b).
    AdaGrad: g' = g + λp; s += g'²; p -= lr·g'/(√s + eps).
    RMSprop: v = αv + (1-α)g²; d = √(v - ḡ²) + eps (centered) or √v + eps;
    p -= lr·b with b = μb + g/d (momentum), else p -= lr·g/d.
    Adam (paper): m = lerp(m, g, 1-β₁); v = β₂v + (1-β₂)g²; p -= step_size·m/(√v·(1/bc2_sqrt) + eps);
    folded (scikit-learn): m = β₁m + (1-β₁)g; p -= step_size·m/(√v + eps).

    Large buffers are split over two threads when set_element_threads(2) is in force
    (the same bits: each element's update is independent of the others)."""
    cdef UpdateJob job
    cdef int k
    job.p = p
    job.g = g
    for k in range(3):
        job.s[k] = state[k]
    job.f32 = floating is float
    job.c = c
    job.st = st
    fb_split2(update_range, &job, size, sizeof(floating))


cdef void* _data(object a) except? NULL:
    """The data pointer of an optional flat buffer (NULL for None)."""
    if a is None:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray?>a)


cdef int _run(list params, list grads, list states, object config,
              long long step) except -1:
    """The shared body of every entry point: one configured step over the buffers.

    The caller guarantees flat C-contiguous arrays of one dtype, float32 or float64."""
    cdef fb_optim_config c
    cdef fb_optim_step st
    cdef void* s[3]
    cdef void* p
    cdef const void* g
    cdef Py_ssize_t i, j, n
    cdef bint f32
    cdef cnp.ndarray arr
    fill_config(config, &c)
    optim_begin_step(&c, step, &st)
    for i in range(len(params)):
        arr = <cnp.ndarray?>params[i]
        n = cnp.PyArray_SIZE(arr)
        if n == 0:
            continue
        f32 = cnp.PyArray_TYPE(arr) == cnp.NPY_FLOAT32
        p = cnp.PyArray_DATA(arr)
        g = cnp.PyArray_DATA(<cnp.ndarray?>grads[i])
        row = states[i]
        for j in range(3):
            s[j] = _data(row[j]) if j < len(row) else NULL
        with nogil:
            if f32:
                optim_update_ptr[float](<float*>p, <const float*>g, s, n, &c, &st)
            else:
                optim_update_ptr[double](<double*>p, <const double*>g, s, n, &c, &st)
    return 0


def optimizer_step_into(config, list params, list grads, list states, long long step):
    """Step ``step`` (from 1) of the optimizer ``config`` over every parameter:
    params[i] updated in place from grads[i] and its state arrays states[i] (up to
    three, in config.kernel_state order, None where unused). The arrays of one
    parameter are flat, C-contiguous and of one dtype (checked by the caller)."""
    _run(params, grads, states, config, step)


def sgd_step_into(p, g, buf, config, bint first_step):
    """In-place SGD step on flat buffers (buf may be None when momentum is 0)."""
    _run([p], [g], [(buf,)], config, 1 if first_step else 2)


def adagrad_step_into(p, g, sum_sq, config):
    """In-place AdaGrad step on flat buffers."""
    _run([p], [g], [(sum_sq,)], config, 1)


def rmsprop_step_into(p, g, sq_avg, buf, grad_avg, config):
    """In-place RMSprop step on flat buffers (buf/grad_avg None when unused)."""
    _run([p], [g], [(sq_avg, buf, grad_avg)], config, 1)


def adam_step_into(p, g, m, v, vmax, config, long long step):
    """In-place Adam/AdamW step ``step`` (from 1) on flat buffers (vmax None unless amsgrad)."""
    _run([p], [g], [(m, v, vmax)], config, step)
