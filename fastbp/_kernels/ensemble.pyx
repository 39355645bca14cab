"""Lock-step epoch of a group of ensemble members that share their batch order,
their first layer's shape and activation and their optimizer configuration.

Design: the group's first-layer weights are packed side by side, P = [W₁ … W_N]
(n_in × N·h), likewise the biases and the optimizer state, so that each step's
first-layer products are one wide GEMM each: Z = X·P and dP = Xᵀ·dZ, and its
bias/activation, activation backward, column sums and optimizer update one
pass over the packed arrays (all element- or column-wise, so each member's
numbers are those of its own step). The rest of each member (layers 2..L, the
loss) runs per member on contiguous buffers with the same kernels as
fastbp._kernels.network's step: member i's block of A is copied into its own
(n × h) buffer before its layer 2, and its dL/dA₁ copied back into the packed
D after. Every member's layer updates happen in the same places and order as
in step_impl (each layer right after its backward, dX from the old weights).
The caller (fastbp/ensemble.py) packs and unpacks around each epoch and checks
which members qualify. The whole epoch runs without the GIL.
"""
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cython cimport floating
from libc.math cimport isfinite, pow, sqrt
from libc.string cimport memcpy

import numpy as np
cimport numpy as cnp

cnp.import_array()

from fastbp._kernels._blas cimport gemm
from fastbp._kernels.activations cimport bias_activation_forward, activation_backward_ptr
from fastbp._kernels.dense cimport dense_forward_ptr, dense_backward_ptr, column_sums
from fastbp._kernels.losses cimport loss_forward_backward_ptr
from fastbp._kernels.optim cimport sgd_ptr, adagrad_ptr, rmsprop_ptr, adam_ptr

# Optimizer kinds (fastbp.optim.Optimizer.kind), as in network.pyx.
cdef enum:
    OPT_SGD = 0
    OPT_ADAGRAD = 1
    OPT_RMSPROP = 2
    OPT_ADAM = 3

cdef struct Lyr:
    void* W
    void* b
    void* dW
    void* db
    void* Z          # (cap, n_out); may equal A
    void* A
    void* D          # dL/dA, then dL/dZ in place
    void* sW[3]
    void* sb[3]
    Py_ssize_t n_in
    Py_ssize_t n_out
    int act

cdef struct Cfg:
    int kind
    double lr, momentum, dampening, weight_decay, eps, alpha, beta1, beta2
    bint nesterov, centered, decoupled, amsgrad, folded


cdef void update(Cfg* c, long long step, floating* p, floating* g, void** s,
                 Py_ssize_t size, double step_size, double bc2_sqrt) noexcept nogil:
    """One optimizer step of one buffer (network.pyx's update, for this module's Cfg)."""
    if c.kind == OPT_SGD:
        sgd_ptr(p, g, <floating*>s[0], size, c.lr, c.momentum, c.dampening, c.nesterov,
                c.weight_decay, step == 1)
    elif c.kind == OPT_ADAGRAD:
        adagrad_ptr(p, g, <floating*>s[0], size, c.lr, c.eps, c.weight_decay)
    elif c.kind == OPT_RMSPROP:
        rmsprop_ptr(p, g, <floating*>s[0], <floating*>s[1], <floating*>s[2], size, c.lr,
                    c.alpha, c.eps, c.momentum, c.centered, c.weight_decay)
    else:
        adam_ptr(p, g, <floating*>s[0], <floating*>s[1], <floating*>s[2], size, c.lr, c.beta1,
                 c.beta2, c.eps, c.weight_decay, c.decoupled, c.amsgrad, c.folded,
                 step_size, bc2_sqrt)


cdef Py_ssize_t group_epoch_impl(
        Lyr* first, Lyr* rest, Py_ssize_t* n_rest, Py_ssize_t n_members, Py_ssize_t h,
        floating* A1, floating* D1, int loss, const floating* X, const floating* T,
        const Py_ssize_t* labels, Py_ssize_t n_features, Py_ssize_t n_targets,
        const Py_ssize_t* order, Py_ssize_t n, Py_ssize_t batch, floating* Xb, floating* Tb,
        Py_ssize_t* Lb, Cfg* cfg, long long step0, double* loss_sum,
        Py_ssize_t* status) noexcept nogil:
    """Every batch of ``order``: one step of every member. ``first`` is the packed first
    layer (n_in × N·h); ``rest`` the members' layers 2..L back to back (member i has
    n_rest[i] of them); A1/D1 the members' own (batch × h) copies, member after member.
    status[i] stays 0 while member i's losses are finite, else -(step+1) of the first
    non-finite one (loss_sum[i] then holds it). Returns the number of steps."""
    cdef Py_ssize_t start = 0, m, i, r, src, steps = 0, H = n_members * h, j, l, off
    cdef double value, step_size = 0.0, bc2_sqrt = 0.0, bc1
    cdef Lyr* L
    cdef Lyr* layers
    cdef Lyr* last
    cdef const floating* inp
    cdef floating* a1
    cdef floating* d1
    cdef long long step
    for i in range(n_members):
        loss_sum[i] = 0.0
        status[i] = 0
    while start < n:
        m = batch if start + batch <= n else n - start
        for r in range(m):
            src = order[start + r]
            memcpy(&Xb[r * n_features], &X[src * n_features], n_features * sizeof(floating))
            if labels != NULL:
                Lb[r] = labels[src]
            else:
                memcpy(&Tb[r * n_targets], &T[src * n_targets], n_targets * sizeof(floating))
        step = step0 + steps + 1
        if cfg.kind == OPT_ADAM:  # network.pyx's adam_scalars_c, term for term
            bc1 = 1.0 - pow(cfg.beta1, <double>step)
            bc2_sqrt = sqrt(1.0 - pow(cfg.beta2, <double>step))
            step_size = cfg.lr * bc2_sqrt / bc1 if cfg.folded else cfg.lr / bc1
        # first layer, all members: Z := X·P + b, A := f(Z)
        gemm(False, False, m, H, first.n_in, 1.0, Xb, first.n_in, <floating*>first.W, H, 0.0,
             <floating*>first.Z, H)
        bias_activation_forward(first.act, <floating*>first.Z, <floating*>first.b,
                                <floating*>first.A, m, H)
        off = 0
        for i in range(n_members):
            layers = &rest[off]
            last = &layers[n_rest[i] - 1]
            a1 = &A1[i * batch * h]
            d1 = &D1[i * batch * h]
            for r in range(m):
                memcpy(&a1[r * h], &(<floating*>first.A)[r * H + i * h], h * sizeof(floating))
            inp = a1
            for l in range(n_rest[i]):
                L = &layers[l]
                dense_forward_ptr(L.act, inp, <floating*>L.W, <floating*>L.b, <floating*>L.Z,
                                  <floating*>L.A, m, L.n_in, L.n_out)
                inp = <floating*>L.A
            value = loss_forward_backward_ptr(loss, <floating*>last.A,
                                              Tb if labels == NULL else NULL,
                                              Lb if labels != NULL else NULL,
                                              <floating*>last.D, m, last.n_out)
            for l in range(n_rest[i] - 1, -1, -1):
                L = &layers[l]
                inp = a1 if l == 0 else <floating*>layers[l - 1].A
                dense_backward_ptr(L.act, inp, <floating*>L.W, <floating*>L.Z, <floating*>L.A,
                                   <floating*>L.D, <floating*>L.D,
                                   <floating*>layers[l - 1].D if l > 0 else d1,
                                   <floating*>L.dW, <floating*>L.db, m, L.n_in, L.n_out)
                update(cfg, step, <floating*>L.W, <floating*>L.dW, L.sW, L.n_in * L.n_out,
                       step_size, bc2_sqrt)
                update(cfg, step, <floating*>L.b, <floating*>L.db, L.sb, L.n_out, step_size,
                       bc2_sqrt)
            for r in range(m):
                memcpy(&(<floating*>first.D)[r * H + i * h], &d1[r * h], h * sizeof(floating))
            if status[i] == 0:
                if isfinite(value):
                    loss_sum[i] += value * m
                else:
                    loss_sum[i] = value
                    status[i] = -(steps + 1)
            off += n_rest[i]
        # first layer backward, all members: dZ := f'(Z)·dA, db := Σ dZ, dP := Xᵀ·dZ
        activation_backward_ptr(first.act, <floating*>first.Z, <floating*>first.A,
                                <floating*>first.D, <floating*>first.D, m, H)
        column_sums(<floating*>first.D, <floating*>first.db, m, H)
        gemm(True, False, first.n_in, H, m, 1.0, Xb, first.n_in, <floating*>first.D, H, 0.0,
             <floating*>first.dW, H)
        update(cfg, step, <floating*>first.W, <floating*>first.dW, first.sW, first.n_in * H,
               step_size, bc2_sqrt)
        update(cfg, step, <floating*>first.b, <floating*>first.db, first.sb, H, step_size,
               bc2_sqrt)
        steps += 1
        start += m
    return steps


cdef void* _ptr(arr) except NULL:
    if not isinstance(arr, np.ndarray) or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError("group buffers must be writable C-contiguous arrays")
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef void* _ptr_or_null(arr) except? NULL:
    if arr is None:
        return NULL
    return _ptr(arr)


cdef int _fill(Lyr* L, tuple spec) except -1:
    """L from spec = (W, b, dW, db, Z, A, D, sW, sb, act)."""
    W, b, dW, db, Z, A, D, sW, sb, act = spec
    L.W = _ptr(W)
    L.b = _ptr(b)
    L.dW = _ptr(dW)
    L.db = _ptr(db)
    L.Z = _ptr(Z)
    L.A = _ptr(A)
    L.D = _ptr(D)
    for j in range(3):
        L.sW[j] = _ptr_or_null(sW[j])
        L.sb[j] = _ptr_or_null(sb[j])
    L.n_in = W.shape[0]
    L.n_out = W.shape[1]
    L.act = act
    return 0


cdef class Group:
    """One lock-step group: pointers into the packed first layer, the members' own
    layers 2..L and their optimizer state (built per epoch by fastbp/ensemble.py,
    which keeps every array alive in ``keep``)."""

    cdef Lyr first
    cdef Lyr* rest
    cdef Py_ssize_t* n_rest
    cdef Py_ssize_t n_members, h, batch
    cdef int loss
    cdef bint f32
    cdef Cfg cfg
    cdef object keep

    def __cinit__(self):
        self.rest = NULL
        self.n_rest = NULL

    def __init__(self, tuple first, list members, int loss, dict hyper, int kind,
                 Py_ssize_t h, Py_ssize_t batch, object dtype, object keep):
        """first: (P, bP, dP, dbP, Z, A, D, sP, sbP, act); members: per member a list of
        layer tuples (W, b, dW, db, Z, A, D, sW, sb, act) for its layers 2..L."""
        cdef Py_ssize_t i, l, total = 0
        self.keep = keep
        self.loss = loss
        self.h = h
        self.batch = batch
        self.f32 = np.dtype(dtype) == np.float32
        self.n_members = len(members)
        _fill(&self.first, first)
        for layers in members:
            total += len(layers)
        self.rest = <Lyr*>PyMem_Calloc(total, sizeof(Lyr))
        self.n_rest = <Py_ssize_t*>PyMem_Calloc(self.n_members, sizeof(Py_ssize_t))
        if self.rest == NULL or self.n_rest == NULL:
            raise MemoryError()
        total = 0
        for i in range(self.n_members):
            self.n_rest[i] = len(members[i])
            for l in range(len(members[i])):
                _fill(&self.rest[total], members[i][l])
                total += 1
        self.cfg.kind = kind
        self.cfg.lr = hyper.get("lr", 0.0)
        self.cfg.momentum = hyper.get("momentum", 0.0)
        self.cfg.dampening = hyper.get("dampening", 0.0)
        self.cfg.weight_decay = hyper.get("weight_decay", 0.0)
        self.cfg.eps = hyper.get("eps", 0.0)
        self.cfg.alpha = hyper.get("alpha", 0.0)
        self.cfg.beta1 = hyper.get("beta1", 0.0)
        self.cfg.beta2 = hyper.get("beta2", 0.0)
        self.cfg.nesterov = hyper.get("nesterov", False)
        self.cfg.centered = hyper.get("centered", False)
        self.cfg.decoupled = hyper.get("decoupled", False)
        self.cfg.amsgrad = hyper.get("amsgrad", False)
        self.cfg.folded = hyper.get("folded", False)

    def __dealloc__(self):
        PyMem_Free(self.rest)
        PyMem_Free(self.n_rest)

    def epoch(self, cnp.ndarray X, T, labels, cnp.ndarray order, long long step0,
              cnp.ndarray A1, cnp.ndarray D1, cnp.ndarray Xb, cnp.ndarray Tb, cnp.ndarray Lb,
              cnp.ndarray loss_sum, cnp.ndarray status):
        """One epoch over ``order`` (intp); returns the number of steps; per member the
        loss sum (float64) and status (intp) arrays are filled (see group_epoch_impl)."""
        cdef Py_ssize_t n = order.shape[0], steps
        cdef Py_ssize_t n_features = X.shape[1]
        cdef Py_ssize_t n_targets = 0 if T is None else T.shape[1]
        cdef void* x = cnp.PyArray_DATA(X)
        cdef void* t = NULL if T is None else cnp.PyArray_DATA(<cnp.ndarray>T)
        cdef const Py_ssize_t* lp = NULL if labels is None else \
            <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>labels)
        cdef const Py_ssize_t* op = <Py_ssize_t*>cnp.PyArray_DATA(order)
        cdef void* a1 = cnp.PyArray_DATA(A1)
        cdef void* d1 = cnp.PyArray_DATA(D1)
        cdef void* xb = cnp.PyArray_DATA(Xb)
        cdef void* tb = cnp.PyArray_DATA(Tb)
        cdef Py_ssize_t* lb = <Py_ssize_t*>cnp.PyArray_DATA(Lb)
        cdef double* ls = <double*>cnp.PyArray_DATA(loss_sum)
        cdef Py_ssize_t* st = <Py_ssize_t*>cnp.PyArray_DATA(status)
        with nogil:
            if self.f32:
                steps = group_epoch_impl[float](
                    &self.first, self.rest, self.n_rest, self.n_members, self.h, <float*>a1,
                    <float*>d1, self.loss, <float*>x, <float*>t, lp, n_features, n_targets, op,
                    n, self.batch, <float*>xb, <float*>tb, lb, &self.cfg, step0, ls, st)
            else:
                steps = group_epoch_impl[double](
                    &self.first, self.rest, self.n_rest, self.n_members, self.h, <double*>a1,
                    <double*>d1, self.loss, <double*>x, <double*>t, lp, n_features, n_targets,
                    op, n, self.batch, <double*>xb, <double*>tb, lb, &self.cfg, step0, ls, st)
        return steps
