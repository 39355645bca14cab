"""fastbp.LayerNorm: the compiled kernels against the reference (1e-12 in float64) and
PyTorch's ``torch.nn.LayerNorm``; a model with the layer against PyTorch over 25
training steps; central differences, files, Ensemble, ONNX (onnxruntime) and C (the
system compiler) exports; bad input."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import Dense, LayerNorm, Sequential, export, ops
from fastbp import reference as ref

from conftest import DTYPES, assert_close, central_differences, tol, tols
from layer_checks import check_ensemble_members_end_alone, check_files_and_exports


def _data(dtype, n=9, k=6, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, k)) * 3 + rng.normal(size=k)).astype(dtype)
    return X, rng.normal(size=k).astype(dtype), rng.normal(size=k).astype(dtype), \
        rng.normal(size=(n, k)).astype(dtype)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_ops_are_the_reference(dtype, affine):
    X, g, b, dA = _data(dtype)
    if not affine:
        g = b = None
    got, want = ops.layer_norm_forward(X, g, b, 1e-3), ref.layer_norm_forward(X, g, b, 1e-3)
    for a, e in zip(got, want):
        np.testing.assert_allclose(a, e, **tols(dtype, "layer"))
        assert a.dtype == dtype
    A, Xhat, rstd = got
    got = ops.layer_norm_backward(Xhat, rstd, g, dA)
    want = ref.layer_norm_backward(Xhat, rstd, g, dA)
    for a, e in zip(got, want):
        if e is None:
            assert a is None
        else:
            assert_close(a, e, dtype, rtol=tol(dtype, "layer_rtol"))
    assert ops.layer_norm_backward(Xhat, rstd, g, dA, need_dX=False)[0] is None


def test_an_empty_batch_gives_zero_gradients():
    X = np.zeros((0, 3))
    A, Xhat, rstd = ops.layer_norm_forward(X, np.ones(3), np.zeros(3))
    assert A.shape == (0, 3) and rstd.shape == (0,)
    dX, dg, db = ops.layer_norm_backward(Xhat, rstd, np.ones(3), X)
    assert dX.shape == (0, 3) and not dg.any() and not db.any()


@pytest.mark.parametrize("affine", [True, False])
def test_the_layer_is_pytorchs_layer_norm(affine):
    torch = pytest.importorskip("torch")
    X, g, b, dA = _data(np.float64, n=11, k=7, seed=3)
    layer = LayerNorm(7, eps=1e-4, affine=affine, dtype="float64")
    tl = torch.nn.LayerNorm(7, eps=1e-4, elementwise_affine=affine, dtype=torch.float64)
    if affine:
        layer.gamma, layer.beta = g, b
        tl.weight.data[:] = torch.tensor(g)
        tl.bias.data[:] = torch.tensor(b)
    x = torch.tensor(X, requires_grad=True)
    y = tl(x)
    y.backward(torch.tensor(dA))
    np.testing.assert_allclose(layer.forward(X), y.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.backward(dA), x.grad.numpy(), rtol=1e-12, atol=1e-14)
    if affine:
        np.testing.assert_allclose(layer.dgamma, tl.weight.grad.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(layer.dbeta, tl.bias.grad.numpy(), rtol=1e-12, atol=1e-14)
    else:
        assert layer.parameters() == [] and layer.gamma is None


def _torch_twin(torch, model):
    """A torch.nn.Sequential of the same layers and values (Dense, LayerNorm, ReLU)."""
    mods = []
    for layer in model.layers:
        if layer.kind == "dense":
            lin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            lin.weight.data[:] = torch.tensor(layer.W.T)
            lin.bias.data[:] = torch.tensor(layer.b)
            mods.append(lin)
            if layer.activation == "relu":
                mods.append(torch.nn.ReLU())
        else:
            ln = torch.nn.LayerNorm(layer.in_features, eps=layer.eps, dtype=torch.float64)
            ln.weight.data[:] = torch.tensor(layer.gamma)
            ln.bias.data[:] = torch.tensor(layer.beta)
            mods.append(ln)
    return torch.nn.Sequential(*mods)


def test_25_training_steps_equal_pytorchs():
    """Dense -> LayerNorm -> relu Dense -> LayerNorm -> Dense, cross-entropy, AdamW with
    weight decay on every parameter (as torch's), 25 mini-batch steps: the parameters
    equal PyTorch's to 1e-9."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) * 2
    y = rng.integers(0, 3, 200)
    model = Sequential([Dense(5, 16, dtype="float64", seed=1), LayerNorm(16, dtype="float64"),
                        Dense(16, 8, "relu", dtype="float64", seed=2),
                        LayerNorm(8, eps=1e-3, dtype="float64"),
                        Dense(8, 3, dtype="float64", seed=3)], "cross_entropy")
    for layer in (model.layers[1], model.layers[3]):   # not the initial 1 and 0
        layer.gamma = rng.uniform(0.5, 1.5, layer.in_features)
        layer.beta = rng.normal(size=layer.in_features) * 0.1
    net = _torch_twin(torch, model)
    opt = fastbp.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    topt = torch.optim.AdamW(net.parameters(), lr=0.01, weight_decay=0.05)
    for step in range(25):
        rows = rng.choice(200, 16, replace=False)
        loss = model.train_step(X[rows], y[rows], opt)
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(net(torch.tensor(X[rows])),
                                                  torch.tensor(y[rows]))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-9)
    theirs = [p.detach().numpy() for p in net.parameters()]
    ours = [p.T if p.ndim == 2 else p for p in model.parameters()]
    assert len(theirs) == len(ours) == 10
    for a, e in zip(ours, theirs):
        np.testing.assert_allclose(a, e, rtol=1e-9, atol=1e-12)


def test_gradcheck_files_ensemble_and_exports(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    X = np.random.default_rng(0).normal(size=(40, 4)) * 2
    y = np.random.default_rng(1).integers(0, 3, 40)
    for dtype in DTYPES:
        # eps 2**-10 is a float32: ONNX's LayerNormalization; 1e-2 in float64 is not: its
        # formula in elementary operators
        model = Sequential([Dense(4, 8, "tanh", dtype=dtype, seed=1),
                            LayerNorm(8, eps=2.0**-10, dtype=dtype),
                            Dense(8, 6, "relu", dtype=dtype, seed=3),
                            LayerNorm(6, affine=False, eps=1e-2, dtype=dtype),
                            Dense(6, 3, dtype=dtype, seed=2)], "cross_entropy")
        model.fit(X, y, epochs=3, batch_size=8, progress=False)
        assert not np.array_equal(model.layers[1].gamma, np.ones(8))   # it trained
        Xd = X.astype(dtype)
        # the compiled forward is the layers' own forward, one after the other
        out = Xd
        for layer in model.layers:
            out = layer.forward(out)
        assert_close(model.forward(Xd), out, dtype)
        assert fastbp.gradcheck(model, X[:6], y[:6]).ok
        onnx_model = export.to_onnx(model, output="raw")
        assert (b"LayerNormalization" in onnx_model) and (b"ReduceMean" in onnx_model) == \
            (dtype == np.float64)
        check_files_and_exports(model, X, tmp_path, f"ln_{np.dtype(dtype).name}", ort)
    check_ensemble_members_end_alone(
        lambda s: Sequential([Dense(4, 8, dtype="float64", seed=s), LayerNorm(8, dtype="float64"),
                              Dense(8, 3, dtype="float64", seed=s + 10)], "cross_entropy"), X, y)


def test_the_kernels_gradients_arecentral_differences():
    """dX, dγ, dβ of the kernel against central differences of Σ A·dA; a backward
    without the x̂·mean(g·x̂) term (a plausible mistake) is far from them."""
    X, g, b, dA = _data(np.float64, n=4, k=5, seed=7)
    loss = lambda: float((ops.layer_norm_forward(X, g, b)[0] * dA).sum())
    A, Xhat, rstd = ops.layer_norm_forward(X, g, b)
    dX, dg, db = ops.layer_norm_backward(Xhat, rstd, g, dA)
    for analytic, wrt in ((dX, X), (dg, g), (db, b)):
        np.testing.assert_allclose(analytic, central_differences(loss, wrt), rtol=1e-6,
                                   atol=1e-8)
    gg = dA * g
    wrong = rstd[:, None] * (gg - gg.mean(axis=1, keepdims=True))
    assert np.abs(wrong - central_differences(loss, X)).max() > 1e-2


def test_bad_layer_norms_are_refused():
    with pytest.raises(ValueError, match="eps must be > 0"):
        LayerNorm(4, eps=0.0)
    with pytest.raises(ValueError, match="eps must be finite"):
        LayerNorm(4, eps=float("nan"))
    with pytest.raises(TypeError, match="eps must be a real number"):
        LayerNorm(4, eps="1e-5")
    with pytest.raises(TypeError, match="affine"):
        LayerNorm(4, affine="no")
    with pytest.raises(ValueError, match="n_features"):
        LayerNorm(0)
    with pytest.raises(ValueError, match=r"layers\[1\] takes 5 inputs but layers\[0\] gives 4"):
        Sequential([Dense(3, 4), LayerNorm(5), Dense(5, 1)], "mse")
    with pytest.raises(TypeError, match="dtype"):
        Sequential([Dense(3, 4, dtype="float64"), LayerNorm(4), Dense(4, 1, dtype="float64")],
                   "mse")
    layer = LayerNorm(3)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        layer.gamma = np.ones(4)
    with pytest.raises(ValueError, match="finite"):
        layer.beta = [0.0, np.inf, 0.0]
    assert (layer.gamma == 1).all() and (layer.beta == 0).all()
    with pytest.raises(AttributeError, match="affine=False"):
        LayerNorm(3, affine=False).gamma = np.ones(3)
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="X must have 3 features"):
        layer.forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match="both be arrays or both be None"):
        ops.layer_norm_forward(np.ones((2, 3)), np.ones(3), None)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        ref.layer_norm_forward(np.ones((2, 3)), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="eps must be > 0"):
        ops.layer_norm_forward(np.ones((2, 3)), None, None, eps=-1.0)
    with pytest.raises(ValueError, match=r"rstd must have shape \(2,\)"):
        ops.layer_norm_backward(np.ones((2, 3)), np.ones(3), None, np.ones((2, 3)))
    model = Sequential([Dense(3, 4), LayerNorm(4), Dense(4, 1)], "mse")
    with pytest.raises(NotImplementedError, match="jacobian needs Dense layers"):
        model.jacobian(np.ones((2, 3)))
