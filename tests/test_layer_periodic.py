"""fastbp.PeriodicEmbedding (rtdl_num_embeddings.PeriodicEmbeddings): the kernels against
the reference (1e-12 in float64) and rtdl's module run side by side on the same weights,
the vectorised sine and cosine against libm, an MLP-PLR model against PyTorch over 25
training steps, central differences, files, Ensemble, ONNX (onnxruntime) and C (the
system compiler) exports; bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastbp
from fastbp import Dense, PeriodicEmbedding, Sequential, ops
from fastbp import reference as ref

from conftest import DTYPES, assert_close, tol
from layer_checks import (check_cross_entropy_steps_equal_torch, check_ensemble_members_end_alone,
                          check_files_and_exports)


@pytest.mark.parametrize("lite, activation", [(False, True), (False, False), (True, True)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_ops_are_the_reference(dtype, lite, activation):
    rng = np.random.default_rng(0)
    F, k, d = 3, 5, 4
    X = rng.normal(size=(7, F)).astype(dtype)
    freq = rng.normal(size=(F, k)).astype(dtype)
    W = rng.normal(size=(2 * k, d) if lite else (F, 2 * k, d)).astype(dtype)
    b = rng.normal(size=(d,) if lite else (F, d)).astype(dtype)
    got = ops.periodic_embedding_forward(X, freq, W, b, activation)
    want = ref.periodic_embedding_forward(X, freq, W, b, activation)
    for a, e in zip(got, want):
        assert_close(a, e, dtype, rtol=tol(dtype, "layer_rtol") * 10)
    dA = rng.normal(size=got[0].shape).astype(dtype)
    for a, e in zip(ops.periodic_embedding_backward(X, freq, W, got[2], got[1], got[0], dA,
                                                    activation),
                    ref.periodic_embedding_backward(X, freq, W, *want[::-1], dA, activation)):
        assert_close(a, e, dtype, rtol=tol(dtype, "layer_rtol") * 10)


def test_sine_and_cosine_are_within_2_ulp_of_libm():
    a = np.concatenate([np.linspace(-60, 60, 200_001),
                        np.random.default_rng(0).uniform(-8e5, 8e5, 200_000),
                        [1e6, -3e7, 1e300, np.pi / 4, np.pi / 2, 0.0, -0.0]])
    freq = np.array([[1 / (2 * math.pi)]])
    _, _, P = ops.periodic_embedding_forward(a[:, None], freq, np.ones((1, 2, 1)),
                                             np.zeros((1, 1)), False)
    angle = (2 * math.pi * freq[0, 0]) * a
    for got, want in ((P[0, :, 0], np.cos(angle)), (P[0, :, 1], np.sin(angle))):
        ulps = np.abs(got - want) / np.spacing(np.maximum(np.abs(want), 1e-300))
        assert ulps.max() <= 2.0
    _, _, P = ops.periodic_embedding_forward(np.array([[np.nan], [np.inf]]), freq,
                                             np.ones((1, 2, 1)), np.zeros((1, 1)), False)
    assert np.isnan(P).all()


def _rtdl_twin(torch, layer):
    rtdl = pytest.importorskip("rtdl_num_embeddings")
    m = rtdl.PeriodicEmbeddings(layer.in_features, layer.d_embedding,
                                n_frequencies=layer.n_frequencies, activation=layer.relu,
                                lite=layer.lite).double()
    with torch.no_grad():
        m.periodic.weight[:] = torch.tensor(layer.frequencies)
        m.linear.weight[:] = torch.tensor(layer.weight.T if layer.lite else layer.weight)
        m.linear.bias[:] = torch.tensor(layer.bias)
    return m


@pytest.mark.parametrize("lite, activation", [(False, True), (False, False), (True, True)])
def test_the_layer_is_rtdls_periodic_embeddings(lite, activation):
    torch = pytest.importorskip("torch")
    layer = PeriodicEmbedding(4, 6, n_frequencies=8, frequency_init_scale=0.5, lite=lite,
                              activation=activation, dtype="float64", seed=1)
    m = _rtdl_twin(torch, layer)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(9, 4)) * 2
    dA = rng.normal(size=(9, 24))
    x = torch.tensor(X, requires_grad=True)
    out = m(x)
    out.backward(torch.tensor(dA.reshape(9, 4, 6)))
    np.testing.assert_allclose(layer.forward(X), out.detach().numpy().reshape(9, 24),
                               rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(layer.backward(dA), x.grad.numpy(), rtol=1e-11, atol=1e-12)
    theirs = [m.periodic.weight.grad, m.linear.weight.grad.T if lite else m.linear.weight.grad,
              m.linear.bias.grad]
    for a, e in zip(layer.gradients(), theirs):
        np.testing.assert_allclose(a, e.numpy(), rtol=1e-11, atol=1e-12)


def test_25_steps_of_an_mlp_plr_equal_pytorchs():
    """MLP-PLR (periodic embeddings, 2 x 128 relu, AdamW): 25 steps, parameters to 1e-9."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 8))
    y = rng.integers(0, 3, 256)
    model = Sequential([PeriodicEmbedding(8, 24, n_frequencies=48, frequency_init_scale=0.1,
                                          dtype="float64", seed=0),
                        Dense(192, 128, "relu", dtype="float64", seed=1),
                        Dense(128, 128, "relu", dtype="float64", seed=2),
                        Dense(128, 3, dtype="float64", seed=3)], "cross_entropy")
    emb = _rtdl_twin(torch, model.layers[0])
    lins = []
    for layer in model.layers[1:]:
        lin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
        with torch.no_grad():
            lin.weight[:] = torch.tensor(layer.W.T)
            lin.bias[:] = torch.tensor(layer.b)
        lins.append(lin)
    net = torch.nn.Sequential(emb, torch.nn.Flatten(), lins[0], torch.nn.ReLU(), lins[1],
                              torch.nn.ReLU(), lins[2])
    opt = fastbp.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    topt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    theirs = [emb.periodic.weight, emb.linear.weight, emb.linear.bias] + \
        [p for lin in lins for p in (lin.weight.T, lin.bias)]   # (fastbp's W is (in, out))
    check_cross_entropy_steps_equal_torch(model, opt, net, topt, X, y, theirs)


def test_gradcheck_files_ensemble_and_exports(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.random.default_rng(1).integers(0, 3, 40)
    for dtype in DTYPES:
        for lite in (False, True):
            model = Sequential([PeriodicEmbedding(3, 4, n_frequencies=6, frequency_init_scale=0.3,
                                                  lite=lite, dtype=dtype, seed=0),
                                Dense(12, 8, "relu", dtype=dtype, seed=1),
                                Dense(8, 3, dtype=dtype, seed=2)], "cross_entropy")
            before = model.layers[0].frequencies.copy()
            model.fit(X, y, epochs=3, batch_size=8, progress=False)
            assert not np.array_equal(model.layers[0].frequencies, before)
            assert fastbp.gradcheck(model, X[:5], y[:5]).ok
            check_files_and_exports(model, X, tmp_path, f"pe_{np.dtype(dtype).name}_{int(lite)}",
                                    ort)
    check_ensemble_members_end_alone(
        lambda s: Sequential([PeriodicEmbedding(3, 4, n_frequencies=6, dtype="float64", seed=s),
                              Dense(12, 3, dtype="float64", seed=s + 10)], "cross_entropy"), X, y)


def test_bad_periodic_embeddings_are_refused():
    with pytest.raises(ValueError, match="lite=True needs activation=True"):
        PeriodicEmbedding(3, lite=True, activation=False)
    with pytest.raises(ValueError, match="frequency_init_scale must be > 0"):
        PeriodicEmbedding(3, frequency_init_scale=0.0)
    with pytest.raises(TypeError, match="activation"):
        PeriodicEmbedding(3, activation="no")
    with pytest.raises(ValueError, match="n_frequencies"):
        PeriodicEmbedding(3, n_frequencies=0)
    with pytest.raises(ValueError, match=r"layers\[1\] takes 10 inputs but layers\[0\] gives 72"):
        Sequential([PeriodicEmbedding(3), Dense(10, 1)], "mse")
    layer = PeriodicEmbedding(2, 3, n_frequencies=4, seed=0)
    assert np.abs(layer.frequencies).max() <= 0.03 + 1e-9       # truncated at 3σ
    with pytest.raises(ValueError, match=r"weight must have shape \(2, 8, 3\)"):
        layer.weight = np.zeros((8, 3))
    with pytest.raises(ValueError, match="X must have 2 features"):
        layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"frequencies must have shape \(2, n_frequencies"):
        ops.periodic_embedding_forward(np.ones((2, 2)), np.ones((3, 4)), np.ones((2, 8, 3)),
                                       np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"bias must be 2-dimensional"):
        ref.periodic_embedding_forward(np.ones((2, 2)), np.ones((2, 4)), np.ones((2, 8, 3)),
                                       np.ones(3))
    model = Sequential([PeriodicEmbedding(2, 3, n_frequencies=4), Dense(6, 1)], "mse")
    with pytest.raises(NotImplementedError, match="jacobian needs Dense layers"):
        model.jacobian(np.ones((2, 2)))
