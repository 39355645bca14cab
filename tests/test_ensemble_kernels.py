"""The TabM building blocks' kernels (fastbp.ops.batch_ensemble_*, linear_ensemble_*):
against the NumPy reference (1e-12 relative in float64, the layer tolerance in
float32), against central finite differences of the reference, and against the
PyTorch originals, tabm 0.0.3's LinearBatchEnsemble (with EnsembleView for a shared
input) and LinearEnsemble, forward and autograd backward in float64."""
from __future__ import annotations

import numpy as np
import pytest

from fastbp import ops
from fastbp import reference as ref

from conftest import DTYPES, assert_close, central_differences, tol

SHAPES = [(7, 4, 5, 3), (1, 1, 1, 1), (33, 8, 16, 12), (5, 32, 3, 2)]


def _batch_args(rng, n, k, d_in, d_out, dtype, shared, bias):
    X = rng.standard_normal((n, d_in) if shared else (n, k, d_in)).astype(dtype)
    W = rng.standard_normal((d_in, d_out)).astype(dtype)
    r = rng.standard_normal((k, d_in)).astype(dtype)
    s = rng.standard_normal((k, d_out)).astype(dtype)
    b = rng.standard_normal((k, d_out)).astype(dtype) if bias else None
    return X, W, r, s, b


def _close(actual, expected, dtype, what):
    for i, (a, e) in enumerate(zip(actual, expected)):
        if e is None:
            assert a is None, f"{what}[{i}]"
        else:
            assert_close(a, e, dtype, rtol=tol(dtype, "layer_rtol"), err_msg=f"{what}[{i}]")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_batch_ensemble_equals_the_reference(dtype, shape, shared, bias):
    rng = np.random.default_rng(sum(shape))
    X, W, r, s, b = _batch_args(rng, *shape, dtype, shared, bias)
    out = ops.batch_ensemble_forward(X, W, r, s, b)
    want = ref.batch_ensemble_forward(X, W, r, s, b)
    _close(out, want, dtype, "forward")
    dY = rng.standard_normal(out[0].shape).astype(dtype)
    for need_dX in (True, False):
        got = ops.batch_ensemble_backward(X, W, r, s, out[1], out[2], dY, bias=bias,
                                          need_dX=need_dX)
        _close(got, ref.batch_ensemble_backward(X, W, r, s, want[1], want[2], dY, bias=bias,
                                                need_dX=need_dX), dtype, "backward")
        assert got[0].shape == X.shape if need_dX else got[0] is None


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_ensemble_equals_the_reference(dtype, shape, bias):
    n, k, d_in, d_out = shape
    rng = np.random.default_rng(sum(shape) + 1)
    X = rng.standard_normal((n, k, d_in)).astype(dtype)
    W = rng.standard_normal((k, d_in, d_out)).astype(dtype)
    b = rng.standard_normal((k, d_out)).astype(dtype) if bias else None
    Y = ops.linear_ensemble_forward(X, W, b)
    assert_close(Y, ref.linear_ensemble_forward(X, W, b), dtype, rtol=tol(dtype, "layer_rtol"))
    dY = rng.standard_normal(Y.shape).astype(dtype)
    _close(ops.linear_ensemble_backward(X, W, dY, bias=bias),
           ref.linear_ensemble_backward(X, W, dY, bias=bias), dtype, "backward")


def test_empty_batches_give_empty_outputs_and_zero_gradients():
    rng = np.random.default_rng(0)
    X, W, r, s, b = _batch_args(rng, 0, 3, 4, 2, np.float64, False, True)
    Y, U, V = ops.batch_ensemble_forward(X, W, r, s, b)
    assert Y.shape == (0, 3, 2) and U.shape == (0, 3, 4)
    dX, dW, dr, ds, db = ops.batch_ensemble_backward(X, W, r, s, U, V, Y)
    assert dX.shape == X.shape and not dW.any() and not dr.any() and not ds.any() and not db.any()
    W3 = rng.standard_normal((3, 4, 2))
    assert ops.linear_ensemble_forward(X, W3).shape == (0, 3, 2)
    assert not ops.linear_ensemble_backward(X, W3, np.zeros((0, 3, 2)))[1].any()


@pytest.mark.parametrize("shared", [False, True])
def test_batch_ensemble_gradients_are_the_central_differences(shared):
    rng = np.random.default_rng(3)
    X, W, r, s, b = _batch_args(rng, 4, 3, 5, 2, np.float64, shared, True)
    dY = rng.standard_normal((4, 3, 2))

    def loss():
        return float((ref.batch_ensemble_forward(X, W, r, s, b)[0] * dY).sum())

    _, U, V = ops.batch_ensemble_forward(X, W, r, s, b)
    grads = ops.batch_ensemble_backward(X, W, r, s, U, V, dY)
    for g, a in zip(grads, (X, W, r, s, b)):
        np.testing.assert_allclose(g, central_differences(loss, a), rtol=1e-6, atol=1e-8)


def test_linear_ensemble_gradients_are_the_central_differences():
    rng = np.random.default_rng(4)
    X, W, b = rng.standard_normal((4, 3, 5)), rng.standard_normal((3, 5, 2)), \
        rng.standard_normal((3, 2))
    dY = rng.standard_normal((4, 3, 2))

    def loss():
        return float((ref.linear_ensemble_forward(X, W, b) * dY).sum())

    for g, a in zip(ops.linear_ensemble_backward(X, W, dY), (X, W, b)):
        np.testing.assert_allclose(g, central_differences(loss, a), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shared", [False, True])
def test_batch_ensemble_matches_tabm(shared):
    torch = pytest.importorskip("torch")
    tabm = pytest.importorskip("tabm")
    n, k, d_in, d_out = 9, 6, 5, 4
    torch.manual_seed(0)
    layer = tabm.LinearBatchEnsemble(d_in, d_out, k=k, scaling_init="random-signs",
                                     dtype=torch.float64)
    with torch.no_grad():   # (TabM initialises s to ones; random values test more)
        layer.s.normal_()
    x = torch.randn((n, d_in) if shared else (n, k, d_in), dtype=torch.float64,
                    requires_grad=True)
    y = layer(tabm.EnsembleView(k=k)(x) if shared else x)
    dY = torch.randn(y.shape, dtype=torch.float64)
    y.backward(dY)
    W = layer.weight.detach().numpy().T.copy()
    r, s, b = (p.detach().numpy() for p in (layer.r, layer.s, layer.bias))
    X = x.detach().numpy()
    Y, U, V = ops.batch_ensemble_forward(X, W, r, s, b)
    np.testing.assert_allclose(Y, y.detach().numpy(), rtol=1e-12, atol=1e-13)
    dX, dW, dr, ds, db = ops.batch_ensemble_backward(X, W, r, s, U, V, dY.numpy())
    for ours, theirs in ((dX, x.grad), (dW, layer.weight.grad.T), (dr, layer.r.grad),
                         (ds, layer.s.grad), (db, layer.bias.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=1e-12)


def test_linear_ensemble_matches_tabm():
    torch = pytest.importorskip("torch")
    tabm = pytest.importorskip("tabm")
    n, k, d_in, d_out = 9, 6, 5, 3
    torch.manual_seed(1)
    layer = tabm.LinearEnsemble(d_in, d_out, k=k, dtype=torch.float64)
    x = torch.randn((n, k, d_in), dtype=torch.float64, requires_grad=True)
    y = layer(x)
    dY = torch.randn(y.shape, dtype=torch.float64)
    y.backward(dY)
    W, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    X = x.detach().numpy()
    np.testing.assert_allclose(ops.linear_ensemble_forward(X, W, b), y.detach().numpy(),
                               rtol=1e-12, atol=1e-13)
    dX, dW, db = ops.linear_ensemble_backward(X, W, dY.numpy())
    for ours, theirs in ((dX, x.grad), (dW, layer.weight.grad), (db, layer.bias.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=1e-12)


def test_bad_inputs_are_named_errors():
    rng = np.random.default_rng(0)
    X, W, r, s, b = _batch_args(rng, 4, 3, 5, 2, np.float64, False, True)
    with pytest.raises(ValueError, match="r must have shape"):
        ops.batch_ensemble_forward(X, W, r[:, :4], s, b)
    with pytest.raises(ValueError, match="s must have shape"):
        ops.batch_ensemble_forward(X, W, r, s[:2], b)
    with pytest.raises(ValueError, match="X must have shape"):
        ops.batch_ensemble_forward(X[:, :2], W, r, s, b)
    with pytest.raises(TypeError, match="b must have dtype"):
        ops.batch_ensemble_forward(X, W, r, s, b.astype(np.float32))
    with pytest.raises(TypeError, match="X must be a numpy"):
        ops.batch_ensemble_forward(X.tolist(), W, r, s, b)
    Y, U, V = ops.batch_ensemble_forward(X, W, r, s, b)
    with pytest.raises(ValueError, match="dY must have shape"):
        ops.batch_ensemble_backward(X, W, r, s, U, V, Y[:, :2])
    with pytest.raises(ValueError, match="U must have shape"):
        ops.batch_ensemble_backward(X, W, r, s, U[:3], V, Y)
    with pytest.raises(TypeError, match="need_dX"):
        ops.batch_ensemble_backward(X, W, r, s, U, V, Y, need_dX="no")
    with pytest.raises(ValueError, match="W must have shape"):
        ops.linear_ensemble_forward(X, np.zeros((3, 0, 2)))
    with pytest.raises(ValueError, match="X must have shape"):
        ops.linear_ensemble_forward(X, rng.standard_normal((4, 5, 2)))
    with pytest.raises(TypeError, match="bias"):
        ops.linear_ensemble_backward(X, rng.standard_normal((3, 5, 2)), Y, bias=1)
    # a failed call changed nothing: the same call again gives the same numbers
    again = ops.batch_ensemble_forward(X, W, r, s, b)
    assert all(np.array_equal(p, q) for p, q in zip(again, (Y, U, V)))
