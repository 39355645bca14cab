"""Ensemble-aware normalisation (tabm 0.0.3's LayerNormEnsemble and BatchNorm1dEnsemble):
``LayerNorm(k·d, groups=k)`` normalises each member's block of a row on its own; the
kernels against the reference (1e-12 in float64) and central differences, the layer
against tabm's module in PyTorch, the compiled step of a TabM-like model with it against
the layers' own passes, files and both exports; tabm's BatchNorm1dEnsemble is
``BatchNorm(k·d)`` (per-column statistics and affine map), checked against it."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import (BatchNorm, LayerNorm, LinearBatchEnsemble, LinearEnsemble, Objective,
                    Sequential, ops)
from fastbp import reference as ref

from conftest import DTYPES, assert_close, central_differences, tol, tols
from test_layer_norm import _data as layer_norm_data
from layer_checks import check_files_and_exports, check_step_equals_own_passes

K, D = 3, 4


def _data(dtype, n=7, seed=0):
    return layer_norm_data(dtype, n=n, k=K * D, seed=seed)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_grouped_ops_are_the_reference_and_each_block_alone(dtype, affine):
    X, g, b, dA = _data(dtype)
    if not affine:
        g = b = None
    got = ops.layer_norm_forward(X, g, b, 1e-3, groups=K)
    want = ref.layer_norm_forward(X, g, b, 1e-3, groups=K)
    for a, e in zip(got, want):
        np.testing.assert_allclose(a, e, **tols(dtype, "layer"))
    A, Xhat, rstd = got
    assert rstd.shape == (len(X) * K,)
    # each member's block is a LayerNorm of its own, with its columns' γ and β
    for m in range(K):
        cols = slice(m * D, (m + 1) * D)
        alone = ops.layer_norm_forward(np.ascontiguousarray(X[:, cols]),
                                       None if g is None else g[cols].copy(),
                                       None if b is None else b[cols].copy(), 1e-3)
        np.testing.assert_array_equal(A[:, cols], alone[0])
        np.testing.assert_array_equal(rstd.reshape(-1, K)[:, m], alone[2])
    got = ops.layer_norm_backward(Xhat, rstd, g, dA, groups=K)
    want = ref.layer_norm_backward(Xhat, rstd, g, dA, groups=K)
    for a, e in zip(got, want):
        if e is None:
            assert a is None
        else:
            assert_close(a, e, dtype, rtol=tol(dtype, "layer_rtol"))


def test_grouped_gradients_are_central_differences():
    X, g, b, dA = _data(np.float64, n=4, seed=3)
    loss = lambda: float((ops.layer_norm_forward(X, g, b, groups=K)[0] * dA).sum())
    A, Xhat, rstd = ops.layer_norm_forward(X, g, b, groups=K)
    dX, dg, db = ops.layer_norm_backward(Xhat, rstd, g, dA, groups=K)
    for analytic, wrt in ((dX, X), (dg, g), (db, b)):
        np.testing.assert_allclose(analytic, central_differences(loss, wrt), rtol=1e-6,
                                   atol=1e-8)
    whole = ops.layer_norm_forward(X, g, b)[0]     # the row as one group is not it
    assert np.abs(whole - A).max() > 1e-2


def _tabm_like(dtype="float64", seed=1, dropout=0.1):
    model = Sequential([
        LinearBatchEnsemble(5, D, K, shared_input=True, scaling_init=("random-signs", "ones"),
                            dtype=dtype, seed=seed),
        LayerNorm(K * D, groups=K, eps=2.0**-10, dtype=dtype),
        fastbp.Activation("relu"),
        LinearBatchEnsemble(D, D, K, dtype=dtype, seed=seed + 1, dropout=dropout),
        LayerNorm(K * D, groups=K, affine=False, eps=1e-2, dtype=dtype),
        LinearEnsemble(D, 3, K, dtype=dtype, seed=seed + 2)], "cross_entropy",
        dropout_seed=4)
    model.objective = Objective(heads=K)
    return model


def test_the_compiled_step_equals_the_layers_own_passes():
    """Loss, every gradient and the forward of the compiled step against the layers'
    own passes (1e-12, float64); central differences."""
    model = _tabm_like(dropout=0.0)
    model.layers[1].gamma = np.linspace(0.5, 1.5, K * D)
    model.layers[1].beta = np.linspace(-0.2, 0.3, K * D)
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((30, 5)), rng.integers(0, 3, 30)
    compiled = check_step_equals_own_passes(model, X, y)[0]
    assert np.abs(compiled[4]).sum() > 0          # γ of the grouped LayerNorm gets one
    assert fastbp.gradcheck(model, X[:6], y[:6]).ok


@pytest.mark.parametrize("dtype", DTYPES)
def test_files_and_both_exports(dtype, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    model = _tabm_like(dtype)
    model.fit(X, y, epochs=2, batch_size=8, progress=False)
    assert "groups=3" in repr(model.layers[1])
    check_files_and_exports(model, X, tmp_path, f"lne_{np.dtype(dtype).name}", ort)


def test_bad_groups_are_refused_by_name():
    with pytest.raises(ValueError, match="groups"):
        LayerNorm(8, groups=3)
    with pytest.raises(ValueError, match="groups"):
        LayerNorm(8, groups=0)
    with pytest.raises(TypeError, match="groups"):
        LayerNorm(8, groups="2")
    with pytest.raises(TypeError, match="groups"):
        LayerNorm(8, groups=True)
    X, g, b, dA = _data(np.float64)
    with pytest.raises(ValueError, match="groups"):
        ops.layer_norm_forward(X, g, b, groups=5)
    A, Xhat, rstd = ops.layer_norm_forward(X, g, b, groups=K)
    with pytest.raises(ValueError, match="rstd must have shape"):
        ops.layer_norm_backward(Xhat, rstd, g, dA)            # rstd of 3 groups, 1 given
    with pytest.raises(ValueError, match="groups"):
        fastbp._kernels.norm.layer_norm_forward_into(X, g, b, Xhat, A, rstd[:-1], 1e-5, K)


# ---------------------------------------------------------------- against tabm's modules

torch = pytest.importorskip("torch")
tabm = pytest.importorskip("tabm")


@pytest.mark.parametrize("affine", [True, False])
def test_the_grouped_layer_is_tabms_layer_norm_ensemble(affine):
    """Forward and autograd's dX, d(weight), d(bias) of tabm.LayerNormEnsemble(d, k=k)
    on (n, k, d), to 1e-12 in float64."""
    X, g, b, dA = _data(np.float64, seed=8)
    layer = LayerNorm(K * D, groups=K, eps=1e-4, affine=affine, dtype="float64")
    net = tabm.LayerNormEnsemble(D, k=K, elementwise_affine=affine, eps=1e-4).double()
    if affine:
        layer.gamma, layer.beta = g, b
        with torch.no_grad():
            net.affine.weight.copy_(torch.from_numpy(g.reshape(K, D)))
            net.affine.bias.copy_(torch.from_numpy(b.reshape(K, D)))
    x = torch.tensor(X.reshape(-1, K, D), requires_grad=True)
    out = net(x)
    out.backward(torch.from_numpy(dA.reshape(-1, K, D)))
    np.testing.assert_allclose(layer.forward(X), out.detach().numpy().reshape(len(X), -1),
                               rtol=1e-12, atol=1e-13)
    dX = layer.backward(dA)
    np.testing.assert_allclose(dX, x.grad.numpy().reshape(len(X), -1), rtol=1e-10,
                               atol=1e-12)
    if affine:
        np.testing.assert_allclose(layer.dgamma, net.affine.weight.grad.numpy().ravel(),
                                   rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(layer.dbeta, net.affine.bias.grad.numpy().ravel(),
                                   rtol=1e-12, atol=1e-13)


def test_batch_norm_over_the_members_columns_is_tabms_batch_norm_ensemble():
    """tabm.BatchNorm1dEnsemble(d, k=k): per-column statistics (not shared between the
    members) and a per-member affine map, i.e. BatchNorm(k·d): training forward, every
    gradient, the running statistics after three steps, and the inference forward."""
    rng = np.random.default_rng(9)
    layer = BatchNorm(K * D, dtype="float64")
    net = tabm.BatchNorm1dEnsemble(D, k=K).double()
    g, b = rng.normal(size=K * D), rng.normal(size=K * D)
    layer.gamma, layer.beta = g, b
    with torch.no_grad():
        net.affine.weight.copy_(torch.from_numpy(g.reshape(K, D)))
        net.affine.bias.copy_(torch.from_numpy(b.reshape(K, D)))
    for step in range(3):
        X = rng.normal(size=(16, K * D)) * 2 + 1
        dA = rng.normal(size=(16, K * D))
        x = torch.tensor(X.reshape(-1, K, D), requires_grad=True)
        net.affine.weight.grad = net.affine.bias.grad = None
        out = net(x)
        out.backward(torch.from_numpy(dA.reshape(-1, K, D)))
        np.testing.assert_allclose(layer.forward(X),
                                   out.detach().numpy().reshape(16, -1), rtol=1e-12,
                                   atol=1e-13)
        np.testing.assert_allclose(layer.backward(dA), x.grad.numpy().reshape(16, -1),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.dgamma, net.affine.weight.grad.numpy().ravel(),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.dbeta, net.affine.bias.grad.numpy().ravel(),
                                   rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.running_mean, net.impl.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, net.impl.running_var.numpy(), rtol=1e-12)
    net.eval()
    layer.training = False
    X = rng.normal(size=(5, K * D))
    np.testing.assert_allclose(
        layer.forward(X),
        net(torch.from_numpy(X.reshape(-1, K, D))).detach().numpy().reshape(5, -1),
        rtol=1e-12, atol=1e-13)
