"""Model.train_step's fast path (Engine.train_step_fast) against its checked path.

The fast path skips input conversion and the engine/optimizer checks when nothing
changed since the last step. These tests pin down both halves of that contract:
when it runs it gives the checked path's bits, and every change it must not
miss (inputs needing conversion, a new learning rate or state, replaced
parameter arrays, another optimizer, bad labels) sends the step down the
checked path.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import MLP, SGD, Adam

from conftest import (DTYPES, assert_same_params, assert_state_equal, make_data, param_copies,
                      tol)

N = 16   # rows of the test batches


def _pair(dtype, loss="cross_entropy", k=3, opt=Adam, activation="tanh", **kw):
    models = [MLP((5, 8, k), activation, loss, dtype=dtype, seed=1) for _ in range(2)]
    return [(m, opt(m.parameters(), **kw)) for m in models]


def _assert_same_state(a, opt_a, b, opt_b):
    assert_same_params(a, b)
    assert_state_equal(opt_a.state_dict(), opt_b.state_dict())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_gate_opens_for_ready_inputs(dtype, loss):
    """After one step, the engine's gate takes arrays that need nothing done."""
    (model, opt), _ = _pair(dtype, loss, lr=0.01)
    X, y = make_data(loss, N, 5, 3, dtype)
    model.train_step(X, y, opt)
    for step in range(2, 6):
        assert model._engine.train_step_fast(X, y, opt) is not None
        assert opt.step_count == step


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("opt, activation, kw", [
    (Adam, "tanh", dict(lr=0.01)),
    (SGD, "relu", dict(lr=0.05, momentum=0.9)),          # momentum's first-step branch
    (SGD, "leaky_relu", dict(lr=0.05, momentum=0.5, nesterov=True)),
    (fastbp.RMSprop, "sigmoid", dict(lr=0.01, centered=True)),
])
def test_fast_path_gives_the_checked_paths_bits(dtype, loss, opt, activation, kw):
    """model.train_step on ready arrays (the fast path) against lists (always the
    checked path): the same losses, parameters and optimizer state, bit for bit."""
    (fast, opt_f), (slow, opt_s) = _pair(dtype, loss, opt=opt, activation=activation, **kw)
    X, y = make_data(loss, N, 5, 3, dtype)
    X_list, y_list = X.tolist(), y.tolist()
    for _ in range(8):
        assert fast.train_step(X, y, opt_f) == slow.train_step(X_list, y_list, opt_s)
    assert opt_f.step_count == opt_s.step_count == 8
    _assert_same_state(fast, opt_f, slow, opt_s)


def test_zero_loss_steps_once():
    """A loss of exactly 0.0 is a result, not the gate's 'no' (None)."""
    model = MLP((3, 4, 2), "relu", "mse", dtype=np.float64, seed=0)
    for layer in model.layers:
        layer.W[...] = 0.0
    opt = SGD(model.parameters(), lr=0.1)
    X, y = np.ones((4, 3)), np.zeros((4, 2))
    assert model.train_step(X, y, opt) == 0.0
    assert model.train_step(X, y, opt) == 0.0
    assert opt.step_count == 2


def _warm(dtype=np.float64, loss="cross_entropy"):
    (model, opt), _ = _pair(dtype, loss, lr=0.01)
    X, y = make_data(loss, N, 5, 3, dtype)
    model.train_step(X, y, opt)
    assert model._engine.train_step_fast(X, y, opt) is not None
    assert opt.step_count == 2
    return model, opt, X, y


@pytest.mark.parametrize("change", [
    "X float32", "X Fortran", "X strided", "X subclass", "X big-endian", "X unaligned",
    "y int32", "y float labels", "y big-endian labels", "y 0-d", "y wrong columns",
    "y wrong rows", "label out of range", "negative label", "batch above capacity",
])
def test_inputs_needing_conversion_or_checks_take_the_checked_path(change):
    model, opt, X, y = _warm()
    if change == "X float32":
        X = X.astype(np.float32)
    elif change == "X Fortran":
        X = np.asfortranarray(X)
    elif change == "X strided":
        X = np.repeat(X, 2, axis=1)[:, ::2]
    elif change == "X subclass":
        X = X.view(np.matrix)
    elif change == "X big-endian":
        X = X.astype(X.dtype.newbyteorder(">"))
    elif change == "X unaligned":
        raw = np.zeros(X.nbytes + 1, dtype=np.uint8)
        X = np.frombuffer(raw[1:].data, dtype=X.dtype).reshape(X.shape)
    elif change == "y big-endian labels":
        y = y.astype(np.dtype(np.intp).newbyteorder(">"))
    elif change == "y 0-d":
        y = np.array(1)
    elif change == "y wrong columns":
        y = np.zeros((X.shape[0], 2))
    elif change == "y int32":
        y = y.astype(np.int32)
    elif change == "y float labels":
        y = y.astype(np.float64)
    elif change == "y wrong rows":
        y = y[:-1]
    elif change == "label out of range":
        y = y.copy()
        y[3] = 3
    elif change == "negative label":
        y = y.copy()
        y[0] = -1
    elif change == "batch above capacity":
        X, y = np.vstack([X, X]), np.concatenate([y, y])
    assert model._engine.train_step_fast(X, y, opt) is None
    assert opt.step_count == 2          # nothing was applied


@pytest.mark.parametrize("dtype", DTYPES)
def test_big_endian_inputs_train_like_native_ones(dtype):
    (a, opt_a), (b, opt_b) = _pair(dtype, "mse", lr=0.01)
    X, y = make_data("mse", N, 5, 3, dtype)
    swapped = np.dtype(dtype).newbyteorder(">")
    for _ in range(3):
        a.train_step(X, y, opt_a)
        b.train_step(X.astype(swapped), y.astype(swapped), opt_b)
    assert_same_params(a, b)


@pytest.mark.parametrize("label", [3, -1, 10**6])
def test_bad_labels_still_raise_after_fast_steps(label):
    model, opt, X, y = _warm()
    y = y.copy()
    y[5] = label
    before = param_copies(model)
    with pytest.raises(ValueError, match="class labels must lie in"):
        model.train_step(X, y, opt)
    assert_same_params(before, model)


def test_wrong_shapes_still_raise_after_fast_steps():
    model, opt, X, y = _warm()
    with pytest.raises(ValueError, match="features"):
        model.train_step(X[:, :4], y, opt)
    with pytest.raises(ValueError, match="rows like X"):
        model.train_step(X, y[:3], opt)
    with pytest.raises(TypeError, match="optimizer"):
        model.train_step(X, y, "adam")


def test_new_learning_rate_is_used_at_once():
    """Against backward() + optimizer.step(), which never touch the engine's binding."""
    (a, opt_a), (b, opt_b) = _pair(np.float64, lr=0.01)
    X, y = make_data("cross_entropy", N, 5, 3)

    def both_steps():
        a.train_step(X, y, opt_a)
        b.backward(X, y)
        opt_b.step(b.gradients())

    for _ in range(3):
        both_steps()
    opt_a.lr = opt_b.lr = 0.5
    assert not a._engine.is_bound_to(opt_a)
    for _ in range(3):
        both_steps()
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p, q, rtol=tol(np.float64, "path_rtol"), atol=0)
    assert np.abs(a.parameters()[0] - _pair(np.float64)[0][0].parameters()[0]).max() > 0.1


def test_loaded_optimizer_state_is_rebound():
    model, opt, X, y = _warm()
    saved = opt.state_dict()
    snapshot = param_copies(model)
    model.train_step(X, y, opt)
    first = param_copies(model)
    # Back to the saved state: a new state tuple, which the engine must notice.
    for p, s in zip(model.parameters(), snapshot):
        p[...] = s
    opt.load_state_dict(saved)
    assert not model._engine.is_bound_to(opt)
    model.train_step(X, y, opt)
    assert_same_params(model, first)


def test_assigned_parameters_are_copied_into_the_live_arrays():
    """layer.W = x writes into the array the engine and the optimizer hold: the engine
    stays valid (no rebuild) and steps from the new values."""
    model, opt, X, y = _warm()
    engine = model._engine
    layer = model.layers[0]
    live = layer.W
    layer.W = np.zeros_like(layer.W)
    assert layer.W is live and not live.any()
    assert engine.train_step_fast(X, y, opt) is not None
    assert model._engine is engine
    assert np.any(layer.W != 0)               # the update reached the live array
    with pytest.raises(ValueError, match="W must have shape"):
        layer.W = np.zeros((2, 2))
    with pytest.raises(TypeError, match="real numbers"):
        layer.W = np.full(layer.W.shape, "a")


def test_another_optimizer_is_bound_not_ignored():
    model, opt, X, y = _warm()
    sgd = SGD(model.parameters(), lr=0.1)
    assert model._engine.train_step_fast(X, y, sgd) is None
    W = model.layers[1].W.copy()
    model.train_step(X, y, sgd)
    dW = model.layers[1].dW
    np.testing.assert_array_equal(model.layers[1].W, W - np.float64(0.1) * dW)
    assert sgd.step_count == 1 and opt.step_count == 2


def test_step_count_is_a_checked_int_the_engine_shares():
    """The counter lives in the optimizer's typed link: a NumPy int is stored as an int
    (the fast path keeps working), anything else is refused before it reaches it."""
    model, opt, X, y = _warm()
    opt.step_count = np.int64(2)
    assert type(opt.step_count) is int
    assert model._engine.train_step_fast(X, y, opt) is not None
    assert opt.step_count == 3
    for bad, exc in ((True, TypeError), (2.0, TypeError), ("3", TypeError), (-1, ValueError),
                     (2**62, ValueError)):
        with pytest.raises(exc, match="step_count"):
            opt.step_count = bad
    assert opt.step_count == 3
    model.train_step(X, y, opt)
    assert opt.step_count == 4 and opt.engine_link.step_count == 4


def test_per_model_threads_take_the_checked_path():
    model, opt, X, y = _warm()
    model.num_threads = 1
    calls = []
    engine = model._engine

    class Spy:
        def __getattr__(self, name):
            if name == "train_step_fast":
                calls.append(name)
            return getattr(engine, name)

    model._engine = Spy()   # the checked path works through the spy too
    model.train_step(X, y, opt)
    assert calls == [] and opt.step_count == 3


@pytest.mark.parametrize("n_out", [1, 2])
def test_one_dimensional_targets(n_out):
    """(n,) targets are taken as (n, 1) only when the model has one output."""
    model = MLP((5, 8, n_out), "tanh", "mse", dtype=np.float64, seed=1)
    opt = SGD(model.parameters(), lr=0.1)
    X, _ = make_data("cross_entropy", N, 5, 3)
    y = np.linspace(-1, 1, X.shape[0])
    model.train_step(X, np.tile(y[:, None], (1, n_out)), opt)   # warm: the gate is live
    gate = model._engine.train_step_fast(X, y, opt)
    if n_out == 1:
        assert gate is not None
    else:
        assert gate is None
        with pytest.raises(ValueError, match="shape"):
            model.train_step(X, y, opt)


def test_custom_optimizer_subclass_gets_a_clear_error():
    class Plain(fastbp.optim.Optimizer):
        def hyperparameters(self):
            return {"lr": self.lr}

        def update(self, p, g, state):
            p -= self.lr * g

    model = MLP((5, 8, 3), "tanh", "cross_entropy", dtype=np.float64, seed=1)
    opt = Plain(model.parameters(), lr=0.1)
    X, y = make_data("cross_entropy", N, 5, 3)
    with pytest.raises(TypeError, match="backward"):
        model.train_step(X, y, opt)
    model.backward(X, y)                       # the route the message gives works
    W = model.layers[0].W.copy()
    opt.step(model.gradients())
    np.testing.assert_array_equal(model.layers[0].W, W - 0.1 * model.layers[0].dW)
