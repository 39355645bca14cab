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


def _data(dtype, n=16, n_in=5, k=3, labels=True, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in)).astype(dtype)
    y = rng.integers(0, k, n) if labels else rng.normal(size=(n, k)).astype(dtype)
    return X, y


def _pair(dtype, loss="cross_entropy", k=3, opt=Adam, **kw):
    models = [MLP((5, 8, k), "tanh", loss, dtype=dtype, seed=1) for _ in range(2)]
    return [(m, opt(m.parameters(), **kw)) for m in models]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("labels", [True, False])
def test_fast_path_gives_the_checked_paths_bits(dtype, labels):
    loss = "cross_entropy" if labels else "mse"
    (fast, opt_f), (slow, opt_s) = _pair(dtype, loss, lr=0.01)
    X, y = _data(dtype, labels=labels)
    X_list, y_list = X.tolist(), y.tolist()  # lists always take the checked path
    taken = 0
    for _ in range(12):
        engine = fast._engine
        if engine is not None:
            # the call model.train_step makes; it returns None when it did not step
            taken += engine.train_step_fast(X, y, opt_f, fastbp.Dense.generation) is not None
        else:
            fast.train_step(X, y, opt_f)
        slow.train_step(X_list, y_list, opt_s)
    assert taken == 11                      # every step after the first was fast
    assert opt_f.step_count == opt_s.step_count == 12
    for a, b in zip(fast.parameters() + list(opt_f.state[0].values()),
                    slow.parameters() + list(opt_s.state[0].values())):
        np.testing.assert_array_equal(a, b)


def _warm(dtype=np.float64, loss="cross_entropy", labels=True):
    (model, opt), _ = _pair(dtype, loss, lr=0.01)
    X, y = _data(dtype, labels=labels)
    model.train_step(X, y, opt)
    assert model._engine.train_step_fast(X, y, opt, fastbp.Dense.generation) is not None
    assert opt.step_count == 2
    return model, opt, X, y


@pytest.mark.parametrize("change", [
    "X float32", "X Fortran", "X strided", "X subclass", "X big-endian", "X unaligned",
    "y int32", "y float labels", "y big-endian labels",
    "y wrong rows", "label out of range", "negative label", "batch above capacity",
])
def test_inputs_needing_conversion_or_checks_take_the_checked_path(change):
    model, opt, X, y = _warm()
    gen = fastbp.Dense.generation
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
    assert model._engine.train_step_fast(X, y, opt, gen) is None
    assert opt.step_count == 2          # nothing was applied


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_big_endian_inputs_train_like_native_ones(dtype):
    (a, opt_a), (b, opt_b) = _pair(dtype, "mse", lr=0.01)
    X, y = _data(dtype, labels=False)
    swapped = np.dtype(dtype).newbyteorder(">")
    for _ in range(3):
        a.train_step(X, y, opt_a)
        b.train_step(X.astype(swapped), y.astype(swapped), opt_b)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("label", [3, -1, 10**6])
def test_bad_labels_still_raise_after_fast_steps(label):
    model, opt, X, y = _warm()
    y = y.copy()
    y[5] = label
    before = [p.copy() for p in model.parameters()]
    with pytest.raises(ValueError, match="class labels must lie in"):
        model.train_step(X, y, opt)
    for a, b in zip(before, model.parameters()):
        np.testing.assert_array_equal(a, b)


def test_wrong_shapes_still_raise_after_fast_steps():
    model, opt, X, y = _warm()
    with pytest.raises(ValueError, match="features"):
        model.train_step(X[:, :4], y, opt)
    with pytest.raises(ValueError, match="rows like X"):
        model.train_step(X, y[:3], opt)
    with pytest.raises(TypeError, match="optimizer"):
        model.train_step(X, y, "adam")


def test_new_learning_rate_is_used_at_once():
    (a, opt_a), (b, opt_b) = _pair(np.float64, lr=0.01)
    X, y = _data(np.float64)
    for _ in range(3):
        a.train_step(X, y, opt_a)
        b.train_step(X.tolist(), y.tolist(), opt_b)
    opt_a.lr = opt_b.lr = 0.5
    assert not a._engine.is_bound_to(opt_a)
    for _ in range(3):
        a.train_step(X, y, opt_a)
        b.train_step(X.tolist(), y.tolist(), opt_b)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p, q)


def test_loaded_optimizer_state_is_rebound():
    model, opt, X, y = _warm()
    saved = opt.state_dict()
    snapshot = [p.copy() for p in model.parameters()]
    model.train_step(X, y, opt)
    first = [p.copy() for p in model.parameters()]
    # Back to the saved state: a new state tuple, which the engine must notice.
    for p, s in zip(model.parameters(), snapshot):
        p[...] = s
    opt.load_state_dict(saved)
    assert not model._engine.is_bound_to(opt)
    model.train_step(X, y, opt)
    for p, q in zip(model.parameters(), first):
        np.testing.assert_array_equal(p, q)


def test_replaced_parameter_array_rebuilds_the_engine():
    model, opt, X, y = _warm()
    engine = model._engine
    layer = model.layers[0]
    layer.W = np.zeros_like(layer.W)          # a new array; the old engine points elsewhere
    opt2 = Adam(model.parameters(), lr=0.01)
    assert engine.train_step_fast(X, y, opt2, fastbp.Dense.generation) is None
    model.train_step(X, y, opt2)
    assert model._engine is not engine
    assert np.any(layer.W != 0)               # the update reached the new array


def test_another_optimizer_is_bound_not_ignored():
    model, opt, X, y = _warm()
    sgd = SGD(model.parameters(), lr=0.1)
    assert model._engine.train_step_fast(X, y, sgd, fastbp.Dense.generation) is None
    W = model.layers[1].W.copy()
    model.train_step(X, y, sgd)
    dW = model.layers[1].dW
    np.testing.assert_array_equal(model.layers[1].W, W - np.float64(0.1) * dW)
    assert sgd.step_count == 1 and opt.step_count == 2


def test_non_int_step_count_takes_the_checked_path():
    model, opt, X, y = _warm()
    opt.step_count = np.int64(2)
    assert model._engine.train_step_fast(X, y, opt, fastbp.Dense.generation) is None
    model.train_step(X, y, opt)
    assert opt.step_count == 3


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
    X, _ = _data(np.float64)
    y = np.linspace(-1, 1, X.shape[0])
    if n_out == 1:
        model.train_step(X, y.reshape(-1, 1), opt)
        assert model._engine.train_step_fast(X, y, opt, fastbp.Dense.generation) is not None
    else:
        with pytest.raises(ValueError, match="shape"):
            model.train_step(X, y, opt)
