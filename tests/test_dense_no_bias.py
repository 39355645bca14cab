"""Dense(..., bias=False) (torch.nn.Linear(..., bias=False)): W alone is a parameter;
training equals PyTorch's, equals a biased layer whose b stays zero only in what it
computes, and works with sparse input, derivatives, files, gradcheck and the exports."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import fastbp
from fastbp import BatchNorm, Dense, Sequential

from layer_checks import check_files_and_exports


def _model(bias=False, dtype="float64"):
    return Sequential([Dense(5, 8, "tanh", dtype=dtype, seed=0, bias=bias),
                       BatchNorm(8, dtype=dtype),
                       Dense(8, 2, dtype=dtype, seed=1, bias=bias)], "mse", dropout_seed=0)


def test_25_steps_equal_pytorchs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 5)), rng.normal(size=(64, 2))
    model = _model()
    assert [p.shape for p in model.parameters()] == [(5, 8), (8,), (8,), (8, 2)]
    net = torch.nn.Sequential(torch.nn.Linear(5, 8, bias=False, dtype=torch.float64),
                              torch.nn.Tanh(), torch.nn.BatchNorm1d(8, dtype=torch.float64),
                              torch.nn.Linear(8, 2, bias=False, dtype=torch.float64))
    with torch.no_grad():
        net[0].weight[:] = torch.tensor(model.layers[0].W.T)
        net[3].weight[:] = torch.tensor(model.layers[2].W.T)
    opt = fastbp.Adam(model.parameters(), lr=0.01)
    topt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(25):
        rows = rng.choice(64, 16, replace=False)
        loss = model.train_step(X[rows], y[rows], opt)
        topt.zero_grad()
        tloss = torch.nn.functional.mse_loss(net(torch.tensor(X[rows])), torch.tensor(y[rows]))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-10)
    for a, e in ((model.layers[0].W, net[0].weight), (model.layers[2].W, net[3].weight)):
        np.testing.assert_allclose(a, e.detach().numpy().T, rtol=1e-9, atol=1e-12)
    assert not model.layers[0].b.any()


def test_sparse_derivatives_gradcheck_files_and_exports(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 5)), rng.normal(size=(40, 2))
    dense = Sequential([Dense(5, 4, "relu", dtype="float64", seed=0, bias=False),
                        Dense(4, 2, dtype="float64", seed=1)], "mse", dropout_seed=0)
    sparse = Sequential([Dense(5, 4, "relu", dtype="float64", seed=0, bias=False),
                         Dense(4, 2, dtype="float64", seed=1)], "mse", dropout_seed=0)
    dense.fit(X, y, epochs=2, seed=3, progress=False)
    sparse.fit(sp.csr_matrix(X), y, epochs=2, seed=3, progress=False)
    for p, q in zip(dense.parameters(), sparse.parameters()):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)
    # derivatives and training on them: as the biased twin whose b is zero
    twin = Sequential([Dense(5, 4, "tanh", dtype="float64", seed=0),
                       Dense(4, 2, dtype="float64", seed=1, bias=False)], "mse")
    np.testing.assert_allclose(twin.jacobian(X[:3]), Sequential(
        [Dense(5, 4, "tanh", dtype="float64", seed=0), Dense(4, 2, dtype="float64", seed=1)],
        "mse").jacobian(X[:3]), rtol=1e-13)
    twin.fit(X, y, epochs=2, dy=np.zeros((40, 2, 5)), progress=False)
    assert not twin.layers[1].b.any() and np.isfinite(twin.layers[1].W).all()
    for dtype in ("float32", "float64"):
        model = _model(dtype=dtype)
        model.fit(X, y, epochs=2, batch_size=8, progress=False)
        assert fastbp.gradcheck(model, X[:6], y[:6]).ok
        check_files_and_exports(model, X, tmp_path, f"nb_{dtype}", ort)


def test_bad_bias_flags_and_assignments():
    with pytest.raises(TypeError, match="bias"):
        Dense(3, 2, bias="no")
    layer = Dense(3, 2, bias=False)
    with pytest.raises(AttributeError, match="no b"):
        layer.b = np.ones(2)
    assert layer.parameters() == [layer.W] and layer.parameter_names() == ("W",)
    assert "bias=False" in repr(layer) and layer.spec()["bias"] is False
    assert "bias" not in Dense(3, 2).spec()     # files of biased layers stay as before
