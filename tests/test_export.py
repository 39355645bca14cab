"""fastbp.export: the ONNX graph run in onnxruntime and the C source compiled by the
system C compiler, each compared with the model's own forward / predict_proba."""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from fastbp import export
from fastbp.layers import Dense
from fastbp.models import Sequential

from conftest import DTYPES, assert_close, tol

try:
    import onnx
    import onnxruntime as ort
except ImportError:  # the C tests run without them
    onnx = ort = None
try:
    import sklearn
except ImportError:
    sklearn = None

needs_onnx = pytest.mark.skipif(onnx is None, reason="needs onnx and onnxruntime (test extra)")
needs_sklearn = pytest.mark.skipif(onnx is None or sklearn is None,
                                   reason="needs scikit-learn, onnx and onnxruntime (test extra)")

LOSSES = fastbp.LOSSES


def model_for(act: str, loss: str, dtype, seed: int = 0) -> fastbp.MLP:
    return fastbp.MLP((6, 9, 8, 4), act, loss, dtype=dtype, seed=seed)


def inputs(n: int, n_features: int, dtype, seed: int = 1) -> np.ndarray:
    """Random rows, one in eight scaled by 30 so that pre-activations pass softplus's
    threshold (20), saturate sigmoid/tanh and reach the tails of gelu and elu."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features)) * 2.0
    X[::8] *= 15.0
    return X.astype(dtype)


def expected(model, X):
    if model.loss_name in ("cross_entropy", "binary_cross_entropy"):
        return model.predict_proba(X)
    return model.forward(X)


def session(data: bytes):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------- ONNX

@needs_onnx
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", fastbp.ACTIVATIONS)
def test_onnx_matches_fastbp(act, loss, dtype):
    model = model_for(act, loss, dtype)
    data = export.to_onnx(model)
    graph = onnx.load_from_string(data)
    onnx.checker.check_model(graph, full_check=True)
    assert [o.domain for o in graph.opset_import] == [""]
    assert graph.opset_import[0].version >= 17
    assert all(node.domain == "" for node in graph.graph.node)
    assert [i.name for i in graph.graph.input] == ["X"]
    assert [o.name for o in graph.graph.output] == ["Y"]
    sess = session(data)
    for n in (1, 1000):
        X = inputs(n, model.in_features, dtype)
        (Y,) = sess.run(None, {"X": X})
        assert_close(Y, expected(model, X), dtype, rtol=tol(dtype, "onnx_rtol"), err_msg=f"n={n}")


@needs_onnx
@pytest.mark.parametrize("dtype", DTYPES)
def test_onnx_raw_output_and_every_activation_stacked(dtype, tmp_path):
    # Every activation in one network (softmax in the middle too); output="raw" gives
    # forward even for a cross-entropy model, and path= writes the same bytes.
    acts = list(fastbp.ACTIVATIONS)
    rng = np.random.default_rng(3)
    layers = [Dense(5, 7, a, dtype=dtype, seed=rng) for a in acts[:1]]
    layers += [Dense(7, 7, a, dtype=dtype, seed=rng) for a in acts[1:]]
    layers.append(Dense(7, 3, dtype=dtype, seed=rng))
    model = Sequential(layers, "cross_entropy")
    path = tmp_path / "m.onnx"
    data = export.to_onnx(model, path, output="raw")
    assert path.read_bytes() == data
    X = inputs(1000, 5, dtype)
    (Y,) = session(data).run(None, {"X": X})
    assert_close(Y, model.forward(X), dtype, rtol=tol(dtype, "onnx_rtol"))
    (P,) = session(export.to_onnx(model)).run(None, {"X": X})
    assert_close(P, model.predict_proba(X), dtype, rtol=tol(dtype, "onnx_rtol"))


@needs_onnx
def test_onnx_softplus_threshold_and_gelu_tails_exact():
    # A single identity-weight layer shows the activation itself on chosen inputs:
    # softplus is x above 20 (PyTorch's threshold; ONNX's Softplus would add e^-x),
    # gelu is the exact-erf form far into both tails.
    z = np.array([[-40.0, -8.0, -1e-3, 0.0, 3.0, 19.5, 20.0, 20.5, 35.0]])
    for act in ("softplus", "gelu", "elu", "leaky_relu"):
        layer = Dense(z.shape[1], z.shape[1], act, dtype=np.float64)
        layer.W = np.eye(z.shape[1])
        layer.b = np.zeros(z.shape[1])
        model = Sequential([layer], "mse")
        (Y,) = session(export.to_onnx(model)).run(None, {"X": z})
        assert_close(Y, model.forward(z), np.float64, rtol=tol(np.float64, "onnx_rtol"),
                     err_msg=act)
        if act == "softplus":
            assert Y[0, -1] == 35.0 and Y[0, -2] == 20.5


@needs_onnx
def test_onnx_bad_arguments():
    model = model_for("relu", "mse", np.float32)
    with pytest.raises(ValueError, match="output"):
        export.to_onnx(model, output="probabilities")
    with pytest.raises(TypeError, match="model"):
        export.to_onnx("not a model")
    model.layers[0].W[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        export.to_onnx(model)


# ---------------------------------------------------------------- C

def _cc() -> str:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH")
    return cc


C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]


def compile_shared(sources: list[str], out: str) -> ctypes.CDLL:
    cmd = [_cc(), *C_FLAGS, "-shared", "-fPIC", *sources, "-o", out, "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(out)


def c_predict(lib: ctypes.CDLL, name: str, model, X: np.ndarray) -> np.ndarray:
    fn = getattr(lib, f"{name}_predict")
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    X = np.ascontiguousarray(X)
    width = getattr(model, "target_width", model.out_features)   # (heads: their mean's)
    out = np.full((X.shape[0], width), np.nan, dtype=model.dtype)
    fn(X.ctypes.data, X.shape[0], out.ctypes.data)
    return out


@pytest.fixture(scope="module")
def c_library(tmp_path_factory):
    """Every activation x loss kind x dtype, plus a stacked-activation network and a
    one-layer one, exported with distinct names and compiled into one shared library."""
    directory = tmp_path_factory.mktemp("c_export")
    models = {}
    for dtype in DTYPES:
        tag = np.dtype(dtype).name
        # every activation as the hidden one, the losses in turn (each loss twice)
        for i, act in enumerate(fastbp.ACTIVATIONS):
            loss = LOSSES[i % len(LOSSES)]
            models[f"m_{act}_{loss}_{tag}"] = model_for(act, loss, dtype, seed=5)
        rng = np.random.default_rng(4)
        layers = [Dense(5, 7, fastbp.ACTIVATIONS[0], dtype=dtype, seed=rng)]
        layers += [Dense(7, 7, a, dtype=dtype, seed=rng) for a in fastbp.ACTIVATIONS[1:]]
        layers.append(Dense(7, 3, dtype=dtype, seed=rng))
        models[f"stacked_{tag}"] = Sequential(layers, "cross_entropy")
        models[f"single_{tag}"] = Sequential([Dense(4, 2, dtype=dtype, seed=rng)], "mse")
    sources = []
    for name, model in models.items():
        header, source = export.to_c(model, directory, name=name)
        assert os.path.basename(header) == f"{name}.h" and os.path.isfile(header)
        sources.append(source)
    lib = compile_shared(sources, str(directory / "libmodels.so"))
    return lib, models


@pytest.mark.parametrize("dtype", DTYPES)
def test_c_matches_fastbp(c_library, dtype):
    lib, models = c_library
    tag = np.dtype(dtype).name
    checked = 0
    for name, model in models.items():
        if not name.endswith(tag):
            continue
        for n in (1, 1000):
            X = inputs(n, model.in_features, dtype, seed=n)
            # probabilities carry the rounding of their logits: scale by the logits' size
            scale = max(1.0, float(np.abs(model.forward(X)).max()))
            assert_close(c_predict(lib, name, model, X), expected(model, X), dtype,
                         rtol=tol(dtype), scale=scale, err_msg=f"{name} n={n}")
        checked += 1
    assert checked == len(fastbp.ACTIVATIONS) + 2


def test_c_weights_round_trip_exactly(tmp_path):
    # Awkward values: subnormals, the extremes, -0.0, and values with no short decimal.
    for dtype in DTYPES:
        finfo = np.finfo(dtype)
        vals = np.array([finfo.max, -finfo.max, finfo.tiny, finfo.smallest_subnormal, -0.0,
                         1 / 3, np.pi, -np.e, 1e-30, 7.0], dtype=dtype)
        layer = Dense(len(vals), 1, dtype=dtype)
        layer.W = vals.reshape(-1, 1)
        layer.b = np.zeros(1, dtype=dtype)
        model = Sequential([layer], "mse")
        name = f"rt_{np.dtype(dtype).name}"
        _, source = export.to_c(model, tmp_path, name=name)
        lib = compile_shared([source], str(tmp_path / f"{name}.so"))
        # one-hot rows read each weight back through the predict function
        X = np.eye(len(vals), dtype=dtype)
        got = c_predict(lib, name, model, X).ravel()
        np.testing.assert_array_equal(got, vals + dtype(0))
        assert np.array_equal(np.signbit(got[4:5]), [False])  # -0.0 + 0.0 is +0.0


def test_c_driver_program_and_header(tmp_path):
    # The header alone is enough to call the model from a C program (C99, -Werror).
    model = model_for("tanh", "cross_entropy", np.float32)
    export.to_c(model, tmp_path, name="net")
    driver = tmp_path / "main.c"
    driver.write_text(
        '#include <stdio.h>\n#include "net.h"\n'
        "int main(void) {\n"
        "    float x[2 * NET_N_INPUTS], y[2 * NET_N_OUTPUTS];\n"
        "    int i;\n"
        "    for (i = 0; i < 2 * NET_N_INPUTS; i++) x[i] = (float)i / 10.0f - 0.5f;\n"
        "    net_predict(x, 2, y);\n"
        "    for (i = 0; i < 2 * NET_N_OUTPUTS; i++) printf(\"%a\\n\", (double)y[i]);\n"
        "    return 0;\n}\n")
    exe = tmp_path / "main"
    proc = subprocess.run([_cc(), *C_FLAGS, str(driver), str(tmp_path / "net.c"), "-o", str(exe),
                           "-lm"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    got = np.array([float.fromhex(v) for v in run.stdout.split()], dtype=np.float32).reshape(2, -1)
    X = (np.arange(2 * model.in_features, dtype=np.float32) / np.float32(10) - np.float32(0.5)
         ).reshape(2, -1)
    assert_close(got, model.predict_proba(X), np.float32, rtol=tol(np.float32))


@pytest.mark.parametrize("name", ["a b", "x;system(", "int", "1abc", "", "while", "_Bool",
                                  "naïve", "a\nb", 7, None, b"net"])
def test_c_rejects_bad_names(tmp_path, name):
    model = model_for("relu", "mse", np.float64)
    with pytest.raises(ValueError, match="name"):
        export.to_c(model, tmp_path, name=name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_c_rejects_non_finite_weights(tmp_path, bad):
    model = model_for("relu", "mse", np.float32)
    model.layers[1].b[2] = bad
    with pytest.raises(ValueError, match="non-finite"):
        export.to_c(model, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_c_text_holds_no_model_strings(tmp_path):
    # Even a model whose Python-side names were tampered with produces the fixed
    # C text: activations come from the kernel code through a fixed table.
    model = model_for("relu", "mse", np.float32)
    model.layers[0].activation = "*/ system(\"rm -rf /\"); /*"
    model.loss_name = "mse"
    header, source = export.to_c(model, tmp_path, name="safe")
    text = open(header).read() + open(source).read()
    assert "system" not in text and "rm -rf" not in text
    assert "#include" in text and text.count("#include") == 3  # math.h, stddef.h, safe.h


# ---------------------------------------------------------------- estimators

def _blobs(n, n_classes, n_features, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    X = rng.standard_normal((n, n_features)) + y[:, None] * 0.8
    return X, y


@needs_sklearn
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("labels", ["int", "str"])
def test_classifier_to_onnx(labels, dtype, tmp_path):
    from fastbp.sklearn import MLPClassifier
    X, y = _blobs(300, 3, 5)
    if labels == "str":
        y = np.array(["cat", "dog", "émeu"])[y]
    else:
        y = np.array([-4, 10, 70])[y]
    est = MLPClassifier((8,), max_iter=30, random_state=0, dtype=dtype).fit(X, y)
    path = tmp_path / "clf.onnx"
    data = est.to_onnx(path)
    assert path.read_bytes() == data
    graph = onnx.load_from_string(data)
    onnx.checker.check_model(graph, full_check=True)
    assert [o.name for o in graph.graph.output] == ["label", "probabilities"]
    sess = session(data)
    for n in (1, 300):
        Xn = X[:n].astype(dtype)
        label, proba = sess.run(None, {"X": Xn})
        assert label.shape == (n,) and proba.shape == (n, 3)
        if labels == "int":
            assert label.dtype == np.int64
        else:
            assert label.dtype == object
        np.testing.assert_array_equal(label, est.predict(Xn))
        assert_close(proba, est.predict_proba(Xn), np.dtype(dtype).type,
                     rtol=tol(dtype, "onnx_rtol"))


@needs_sklearn
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_classifier_to_onnx_single_logistic_output(dtype):
    # A two-class classifier whose network has one logistic output (the binary layout):
    # probabilities [1 - p, p], label from the sign of the logit.
    from fastbp.sklearn import MLPClassifier
    X, y = _blobs(200, 2, 4)
    y = np.array(["no", "yes"])[y]
    est = MLPClassifier((6,), max_iter=5, random_state=0, dtype=dtype).fit(X, y)
    est.model_ = fastbp.MLP((4, 6, 1), "tanh", "binary_cross_entropy", dtype=dtype, seed=2)
    Xd = X.astype(dtype)
    label, proba = session(export.estimator_to_onnx(est)).run(None, {"X": Xd})
    p = est.model_.predict_proba(Xd)[:, 0]
    assert_close(proba, np.stack([1 - p, p], axis=1), dtype, rtol=tol(dtype, "onnx_rtol"))
    np.testing.assert_array_equal(label, est.classes_[(est.model_.forward(Xd)[:, 0] > 0)
                                                      .astype(int)])


@needs_sklearn
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regressor_to_onnx(dtype):
    from fastbp.sklearn import MLPRegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    Y = np.stack([X.sum(axis=1), X[:, 0] * X[:, 1]], axis=1)
    for y in (Y[:, 0], Y):
        est = MLPRegressor(hidden_layer_sizes=(10,), activation="tanh", max_iter=20,
                           random_state=0, dtype=dtype).fit(X, y)
        data = est.to_onnx()
        graph = onnx.load_from_string(data)
        assert [o.name for o in graph.graph.output] == ["variable"]
        Xd = X.astype(dtype)
        (v,) = session(data).run(None, {"X": Xd})
        assert v.shape == (200, y.ndim and (1 if y.ndim == 1 else 2))
        assert_close(v, est.predict(Xd).reshape(v.shape), np.dtype(dtype).type,
                     rtol=tol(dtype, "onnx_rtol"))


@needs_sklearn
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_poisson_regressor_to_onnx_predicts_the_mean(dtype):
    # The network's output is the log of the mean; predict (and the graph) give the mean.
    from fastbp.sklearn import MLPRegressor
    rng = np.random.default_rng(3)
    X = rng.standard_normal((150, 4))
    y = rng.poisson(np.exp(0.5 * X[:, 0]))
    est = MLPRegressor(loss="poisson", hidden_layer_sizes=(7,), max_iter=15, random_state=0,
                       dtype=dtype).fit(X, y)
    assert est.out_activation_ == "exp"
    Xd = X.astype(dtype)
    (v,) = session(est.to_onnx()).run(None, {"X": Xd})
    assert_close(v.reshape(-1), est.predict(Xd), np.dtype(dtype).type,
                 rtol=tol(dtype, "onnx_rtol"))
    assert not np.allclose(v.reshape(-1), est.model_.forward(Xd).reshape(-1))


@needs_sklearn
def test_estimator_to_onnx_unfitted():
    from sklearn.exceptions import NotFittedError

    from fastbp.sklearn import MLPClassifier
    with pytest.raises(NotFittedError):
        MLPClassifier().to_onnx()


def test_missing_onnx_gives_clear_import_error(tmp_path):
    # In a subprocess where `import onnx` fails: to_c still works, to_onnx says what to install.
    code = (
        "import sys; sys.modules['onnx'] = None\n"
        "import fastbp\nfrom fastbp import export\n"
        "m = fastbp.MLP((2, 3, 1), 'relu')\n"
        f"export.to_c(m, {str(tmp_path)!r})\n"
        "try:\n    export.to_onnx(m)\nexcept ImportError as e:\n    print('IMPORT-ERROR', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "IMPORT-ERROR" in proc.stdout and "fastbp[onnx]" in proc.stdout


# ---------------------------------------------------------------- dropout

@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_model_exports_its_inference_network(dtype, tmp_path):
    # Dropout is a training device: the exported graph and C code compute what
    # predict_proba does (no masks), after training with dropout moved the weights.
    model = fastbp.MLP((6, 12, 8, 3), "relu", "cross_entropy", dtype=dtype, seed=4, dropout=0.4)
    X = inputs(64, 6, dtype)
    model.fit(X, np.arange(64) % 3, epochs=2, batch_size=16, seed=0, progress=False)
    want = model.predict_proba(X)
    header, source = export.to_c(model, tmp_path, name="drop")
    lib = compile_shared([str(source)], str(tmp_path / "libdrop.so"))
    assert_close(c_predict(lib, "drop", model, X), want, dtype, rtol=tol(dtype))
    if ort is not None:
        (Y,) = session(export.to_onnx(model)).run(None, {"X": X})
        assert_close(Y, want, dtype, rtol=tol(dtype, "onnx_rtol"))
