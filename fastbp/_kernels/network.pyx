"""The whole-network engine: a training step, an epoch, or a forward pass in one
compiled call with the GIL released.

Design: ``Engine`` holds raw pointers to a model's live parameter and gradient
arrays (one ``Param`` record each, in ``model.parameters()`` order), to
preallocated workspaces (Z, A and the backward buffer D of every layer, sized
for the largest batch of the current calls) and to the optimizer's state arrays.
A model is a list of layer records (``LayerRec``); each record carries its
``kind`` (fastbp/_table.py's LAYER_KINDS) and the index of its first parameter,
and the loops below call ``layer_forward``/``layer_backward``, which dispatch on
the kind to that kind's ``cdef`` kernels (the same ones ``fastbp.ops`` calls).
A step runs forward, the loss and its gradient in one pass (softmax/sigmoid and
cross-entropy fused), and the backward pass from the last layer down; each
layer's parameters are updated as soon as its gradients exist, after its dX has
used the old weights. Nothing is allocated per step once the workspaces fit
the batch. Pointers are stored as ``void*`` and cast to the model's dtype by the
fused functions below.

Adding a layer kind here: a code in fastbp/_table.py's LAYER_KINDS, a branch in
``layer_forward``, ``layer_backward`` and (if its backward reads A in place of Z)
``output_is_z``; kind-specific constants travel in ``LayerRec.hyper``, arrays a kind
keeps besides its parameters (BatchNorm's running statistics) in ``LayerRec.buf``.

Dropout (training only): a layer with dropout writes A·mask/(1-p) to a buffer
Ad that the next layer reads; the backward multiplies the layer's dL/dA by the
same mask before the activation derivative. Ad is a separate buffer where that
derivative reads A or Z (sigmoid, tanh, gelu, ...), and A itself where it reads
only the sign of Z (relu, leaky relu, whose A is their Z) or nothing
(identity): 1/(1-p) > 0 keeps a kept element's sign, and a dropped element's
dL/dZ is 0 whatever Z holds (for a finite dL/dA; a non-finite one gives 0 there
instead of NaN). The masks are drawn for the step being taken (the optimizer's
step count) from the counter-based generator of _dropout.h, so nothing about
them is stored between steps.

The optimizer contract: an optimizer shares one typed ``OptimizerLink``
(optim.pxd) with the engine, holding its configuration record, its state
tuple and its step counter. ``bind_optimizer`` copies the record into the
kernels' ``fb_optim_config`` and points at the state arrays; the binding is
current while the link holds the same record and state objects (an assignment
or a load replaces them). The engine advances the link's step counter itself.

Memory safety does not rest on what an earlier call left behind: every buffer
is checked against the call's own sizes before it is used (``reserve``,
``_reserve_batch``), and every index read from caller memory (a batch order, a
class label) is range-checked where it is read, in the engine's own copy, so
that another thread writing into the caller's arrays during a call cannot make
the kernels read or write out of bounds.
"""
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cython cimport floating
from libc.math cimport isfinite, sqrt
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memset

import numpy as np
cimport numpy as cnp

cnp.import_array()

from fastbp._kernels._math cimport (ACT_IDENTITY, ACT_RELU, ACT_LEAKY_RELU, ACT_SIGMOID,
                                    ACT_SOFTMAX, LOSS_CE, LOSS_BCE, LAYER_DENSE,
                                    LAYER_ACTIVATION, LAYER_DROPOUT, LAYER_LAYER_NORM,
                                    LAYER_RESIDUAL, LAYER_BATCH_NORM, LAYER_PERIODIC_EMBEDDING,
                                    LAYER_PIECEWISE_LINEAR_ENCODING, LAYER_CATEGORICAL_EMBEDDING,
                                    LAYER_BATCH_ENSEMBLE, LAYER_LINEAR_ENSEMBLE, LAYER_SCALE,
                                    LAYER_PARAMETRIC_ACTIVATION,
                                    LAYER_PERIODIC_BIAS_EMBEDDING)
from fastbp._kernels.dense cimport (SparseRows, dense_forward_ptr, dense_backward_ptr,
                                    column_sums_ptr, sparse_dense_forward_ptr,
                                    sparse_dense_backward_ptr, batch_ensemble_forward_ptr,
                                    batch_ensemble_backward_ptr, linear_ensemble_forward_ptr,
                                    linear_ensemble_backward_ptr)
from fastbp._kernels._blas cimport gemm, dot_self, axpy
from fastbp._kernels.derivatives cimport act_derivatives
from fastbp._kernels.dropout cimport (
    dropout_layer_key, dropout_step_key, dropout_threshold, dropout_forward_ptr,
    dropout_backward_ptr,
)
from fastbp._kernels.norm cimport (layer_norm_forward_ptr, layer_norm_backward_ptr,
                                   batch_norm_train_forward_ptr, batch_norm_eval_forward_ptr,
                                   batch_norm_backward_ptr)
from fastbp._kernels.embed cimport (periodic_forward_ptr, periodic_backward_ptr, ple_forward_ptr,
                                    ple_backward_ptr, cat_numeric_forward_ptr,
                                    cat_column_forward_ptr, cat_numeric_backward_ptr,
                                    cat_column_backward_ptr, periodic_bias_forward_ptr,
                                    periodic_bias_backward_ptr)
from fastbp._kernels.scaling cimport (scale_forward_ptr, scale_backward_ptr,
                                      parametric_forward_ptr, parametric_backward_ptr)
from fastbp._kernels.losses cimport loss_forward_backward_ptr, weighted_loss_ptr
from fastbp._kernels.sklearn_loss cimport clip_correction_ptr, clipped_log_loss_ptr
from fastbp._kernels.optim cimport (OptimizerLink, fb_optim_config, fb_optim_step, fill_config,
                                     optim_begin_step, optim_update_ptr)
from fastbp._kernels.activations cimport bias_activation_forward_ptr, activation_backward_ptr


from fastbp._validation import MAX_STEP as _MAX_STEP, dropout_scale

cdef extern from "_interrupt.h" nogil:
    int fb_interrupt_install() noexcept
    void fb_interrupt_remove() noexcept
    int fb_interrupt_pending() noexcept
    void fb_interrupt_clear() noexcept

# The largest step count an optimizer takes (defined in fastbp._validation).
cdef long long MAX_STEP = _MAX_STEP

# Workspaces of more bytes than this are released at the end of a call unless the
# call before needed the same rows (a repeated size keeps them): a one-off large
# prediction does not keep its memory for the model's lifetime.
cdef Py_ssize_t TRIM_BYTES = 32 << 20
# An inference pass takes at most the rows whose workspaces fit in BLOCK_BYTES (Engine.
# _block_rows), and never fewer than MIN_BLOCK_ROWS (products of fewer rows lose speed).
cdef Py_ssize_t BLOCK_BYTES = 32 << 20
cdef Py_ssize_t MIN_BLOCK_ROWS = 64

#: the status of a compiled epoch (Engine.epoch's first result)
EPOCH_DONE = 0          # every batch of the order was stepped
EPOCH_NONFINITE = 1     # a batch's loss was not finite: stopped after that step
EPOCH_INTERRUPTED = 2   # Ctrl-C (see _interrupt.h): stopped after a complete step
EPOCH_BAD_INDEX = 3     # an order entry or a class label was out of range when gathered
cdef enum:
    _DONE = 0
    _NONFINITE = 1
    _INTERRUPTED = 2
    _BAD_INDEX = 3


cdef struct Param:
    void* p           # the live parameter array
    void* g           # its gradient
    void* s[3]        # optimizer state (in the record's kernel_state order; NULL unused)
    Py_ssize_t size
    bint penalized    # a weight (not a bias): the objective's L2 penalty applies
    int group         # its optimizer parameter group (OptimGroups)


cdef struct OptimGroups:
    # The bound optimizer's parameter groups (one without groups): group g updates with
    # the record's lr times lr_scale[g] and weight decay wd[g] (NaN: the record's).
    # cfg and st are per-step scratch (begin_groups); base is the record a step uses (an
    # epoch's per-batch schedule points it at a copy with the batch's lr).
    int n
    const double* lr_scale
    const double* wd
    fb_optim_config* cfg
    fb_optim_step* st
    const fb_optim_config* base


cdef inline void begin_groups(OptimGroups* G, long long step) noexcept nogil:
    """Each group's record (the base's with its lr and weight decay) and step values."""
    cdef int g
    for g in range(G.n):
        G.cfg[g] = G.base[0]
        G.cfg[g].lr = G.base.lr * G.lr_scale[g]
        if G.wd[g] == G.wd[g]:
            G.cfg[g].weight_decay = G.wd[g]
        optim_begin_step(&G.cfg[g], step, &G.st[g])


cdef inline void update_param(floating* p, Param* q, const OptimGroups* G) noexcept nogil:
    """Parameter q's update with its group's record and step values (p: q.p, typed)."""
    optim_update_ptr(p, <floating*>q.g, q.s, q.size, &G.cfg[q.group], &G.st[q.group])


cdef struct LayerRec:
    int kind            # fastbp/_table.py LAYER_KINDS
    int act             # ACTIVATIONS code of the layer's output
    Py_ssize_t n_in
    Py_ssize_t n_out
    int p0              # index of its first Param
    int n_params
    void* Z             # (cap, n_out); equals A where output_is_z
    void* A             # (cap, n_out)
    void* D             # (cap, n_out): dL/dA, then dL/dZ in place
    void* S             # statistics between forward and backward, else NULL: LayerNorm's
                        # 1/σ per row and group (cap·groups,); BatchNorm's 4·n_out
                        # doubles (norm.pyx)
    double hyper[2]     # the kind's constants (LayerNorm's eps and groups; BatchNorm's eps and
                        # momentum; a Residual's block length), else 0
    void* buf[2]        # arrays the kind keeps besides its parameters (BatchNorm's running
                        # mean and variance; a piecewise-linear encoding's tables), else NULL
    const void* input   # the input of its last forward (a Residual reads its block's)
    int begin           # a Residual's (x + f(x)) first block layer; -1 for other kinds
    # Dropout on the layer's output in training (the next layer reads Ad).
    double dropout              # p; 0: no dropout (then Ad and keep are NULL)
    double drop_scale           # 1/(1-p)
    uint64_t drop_key           # dropout_layer_key(model seed, layer index)
    uint64_t drop_threshold     # dropout_threshold(p)
    void* Ad                    # (cap, n_out): A·mask/(1-p) (A itself where output_is_z)
    unsigned char* keep         # (cap, n_out): this step's mask


cdef struct Objective:
    # The training objective's convention (fastbp.Objective): the output gradient
    # times grad_scale, the loss value times loss_scale, and an L2 penalty on the
    # penalized parameters (weights, not biases) divided by the batch's weight sum
    # Σw (its size when unweighted): dW += (l2/Σw)·W, loss += ½·(l2/Σw)·Σ‖W‖². With
    # log_loss_clip > 0 the (binary) cross-entropy's value is taken from
    # probabilities clipped to [eps, 1-eps] (sklearn_loss.pyx). The defaults
    # (1, 1, 0, 0) skip all of it.
    double grad_scale
    double loss_scale
    double l2
    double clip_eps
    # k heads (TabM's mean loss over an ensemble's outputs): the last layer's n_out is k
    # blocks of n_out/k side by side, each scored against the row's target; the loss is
    # the mean over the n·k (row, head) pairs. 1: the plain loss. hT, hL, hW: scratch
    # for the targets, labels and weights repeated per head (reserve sizes them).
    int heads
    void* hT
    Py_ssize_t* hL
    double* hW
    # Per call: the targets T give each head its own (n, heads·w), read as they are
    # (TabM's members on their own rows); else each row's target is repeated per head.
    bint per_head
    # Per call, not part of the objective: a training step scales every gradient by
    # min(1, clip_norm/(‖g‖₂ + 1e-6)) over all parameters before any update
    # (torch.nn.utils.clip_grad_norm_); 0: no clipping.
    double clip_norm


cdef struct SparseBatch:
    # A first Dense layer's input given as CSR rows (fastbp._kernels.dense.SparseRows):
    # the batch is rows[0..n) of the matrix (row0, row0 + 1, ... when rows is NULL).
    const void* data
    const Py_ssize_t* indptr
    const Py_ssize_t* indices
    const Py_ssize_t* rows
    Py_ssize_t row0


# ---------------------------------------------------------------- layer kinds

cdef inline bint output_is_z(int kind, int act) noexcept nogil:
    """Whether the layer's backward needs only A (so A may be Z's buffer): a Dense
    with identity, or relu/leaky relu, whose derivative tests z > 0, which A > 0
    answers the same (NaN too); a Dropout or Residual layer, whose backward reads
    neither; a periodic embedding (identity or ReLU); a piecewise-linear encoding (its
    backward reads X), a categorical embedding, a Scale or a PBLD embedding (likewise).
    Not a ParametricActivation: its Z holds f(X) apart from its output."""
    return kind == LAYER_DROPOUT or kind == LAYER_RESIDUAL \
        or kind == LAYER_PERIODIC_EMBEDDING or kind == LAYER_PIECEWISE_LINEAR_ENCODING \
        or kind == LAYER_CATEGORICAL_EMBEDDING or kind == LAYER_SCALE \
        or kind == LAYER_PERIODIC_BIAS_EMBEDDING \
        or (kind == LAYER_DENSE or kind == LAYER_BATCH_ENSEMBLE
            or kind == LAYER_LINEAR_ENSEMBLE) and (
        act == ACT_IDENTITY or act == ACT_RELU or act == ACT_LEAKY_RELU)


cdef inline Py_ssize_t periodic_bias_features(const LayerRec* L) noexcept nogil:
    """A PBLD embedding's embedded columns F: its output is F·d + n_in wide (hyper: k, d)."""
    return (L.n_out - L.n_in) // <Py_ssize_t>L.hyper[1]


cdef inline void* param_or_null(LayerRec* L, const Param* P, int i) noexcept nogil:
    """The layer's i-th parameter array, NULL if it has fewer (LayerNorm without γ, β)."""
    return P[L.p0 + i].p if i < L.n_params else NULL


cdef inline void* grad_or_null(LayerRec* L, const Param* P, int i) noexcept nogil:
    return P[L.p0 + i].g if i < L.n_params else NULL


cdef inline void ensemble_dims(const LayerRec* L, Py_ssize_t* k, Py_ssize_t* d_in,
                               Py_ssize_t* d_out, bint* shared) noexcept nogil:
    """An ensemble layer's k members (hyper[0]), each of d_in -> d_out; ``shared``: one
    input of d_in columns every member reads (hyper[1]; a BatchEnsemble's first layer)."""
    k[0] = <Py_ssize_t>L.hyper[0]
    shared[0] = L.hyper[1] != 0.0
    d_in[0] = L.n_in if shared[0] else L.n_in // k[0]
    d_out[0] = L.n_out // k[0]


cdef inline Py_ssize_t ensemble_scratch_width(const LayerRec* L) noexcept nogil:
    """The values per row of a BatchEnsemble layer's S (ensemble_scratch)."""
    cdef Py_ssize_t k, d_in, d_out
    cdef bint shared
    ensemble_dims(L, &k, &d_in, &d_out, &shared)
    return k * (2 * d_in + d_out)


cdef inline Py_ssize_t row_scratch_width(const LayerRec* L) noexcept nogil:
    """The elements per row of a layer's scratch S (reserve sizes it for its rows; a
    BatchNorm's 4·n_out doubles do not grow with the rows: 0 here): LayerNorm's 1/σ, a
    periodic embedding's P and dP, a PBLD's, a BatchEnsemble's U, V and dU."""
    if L.kind == LAYER_LAYER_NORM:   # one 1/σ per row block (its groups)
        return <Py_ssize_t>L.hyper[1]
    if L.kind == LAYER_PERIODIC_EMBEDDING:
        return (L.n_in + 1) * 2 * <Py_ssize_t>L.hyper[0]
    if L.kind == LAYER_PERIODIC_BIAS_EMBEDDING:   # P (F·2k) and dP (k)
        return (periodic_bias_features(L) * 2 + 1) * <Py_ssize_t>L.hyper[0]
    if L.kind == LAYER_BATCH_ENSEMBLE:
        return ensemble_scratch_width(L)
    return 0


cdef inline void ensemble_scratch(const LayerRec* L, Py_ssize_t n, floating** U,
                                  floating** V, floating** dU) noexcept nogil:
    """A BatchEnsemble layer's S: U = X∘r (n·k·d_in), V = U·W (n·k·d_out), then the
    backward's dU (n·k·d_in); reserve sizes it for the capacity's rows."""
    cdef Py_ssize_t k, d_in, d_out
    cdef bint shared
    ensemble_dims(L, &k, &d_in, &d_out, &shared)
    U[0] = <floating*>L.S
    V[0] = U[0] + n * k * d_in
    dU[0] = V[0] + n * k * d_out


cdef inline void layer_forward(LayerRec* L, const Param* P, const floating* X, floating* out,
                               Py_ssize_t n, const LayerRec* layers,
                               bint training) noexcept nogil:
    """The layer's forward on X (n, n_in): its Z, and its output in ``out`` (A, or Z
    itself in inference). ``layers``: the model's records (a Residual reads its
    block's input); ``training``: a training step's forward (BatchNorm: the batch's
    statistics, and its running ones updated), else inference."""
    cdef Py_ssize_t i
    cdef const floating* skip
    cdef const Py_ssize_t* lay
    cdef Py_ssize_t n_num, off, k, d_in, d_out
    cdef bint shared
    cdef floating* U
    cdef floating* V
    cdef floating* dU
    L.input = X
    if L.kind == LAYER_BATCH_ENSEMBLE or L.kind == LAYER_LINEAR_ENSEMBLE:
        # Z := the members' affine maps, then out := f(Z) (in place where out is Z)
        ensemble_dims(L, &k, &d_in, &d_out, &shared)
        if L.kind == LAYER_BATCH_ENSEMBLE:   # W, r, s (, b)
            ensemble_scratch(L, n, &U, &V, &dU)
            batch_ensemble_forward_ptr(X, <floating*>P[L.p0].p, <floating*>P[L.p0 + 1].p,
                                       <floating*>P[L.p0 + 2].p,
                                       <floating*>param_or_null(L, P, 3), U, V,
                                       <floating*>L.Z, n, k, d_in, d_out, shared)
        else:                                # W (k, d_in, d_out) (, b)
            linear_ensemble_forward_ptr(X, <floating*>P[L.p0].p,
                                        <floating*>param_or_null(L, P, 1), <floating*>L.Z,
                                        n, k, d_in, d_out)
        if L.act != ACT_IDENTITY or out != <floating*>L.Z:
            bias_activation_forward_ptr(L.act, <floating*>L.Z, <const floating*>NULL, out, n,
                                        L.n_out)
    elif L.kind == LAYER_DENSE:
        dense_forward_ptr(L.act, X, <floating*>P[L.p0].p, <floating*>param_or_null(L, P, 1),
                          <floating*>L.Z, out, n, L.n_in, L.n_out)
    elif L.kind == LAYER_ACTIVATION:   # out := f(X), in place on a copy (X is its Z)
        memcpy(out, X, n * L.n_out * sizeof(floating))
        bias_activation_forward_ptr(L.act, out, <const floating*>NULL, out, n, L.n_out)
    elif L.kind == LAYER_DROPOUT:      # the identity; its dropout is the engine's, on out
        memcpy(out, X, n * L.n_out * sizeof(floating))
    elif L.kind == LAYER_LAYER_NORM:   # Z := x̂, out := γ·x̂ + β (out may be Z)
        layer_norm_forward_ptr(X, <floating*>param_or_null(L, P, 0),
                               <floating*>param_or_null(L, P, 1), <floating*>L.Z, out,
                               <floating*>L.S, n, L.n_out, <Py_ssize_t>L.hyper[1],
                               L.hyper[0])
    elif L.kind == LAYER_BATCH_NORM and training:   # Z := x̂, out := γ·x̂ + β
        batch_norm_train_forward_ptr(X, <floating*>param_or_null(L, P, 0),
                                     <floating*>param_or_null(L, P, 1), <floating*>L.Z, out,
                                     <double*>L.S, <floating*>L.buf[0], <floating*>L.buf[1],
                                     n, L.n_out, L.hyper[0], L.hyper[1])
    elif L.kind == LAYER_BATCH_NORM:
        batch_norm_eval_forward_ptr(X, <floating*>param_or_null(L, P, 0),
                                    <floating*>param_or_null(L, P, 1), <floating*>L.buf[0],
                                    <floating*>L.buf[1], out, n, L.n_out, L.hyper[0])
    elif L.kind == LAYER_PERIODIC_EMBEDDING:   # S holds P (F, n, 2k)
        periodic_forward_ptr(X, <floating*>P[L.p0].p, <floating*>P[L.p0 + 1].p,
                             <floating*>P[L.p0 + 2].p, <floating*>L.S, <floating*>L.Z, out,
                             n, L.n_in, <Py_ssize_t>L.hyper[0], L.n_out // L.n_in,
                             (<int>L.hyper[1]) & 1, (<int>L.hyper[1]) & 2)
    elif L.kind == LAYER_PIECEWISE_LINEAR_ENCODING:   # buf: each column's feature; w, b, lo, hi
        ple_forward_ptr(X, <const Py_ssize_t*>L.buf[0], <const floating*>L.buf[1], out, n,
                        L.n_in, L.n_out)
    elif L.kind == LAYER_CATEGORICAL_EMBEDDING:   # buf[0]: the layout; hyper[0]: coded columns
        lay = <const Py_ssize_t*>L.buf[0]
        n_num = L.n_in - <Py_ssize_t>L.hyper[0]
        cat_numeric_forward_ptr(X, lay, out, n, L.n_in, n_num, L.n_out)
        off = n_num
        for i in range(<Py_ssize_t>L.hyper[0]):
            cat_column_forward_ptr(X, <floating*>P[L.p0 + i].p, out, n, L.n_in,
                                   lay[n_num + 3 * i], lay[n_num + 3 * i + 1],
                                   lay[n_num + 3 * i + 2], L.n_out, off)
            off += lay[n_num + 3 * i + 2]
    elif L.kind == LAYER_SCALE:        # out := X·s
        scale_forward_ptr(X, <floating*>P[L.p0].p, out, n, L.n_out)
    elif L.kind == LAYER_PARAMETRIC_ACTIVATION:   # Z := f(X), out := X + α·(Z − X)
        parametric_forward_ptr(L.act, X, <floating*>P[L.p0].p, <floating*>L.Z, out, n,
                               L.n_out)
    elif L.kind == LAYER_PERIODIC_BIAS_EMBEDDING:   # S holds P (F, n, 2k); hyper: k, d
        k = <Py_ssize_t>L.hyper[0]
        d_out = <Py_ssize_t>L.hyper[1]
        periodic_bias_forward_ptr(X, <floating*>P[L.p0].p, <floating*>P[L.p0 + 1].p,
                                  <floating*>P[L.p0 + 2].p, <floating*>P[L.p0 + 3].p,
                                  <floating*>L.S, out, n, L.n_in, periodic_bias_features(L),
                                  k, d_out)
    elif L.kind == LAYER_RESIDUAL:     # out := X + the block's input
        skip = <const floating*>layers[L.begin].input
        for i in range(n * L.n_out):
            out[i] = X[i] + skip[i]


cdef inline void layer_backward(LayerRec* L, const Param* P, const floating* X, floating* dX,
                                Py_ssize_t n) noexcept nogil:
    """The layer's backward: L.D holds dL/dA (and becomes dL/dZ in place); fills its
    parameters' gradients and, unless dX is NULL, dL/dX (n, n_in)."""
    cdef const Py_ssize_t* lay
    cdef Py_ssize_t i, n_num, off, k, d_in, d_out
    cdef bint shared
    cdef floating* U
    cdef floating* V
    cdef floating* dU
    if L.kind == LAYER_BATCH_ENSEMBLE or L.kind == LAYER_LINEAR_ENSEMBLE:
        ensemble_dims(L, &k, &d_in, &d_out, &shared)
        # D := dL/dZ in place (BatchEnsemble: then dL/dV = dZ∘s, in place too)
        activation_backward_ptr(L.act, <floating*>L.Z, <floating*>L.A, <floating*>L.D,
                                <floating*>L.D, n, L.n_out)
        if L.kind == LAYER_BATCH_ENSEMBLE:
            ensemble_scratch(L, n, &U, &V, &dU)
            batch_ensemble_backward_ptr(X, <floating*>P[L.p0].p, <floating*>P[L.p0 + 1].p,
                                        <floating*>P[L.p0 + 2].p, U, V, <floating*>L.D,
                                        <floating*>L.D, dU, dX, <floating*>P[L.p0].g,
                                        <floating*>P[L.p0 + 1].g, <floating*>P[L.p0 + 2].g,
                                        <floating*>grad_or_null(L, P, 3), n, k, d_in, d_out,
                                        shared)
        else:
            linear_ensemble_backward_ptr(X, <floating*>P[L.p0].p, <floating*>L.D, dX,
                                         <floating*>P[L.p0].g, <floating*>grad_or_null(L, P, 1),
                                         n, k, d_in, d_out)
    elif L.kind == LAYER_DENSE:
        dense_backward_ptr(L.act, X, <floating*>P[L.p0].p, <floating*>L.Z, <floating*>L.A,
                           <floating*>L.D, <floating*>L.D, dX, <floating*>P[L.p0].g,
                           <floating*>grad_or_null(L, P, 1), n, L.n_in, L.n_out)
    elif L.kind == LAYER_ACTIVATION and dX != NULL:   # dX := f'(X)·dA (no parameters)
        activation_backward_ptr(L.act, X, <floating*>L.A, <floating*>L.D, dX, n, L.n_out)
    elif (L.kind == LAYER_DROPOUT or L.kind == LAYER_RESIDUAL) and dX != NULL:
        # the identity (a Dropout's mask: the caller's; a Residual's skip: add_skip_gradients)
        memcpy(dX, L.D, n * L.n_out * sizeof(floating))
    elif L.kind == LAYER_LAYER_NORM:
        layer_norm_backward_ptr(<floating*>L.Z, <floating*>L.S,
                                <floating*>param_or_null(L, P, 0), <floating*>L.D, dX,
                                <floating*>grad_or_null(L, P, 0),
                                <floating*>grad_or_null(L, P, 1), n, L.n_out,
                                <Py_ssize_t>L.hyper[1])
    elif L.kind == LAYER_PERIODIC_EMBEDDING:   # dP: S after P
        periodic_backward_ptr(X, <floating*>P[L.p0].p, <floating*>P[L.p0 + 1].p,
                              <floating*>L.S, <floating*>L.Z, <floating*>L.A, <floating*>L.D,
                              dX, <floating*>P[L.p0].g, <floating*>P[L.p0 + 1].g,
                              <floating*>P[L.p0 + 2].g,
                              <floating*>L.S + L.n_in * n * 2 * <Py_ssize_t>L.hyper[0],
                              n, L.n_in, <Py_ssize_t>L.hyper[0], L.n_out // L.n_in,
                              (<int>L.hyper[1]) & 1, (<int>L.hyper[1]) & 2)
    elif L.kind == LAYER_PIECEWISE_LINEAR_ENCODING:
        ple_backward_ptr(X, <const Py_ssize_t*>L.buf[0], <const floating*>L.buf[1],
                         <floating*>L.D, dX, n, L.n_in, L.n_out)
    elif L.kind == LAYER_CATEGORICAL_EMBEDDING:
        lay = <const Py_ssize_t*>L.buf[0]
        n_num = L.n_in - <Py_ssize_t>L.hyper[0]
        if dX != NULL:
            cat_numeric_backward_ptr(lay, <floating*>L.D, dX, n, L.n_in, n_num, L.n_out)
        off = n_num
        for i in range(<Py_ssize_t>L.hyper[0]):
            cat_column_backward_ptr(X, <floating*>L.D, <floating*>P[L.p0 + i].g, n, L.n_in,
                                    lay[n_num + 3 * i], lay[n_num + 3 * i + 1],
                                    lay[n_num + 3 * i + 2], L.n_out, off)
            off += lay[n_num + 3 * i + 2]
    elif L.kind == LAYER_SCALE:
        scale_backward_ptr(X, <floating*>P[L.p0].p, <floating*>L.D, dX, <floating*>P[L.p0].g,
                           n, L.n_out)
    elif L.kind == LAYER_PARAMETRIC_ACTIVATION:
        parametric_backward_ptr(L.act, X, <floating*>P[L.p0].p, <floating*>L.Z,
                                <floating*>L.D, dX, <floating*>P[L.p0].g, n, L.n_out)
    elif L.kind == LAYER_PERIODIC_BIAS_EMBEDDING:   # dP: S after P
        k = <Py_ssize_t>L.hyper[0]
        d_out = <Py_ssize_t>L.hyper[1]
        n_num = periodic_bias_features(L)
        periodic_bias_backward_ptr(X, <floating*>P[L.p0].p, <floating*>P[L.p0 + 2].p,
                                   <floating*>L.S, <floating*>L.D, dX, <floating*>P[L.p0].g,
                                   <floating*>P[L.p0 + 1].g, <floating*>P[L.p0 + 2].g,
                                   <floating*>P[L.p0 + 3].g,
                                   <floating*>L.S + n_num * n * 2 * k, n, L.n_in, n_num, k,
                                   d_out)
    elif L.kind == LAYER_BATCH_NORM:   # (a training forward's: backward is for training)
        batch_norm_backward_ptr(<floating*>L.Z, <double*>L.S,
                                <floating*>param_or_null(L, P, 0), <floating*>L.D, dX,
                                <floating*>grad_or_null(L, P, 0),
                                <floating*>grad_or_null(L, P, 1), n, L.n_out)


cdef inline void add_skip_gradients(LayerRec* layers, int n_layers, int l, floating* dX,
                                    Py_ssize_t n) noexcept nogil:
    """After layer l's backward wrote dX (dL/d its input): add the dL/d(output) of each
    Residual whose block begins at l (its skip path; that D is intact, as only layers
    below a layer write into its D)."""
    cdef int r
    cdef Py_ssize_t i
    cdef const floating* d
    if dX == NULL:
        return
    for r in range(l + 1, n_layers):
        if layers[r].kind == LAYER_RESIDUAL and layers[r].begin == l:
            d = <const floating*>layers[r].D
            for i in range(n * layers[r].n_out):
                dX[i] += d[i]


cdef inline void first_forward(LayerRec* L, const Param* P, const floating* X,
                               const SparseBatch* sp, floating* out, Py_ssize_t n,
                               bint training) noexcept nogil:
    """The first layer's forward: on X, or (sp not NULL; a Dense layer) on CSR rows."""
    if sp == NULL:
        layer_forward(L, P, X, out, n, L, training)
    else:
        sparse_dense_forward_ptr(L.act, <const floating*>sp.data, sp.indptr, sp.indices,
                                 sp.rows, sp.row0, <floating*>P[L.p0].p,
                                 <floating*>param_or_null(L, P, 1), <floating*>L.Z, out, n, L.n_out)


# ---------------------------------------------------------------- the passes

cdef void forward_impl(LayerRec* layers, int n_layers, const Param* P, const floating* X,
                       const SparseBatch* sp, Py_ssize_t n, bint keep) noexcept nogil:
    """Every layer's forward (the first on X, or on sp's CSR rows). Without ``keep``
    (inference) the activation runs in place in Z, saving a pass of memory traffic; the
    output is then in the last layer's Z."""
    cdef int l
    cdef const floating* inp = X
    cdef floating* out
    for l in range(n_layers):
        out = <floating*>layers[l].A if keep else <floating*>layers[l].Z
        if l == 0:
            first_forward(&layers[0], P, X, sp, out, n, False)
        else:
            layer_forward(&layers[l], P, inp, out, n, layers, False)
        inp = out


cdef inline void* train_output(LayerRec* L) noexcept nogil:
    """What the next layer reads in training: A, or A with dropout applied."""
    return L.Ad if L.dropout > 0 else L.A


cdef void forward_train_impl(LayerRec* layers, int n_layers, const Param* P,
                             const floating* X, const SparseBatch* sp, Py_ssize_t n,
                             long long step) noexcept nogil:
    """forward_impl(keep=True) plus dropout with the masks of ``step`` where a layer has it."""
    cdef int l
    cdef const floating* inp = X
    cdef LayerRec* L
    for l in range(n_layers):
        L = &layers[l]
        if l == 0:
            first_forward(L, P, X, sp, <floating*>L.A, n, True)
        else:
            layer_forward(L, P, inp, <floating*>L.A, n, layers, True)
        if L.dropout > 0:
            dropout_forward_ptr(dropout_step_key(L.drop_key, <uint64_t>step), L.drop_threshold,
                                L.drop_scale, <floating*>L.A, <floating*>L.Ad, L.keep,
                                n * L.n_out)
        inp = <floating*>train_output(L)


cdef void scale_in_place(floating* x, double a, Py_ssize_t size) noexcept nogil:
    """x *= a (in double, rounded to x's type)."""
    cdef Py_ssize_t i
    for i in range(size):
        x[i] = <floating>(x[i] * a)


cdef void repeat_per_head(const floating* T, const Py_ssize_t* labels, const double* sw,
                          Py_ssize_t n, Py_ssize_t width, const Objective* obj) noexcept nogil:
    """Each row's target (labels, weight) once per head into the objective's scratch
    (not the targets of a per-head call: they are read as they are)."""
    cdef Py_ssize_t i, m, h = obj.heads
    for i in range(n):
        for m in range(h):
            if T != NULL and not obj.per_head:
                memcpy(<floating*>obj.hT + (i * h + m) * width, T + i * width,
                       width * sizeof(floating))
            if labels != NULL:
                obj.hL[i * h + m] = labels[i]
            if sw != NULL:
                obj.hW[i * h + m] = sw[i]


cdef double objective_value(LayerRec* last, const Param* P, int n_params, int loss,
                            const floating* T, const Py_ssize_t* labels, const double* sw,
                            Py_ssize_t n, const Objective* obj, double* l2_out) noexcept nogil:
    """The loss of the last layer's output A and its gradient into last.D, under the
    objective's convention; *l2_out: the penalty's coefficient for the gradients."""
    cdef double value, wsum = <double>n, penalty, correction
    cdef bint recompute = False
    cdef Py_ssize_t i, rows = n, width = last.n_out
    cdef int j
    cdef floating* d
    if sw != NULL:   # (the penalty's Σw is over the samples, not the heads)
        wsum = 0.0
        for i in range(n):
            wsum += sw[i]
    if obj.heads > 1:   # score each head: (n, h·w) as (n·h, w), the targets repeated
        # (or, per_head, each head's own: T is (n, h·w) already)
        width = last.n_out // obj.heads
        rows = n * obj.heads
        repeat_per_head(T, labels, sw, n, width, obj)
        if T != NULL and not obj.per_head:
            T = <const floating*>obj.hT
        labels = obj.hL if labels != NULL else NULL
        sw = obj.hW if sw != NULL else NULL
    if sw == NULL:
        value = loss_forward_backward_ptr(loss, <floating*>last.A, T, labels,
                                          <floating*>last.D, rows, width)
    else:
        value = weighted_loss_ptr(loss, <floating*>last.A, T, labels, sw, <floating*>last.D,
                                  rows, width)
    if obj.grad_scale != 1.0:
        d = <floating*>last.D
        for i in range(n * last.n_out):
            d[i] = <floating>(d[i] * obj.grad_scale)
    if obj.clip_eps > 0.0:
        correction = clip_correction_ptr(loss, <floating*>last.A, T, labels, sw, rows,
                                         width, obj.clip_eps, &recompute)
        if recompute:
            value = clipped_log_loss_ptr(loss, <floating*>last.A, T, labels, sw, rows,
                                         width, obj.clip_eps)
        else:
            value += correction
    if obj.loss_scale != 1.0:
        value *= obj.loss_scale
    l2_out[0] = 0.0
    if obj.l2 != 0.0:
        # The penalty of the weights this step starts from (before any update).
        l2_out[0] = obj.l2 / wsum
        penalty = 0.0
        for j in range(n_params):
            if P[j].penalized:
                penalty += dot_self(<floating*>P[j].p, P[j].size)   # np.dot(w, w)
        value += 0.5 * l2_out[0] * penalty
    return value


cdef double step_impl(LayerRec* layers, int n_layers, Param* P, int n_params, int loss,
                      const floating* X, const SparseBatch* sp, const floating* T,
                      const Py_ssize_t* labels, const double* sw, Py_ssize_t n,
                      OptimGroups* G, const Objective* obj,
                      long long step) noexcept nogil:
    """Forward, loss, backward and (with cfg, else NULL) the update of every layer at
    optimizer step ``step``; the loss. The input: X, or (sp not NULL) CSR rows.

    sw: per-sample weights (NULL: unweighted); obj: the objective's convention.
    ``step`` is also the step whose dropout masks are drawn. With obj.clip_norm > 0 the
    gradients are clipped by their global norm, and the updates wait for all of them."""
    cdef int l, j
    cdef LayerRec* L
    cdef const floating* inp
    cdef double value, l2, total, coef
    cdef bint update_now = G != NULL and obj.clip_norm == 0.0
    if G != NULL:  # the step's values once, not per buffer
        begin_groups(G, step)
    forward_train_impl(layers, n_layers, P, X, sp, n, step)
    value = objective_value(&layers[n_layers - 1], P, n_params, loss, T, labels, sw, n, obj,
                            &l2)
    for l in range(n_layers - 1, -1, -1):
        L = &layers[l]
        inp = X if l == 0 else <floating*>train_output(&layers[l - 1])
        if L.dropout > 0:  # D holds dL/d(A·m); make it dL/dA (m: mask/(1-p))
            dropout_backward_ptr(L.drop_scale, L.keep, <floating*>L.D, n * L.n_out)
        # dX goes to the layer below's D.
        if l == 0 and sp != NULL:   # (W's L2 gradient starts its dW: not added below)
            sparse_dense_backward_ptr(L.act, <const floating*>sp.data, sp.indptr, sp.indices,
                                      sp.rows, sp.row0, <floating*>L.Z, <floating*>L.A,
                                      <floating*>L.D, <floating*>L.D, <floating*>P[L.p0].g,
                                      <floating*>grad_or_null(L, P, 1), n, L.n_in, L.n_out,
                                      <floating*>P[L.p0].p, l2 if P[L.p0].penalized else 0.0)
        else:
            layer_backward(L, P, inp, <floating*>layers[l - 1].D if l > 0 else NULL, n)
            if l > 0:
                add_skip_gradients(layers, n_layers, l, <floating*>layers[l - 1].D, n)
        for j in range(L.p0, L.p0 + L.n_params):
            if l2 != 0.0 and P[j].penalized and not (l == 0 and sp != NULL and j == L.p0):
                axpy(P[j].size, l2, <floating*>P[j].p, <floating*>P[j].g)
            if update_now:
                update_param(<floating*>P[j].p, &P[j], G)
    if obj.clip_norm > 0.0:
        total = 0.0
        for j in range(n_params):
            total += dot_self(<floating*>P[j].g, P[j].size)
        coef = obj.clip_norm / (sqrt(total) + 1e-6)
        if coef < 1.0:
            for j in range(n_params):
                scale_in_place(<floating*>P[j].g, coef, P[j].size)
        if G != NULL:
            for j in range(n_params):
                update_param(<floating*>P[j].p, &P[j], G)
    return value


# ---------------------------------------------------------------- training on derivatives

cdef struct Tangents:
    # The buffers of a step on derivative data (sobolev_impl), per layer l: TZ[l] and T[l]
    # (n·n_in, k_l): the tangents dZ/dx_j and dA/dx_j, row i·n_in + j; d1[l], d2[l]
    # (n, k_l): f'(Z) and f''(Z). Rows: the capacity they were sized for. R: (n, n_in).
    # The reverse formulation (sobolev_reverse_impl) uses TZ[l] and T[l] as four
    # (n, k_l) arrays (it runs only when n_in >= 2, so they fit).
    void** TZ
    void** T
    void** d1
    void** d2
    void* R


cdef double sobolev_impl(LayerRec* layers, int n_layers, Param* P, int n_params, int loss,
                         const floating* X, const floating* Tg, const Py_ssize_t* labels,
                         const double* sw, const floating* dy, double dy_weight, Py_ssize_t n,
                         const Tangents* tg, OptimGroups* OG, const Objective* obj,
                         long long step) noexcept nogil:
    """A step (OG: with the update; NULL: gradients only) on the loss plus dy_weight times
    the (weighted) mean squared error between the Jacobian of the raw output and ``dy``
    (n, n_out, n_in); returns that total.

    Forward: every layer's value and its input tangents (as derivatives.pyx); backward,
    reverse mode through both streams: with G_T the gradient of the loss with respect to
    a layer's tangents, G_Z = f'·G_A + f''·Σ_j G_T·TZ (f' depends on Z), G_TZ = f'·G_T,
    dW = Aᵀ·G_Z + Tᵀ·G_TZ over every (sample, input) row, db = Σ G_Z, and the layer below
    gets G_Z·Wᵀ and G_TZ·Wᵀ. Dense layers without dropout (the caller checks).

    Its cost grows with n_in (a tangent per input); with fewer outputs than inputs the
    reverse formulation, whose cost grows with n_out, takes the step instead."""
    if layers[n_layers - 1].n_out < layers[0].n_in:
        return sobolev_reverse_impl(layers, n_layers, P, n_params, loss, X, Tg, labels, sw,
                                    dy, dy_weight, n, tg, OG, obj, step)
    cdef int l, j
    cdef Py_ssize_t n_in = layers[0].n_in, rows = n * n_in, i, r, c, k, k_in, jj
    cdef LayerRec* L
    cdef LayerRec* last = &layers[n_layers - 1]
    cdef const floating* inp
    cdef const floating* tin
    cdef floating* TZ
    cdef floating* T
    cdef floating* d1
    cdef floating* d2
    cdef floating* W
    cdef floating* G
    cdef double value, l2, e, term = 0.0, wsum = 0.0, scale, acc
    cdef Py_ssize_t k_out = last.n_out
    if OG != NULL:
        begin_groups(OG, step)
    # forward: values and tangents
    inp = X
    for l in range(n_layers):
        L = &layers[l]
        k_in, k = L.n_in, L.n_out
        TZ, T = <floating*>tg.TZ[l], <floating*>tg.T[l]
        d1, d2 = <floating*>tg.d1[l], <floating*>tg.d2[l]
        W = <floating*>P[L.p0].p
        layer_forward(L, P, inp, <floating*>L.A, n, layers, True)
        act_derivatives(L.act, <floating*>L.Z, <floating*>L.A, d1, d2, n * k)
        if l == 0:
            for i in range(n):
                memcpy(&TZ[i * n_in * k], W, n_in * k * sizeof(floating))
        else:
            gemm(False, False, rows, k, k_in, 1.0, <floating*>tg.T[l - 1], k_in, W, k, 0.0,
                 TZ, k)
        for i in range(n):
            for jj in range(n_in):
                r = (i * n_in + jj) * k
                for c in range(k):
                    T[r + c] = d1[i * k + c] * TZ[r + c]
        inp = <floating*>L.A
    value = objective_value(last, P, n_params, loss, Tg, labels, sw, n, obj, &l2)
    # the derivative term: e = J - dy, J[i, k, j] = T_last[i·n_in + j, k]; its gradient
    # replaces T_last in place
    T = <floating*>tg.T[n_layers - 1]
    if sw != NULL:
        for i in range(n):
            wsum += sw[i]
    for i in range(n):
        scale = dy_weight / (<double>n * k_out * n_in) if sw == NULL else \
            dy_weight * sw[i] / (wsum * k_out * n_in)
        acc = 0.0
        for jj in range(n_in):
            for c in range(k_out):
                e = <double>T[(i * n_in + jj) * k_out + c] - dy[(i * k_out + c) * n_in + jj]
                acc += e * e
                T[(i * n_in + jj) * k_out + c] = <floating>(2.0 * scale * e)
        term += scale * acc
    value += term
    # backward through both streams
    for l in range(n_layers - 1, -1, -1):
        L = &layers[l]
        k_in, k = L.n_in, L.n_out
        TZ, T = <floating*>tg.TZ[l], <floating*>tg.T[l]   # T: G_T now
        d1, d2 = <floating*>tg.d1[l], <floating*>tg.d2[l]
        W = <floating*>P[L.p0].p
        G = <floating*>L.D                                 # G_A, to become G_Z
        for i in range(n):
            for c in range(k):
                acc = 0.0
                for jj in range(n_in):
                    r = (i * n_in + jj) * k + c
                    acc += <double>T[r] * TZ[r]
                    TZ[r] = d1[i * k + c] * T[r]           # G_TZ, over TZ
                G[i * k + c] = <floating>(d1[i * k + c] * G[i * k + c] + d2[i * k + c] * acc)
        inp = X if l == 0 else <floating*>layers[l - 1].A
        # db, dW = Aᵀ·G_Z + Tᵀ·G_TZ (the first layer's tangents are the unit vectors)
        if L.n_params > 1:   # (a Dense layer without bias has no b)
            column_sums_ptr(G, <floating*>P[L.p0 + 1].g, n, k)
        gemm(True, False, k_in, k, n, 1.0, inp, k_in, G, k, 0.0, <floating*>P[L.p0].g, k)
        if l == 0:
            for i in range(n):
                for jj in range(n_in):
                    for c in range(k):
                        (<floating*>P[L.p0].g)[jj * k + c] += TZ[(i * n_in + jj) * k + c]
        else:
            gemm(True, False, k_in, k, rows, 1.0, <floating*>tg.T[l - 1], k_in, TZ, k, 1.0,
                 <floating*>P[L.p0].g, k)
            # the layer below's G_A and G_T (over its T, no longer needed), old weights
            gemm(False, True, n, k_in, k, 1.0, G, k, W, k, 0.0, <floating*>layers[l - 1].D,
                 k_in)
            gemm(False, True, rows, k_in, k, 1.0, TZ, k, W, k, 0.0, <floating*>tg.T[l - 1],
                 k_in)
        for j in range(L.p0, L.p0 + L.n_params):
            if l2 != 0.0 and P[j].penalized:
                axpy(P[j].size, l2, <floating*>P[j].p, <floating*>P[j].g)
            if OG != NULL:
                update_param(<floating*>P[j].p, &P[j], OG)
    return value


cdef double sobolev_reverse_impl(LayerRec* layers, int n_layers, Param* P, int n_params,
                                 int loss, const floating* X, const floating* Tg,
                                 const Py_ssize_t* labels, const double* sw,
                                 const floating* dy, double dy_weight, Py_ssize_t n,
                                 const Tangents* tg, OptimGroups* OG,
                                 const Objective* obj, long long step) noexcept nogil:
    """sobolev_impl's step in reverse mode ("double backpropagation"), for networks with
    fewer outputs than inputs: the same loss and gradients, at a cost that grows with the
    outputs instead of the inputs.

    For each output k, the Jacobian row is a backward pass from the seed E_k (ones in
    column k): g_top = E_k, δ_l = f_l'·g_l, g_{l-1} = δ_l·W_lᵀ, J_k = δ_0·W_0ᵀ. Its loss
    gradient R = ∂D/∂J_k then runs back through that pass: δ̄_0 = R·W_0, dW_0 += Rᵀ·δ_0;
    and upwards, ḡ_l = f_l'·δ̄_l, z̄_l += f_l''·g_l·δ̄_l (f' depends on z),
    δ̄_{l+1} = ḡ_l·W_{l+1}, dW_{l+1} += ḡ_lᵀ·δ_{l+1}. Last, the ordinary backward pass
    of the value loss, with z̄_l added to each layer's dL/dZ, gives the rest of dW and
    db; each layer is updated once its gradients are complete (after its weights were
    last read). Buffers, per layer (n, k_l): δ and g in TZ[l], z̄ and δ̄ in T[l]."""
    cdef int l, j, out
    cdef Py_ssize_t n_in = layers[0].n_in, i, c, k, k_in, jj, m
    cdef LayerRec* L
    cdef LayerRec* last = &layers[n_layers - 1]
    cdef Py_ssize_t k_out = last.n_out
    cdef floating* W
    cdef floating* delta
    cdef floating* g
    cdef floating* zbar
    cdef floating* dbar
    cdef floating* d1
    cdef floating* d2
    cdef floating* G
    cdef floating* R = <floating*>tg.R
    cdef const floating* inp
    cdef double value, l2, e, term = 0.0, wsum = 0.0, scale, acc
    cdef floating beta
    if OG != NULL:
        begin_groups(OG, step)
    # forward: values, f' and f''
    inp = X
    for l in range(n_layers):
        L = &layers[l]
        layer_forward(L, P, inp, <floating*>L.A, n, layers, True)
        act_derivatives(L.act, <floating*>L.Z, <floating*>L.A, <floating*>tg.d1[l],
                        <floating*>tg.d2[l], n * L.n_out)
        inp = <floating*>L.A
    value = objective_value(last, P, n_params, loss, Tg, labels, sw, n, obj, &l2)
    if sw != NULL:
        for i in range(n):
            wsum += sw[i]
    for out in range(k_out):
        # z̄ and dW accumulate over the outputs: the first output's pass writes them
        beta = 0.0 if out == 0 else 1.0
        # the backward pass from E_k: δ_l and g_l of every layer, then J_k (in R)
        for l in range(n_layers - 1, -1, -1):
            L = &layers[l]
            k = L.n_out
            m = n * k
            delta, g = <floating*>tg.TZ[l], <floating*>tg.TZ[l] + m
            d1 = <floating*>tg.d1[l]
            if l == n_layers - 1:
                memset(g, 0, m * sizeof(floating))
                for i in range(n):
                    g[i * k + out] = 1
            else:
                gemm(False, True, n, k, layers[l + 1].n_out, 1.0, <floating*>tg.TZ[l + 1],
                     layers[l + 1].n_out, <floating*>P[layers[l + 1].p0].p,
                     layers[l + 1].n_out, 0.0, g, k)
            for i in range(m):
                delta[i] = d1[i] * g[i]
        L = &layers[0]
        gemm(False, True, n, n_in, L.n_out, 1.0, <floating*>tg.TZ[0], L.n_out,
             <floating*>P[L.p0].p, L.n_out, 0.0, R, n_in)
        # R := ∂D/∂J_k = 2·scale_i·(J_k - dy[:, k, :])
        for i in range(n):
            scale = dy_weight / (<double>n * k_out * n_in) if sw == NULL else \
                dy_weight * sw[i] / (wsum * k_out * n_in)
            acc = 0.0
            for jj in range(n_in):
                e = <double>R[i * n_in + jj] - dy[(i * k_out + out) * n_in + jj]
                acc += e * e
                R[i * n_in + jj] = <floating>(2.0 * scale * e)
            term += scale * acc
        # back through the backward pass, from layer 0 up
        k = L.n_out
        dbar = <floating*>tg.T[0] + n * k
        gemm(False, False, n, k, n_in, 1.0, R, n_in, <floating*>P[L.p0].p, k, 0.0, dbar, k)
        gemm(True, False, n_in, k, n, 1.0, R, n_in, <floating*>tg.TZ[0], k, beta,
             <floating*>P[L.p0].g, k)
        for l in range(n_layers):
            L = &layers[l]
            k = L.n_out
            m = n * k
            g, zbar, dbar = <floating*>tg.TZ[l] + m, <floating*>tg.T[l], <floating*>tg.T[l] + m
            d1, d2 = <floating*>tg.d1[l], <floating*>tg.d2[l]
            if out == 0:
                for i in range(m):
                    zbar[i] = d2[i] * g[i] * dbar[i]
                    dbar[i] = d1[i] * dbar[i]                          # ḡ_l, over δ̄_l
            else:
                for i in range(m):
                    zbar[i] += d2[i] * g[i] * dbar[i]
                    dbar[i] = d1[i] * dbar[i]
            if l < n_layers - 1:
                c = layers[l + 1].n_out
                W = <floating*>P[layers[l + 1].p0].p
                gemm(False, False, n, c, k, 1.0, dbar, k, W, c, 0.0,
                     <floating*>tg.T[l + 1] + n * c, c)                 # δ̄_{l+1}
                gemm(True, False, k, c, n, 1.0, dbar, k, <floating*>tg.TZ[l + 1], c, beta,
                     <floating*>P[layers[l + 1].p0].g, c)
    value += term
    # the value loss's backward pass, z̄ added to each dL/dZ; then each layer's update
    for l in range(n_layers - 1, -1, -1):
        L = &layers[l]
        k_in, k = L.n_in, L.n_out
        m = n * k
        G = <floating*>L.D                               # dL/dA, made dL/dZ here
        d1, zbar = <floating*>tg.d1[l], <floating*>tg.T[l]
        for i in range(m):
            G[i] = d1[i] * G[i] + zbar[i]
        inp = X if l == 0 else <floating*>layers[l - 1].A
        if L.n_params > 1:   # (a Dense layer without bias has no b)
            column_sums_ptr(G, <floating*>P[L.p0 + 1].g, n, k)
        gemm(True, False, k_in, k, n, 1.0, inp, k_in, G, k, 1.0, <floating*>P[L.p0].g, k)
        if l > 0:
            gemm(False, True, n, k_in, k, 1.0, G, k, <floating*>P[L.p0].p, k, 0.0,
                 <floating*>layers[l - 1].D, k_in)
        for j in range(L.p0, L.p0 + L.n_params):
            if l2 != 0.0 and P[j].penalized:
                axpy(P[j].size, l2, <floating*>P[j].p, <floating*>P[j].g)
            if OG != NULL:
                update_param(<floating*>P[j].p, &P[j], OG)
    return value


cdef int gather_batch(const floating* X, const floating* T, const Py_ssize_t* labels,
                      const double* sw, Py_ssize_t n_rows, Py_ssize_t n_features,
                      Py_ssize_t n_targets, Py_ssize_t n_classes, const Py_ssize_t* order,
                      Py_ssize_t m, floating* Xb, Py_ssize_t* Rb, floating* Tb,
                      Py_ssize_t* Lb, double* Wb) noexcept nogil:
    """Rows order[0..m) of X and their targets (labels, weights) into the batch buffers
    -- or, with sparse input (X NULL), the row indices into Rb; every row index and
    label checked as it is read (0: fine, -1: out of range)."""
    cdef Py_ssize_t i, src, lab
    for i in range(m):
        src = order[i]
        if src < 0 or src >= n_rows:
            return -1
        if X != NULL:
            memcpy(&Xb[i * n_features], &X[src * n_features], n_features * sizeof(floating))
        else:
            Rb[i] = src
        if labels != NULL:
            lab = labels[src]
            if lab < 0 or lab >= n_classes:
                return -1
            Lb[i] = lab
        else:
            memcpy(&Tb[i * n_targets], &T[src * n_targets], n_targets * sizeof(floating))
        if sw != NULL:
            Wb[i] = sw[src]
    return 0


cdef int epoch_impl(LayerRec* layers, int n_layers, Param* P, int n_params, int loss,
                    const floating* X, SparseBatch* sp, const floating* T,
                    const Py_ssize_t* labels, const double* sw, Py_ssize_t n_rows,
                    Py_ssize_t n_features, Py_ssize_t n_targets, const Py_ssize_t* order,
                    Py_ssize_t n, Py_ssize_t batch, floating* Xb, Py_ssize_t* Rb, floating* Tb,
                    Py_ssize_t* Lb, double* Wb, const OptimGroups* G,
                    const Objective* obj, long long step0, const double* lrs,
                    Py_ssize_t* steps_out, double* loss_sum) noexcept nogil:
    """Mini-batches of ``order`` (n entries) in sequence: gather rows (and their weights,
    when sw is not NULL), step (at lrs[s] for step s when lrs is not NULL). Sparse input (X NULL, sp given): the batch's checked row
    indices are gathered into Rb, which the first layer's kernels read. Returns the status (_DONE, or why it stopped early);
    *steps_out: the steps taken (and applied); *loss_sum: its value on entry plus Σ batch
    loss · batch size over them (one running sum, as one uninterrupted epoch adds), or
    the non-finite loss that stopped it (a loss is taken before its update, so the step
    that gave it was applied, and counted)."""
    cdef Py_ssize_t start = 0, m, steps = 0
    cdef Py_ssize_t k = layers[n_layers - 1].n_out // obj.heads   # the classes
    cdef double value
    cdef fb_optim_config stepped = G.base[0]   # (its lr per step when lrs is given)
    cdef OptimGroups Gs = G[0]
    Gs.base = &stepped
    steps_out[0] = 0
    while start < n:
        if fb_interrupt_pending():
            return _INTERRUPTED
        m = batch if start + batch <= n else n - start
        if gather_batch(X, T, labels, sw, n_rows, n_features, n_targets, k, order + start, m,
                        Xb, Rb, Tb, Lb, Wb) != 0:
            return _BAD_INDEX
        if sp != NULL:
            sp.rows = Rb
        if lrs != NULL:   # a per-batch schedule's lr for this step
            stepped.lr = lrs[steps]
        value = step_impl(layers, n_layers, P, n_params, loss, Xb if sp == NULL else NULL, sp,
                          Tb if labels == NULL else NULL, Lb if labels != NULL else NULL,
                          Wb if sw != NULL else NULL, m, &Gs, obj, step0 + steps + 1)
        steps += 1
        steps_out[0] = steps
        if not isfinite(value):
            loss_sum[0] = value
            return _NONFINITE
        loss_sum[0] += value * m
        start += m
    return _DONE


cdef extern from "_finite.h" nogil:
    int all_finite_f32 "fb_all_finite_f32"(const float* x, Py_ssize_t n)
    int all_finite_f64 "fb_all_finite_f64"(const double* x, Py_ssize_t n)


# predict_fast keeps the GIL for calls with less work than this (multiply-adds):
# releasing and re-taking it costs about as much as such a call's arithmetic,
# and no other thread could do much in the time anyway.
cdef Py_ssize_t NOGIL_MIN_WORK = 1 << 15

# What Engine.predict_fast returns (fastbp.models mirrors these as PREDICT_*).
PREDICT_RAW = 0      # forward
PREDICT_PROBA = 1    # predict_proba: softmax (cross_entropy) or sigmoid (binary)
PREDICT_LABELS = 2   # predict: argmax (cross_entropy), 0/1 (binary), raw (otherwise)
cdef enum:
    _RAW = 0
    _PROBA = 1
    _LABELS = 2


cdef void predict_impl(LayerRec* layers, int n_layers, const Param* P, int loss,
                       const floating* X, Py_ssize_t n, int kind, void* out) noexcept nogil:
    """The inference pass, then its result written into ``out`` exactly as the checked
    path computes it: a copy of the output (forward), that copy's softmax/sigmoid in
    place (predict_proba, as activation_forward_into), or the labels (predict:
    NumPy's argmax, the first NaN counting as the maximum; or output > 0)."""
    cdef LayerRec* last = &layers[n_layers - 1]
    cdef Py_ssize_t k = last.n_out, i, j, best
    cdef const floating* Z
    cdef const floating* row
    cdef Py_ssize_t* labels = <Py_ssize_t*>out
    forward_impl(layers, n_layers, P, X, NULL, n, False)
    Z = <floating*>last.Z
    if kind == _LABELS and loss == LOSS_CE:
        for i in range(n):
            row = Z + i * k
            best = 0
            for j in range(k):
                if row[j] != row[j]:   # NaN
                    best = j
                    break
                if row[j] > row[best]:
                    best = j
            labels[i] = best
    elif kind == _LABELS and loss == LOSS_BCE:
        for i in range(n * k):
            labels[i] = 1 if Z[i] > 0 else 0
    else:
        memcpy(out, Z, n * k * sizeof(floating))
        if kind == _PROBA:
            bias_activation_forward_ptr(ACT_SOFTMAX if loss == LOSS_CE else ACT_SIGMOID,
                                        <floating*>out, <const floating*>NULL,
                                        <floating*>out, n, k)


def interrupt_install():
    """Make Ctrl-C stop the compiled epochs after their current step (_interrupt.h)
    until interrupt_remove(); nests. Main thread only (the caller checks)."""
    if fb_interrupt_install() != 0:
        raise OSError("could not install the SIGINT handler")


def interrupt_remove():
    """Undo one interrupt_install() (the outermost puts the previous handler back)."""
    fb_interrupt_remove()


def interrupt_pending():
    """Whether Ctrl-C was pressed since the outermost interrupt_install()."""
    return bool(fb_interrupt_pending())


def interrupt_clear():
    """Forget a Ctrl-C seen by the engine."""
    fb_interrupt_clear()


cdef class Engine:
    """Compiled forward/backward/update of one Sequential model (see module docstring).

    Built from the model's layer records, ``(kind, activation, n_in, n_out, n_params,
    hyper)`` each (``Layer.engine_record``), its parameters and gradients (flat lists in ``parameters()``
    order) and which parameters the objective's L2 penalty applies to."""

    cdef LayerRec* layers
    cdef int n_layers
    cdef Param* params
    cdef int n_params
    cdef int loss
    cdef bint f32
    cdef Py_ssize_t capacity
    cdef Py_ssize_t last_rows     # the rows the previous call needed (see TRIM_BYTES)
    cdef fb_optim_config cfg
    cdef OptimGroups groups       # the bound optimizer's groups (bind_optimizer)
    cdef list keep_groups         # their lr scales and weight decays (kept alive)
    cdef fb_optim_config* group_cfg
    cdef fb_optim_step* group_st
    cdef Objective obj
    cdef list keep_params     # the live parameter/gradient arrays (kept alive)
    cdef list workspaces      # per layer (Z, A, D)
    cdef list dropout_buffers # per layer with dropout (Ad, keep)
    cdef list keep_state      # optimizer state arrays (kept alive)
    cdef object batch_X, batch_T, batch_L, batch_W, batch_R
    cdef object labels_copy           # a step's labels, copied and range-checked (_step)
    cdef object head_buffers          # the objective's per-head scratch (hT, hL, hW)
    cdef list tangent_buffers         # per layer (TZ, T, d1, d2) of sobolev steps, then (R,)
    cdef Py_ssize_t tangent_rows      # the samples they hold (0: none)
    cdef void** tg_mem                # 4 · n_layers pointers into them (Tangents)
    cdef bint _labels_bad             # the last _step found a label out of range
    cdef bint batch_stats             # a layer normalises over the batch (BatchNorm)
    cdef int type_num                 # NPY_FLOAT32 or NPY_FLOAT64
    # The binding (see bind_optimizer): the optimizer's link, and the record and
    # state tuple the engine read from it.
    cdef OptimizerLink link
    cdef object bound_config
    cdef object bound_state
    cdef public object dtype

    def __cinit__(self):
        self.layers = NULL
        self.params = NULL
        self.group_cfg = NULL
        self.group_st = NULL
        self.tg_mem = NULL

    def __init__(self, list records, list params, list grads, list penalized, int loss,
                 dtype, list dropout_rates, uint64_t dropout_seed, list dropout_slots=None,
                 list buffers=None):
        cdef int l, j, total = 0
        self.dtype = np.dtype(dtype)
        self.f32 = self.dtype == np.float32
        self.type_num = cnp.NPY_FLOAT32 if self.f32 else cnp.NPY_FLOAT64
        self.n_layers = len(records)
        self.n_params = len(params)
        if self.n_layers == 0 or len(grads) != self.n_params or len(penalized) != self.n_params:
            raise ValueError("the engine needs layers, and one gradient and penalty flag "
                             "per parameter")
        for rec in records:
            if len(rec) != 6:
                raise ValueError("a layer record is (kind, activation, n_in, n_out, n_params, "
                                 "hyper)")
            total += rec[4]
        if total != self.n_params:
            raise ValueError(f"the layer records hold {total} parameters, {self.n_params} given")
        self.layers = <LayerRec*>PyMem_Calloc(self.n_layers, sizeof(LayerRec))
        self.params = <Param*>PyMem_Calloc(max(self.n_params, 1), sizeof(Param))
        if self.layers == NULL or self.params == NULL:
            raise MemoryError()
        self.loss = loss
        self.capacity = 0
        self.last_rows = 0
        self.obj.grad_scale = 1.0
        self.obj.loss_scale = 1.0
        self.obj.l2 = 0.0
        self.obj.clip_eps = 0.0
        self.obj.clip_norm = 0.0
        self.obj.heads = 1
        self.obj.per_head = False
        self.keep_params = [params, grads]
        self.workspaces = []
        self.dropout_buffers = []
        self.keep_state = []
        self.link = None
        self.bound_config = None
        self.bound_state = None
        for j in range(self.n_params):
            if params[j].dtype != self.dtype or grads[j].dtype != self.dtype \
                    or params[j].shape != grads[j].shape:
                raise ValueError(f"parameter {j} and its gradient must be {self.dtype} arrays "
                                 "of one shape")
            self.params[j].p = _ptr(params[j])
            self.params[j].g = _ptr(grads[j])
            self.params[j].size = params[j].size
            self.params[j].penalized = bool(penalized[j])
        total = 0
        if buffers is None:
            buffers = [()] * self.n_layers
        if len(buffers) != self.n_layers:
            raise ValueError("buffers must hold one tuple of arrays per layer")
        self.keep_params.append(buffers)
        for l, (kind, act, n_in, n_out, n_par, hyper) in enumerate(records):
            if l > 0 and n_in != self.layers[l - 1].n_out or n_in < 1 or n_out < 1:
                raise ValueError(f"layer {l} takes {n_in} inputs, the layer before gives "
                                 f"{self.layers[l - 1].n_out if l else '-'}")
            self.layers[l].kind = kind
            self.layers[l].act = act
            self.layers[l].n_in = n_in
            self.layers[l].n_out = n_out
            self.layers[l].p0 = total
            self.layers[l].n_params = n_par
            hyper = tuple(float(v) for v in hyper)
            if len(hyper) > 2:
                raise ValueError(f"a layer record holds at most 2 constants, got {hyper}")
            for j, v in enumerate(hyper):
                self.layers[l].hyper[j] = v
            _check_layer_params(kind, n_in, n_out, hyper, params[total:total + n_par])
            _check_layer_buffers(kind, n_in, n_out, tuple(buffers[l]), self.dtype, hyper,
                                 params[total:total + n_par])
            for j, arr in enumerate(buffers[l]):
                self.layers[l].buf[j] = _ptr(arr)
            self.layers[l].begin = -1
            if kind == LAYER_RESIDUAL:
                if not hyper[0] <= l or self.layers[l - <int>hyper[0]].n_in != n_out:
                    raise ValueError(f"layer {l}: a residual block of {hyper[0]} layers of "
                                     f"width {n_out} does not fit the layers before it")
                self.layers[l].begin = l - <int>hyper[0]
            total += n_par
        self.batch_stats = any(self.layers[l].kind == LAYER_BATCH_NORM
                               for l in range(self.n_layers))
        self._set_dropout(dropout_rates, dropout_seed,
                          list(range(self.n_layers)) if dropout_slots is None else dropout_slots)

    def __dealloc__(self):
        PyMem_Free(self.layers)
        PyMem_Free(self.params)
        PyMem_Free(self.group_cfg)
        PyMem_Free(self.group_st)
        PyMem_Free(self.tg_mem)

    @property
    def target_width(self):
        """The width of a row's targets (or the number of classes): the last layer's
        n_out over the objective's heads."""
        return self.layers[self.n_layers - 1].n_out // self.obj.heads

    def set_objective(self, double grad_scale, double loss_scale, double l2, double clip_eps,
                      int heads=1):
        """The objective's convention (see the Objective struct; fastbp.Objective checks
        the values first): (1, 1, 0, 0, 1) is fastbp's own."""
        if not (isfinite(grad_scale) and isfinite(loss_scale) and isfinite(l2) and l2 >= 0
                and 0 <= clip_eps < 0.5):
            raise ValueError("the objective needs finite scales, l2 >= 0 and "
                             "0 <= clip_eps < 0.5")
        if heads < 1 or self.layers[self.n_layers - 1].n_out % heads:
            raise ValueError(f"heads must divide the last layer's width "
                             f"({self.layers[self.n_layers - 1].n_out}), got {heads}")
        if clip_eps > 0 and self.loss not in (LOSS_CE, LOSS_BCE):
            raise ValueError("clip_eps applies to the cross-entropy losses only")
        # (every check first: a refused objective changes nothing)
        if heads != self.obj.heads:
            self._release()   # (reserve sizes the heads' scratch)
            self.obj.heads = heads
        self.obj.grad_scale = grad_scale
        self.obj.loss_scale = loss_scale
        self.obj.l2 = l2
        self.obj.clip_eps = clip_eps

    def reserve(self, Py_ssize_t n):
        """Make every workspace hold at least n rows (grows here; see trim)."""
        cdef int l
        cdef Py_ssize_t k, w
        if n <= self.capacity:
            return
        self.workspaces = []
        self.dropout_buffers = []
        for l in range(self.n_layers):
            k = self.layers[l].n_out
            Z = np.empty((n, k), dtype=self.dtype)
            A = Z if output_is_z(self.layers[l].kind, self.layers[l].act) \
                else np.empty((n, k), dtype=self.dtype)
            D = np.empty((n, k), dtype=self.dtype)
            w = row_scratch_width(&self.layers[l])
            S = np.empty(4 * k, dtype=np.float64) if self.layers[l].kind == LAYER_BATCH_NORM \
                else np.empty(n * w, dtype=self.dtype) if w else None
            self.workspaces.append((Z, A, D) if S is None else (Z, A, D, S))
            self.layers[l].Z = _ptr(Z)
            self.layers[l].A = _ptr(A)
            self.layers[l].D = _ptr(D)
            self.layers[l].S = _ptr_or_null(S)
            if self.layers[l].dropout > 0:
                # In place where the backward needs only the sign of Z (relu, leaky relu)
                # or nothing (identity); see the module docstring.
                Ad = A if output_is_z(self.layers[l].kind, self.layers[l].act) \
                    else np.empty((n, k), dtype=self.dtype)
                keep = np.empty((n, k), dtype=np.uint8)
                self.dropout_buffers.append((Ad, keep))
                self.layers[l].Ad = _ptr(Ad)
                self.layers[l].keep = <unsigned char*>_ptr(keep)
            else:
                self.layers[l].Ad = NULL
                self.layers[l].keep = NULL
        self.head_buffers = None
        if self.obj.heads > 1:
            h = self.obj.heads
            self.head_buffers = (np.empty(n * self.layers[self.n_layers - 1].n_out,
                                          dtype=self.dtype),
                                 np.empty(n * h, dtype=np.intp), np.empty(n * h))
            self.obj.hT = _ptr(self.head_buffers[0])
            self.obj.hL = <Py_ssize_t*>_ptr(self.head_buffers[1])
            self.obj.hW = <double*>_ptr(self.head_buffers[2])
        self.capacity = n

    def workspace_bytes(self):
        """The bytes the workspaces hold now (for the memory tests)."""
        total = sum(a.nbytes for ws in self.workspaces for a in {id(x): x for x in ws}.values())
        total += sum(a.nbytes for ws in self.dropout_buffers for a in ws if a is not None)
        if self.batch_X is not None:
            total += self.batch_X.nbytes + self.batch_T.nbytes + self.batch_L.nbytes \
                + self.batch_W.nbytes
        if self.tangent_buffers is not None:
            total += sum(a.nbytes for group in self.tangent_buffers for a in group)
        if self.labels_copy is not None:
            total += self.labels_copy.nbytes
        if self.head_buffers is not None:
            total += sum(a.nbytes for a in self.head_buffers)
        return total

    def trim(self, Py_ssize_t rows):
        """End of a call that needed ``rows``: release the workspaces if they are larger
        than TRIM_BYTES and the call before needed other rows (a one-off size)."""
        cdef Py_ssize_t previous = self.last_rows
        self.last_rows = rows
        if rows != previous and self.capacity > 0 and self.workspace_bytes() > TRIM_BYTES:
            self._release()

    cdef _release(self):
        cdef int l
        self.workspaces = []
        self.dropout_buffers = []
        self.batch_X = self.batch_T = self.batch_L = self.batch_W = None
        self.labels_copy = None
        self.head_buffers = None
        self.obj.hT = NULL
        self.obj.hL = NULL
        self.obj.hW = NULL
        self.tangent_buffers = None
        self.tangent_rows = 0
        for l in range(self.n_layers):
            self.layers[l].Z = self.layers[l].A = self.layers[l].D = self.layers[l].S = NULL
            self.layers[l].Ad = NULL
            self.layers[l].keep = NULL
        self.capacity = 0

    cdef _set_dropout(self, list rates, uint64_t seed, list slots):
        """Dropout probability p of each layer's output in training (0: none; the
        last layer's must be 0) and the model's dropout seed, which with the layer's
        slot (fastbp.layers.dropout_slots: its index, for Dense-only models) and the
        step keys the masks (_dropout.h)."""
        cdef int l
        cdef double p
        if len(rates) != self.n_layers:
            raise ValueError(f"rates must hold one value per layer ({self.n_layers})")
        if rates[self.n_layers - 1] != 0:
            raise ValueError("dropout on the output layer is not supported")
        if not all(0 <= p < 1 for p in rates):
            raise ValueError(f"dropout rates must be in [0, 1), got {rates}")
        if len(slots) != self.n_layers:
            raise ValueError(f"slots must hold one value per layer ({self.n_layers})")
        for l in range(self.n_layers):
            p = rates[l]
            self.layers[l].dropout = p
            self.layers[l].drop_scale = dropout_scale(p)
            self.layers[l].drop_key = dropout_layer_key(seed, <uint64_t>slots[l])
            self.layers[l].drop_threshold = dropout_threshold(p)

    def set_dropout_rates(self, list rates):
        """New dropout probabilities, one per layer (the last one's 0), keeping the masks'
        keys: the next steps draw with them. A layer whose dropout turns on gets its
        buffers at the next reserve (the workspaces are released then)."""
        cdef int l
        if len(rates) != self.n_layers or rates[self.n_layers - 1] != 0 \
                or not all(0 <= p < 1 for p in rates):
            raise ValueError(f"rates must hold one value in [0, 1) per layer "
                             f"({self.n_layers}), the last 0; got {rates}")
        if any((rates[l] > 0) != (self.layers[l].dropout > 0) for l in range(self.n_layers)):
            self._release()
        for l in range(self.n_layers):
            self.layers[l].dropout = rates[l]
            self.layers[l].drop_scale = dropout_scale(rates[l])
            self.layers[l].drop_threshold = dropout_threshold(rates[l])

    def bind_optimizer(self, optimizer):
        """Point the engine at an optimizer's configuration and state arrays (through its
        ``engine_link``): per parameter, up to three state arrays in the record's
        ``kernel_state`` order (NULL where unused), and its parameter group. The
        optimizer's parameters are the model's arrays, matched by identity (its groups
        may list them in another order)."""
        cdef int j, k, g, n_groups
        link = getattr(optimizer, "engine_link", None)
        if not isinstance(link, OptimizerLink) or link.config.kind < 0:
            raise TypeError(f"the compiled step knows fastbp's SGD, AdaGrad, RMSprop, Adam and "
                            f"AdamW, not {type(optimizer).__name__}; for another optimizer "
                            f"call model.backward(X, y) and then optimizer.step(model.gradients())")
        config = link.config
        state = link.state
        if len(state) != self.n_params:
            raise ValueError(f"the optimizer holds state for {len(state)} parameters, the "
                             f"model has {self.n_params}")
        where = {id(p): i for i, p in enumerate(optimizer.params)}
        order = [where.get(id(p), -1) for p in self.keep_params[0]]
        if sorted(order) != list(range(self.n_params)):
            raise ValueError("the optimizer must be built over the model's parameters")
        member, scale, wd = optimizer.group_table()
        n_groups = len(scale)
        if len(member) != self.n_params or len(wd) != n_groups or n_groups < 1 \
                or any(not 0 <= m < n_groups for m in member):
            raise ValueError("the optimizer's group table does not fit its parameters")
        scale = np.ascontiguousarray(scale, dtype=np.float64)
        wd = np.ascontiguousarray(wd, dtype=np.float64)
        names = tuple(config.kernel_state) + (None,) * (3 - len(config.kernel_state))
        arrays = [[None if name is None else state[order[j]].get(name) for name in names]
                  for j in range(self.n_params)]
        for j in range(self.n_params):
            for a in arrays[j]:
                if a is not None and (a.dtype != self.dtype
                                      or a.size != self.params[j].size):
                    raise ValueError(f"the optimizer's state of parameter {j} does not match it")
        group_cfg = <fb_optim_config*>PyMem_Calloc(n_groups, sizeof(fb_optim_config))
        group_st = <fb_optim_step*>PyMem_Calloc(n_groups, sizeof(fb_optim_step))
        if group_cfg == NULL or group_st == NULL:
            PyMem_Free(group_cfg)
            PyMem_Free(group_st)
            raise MemoryError()
        fill_config(config, &self.cfg)
        PyMem_Free(self.group_cfg)
        PyMem_Free(self.group_st)
        self.group_cfg, self.group_st = group_cfg, group_st
        self.keep_groups = [scale, wd]
        self.groups.n = n_groups
        self.groups.lr_scale = <const double*>cnp.PyArray_DATA(<cnp.ndarray>scale)
        self.groups.wd = <const double*>cnp.PyArray_DATA(<cnp.ndarray>wd)
        self.groups.cfg = group_cfg
        self.groups.st = group_st
        self.groups.base = &self.cfg
        self.keep_state = arrays
        for j in range(self.n_params):
            self.params[j].group = member[order[j]]
            for k in range(3):
                self.params[j].s[k] = _ptr_or_null(arrays[j][k])
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

    cdef Py_ssize_t _ready_rows(self, X, bint check_finite):
        """The rule for the lean paths: the number of rows of X if it is an ndarray of the
        engine's dtype (native byte order, aligned: ISBEHAVED_RO; a '>f8' array has the
        float64 type number too), C-contiguous, (n, n_in) with 0 < n <= capacity, and
        (with check_finite) finite; else -1 (the caller takes the checked path, which
        converts or raises)."""
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
        if check_finite and not self._finite(cnp.PyArray_DATA(Xa), n * self.layers[0].n_in):
            return -1
        return n

    cdef bint _finite(self, void* x, Py_ssize_t size):
        """No NaN or infinity among the size values at x (_finite.h)."""
        if self.f32:
            return all_finite_f32(<float*>x, size)
        return all_finite_f64(<double*>x, size)

    def train_step_fast(self, X, y, optimizer):
        """Model.train_step when nothing needs converting, rebinding or rebuilding;
        returns the loss, or None to send the caller down the checked path.

        The fast case: ``optimizer`` is bound and unchanged; X is ready
        (``_ready_rows``, finite); y is likewise C-contiguous finite (n, n_out)
        targets of the same dtype ((n,) when n_out is 1), or intp labels (n,) for
        cross-entropy (copied and range-checked by the step). Then this does the
        step, the link's step count + 1, and advances the count. It saves the
        per-step Python of the checked path, which is most of a tiny step's time.
        """
        cdef cnp.ndarray ya
        cdef Py_ssize_t n
        cdef long long step
        cdef double value
        cdef LayerRec* last = &self.layers[self.n_layers - 1]
        cdef bint labels
        cdef OptimizerLink link
        link = self._current_link(optimizer)
        if link is None or link.step_count < 0 or link.step_count >= MAX_STEP:
            return None
        step = link.step_count
        n = self._ready_rows(X, True)
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
            if cnp.PyArray_TYPE(ya) != cnp.NPY_INTP:
                return None
        elif cnp.PyArray_TYPE(ya) != self.type_num \
                or not (cnp.PyArray_NDIM(ya) == 2 and cnp.PyArray_DIMS(ya)[1] == last.n_out
                        or cnp.PyArray_NDIM(ya) == 1 and last.n_out == 1) \
                or not self._finite(cnp.PyArray_DATA(ya), n * last.n_out):
            return None
        self.obj.clip_norm = 0.0
        value = self._step(X, None if labels else ya, ya if labels else None, step + 1,
                           &self.groups, None)
        if value != value and self._labels_bad:
            return None   # a label out of range: the checked path says which
        link.step_count = step + 1
        return value

    def predict_fast(self, X, int kind, lock=None, bint check_finite=True):
        """forward / predict_proba / predict (``kind``: PREDICT_RAW, PREDICT_PROBA,
        PREDICT_LABELS) in one call when nothing needs converting or rebuilding;
        returns a new array, or None to send the caller down the checked path.

        The fast case: X is an ndarray of the engine's dtype (native byte order,
        aligned), C-contiguous, (n, n_in) with 0 < n <= capacity, finite unless
        ``check_finite`` is False; for PREDICT_PROBA the loss is a cross-entropy.
        The result has the bits and the shape of the checked path's: labels and
        the values of a one-output model are (n,).

        ``lock`` (the model's): taken without waiting around the checks and the
        pass (cheaper than a ``with`` block in the caller); if another call holds
        it, None, and the checked path waits for it."""
        if lock is None:
            return self._predict_fast(X, kind, check_finite)
        if not lock.acquire(False):
            return None
        try:
            return self._predict_fast(X, kind, check_finite)
        finally:
            lock.release()

    cdef object _predict_fast(self, X, int kind, bint check_finite):
        cdef cnp.ndarray out
        cdef Py_ssize_t n, k = self.layers[self.n_layers - 1].n_out
        cdef cnp.npy_intp dims[2]
        cdef int nd = 2, type_num = self.type_num, l
        cdef Py_ssize_t work = 0
        cdef void* x
        cdef void* o
        if kind < _RAW or kind > _LABELS or (self.obj.heads > 1 and kind != _RAW):
            return None   # (the heads' mean: Sequential._predict)
        n = self._ready_rows(X, check_finite)
        if n < 0:
            return None
        if kind == _PROBA and self.loss != LOSS_CE and self.loss != LOSS_BCE:
            return None
        if kind == _LABELS and (self.loss == LOSS_CE or self.loss == LOSS_BCE):
            type_num = cnp.NPY_INTP
        if kind == _LABELS and (self.loss == LOSS_CE or k == 1):
            nd = 1
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
            predict_impl[float](self.layers, self.n_layers, self.params, self.loss,
                                <float*>x, n, kind, out)
        else:
            predict_impl[double](self.layers, self.n_layers, self.params, self.loss,
                                 <double*>x, n, kind, out)

    cdef Py_ssize_t _block_rows(self):
        """The most rows an inference pass takes at once: its workspaces (each layer's
        output and scratch) within BLOCK_BYTES, so that a large prediction through wide
        layers (an ensemble's k members side by side) reuses a few cache-sized blocks
        instead of faulting in fresh memory for every row."""
        cdef Py_ssize_t per_row = 0
        cdef int l
        for l in range(self.n_layers):
            per_row += 2 * self.layers[l].n_out + row_scratch_width(&self.layers[l])
        return max(MIN_BLOCK_ROWS, BLOCK_BYTES // (per_row * self.dtype.itemsize))

    def forward(self, X):
        """Inference pass of X (n, n_in), 0 < n, or of a SparseRows (a first Dense
        layer); returns a copy of the output. Rows go through in blocks of _block_rows()
        (each row's result does not depend on the others).

        Callers guarantee X is C-contiguous, of the engine's dtype and shape."""
        cdef Py_ssize_t n = X.shape[0], block, start, m, n_in = self.layers[0].n_in
        cdef SparseBatch sb
        cdef SparseBatch* sp = NULL
        cdef const void* x = self._input(X, &sb)
        if x == NULL:
            sp = &sb
        block = min(n, self._block_rows())
        self.reserve(block)
        out = np.empty((n, self.layers[self.n_layers - 1].n_out), dtype=self.dtype)
        last = self.workspaces[self.n_layers - 1][0]
        for start in range(0, n, block):
            m = min(block, n - start)
            if sp != NULL:
                sp.row0 = start
            with nogil:
                if self.f32:
                    forward_impl[float](self.layers, self.n_layers, self.params,
                                        NULL if sp != NULL else <float*>x + start * n_in,
                                        sp, m, False)
                else:
                    forward_impl[double](self.layers, self.n_layers, self.params,
                                         NULL if sp != NULL else <double*>x + start * n_in,
                                         sp, m, False)
            out[start:start + m] = last[:m]
        self.trim(block)
        return out

    cdef const void* _input(self, X, SparseBatch* sb) except? NULL:
        """The data pointer of a dense X (checked as _check_rows), or NULL with ``sb``
        filled in for a SparseRows X (n_rows > 0, n_in columns, the engine's dtype; the
        first layer a Dense one); its rows are row 0 onwards."""
        cdef SparseRows S
        if isinstance(X, SparseRows):
            S = <SparseRows>X
            if S.n_rows == 0 or S.n_cols != self.layers[0].n_in or S.data.dtype != self.dtype:
                raise ValueError(f"the engine takes sparse X of {self.dtype} with shape "
                                 f"(n > 0, {self.layers[0].n_in}), got {S!r}")
            if self.layers[0].kind != LAYER_DENSE or any(
                    self.layers[l].begin == 0 for l in range(self.n_layers)):
                raise TypeError("sparse input needs a Dense first layer (outside a residual "
                                "block)")
            sb.data, sb.indptr, sb.indices, sb.rows, sb.row0 = S.d, S.ip, S.ix, NULL, 0
            return NULL
        if not isinstance(X, np.ndarray):
            raise TypeError(f"the engine takes an ndarray or a SparseRows X, got "
                            f"{type(X).__name__}")
        self._check_rows(X)
        return cnp.PyArray_DATA(<cnp.ndarray>X)

    cdef _check_rows(self, cnp.ndarray X):
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] != self.layers[0].n_in \
                or X.dtype != self.dtype or not X.flags.c_contiguous:
            raise ValueError(f"the engine takes C-contiguous {self.dtype} X of shape "
                             f"(n > 0, {self.layers[0].n_in})")

    def backward(self, X, T, labels, long long step, sample_weight=None):
        """Forward, loss and backward (every parameter's gradient; no update), with the
        dropout masks of step ``step``; returns the loss.

        T (n, k) float targets or labels (n,) intp, C-contiguous; sample_weight None or
        (n,) float64 C-contiguous (shapes checked here; values by the caller)."""
        self._set_clip_norm(0.0)
        value = self._step(X, T, labels, step, NULL, sample_weight)
        self.trim(X.shape[0])
        return self._checked_loss(value)

    def train_step(self, X, T, labels, sample_weight=None, double clip_norm=0.0):
        """One training step of the bound optimizer (step: its count + 1, which it
        advances): forward, loss, backward and update. Arguments as for backward;
        clip_norm > 0 clips the gradients' global norm before the update (Objective)."""
        cdef double value
        cdef long long step = self._bound().step_count + 1
        self._set_clip_norm(clip_norm)
        value = self._step(X, T, labels, step, &self.groups, sample_weight)
        self._checked_loss(value)
        self.link.step_count = step
        self.trim(X.shape[0])
        return value

    cdef _check_batch(self, Py_ssize_t batch, Py_ssize_t last):
        """A training batch of one sample has no batch variance (PyTorch refuses it too)."""
        if self.batch_stats and (batch < 2 or last < 2):
            raise ValueError(f"a BatchNorm layer needs at least 2 samples in every training "
                             f"batch; this call has a batch of 1 (batch size {batch}, last "
                             f"batch {last}): change batch_size or the number of samples")

    cdef Py_ssize_t _target_columns(self, T):
        """The columns T may have: each row's target (target_width), or with heads each
        head's own (the last layer's n_out) when T has that many."""
        cdef Py_ssize_t full = self.layers[self.n_layers - 1].n_out
        if self.obj.heads > 1 and T.ndim == 2 and T.shape[1] == full:
            return full
        return self.target_width

    def _target_widths(self):
        """The T widths _target_columns accepts, for an error message."""
        k = self.target_width
        return k if self.obj.heads == 1 else f"{k} or {k * self.obj.heads}"

    cdef _set_clip_norm(self, double clip_norm):
        if not (isfinite(clip_norm) and clip_norm >= 0):
            raise ValueError(f"clip_norm must be finite and >= 0, got {clip_norm}")
        self.obj.clip_norm = clip_norm

    cdef double _checked_loss(self, double value) except? -1.0:
        if value != value and self._labels_bad:
            raise ValueError("y holds a class label outside [0, n_classes) (it changed "
                             "after it was checked?)")
        return value

    cdef OptimizerLink _bound(self):
        if self.link is None:
            raise RuntimeError("no optimizer is bound to this engine (bind_optimizer)")
        return self.link

    cdef double _step(self, X, T, labels, long long step,
                      OptimGroups* G, sample_weight) except? -1.0:
        """One step on the engine's own copy of the labels (range-checked there), with
        every array's shape checked against the engine; NaN with _labels_bad set when a
        label is out of range (nothing was changed then). X: an ndarray or a SparseRows."""
        cdef Py_ssize_t n = X.shape[0], i, k = self.target_width
        cdef void* t = NULL
        cdef Py_ssize_t* lb = NULL
        cdef const Py_ssize_t* lp
        cdef const double* sw = NULL
        cdef double value
        cdef SparseBatch sb
        cdef const SparseBatch* sp = NULL
        cdef const void* x = self._input(X, &sb)
        if x == NULL:
            sp = &sb
        self._check_batch(n, n)
        self._labels_bad = False
        if (T is None) == (labels is None):
            raise ValueError("give exactly one of T and labels")
        if T is not None:
            if T.shape != (n, self._target_columns(T)) \
                    and not (T.shape == (n,) and k == 1) \
                    or T.dtype != self.dtype or not T.flags.c_contiguous:
                raise ValueError(f"T must be C-contiguous {self.dtype} of shape "
                                 f"({n}, {self._target_widths()})")
            t = cnp.PyArray_DATA(<cnp.ndarray>T)
        if sample_weight is not None:
            if sample_weight.shape != (n,) or sample_weight.dtype != np.float64 \
                    or not sample_weight.flags.c_contiguous:
                raise ValueError(f"sample_weight must be C-contiguous float64 of shape ({n},)")
            sw = <double*>cnp.PyArray_DATA(<cnp.ndarray>sample_weight)
        self.obj.per_head = T is not None and self._target_columns(T) != k
        self.reserve(n)
        if labels is not None:
            if labels.shape != (n,) or labels.dtype != np.intp:
                raise ValueError(f"labels must be intp of shape ({n},)")
            if self.labels_copy is None or self.labels_copy.shape[0] < n:
                self.labels_copy = np.empty(n, dtype=np.intp)
            lp = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>labels)
            lb = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>self.labels_copy)
            for i in range(n):
                lb[i] = lp[i]
                if lb[i] < 0 or lb[i] >= k:
                    self._labels_bad = True
                    return float("nan")
        with nogil:
            if self.f32:
                value = step_impl[float](self.layers, self.n_layers, self.params, self.n_params,
                                         self.loss, <float*>x, sp, <float*>t, lb, sw, n, G,
                                         &self.obj, step)
            else:
                value = step_impl[double](self.layers, self.n_layers, self.params,
                                          self.n_params, self.loss, <double*>x, sp,
                                          <double*>t, lb, sw, n, G, &self.obj, step)
        return value

    def sobolev(self, cnp.ndarray X, T, labels, cnp.ndarray dy, double dy_weight,
                sample_weight=None, bint update=True):
        """A step on the loss plus dy_weight · mean((J - dy)²), J the Jacobian of the raw
        output with respect to X (sobolev_impl): with ``update``, one step of the bound
        optimizer (its count + 1, which it advances); without, the gradients only (for
        L-BFGS). dy: C-contiguous (n, n_out, n_in) of the engine's dtype. Dense layers
        without dropout. Returns the total loss; shapes checked as _step's."""
        cdef Py_ssize_t n = X.shape[0], k = self.layers[self.n_layers - 1].n_out, i
        cdef Py_ssize_t n_in = self.layers[0].n_in
        if self.obj.heads > 1:
            raise ValueError("training on derivatives takes a model without heads")
        cdef int l
        cdef double value
        cdef void* t = NULL
        cdef Py_ssize_t* lb = NULL
        cdef const Py_ssize_t* lp
        cdef const double* sw = NULL
        cdef Tangents tg
        cdef long long step = 0
        cdef OptimGroups* G = NULL
        for l in range(self.n_layers):
            if self.layers[l].kind != LAYER_DENSE or self.layers[l].dropout > 0:
                raise ValueError("training on derivatives needs Dense layers without dropout")
            if self.layers[l].act == ACT_SOFTMAX:
                raise ValueError("training on derivatives needs element-wise activations")
        self._check_rows(X)
        if dy.ndim != 3 or dy.shape[0] != n or dy.shape[1] != k or dy.shape[2] != n_in \
                or dy.dtype != self.dtype or not dy.flags.c_contiguous:
            raise ValueError(f"dy must be C-contiguous {self.dtype} of shape ({n}, {k}, {n_in})")
        if not (isfinite(dy_weight) and dy_weight >= 0):
            raise ValueError(f"dy_weight must be finite and >= 0, got {dy_weight}")
        if (T is None) == (labels is None):
            raise ValueError("give exactly one of T and labels")
        if T is not None:
            if T.shape != (n, k) and not (T.shape == (n,) and k == 1) \
                    or T.dtype != self.dtype or not T.flags.c_contiguous:
                raise ValueError(f"T must be C-contiguous {self.dtype} of shape ({n}, {k})")
            t = cnp.PyArray_DATA(<cnp.ndarray>T)
        if sample_weight is not None:
            if sample_weight.shape != (n,) or sample_weight.dtype != np.float64 \
                    or not sample_weight.flags.c_contiguous:
                raise ValueError(f"sample_weight must be C-contiguous float64 of shape ({n},)")
            sw = <double*>cnp.PyArray_DATA(<cnp.ndarray>sample_weight)
        if update:
            step = self._bound().step_count + 1
            G = &self.groups
        self.reserve(n)
        self._reserve_tangents(n)
        if labels is not None:
            if labels.shape != (n,) or labels.dtype != np.intp:
                raise ValueError(f"labels must be intp of shape ({n},)")
            if self.labels_copy is None or self.labels_copy.shape[0] < n:
                self.labels_copy = np.empty(n, dtype=np.intp)
            lp = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>labels)
            lb = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>self.labels_copy)
            for i in range(n):
                lb[i] = lp[i]
                if lb[i] < 0 or lb[i] >= k:
                    raise ValueError("y holds a class label outside [0, n_classes)")
        tg.TZ = self.tg_mem
        tg.T = self.tg_mem + self.n_layers
        tg.d1 = self.tg_mem + 2 * self.n_layers
        tg.d2 = self.tg_mem + 3 * self.n_layers
        tg.R = self.tg_mem[4 * self.n_layers]
        cdef void* x = cnp.PyArray_DATA(X)
        cdef void* d = cnp.PyArray_DATA(dy)
        with nogil:
            if self.f32:
                value = sobolev_impl[float](self.layers, self.n_layers, self.params,
                                            self.n_params, self.loss, <float*>x, <float*>t, lb,
                                            sw, <float*>d, dy_weight, n, &tg, G, &self.obj,
                                            step)
            else:
                value = sobolev_impl[double](self.layers, self.n_layers, self.params,
                                             self.n_params, self.loss, <double*>x, <double*>t,
                                             lb, sw, <double*>d, dy_weight, n, &tg, G,
                                             &self.obj, step)
        if update:
            self.link.step_count = step
        self.trim(n)
        return value

    cdef _reserve_tangents(self, Py_ssize_t n):
        """The tangent buffers for n samples (every layer: (n·n_in, k) twice, (n, k) twice;
        then R, (n, n_in))."""
        cdef int l
        cdef Py_ssize_t k, rows = n * self.layers[0].n_in
        if self.tangent_buffers is not None and self.tangent_rows >= n:
            return
        if self.tg_mem == NULL:
            self.tg_mem = <void**>PyMem_Calloc(4 * self.n_layers + 1, sizeof(void*))
            if self.tg_mem == NULL:
                raise MemoryError()
        buffers = []
        for l in range(self.n_layers):
            k = self.layers[l].n_out
            group = (np.empty((rows, k), dtype=self.dtype), np.empty((rows, k), dtype=self.dtype),
                     np.empty((n, k), dtype=self.dtype), np.empty((n, k), dtype=self.dtype))
            buffers.append(group)
            for j in range(4):
                self.tg_mem[j * self.n_layers + l] = _ptr(group[j])
        R = np.empty((n, self.layers[0].n_in), dtype=self.dtype)   # the reverse mode's ∂D/∂J
        buffers.append((R,))
        self.tg_mem[4 * self.n_layers] = _ptr(R)
        self.tangent_buffers = buffers
        self.tangent_rows = n

    def epoch(self, X, T, labels, cnp.ndarray order, Py_ssize_t batch,
              sample_weight=None, double loss_sum0=0.0, double clip_norm=0.0, lrs=None):
        """One epoch of mini-batch steps of the bound optimizer over ``order`` (intp row
        indices of X), from its step count + 1 (advanced by the steps taken). Returns
        (status, steps, loss_sum): status EPOCH_DONE, or EPOCH_NONFINITE (the loss of
        step ``steps`` was not finite: loss_sum is that loss; the step was applied, as
        its loss is taken before its update), EPOCH_INTERRUPTED (Ctrl-C, after ``steps`` complete steps) or
        EPOCH_BAD_INDEX (an order entry or label out of range when read, after
        ``steps`` steps); loss_sum is Σ batch loss · batch size over the steps taken.
        ``sample_weight``: None or (n_samples,) float64 weights, gathered with the rows.
        ``loss_sum0``: the running loss sum to continue (an interrupted epoch's).
        ``clip_norm`` > 0: each step clips the gradients' global norm (Objective).
        ``lrs``: None, or float64 learning rates, one per batch of the epoch (a per-batch
        schedule's), finite and >= 0.
        X: an ndarray, or a SparseRows (a first Dense layer). Every shape is checked
        here, every index where it is read."""
        cdef Py_ssize_t n = order.shape[0], steps = 0
        cdef Py_ssize_t n_rows = X.shape[0], n_features = X.shape[1]
        cdef Py_ssize_t k = self.target_width
        cdef Py_ssize_t n_targets = 0
        cdef void* t = NULL
        cdef const Py_ssize_t* lp = NULL
        cdef const Py_ssize_t* op
        cdef double loss_sum = loss_sum0
        cdef const double* sw = NULL
        cdef int status
        cdef OptimizerLink link = self._bound()
        cdef long long step0 = link.step_count
        cdef SparseBatch sb
        cdef SparseBatch* sp = NULL
        cdef const void* x = self._input(X, &sb)
        if x == NULL:
            sp = &sb
            n_features = 0   # nothing of X is gathered, only its row indices
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self._set_clip_norm(clip_norm)
        if order.ndim != 1 or order.dtype != np.intp or not order.flags.c_contiguous:
            raise ValueError("order must be a C-contiguous 1-D intp array")
        if (T is None) == (labels is None):
            raise ValueError("give exactly one of T and labels")
        if T is not None:
            if T.ndim != 2 or T.shape[0] != n_rows or T.shape[1] != self._target_columns(T) \
                    or T.dtype != self.dtype or not T.flags.c_contiguous:
                raise ValueError(f"T must be C-contiguous {self.dtype} of shape ({n_rows}, "
                                 f"{self._target_widths()})")
            n_targets = T.shape[1]
            t = cnp.PyArray_DATA(<cnp.ndarray>T)
        else:
            if labels.shape != (n_rows,) or labels.dtype != np.intp \
                    or not labels.flags.c_contiguous:
                raise ValueError(f"labels must be C-contiguous intp of shape ({n_rows},)")
            lp = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>labels)
        if sample_weight is not None:
            if sample_weight.shape != (n_rows,) or sample_weight.dtype != np.float64 \
                    or not sample_weight.flags.c_contiguous:
                raise ValueError(f"sample_weight must be C-contiguous float64 of shape "
                                 f"({n_rows},)")
            sw = <double*>cnp.PyArray_DATA(<cnp.ndarray>sample_weight)
        if n == 0:
            return EPOCH_DONE, 0, loss_sum0
        batch = min(batch, n)
        self._check_batch(batch, n % batch or batch)
        cdef const double* lr_p = NULL
        if lrs is not None:
            if not isinstance(lrs, np.ndarray) or lrs.dtype != np.float64 or lrs.ndim != 1 \
                    or not lrs.flags.c_contiguous or lrs.shape[0] < (n + batch - 1) // batch \
                    or not (np.isfinite(lrs).all() and (lrs >= 0).all()):
                raise ValueError(f"lrs must be finite float64 learning rates >= 0, one per "
                                 f"batch ({(n + batch - 1) // batch})")
            lrs = lrs.copy()   # the engine's own: nothing else writes it during the epoch
            lr_p = <const double*>cnp.PyArray_DATA(<cnp.ndarray>lrs)
        self.obj.per_head = n_targets != 0 and n_targets != k
        self._reserve_batch(batch, n_features, n_targets)
        op = <Py_ssize_t*>cnp.PyArray_DATA(order)
        cdef void* xb = cnp.PyArray_DATA(<cnp.ndarray>self.batch_X)
        cdef Py_ssize_t* rb = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>self.batch_R)
        cdef void* tb = cnp.PyArray_DATA(<cnp.ndarray>self.batch_T)
        cdef Py_ssize_t* lb = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>self.batch_L)
        cdef double* wb = <double*>cnp.PyArray_DATA(<cnp.ndarray>self.batch_W)
        with nogil:
            if self.f32:
                status = epoch_impl[float](self.layers, self.n_layers, self.params,
                                           self.n_params, self.loss, <float*>x, sp, <float*>t,
                                           lp, sw, n_rows, n_features, n_targets, op, n, batch,
                                           <float*>xb, rb, <float*>tb, lb, wb, &self.groups,
                                           &self.obj, step0, lr_p, &steps, &loss_sum)
            else:
                status = epoch_impl[double](self.layers, self.n_layers, self.params,
                                            self.n_params, self.loss, <double*>x, sp,
                                            <double*>t, lp, sw, n_rows, n_features, n_targets,
                                            op, n, batch, <double*>xb, rb, <double*>tb, lb, wb,
                                            &self.groups, &self.obj, step0, lr_p, &steps,
                                            &loss_sum)
        link.step_count = step0 + steps
        self.trim(batch)
        return status, steps, loss_sum

    def _reserve_batch(self, Py_ssize_t batch, Py_ssize_t n_features, Py_ssize_t n_targets):
        """The workspaces and the gather buffers of a call, checked against this call's
        batch and widths (every dimension, every call: a later call may bring wider
        targets than the first, e.g. class probabilities after int labels)."""
        self.reserve(batch)
        n_targets = max(n_targets, 1)
        if self.batch_X is None or self.batch_X.shape[0] < batch \
                or self.batch_X.shape[1] != n_features or self.batch_T.shape[1] != n_targets:
            rows = max(batch, 0 if self.batch_X is None else self.batch_X.shape[0])
            self.batch_X = np.empty((rows, n_features), dtype=self.dtype)
            self.batch_T = np.empty((rows, n_targets), dtype=self.dtype)
            self.batch_L = np.empty(rows, dtype=np.intp)
            self.batch_R = np.empty(rows, dtype=np.intp)   # sparse input's row indices
            self.batch_W = np.empty(rows, dtype=np.float64)


def _check_layer_params(int kind, Py_ssize_t n_in, Py_ssize_t n_out, tuple hyper,
                        list params):
    """The parameter sizes (and constants) a layer kind's kernels index with and read
    (the engine trusts them)."""
    want = {LAYER_RESIDUAL: 1, LAYER_LAYER_NORM: 2, LAYER_BATCH_NORM: 2,
            LAYER_PERIODIC_EMBEDDING: 2, LAYER_CATEGORICAL_EMBEDDING: 1,
            LAYER_BATCH_ENSEMBLE: 2, LAYER_LINEAR_ENSEMBLE: 2,
            LAYER_PERIODIC_BIAS_EMBEDDING: 2}.get(kind, 0)
    if len(hyper) != want:
        raise ValueError(f"a layer of kind {kind} has {want} constants, got {hyper}")
    if kind == LAYER_DENSE:   # W and b, or W alone (bias=False)
        sizes = [n_in * n_out, n_out] if len(params) != 1 else [n_in * n_out]
    elif kind == LAYER_BATCH_ENSEMBLE or kind == LAYER_LINEAR_ENSEMBLE:
        # k members side by side in a row; a BatchEnsemble's input may be shared
        k = hyper[0]
        shared = hyper[1] == 1.0
        if not (1 <= k <= 1 << 16 and float(k).is_integer()) or hyper[1] not in (0.0, 1.0) \
                or (shared and kind == LAYER_LINEAR_ENSEMBLE) or n_out % int(k) \
                or (not shared and n_in % int(k)):
            raise ValueError(f"an ensemble layer maps k members' inputs (or one shared "
                             f"input) to k outputs side by side; got {n_in} -> {n_out}, "
                             f"{hyper}")
        k = int(k)
        d_in, d_out = (n_in if shared else n_in // k), n_out // k
        if kind == LAYER_BATCH_ENSEMBLE:   # W, r, s (, b)
            sizes = [d_in * d_out, k * d_in, k * d_out] + ([k * d_out] if len(params) == 4
                                                           else [])
        else:                              # W (, b)
            sizes = [k * d_in * d_out] + ([k * d_out] if len(params) == 2 else [])
    elif kind == LAYER_PERIODIC_EMBEDDING:
        if n_out % n_in or not (1 <= hyper[0] <= 1 << 20 and float(hyper[0]).is_integer()) \
                or hyper[1] not in (0.0, 1.0, 2.0, 3.0):
            raise ValueError(f"a periodic embedding maps n features to n·d values, with "
                             f"n_frequencies >= 1 and flags in 0..3; got {n_in} -> {n_out}, "
                             f"{hyper}")
        k2, d, shared = 2 * int(hyper[0]), n_out // n_in, int(hyper[1]) & 1
        sizes = [n_in * int(hyper[0]), (1 if shared else n_in) * k2 * d,
                 (1 if shared else n_in) * d]
    elif kind == LAYER_PERIODIC_BIAS_EMBEDDING:   # F features of n_in: F·d + n_in wide
        k, d = hyper
        if not (1 <= k <= 1 << 20 and float(k).is_integer() and 1 <= d <= 1 << 20
                and float(d).is_integer()) or n_out <= n_in or (n_out - n_in) % int(d) \
                or (n_out - n_in) // int(d) > n_in:
            raise ValueError(f"a PBLD embedding maps n_in columns to F·d + n_in (F <= n_in "
                             f"embedded); got {n_in} -> {n_out}, {hyper}")
        F, k, d = (n_out - n_in) // int(d), int(k), int(d)
        sizes = [F * k, F * k, F * k * d, F * d]
    elif kind == LAYER_SCALE or kind == LAYER_PARAMETRIC_ACTIVATION:
        if n_in != n_out:
            raise ValueError(f"a layer of kind {kind} maps a width to itself, got {n_in} -> "
                             f"{n_out}")
        sizes = [n_out]
    elif kind == LAYER_PIECEWISE_LINEAR_ENCODING:   # (its tables: _check_layer_buffers)
        sizes = []
    elif kind == LAYER_CATEGORICAL_EMBEDDING:   # one table per coded column, whose sizes
        # the layout gives (_check_layer_buffers checks them)
        if not (1 <= hyper[0] <= n_in and float(hyper[0]).is_integer()) \
                or len(params) != int(hyper[0]):
            raise ValueError(f"a categorical embedding codes 1 to {n_in} columns, one table "
                             f"each; got {hyper[0]} columns and {len(params)} tables")
        sizes = [p.size for p in params]
    elif kind in (LAYER_ACTIVATION, LAYER_DROPOUT, LAYER_LAYER_NORM, LAYER_RESIDUAL,
                  LAYER_BATCH_NORM):
        if n_in != n_out:
            raise ValueError(f"a layer of kind {kind} maps a width to itself, got {n_in} -> "
                             f"{n_out}")
        sizes = []
        if kind == LAYER_RESIDUAL and not (1 <= hyper[0] <= 1 << 20
                                           and float(hyper[0]).is_integer()):
            raise ValueError(f"a residual record's block length must be an int >= 1, got "
                             f"{hyper[0]}")
        if kind == LAYER_LAYER_NORM or kind == LAYER_BATCH_NORM:
            if not (isfinite(hyper[0]) and hyper[0] > 0):
                raise ValueError(f"a normalisation's eps must be finite and > 0, got {hyper[0]}")
            if kind == LAYER_BATCH_NORM and not 0 <= hyper[1] <= 1:
                raise ValueError(f"a BatchNorm's momentum must be in [0, 1], got {hyper[1]}")
            if kind == LAYER_LAYER_NORM and not (1 <= hyper[1] <= n_out and float(
                    hyper[1]).is_integer() and n_out % int(hyper[1]) == 0):
                raise ValueError(f"a LayerNorm's groups must divide its width ({n_out}), got "
                                 f"{hyper[1]}")
            if len(params):   # γ and β, or neither
                sizes = [n_out, n_out]
    else:
        raise ValueError(f"unknown layer kind {kind}")
    if [p.size for p in params] != sizes:
        raise ValueError(f"a layer of kind {kind} ({n_in} -> {n_out}) needs parameters of "
                         f"sizes {sizes}, got {[p.size for p in params]}")


def _check_layer_buffers(int kind, Py_ssize_t n_in, Py_ssize_t n_out, tuple buffers, dtype,
                         tuple hyper, list params):
    """The arrays a kind keeps besides its parameters: BatchNorm's running mean and
    variance, (n_out,) of the engine's dtype; a piecewise-linear encoding's column
    features (n_out intp, each in [0, n_in)) and w, b, lo, hi (4·n_out of the dtype); a
    categorical embedding's layout (intp: its numeric columns, then (column,
    cardinality, dim) per coded column: the columns each once, the tables card·dim,
    the output n_in − coded + Σ dim wide); none for the other kinds."""
    if kind == LAYER_CATEGORICAL_EMBEDDING:
        _check_categorical_layout(n_in, n_out, buffers, int(hyper[0]), params)
        return
    if kind == LAYER_PIECEWISE_LINEAR_ENCODING:
        if len(buffers) != 2 or not all(isinstance(b, np.ndarray) for b in buffers) \
                or buffers[0].dtype != np.intp or buffers[0].size != n_out \
                or buffers[1].dtype != dtype or buffers[1].size != 4 * n_out \
                or n_out and not (0 <= buffers[0].min() and buffers[0].max() < n_in):
            raise ValueError(f"a piecewise-linear encoding keeps {n_out} column features in "
                             f"[0, {n_in}) and {4 * n_out} {dtype} coefficients")
        return
    want = 2 if kind == LAYER_BATCH_NORM else 0
    if len(buffers) != want or any(not isinstance(b, np.ndarray) or b.dtype != dtype
                                   or b.size != n_out for b in buffers):
        raise ValueError(f"a layer of kind {kind} keeps {want} arrays of {n_out} {dtype} "
                         f"values besides its parameters")


def _check_categorical_layout(Py_ssize_t n_in, Py_ssize_t n_out, tuple buffers, int C,
                              list params):
    n_num = n_in - C
    lay = buffers[0] if len(buffers) == 1 else None
    if not isinstance(lay, np.ndarray) or lay.dtype != np.intp or lay.ndim != 1 \
            or lay.size != n_num + 3 * C:
        raise ValueError(f"a categorical embedding keeps one intp layout of {n_num + 3 * C} "
                         "values")
    coded = lay[n_num:].reshape(C, 3)
    cols = np.concatenate([lay[:n_num], coded[:, 0]])
    if not np.array_equal(np.sort(cols), np.arange(n_in)) or (coded[:, 1:] < 1).any() \
            or n_num + int(coded[:, 2].sum()) != n_out \
            or [p.size for p in params] != [int(c * d) for c, d in coded[:, 1:]]:
        raise ValueError(f"a categorical embedding's layout {lay.tolist()} does not fit "
                         f"{n_in} -> {n_out} columns and tables of sizes "
                         f"{[p.size for p in params]}")


cdef void* _ptr(arr) except NULL:
    """The data pointer of a C-contiguous, writable array of the engine's dtype."""
    if not isinstance(arr, np.ndarray) or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError("engine buffers must be writable C-contiguous arrays")
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef void* _ptr_or_null(arr) except? NULL:
    if arr is None:
        return NULL
    return _ptr(arr)


# ---------------------------------------------------------------- packs of engines
include "_packed.pxi"
