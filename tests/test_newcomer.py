"""What a newcomer meets first: a model that refuses the output activation its loss
applies, one-output predictions of shape (n,), non-finite input refused, exports of an
Ensemble, and error messages that name the argument the user passed."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import fastbp
from fastbp import export
from fastbp.schedules import StepLR
from conftest import DTYPES, make_data, tol


# ---------------------------------------------------------------- the loss's own activation

@pytest.mark.parametrize("loss, act", [("binary_cross_entropy", "sigmoid"),
                                       ("cross_entropy", "softmax")])
def test_a_last_layer_that_applies_the_losss_activation_is_refused(loss, act):
    """The losses take logits: a sigmoid or softmax last layer would apply it twice
    (a Keras habit that trained to chance level without a word)."""
    out = 1 if loss == "binary_cross_entropy" else 3
    layers = [fastbp.Dense(4, 8, "relu"), fastbp.Dense(8, out, act)]
    with pytest.raises(ValueError, match=rf"layers\[1\].*{act}.*{loss}.*identity"):
        fastbp.Sequential(layers, loss=loss)
    model = fastbp.Sequential([fastbp.Dense(4, 8, "relu"), fastbp.Dense(8, out)], loss=loss)
    with pytest.raises(ValueError, match=act):
        model.layers = layers
    assert model.layers[-1].activation == "identity"
    fastbp.Sequential(layers, loss="mse")   # a regression output may squash


def test_cross_entropy_needs_two_outputs():
    for make in (lambda: fastbp.MLP((4, 8, 1), loss="cross_entropy"),
                 lambda: fastbp.Sequential([fastbp.Dense(4, 1)], loss="cross_entropy")):
        with pytest.raises(ValueError, match="cross_entropy.*2 outputs.*binary_cross_entropy"):
            make()


# ---------------------------------------------------------------- one-output predictions

@pytest.mark.parametrize("dtype", DTYPES)
def test_one_output_predictions_are_one_dimensional(dtype):
    """predict of a one-output model is (n,), as scikit-learn's, so the accuracy idiom
    np.mean(model.predict(X) == y) compares sample by sample (with (n, 1) it broadcast to
    (n, n)); forward and predict_proba keep (n, 1)."""
    X, y = make_data("binary_cross_entropy", 200, 2, 1, dtype)
    y = y.ravel().astype(int)
    clf = fastbp.MLP((2, 16, 1), "tanh", "binary_cross_entropy", dtype=dtype, seed=0)
    clf.fit(X, y, epochs=30, lr=0.05, progress=False)
    labels = clf.predict(X)
    assert labels.shape == (200,) and labels.dtype == np.intp
    assert clf.forward(X).shape == (200, 1) and clf.predict_proba(X).shape == (200, 1)
    np.testing.assert_array_equal(labels, (clf.forward(X)[:, 0] > 0).astype(np.intp))
    accuracy = np.mean(clf.predict(X) == y)
    assert accuracy == np.mean([a == b for a, b in zip(labels, y)])
    reg = fastbp.MLP((2, 8, 1), dtype=dtype, seed=0)
    assert reg.predict(X).shape == (200,) and reg.forward(X).shape == (200, 1)
    ens = fastbp.Ensemble.of(2, (2, 8, 1), loss="binary_cross_entropy", dtype=dtype)
    assert ens.predict(X).shape == (200,)
    wide = fastbp.MLP((2, 8, 3), "relu", "binary_cross_entropy", dtype=dtype, seed=0)
    assert wide.predict(X).shape == (200, 3)


# ---------------------------------------------------------------- non-finite input

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused_everywhere(bad):
    model = fastbp.MLP((3, 4, 2), "relu", "cross_entropy", dtype="float64", seed=0)
    ens = fastbp.Ensemble.of(2, (3, 4, 2), loss="cross_entropy", dtype="float64")
    X = np.ones((5, 3))
    model.predict(X)   # the engine is built: the lean path checks too
    X[2, 1] = bad
    y = np.zeros(5, dtype=int)
    calls = [lambda: model.forward(X), lambda: model.predict(X),
             lambda: model.predict_proba(X), lambda: model.evaluate(X, y),
             lambda: model.loss(X, y), lambda: ens.predict(X), lambda: ens.predict_proba(X),
             lambda: ens.predict_all(X), lambda: ens.evaluate(X, y)]
    for call in calls:
        with pytest.raises(ValueError, match="X contains NaN or infinite values"):
            call()
    # for trusted input the check can be skipped (the value propagates as the math says)
    assert not np.isfinite(model.forward(X, check_finite=False)[2]).any()
    with pytest.raises(TypeError, match="check_finite"):
        model.predict(np.ones((5, 3)), check_finite="no")


def test_estimators_refuse_non_finite_input():
    pytest.importorskip("sklearn")
    from fastbp.sklearn import MLPClassifier

    X, y = make_data("cross_entropy", 40, 3, 2, np.float64)
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    X[0, 0] = np.nan
    for call in (est.predict, est.predict_proba):
        with pytest.raises(ValueError, match="NaN"):
            call(X)


# ---------------------------------------------------------------- exporting an Ensemble

@pytest.mark.parametrize("loss, out", [("cross_entropy", 3), ("binary_cross_entropy", 1),
                                       ("mse", 2)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_ensemble_exports_the_mean_of_its_members_to_onnx(loss, out, dtype):
    ort = pytest.importorskip("onnxruntime")
    X, y = make_data(loss, 60, 4, out, dtype)
    ens = fastbp.Ensemble.of(3, (4, 8, out), activation="tanh", loss=loss, dtype=dtype, seed=1)
    ens.fit(X, y, epochs=2, seed=0, progress=False)
    sess = ort.InferenceSession(export.to_onnx(ens), providers=["CPUExecutionProvider"])
    (Y,) = sess.run(None, {"X": X})
    expected = ens.predict_proba(X) if loss != "mse" else ens.predict_all(X).mean(axis=0)
    np.testing.assert_allclose(Y, expected, rtol=tol(dtype, "onnx_rtol"),
                               atol=tol(dtype, "onnx_rtol"))


@pytest.mark.packaging
def test_ensemble_exports_the_mean_of_its_members_to_c(tmp_path):
    import ctypes
    import shutil

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    X, y = make_data("cross_entropy", 30, 4, 3, np.float64)
    ens = fastbp.Ensemble.of(3, (4, 6, 5, 3), activation="gelu", loss="cross_entropy",
                             dtype="float64", seed=2)
    ens.fit(X, y, epochs=2, seed=0, progress=False)
    header, source = export.to_c(ens, tmp_path, name="ens")
    lib = tmp_path / "libens.so"
    subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-shared", "-fPIC",
                    source, "-o", str(lib), "-lm"], check=True)
    dll = ctypes.CDLL(str(lib))
    out = np.empty((30, 3))
    dll.ens_predict(X.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(30),
                    out.ctypes.data_as(ctypes.c_void_p))
    np.testing.assert_allclose(out, ens.predict_proba(X), rtol=tol(np.float64))


# ---------------------------------------------------------------- errors that name the argument

def _bad_calls():
    """(what, call, exception type, what the message must name)."""
    X, y = make_data("cross_entropy", 20, 4, 3, np.float64)
    model = fastbp.MLP((4, 5, 3), "relu", "cross_entropy", dtype="float64", seed=0)
    opt = fastbp.Adam(model.parameters())
    ens = fastbp.Ensemble.of(2, (4, 5, 3), loss="cross_entropy", dtype="float64")
    wrong_width = np.ones((5, 7))
    return [
        ("MLP(64)", lambda: fastbp.MLP(64), TypeError, "sizes"),
        ("MLP('64')", lambda: fastbp.MLP("64"), TypeError, "sizes"),
        ("MLP sizes 1", lambda: fastbp.MLP((4,)), ValueError, "sizes"),
        ("MLP size 0", lambda: fastbp.MLP((4, 0, 2)), ValueError, r"sizes\[1\]"),
        ("MLP loss", lambda: fastbp.MLP((4, 2), loss="xent"), ValueError, "loss"),
        ("MLP activation", lambda: fastbp.MLP((4, 3, 2), "relux"), ValueError, "activation"),
        ("MLP dtype", lambda: fastbp.MLP((4, 2), dtype="int32"), TypeError, "dtype"),
        ("MLP dropout", lambda: fastbp.MLP((4, 3, 2), dropout="0.1"), TypeError, "dropout"),
        ("MLP num_threads", lambda: fastbp.MLP((4, 2), num_threads=0), ValueError, "num_threads"),
        ("Dense width", lambda: fastbp.Dense(4.0, 2), TypeError, "in_features"),
        ("Dense init", lambda: fastbp.Dense(4, 2, init="xavier"), ValueError, "init"),
        ("Sequential layers", lambda: fastbp.Sequential([model]), TypeError, "layers"),
        ("fit X width", lambda: model.fit(wrong_width, y[:5]), ValueError, "X"),
        ("fit y rows", lambda: model.fit(X, y[:-1]), ValueError, "y"),
        ("fit y labels", lambda: model.fit(X, y + 3), ValueError, "y"),
        ("fit validation width", lambda: model.fit(X, y, validation_data=(wrong_width, y[:5])),
         ValueError, "validation_data X"),
        ("fit validation labels", lambda: model.fit(X, y, validation_data=(X, y + 7)),
         ValueError, "validation_data y"),
        ("fit validation pair", lambda: model.fit(X, y, validation_data=X), TypeError,
         "validation_data"),
        ("fit epochs", lambda: model.fit(X, y, epochs=0), ValueError, "epochs"),
        ("fit batch_size", lambda: model.fit(X, y, batch_size=2.5), TypeError, "batch_size"),
        ("fit optimizer", lambda: model.fit(X, y, optimizer="adamax"), ValueError, "optimizer"),
        ("fit lr", lambda: model.fit(X, y, lr=-1.0), ValueError, "lr"),
        ("fit shuffle", lambda: model.fit(X, y, shuffle="no"), TypeError, "shuffle"),
        ("fit progress", lambda: model.fit(X, y, progress="no"), TypeError, "progress"),
        ("fit early_stopping", lambda: model.fit(X, y, early_stopping=0), ValueError,
         "early_stopping"),
        ("fit callbacks", lambda: model.fit(X, y, callbacks=[3]), TypeError, "callbacks"),
        ("fit scheduler", lambda: model.fit(X, y, scheduler=3), TypeError, "scheduler"),
        ("fit sample_weight", lambda: model.fit(X, y, sample_weight=-np.ones(20)), ValueError,
         "sample_weight"),
        ("predict width", lambda: model.predict(wrong_width), ValueError, "X"),
        ("predict strings", lambda: model.predict([["a"] * 4]), TypeError, "X"),
        ("train_step optimizer", lambda: model.train_step(X, y, "adam"), TypeError, "optimizer"),
        ("train_step foreign optimizer",
         lambda: model.train_step(X, y, fastbp.Adam([np.zeros(3)])), ValueError, "optimizer"),
        ("backward step", lambda: model.backward(X, y, step=0), ValueError, "step"),
        ("Adam lr", lambda: fastbp.Adam(model.parameters(), lr="big"), TypeError, "lr"),
        ("Adam betas", lambda: fastbp.Adam(model.parameters(), betas=(0.9, 1.0)), ValueError,
         "beta2"),
        ("opt.lr", lambda: setattr(opt, "lr", float("nan")), ValueError, "lr"),
        ("StepLR step_size", lambda: StepLR(opt, 0), ValueError, "step_size"),
        ("Ensemble models", lambda: fastbp.Ensemble(model), TypeError, "models"),
        ("Ensemble lr", lambda: ens.fit(X, y, lr=[0.1]), ValueError, "lr"),
        ("Ensemble seed", lambda: ens.fit(X, y, seed=[1, "2"]), TypeError, r"seed\[1\]"),
        ("Ensemble num_threads", lambda: ens.fit(X, y, num_threads=0), ValueError,
         "num_threads"),
        ("Ensemble validation", lambda: ens.fit(X, y, validation_data=(wrong_width, y[:5])),
         ValueError, "validation_data X"),
        ("gradcheck eps", lambda: fastbp.gradcheck(model, X, y, eps=0), ValueError, "eps"),
        ("load path", lambda: fastbp.load(None), TypeError, "path"),
        ("set_num_threads", lambda: fastbp.set_num_threads(0), ValueError, "num_threads"),
        ("to_onnx output", lambda: export.to_onnx(model, output="proba"), ValueError, "output"),
        ("to_c name", lambda: export.to_c(model, ".", name="my model"), ValueError, "name"),
        ("to_c directory", lambda: export.to_c(model, "/no/such/dir"), ValueError,
         "directory"),
        ("ops activation", lambda: fastbp.ops.activation_forward("swish", X), ValueError,
         "activation"),
        ("ops adam step", lambda: fastbp.ops.adam_step(X.copy(), X, X.copy(), X.copy(), None,
                                                       step=0, lr=0.1), ValueError, "step"),
        ("Objective l2", lambda: fastbp.Objective(l2=-1.0), ValueError, "l2"),
        ("objective type", lambda: setattr(model, "objective", (1, 1, 0, 0)), TypeError,
         "objective"),
    ]


@pytest.mark.parametrize("what, call, exc, name", _bad_calls(), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_every_error_names_the_argument(what, call, exc, name):
    with pytest.raises(exc, match=name):
        call()


def test_newcomer_sees_the_install_advice_without_kernels(tmp_path):
    """A checkout without compiled kernels and nothing installed to fall back on says
    how to install, instead of failing deep inside an import."""
    pkg = tmp_path / "fastbp"
    pkg.mkdir()
    source = fastbp.__file__
    (pkg / "__init__.py").write_text(open(source, encoding="utf-8").read())
    code = ("import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]; "
            "import fastbp")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "pip install ." in result.stderr
