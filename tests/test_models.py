"""Tests for fastbp.Sequential and fastbp.MLP: structure, backward against a hand-chained
fastbp.reference computation, gradcheck, predictions, targets, live parameters and
train_step (the public API of layers and models)."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import fastbp
from fastbp import reference

from conftest import (ACTIVATIONS, DTYPES, assert_model_close, assert_same_params, clone,
                      make_data, param_copies, tol, tols)

LOSSES = ("mse", "mae", "huber", "binary_cross_entropy", "cross_entropy")
REGRESSION = ("mse", "mae", "huber")


def random_biases(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.b[...] = rng.normal(scale=0.3, size=layer.b.shape)


def hand_chain(model, X, y):
    """Loss and [dW1, db1, ...] through fastbp.reference, layer by layer."""
    X = np.asarray(X, dtype=model.dtype)
    acts, zs, ins = [], [], []
    out = X
    for layer in model.layers:
        Z, A = reference.dense_forward(out, layer.W, layer.b, layer.activation)
        ins.append(out)
        zs.append(Z)
        acts.append(A)
        out = A
    y = np.asarray(y)
    if y.ndim == 2 or model.loss_name != "cross_entropy":
        y = y.astype(model.dtype)
    loss, grad = reference.loss_forward_backward(model.loss_name, out, y)
    grads = []
    for i in range(len(model.layers) - 1, -1, -1):
        layer = model.layers[i]
        grad, dW, db = reference.dense_backward(ins[i], layer.W, zs[i], acts[i], grad,
                                                layer.activation, need_dX=i > 0)
        grads = [dW, db] + grads
    return loss, grads




# ---------------------------------------------------------------- structure

def test_mlp_structure():
    model = fastbp.MLP((4, 6, 5, 3), "tanh", loss="cross_entropy", seed=0)
    assert len(model.layers) == 3
    assert [(la.in_features, la.out_features) for la in model.layers] == [(4, 6), (6, 5), (5, 3)]
    assert [la.activation for la in model.layers] == ["tanh", "tanh", "identity"]
    assert all(isinstance(la, fastbp.Dense) for la in model.layers)
    assert isinstance(model, fastbp.Sequential)
    assert model.loss_name == "cross_entropy"
    assert model.dtype == np.float32
    assert [la.W.dtype for la in model.layers] == [np.float32] * 3


def test_mlp_equals_sequential_of_dense():
    mlp = fastbp.MLP((4, 7, 3), "relu", loss="mse", dtype="float64", seed=0)
    seq = fastbp.Sequential([fastbp.Dense(4, 7, "relu", dtype="float64"),
                             fastbp.Dense(7, 3, dtype="float64")], loss="mse")
    assert repr(seq) == repr(mlp)
    for a, b in zip(seq.parameters(), mlp.parameters()):
        a[...] = b
    X, y = make_data("mse", 6, 4, 3, np.float64)
    np.testing.assert_array_equal(seq.forward(X), mlp.forward(X))
    assert seq.backward(X, y) == mlp.backward(X, y)
    for a, b in zip(seq.gradients(), mlp.gradients()):
        np.testing.assert_array_equal(a, b)


def test_mlp_default_activation_is_relu_and_loss_mse():
    model = fastbp.MLP((3, 4, 2))
    assert model.layers[0].activation == "relu"
    assert model.layers[-1].activation == "identity"
    assert model.loss_name == "mse"
    assert model.dtype == np.float32


def test_mlp_seed_reproducible():
    a = fastbp.MLP((5, 8, 2), seed=3)
    b = fastbp.MLP((5, 8, 2), seed=3)
    c = fastbp.MLP((5, 8, 2), seed=4)
    assert_same_params(a, b)
    assert not np.array_equal(a.parameters()[0], c.parameters()[0])
    # layers of one MLP are not all drawn from the same stream position
    d = fastbp.MLP((5, 5, 5), "tanh", seed=3)
    assert not np.array_equal(d.layers[0].W, d.layers[1].W)


def test_mlp_single_layer():
    model = fastbp.MLP((3, 2), "tanh")
    assert len(model.layers) == 1 and model.layers[0].activation == "identity"


@pytest.mark.parametrize("sizes, exc, match", [
    ((3,), ValueError, "sizes"),
    ((), ValueError, "sizes"),
    ((3, 0, 2), ValueError, "sizes"),
    ((3, "4", 2), TypeError, "sizes"),
    ((3, 2.5), TypeError, "sizes"),
])
def test_mlp_bad_sizes(sizes, exc, match):
    with pytest.raises(exc, match=match):
        fastbp.MLP(sizes)


def test_mlp_bad_activation_loss_dtype():
    with pytest.raises(ValueError, match="activation"):
        fastbp.MLP((3, 2), "swish")
    with pytest.raises(ValueError, match="loss"):
        fastbp.MLP((3, 2), loss="hinge")
    with pytest.raises(TypeError, match="dtype"):
        fastbp.MLP((3, 2), dtype="int64")


def test_sequential_validates_chaining():
    with pytest.raises(ValueError, match="layers"):
        fastbp.Sequential([fastbp.Dense(3, 4), fastbp.Dense(5, 2)])


def test_sequential_validates_dtypes():
    with pytest.raises(TypeError, match="dtype"):
        fastbp.Sequential([fastbp.Dense(3, 4, dtype="float32"), fastbp.Dense(4, 2, dtype="float64")])


@pytest.mark.parametrize("layers", [[], [object()], "abc", [fastbp.Dense(2, 2), "dense"]])
def test_sequential_rejects_non_layers(layers):
    with pytest.raises(TypeError, match="layers"):
        fastbp.Sequential(layers)


def test_sequential_unknown_loss():
    with pytest.raises(ValueError, match="loss"):
        fastbp.Sequential([fastbp.Dense(2, 2)], loss="cross-entropy")


def test_sequential_shapes():
    model = fastbp.Sequential([fastbp.Dense(3, 4, "tanh", dtype="float64"),
                               fastbp.Dense(4, 2, dtype="float64")])
    assert model.loss_name == "mse"
    assert model.dtype == np.float64
    assert model.forward(np.ones((5, 3))).shape == (5, 2)
    assert model.forward(np.ones((5, 3))).dtype == np.float64


# ---------------------------------------------------------------- backward vs hand chain

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "gelu", "softmax"])
@pytest.mark.parametrize("loss", LOSSES)
def test_backward_matches_hand_chain(loss, act, dtype):
    model = fastbp.MLP((5, 7, 6, 3), act, loss, dtype=dtype, seed=1)
    random_biases(model, 2)
    X, y = make_data(loss, 9, 5, 3, dtype, seed=3)
    grads_before = model.gradients()
    got = model.backward(X, y)
    assert isinstance(got, float)
    ref_loss, ref_grads = hand_chain(model, X, y)
    assert_model_close(got, ref_loss, dtype, "loss")
    for i, (g, r) in enumerate(zip(model.gradients(), ref_grads)):
        assert g.dtype == dtype and g.shape == r.shape
        assert_model_close(g, r, dtype, f"gradient {i}")
    # the same (live) arrays as before, and as each layer's dW/db
    assert all(a is b for a, b in zip(model.gradients(), grads_before))
    assert all(g is a for g, a in zip(model.gradients(),
                                      [x for la in model.layers for x in (la.dW, la.db)]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_matches_hand_chain_ce_probabilities(dtype):
    model = fastbp.MLP((4, 6, 5), "elu", "cross_entropy", dtype=dtype, seed=4)
    random_biases(model, 5)
    X, y = make_data("cross_entropy", 8, 4, 5, dtype, seed=6, probs=True)
    got = model.backward(X, y)
    ref_loss, ref_grads = hand_chain(model, X, y)
    assert_model_close(got, ref_loss, dtype)
    for g, r in zip(model.gradients(), ref_grads):
        assert_model_close(g, r, dtype)


def test_backward_overwrites_not_accumulates():
    model = fastbp.MLP((3, 4, 2), "tanh", dtype="float64", seed=0)
    X, y = make_data("mse", 5, 3, 2, np.float64)
    model.backward(X, y)
    first = [g.copy() for g in model.gradients()]
    model.backward(X, y)
    for a, b in zip(first, model.gradients()):
        np.testing.assert_array_equal(a, b)


def test_backward_single_sample_and_big_batch():
    model = fastbp.MLP((3, 4, 2), "silu", "huber", dtype="float64", seed=0)
    for n in (1, 300):
        X, y = make_data("huber", n, 3, 2, np.float64, seed=n)
        assert_model_close(model.backward(X, y), hand_chain(model, X, y)[0], np.float64)
        for g, r in zip(model.gradients(), hand_chain(model, X, y)[1]):
            assert_model_close(g, r, np.float64)


def test_forward_matches_hand_chain_and_is_fresh():
    model = fastbp.MLP((3, 5, 2), "softplus", dtype="float64", seed=2)
    random_biases(model)
    X = np.random.default_rng(0).normal(size=(4, 3))
    out1 = model.forward(X)
    A = X
    for layer in model.layers:
        A = reference.dense_forward(A, layer.W, layer.b, layer.activation)[1]
    assert_model_close(out1, A, np.float64)
    out1_copy = out1.copy()
    model.forward(X * 2)
    np.testing.assert_array_equal(out1, out1_copy)   # the returned array is not reused


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_converted(dtype):
    model = fastbp.MLP((3, 4, 2), "tanh", dtype=dtype, seed=0)
    X, y = make_data("mse", 5, 3, 2, np.float64)
    expect = model.forward(X.astype(dtype))
    assert expect.dtype == dtype
    np.testing.assert_array_equal(model.forward(np.asfortranarray(X)), expect)
    np.testing.assert_array_equal(model.forward(X.tolist()), expect)
    assert model.loss(X.tolist(), y.tolist()) == model.loss(X.astype(dtype), y.astype(dtype))
    with pytest.raises(TypeError, match="X"):
        model.forward(X.astype(complex))
    with pytest.raises(ValueError, match="X"):
        model.forward(np.ones((5, 4)))


def test_float64_model_never_computes_in_float32():
    model = fastbp.Sequential([fastbp.Dense(1, 1, dtype="float64")])
    model.layers[0].W[...] = 1.0
    x = np.array([[1.0 + 1e-12]])
    assert model.forward(x)[0, 0] == 1.0 + 1e-12
    # the squared difference of (1 + 1e-12) - 1, exact in float64 (0.0 in float32)
    assert model.loss(x, np.array([1.0])) == pytest.approx(((1.0 + 1e-12) - 1.0) ** 2,
                                                          rel=tol(np.float64, "formula_rtol"))


# ---------------------------------------------------------------- gradcheck

@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_gradcheck_every_activation_and_loss(act, loss):
    model = fastbp.MLP((3, 4, 3), act, loss, dtype="float64", seed=7)
    random_biases(model, 8)
    X, y = make_data(loss, 4, 3, 3, np.float64, seed=9)
    result = fastbp.gradcheck(model, X, y)
    assert isinstance(result, fastbp.GradcheckResult)
    assert result.ok, result
    assert bool(result) is True
    assert result.max_abs_error < 1e-6


def test_gradcheck_float32_model_is_left_unchanged():
    model = fastbp.MLP((3, 4, 2), "tanh", "mse", seed=0)
    before = param_copies(model)
    X, y = make_data("mse", 5, 3, 2, np.float32)
    assert fastbp.gradcheck(model, X, y).ok
    assert_same_params(before, model)
    assert all(p.dtype == np.float32 for p in model.parameters())


class ScaledGradients(fastbp.Sequential):
    """A model whose backward returns gradients 1 % too large."""

    def backward(self, X, y):
        loss = super().backward(X, y)
        for layer in self.layers:
            layer.dW[...] *= 1.01
        return loss


def test_gradcheck_detects_wrong_gradients_of_a_subclass():
    good = fastbp.MLP((3, 4, 2), "tanh", "mse", dtype="float64", seed=0)
    bad = ScaledGradients(good.layers, loss="mse")
    X, y = make_data("mse", 5, 3, 2, np.float64)
    assert fastbp.gradcheck(good, X, y).ok
    result = fastbp.gradcheck(bad, X, y)
    assert not result.ok
    assert result.max_rel_error > 5e-3


def test_gradcheck_detects_wrong_layer_backward(monkeypatch):
    model = fastbp.MLP((3, 4, 2), "tanh", "mse", dtype="float64", seed=0)
    X, y = make_data("mse", 5, 3, 2, np.float64)
    original = fastbp.Sequential.backward

    def scaled(self, X, y):
        loss = original(self, X, y)
        for layer in self.layers:
            layer.dW[...] *= 1.01
        return loss

    monkeypatch.setattr(fastbp.Sequential, "backward", scaled)
    result = fastbp.gradcheck(model, X, y)
    assert not result.ok
    assert result.max_rel_error == pytest.approx(0.01, rel=0.05)


def test_gradcheck_validation():
    model = fastbp.MLP((2, 2), dtype="float64")
    X, y = np.ones((3, 2)), np.ones((3, 2))
    with pytest.raises(TypeError, match="model"):
        fastbp.gradcheck(object(), X, y)
    with pytest.raises(ValueError, match="eps"):
        fastbp.gradcheck(model, X, y, eps=0.0)
    with pytest.raises(ValueError, match="rtol"):
        fastbp.gradcheck(model, X, y, rtol=-1.0)


# ---------------------------------------------------------------- predictions

@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_cross_entropy(dtype):
    model = fastbp.MLP((3, 5, 4), "tanh", "cross_entropy", dtype=dtype, seed=0)
    random_biases(model)
    X = np.random.default_rng(1).normal(size=(20, 3))
    labels = model.predict(X)
    assert labels.shape == (20,)
    assert labels.dtype.kind in "iu"
    np.testing.assert_array_equal(labels, model.forward(X).argmax(axis=1))
    proba = model.predict_proba(X)
    assert proba.shape == (20, 4) and proba.dtype == dtype
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=tol(dtype, "formula_rtol"))
    assert np.all(proba >= 0)
    assert_model_close(proba, reference.softmax(model.forward(X).astype(np.float64)), dtype)
    np.testing.assert_array_equal(proba.argmax(axis=1), labels)


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_binary_cross_entropy(dtype):
    model = fastbp.MLP((3, 5, 2), "relu", "binary_cross_entropy", dtype=dtype, seed=0)
    random_biases(model)
    X = np.random.default_rng(1).normal(size=(30, 3))
    out = model.forward(X)
    labels = model.predict(X)
    assert labels.shape == (30, 2)
    assert labels.dtype.kind in "iu"
    assert set(np.unique(labels)) <= {0, 1}
    np.testing.assert_array_equal(labels, (out > 0).astype(int))
    assert 0 < labels.mean() < 1            # both classes occur: the threshold matters
    proba = model.predict_proba(X)
    assert proba.shape == (30, 2) and proba.dtype == dtype
    assert_model_close(proba, 1 / (1 + np.exp(-out.astype(np.float64))), dtype)


@pytest.mark.parametrize("loss", REGRESSION)
@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_regression(loss, dtype):
    model = fastbp.MLP((3, 5, 2), "tanh", loss, dtype=dtype, seed=0)
    X = np.random.default_rng(1).normal(size=(6, 3))
    pred = model.predict(X)
    assert pred.shape == (6, 2) and pred.dtype == dtype
    np.testing.assert_array_equal(pred, model.forward(X))
    with pytest.raises(ValueError, match="predict_proba|loss"):
        model.predict_proba(X)


def test_predict_single_output_regression_shape():
    model = fastbp.MLP((3, 4, 1), seed=0)
    assert model.predict(np.ones((5, 3))).shape == (5,)     # one output: (n,), as scikit-learn
    assert model.forward(np.ones((5, 3))).shape == (5, 1)


# ---------------------------------------------------------------- loss / evaluate / targets

@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_evaluate_equals_loss_equals_backward(loss, dtype):
    model = fastbp.MLP((4, 5, 3), "gelu", loss, dtype=dtype, seed=0)
    random_biases(model)
    X, y = make_data(loss, 7, 4, 3, dtype, seed=1)
    value = model.loss(X, y)
    assert isinstance(value, float)
    assert model.evaluate(X, y) == value
    assert model.backward(X, y) == pytest.approx(value, rel=tol(dtype, "path_rtol"))
    assert_model_close(value, hand_chain(model, X, y)[0], dtype)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "binary_cross_entropy"])
def test_one_dimensional_targets_for_single_output(loss):
    model = fastbp.MLP((3, 4, 1), "tanh", loss, dtype="float64", seed=0)
    X, y = make_data(loss, 6, 3, 1, np.float64)
    y1 = y[:, 0].copy()
    assert model.loss(X, y1) == model.loss(X, y)
    assert model.backward(X, y1) == model.backward(X, y)
    g1 = [g.copy() for g in model.gradients()]
    model.backward(X, y)
    for a, b in zip(g1, model.gradients()):
        np.testing.assert_array_equal(a, b)


def test_one_dimensional_target_needs_single_output():
    model = fastbp.MLP((3, 4, 2), dtype="float64")
    with pytest.raises(ValueError, match="y"):
        model.loss(np.ones((6, 3)), np.ones(6))


@pytest.mark.parametrize("bad", [np.ones((5, 2)), np.ones((6, 3)), np.ones((6, 2, 1))])
def test_target_wrong_shape(bad):
    model = fastbp.MLP((3, 4, 2), dtype="float64")
    with pytest.raises(ValueError, match="y"):
        model.backward(np.ones((6, 3)), bad)


def test_target_non_real_raises():
    model = fastbp.MLP((3, 4, 2), dtype="float64")
    with pytest.raises(TypeError, match="y"):
        model.loss(np.ones((2, 3)), np.array([["a", "b"], ["c", "d"]]))


def test_empty_batch_loss_raises():
    model = fastbp.MLP((3, 4, 2), dtype="float64")
    with pytest.raises(ValueError, match="X"):
        model.loss(np.ones((0, 3)), np.ones((0, 2)))


def test_cross_entropy_integral_float_labels_accepted():
    model = fastbp.MLP((3, 4, 3), "tanh", "cross_entropy", dtype="float64", seed=0)
    X, y = make_data("cross_entropy", 8, 3, 3, np.float64)
    ref = model.loss(X, y)
    assert model.loss(X, y.astype(np.float64)) == ref
    assert model.loss(X, y.astype(np.float32)) == ref
    assert model.loss(X, y.tolist()) == ref
    assert model.backward(X, y.astype(np.float64)) == ref
    onehot = np.eye(3)[y]
    assert model.loss(X, onehot) == pytest.approx(ref, rel=tol(np.float64, "formula_rtol"))


@pytest.mark.parametrize("labels", [[0, 1, 0.5, 2], [0, 1, np.nan, 2], [0, 1, 2, 3], [0, -1, 1, 2],
                                    [0, 1, 2, 2.0000001]])
def test_cross_entropy_bad_labels_raise(labels):
    model = fastbp.MLP((3, 4, 3), "tanh", "cross_entropy", dtype="float64", seed=0)
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="y|label"):
        model.loss(X, np.array(labels))
    with pytest.raises(ValueError, match="y|label"):
        model.backward(X, np.array(labels))


def test_cross_entropy_bad_label_count():
    model = fastbp.MLP((3, 4, 3), "tanh", "cross_entropy", dtype="float64", seed=0)
    with pytest.raises(ValueError, match="y"):
        model.loss(np.ones((4, 3)), np.array([0, 1, 2]))


# ---------------------------------------------------------------- live parameters

def test_parameters_are_live():
    model = fastbp.MLP((3, 4, 2), "tanh", dtype="float64", seed=0)
    params = model.parameters()
    expected = [x for la in model.layers for x in (la.W, la.b)]
    assert len(params) == 4
    assert all(p is e for p, e in zip(params, expected))
    X = np.ones((2, 3))
    before = model.forward(X)
    params[3][...] += 1.0                  # last bias: every output moves by exactly 1
    np.testing.assert_allclose(model.forward(X), before + 1.0, rtol=tol(np.float64, "exact_rtol"))
    params[0][0, 0] = 5.0
    assert model.layers[0].W[0, 0] == 5.0
    assert not np.allclose(model.forward(X), before + 1.0)


def test_gradients_are_live():
    model = fastbp.MLP((3, 4, 2), "tanh", dtype="float64", seed=0)
    grads = model.gradients()
    assert len(grads) == 4
    assert [g.shape for g in grads] == [p.shape for p in model.parameters()]
    X, y = make_data("mse", 5, 3, 2, np.float64)
    model.backward(X, y)
    after = [g.copy() for g in grads]                 # the old list sees the new values
    assert any(np.any(g != 0) for g in after)
    _, ref = hand_chain(model, X, y)
    for g, r in zip(grads, ref):
        assert_model_close(g, r, np.float64)
    model.backward(2 * X, y)
    assert any(not np.array_equal(g, a) for g, a in zip(grads, after))


def test_parameter_mutation_changes_backward():
    model = fastbp.MLP((3, 4, 2), "tanh", dtype="float64", seed=0)
    X, y = make_data("mse", 5, 3, 2, np.float64)
    l0 = model.backward(X, y)
    model.parameters()[0] *= 0.5
    l1 = model.backward(X, y)
    assert l0 != l1
    assert_model_close(l1, hand_chain(model, X, y)[0], np.float64)
    for g, r in zip(model.gradients(), hand_chain(model, X, y)[1]):
        assert_model_close(g, r, np.float64)


# ---------------------------------------------------------------- train_step

OPTIMIZERS = [
    pytest.param(lambda ps: fastbp.SGD(ps, lr=0.1), id="sgd"),
    pytest.param(lambda ps: fastbp.SGD(ps, lr=0.05, momentum=0.9, nesterov=True), id="nesterov"),
    pytest.param(lambda ps: fastbp.AdaGrad(ps, lr=0.1), id="adagrad"),
    pytest.param(lambda ps: fastbp.RMSprop(ps, lr=0.01, centered=True, momentum=0.5), id="rmsprop"),
    pytest.param(lambda ps: fastbp.Adam(ps, lr=0.01, amsgrad=True), id="adam"),
    pytest.param(lambda ps: fastbp.AdamW(ps, lr=0.01), id="adamw"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make_opt", OPTIMIZERS)
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_train_step_equals_backward_then_step(make_opt, dtype, loss):
    a = fastbp.MLP((4, 6, 3), "tanh", loss, dtype=dtype, seed=0)
    b = clone(a)
    opt_a, opt_b = make_opt(a.parameters()), make_opt(b.parameters())
    rng = np.random.default_rng(1)
    for step in range(4):
        X, y = make_data(loss, 8, 4, 3, dtype, seed=step)
        before = a.loss(X, y)
        got = a.train_step(X, y, opt_a)
        assert isinstance(got, float)
        assert got == before                       # the loss before the update
        want = b.backward(X, y)
        opt_b.step(b.gradients())
        assert got == want
        for pa, pb in zip(a.parameters(), b.parameters()):
            np.testing.assert_allclose(pa, pb, **tols(dtype, "path"))
        assert a.loss(X, y) != before              # the parameters did move
    assert opt_a.state_dict()["step"] == opt_b.state_dict()["step"] == 4
    del rng


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_model_and_optimizer_copied_together_stay_bound(how):
    """One pickle (or deepcopy) of a model and its optimizer: the copy's optimizer updates
    the copy's parameters, and both go on exactly as the originals."""
    model = fastbp.MLP((4, 6, 3), "tanh", "mse", dtype="float64", seed=0, dropout=0.2)
    opt = fastbp.Adam(model.parameters(), lr=0.01, amsgrad=True)
    X, y = make_data("mse", 8, 4, 3)
    model.train_step(X, y, opt)
    pair = (model, opt)
    m2, o2 = pickle.loads(pickle.dumps(pair)) if how == "pickle" else copy.deepcopy(pair)
    assert all(a is b for a, b in zip(o2.params, m2.parameters()))
    assert not any(np.shares_memory(a, b) for a, b in zip(m2.parameters(), model.parameters()))
    for _ in range(3):
        assert m2.train_step(X, y, o2) == model.train_step(X, y, opt)
    assert_same_params(m2, model)


def test_train_step_fills_gradients():
    model = fastbp.MLP((3, 4, 2), "tanh", dtype="float64", seed=0)
    X, y = make_data("mse", 5, 3, 2, np.float64)
    _, ref = hand_chain(model, X, y)
    model.train_step(X, y, fastbp.SGD(model.parameters(), lr=0.1))
    for g, r in zip(model.gradients(), ref):
        assert_model_close(g, r, np.float64)


def test_train_step_optimizer_of_another_model_raises():
    model = fastbp.MLP((3, 4, 2), dtype="float64", seed=0)
    other = fastbp.MLP((3, 4, 2), dtype="float64", seed=0)
    X, y = make_data("mse", 5, 3, 2, np.float64)
    before = param_copies(model)
    for opt in (fastbp.SGD(other.parameters()),
                fastbp.Adam(param_copies(model)),
                fastbp.Adam(model.parameters()[:2]),
                fastbp.Adam(model.parameters()[::-1])):
        with pytest.raises(ValueError, match="optimizer"):
            model.train_step(X, y, opt)
    assert_same_params(before, model)
    np.testing.assert_array_equal(other.parameters()[0], model.parameters()[0])


def test_train_step_needs_optimizer_instance():
    model = fastbp.MLP((3, 2), dtype="float64")
    with pytest.raises(TypeError, match="optimizer"):
        model.train_step(np.ones((2, 3)), np.ones((2, 2)), "adam")


def test_train_step_after_parameter_mutation_uses_new_values():
    a = fastbp.MLP((3, 4, 2), "tanh", dtype="float64", seed=0)
    opt = fastbp.SGD(a.parameters(), lr=0.1)
    X, y = make_data("mse", 5, 3, 2, np.float64)
    a.train_step(X, y, opt)
    a.parameters()[0][...] = 0.3           # in place: the optimizer still owns it
    b = clone(a)
    got = a.train_step(X, y, opt)
    assert got == pytest.approx(b.loss(X, y), rel=tol(np.float64, "path_rtol"))


def test_train_step_follows_lr_changes_and_state_loads():
    """The optimizer's lr and a loaded state_dict take effect in train_step at once."""
    a = fastbp.MLP((4, 6, 3), "tanh", "mse", dtype="float64", seed=0)
    b = clone(a)
    opt_a, opt_b = fastbp.Adam(a.parameters(), lr=0.01), fastbp.Adam(b.parameters(), lr=0.01)
    X, y = make_data("mse", 8, 4, 3, np.float64)

    def both(n):
        for _ in range(n):
            la = a.train_step(X, y, opt_a)
            lb = b.backward(X, y)
            opt_b.step(b.gradients())
            assert la == pytest.approx(lb, rel=tol(np.float64, "path_rtol"))

    both(3)
    saved_state = opt_a.state_dict()
    saved_params = param_copies(a)
    opt_a.lr = opt_b.lr = 0.2
    both(2)
    for p, s in zip(a.parameters(), saved_params):
        p[...] = s
    for p, s in zip(b.parameters(), saved_params):
        p[...] = s
    opt_a.load_state_dict(saved_state)
    opt_b.load_state_dict(saved_state)
    assert opt_a.lr == 0.01
    both(3)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa, pb, **tols(np.float64, "path"))


def test_replaced_parameter_array_is_used():
    """Assigning a new (correctly shaped) W to a layer changes what the model computes."""
    model = fastbp.MLP((3, 4, 2), "tanh", dtype="float64", seed=0)
    X, y = make_data("mse", 5, 3, 2, np.float64)
    model.forward(X)
    model.backward(X, y)
    new_W = np.random.default_rng(9).normal(size=(3, 4))
    try:
        model.layers[0].W = new_W
    except (AttributeError, TypeError):
        pytest.skip("layer parameters cannot be reassigned")
    np.testing.assert_array_equal(model.layers[0].W, new_W)
    np.testing.assert_array_equal(model.parameters()[0], new_W)
    A = X
    for layer in model.layers:
        A = reference.dense_forward(A, layer.W, layer.b, layer.activation)[1]
    assert_model_close(model.forward(X), A, np.float64)
    assert_model_close(model.backward(X, y), hand_chain(model, X, y)[0], np.float64)
    for g, r in zip(model.gradients(), hand_chain(model, X, y)[1]):
        assert_model_close(g, r, np.float64)


@pytest.mark.parametrize("bad, error", [
    (np.full((3, 4), np.nan), ValueError),
    (np.full((3, 4), 1e300), ValueError),       # overflows float32
    (np.zeros((4, 3)), ValueError),
    (np.array([["a"] * 4] * 3), TypeError),
])
def test_rejected_parameter_assignment_changes_nothing(bad, error):
    """A NaN, overflowing, wrongly shaped or non-numeric W is refused, naming W, and the
    layer keeps its old values (the optimizer steps the same live array either way)."""
    model = fastbp.MLP((3, 4, 2), "tanh", dtype="float32", seed=0)
    live, before = model.layers[0].W, model.layers[0].W.copy()
    with pytest.raises(error, match="W"):
        model.layers[0].W = bad
    assert model.layers[0].W is live
    np.testing.assert_array_equal(live, before)
