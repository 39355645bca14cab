"""The whole-network engine: a training step, an epoch, or a forward pass in one
compiled call with the GIL released.

Design: ``Engine`` holds raw pointers to a model's live parameter and gradient
arrays, to preallocated workspaces (Z, A and the backward buffer D of every
layer, sized for the largest batch seen) and to the optimizer's state arrays.
A step runs forward (GEMM, then bias + activation in one pass), the loss and
its gradient in one pass (softmax/sigmoid and cross-entropy fused), and the
backward pass from the last layer down; each layer's parameters are updated as
soon as its gradients exist, after dX = dZ·Wᵀ has used the old weights. The
same ``cdef`` kernels serve ``fastbp.ops``. Nothing is allocated per step once
the workspaces fit the batch. Pointers are stored as ``void*`` and cast to the
model's dtype by the fused functions below.

Dropout (training only): a layer with dropout writes A·mask/(1-p) to a buffer
Ad that the next layer reads; the backward multiplies the layer's dL/dA by the
same mask before the activation derivative. Ad is a separate buffer where that
derivative reads A or Z (sigmoid, tanh, gelu, ...), and A itself where it reads
only the sign of Z (relu, leaky relu, whose A is their Z) or nothing
(identity): 1/(1-p) > 0 keeps a kept element's sign, and a dropped element's
dL/dZ is 0 whatever Z holds (for a finite dL/dA; a non-finite one gives 0 there
instead of NaN).
The masks are drawn for the step being taken (the optimizer's step count) from
the counter-based generator of _dropout.h, so nothing about them is stored
between steps.

The optimizer contract: an optimizer shares one typed ``OptimizerLink``
(optim.pxd) with the engine, holding its configuration record, its state
tuple and its step counter. ``bind_optimizer`` copies the record into the
kernels' ``fb_optim_config`` and points at the state arrays; the binding is
current while the link holds the same record and state objects (an assignment
or a load replaces them). The engine advances the link's step counter itself.
"""
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cython cimport floating
from libc.math cimport isfinite
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

import numpy as np
cimport numpy as cnp

cnp.import_array()

from fastbp._kernels._math cimport ACT_IDENTITY, ACT_RELU, ACT_LEAKY_RELU, LOSS_CE, LOSS_BCE
from fastbp._kernels.dense cimport dense_forward_ptr, dense_backward_ptr
from fastbp._kernels.dropout cimport (
    dropout_layer_key, dropout_step_key, dropout_threshold, dropout_forward_ptr,
    dropout_backward_ptr,
)
from fastbp._kernels.losses cimport (loss_forward_backward_ptr, weighted_loss_ptr,
                                      clip_correction_ptr, clipped_log_loss_ptr,
                                      labels_in_range_ptr)
from fastbp._kernels.optim cimport (OptimizerLink, fb_optim_config, fb_optim_step, fill_config,
                                     optim_begin_step, optim_update_ptr)

from scipy.linalg.cython_blas cimport sdot, ddot, saxpy, daxpy

from fastbp._validation import MAX_STEP as _MAX_STEP, dropout_scale

# The lean prediction path (Engine.predict_fast).
from libc.math cimport isnan
from fastbp._kernels._math cimport ACT_SIGMOID, ACT_SOFTMAX
from fastbp._kernels.activations cimport bias_activation_forward_ptr

# The largest step count an optimizer takes (defined in fastbp._validation).
cdef long long MAX_STEP = _MAX_STEP

cdef struct Layer:
    void* W
    void* b
    void* dW
    void* db
    void* Z          # (cap, n_out); equals A for identity, relu and leaky relu layers
    void* A          # (cap, n_out)
    void* D          # (cap, n_out): dL/dA, then dL/dZ in place
    void* sW[3]      # optimizer state of W (NULL where unused)
    void* sb[3]      # optimizer state of b
    Py_ssize_t n_in
    Py_ssize_t n_out
    int act
    # Dropout on the layer's output in training (see set_dropout, reserve and the
    # module docstring); the next layer reads Ad.
    double dropout              # p; 0: no dropout (then Ad and keep are NULL)
    double drop_scale           # 1/(1-p)
    uint64_t drop_key           # dropout_layer_key(model seed, layer index)
    uint64_t drop_threshold     # dropout_threshold(p)
    void* Ad                    # (cap, n_out): A·mask/(1-p) (A itself for identity/relu/leaky)
    unsigned char* keep         # (cap, n_out): this step's mask

cdef struct LossConv:
    # A training objective's convention other than fastbp's plain mean loss (for
    # fastbp.sklearn, which reproduces scikit-learn's): the output gradient times
    # grad_scale, the loss value times loss_scale, and an L2 penalty on the weights
    # only (not the biases), divided by the batch's weight sum Σw (its size when
    # unweighted): dW += (l2/Σw)·W, loss += ½·(l2/Σw)·Σ‖W‖². With clip_eps > 0 the
    # (binary) cross-entropy's value is taken from probabilities clipped to
    # [clip_eps, 1-clip_eps], scikit-learn's log loss (the gradient is unchanged). The
    # defaults (1, 1, 0, 0) skip all of it, so a model without a convention computes
    # what it always did.
    double grad_scale
    double loss_scale
    double l2
    double clip_eps


cdef void forward_impl(Layer* layers, int n_layers, const floating* X, Py_ssize_t n,
                       bint keep) noexcept nogil:
    """Z_l := in_l·W_l + b_l, A_l := f(Z_l) for every layer. Without ``keep``
    (inference) the activation runs in place in Z, saving a pass of memory traffic;
    the output is then in the last layer's Z."""
    cdef int l
    cdef const floating* inp = X
    cdef Layer* L
    cdef floating* out
    for l in range(n_layers):
        L = &layers[l]
        out = <floating*>L.A if keep else <floating*>L.Z
        dense_forward_ptr(L.act, inp, <floating*>L.W, <floating*>L.b, <floating*>L.Z, out,
                          n, L.n_in, L.n_out)
        inp = out


cdef inline void* train_output(Layer* L) noexcept nogil:
    """What the next layer reads in training: A, or A with dropout applied."""
    return L.Ad if L.dropout > 0 else L.A


cdef void forward_train_impl(Layer* layers, int n_layers, const floating* X, Py_ssize_t n,
                             long long step) noexcept nogil:
    """forward_impl(keep=True) plus dropout with the masks of ``step`` where a layer has it."""
    cdef int l
    cdef const floating* inp = X
    cdef Layer* L
    for l in range(n_layers):
        L = &layers[l]
        dense_forward_ptr(L.act, inp, <floating*>L.W, <floating*>L.b, <floating*>L.Z,
                          <floating*>L.A, n, L.n_in, L.n_out)
        if L.dropout > 0:
            dropout_forward_ptr(dropout_step_key(L.drop_key, <uint64_t>step), L.drop_threshold,
                                L.drop_scale, <floating*>L.A, <floating*>L.Ad, L.keep,
                                n * L.n_out)
        inp = <floating*>train_output(L)


cdef double sum_squares(const floating* x, Py_ssize_t size) noexcept nogil:
    """Σ x² through BLAS dot (np.dot(w, w), as scikit-learn's penalty computes it)."""
    cdef Py_ssize_t i
    cdef double s = 0.0
    cdef int m = <int>size, one = 1
    if size > 2147483647:   # beyond BLAS's int
        for i in range(size):
            s += <double>x[i] * x[i]
        return s
    if floating is float:
        return sdot(&m, <float*>x, &one, <float*>x, &one)
    return ddot(&m, <double*>x, &one, <double*>x, &one)


cdef void add_scaled(floating* y, const floating* x, double a, Py_ssize_t size) noexcept nogil:
    """y += a·x through BLAS axpy."""
    cdef Py_ssize_t i
    cdef int m = <int>size, one = 1
    cdef float af = <float>a
    if size > 2147483647:
        for i in range(size):
            y[i] = <floating>(y[i] + a * x[i])
    elif floating is float:
        saxpy(&m, &af, <float*>x, &one, <float*>y, &one)
    else:
        daxpy(&m, &a, <double*>x, &one, <double*>y, &one)


cdef double step_impl(Layer* layers, int n_layers, int loss, const floating* X,
                      const floating* T, const Py_ssize_t* labels, const double* sw,
                      Py_ssize_t n, const fb_optim_config* cfg, const LossConv* conv,
                      long long step) noexcept nogil:
    """Forward, loss, backward and (with cfg, else NULL) the update of every layer at
    optimizer step ``step``; the loss.

    sw: per-sample weights (NULL: unweighted); conv: the objective's convention.
    ``step`` is also the step whose dropout masks are drawn."""
    cdef int l
    cdef Layer* L
    cdef Layer* last = &layers[n_layers - 1]
    cdef const floating* inp
    cdef double value, wsum = <double>n, l2 = 0.0, penalty
    cdef fb_optim_step st
    cdef double correction
    cdef bint recompute = False
    cdef Py_ssize_t i
    cdef floating* dw
    if cfg != NULL:  # the step's values once, not per buffer
        optim_begin_step(cfg, step, &st)
    forward_train_impl(layers, n_layers, X, n, step)
    if sw == NULL:
        value = loss_forward_backward_ptr(loss, <floating*>last.A, T, labels,
                                          <floating*>last.D, n, last.n_out)
    else:
        value = weighted_loss_ptr(loss, <floating*>last.A, T, labels, sw, <floating*>last.D,
                                  n, last.n_out)
        wsum = 0.0
        for i in range(n):
            wsum += sw[i]
    if conv.grad_scale != 1.0:
        dw = <floating*>last.D
        for i in range(n * last.n_out):
            dw[i] = <floating>(dw[i] * conv.grad_scale)
    if conv.clip_eps > 0.0:
        correction = clip_correction_ptr(loss, <floating*>last.A, T, labels, sw, n, last.n_out,
                                         conv.clip_eps, &recompute)
        if recompute:
            value = clipped_log_loss_ptr(loss, <floating*>last.A, T, labels, sw, n, last.n_out,
                                         conv.clip_eps)
        else:
            value += correction
    if conv.loss_scale != 1.0:
        value *= conv.loss_scale
    if conv.l2 != 0.0:
        # The penalty of the weights this step starts from (before any update).
        l2 = conv.l2 / wsum
        penalty = 0.0
        for l in range(n_layers):
            penalty += sum_squares(<floating*>layers[l].W, layers[l].n_in * layers[l].n_out)
        value += 0.5 * l2 * penalty
    for l in range(n_layers - 1, -1, -1):
        L = &layers[l]
        inp = X if l == 0 else <floating*>train_output(&layers[l - 1])
        if L.dropout > 0:  # D holds dL/d(A·m); make it dL/dA (m: mask/(1-p))
            dropout_backward_ptr(L.drop_scale, L.keep, <floating*>L.D, n * L.n_out)
        # D holds dL/dA and becomes dL/dZ in place; dX goes to the layer below's D.
        dense_backward_ptr(L.act, inp, <floating*>L.W, <floating*>L.Z, <floating*>L.A,
                           <floating*>L.D, <floating*>L.D,
                           <floating*>layers[l - 1].D if l > 0 else NULL,
                           <floating*>L.dW, <floating*>L.db, n, L.n_in, L.n_out)
        if l2 != 0.0:
            add_scaled(<floating*>L.dW, <floating*>L.W, l2, L.n_in * L.n_out)
        if cfg != NULL:
            optim_update_ptr(<floating*>L.W, <floating*>L.dW, L.sW, L.n_in * L.n_out, cfg, &st)
            optim_update_ptr(<floating*>L.b, <floating*>L.db, L.sb, L.n_out, cfg, &st)
    return value


cdef Py_ssize_t epoch_impl(Layer* layers, int n_layers, int loss, const floating* X,
                           const floating* T, const Py_ssize_t* labels, const double* sw,
                           Py_ssize_t n_features, Py_ssize_t n_targets, const Py_ssize_t* order,
                           Py_ssize_t n, Py_ssize_t batch, floating* Xb, floating* Tb,
                           Py_ssize_t* Lb, double* Wb, const fb_optim_config* cfg,
                           const LossConv* conv,
                           long long step0, double* loss_sum) noexcept nogil:
    """Mini-batches of ``order`` in sequence: gather rows (and their weights, when sw is
    not NULL), step. Returns the number of steps taken; stops early (returning
    -(steps+1)) at the first non-finite loss."""
    cdef Py_ssize_t start, m, i, src, steps = 0
    cdef double value
    loss_sum[0] = 0.0
    start = 0
    while start < n:
        m = batch if start + batch <= n else n - start
        for i in range(m):
            src = order[start + i]
            memcpy(&Xb[i * n_features], &X[src * n_features], n_features * sizeof(floating))
            if labels != NULL:
                Lb[i] = labels[src]
            else:
                memcpy(&Tb[i * n_targets], &T[src * n_targets], n_targets * sizeof(floating))
            if sw != NULL:
                Wb[i] = sw[src]
        value = step_impl(layers, n_layers, loss, Xb, Tb if labels == NULL else NULL,
                          Lb if labels != NULL else NULL, Wb if sw != NULL else NULL, m, cfg,
                          conv, step0 + steps + 1)
        if not isfinite(value):
            loss_sum[0] = value
            return -(steps + 1)
        steps += 1
        loss_sum[0] += value * m
        start += m
    return steps


# predict_fast keeps the GIL for calls with less work than this (multiply-adds):
# releasing and re-taking it costs about as much as such a call's arithmetic,
# and no other thread could do much in the time anyway.
cdef Py_ssize_t NOGIL_MIN_WORK = 1 << 15

# What Engine.predict_fast returns (fastbp.models.Sequential's PREDICT_* mirror these).
cdef enum:
    PREDICT_RAW = 0      # forward
    PREDICT_PROBA = 1    # predict_proba: softmax (cross_entropy) or sigmoid (binary)
    PREDICT_LABELS = 2   # predict: argmax (cross_entropy), 0/1 (binary), raw (otherwise)


cdef void predict_impl(Layer* layers, int n_layers, int loss, const floating* X, Py_ssize_t n,
                       int kind, void* out) noexcept nogil:
    """The inference pass, then its result written into ``out`` exactly as the checked
    path computes it: a copy of the output (forward), that copy's softmax/sigmoid in
    place (predict_proba, as activation_forward_into), or the labels (predict:
    NumPy's argmax, the first NaN counting as the maximum; or output > 0)."""
    cdef Layer* last = &layers[n_layers - 1]
    cdef Py_ssize_t k = last.n_out, i, j, best
    cdef const floating* Z
    cdef const floating* row
    cdef Py_ssize_t* labels = <Py_ssize_t*>out
    forward_impl(layers, n_layers, X, n, False)
    Z = <floating*>last.Z
    if kind == PREDICT_LABELS and loss == LOSS_CE:
        for i in range(n):
            row = Z + i * k
            best = 0
            for j in range(k):
                if isnan(row[j]):
                    best = j
                    break
                if row[j] > row[best]:
                    best = j
            labels[i] = best
    elif kind == PREDICT_LABELS and loss == LOSS_BCE:
        for i in range(n * k):
            labels[i] = 1 if Z[i] > 0 else 0
    else:
        memcpy(out, Z, n * k * sizeof(floating))
        if kind == PREDICT_PROBA:
            bias_activation_forward_ptr(ACT_SOFTMAX if loss == LOSS_CE else ACT_SIGMOID,
                                    <floating*>out, <const floating*>NULL, <floating*>out,
                                    n, k)


cdef class Engine:
    """Compiled forward/backward/update of one Sequential model (see module docstring)."""

    cdef Layer* layers
    cdef int n_layers
    cdef int loss
    cdef bint f32
    cdef Py_ssize_t capacity
    cdef fb_optim_config cfg
    cdef LossConv conv
    cdef list keep_params     # the live parameter/gradient arrays (kept alive)
    cdef list workspaces      # per layer (Z, A, D)
    cdef list dropout_buffers # per layer with dropout (Ad, keep)
    cdef list keep_state      # optimizer state arrays (kept alive)
    cdef object batch_X, batch_T, batch_L, batch_W
    cdef int type_num                 # NPY_FLOAT32 or NPY_FLOAT64
    # The binding (see bind_optimizer): the optimizer's link, and the record and
    # state tuple the engine read from it.
    cdef OptimizerLink link
    cdef object bound_config
    cdef object bound_state
    # Dense.generation at which the caller last checked that the parameter
    # arrays are the ones this engine points into (-1: never).
    cdef public long long generation
    cdef public object dtype

    def __cinit__(self):
        self.layers = NULL

    def __init__(self, list Ws, list bs, list dWs, list dbs, list acts, int loss, dtype):
        cdef int l
        self.n_layers = len(Ws)
        self.layers = <Layer*>PyMem_Calloc(self.n_layers, sizeof(Layer))
        if self.layers == NULL:
            raise MemoryError()
        self.loss = loss
        self.dtype = np.dtype(dtype)
        self.f32 = self.dtype == np.float32
        self.type_num = cnp.NPY_FLOAT32 if self.f32 else cnp.NPY_FLOAT64
        self.capacity = 0
        self.conv.grad_scale = 1.0
        self.conv.loss_scale = 1.0
        self.conv.l2 = 0.0
        self.conv.clip_eps = 0.0
        self.keep_params = [Ws, bs, dWs, dbs]
        self.workspaces = []
        self.dropout_buffers = []
        self.keep_state = []
        self.link = None
        self.bound_config = None
        self.bound_state = None
        self.generation = -1
        for l in range(self.n_layers):
            self.layers[l].W = _ptr(Ws[l])
            self.layers[l].b = _ptr(bs[l])
            self.layers[l].dW = _ptr(dWs[l])
            self.layers[l].db = _ptr(dbs[l])
            self.layers[l].n_in = Ws[l].shape[0]
            self.layers[l].n_out = Ws[l].shape[1]
            self.layers[l].act = acts[l]

    def __dealloc__(self):
        PyMem_Free(self.layers)

    def set_loss_convention(self, double grad_scale, double loss_scale, double l2,
                            double clip_eps=0.0):
        """The objective's convention (LossConv): (1, 1, 0, 0) is fastbp's own."""
        if not (isfinite(grad_scale) and isfinite(loss_scale) and isfinite(l2) and l2 >= 0
                and 0 <= clip_eps < 0.5):
            raise ValueError("the loss convention needs finite scales, l2 >= 0 and "
                             "0 <= clip_eps < 0.5")
        if clip_eps > 0 and self.loss not in (LOSS_CE, LOSS_BCE):
            raise ValueError("clip_eps applies to the cross-entropy losses only")
        self.conv.grad_scale = grad_scale
        self.conv.loss_scale = loss_scale
        self.conv.l2 = l2
        self.conv.clip_eps = clip_eps

    def reserve(self, Py_ssize_t n):
        """Make every workspace hold at least n rows (grows, never shrinks)."""
        cdef int l
        if n <= self.capacity:
            return
        self.workspaces = []
        self.dropout_buffers = []
        for l in range(self.n_layers):
            k = self.layers[l].n_out
            Z = np.empty((n, k), dtype=self.dtype)
            # In place where the backward needs only A: identity, and relu/leaky relu,
            # whose derivative tests z > 0, which A > 0 answers the same (NaN too).
            A = Z if self.layers[l].act in (ACT_IDENTITY, ACT_RELU, ACT_LEAKY_RELU) \
                else np.empty((n, k), dtype=self.dtype)
            D = np.empty((n, k), dtype=self.dtype)
            self.workspaces.append((Z, A, D))
            self.layers[l].Z = _ptr(Z)
            self.layers[l].A = _ptr(A)
            self.layers[l].D = _ptr(D)
            if self.layers[l].dropout > 0:
                # In place where the backward needs only the sign of Z (relu, leaky relu)
                # or nothing (identity); see the module docstring.
                Ad = A if self.layers[l].act in (ACT_IDENTITY, ACT_RELU, ACT_LEAKY_RELU) \
                    else np.empty((n, k), dtype=self.dtype)
                keep = np.empty((n, k), dtype=np.uint8)
                self.dropout_buffers.append((Ad, keep))
                self.layers[l].Ad = _ptr(Ad)
                self.layers[l].keep = <unsigned char*>_ptr(keep)
            else:
                self.layers[l].Ad = NULL
                self.layers[l].keep = NULL
        self.capacity = n

    def set_dropout(self, list rates, uint64_t seed):
        """Dropout probability p of each layer's output in training (0: none; the
        last layer's must be 0) and the model's dropout seed, which with the layer
        index and the step keys the masks (_dropout.h)."""
        cdef int l
        cdef double p
        if len(rates) != self.n_layers:
            raise ValueError(f"rates must hold one value per layer ({self.n_layers})")
        if rates[self.n_layers - 1] != 0:
            raise ValueError("dropout on the output layer is not supported")
        if not all(0 <= p < 1 for p in rates):
            raise ValueError(f"dropout rates must be in [0, 1), got {rates}")
        for l in range(self.n_layers):
            p = rates[l]
            self.layers[l].dropout = p
            self.layers[l].drop_scale = dropout_scale(p)
            self.layers[l].drop_key = dropout_layer_key(seed, l)
            self.layers[l].drop_threshold = dropout_threshold(p)
        self.capacity = 0  # the next reserve() reallocates, with the dropout buffers

    def bind_optimizer(self, optimizer):
        """Point the engine at an optimizer's configuration and state arrays (through its
        ``engine_link``): per parameter (W1, b1, W2, ...), up to three state arrays in
        the record's ``kernel_state`` order (NULL where unused)."""
        cdef int l, j
        link = getattr(optimizer, "engine_link", None)
        if not isinstance(link, OptimizerLink) or link.config.kind < 0:
            raise TypeError(f"the compiled step knows fastbp's SGD, AdaGrad, RMSprop, Adam and "
                            f"AdamW, not {type(optimizer).__name__}; for another optimizer "
                            f"call model.backward(X, y) and then optimizer.step(model.gradients())")
        config = link.config
        state = link.state
        if len(state) != 2 * self.n_layers:
            raise ValueError(f"the optimizer holds state for {len(state)} parameters, the "
                             f"model has {2 * self.n_layers}")
        names = tuple(config.kernel_state) + (None,) * (3 - len(config.kernel_state))
        arrays = [[None if k is None else s.get(k) for k in names] for s in state]
        fill_config(config, &self.cfg)
        self.keep_state = arrays
        for l in range(self.n_layers):
            for j in range(3):
                self.layers[l].sW[j] = _ptr_or_null(arrays[2 * l][j])
                self.layers[l].sb[j] = _ptr_or_null(arrays[2 * l + 1][j])
        self.link = <OptimizerLink>link
        self.bound_config = config
        self.bound_state = state

    def is_bound_to(self, optimizer):
        """Whether the binding is current: the same optimizer (link), with the same
        record and state tuple (no hyper-parameter assigned, no state loaded since)."""
        return self._current_link(optimizer) is not None

    cdef OptimizerLink _current_link(self, optimizer):
        """The bound link if ``optimizer`` is the bound optimizer and unchanged, else None."""
        link = getattr(optimizer, "engine_link", None)
        if self.link is None or link is not self.link:
            return None
        if self.link.config is not self.bound_config or self.link.state is not self.bound_state:
            return None
        return self.link

    cdef Py_ssize_t _ready_rows(self, X):
        """The rule for the lean paths: the number of rows of X if it is an ndarray of the
        engine's dtype (native byte order, aligned: ISBEHAVED_RO; a '>f8' array has the
        float64 type number too), C-contiguous, (n, n_in) with 0 < n <= capacity; else
        -1 (the caller takes the checked path, which converts or raises)."""
        cdef cnp.ndarray Xa
        cdef Py_ssize_t n
        if type(X) is not np.ndarray:
            return -1
        Xa = <cnp.ndarray>X
        if cnp.PyArray_TYPE(Xa) != self.type_num or cnp.PyArray_NDIM(Xa) != 2 \
                or not cnp.PyArray_IS_C_CONTIGUOUS(Xa) or not cnp.PyArray_ISBEHAVED_RO(Xa) \
                or cnp.PyArray_DIMS(Xa)[1] != self.layers[0].n_in:
            return -1
        n = cnp.PyArray_DIMS(Xa)[0]
        if n == 0 or n > self.capacity:
            return -1
        return n

    def train_step_fast(self, X, y, optimizer, long long generation):
        """Model.train_step when nothing needs converting, rebinding or rebuilding;
        returns the loss, or None to send the caller down the checked path.

        The fast case: ``generation`` is the one the parameter arrays were checked
        at; ``optimizer`` is bound and unchanged; X is ready (``_ready_rows``); y is
        likewise C-contiguous (n, n_out) targets of the same dtype ((n,) when n_out
        is 1), or intp labels (n,) in range for cross-entropy. Then this does the
        step, the link's step count + 1, and advances the count. It saves the
        per-step Python of the checked path, which is most of a tiny step's time.
        """
        cdef cnp.ndarray ya
        cdef Py_ssize_t n
        cdef long long step
        cdef double value
        cdef Layer* last = &self.layers[self.n_layers - 1]
        cdef bint labels
        cdef void* t
        cdef OptimizerLink link
        if generation != self.generation:
            return None
        link = self._current_link(optimizer)
        if link is None or link.step_count < 0 or link.step_count >= MAX_STEP:
            return None
        step = link.step_count
        n = self._ready_rows(X)
        if n < 0 or type(y) is not np.ndarray:
            return None
        ya = <cnp.ndarray>y
        # ndim first: a 0-d array has no dimensions to read.
        if cnp.PyArray_NDIM(ya) not in (1, 2) \
                or not cnp.PyArray_IS_C_CONTIGUOUS(ya) or not cnp.PyArray_ISBEHAVED_RO(ya) \
                or cnp.PyArray_DIMS(ya)[0] != n:
            return None
        labels = self.loss == LOSS_CE and cnp.PyArray_NDIM(ya) == 1
        if labels:
            if cnp.PyArray_TYPE(ya) != cnp.NPY_INTP \
                    or not labels_in_range_ptr(<Py_ssize_t*>cnp.PyArray_DATA(ya), n,
                                               last.n_out):
                return None
        elif cnp.PyArray_TYPE(ya) != self.type_num \
                or not (cnp.PyArray_NDIM(ya) == 2 and cnp.PyArray_DIMS(ya)[1] == last.n_out
                        or cnp.PyArray_NDIM(ya) == 1 and last.n_out == 1):
            return None
        t = cnp.PyArray_DATA(ya)
        value = self._run_step(cnp.PyArray_DATA(<cnp.ndarray>X), NULL if labels else t,
                               <Py_ssize_t*>t if labels else NULL, n, step + 1, &self.cfg)
        link.step_count = step + 1
        return value

    def predict_fast(self, X, long long generation, int kind, lock=None):
        """forward / predict_proba / predict (``kind``: PREDICT_RAW, PREDICT_PROBA,
        PREDICT_LABELS) in one call when nothing needs converting or rebuilding;
        returns a new array, or None to send the caller down the checked path.

        The fast case: ``generation`` is the one the parameter arrays were checked
        at; X is an ndarray of the engine's dtype (native byte order, aligned),
        C-contiguous, (n, n_in) with 0 < n <= capacity; for PREDICT_PROBA the loss
        is a cross-entropy. The result has the bits of the checked path's.

        ``lock`` (the model's): taken without waiting around the checks and the
        pass (cheaper than a ``with`` block in the caller); if another call holds
        it, None, and the checked path waits for it."""
        if lock is None:
            return self._predict_fast(X, generation, kind)
        if not lock.acquire(False):
            return None
        try:
            return self._predict_fast(X, generation, kind)
        finally:
            lock.release()

    cdef object _predict_fast(self, X, long long generation, int kind):
        cdef cnp.ndarray out
        cdef Py_ssize_t n, k = self.layers[self.n_layers - 1].n_out
        cdef cnp.npy_intp dims[2]
        cdef int nd = 2, type_num = self.type_num, l
        cdef Py_ssize_t work = 0
        cdef void* x
        cdef void* o
        if generation != self.generation or kind < PREDICT_RAW or kind > PREDICT_LABELS:
            return None
        n = self._ready_rows(X)
        if n < 0:
            return None
        if kind == PREDICT_PROBA and self.loss != LOSS_CE and self.loss != LOSS_BCE:
            return None
        if kind == PREDICT_LABELS and (self.loss == LOSS_CE or self.loss == LOSS_BCE):
            type_num = cnp.NPY_INTP
            nd = 1 if self.loss == LOSS_CE else 2
        dims[0] = n
        dims[1] = k
        out = cnp.PyArray_EMPTY(nd, dims, type_num, 0)
        x = cnp.PyArray_DATA(<cnp.ndarray>X)
        o = cnp.PyArray_DATA(out)
        for l in range(self.n_layers):
            work += n * self.layers[l].n_in * self.layers[l].n_out
        if work >= NOGIL_MIN_WORK:
            with nogil:
                self._predict(x, n, kind, o)
        else:
            self._predict(x, n, kind, o)
        return out

    cdef void _predict(self, void* x, Py_ssize_t n, int kind, void* out) noexcept nogil:
        """predict_impl in the engine's dtype."""
        if self.f32:
            predict_impl[float](self.layers, self.n_layers, self.loss, <float*>x, n, kind, out)
        else:
            predict_impl[double](self.layers, self.n_layers, self.loss, <double*>x, n, kind, out)

    def forward(self, cnp.ndarray X):
        """Inference pass of X (n, n_in), n ≤ capacity; returns a view of the output workspace.

        Callers guarantee X is C-contiguous, of the engine's dtype and shape."""
        cdef Py_ssize_t n = X.shape[0]
        cdef void* x = cnp.PyArray_DATA(X)
        with nogil:
            if self.f32:
                forward_impl[float](self.layers, self.n_layers, <float*>x, n, False)
            else:
                forward_impl[double](self.layers, self.n_layers, <double*>x, n, False)
        return self.workspaces[self.n_layers - 1][0][:n]

    def backward(self, cnp.ndarray X, T, labels, long long step, sample_weight=None):
        """Forward, loss and backward (every layer's dW, db; no update), with the
        dropout masks of step ``step``; returns the loss.

        T (n, k) float targets or labels (n,) intp, C-contiguous; sample_weight None or
        (n,) float64 C-contiguous (all checked by the caller)."""
        return self._step_arrays(X, T, labels, step, NULL, sample_weight)

    def train_step(self, cnp.ndarray X, T, labels, sample_weight=None):
        """One training step of the bound optimizer (step: its count + 1, which it
        advances): forward, loss, backward and update. Arguments as for backward."""
        cdef double value
        cdef long long step = self._bound().step_count + 1
        value = self._step_arrays(X, T, labels, step, &self.cfg, sample_weight)
        self.link.step_count = step
        return value

    cdef OptimizerLink _bound(self):
        if self.link is None:
            raise RuntimeError("no optimizer is bound to this engine (bind_optimizer)")
        return self.link

    cdef double _step_arrays(self, cnp.ndarray X, T, labels, long long step,
                             const fb_optim_config* cfg, sample_weight) except? -1.0:
        cdef void* t = NULL if T is None else cnp.PyArray_DATA(<cnp.ndarray>T)
        cdef const Py_ssize_t* lp = NULL
        cdef const double* sw = NULL
        if labels is not None:
            lp = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>labels)
        if sample_weight is not None:
            sw = <double*>cnp.PyArray_DATA(<cnp.ndarray>sample_weight)
        return self._run_step(cnp.PyArray_DATA(X), t, lp, X.shape[0], step, cfg, sw)

    cdef double _run_step(self, void* x, void* t, const Py_ssize_t* labels, Py_ssize_t n,
                          long long step, const fb_optim_config* cfg,
                          const double* sw=NULL):
        """step_impl in the engine's dtype, without the GIL (t is NULL with labels;
        cfg NULL: no update)."""
        cdef double value
        with nogil:
            if self.f32:
                value = step_impl[float](self.layers, self.n_layers, self.loss, <float*>x,
                                         <float*>t, labels, sw, n, cfg, &self.conv, step)
            else:
                value = step_impl[double](self.layers, self.n_layers, self.loss, <double*>x,
                                          <double*>t, labels, sw, n, cfg, &self.conv, step)
        return value

    def epoch(self, cnp.ndarray X, T, labels, cnp.ndarray order, Py_ssize_t batch,
              sample_weight=None):
        """One epoch of mini-batch steps of the bound optimizer over ``order`` (intp),
        from its step count + 1 (advanced by the steps taken); returns (steps, loss_sum).
        ``sample_weight``: None or (n_samples,) float64 weights, gathered with the rows.

        steps < 0 means the loss became non-finite at step -steps (then loss_sum
        is that loss); the earlier steps of the epoch were applied."""
        cdef Py_ssize_t n = order.shape[0], steps
        cdef Py_ssize_t n_features = X.shape[1]
        cdef Py_ssize_t n_targets = 0 if T is None else T.shape[1]
        cdef void* x = cnp.PyArray_DATA(X)
        cdef void* t = NULL if T is None else cnp.PyArray_DATA(<cnp.ndarray>T)
        cdef const Py_ssize_t* lp = NULL
        cdef const Py_ssize_t* op = <Py_ssize_t*>cnp.PyArray_DATA(order)
        cdef double loss_sum = 0.0
        cdef const double* sw = NULL
        cdef OptimizerLink link = self._bound()
        cdef long long step0 = link.step_count
        if sample_weight is not None:
            sw = <double*>cnp.PyArray_DATA(<cnp.ndarray>sample_weight)
        self._reserve_batch(batch, n_features, n_targets)
        cdef void* xb = cnp.PyArray_DATA(<cnp.ndarray>self.batch_X)
        cdef void* tb = cnp.PyArray_DATA(<cnp.ndarray>self.batch_T)
        cdef Py_ssize_t* lb = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>self.batch_L)
        cdef double* wb = <double*>cnp.PyArray_DATA(<cnp.ndarray>self.batch_W)
        if labels is not None:
            lp = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>labels)
        with nogil:
            if self.f32:
                steps = epoch_impl[float](self.layers, self.n_layers, self.loss, <float*>x,
                                          <float*>t, lp, sw, n_features, n_targets, op, n,
                                          batch, <float*>xb, <float*>tb, lb, wb, &self.cfg,
                                          &self.conv, step0, &loss_sum)
            else:
                steps = epoch_impl[double](self.layers, self.n_layers, self.loss, <double*>x,
                                           <double*>t, lp, sw, n_features, n_targets, op, n,
                                           batch, <double*>xb, <double*>tb, lb, wb, &self.cfg,
                                           &self.conv, step0, &loss_sum)
        link.step_count = step0 + (steps if steps >= 0 else -steps)
        return steps, loss_sum

    def _reserve_batch(self, Py_ssize_t batch, Py_ssize_t n_features, Py_ssize_t n_targets):
        self.reserve(batch)
        if self.batch_X is None or self.batch_X.shape[0] < batch:
            self.batch_X = np.empty((batch, n_features), dtype=self.dtype)
            self.batch_T = np.empty((batch, max(n_targets, 1)), dtype=self.dtype)
            self.batch_L = np.empty(batch, dtype=np.intp)
            self.batch_W = np.empty(batch, dtype=np.float64)


cdef void* _ptr(arr) except NULL:
    """The data pointer of a C-contiguous, writable array of the engine's dtype."""
    if not isinstance(arr, np.ndarray) or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError("engine buffers must be writable C-contiguous arrays")
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef void* _ptr_or_null(arr) except? NULL:
    if arr is None:
        return NULL
    return _ptr(arr)
