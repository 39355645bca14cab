"""The lean prediction path (Engine.predict_fast, tried first by forward, predict and
predict_proba): the same bits as the checked path, and every input it declines still
goes through the checked path."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import fastbp

from conftest import DTYPES, tol

KINDS = {"forward": 0, "predict_proba": 1, "predict": 2}


def non_contiguous(X: np.ndarray) -> np.ndarray:
    """The same values as a strided view: the fast path declines it, the checked path
    copies it and computes on the copy."""
    wide = np.repeat(X, 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous and np.array_equal(wide, X)
    return wide


def warmed(model, n):
    """The model with its engine built and its workspaces holding n rows."""
    model.forward(np.zeros((n, model.in_features), dtype=model.dtype))
    return model


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act, loss", [
    ("relu", "cross_entropy"), ("tanh", "binary_cross_entropy"), ("sigmoid", "mse"),
    ("gelu", "cross_entropy"), ("softplus", "huber"), ("leaky_relu", "binary_cross_entropy"),
    ("silu", "cross_entropy"), ("softmax", "mae")])
@pytest.mark.parametrize("n", [1, 16, 1000])
def test_fast_path_has_the_checked_paths_bits(act, loss, dtype, n):
    model = warmed(fastbp.MLP((12, 20, 7), act, loss, dtype=dtype, seed=3), n)
    X = (np.random.default_rng(n).standard_normal((n, 12)) * 3).astype(dtype)
    engine = model._engine
    methods = ["forward", "predict"]
    if loss in ("cross_entropy", "binary_cross_entropy"):
        methods.append("predict_proba")
    for method in methods:
        # the fast path really takes this input...
        direct = engine.predict_fast(X, KINDS[method])
        assert direct is not None, method
        fast = getattr(model, method)(X)
        checked = getattr(model, method)(non_contiguous(X))
        assert fast.dtype == checked.dtype and fast.shape == checked.shape, method
        np.testing.assert_array_equal(fast, checked, err_msg=method)
        np.testing.assert_array_equal(direct, checked, err_msg=method)
        assert fast.flags.c_contiguous and fast.flags.writeable and fast.flags.owndata
    # a fresh array each call: writing into one result changes no other
    a, b = model.forward(X), model.forward(X)
    a[...] = 0
    assert not np.shares_memory(a, b) and np.any(b != 0)


def test_predict_labels_follow_numpy_argmax_with_nan():
    model = warmed(fastbp.MLP((4, 6, 5), "relu", "cross_entropy", dtype=np.float64, seed=1), 8)
    X = np.random.default_rng(0).standard_normal((8, 4))
    model.layers[-1].b[3] = np.nan   # column 3 NaN in every row: NumPy's argmax picks it
    X[2, :] = np.nan                 # a row that is NaN throughout: index 0
    out = model.forward(X, check_finite=False)
    labels = model.predict(X, check_finite=False)
    np.testing.assert_array_equal(labels, out.argmax(axis=1))
    assert labels[0] == 3 and labels[2] == 0
    bce = warmed(fastbp.MLP((4, 6, 3), "tanh", "binary_cross_entropy", seed=1), 8)
    X32 = X.astype(np.float32)
    np.testing.assert_array_equal(bce.predict(X32, check_finite=False),
                                  (bce.forward(X32, check_finite=False) > 0).astype(np.intp))


@pytest.mark.parametrize("dtype", DTYPES)
def test_declined_inputs_take_the_checked_path(dtype):
    model = warmed(fastbp.MLP((3, 5, 4), "tanh", "cross_entropy", dtype=dtype, seed=0), 4)
    X = np.random.default_rng(1).standard_normal((4, 3)).astype(dtype)
    expected = model.predict_proba(X)
    other = np.float64 if dtype == np.float32 else np.float32
    variants = {
        "list": X.tolist(),
        "other dtype": X.astype(other),
        "fortran": np.asfortranarray(X),
        "strided": non_contiguous(X),
        "byte-swapped": X.astype(np.dtype(dtype).newbyteorder()),
        "subclass": X.view(type("Sub", (np.ndarray,), {})),
        "read-only": np.frombuffer(X.tobytes(), dtype=dtype).reshape(X.shape),
    }
    for label, Xv in variants.items():
        got = model.predict_proba(Xv)
        # float32 precision whatever the model's dtype: "other dtype" rounds X to float32
        np.testing.assert_allclose(got, expected, rtol=tol(np.float32, "path_rtol"),
                                   err_msg=label)
    # misaligned data: declined (not aligned), computed on an aligned copy
    raw = np.zeros(X.nbytes + 1, dtype=np.uint8)
    mis = raw[1:].view(dtype).reshape(X.shape)
    mis[...] = X
    assert not mis.flags.aligned
    np.testing.assert_array_equal(model.predict_proba(mis), expected)
    # more rows than the workspaces hold: the checked path grows them
    big = np.tile(X, (50, 1))
    np.testing.assert_array_equal(model.predict_proba(big)[:4], expected)
    # empty and wrong inputs behave as before
    assert model.predict_proba(np.empty((0, 3), dtype=dtype)).shape == (0, 4)
    assert model.predict(np.empty((0, 3), dtype=dtype)).shape == (0,)
    with pytest.raises(ValueError, match="3 features"):
        model.predict(np.zeros((2, 4), dtype=dtype))
    with pytest.raises(ValueError, match="2-dimensional"):
        model.forward(np.zeros(3, dtype=dtype))
    with pytest.raises(TypeError, match="real numbers"):
        model.forward(np.array([["a", "b", "c"]]))


def test_regression_model_declines_predict_proba_but_predicts():
    model = warmed(fastbp.MLP((3, 4, 2), "relu", "mse", seed=0), 2)
    X = np.ones((2, 3), dtype=np.float32)
    assert model._engine.predict_fast(X, 1) is None
    with pytest.raises(ValueError, match="predict_proba needs a cross-entropy loss"):
        model.predict_proba(X)
    np.testing.assert_array_equal(model.predict(X), model.forward(X))


def test_new_parameters_and_num_threads_are_honoured():
    model = warmed(fastbp.MLP((3, 4, 2), "relu", "mse", dtype=np.float64, seed=0), 2)
    X = np.ones((2, 3))
    before = model.forward(X)
    # an assignment copies into the live array the engine reads
    model.layers[-1].b = model.layers[-1].b + 1.0
    np.testing.assert_allclose(model.forward(X), before + 1.0, rtol=tol(np.float64, "exact_rtol"))
    # in-place changes are seen directly (the engine points into the live arrays)
    model.layers[-1].b[...] += 1.0
    np.testing.assert_allclose(model.forward(X), before + 2.0, rtol=tol(np.float64, "exact_rtol"))
    # num_threads set: the checked path, which applies it, gives the same values
    model.num_threads = 1
    np.testing.assert_array_equal(model.forward(X), before + 2.0)


def test_fast_predictions_from_threads_equal_serial():
    model = warmed(fastbp.MLP((16, 32, 10), "relu", "cross_entropy", seed=0), 64)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((int(rng.integers(1, 64)), 16)).astype(np.float32)
               for _ in range(40)]
    serial = [model.predict_proba(b) for b in batches]
    results: dict[int, list[np.ndarray]] = {}

    def worker(t):
        results[t] = [model.predict_proba(b) for b in batches for _ in range(5)][::5]

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t in range(4):
        for got, want in zip(results[t], serial):
            np.testing.assert_array_equal(got, want)


def test_a_held_lock_sends_the_call_to_wait_on_the_checked_path():
    model = warmed(fastbp.MLP((4, 6, 3), "relu", "cross_entropy", seed=0), 2)
    X = np.ones((2, 4), dtype=np.float32)
    expected = model.predict_proba(X)
    assert model._engine.predict_fast(X, 1, model._lock) is not None
    assert not model._lock.locked()          # released after the call
    done = threading.Event()
    result = {}

    def call():
        result["proba"] = model.predict_proba(X)
        done.set()

    with model._lock:
        assert model._engine.predict_fast(X, 1, model._lock) is None
        worker = threading.Thread(target=call)
        worker.start()
        assert not done.wait(0.2)            # waits for the lock (each call atomic)
    worker.join(10)
    assert done.is_set()
    np.testing.assert_array_equal(result["proba"], expected)
    # a failing call inside the lock releases it (the checks raise nothing, but a
    # bad kind is declined and the lock is free again)
    assert model._engine.predict_fast(X, 7, model._lock) is None
    assert not model._lock.locked()


def test_a_subclass_forward_is_still_called_by_predict():
    class Shifted(fastbp.Sequential):
        def forward(self, X):
            return super().forward(X) + 1.0

    model = Shifted([fastbp.Dense(3, 4, "relu", seed=0), fastbp.Dense(4, 2, seed=1)],
                    "cross_entropy")
    X = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    base = fastbp.Sequential(model.layers, "cross_entropy")
    model.forward(X)  # engine built: the fast path is available, but must not be taken
    np.testing.assert_array_equal(model.forward(X), base.forward(X) + np.float32(1.0))
    np.testing.assert_array_equal(model.predict(X), (base.forward(X) + 1.0).argmax(axis=1))
