"""fastbp.Activation, the first layer kind beyond Dense (the layer protocol's test): on
its own against the reference and PyTorch's functions; in a model, the same numbers
as the Dense layer that applies that activation itself (fit trajectories equal bit
for bit); files, gradcheck, Ensemble, ONNX (onnxruntime) and C (the system compiler)
exports; width binding and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import Activation, Dense, Sequential, export
from fastbp import reference as ref

from conftest import ACTIVATIONS, DTYPES, assert_close, tol, tols
from test_export import c_predict, compile_shared


def _pair(act, dtype):
    """(Dense(identity) -> Activation(act) -> Dense, Dense(act) -> Dense): one network."""
    split = Sequential([Dense(4, 8, dtype=dtype, seed=1, init="glorot"), Activation(act),
                        Dense(8, 3, dtype=dtype, seed=2)], "cross_entropy")
    fused = Sequential([Dense(4, 8, act, dtype=dtype, seed=1, init="glorot"),
                        Dense(8, 3, dtype=dtype, seed=2)], "cross_entropy")
    return split, fused


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_layer_on_its_own_is_the_reference(act, dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 5)).astype(dtype) * 3
    layer = Activation(act, dtype=dtype)
    A = layer.forward(X)
    np.testing.assert_allclose(A, ref.activation_forward(act, X), **tols(dtype, "layer"))
    dA = rng.normal(size=A.shape).astype(dtype)
    np.testing.assert_allclose(layer.backward(dA), ref.activation_backward(act, X, A, dA),
                               **tols(dtype, "layer"))


@pytest.mark.parametrize("act", ["tanh", "gelu", "silu", "softplus", "elu", "softmax"])
def test_the_layer_is_pytorchs_function(act):
    torch = pytest.importorskip("torch")
    fn = {"tanh": torch.tanh, "gelu": torch.nn.functional.gelu,
          "silu": torch.nn.functional.silu, "softplus": torch.nn.functional.softplus,
          "elu": torch.nn.functional.elu,
          "softmax": lambda z: torch.softmax(z, dim=-1)}[act]
    X = np.random.default_rng(1).normal(size=(6, 4)) * 3
    dA = np.random.default_rng(2).normal(size=(6, 4))
    layer = Activation(act, dtype="float64")
    x = torch.tensor(X, requires_grad=True)
    y = fn(x)
    y.backward(torch.tensor(dA))
    np.testing.assert_allclose(layer.forward(X), y.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(layer.backward(dA), x.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_model_with_the_layer_trains_as_the_fused_dense(act, dtype):
    """Dense(identity) then Activation(f) is Dense(f): the same arithmetic, so the
    same trajectory bit for bit, the same predictions and loss."""
    X = np.random.default_rng(0).normal(size=(120, 4))
    y = np.random.default_rng(1).integers(0, 3, 120)
    split, fused = _pair(act, dtype)
    hs = split.fit(X, y, epochs=3, batch_size=16, seed=0)
    hf = fused.fit(X, y, epochs=3, batch_size=16, seed=0)
    assert hs.loss == hf.loss
    for p, q in zip(split.parameters(), fused.parameters()):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(split.predict_proba(X), fused.predict_proba(X))
    assert len(split.parameters()) == 4 and split.layers[1].parameters() == []


def test_files_gradcheck_ensemble_and_exports(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    X = np.random.default_rng(0).normal(size=(40, 4))
    y = np.random.default_rng(1).integers(0, 3, 40)
    for dtype in DTYPES:
        model = Sequential([Dense(4, 8, dtype=dtype, seed=1), Activation("gelu"),
                            Dense(8, 6, "tanh", dtype=dtype, seed=3), Activation("silu"),
                            Dense(6, 3, dtype=dtype, seed=2)], "cross_entropy")
        model.fit(X, y, epochs=2)
        Xd = X.astype(dtype)
        path = tmp_path / f"m_{np.dtype(dtype).name}.fastbp"
        model.save(path)
        loaded = fastbp.load(path)
        assert [la.kind for la in loaded.layers] == [la.kind for la in model.layers]
        np.testing.assert_array_equal(loaded.forward(Xd), model.forward(Xd))
        assert fastbp.gradcheck(model, X[:5], y[:5]).ok
        session = ort.InferenceSession(export.to_onnx(model, output="raw"))
        got = session.run(None, {session.get_inputs()[0].name: Xd})[0]
        assert_close(got, model.forward(Xd), dtype, rtol=tol(dtype, "onnx_rtol"))
        name = f"act_{np.dtype(dtype).name}"
        export.to_c(model, tmp_path, name=name)
        lib = compile_shared([str(tmp_path / f"{name}.c")], str(tmp_path / f"{name}.so"))
        assert_close(c_predict(lib, name, model, Xd), model.predict_proba(Xd), dtype,
                     rtol=tol(dtype, "onnx_rtol"))
    # an Ensemble's members end where their own fits would
    make = lambda s: Sequential([Dense(4, 8, dtype="float64", seed=s), Activation("tanh"),
                                 Dense(8, 3, dtype="float64", seed=s + 10)], "cross_entropy")
    members, solo = [make(s) for s in range(2)], [make(s) for s in range(2)]
    fastbp.Ensemble(members).fit(X, y, epochs=2, seed=[5, 6], progress=False)
    for m, alone, seed in zip(members, solo, [5, 6]):
        alone.fit(X, y, epochs=2, seed=seed, progress=False)
        for p, q in zip(m.parameters(), alone.parameters()):
            np.testing.assert_array_equal(p, q)


def test_width_and_dtype_come_from_the_neighbour_once():
    act = Activation("relu")
    assert act.in_features is None
    Sequential([Dense(3, 5, dtype="float64"), act, Dense(5, 2, dtype="float64")], "mse")
    assert (act.in_features, act.out_features, act.dtype) == (5, 5, np.float64)
    with pytest.raises(ValueError, match=r"layers\[1\] takes 5 inputs but layers\[0\] gives 4"):
        Sequential([Dense(3, 4), act, Dense(4, 2)], "mse")
    first = Activation("tanh")
    Sequential([first, Dense(6, 2)], "mse")
    assert first.in_features == 6 and first.dtype == np.float32
    # a refused model leaves the layer open
    fresh = Activation("tanh")
    with pytest.raises(ValueError, match="takes 7 inputs"):
        Sequential([Dense(3, 5), fresh, Dense(7, 2)], "mse")
    assert fresh.in_features is None
    with pytest.raises(ValueError, match="no neighbour gives one"):
        Sequential([Activation("tanh")], "mse")
    assert Sequential([Activation("tanh", 3)], "mse").sizes == (3, 3)


def test_bad_activation_layers_are_refused():
    with pytest.raises(ValueError, match="activation must be one of"):
        Activation("swish")
    with pytest.raises(ValueError, match="n_features"):
        Activation("relu", 0)
    with pytest.raises(TypeError):
        Activation("relu", dtype="int8")
    with pytest.raises(ValueError, match="binary_cross_entropy loss already applies"):
        Sequential([Dense(3, 1), Activation("sigmoid")], "binary_cross_entropy")
    with pytest.raises(ValueError, match="cross_entropy loss already applies"):
        Sequential([Dense(3, 4), Activation("softmax")], "cross_entropy")
    with pytest.raises(TypeError, match="dtype float32; here it needs float64"):
        Sequential([Dense(3, 4, dtype="float64"), Activation("relu", dtype="float32"),
                    Dense(4, 1, dtype="float64")], "mse")
    model = Sequential([Dense(3, 4), Activation("tanh"), Dense(4, 1)], "mse")
    with pytest.raises(NotImplementedError, match="jacobian needs Dense layers"):
        model.jacobian(np.ones((2, 3)))
    layer = Activation("tanh", 4)
    with pytest.raises(ValueError, match="X must have 4 features"):
        layer.forward(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="forward"):
        Activation("tanh").backward(np.ones((2, 2)))
