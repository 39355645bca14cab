"""fastbp.Residual (x + f(x)): the compiled engine against the layers' own forward and
backward, against PyTorch over 25 training steps of a ResNet-style model (the
"Revisiting deep learning models for tabular data" block: Dense, LayerNorm, relu,
Dropout, Dense, plus the skip); central differences (dropout inside a block included),
files, Ensemble, ONNX (onnxruntime) and C (the system compiler) exports; bad input."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import Activation, Dense, Dropout, LayerNorm, Residual, Sequential

from conftest import DTYPES, assert_close, tol
from layer_checks import check_ensemble_members_end_alone, check_files_and_exports


def _block(width, hidden, dtype, seed, p=0.0, norm=True):
    inner = [LayerNorm(width, dtype=dtype)] if norm else []
    inner += [Dense(width, hidden, "relu", dtype=dtype, seed=seed)]
    inner += [Dropout(p)] if p else []
    return Residual(inner + [Dense(hidden, width, dtype=dtype, seed=seed + 1)])


def _resnet(dtype, p=0.0, n_in=5, width=8, n_out=3, loss="cross_entropy", dropout_seed=0):
    return Sequential([Dense(n_in, width, dtype=dtype, seed=1), _block(width, 16, dtype, 2, p),
                       _block(width, 12, dtype, 4, p), LayerNorm(width, dtype=dtype),
                       Activation("relu"), Dense(width, n_out, dtype=dtype, seed=6)], loss,
                      dropout_seed=dropout_seed)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_engine_is_the_layers_own_forward_and_backward(dtype):
    X = np.random.default_rng(0).normal(size=(20, 5)).astype(dtype)
    y = np.random.default_rng(1).normal(size=(20, 3)).astype(dtype)
    model = _resnet(dtype, loss="mse")
    out = X
    for layer in model.layers:
        out = layer.forward(out)
    assert_close(model.forward(X), out, dtype)
    # the layers' backward, from the loss gradient down
    loss, d = fastbp.ops.loss_forward_backward("mse", out, y)
    for layer in reversed(model.layers):
        d = layer.backward(d)
    by_layers = [g.copy() for g in model.gradients()]
    assert model.backward(X, y) == pytest.approx(loss, rel=tol(dtype))
    assert len(by_layers) == 18
    for a, e in zip(model.gradients(), by_layers):
        assert_close(a, e, dtype, rtol=tol(dtype, "layer_rtol") * 10)


def test_a_block_is_x_plus_f_of_x():
    block = Residual([Dense(3, 4, "tanh", dtype="float64", seed=0),
                      Dense(4, 3, dtype="float64", seed=1)])
    X = np.random.default_rng(0).normal(size=(6, 3))
    f = block.layers[1].forward(block.layers[0].forward(X))
    np.testing.assert_array_equal(block.forward(X), X + f)
    dA = np.random.default_rng(1).normal(size=(6, 3))
    inner = block.layers[0].backward(block.layers[1].backward(dA))
    np.testing.assert_array_equal(block.backward(dA), dA + inner)


def _torch_twin(torch, layers):
    mods = []
    for layer in layers:
        if layer.kind == "dense":
            lin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            lin.weight.data[:] = torch.tensor(layer.W.T)
            lin.bias.data[:] = torch.tensor(layer.b)
            mods.append(lin)
            if layer.activation == "relu":
                mods.append(torch.nn.ReLU())
        elif layer.kind == "layer_norm":
            ln = torch.nn.LayerNorm(layer.in_features, eps=layer.eps, dtype=torch.float64)
            ln.weight.data[:] = torch.tensor(layer.gamma)
            ln.bias.data[:] = torch.tensor(layer.beta)
            mods.append(ln)
        elif layer.kind == "activation":
            mods.append(torch.nn.ReLU())
        else:
            mods.append(_Skip(torch, _torch_twin(torch, layer.layers)))
    return torch.nn.Sequential(*mods)


def _Skip(torch, inner):
    class Skip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return x + self.inner(x)
    return Skip()


def test_25_training_steps_of_a_resnet_equal_pytorchs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)) * 2
    y = rng.integers(0, 3, 300)
    model = _resnet("float64")
    net = _torch_twin(torch, model.layers)
    assert len(list(net.parameters())) == len(model.parameters()) == 18
    opt = fastbp.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    topt = torch.optim.AdamW(net.parameters(), lr=0.01, weight_decay=0.01)
    for _ in range(25):
        rows = rng.choice(300, 32, replace=False)
        loss = model.train_step(X[rows], y[rows], opt)
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(net(torch.tensor(X[rows])),
                                                  torch.tensor(y[rows]))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-9)
    for a, e in zip(model.parameters(), net.parameters()):
        e = e.detach().numpy()
        np.testing.assert_allclose(a.T if a.ndim == 2 else a, e, rtol=1e-9, atol=1e-12)


def test_gradcheck_files_ensemble_and_exports(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    X = np.random.default_rng(0).normal(size=(40, 5))
    y = np.random.default_rng(1).integers(0, 3, 40)
    for dtype in DTYPES:
        model = _resnet(dtype, p=0.2)
        nested = Sequential([Dense(5, 6, dtype=dtype, seed=0),
                             Residual([Residual([Dense(6, 6, "tanh", dtype=dtype, seed=1)]),
                                       Dense(6, 6, "sigmoid", dtype=dtype, seed=2)]),
                             Dense(6, 3, dtype=dtype, seed=3)], "cross_entropy")
        for m in (model, nested):
            before = [p.copy() for p in m.parameters()]
            m.fit(X, y, epochs=2, batch_size=8, progress=False)
            assert all(not np.array_equal(a, b) for a, b in zip(m.parameters(), before)
                       if a.ndim == 2)
            # central differences, with the dropout masks inside the blocks held fixed
            assert fastbp.gradcheck(m, X[:6], y[:6]).ok
            check_files_and_exports(m, X, tmp_path, f"res_{np.dtype(dtype).name}_{len(m.layers)}",
                                    ort)
    check_ensemble_members_end_alone(lambda s: _resnet("float64", p=0.1, dropout_seed=s), X, y)


def test_gradcheck_sees_a_wrong_skip():
    """Central differences fail for a model whose compiled backward drops the skip
    gradient: compare a block against the same layers without the skip."""
    X = np.random.default_rng(0).normal(size=(6, 3))
    y = np.random.default_rng(1).normal(size=(6, 2))
    with_skip = Sequential([Dense(3, 4, "tanh", dtype="float64", seed=0),
                            Residual([Dense(4, 4, "tanh", dtype="float64", seed=1)]),
                            Dense(4, 2, dtype="float64", seed=2)], "mse")
    plain = Sequential([Dense(3, 4, "tanh", dtype="float64", seed=0),
                        Dense(4, 4, "tanh", dtype="float64", seed=1),
                        Dense(4, 2, dtype="float64", seed=2)], "mse")
    with_skip.backward(X, y)
    plain.backward(X, y)
    # the first layer's gradient differs by the skip path's share
    assert np.abs(with_skip.gradients()[0] - plain.gradients()[0]).max() > 1e-3
    assert fastbp.gradcheck(with_skip, X, y).ok


def test_bad_residual_blocks_are_refused():
    with pytest.raises(ValueError, match="maps a width to itself.*take 4 inputs and give 5"):
        Residual([Dense(4, 5)])
    with pytest.raises(ValueError, match=r"layers\[1\] takes 6 inputs but layers\[0\] gives 5"):
        Residual([Dense(4, 5), Dense(6, 4)])
    with pytest.raises(TypeError, match="non-empty"):
        Residual([])
    with pytest.raises(TypeError, match=r"layers\[0\] must be a fastbp layer"):
        Residual([np.eye(3)])
    with pytest.raises(TypeError, match="sequence of fastbp layers"):
        Residual(Dense(3, 3))
    with pytest.raises(TypeError, match="one dtype"):
        Residual([Dense(3, 4), Dense(4, 3, dtype="float64")])
    act = Activation("relu")
    with pytest.raises(ValueError, match="maps a width to itself"):
        Residual([Dense(3, 4), act])
    assert act.in_features is None    # a refused block leaves its layers as they were
    block = Residual([Dense(3, 3)])
    with pytest.raises(ValueError, match=r"layers\[1\] takes 3 inputs but layers\[0\] gives 4"):
        Sequential([Dense(2, 4), block], "mse")
    with pytest.raises(ValueError, match="appears twice"):
        Sequential([Dense(2, 3), block, block], "mse")
    inner = Dense(3, 3)
    with pytest.raises(ValueError, match="appears twice|shares a parameter"):
        Sequential([Dense(2, 3), Residual([inner]), inner], "mse")
    with pytest.raises(ValueError, match="follows .* which has dropout=0.1"):
        Sequential([Dense(2, 3, dropout=0.1), Residual([Dropout(0.2), Dense(3, 3)]),
                    Dense(3, 1)], "mse")
    scipy_sparse = pytest.importorskip("scipy.sparse")
    starts_with_block = Sequential([Residual([Dense(3, 3)]), Dense(3, 1)], "mse")
    with pytest.raises(TypeError, match="Dense first layer"):
        starts_with_block.fit(scipy_sparse.csr_matrix(np.eye(3)), np.ones(3), epochs=1)
    model = Sequential([Dense(2, 3), Residual([Dense(3, 3)]), Dense(3, 1)], "mse")
    with pytest.raises(NotImplementedError, match="jacobian needs Dense layers"):
        model.jacobian(np.ones((2, 2)))
    # a file nesting blocks too deep is refused before any recursion
    spec = {"kind": "dense", "in_features": 3, "out_features": 3, "activation": "identity"}
    for _ in range(40):
        spec = {"kind": "residual", "layers": [spec]}
    with pytest.raises(ValueError, match="nest at most"):
        fastbp.layers.layer_from_spec(spec, np.dtype("float32"))
