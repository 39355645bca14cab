"""fastbp.Dropout, dropout as a layer: the same masks and the same training, bit for
bit, as the dropout of the layer before it; the identity outside training (its own
forward, predictions, files, exports); bad placements refused."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import Dense, Dropout, Sequential, export

from conftest import ACTIVATIONS, DTYPES, assert_close, tol


def _data(n=160):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)), rng.integers(0, 3, n)


@pytest.mark.parametrize("act", [a for a in ACTIVATIONS if a != "softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_layers_train_as_dense_dropout(act, dtype):
    """[Dense(f), Dropout(p), Dense(relu), Dropout(q), Dense] is [Dense(f, dropout=p),
    Dense(relu, dropout=q), Dense]: the masks of the layer before, the same steps."""
    X, y = _data()
    split = Sequential([Dense(4, 8, act, dtype=dtype, seed=1), Dropout(0.3),
                        Dense(8, 5, "relu", dtype=dtype, seed=3), Dropout(0.1),
                        Dense(5, 3, dtype=dtype, seed=2)], "cross_entropy")
    fused = Sequential([Dense(4, 8, act, dtype=dtype, seed=1, dropout=0.3),
                        Dense(8, 5, "relu", dtype=dtype, seed=3, dropout=0.1),
                        Dense(5, 3, dtype=dtype, seed=2)], "cross_entropy")
    split.dropout_seed = fused.dropout_seed = 7
    hs = split.fit(X, y, epochs=3, batch_size=16, seed=0, progress=False)
    hf = fused.fit(X, y, epochs=3, batch_size=16, seed=0, progress=False)
    assert hs.loss == hf.loss
    for p, q in zip(split.parameters(), fused.parameters()):
        np.testing.assert_array_equal(p, q)
    # without the masks the trajectories part: dropout really acts in training
    plain = Sequential([Dense(4, 8, act, dtype=dtype, seed=1), Dense(8, 5, "relu", dtype=dtype,
                        seed=3), Dense(5, 3, dtype=dtype, seed=2)], "cross_entropy")
    plain.fit(X, y, epochs=3, batch_size=16, seed=0, progress=False)
    assert not np.array_equal(plain.parameters()[0], split.parameters()[0])
    # inference: the identity
    np.testing.assert_array_equal(split.forward(X), Sequential(
        [la for la in split.layers if not isinstance(la, Dropout)], "cross_entropy").forward(X))


def test_an_input_dropout_layer_acts_in_training_only():
    X, y = _data()
    make = lambda first: Sequential(first + [Dense(4, 8, "tanh", dtype="float64", seed=1),
                                             Dense(8, 3, dtype="float64", seed=2)],
                                    "cross_entropy")
    with_input_dropout, plain = make([Dropout(0.2)]), make([])
    np.testing.assert_array_equal(with_input_dropout.forward(X), plain.forward(X))
    with_input_dropout.fit(X, y, epochs=2, batch_size=16, seed=1, progress=False)
    plain.fit(X, y, epochs=2, batch_size=16, seed=1, progress=False)
    assert not np.array_equal(with_input_dropout.parameters()[0], plain.parameters()[0])
    assert with_input_dropout.layers[0].in_features == 4


def test_files_gradcheck_and_exports_take_dropout_layers(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from test_export import c_predict, compile_shared
    X, y = _data(40)
    for dtype in DTYPES:
        model = Sequential([Dense(4, 8, "relu", dtype=dtype, seed=1), Dropout(0.25),
                            Dense(8, 3, dtype=dtype, seed=2)], "cross_entropy")
        model.fit(X, y, epochs=2, progress=False)
        Xd = X.astype(dtype)
        path = tmp_path / f"d_{np.dtype(dtype).name}.fastbp"
        model.save(path)
        loaded = fastbp.load(path)
        assert repr(loaded.layers[1]) == repr(model.layers[1])
        np.testing.assert_array_equal(loaded.forward(Xd), model.forward(Xd))
        session = ort.InferenceSession(export.to_onnx(model, output="raw"))
        got = session.run(None, {session.get_inputs()[0].name: Xd})[0]
        assert_close(got, model.forward(Xd), dtype, rtol=tol(dtype, "onnx_rtol"))
        name = f"drop_{np.dtype(dtype).name}"
        export.to_c(model, tmp_path, name=name)
        lib = compile_shared([str(tmp_path / f"{name}.c")], str(tmp_path / f"{name}.so"))
        assert_close(c_predict(lib, name, model, Xd), model.predict_proba(Xd), dtype,
                     rtol=tol(dtype, "onnx_rtol"))
    # gradcheck holds the masks of one step fixed: the Dropout layer's, keyed as the engine's
    assert fastbp.gradcheck(model, X[:4], y[:4]).ok


def test_bad_dropout_layers_are_refused():
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.0)
    with pytest.raises(TypeError):
        Dropout("0.1")
    with pytest.raises(ValueError, match="one dropout per output"):
        Sequential([Dense(3, 4, dropout=0.1), Dropout(0.2), Dense(4, 1)], "mse")
    with pytest.raises(ValueError, match="the last layer has dropout"):
        Sequential([Dense(3, 4), Dropout(0.2)], "mse")
    layer = Dropout(0.5, 3)
    X = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(layer.forward(X), X)     # the identity on its own
    np.testing.assert_array_equal(layer.backward(np.ones((2, 3))), np.ones((2, 3)))
    with pytest.raises(ValueError, match="dA must have"):
        layer.backward(np.ones((3, 3)))
