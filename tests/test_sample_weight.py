"""Sample weights in the core (as the public API specifies them): ops and reference agree, the
gradient is the weighted loss's derivative, None and all-ones weights give exactly the
unweighted bits, integer weights equal repeated rows, and bad weights are refused."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import ops, reference

from conftest import param_copies, tol, tols

H = 1e-6


def loss_case(name, rng, n=6, k=3):
    o = rng.uniform(-3, 3, (n, k))
    if name == "cross_entropy":
        return o, rng.integers(0, k, n)
    if name == "binary_cross_entropy":
        return o, rng.uniform(0, 1, (n, k))
    if name == "poisson":
        return o, rng.uniform(0, 4, (n, k))
    t = rng.uniform(-3, 3, (n, k))
    r = o - t   # away from mae's and huber's kinks
    r = np.where(np.abs(r) < 0.05, 0.3, r)
    r = np.where(np.abs(np.abs(r) - 1) < 0.05, 1.5 * np.sign(r), r)
    return t + r, t


def weights(rng, n):
    w = rng.uniform(0, 3, n)
    w[1] = 0.0   # a zero weight drops its sample
    return w


@pytest.mark.parametrize("name", fastbp.LOSSES)
@pytest.mark.parametrize("seed", range(3))
def test_weighted_ops_match_reference(name, seed):
    rng = np.random.default_rng(seed)
    o, t = loss_case(name, rng)
    w = weights(rng, o.shape[0])
    loss, grad = ops.loss_forward_backward(name, o, t, w)
    eloss, egrad = reference.loss_forward_backward(name, o, t, w)
    assert loss == pytest.approx(eloss, rel=tol(np.float64))
    np.testing.assert_allclose(grad, egrad, rtol=tol(np.float64),
                               atol=tol(np.float64, "formula_atol"))
    # the definition: Σ w_i ℓ_i / Σ w_i, ℓ_i the loss of row i alone
    rows = [ops.loss_forward_backward(name, o[i:i + 1], t[i:i + 1])[0] for i in range(len(w))]
    assert loss == pytest.approx(np.dot(w, rows) / w.sum(),
                                 rel=tol(np.float64, "formula_rtol"))
    # float32 against the float64 reference
    loss32, grad32 = ops.loss_forward_backward(name, o.astype(np.float32),
                                               t.astype(np.float32) if t.dtype.kind == "f" else t, w)
    assert grad32.dtype == np.float32
    assert loss32 == pytest.approx(eloss, rel=tol(np.float32, "lossy_rtol"))


@pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
@pytest.mark.parametrize("name", fastbp.LOSSES)
def test_weighted_gradient_against_finite_differences(module, name):
    rng = np.random.default_rng(7)
    o, t = loss_case(name, rng)
    w = weights(rng, o.shape[0])
    _, grad = module.loss_forward_backward(name, o, t, w)
    want = np.empty_like(o)
    for idx in np.ndindex(o.shape):
        old = o[idx]
        o[idx] = old + H
        fp = module.loss_forward_backward(name, o, t, w)[0]
        o[idx] = old - H
        fm = module.loss_forward_backward(name, o, t, w)[0]
        o[idx] = old
        want[idx] = (fp - fm) / (2 * H)
    np.testing.assert_allclose(grad, want, **tols(np.float64, "fd"))


@pytest.mark.parametrize("name", fastbp.LOSSES)
def test_ones_are_the_unweighted_bits(name):
    rng = np.random.default_rng(1)
    o, t = loss_case(name, rng)
    a = ops.loss_forward_backward(name, o, t)
    b = ops.loss_forward_backward(name, o, t, np.ones(o.shape[0]))
    assert a[0] == b[0] and np.array_equal(a[1], b[1])


def _data(loss, rng, n=24):
    X = rng.normal(size=(n, 4))
    if loss == "cross_entropy":
        return X, rng.integers(0, 3, n), 3
    if loss == "binary_cross_entropy":
        return X, (rng.random((n, 2)) > 0.5).astype(float), 2
    if loss == "poisson":
        return X, rng.poisson(2.0, (n, 2)).astype(float), 2
    return X, rng.normal(size=(n, 2)), 2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", fastbp.LOSSES)
def test_model_ones_are_bit_identical(loss, dtype):
    rng = np.random.default_rng(2)
    X, y, k = _data(loss, rng)
    runs = []
    for w in (None, np.ones(len(X))):
        model = fastbp.MLP((4, 5, k), "tanh", loss, dtype=dtype, seed=3)
        value = model.backward(X, y, sample_weight=w)
        grads = [g.copy() for g in model.gradients()]
        opt = fastbp.Adam(model.parameters(), lr=0.01)
        step = model.train_step(X, y, opt, sample_weight=w)
        hist = model.fit(X, y, epochs=2, batch_size=5, optimizer="sgd", lr=0.05, seed=0,
                         progress=False, sample_weight=w)
        runs.append((value, grads, step, hist.loss, param_copies(model),
                     model.loss(X, y, sample_weight=w)))
    (v1, g1, s1, h1, p1, l1), (v2, g2, s2, h2, p2, l2) = runs
    assert v1 == v2 and s1 == s2 and h1 == h2 and l1 == l2
    assert all(np.array_equal(a, b) for a, b in zip(g1 + p1, g2 + p2))


@pytest.mark.parametrize("loss", fastbp.LOSSES)
def test_integer_weights_equal_repeated_rows(loss):
    """Full batch: weight m_i ≡ row i repeated m_i times (so weight 0 ≡ dropped)."""
    rng = np.random.default_rng(4)
    X, y, k = _data(loss, rng, n=12)
    m = rng.integers(0, 4, len(X))
    m[0] = 2
    reps = np.repeat(np.arange(len(X)), m)
    a = fastbp.MLP((4, 5, k), "relu", loss, dtype="float64", seed=1)
    b = fastbp.MLP((4, 5, k), "relu", loss, dtype="float64", seed=1)
    va = a.backward(X, y, sample_weight=m)
    vb = b.backward(X[reps], y[reps])
    assert va == pytest.approx(vb, rel=tol(np.float64, "reordered_rtol"))
    for ga, gb in zip(a.gradients(), b.gradients()):
        np.testing.assert_allclose(ga, gb, **tols(np.float64, "reordered"))
    a.fit(X, y, epochs=3, batch_size=None, optimizer="adam", lr=0.01, progress=False,
          sample_weight=m)
    b.fit(X[reps], y[reps], epochs=3, batch_size=None, optimizer="adam", lr=0.01,
          progress=False)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa, pb, **tols(np.float64, "reordered"))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy", "poisson"])
def test_epoch_gathers_each_batchs_weights(loss):
    """fit's compiled epoch == train_step per batch with that batch's weights (the weighted
    mean runs over each batch, scikit-learn's convention)."""
    rng = np.random.default_rng(5)
    X, y, k = _data(loss, rng, n=23)
    w = rng.uniform(0.1, 3, len(X))
    a = fastbp.MLP((4, 6, k), "tanh", loss, dtype="float64", seed=2)
    b = fastbp.MLP((4, 6, k), "tanh", loss, dtype="float64", seed=2)
    hist = a.fit(X, y, epochs=1, batch_size=5, optimizer="sgd", lr=0.1, shuffle=True, seed=9,
                 progress=False, sample_weight=w)
    order = np.random.default_rng(9).permutation(len(X))
    opt = fastbp.SGD(b.parameters(), lr=0.1)
    total = 0.0
    for s in range(0, len(X), 5):
        idx = order[s:s + 5]
        total += b.train_step(X[idx], y[idx], opt, sample_weight=w[idx]) * len(idx)
    assert hist.loss[0] == pytest.approx(total / len(X), rel=tol(np.float64, "path_rtol"))
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa, pb, **tols(np.float64, "path"))


BAD = [
    (np.ones(5), ValueError, "shape"),
    (np.ones((6, 1)), ValueError, "shape"),
    (np.r_[np.ones(5), -1.0], ValueError, ">= 0"),
    (np.r_[np.ones(5), np.nan], ValueError, "finite"),
    (np.r_[np.ones(5), np.inf], ValueError, "finite"),
    (np.zeros(6), ValueError, "positive sum"),
    (np.array(["a"] * 6), TypeError, "real numbers"),
    (np.ones(6, dtype=complex), TypeError, "real numbers"),
]


@pytest.mark.parametrize("w, exc, words", BAD, ids=[b[2] + str(i) for i, b in enumerate(BAD)])
def test_bad_weights_are_refused(w, exc, words):
    rng = np.random.default_rng(0)
    o, t = loss_case("mse", rng)
    model = fastbp.MLP((3, 2, 3), dtype="float64", seed=0)
    calls = [lambda: ops.loss_forward_backward("mse", o, t, w),
             lambda: reference.loss_forward_backward("mse", o, t, w),
             lambda: model.backward(o, t, sample_weight=w),
             lambda: model.loss(o, t, sample_weight=w),
             lambda: model.train_step(o, t, fastbp.SGD(model.parameters()), sample_weight=w),
             lambda: model.fit(o, t, epochs=1, progress=False, sample_weight=w)]
    for call in calls:
        with pytest.raises(exc, match="sample_weight") as info:
            call()
        assert words in str(info.value)


def test_poisson_target_must_be_non_negative():
    o = np.zeros((2, 1))
    for module in (ops, reference):
        with pytest.raises(ValueError, match=">= 0"):
            module.loss_forward_backward("poisson", o, np.array([[1.0], [-1.0]]))
    model = fastbp.MLP((1, 1), loss="poisson", dtype="float64", seed=0)
    with pytest.raises(ValueError, match="y for the poisson loss"):
        model.fit(o, np.array([1.0, -1.0]), epochs=1, progress=False)


def test_poisson_model_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    X, y, k = _data("poisson", rng)
    model = fastbp.MLP((4, 5, k), "relu", "poisson", dtype="float64", seed=0)
    model.fit(X, y, epochs=2, batch_size=8, progress=False)
    model.save(tmp_path / "m.fbp")
    back = fastbp.load(tmp_path / "m.fbp")
    assert back.loss_name == "poisson"
    np.testing.assert_array_equal(back.forward(X), model.forward(X))
    assert back.loss(X, y) == model.loss(X, y)
