"""fastbp.PiecewiseLinearEncoding and fastbp.compute_bins (rtdl_num_embeddings'
PiecewiseLinearEncoding and quantile compute_bins): the kernels against the reference
(1e-12 in float64), both against rtdl's module and function run side by side, an
MLP-PLE model against PyTorch over 25 training steps, central differences, files,
Ensemble, ONNX (onnxruntime) and C (the system compiler) exports; bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastbp
from fastbp import Dense, PiecewiseLinearEncoding, Sequential, compute_bins, ops
from fastbp import reference as ref

from conftest import DTYPES, assert_close, tol
from layer_checks import (check_cross_entropy_steps_equal_torch, check_ensemble_members_end_alone,
                          check_files_and_exports)


def _bins(dtype, seed=0):
    """Bins of four features: 9, 9 and 3 edges from quantiles, one lone bin."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 4))
    X[:, 2] = rng.integers(0, 3, 200)          # few distinct values: fewer edges
    bins = compute_bins(X.astype(dtype), 8)
    bins[3] = bins[3][[0, -1]]                 # one bin: min-max scaling, unclamped
    return bins


@pytest.mark.parametrize("dtype", DTYPES)
def test_ops_are_the_reference(dtype):
    bins = _bins(dtype)
    assert [b.size for b in bins] == [9, 9, 3, 2] and all(b.dtype == dtype for b in bins)
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(30, 4)) * 2).astype(dtype)   # inside and beyond the outer edges
    X[0] = [b[1] for b in bins]                        # on edges: the clamps' bounds
    A = ops.piecewise_linear_encoding_forward(X, bins)
    assert A.shape == (30, 8 + 8 + 2 + 1)
    assert_close(A, ref.piecewise_linear_encoding_forward(X, bins), dtype,
                 rtol=tol(dtype, "layer_rtol"))
    dA = rng.normal(size=A.shape).astype(dtype)
    assert_close(ops.piecewise_linear_encoding_backward(X, bins, dA),
                 ref.piecewise_linear_encoding_backward(X, bins, dA), dtype,
                 rtol=tol(dtype, "layer_rtol"))
    empty = np.zeros((0, 4), dtype)
    assert ops.piecewise_linear_encoding_forward(empty, bins).shape == (0, 19)


def test_the_encoding_is_one_then_fraction_then_zero():
    """The formula on one feature, by hand: edges 0, 1, 3, 4."""
    bins = [np.array([0.0, 1.0, 3.0, 4.0])]
    X = np.array([[-1.0], [0.5], [2.0], [3.5], [6.0]])
    want = [[-1.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1.0, 0.5, 0.0], [1.0, 1.0, 0.5],
            [1.0, 1.0, 3.0]]
    np.testing.assert_array_equal(ops.piecewise_linear_encoding_forward(X, bins), want)
    dX = ops.piecewise_linear_encoding_backward(X, bins, np.ones((5, 3)))
    np.testing.assert_array_equal(dX[:, 0], [1.0, 1.0, 0.5, 1.0, 1.0])


def _rtdl():
    torch = pytest.importorskip("torch")
    rtdl = pytest.importorskip("rtdl_num_embeddings")
    return torch, rtdl


@pytest.mark.parametrize("dtype", DTYPES)
def test_compute_bins_is_rtdls(dtype):
    torch, rtdl = _rtdl()
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 3)).astype(dtype)
    X[:, 1] = rng.integers(0, 5, 500)
    ours = compute_bins(X, 16)
    theirs = rtdl.compute_bins(torch.tensor(X), 16)
    assert [b.size for b in ours] == [len(t) for t in theirs]
    for a, e in zip(ours, theirs):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, e.numpy(), rtol=1e-12 if dtype == np.float64 else 1e-6)


def test_the_layer_is_rtdls_piecewise_linear_encoding():
    torch, rtdl = _rtdl()
    bins = _bins(np.float64)
    layer = PiecewiseLinearEncoding(bins, dtype="float64")
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)   # rtdl builds its tables in the default dtype
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # (rtdl warns of the one-bin feature)
            m = rtdl.PiecewiseLinearEncoding([torch.tensor(b) for b in bins])
    finally:
        torch.set_default_dtype(default)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 4)) * 2
    dA = rng.normal(size=(40, layer.out_features))
    x = torch.tensor(X, requires_grad=True)
    out = m(x)
    out.backward(torch.tensor(dA))
    np.testing.assert_allclose(layer.forward(X), out.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.backward(dA), x.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_25_steps_of_an_mlp_ple_equal_pytorchs():
    """Piecewise-linear encoding, 2 x 64 relu, AdamW: 25 steps, parameters to 1e-9."""
    torch, rtdl = _rtdl()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 6))
    y = rng.integers(0, 3, 256)
    bins = compute_bins(X, 12)
    width = sum(b.size - 1 for b in bins)
    model = Sequential([PiecewiseLinearEncoding(bins, dtype="float64"),
                        Dense(width, 64, "relu", dtype="float64", seed=1),
                        Dense(64, 64, "relu", dtype="float64", seed=2),
                        Dense(64, 3, dtype="float64", seed=3)], "cross_entropy")
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        enc = rtdl.PiecewiseLinearEncoding([torch.tensor(b) for b in bins])
    finally:
        torch.set_default_dtype(default)
    lins = []
    for layer in model.layers[1:]:
        lin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
        with torch.no_grad():
            lin.weight[:] = torch.tensor(layer.W.T)
            lin.bias[:] = torch.tensor(layer.b)
        lins.append(lin)
    net = torch.nn.Sequential(enc, lins[0], torch.nn.ReLU(), lins[1], torch.nn.ReLU(), lins[2])
    opt = fastbp.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    topt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    check_cross_entropy_steps_equal_torch(
        model, opt, net, topt, X, y, [p for lin in lins for p in (lin.weight.T, lin.bias)])


def test_gradcheck_files_ensemble_and_exports(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)) * 1.5
    y = rng.integers(0, 3, 40)
    for dtype in DTYPES:
        bins = _bins(dtype)
        # inside a Dense stack too: its dX (the encoding's backward) reaches the first layer
        model = Sequential([Dense(4, 4, "tanh", dtype=dtype, seed=3),
                            PiecewiseLinearEncoding(bins, dtype=dtype),
                            Dense(19, 8, "relu", dtype=dtype, seed=1),
                            Dense(8, 3, dtype=dtype, seed=2)], "cross_entropy")
        before = model.layers[0].W.copy()
        model.fit(X, y, epochs=3, batch_size=8, progress=False)
        assert not np.array_equal(model.layers[0].W, before)
        assert fastbp.gradcheck(model, X[:5], y[:5]).ok
        check_files_and_exports(model, X, tmp_path, f"ple_{np.dtype(dtype).name}", ort)
    check_ensemble_members_end_alone(
        lambda s: Sequential([PiecewiseLinearEncoding(_bins(np.float64), dtype="float64"),
                              Dense(19, 3, dtype="float64", seed=s)], "cross_entropy"), X, y)


def test_bad_bins_and_inputs_are_refused():
    with pytest.raises(ValueError, match=r"bins\[0\] must be strictly increasing"):
        PiecewiseLinearEncoding([np.array([0.0, 1.0, 1.0])])
    with pytest.raises(ValueError, match=r"bins\[1\] must be 1-D with 2 to"):
        PiecewiseLinearEncoding([np.array([0.0, 1.0]), np.array([2.0])])
    with pytest.raises(ValueError, match=r"bins\[0\] must hold finite edges"):
        PiecewiseLinearEncoding([np.array([0.0, np.inf])])
    with pytest.raises(ValueError, match="strictly increasing \\(in float32\\)"):
        PiecewiseLinearEncoding([np.array([1.0, 1.0 + 1e-12])])   # collapses in float32
    with pytest.raises(TypeError, match="bins must be a non-empty list"):
        PiecewiseLinearEncoding(np.array([[0.0, 1.0]]))
    with pytest.raises(TypeError, match="bins must be a non-empty list"):
        PiecewiseLinearEncoding([])
    with pytest.raises(TypeError, match=r"bins\[0\] must hold real numbers"):
        PiecewiseLinearEncoding([np.array(["a", "b"])])
    with pytest.raises(TypeError, match="dtype"):
        PiecewiseLinearEncoding([np.array([0.0, 1.0])], dtype="int32")
    with pytest.raises(ValueError, match="bins must hold one array of edges per column"):
        ops.piecewise_linear_encoding_forward(np.ones((2, 3)), [np.array([0.0, 1.0])])
    with pytest.raises(ValueError, match=r"dA must have shape \(2, 1\)"):
        ref.piecewise_linear_encoding_backward(np.ones((2, 1)), [np.array([0.0, 1.0])],
                                               np.ones((2, 2)))
    layer = PiecewiseLinearEncoding([np.array([0.0, 1.0, 2.0])])
    with pytest.raises(ValueError, match="X must have 1 features"):
        layer.forward(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="forward"):
        PiecewiseLinearEncoding([np.array([0.0, 1.0])]).backward(np.ones((1, 1)))
    with pytest.raises(ValueError, match="read-only"):
        layer.bins[0][0] = 5.0          # the edges are the layer's constants
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="at least two distinct values"):
        compute_bins(np.column_stack([X[:, 0], np.ones(10)]))
    with pytest.raises(ValueError, match=r"n_bins must be in \[2, 10\)"):
        compute_bins(X, 10)
    with pytest.raises(TypeError, match="n_bins must be an int"):
        compute_bins(X, 4.0)
    with pytest.raises(ValueError, match="X must be finite"):
        compute_bins(np.where(X > 1, np.nan, X), 4)
    with pytest.raises(ValueError, match="X must have at least two rows"):
        compute_bins(X[:1], 4)
    with pytest.raises(ValueError, match="2-dimensional"):
        compute_bins(X[:, 0], 4)
    model = Sequential([PiecewiseLinearEncoding(compute_bins(X, 4)), Dense(8, 1)], "mse")
    with pytest.raises(NotImplementedError, match="jacobian needs Dense layers"):
        model.jacobian(np.ones((2, 2)))
