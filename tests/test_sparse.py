"""Sparse input (scipy.sparse CSR/CSC/...): the first Dense layer's compiled sparse
kernels against the reference's formulas, models and ensembles trained on a sparse
matrix against the same matrix dense, fastbp.sklearn's sparse fits against
scikit-learn's own sparse fits, bad input, and training a matrix whose dense form
could not be held in memory."""
from __future__ import annotations

import pickle
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastbp
from fastbp import ops
from fastbp import reference as ref
from fastbp._sparse import SparseRows

from conftest import ACTIVATIONS, DTYPES, tols


def _sparse(n, d, density=0.1, dtype=np.float64, seed=0, fmt="csr"):
    return sp.random(n, d, density=density, format=fmt, random_state=seed, dtype=dtype)


def _labels(X, k=3):
    s = np.asarray(X.sum(axis=1)).ravel()
    return np.digitize(s, np.quantile(s, np.linspace(0, 1, k + 1)[1:-1]))


# ------------------------------------------------------------------ kernels
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_dense_layer_matches_the_reference(dtype, activation):
    X = _sparse(37, 50, 0.15, dtype).tolil()
    X[3] = 0   # an empty row
    X = sp.csr_matrix(X)
    rng = np.random.default_rng(1)
    W = rng.normal(size=(50, 9)).astype(dtype)
    b = rng.normal(size=9).astype(dtype)
    Z, A = ops.dense_forward(X, W, b, activation)
    Zr, Ar = ref.dense_forward(X, W, b, activation)
    np.testing.assert_allclose(Z, Zr, **tols(dtype, "layer"))
    np.testing.assert_allclose(A, Ar, **tols(dtype, "layer"))
    # the same numbers as the dense kernels on X's dense form
    Zd, _ = ops.dense_forward(X.toarray(), W, b, activation)
    np.testing.assert_allclose(Z, Zd, **tols(dtype, "layer"))
    dA = rng.normal(size=A.shape).astype(dtype)
    for need_dX in (True, False):
        got = ops.dense_backward(X, W, Z, A, dA, activation, need_dX)
        want = ref.dense_backward(X, W, Zr, Ar, dA, activation, need_dX)
        assert (got[0] is None) == (not need_dX)
        for g, w in zip(got, want):
            if w is not None:
                np.testing.assert_allclose(g, w, **tols(dtype, "layer"))


def test_sparse_kernels_read_duplicates_unsorted_indices_and_every_format():
    dense = np.zeros((3, 4))
    dense[0, 1], dense[2, 3], dense[2, 0] = 2.0, -1.0, 0.5
    # row 0 holds column 1 twice (1.5 + 0.5), in unsorted order with column 3
    X = sp.csr_matrix((np.array([1.5, 0.0, 0.5, 0.5, -1.0]), np.array([1, 3, 1, 0, 3]),
                       np.array([0, 3, 3, 5])), shape=(3, 4))
    W = np.arange(8.0).reshape(4, 2)
    b = np.array([0.25, -0.25])
    np.testing.assert_allclose(ops.dense_forward(X, W, b, "identity")[0], dense @ W + b,
                               rtol=1e-15)
    for make in (sp.csc_matrix, sp.coo_matrix, sp.lil_matrix, sp.csr_array, sp.dok_array):
        form = make(X.copy())   # (some conversions sum X's duplicates in place)
        np.testing.assert_allclose(ops.dense_forward(form, W, b, "identity")[0],
                                   form.toarray() @ W + b, rtol=1e-15)


def test_sparse_rows_are_private_and_checked():
    X = _sparse(5, 6, 0.5)
    rows = SparseRows(X.data, X.indptr, X.indices, 5, 6)
    X.data[:] = 99.0   # the caller's arrays change: the kernels' copy does not
    assert not (rows.data == 99.0).any()
    assert pickle.loads(pickle.dumps(rows)).shape == (5, 6)
    with pytest.raises(ValueError, match="column indices"):
        SparseRows(X.data, X.indptr, X.indices + 6, 5, 6)
    with pytest.raises(ValueError, match="indptr"):
        SparseRows(X.data, X.indptr[::-1], X.indices, 5, 6)
    with pytest.raises(ValueError, match="indptr of shape"):
        SparseRows(X.data, X.indptr, X.indices, 4, 6)
    with pytest.raises(TypeError, match="integers"):
        SparseRows(X.data, X.indptr.astype(float), X.indices, 5, 6)
    with pytest.raises(TypeError, match="float32 or float64"):
        SparseRows(X.data.astype(int), X.indptr, X.indices, 5, 6)


# ------------------------------------------------------------------ models
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_model_trains_on_sparse_x_as_on_its_dense_form(dtype, fmt):
    X = _sparse(200, 60, 0.1, np.float64, fmt=fmt)
    y = _labels(X)
    w = np.random.default_rng(2).uniform(0.5, 2.0, 200)
    fits = []
    for data in (X, X.toarray()):
        model = fastbp.MLP([60, 12, 3], "tanh", "cross_entropy", seed=0, dtype=dtype,
                           dropout=0.1)
        history = model.fit(data, y, epochs=3, batch_size=32, seed=1, sample_weight=w,
                            validation_data=(data[:40], y[:40]))
        fits.append((model, history))
    (sparse_model, hs), (dense_model, hd) = fits
    for p, q in zip(sparse_model.parameters(), dense_model.parameters()):
        np.testing.assert_allclose(p, q, **tols(dtype, "model"))
    np.testing.assert_allclose(hs.loss, hd.loss, **tols(dtype, "model"))
    np.testing.assert_allclose(hs.val_loss, hd.val_loss, **tols(dtype, "model"))
    D = X.toarray()
    np.testing.assert_allclose(sparse_model.forward(X), sparse_model.forward(D),
                               **tols(dtype, "model"))
    np.testing.assert_array_equal(sparse_model.predict(X[:50]), sparse_model.predict(D[:50]))
    np.testing.assert_allclose(sparse_model.predict_proba(X), sparse_model.predict_proba(D),
                               **tols(dtype, "model"))
    assert sparse_model.loss(X, y) == pytest.approx(sparse_model.loss(D, y),
                                                    rel=tols(dtype, "model")["rtol"])


def test_train_step_backward_and_lbfgs_take_sparse_x():
    X = _sparse(80, 30, 0.2)
    y = np.asarray(X.sum(axis=1)).ravel()
    a = fastbp.MLP([30, 8, 1], "relu", "mse", seed=0, dtype="float64")
    b = fastbp.MLP([30, 8, 1], "relu", "mse", seed=0, dtype="float64")
    la, lb = a.backward(X, y), b.backward(X.toarray(), y)
    assert la == pytest.approx(lb, rel=1e-12)
    for g, h in zip(a.gradients(), b.gradients()):
        np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-15)
    opt_a, opt_b = fastbp.Adam(a.parameters()), fastbp.Adam(b.parameters())
    a.train_step(X[:16], y[:16], opt_a)
    b.train_step(X[:16].toarray(), y[:16], opt_b)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-15)
    a.fit(X, y, optimizer="lbfgs", epochs=5)
    b.fit(X.toarray(), y, optimizer="lbfgs", epochs=5)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12)


def test_an_ensemble_fits_sparse_x_as_dense():
    X = _sparse(150, 40, 0.1)
    y = _labels(X, 2)
    make = lambda: fastbp.Ensemble([fastbp.MLP([40, 8, 2], "relu", "cross_entropy", seed=s,
                                               dtype="float64") for s in range(3)])
    sparse_fit, dense_fit = make(), make()
    sparse_fit.fit(X, y, epochs=2, batch_size=16, seed=0)
    dense_fit.fit(X.toarray(), y, epochs=2, batch_size=16, seed=0)
    for m, n in zip(sparse_fit.models, dense_fit.models):
        for p, q in zip(m.parameters(), n.parameters()):
            np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(sparse_fit.predict_proba(X), dense_fit.predict_proba(X.toarray()),
                               rtol=1e-12)


def test_bad_sparse_input_is_refused_by_name():
    model = fastbp.MLP([20, 4, 1], "relu", "mse", seed=0)
    X = _sparse(10, 20, 0.3)
    with pytest.raises(ValueError, match="X must have 20 features"):
        model.predict(_sparse(10, 19, 0.3))
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        model.fit(bad, np.zeros(10))
    with pytest.raises(ValueError, match="validation_data X contains NaN"):
        model.fit(X, np.zeros(10), validation_data=(bad, np.zeros(10)))
    with pytest.raises(ValueError, match="too large for float32"):
        model.predict(sp.csr_matrix(np.full((2, 20), 1e300)))
    with pytest.raises(TypeError, match="real numbers"):
        model.predict(sp.csr_matrix(np.ones((2, 20), dtype=complex)))
    with pytest.raises(TypeError, match="jacobian takes dense X"):
        model.jacobian(X)
    with pytest.raises(TypeError, match=r"derivatives \(dy\) takes dense X"):
        model.fit(X, np.zeros(10), dy=np.zeros((10, 1, 20)))
    with pytest.raises(TypeError, match="X is sparse: this takes a dense array"):
        model.layers[0].forward(X)
    assert model.predict(X[:0]).shape == (0,)
    model.fit(X, np.zeros(10), epochs=1)   # a failed call leaves the model usable


# ------------------------------------------------------------------ scikit-learn
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sklearn_sparse_fits_equal_scikit_learns(fmt, solver, early_stopping):
    skn = pytest.importorskip("sklearn.neural_network")
    from fastbp import sklearn as fbs
    X = _sparse(300, 70, 0.05, fmt=fmt)
    targets = {"MLPClassifier": _labels(X), "MLPRegressor": np.asarray(X.sum(axis=1)).ravel()}
    for cls, y in targets.items():
        kw = dict(hidden_layer_sizes=(16,), solver=solver, max_iter=12, random_state=0,
                  early_stopping=early_stopping, learning_rate_init=0.01)
        ours = getattr(fbs, cls)(**kw).fit(X, y)
        theirs = getattr(skn, cls)(**kw).fit(X, y)
        assert ours.n_iter_ == theirs.n_iter_
        for p, q in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
            np.testing.assert_allclose(p, q, **tols(np.float64, "sklearn"))
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6)
        assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-6)
        if solver != "lbfgs" and not early_stopping:
            ours.partial_fit(X, y)
            theirs.partial_fit(X, y)
            np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0],
                                       **tols(np.float64, "sklearn"))
    assert fbs.MLPClassifier().__sklearn_tags__().input_tags.sparse


# ------------------------------------------------------------------ memory
def test_a_matrix_too_large_to_densify_trains():
    """100,000 x 50,000 at 0.1% non-zeros: 20 GB dense in float32, 5 million stored values. One
    epoch's peak NumPy allocation stays within a small multiple of the CSR arrays."""
    n, d, per_row = 100_000, 50_000, 50   # 0.1% of each row
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random(n * per_row, dtype=np.float32),
                       rng.integers(0, d, n * per_row), np.arange(0, n * per_row + 1, per_row)),
                      shape=(n, d))
    y = (np.asarray(X.sum(axis=1)).ravel() > 25).astype(np.intp)
    model = fastbp.MLP([50_000, 16, 2], "relu", "cross_entropy", seed=0, dtype="float32")
    csr_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # no densifying warning either
            history = model.fit(X, y, epochs=1, batch_size=256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(history.loss[0])
    dense_bytes = X.shape[0] * X.shape[1] * 4
    assert peak < 4 * csr_bytes + 64 * 2**20, (peak, csr_bytes)
    assert peak < dense_bytes / 100
