"""fastbp.BatchNorm (torch.nn.BatchNorm1d): the layer against PyTorch's module in both
modes (the running statistics too), a model with it against PyTorch over 25 training
steps, train()/eval(), central differences, files (the running statistics travel),
Ensemble, ONNX (onnxruntime) and C (the system compiler) exports; bad input."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import Activation, BatchNorm, Dense, Dropout, Residual, Sequential

from conftest import DTYPES
from layer_checks import check_ensemble_members_end_alone, check_files_and_exports


def _torch_bn(torch, layer):
    bn = torch.nn.BatchNorm1d(layer.in_features, eps=layer.eps, momentum=layer.momentum,
                              affine=layer.affine, dtype=torch.float64)
    with torch.no_grad():
        if layer.affine:
            bn.weight[:] = torch.tensor(layer.gamma)
            bn.bias[:] = torch.tensor(layer.beta)
        bn.running_mean[:] = torch.tensor(layer.running_mean)
        bn.running_var[:] = torch.tensor(layer.running_var)
    return bn


@pytest.mark.parametrize("affine", [True, False])
def test_the_layer_is_pytorchs_batch_norm_in_both_modes(affine):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    layer = BatchNorm(6, eps=1e-3, momentum=0.3, affine=affine, dtype="float64")
    if affine:
        layer.gamma, layer.beta = rng.uniform(0.5, 2, 6), rng.normal(size=6)
    bn = _torch_bn(torch, layer)
    for _ in range(3):   # training: batch statistics; the running ones move
        X = rng.normal(size=(9, 6)) * 3 + 1
        dA = rng.normal(size=(9, 6))
        x = torch.tensor(X, requires_grad=True)
        out = bn(x)
        out.backward(torch.tensor(dA))
        np.testing.assert_allclose(layer.forward(X), out.detach().numpy(), rtol=1e-12,
                                   atol=1e-13)
        np.testing.assert_allclose(layer.backward(dA), x.grad.numpy(), rtol=1e-11, atol=1e-13)
        if affine:
            np.testing.assert_allclose(layer.dgamma, bn.weight.grad.numpy(), rtol=1e-12)
            np.testing.assert_allclose(layer.dbeta, bn.bias.grad.numpy(), rtol=1e-12)
            bn.weight.grad = bn.bias.grad = None
        np.testing.assert_allclose(layer.running_mean, bn.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(layer.running_var, bn.running_var.numpy(), rtol=1e-12)
    layer.training = False   # inference: the running statistics, nothing moves
    bn.eval()
    before = layer.running_mean.copy()
    X = rng.normal(size=(5, 6))
    x = torch.tensor(X, requires_grad=True)
    out = bn(x)
    out.backward(torch.tensor(np.ones((5, 6))))
    np.testing.assert_allclose(layer.forward(X), out.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(layer.backward(np.ones((5, 6))), x.grad.numpy(), rtol=1e-12)
    if affine:
        np.testing.assert_allclose(layer.dgamma, bn.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(layer.running_mean, before)


def _model(dtype, p=0.0, dropout_seed=0):
    block = Residual([BatchNorm(8, dtype=dtype), Dense(8, 16, "relu", dtype=dtype, seed=2),
                      Dropout(p), Dense(16, 8, dtype=dtype, seed=3)]) if p else \
        Residual([BatchNorm(8, dtype=dtype), Dense(8, 16, "relu", dtype=dtype, seed=2),
                  Dense(16, 8, dtype=dtype, seed=3)])
    return Sequential([Dense(5, 8, dtype=dtype, seed=1), block, BatchNorm(8, dtype=dtype),
                       Activation("relu"), Dense(8, 3, dtype=dtype, seed=4)], "cross_entropy",
                      dropout_seed=dropout_seed)


def test_25_training_steps_equal_pytorchs():
    """The tabular ResNet's block with BatchNorm: parameters and running statistics
    after 25 SGD steps equal PyTorch's (1e-9), and so do the eval-mode predictions."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) * 2
    y = rng.integers(0, 3, 200)
    model = _model("float64")
    d0, block, bn1, _, d1 = model.layers
    bn0, d2, d3 = block.layers

    def lin(layer):
        m = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
        with torch.no_grad():
            m.weight[:] = torch.tensor(layer.W.T)
            m.bias[:] = torch.tensor(layer.b)
        return m

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.d0, self.bn0, self.d2, self.d3 = lin(d0), _torch_bn(torch, bn0), lin(d2), lin(d3)
            self.bn1, self.d1 = _torch_bn(torch, bn1), lin(d1)

        def forward(self, x):
            h = self.d0(x)
            h = h + self.d3(torch.relu(self.d2(self.bn0(h))))
            return self.d1(torch.relu(self.bn1(h)))

    net = Net()
    opt = fastbp.SGD(model.parameters(), lr=0.05, momentum=0.9)
    topt = torch.optim.SGD([net.d0.weight, net.d0.bias, net.bn0.weight, net.bn0.bias,
                            net.d2.weight, net.d2.bias, net.d3.weight, net.d3.bias,
                            net.bn1.weight, net.bn1.bias, net.d1.weight, net.d1.bias],
                           lr=0.05, momentum=0.9)
    for _ in range(25):
        rows = rng.choice(200, 32, replace=False)
        loss = model.train_step(X[rows], y[rows], opt)
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(net(torch.tensor(X[rows])),
                                                  torch.tensor(y[rows]))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-10)
    for a, e in zip(model.parameters(), topt.param_groups[0]["params"]):
        e = e.detach().numpy()
        np.testing.assert_allclose(a.T if a.ndim == 2 else a, e, rtol=1e-9, atol=1e-12)
    for ours, theirs in ((bn0, net.bn0), (bn1, net.bn1)):
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-9,
                                   atol=1e-12)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-9)
    net.eval()
    np.testing.assert_allclose(model.forward(X), net(torch.tensor(X)).detach().numpy(),
                               rtol=1e-9, atol=1e-12)


def test_modes_and_the_models_own_calls():
    X = np.random.default_rng(0).normal(size=(30, 5))
    y = np.random.default_rng(1).integers(0, 3, 30)
    model = _model("float64")
    assert model.training
    bn = model.layers[2]
    model.fit(X, y, epochs=1, batch_size=10, progress=False)
    moved = bn.running_mean.copy()
    assert not np.array_equal(moved, 0)
    # inference never moves the running statistics, in either mode
    p1 = model.predict_proba(X)
    assert model.eval() is model and not model.training and not bn.training
    np.testing.assert_array_equal(model.predict_proba(X), p1)
    np.testing.assert_array_equal(bn.running_mean, moved)
    # a layer's own forward follows its flag: eval uses the running statistics
    H = model.layers[1].forward(model.layers[0].forward(X))
    np.testing.assert_allclose(bn.forward(H), (H - bn.running_mean) / np.sqrt(
        bn.running_var + bn.eps) * bn.gamma + bn.beta, rtol=1e-12)
    # training calls train whatever the flag says (and update the statistics)
    model.fit(X, y, epochs=1, batch_size=10, progress=False)
    assert not np.array_equal(bn.running_mean, moved) and not model.training
    model.train()
    assert all(layer.training for layer in fastbp.layers.engine_layers(model.layers))


def test_gradcheck_files_ensemble_and_exports(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    X = np.random.default_rng(0).normal(size=(40, 5)) * 2
    y = np.random.default_rng(1).integers(0, 3, 40)
    for dtype in DTYPES:
        model = _model(dtype, p=0.2)
        model.fit(X, y, epochs=2, batch_size=8, progress=False)
        bn = model.layers[2]
        stats = bn.running_mean.copy(), bn.running_var.copy()
        model.eval()
        assert fastbp.gradcheck(model, X[:6], y[:6]).ok     # batch statistics, masks fixed
        # gradcheck put the running statistics and the modes back
        np.testing.assert_array_equal(bn.running_mean, stats[0])
        np.testing.assert_array_equal(bn.running_var, stats[1])
        assert not model.training
        loaded_path = tmp_path / "m.fastbp"
        model.save(loaded_path)
        np.testing.assert_array_equal(fastbp.load(loaded_path).layers[2].running_var,
                                      bn.running_var)
        check_files_and_exports(model, X, tmp_path, f"bn_{np.dtype(dtype).name}", ort)
    check_ensemble_members_end_alone(lambda s: _model("float64", p=0.1, dropout_seed=s), X, y,
                                     batch_size=8)


def test_bad_batch_norms_are_refused(tmp_path):
    with pytest.raises(ValueError, match="eps must be > 0"):
        BatchNorm(4, eps=0)
    with pytest.raises(ValueError, match="momentum must be <= 1"):
        BatchNorm(4, momentum=1.5)
    with pytest.raises(TypeError, match="momentum must be a real number"):
        BatchNorm(4, momentum="0.1")
    with pytest.raises(TypeError, match="affine"):
        BatchNorm(4, affine="no")
    layer = BatchNorm(3)
    with pytest.raises(ValueError, match="running_var must hold values >= 0"):
        layer.running_var = [1.0, -1.0, 1.0]
    with pytest.raises(ValueError, match="at least 2 samples"):
        layer.forward(np.ones((1, 3)))
    np.testing.assert_array_equal(layer.running_mean, 0)
    layer.training = False
    assert layer.forward(np.ones((1, 3))).shape == (1, 3)   # inference takes one sample
    X = np.random.default_rng(0).normal(size=(33, 5))
    y = np.random.default_rng(1).integers(0, 3, 33)
    model = _model("float64")
    before = [p.copy() for p in model.parameters()]
    with pytest.raises(ValueError, match="at least 2 samples in every training batch"):
        model.fit(X, y, epochs=1, batch_size=16, progress=False)    # a last batch of 1
    opt = fastbp.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="at least 2 samples"):
        model.train_step(X[:1], y[:1], opt)
    with pytest.raises(ValueError, match="at least 2 samples"):
        model.train_step(X[:1], y[:1], opt)     # the fast path of a second call too
    for p, q in zip(model.parameters(), before):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(model.layers[2].running_mean, 0)
    model.fit(X, y, epochs=1, batch_size=11, progress=False)   # 3 batches of 11: fine
    # a file whose running variance is negative is refused
    model.save(tmp_path / "m.fastbp")
    import fastbp._storage as storage
    header, arrays = storage.read_archive(tmp_path / "m.fastbp")
    arrays["layers/2/running_var"] = -np.ones(8)
    storage.write_archive(tmp_path / "bad.fastbp", header, arrays)
    with pytest.raises(ValueError, match="running_var >= 0"):
        fastbp.load(tmp_path / "bad.fastbp")
