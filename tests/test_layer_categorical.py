"""fastbp.CategoricalEmbedding (torch.nn.Embedding per coded column, concatenated after
the numeric columns): the kernels against the reference (exact: copies and sums), both
against torch.nn.Embedding run side by side on the same tables, 25 AdamW steps of a
model with numeric and coded columns against PyTorch, central differences, files,
Ensemble, ONNX (onnxruntime) and C (the system compiler) exports; bad codes and
misplaced layers."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import CategoricalEmbedding, Dense, Residual, Sequential, ops
from fastbp import reference as ref

from conftest import DTYPES
from layer_checks import (check_cross_entropy_steps_equal_torch, check_ensemble_members_end_alone,
                          check_files_and_exports)


def _data(n=60, seed=0):
    """Five columns: 1 and 3 coded (4 and 7 categories), the others numeric; a label
    that needs the categories."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    X[:, 1] = rng.integers(0, 4, n)
    X[:, 3] = rng.integers(0, 7, n)
    y = ((X[:, 1] == 2) ^ (X[:, 0] > 0)).astype(int) + (X[:, 3] > 4)
    return X, y


@pytest.mark.parametrize("dtype", DTYPES)
def test_ops_are_the_reference(dtype):
    X, _ = _data()
    X = X.astype(dtype)
    rng = np.random.default_rng(1)
    tables = [rng.normal(size=(4, 3)).astype(dtype), rng.normal(size=(7, 2)).astype(dtype)]
    A = ops.categorical_embedding_forward(X, [3, 1], tables[::-1])   # columns in any order
    np.testing.assert_array_equal(A, ref.categorical_embedding_forward(X, [3, 1], tables[::-1]))
    assert A.shape == (60, 3 + 2 + 3)
    np.testing.assert_array_equal(A[:, :3], X[:, [0, 2, 4]])
    np.testing.assert_array_equal(A[:, 3:5], tables[1][X[:, 3].astype(int)])
    dA = rng.normal(size=A.shape).astype(dtype)
    dX, dT = ops.categorical_embedding_backward(X, [3, 1], tables[::-1], dA)
    rdX, rdT = ref.categorical_embedding_backward(X, [3, 1], tables[::-1], dA)
    np.testing.assert_array_equal(dX, rdX)
    assert not dX[:, [1, 3]].any()
    for a, e in zip(dT, rdT):   # sums in another order: to rounding
        np.testing.assert_allclose(a, e, rtol=1e-12 if dtype == np.float64 else 1e-5,
                                   atol=1e-12 if dtype == np.float64 else 1e-5)


def test_the_layer_is_torch_embedding_per_column():
    torch = pytest.importorskip("torch")
    X, _ = _data()
    layer = CategoricalEmbedding(5, [1, 3], [4, 7], [3, 2], dtype="float64", seed=0)
    embs = [torch.nn.Embedding.from_pretrained(torch.tensor(t), freeze=False)
            for t in layer.tables]
    xn = torch.tensor(X[:, [0, 2, 4]], requires_grad=True)
    out = torch.cat([xn] + [e(torch.tensor(X[:, c].astype(np.int64)))
                            for e, c in zip(embs, [1, 3])], dim=1)
    dA = np.random.default_rng(2).normal(size=out.shape)
    out.backward(torch.tensor(dA))
    np.testing.assert_array_equal(layer.forward(X), out.detach().numpy())
    dX = layer.backward(dA)
    np.testing.assert_array_equal(dX[:, [0, 2, 4]], xn.grad.numpy())
    for g, e in zip(layer.gradients(), embs):
        np.testing.assert_allclose(g, e.weight.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_25_steps_equal_pytorchs():
    """Embeddings, then 2 x 32 relu, AdamW with weight decay (on every parameter, as
    torch's AdamW): 25 steps, parameters to 1e-9."""
    torch = pytest.importorskip("torch")
    X, y = _data(256)
    emb = CategoricalEmbedding(5, [1, 3], [4, 7], 4, dtype="float64", seed=0)
    model = Sequential([emb, Dense(emb.out_features, 32, "relu", dtype="float64", seed=1),
                        Dense(32, 32, "relu", dtype="float64", seed=2),
                        Dense(32, 3, dtype="float64", seed=3)], "cross_entropy")
    embs = [torch.nn.Embedding.from_pretrained(torch.tensor(t), freeze=False)
            for t in emb.tables]
    lins = []
    for layer in model.layers[1:]:
        lin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
        with torch.no_grad():
            lin.weight[:] = torch.tensor(layer.W.T)
            lin.bias[:] = torch.tensor(layer.b)
        lins.append(lin)
    mlp = torch.nn.Sequential(lins[0], torch.nn.ReLU(), lins[1], torch.nn.ReLU(), lins[2])

    def net(x):
        return mlp(torch.cat([x[:, [0, 2, 4]]] + [e(x[:, c].long())
                                                   for e, c in zip(embs, [1, 3])], dim=1))
    params = [e.weight for e in embs] + list(mlp.parameters())
    opt = fastbp.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    topt = torch.optim.AdamW(params, lr=1e-2, weight_decay=1e-2)
    theirs = [e.weight for e in embs] + [p for lin in lins for p in (lin.weight.T, lin.bias)]
    check_cross_entropy_steps_equal_torch(model, opt, net, topt, X, y, theirs)


def test_gradcheck_files_ensemble_and_exports(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    X, y = _data()
    for dtype in DTYPES:
        emb = CategoricalEmbedding(5, [3, 1], [7, 4], [2, 3], dtype=dtype, seed=0)
        model = Sequential([emb, Dense(8, 8, "tanh", dtype=dtype, seed=1),
                            Dense(8, 3, dtype=dtype, seed=2)], "cross_entropy")
        before = [t.copy() for t in emb.tables]
        model.fit(X, y, epochs=3, batch_size=8, progress=False)
        assert all(not np.array_equal(t, b) for t, b in zip(emb.tables, before))
        assert fastbp.gradcheck(model, X[:6], y[:6]).ok
        check_files_and_exports(model, X, tmp_path, f"cat_{np.dtype(dtype).name}", ort)
    # every column coded (no numeric part)
    allcoded = Sequential([CategoricalEmbedding(2, [1, 0], [7, 4], 2, dtype="float64", seed=0),
                           Dense(4, 1, dtype="float64", seed=1)], "mse")
    allcoded.fit(X[:, [1, 3]], X[:, 0], epochs=2, progress=False)
    check_files_and_exports(allcoded, X[:, [1, 3]], tmp_path, "cat_all", ort)
    check_ensemble_members_end_alone(
        lambda s: Sequential([CategoricalEmbedding(5, [1, 3], [4, 7], 2, dtype="float64",
                                                   seed=s),
                              Dense(7, 3, dtype="float64", seed=s + 10)], "cross_entropy"),
        X, y)


def test_bad_codes_are_refused_and_nothing_changes():
    X, y = _data()
    emb = CategoricalEmbedding(5, [1, 3], [4, 7], 2, seed=0)
    model = Sequential([emb, Dense(7, 3, seed=1)], "cross_entropy")
    model.fit(X, y, epochs=1, progress=False)
    kept = [p.copy() for p in model.parameters()]
    for value, what in ((7, "7.0"), (-1, "-1.0"), (2.5, "2.5"), (np.nan, "nan")):
        bad = X.copy()
        bad[4, 3] = value
        for call in (lambda: model.predict(bad), lambda: model.forward(bad),
                     lambda: model.fit(bad, y, epochs=1, progress=False),
                     lambda: model.train_step(bad[:8], y[:8], fastbp.SGD(model.parameters())),
                     lambda: emb.forward(bad),
                     lambda: ops.categorical_embedding_forward(bad.astype(np.float32), [1, 3],
                                                                   emb.tables)):
            with pytest.raises(ValueError, match=rf"X\[4, 3\] = {what} is not a code of "
                                                 r"categorical column 3 \(an integer in 0..6\)"):
                call()
    for p, q in zip(model.parameters(), kept):
        np.testing.assert_array_equal(p, q)
    assert model.predict(X).shape == (60,)   # a second call after the failed ones
    with pytest.raises(ValueError, match="validation_data X"):
        bad = X.copy()
        bad[0, 1] = 9
        model.fit(X, y, epochs=1, validation_data=(bad, y), progress=False)


def test_bad_layers_are_refused():
    with pytest.raises(ValueError, match="columns must be distinct"):
        CategoricalEmbedding(3, [1, 1], 4, 2)
    with pytest.raises(ValueError, match=r"columns must be distinct columns of X in \[0, 3\)"):
        CategoricalEmbedding(3, [3], 4, 2)
    with pytest.raises(ValueError, match="columns must name at least one"):
        CategoricalEmbedding(3, [], 4, 2)
    with pytest.raises(ValueError, match=r"cardinalities\[1\] must be >= 1"):
        CategoricalEmbedding(3, [0, 1], [4, 0], 2)
    with pytest.raises(ValueError, match="dim must hold 2 values"):
        CategoricalEmbedding(3, [0, 1], 4, [2])
    with pytest.raises(TypeError, match=r"columns\[0\] must be an int"):
        CategoricalEmbedding(3, ["a"], 4, 2)
    with pytest.raises(TypeError, match="dim must be an int or a sequence of ints"):
        CategoricalEmbedding(3, [0], 4, 2.0)
    emb = CategoricalEmbedding(3, [0], 4, 2)
    with pytest.raises(ValueError, match=r"layers\[1\] \(CategoricalEmbedding\) reads the "
                                         "model's input"):
        Sequential([Dense(3, 3), emb, Dense(4, 1)], "mse")
    with pytest.raises(ValueError, match="inside a Residual"):
        Residual([CategoricalEmbedding(2, [0, 1], 4, 1)])
    with pytest.raises(ValueError, match=r"tables\[0\] must have at least one row"):
        ops.categorical_embedding_forward(np.zeros((2, 2)), [0], [np.zeros((0, 2))])
    with pytest.raises(TypeError, match="tables must be a list of 1 arrays"):
        ref.categorical_embedding_forward(np.zeros((2, 2)), [0], [])
    with pytest.raises(ValueError, match=r"dA must have shape \(2, 3\)"):
        ops.categorical_embedding_backward(np.zeros((2, 2)), [0], [np.zeros((1, 2))],
                                           np.zeros((2, 2)))
    model = Sequential([emb, Dense(4, 1)], "mse")
    with pytest.raises(TypeError, match="sparse input needs a Dense first layer"):
        import scipy.sparse
        model.predict(scipy.sparse.csr_matrix(np.zeros((2, 3))))
    with pytest.raises(NotImplementedError, match="jacobian needs Dense layers"):
        model.jacobian(np.zeros((2, 3)))
