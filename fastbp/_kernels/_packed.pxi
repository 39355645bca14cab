# Included by network.pyx: the lock-step epoch of several engines ("a pack").
#
# Why: members with the same architecture that see the same batches all multiply the
# same batch by their first layer's weights; stepped together, the batch is gathered
# once and those k products become one wide product at the BLAS's large-matrix rate
# (measured: 1.09x on E1 at one thread, 1.27x at two; the layers above and the loss
# are the rest of the time). They step together here: their first layers' weights are packed, transposed, one member
# after another (P0: (k·out, in), member m's block W_mᵀ contiguous), so that the first
# layer's forward is ONE product X·P0ᵀ (B × k·out) and its weight gradient ONE product
# dZᵀ·X; its bias, activation and activation derivative run once over all k·out
# columns. The layers above run per member, with the member's own engine records,
# buffers and optimizer (the same calls as its own epoch). Each member's first-layer
# update runs on its contiguous block with its own optimizer record, on packed copies
# of its optimizer state (copied in at the start of the epoch and back at its end).
#
# An L2 penalty (the objective's l2, scikit-learn's alpha) is each member's own: its
# coefficient per step, dW += c·W on its block of the packed weights and gradients,
# and Σw² with its first layer's term read from that block (its Param points there
# for the epoch).
#
# What equals the members' own epochs: every element-wise step (bias, activation,
# derivative, loss, optimizer update) and the layers above the first, bit for bit; the
# two wide products sum each element over the same terms in the BLAS's order, which
# may differ from the per-member product's by rounding; with an L2 penalty, Σw² of the
# first layer sums the transposed block (the loss value may differ by rounding, the
# gradients not). A member whose loss is not finite stops there (as its own epoch
# would; the caller restores it).


cdef struct PackMember:
    LayerRec* layers
    Param* P
    OptimGroups* G
    const Objective* obj
    int n_params
    long long step0
    double l2           # this step's L2 coefficient for the gradients (objective_value's)
    Py_ssize_t steps
    double loss_sum
    int status          # _DONE while it steps; _NONFINITE once stopped


cdef void transpose_into(const floating* src, Py_ssize_t rows, Py_ssize_t cols,
                         floating* dst) noexcept nogil:
    """dst (cols, rows) := srcᵀ, src (rows, cols)."""
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(cols):
            dst[j * rows + i] = src[i * cols + j]


cdef int packed_epoch_impl(PackMember* M, int k, int n_layers, int loss, const floating* X,
                           const floating* T, const Py_ssize_t* labels, const double* sw,
                           Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_targets,
                           const Py_ssize_t* order, Py_ssize_t n, Py_ssize_t batch,
                           floating* Xb, floating* Tb, Py_ssize_t* Lb, double* Wb,
                           floating* P0, floating* G0, floating* b0, floating* gb0,
                           void** S0, void** Sb0, floating* Zw, floating* Aw,
                           floating* Dw) noexcept nogil:
    """The pack's epoch over ``order`` in batches (see the file's comment). P0/G0: the
    packed first-layer weights and their gradient (k·out, in); b0/gb0: biases (k·out);
    S0[j]/Sb0[j]: the packed optimizer state j of W and b (NULL where the kind has
    none); Zw, Aw, Dw: (batch, k·out) (Aw may be Zw). Returns _DONE, _INTERRUPTED or
    _BAD_INDEX (for every member); each member's status, steps and loss sum in M."""
    cdef LayerRec* L0 = &M[0].layers[0]
    cdef int act0 = L0.act, l, j, s, mi
    cdef Py_ssize_t n_in = L0.n_in, out0 = L0.n_out, wide = k * out0, block = out0 * n_in
    cdef Py_ssize_t start = 0, m, steps = 0, n_classes = M[0].layers[n_layers - 1].n_out
    cdef PackMember* mem
    cdef LayerRec* L
    cdef Param* P
    cdef const floating* inp
    cdef double value
    cdef void* st[3]
    cdef Param* q
    while start < n:
        if fb_interrupt_pending():
            return _INTERRUPTED
        m = batch if start + batch <= n else n - start
        if gather_batch(X, T, labels, sw, n_rows, n_features, n_targets, n_classes,
                        order + start, m, Xb, NULL, Tb, Lb, Wb) != 0:
            return _BAD_INDEX
        # the first layer of every member: one product, one pass of bias and activation
        gemm(False, True, m, wide, n_in, 1.0, Xb, n_in, P0, n_in, 0.0, Zw, wide)
        bias_activation_forward_ptr(act0, Zw, b0, Aw, m, wide)
        for mi in range(k):
            mem = &M[mi]
            if mem.status != _DONE:
                continue
            L, P = mem.layers, mem.P
            begin_groups(mem.G, mem.step0 + steps + 1)
            # its block of the first layer's output is the input of its second layer
            for j in range(m):
                memcpy(&(<floating*>L[0].A)[j * out0], &Aw[j * wide + mi * out0],
                       out0 * sizeof(floating))
            inp = <floating*>L[0].A
            for l in range(1, n_layers):
                layer_forward(&L[l], P, inp, <floating*>L[l].A, m, L, True)
                inp = <floating*>L[l].A
            value = objective_value(&L[n_layers - 1], P, mem.n_params, loss,
                                    Tb if labels == NULL else NULL,
                                    Lb if labels != NULL else NULL,
                                    Wb if sw != NULL else NULL, m, mem.obj, &mem.l2)
            for l in range(n_layers - 1, 0, -1):
                layer_backward(&L[l], P, <floating*>L[l - 1].A, <floating*>L[l - 1].D, m)
                for j in range(L[l].p0, L[l].p0 + L[l].n_params):
                    if mem.l2 != 0.0 and P[j].penalized:   # as step_impl
                        axpy(P[j].size, mem.l2, <floating*>P[j].p, <floating*>P[j].g)
                    update_param(<floating*>P[j].p, &P[j], mem.G)
            # dL/dA of its first layer into its block of the wide gradient
            for j in range(m):
                memcpy(&Dw[j * wide + mi * out0], &(<floating*>L[0].D)[j * out0],
                       out0 * sizeof(floating))
            mem.steps = steps + 1
            if not isfinite(value):
                mem.loss_sum = value
                mem.status = _NONFINITE
            else:
                mem.loss_sum += value * m
        # the first layer's backward for every member at once, then each one's update
        activation_backward_ptr(act0, Zw, Aw, Dw, Dw, m, wide)
        column_sums_ptr(Dw, gb0, m, wide)
        gemm(True, False, wide, n_in, m, 1.0, Dw, wide, Xb, n_in, 0.0, G0, n_in)
        for mi in range(k):
            mem = &M[mi]
            if mem.steps != steps + 1:   # stopped before this step
                continue
            q = &mem.P[mem.layers[0].p0]
            for s in range(3):
                st[s] = NULL if S0[s] == NULL or q.s[s] == NULL else \
                    <void*>(<floating*>S0[s] + mi * block)
            if mem.l2 != 0.0 and q.penalized:
                axpy(block, mem.l2, P0 + mi * block, G0 + mi * block)
            optim_update_ptr(P0 + mi * block, G0 + mi * block, st, block,
                             &mem.G.cfg[q.group], &mem.G.st[q.group])
            if mem.layers[0].n_params > 1:
                q = &mem.P[mem.layers[0].p0 + 1]
                for s in range(3):
                    st[s] = NULL if Sb0[s] == NULL or q.s[s] == NULL else \
                        <void*>(<floating*>Sb0[s] + mi * out0)
                if mem.l2 != 0.0 and q.penalized:
                    axpy(out0, mem.l2, b0 + mi * out0, gb0 + mi * out0)
                optim_update_ptr(b0 + mi * out0, gb0 + mi * out0, st, out0,
                                 &mem.G.cfg[q.group], &mem.G.st[q.group])
        steps += 1
        start += m
    return _DONE


cdef bint _packable(Engine e, Engine first):
    """Whether ``e`` can step in lock-step with ``first``: Dense layers only, at least
    two, without dropout, the same widths, activations, bias flags, loss and dtype; a
    bound optimizer; one head."""
    cdef int l
    if e.n_layers != first.n_layers or e.n_layers < 2 or e.f32 != first.f32 \
            or e.loss != first.loss or e.link is None or e.obj.heads != 1:
        return False
    for l in range(e.n_layers):
        if e.layers[l].kind != LAYER_DENSE or e.layers[l].dropout > 0 \
                or e.layers[l].n_in != first.layers[l].n_in \
                or e.layers[l].n_out != first.layers[l].n_out \
                or e.layers[l].act != first.layers[l].act \
                or e.layers[l].n_params != first.layers[l].n_params:
            return False
    return first.layers[0].act != ACT_SOFTMAX


def can_pack(list engines):
    """Whether these engines (two or more) can run one packed_epoch."""
    cdef Engine first
    if len(engines) < 2:
        return False
    first = engines[0]
    return all(_packable(e, first) for e in engines)


def packed_epoch(list engines, X, T, labels, cnp.ndarray order, Py_ssize_t batch,
                 sample_weight=None):
    """One epoch of every engine's bound optimizer over ``order``, in lock-step (see
    _packed.pxi), each from its step count + 1. The engines must pass ``can_pack``.
    X, T, labels, order, batch, sample_weight: as ``Engine.epoch``'s (dense X), the same
    for every member. Returns (status, steps, loss_sum) per engine, as ``epoch`` does
    (EPOCH_INTERRUPTED and EPOCH_BAD_INDEX stop every member)."""
    cdef int k = len(engines), i, l, s, status
    cdef Engine first, e
    cdef PackMember* members
    cdef const void* x
    cdef const Py_ssize_t* op
    cdef void* xb
    cdef void* tb
    cdef Py_ssize_t* lb
    cdef double* wb
    cdef void* S0[3]
    cdef void* Sb0[3]
    cdef Param* q
    cdef void* pp[7]
    cdef void** saved_p
    if not can_pack(engines):
        raise ValueError("these engines cannot step in lock-step (can_pack)")
    if len({id(e) for e in engines}) != k:   # one engine twice would update twice a step
        raise ValueError("engines must be distinct")
    first = engines[0]
    if not isinstance(X, np.ndarray):
        raise TypeError("packed_epoch takes dense X")
    cdef Py_ssize_t n = order.shape[0], n_rows = X.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t n_out = first.layers[first.n_layers - 1].n_out, n_targets = 0
    cdef Py_ssize_t n_in = first.layers[0].n_in, out0 = first.layers[0].n_out
    cdef Py_ssize_t wide = k * out0, block = out0 * n_in
    if X.ndim != 2 or n_features != n_in or X.dtype != first.dtype or not X.flags.c_contiguous:
        raise ValueError(f"X must be C-contiguous {first.dtype} of shape (n, {n_in})")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if order.ndim != 1 or order.dtype != np.intp or not order.flags.c_contiguous:
        raise ValueError("order must be a C-contiguous 1-D intp array")
    if (T is None) == (labels is None):
        raise ValueError("give exactly one of T and labels")
    cdef void* t = NULL
    cdef const Py_ssize_t* lp = NULL
    cdef const double* sw = NULL
    if T is not None:
        if T.ndim != 2 or T.shape[0] != n_rows or T.shape[1] != n_out \
                or T.dtype != first.dtype or not T.flags.c_contiguous:
            raise ValueError(f"T must be C-contiguous {first.dtype} of shape ({n_rows}, {n_out})")
        n_targets = n_out
        t = cnp.PyArray_DATA(<cnp.ndarray>T)
    else:
        if labels.shape != (n_rows,) or labels.dtype != np.intp or not labels.flags.c_contiguous:
            raise ValueError(f"labels must be C-contiguous intp of shape ({n_rows},)")
        lp = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>labels)
    if sample_weight is not None:
        if sample_weight.shape != (n_rows,) or sample_weight.dtype != np.float64 \
                or not sample_weight.flags.c_contiguous:
            raise ValueError(f"sample_weight must be C-contiguous float64 of shape ({n_rows},)")
        sw = <double*>cnp.PyArray_DATA(<cnp.ndarray>sample_weight)
    if n == 0:
        return [(EPOCH_DONE, 0, 0.0)] * k
    batch = min(batch, n)
    for e in engines:
        e._set_clip_norm(0.0)
        e.reserve(batch)
    first._reserve_batch(batch, n_features, n_targets)
    # the packed first layer: weights (transposed), biases, gradients, optimizer states
    dt = first.dtype
    P0 = np.empty((wide, n_in), dtype=dt)
    G0 = np.zeros((wide, n_in), dtype=dt)
    b0 = np.empty(wide, dtype=dt)
    gb0 = np.zeros(wide, dtype=dt)
    states_W = [None, None, None]
    states_b = [None, None, None]
    Zw = np.empty((batch, wide), dtype=dt)
    Aw = Zw if output_is_z(LAYER_DENSE, first.layers[0].act) else np.empty((batch, wide), dtype=dt)
    Dw = np.empty((batch, wide), dtype=dt)
    members = <PackMember*>PyMem_Calloc(k, sizeof(PackMember))
    saved_p = <void**>PyMem_Calloc(k, sizeof(void*))
    if members == NULL or saved_p == NULL:
        PyMem_Free(members)
        PyMem_Free(saved_p)
        raise MemoryError()
    try:
        for i in range(k):
            e = engines[i]
            q = &e.params[e.layers[0].p0]
            _pack_in(q, dt, n_in, out0, P0[i * out0:(i + 1) * out0], states_W, k, block, i, True)
            if e.layers[0].n_params > 1:
                _pack_in(&e.params[e.layers[0].p0 + 1], dt, 1, out0,
                         b0[i * out0:(i + 1) * out0], states_b, k, out0, i, False)
            else:
                b0[i * out0:(i + 1) * out0] = 0
            members[i].layers = e.layers
            members[i].P = e.params
            members[i].G = &e.groups
            members[i].obj = &e.obj
            members[i].n_params = e.n_params
            members[i].step0 = e._bound().step_count
            members[i].status = _DONE
        for s in range(3):
            S0[s] = NULL if states_W[s] is None else cnp.PyArray_DATA(<cnp.ndarray>states_W[s])
            Sb0[s] = NULL if states_b[s] is None else cnp.PyArray_DATA(<cnp.ndarray>states_b[s])
        x = cnp.PyArray_DATA(<cnp.ndarray>X)
        op = <Py_ssize_t*>cnp.PyArray_DATA(order)
        xb = cnp.PyArray_DATA(<cnp.ndarray>first.batch_X)
        tb = cnp.PyArray_DATA(<cnp.ndarray>first.batch_T)
        lb = <Py_ssize_t*>cnp.PyArray_DATA(<cnp.ndarray>first.batch_L)
        wb = <double*>cnp.PyArray_DATA(<cnp.ndarray>first.batch_W)
        for i, arr in enumerate((P0, G0, b0, gb0, Zw, Aw, Dw)):
            pp[i] = _ptr(arr)
        # the objective's penalty reads each member's first-layer weights through its
        # Param: point it at the member's (live) block for the epoch
        for i in range(k):
            e = engines[i]
            q = &e.params[e.layers[0].p0]
            saved_p[i] = q.p
            q.p = <void*>(<char*>pp[0] + i * block * (4 if first.f32 else 8))
        with nogil:
            if first.f32:
                status = packed_epoch_impl[float](
                    members, k, first.n_layers, first.loss, <float*>x, <float*>t, lp, sw,
                    n_rows, n_features, n_targets, op, n, batch, <float*>xb, <float*>tb, lb, wb,
                    <float*>pp[0], <float*>pp[1], <float*>pp[2], <float*>pp[3], S0, Sb0,
                    <float*>pp[4], <float*>pp[5], <float*>pp[6])
            else:
                status = packed_epoch_impl[double](
                    members, k, first.n_layers, first.loss, <double*>x, <double*>t, lp, sw,
                    n_rows, n_features, n_targets, op, n, batch, <double*>xb, <double*>tb, lb,
                    wb, <double*>pp[0], <double*>pp[1], <double*>pp[2], <double*>pp[3], S0,
                    Sb0, <double*>pp[4], <double*>pp[5], <double*>pp[6])
        for i in range(k):
            e = engines[i]
            e.params[e.layers[0].p0].p = saved_p[i]
            saved_p[i] = NULL
        results = []
        for i in range(k):
            e = engines[i]
            _pack_out(&e.params[e.layers[0].p0], dt, n_in, out0, P0, G0, states_W, i, True)
            if e.layers[0].n_params > 1:
                _pack_out(&e.params[e.layers[0].p0 + 1], dt, 1, out0, b0.reshape(k, out0),
                          gb0.reshape(k, out0), states_b, i, False)
            e._bound().step_count = members[i].step0 + members[i].steps
            member_status = status if status != _DONE else members[i].status
            results.append((member_status, members[i].steps, members[i].loss_sum))
            e.trim(batch)
        return results
    finally:
        for i in range(k):   # (restored above unless something raised in between)
            if saved_p[i] != NULL:
                e = engines[i]
                e.params[e.layers[0].p0].p = saved_p[i]
        PyMem_Free(saved_p)
        PyMem_Free(members)


cdef object _array_of(void* p, dt, Py_ssize_t size):
    """A 1-D NumPy view of ``size`` elements at p (an engine-owned array's memory)."""
    cdef cnp.npy_intp dims[1]
    dims[0] = size
    return cnp.PyArray_SimpleNewFromData(1, dims, cnp.NPY_FLOAT32 if dt == np.float32
                                         else cnp.NPY_FLOAT64, p)


cdef _pack_in(Param* q, dt, Py_ssize_t rows, Py_ssize_t cols, dst, list states, int k,
              Py_ssize_t block, int i, bint transpose):
    """Member i's parameter (rows, cols) into its block of the packed array (transposed
    for a weight) and its optimizer states into the packed states (made on first use)."""
    p = _array_of(q.p, dt, rows * cols)
    dst[...] = p.reshape(rows, cols).T if transpose else p.reshape(cols)
    cdef int s
    for s in range(3):
        if q.s[s] == NULL:
            continue
        if states[s] is None:
            states[s] = np.zeros(k * block, dtype=dt)
        src = _array_of(q.s[s], dt, rows * cols)
        part = states[s][i * block:(i + 1) * block]
        part[...] = (src.reshape(rows, cols).T if transpose else src).reshape(-1)


cdef _pack_out(Param* q, dt, Py_ssize_t rows, Py_ssize_t cols, packed, grads, list states,
               int i, bint transpose):
    """The inverse of _pack_in: member i's block back into its parameter, gradient and
    optimizer states."""
    cdef Py_ssize_t size = rows * cols
    cdef int s
    if transpose:
        blk = packed[i * cols:(i + 1) * cols]
        gblk = grads[i * cols:(i + 1) * cols]
        _array_of(q.p, dt, size).reshape(rows, cols)[...] = blk.T
        _array_of(q.g, dt, size).reshape(rows, cols)[...] = gblk.T
    else:
        _array_of(q.p, dt, size)[...] = packed[i]
        _array_of(q.g, dt, size)[...] = grads[i]
    for s in range(3):
        if q.s[s] == NULL or states[s] is None:
            continue
        part = states[s][i * size:(i + 1) * size]
        dst = _array_of(q.s[s], dt, size)
        dst[...] = part.reshape(cols, rows).T.reshape(-1) if transpose else part
