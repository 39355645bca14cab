"""TabM's layers in a model: LinearBatchEnsemble and LinearEnsemble as compiled layer
kinds, and the heads' mean loss (Objective(heads=k)); against the layers' own passes,
central differences, and tabm 0.0.3's TabM in PyTorch (forward, loss, gradients and
Adam steps)."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import LinearBatchEnsemble, LinearEnsemble, Objective, Sequential
from conftest import assert_close, assert_same_params, tol
from layer_checks import check_files_and_exports, check_step_equals_own_passes

K = 4


def _tabm_like(loss, d_in=5, width=8, n_out=3, dtype="float64", dropout=0.0, k=K):
    """TabM's layout: a shared-input BatchEnsemble first layer (r random signs), one
    more BatchEnsemble block, LinearEnsemble heads, the heads' mean loss."""
    model = Sequential([
        LinearBatchEnsemble(d_in, width, k, "relu", shared_input=True,
                            scaling_init=("random-signs", "ones"), dtype=dtype, seed=1),
        LinearBatchEnsemble(width, width, k, "relu", dtype=dtype, seed=2, dropout=dropout),
        LinearEnsemble(width, n_out, k, dtype=dtype, seed=3)], loss=loss, dropout_seed=7)
    model.objective = Objective(heads=k)
    return model


def _problem(loss, n_out, n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, n)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, (n, n_out)).astype(float)
    else:
        y = rng.standard_normal((n, n_out))
    return X, y, rng.uniform(0.5, 2.0, n)


CASES = [("cross_entropy", 3), ("mse", 2), ("binary_cross_entropy", 1)]


@pytest.mark.parametrize("loss,n_out", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_the_engine_step_equals_the_layers_own_passes(loss, n_out, weighted):
    """The compiled step's loss and gradients equal the layers' own forward/backward
    (through fastbp.ops) and loss_and_grad, to 1e-12 in float64."""
    model = _tabm_like(loss, n_out=n_out)
    X, y, w = _problem(loss, n_out)
    check_step_equals_own_passes(model, X, y, w if weighted else None)


def test_float32_step_equals_the_layers_own_passes_to_float32_rounding():
    model = _tabm_like("cross_entropy", dtype="float32")
    X, y, _ = _problem("cross_entropy", 3)
    value = model.backward(X, y)
    compiled = [g.copy() for g in model.gradients()]
    h = X.astype(np.float32)
    for layer in model.layers:
        h = layer.forward(h)
    own, d = model.loss_and_grad(np.ascontiguousarray(h), model.check_y(y, len(X)))
    for layer in reversed(model.layers):
        d = layer.backward(d)
    assert value == pytest.approx(own, rel=1e-5)
    for a, b in zip(compiled, model.gradients()):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_an_ensemble_of_tabm_models_ends_where_each_own_fit_does():
    X, y, _ = _problem("cross_entropy", 3, n=64)
    members = [_tabm_like("cross_entropy") for _ in range(2)]
    fastbp.Ensemble(members).fit(X, y, epochs=3, batch_size=16, seed=1, num_threads=2,
                                 progress=False)
    alone = _tabm_like("cross_entropy")
    alone.fit(X, y, epochs=3, batch_size=16, seed=1, progress=False)
    for m in members:
        assert_same_params(m, alone)


@pytest.mark.parametrize("loss,n_out", CASES)
def test_gradients_match_central_differences(loss, n_out):
    model = _tabm_like(loss, n_out=n_out)
    X, y, _ = _problem(loss, n_out, n=7)
    assert fastbp.gradcheck(model, X, y).ok


@pytest.mark.parametrize("loss,n_out", CASES)
def test_the_heads_loss_is_the_mean_of_each_heads_loss(loss, n_out):
    """Objective(heads=k): the mean over the heads of each head's own loss (a model
    whose output is that head's block alone)."""
    model = _tabm_like(loss, n_out=n_out)
    X, y, w = _problem(loss, n_out)
    out = model.forward(X)
    single = Sequential([fastbp.Dense(n_out, n_out, dtype="float64")], loss=loss)
    per_head = [single.loss_and_grad(np.ascontiguousarray(out[:, m * n_out:(m + 1) * n_out]),
                                     single.check_y(y, len(X)), w)[0] for m in range(K)]
    assert model.loss(X, y, sample_weight=w) == pytest.approx(np.mean(per_head), rel=1e-12)


@pytest.mark.parametrize("loss,n_out", CASES)
def test_predictions_are_the_mean_of_the_heads(loss, n_out):
    model = _tabm_like(loss, n_out=n_out)
    X, _, _ = _problem(loss, n_out)
    raw = model.forward(X).reshape(len(X), K, n_out)
    if loss == "mse":
        np.testing.assert_allclose(model.predict(X), raw.mean(axis=1), rtol=1e-12)
        return
    if loss == "cross_entropy":
        e = np.exp(raw - raw.max(axis=2, keepdims=True))
        p = (e / e.sum(axis=2, keepdims=True)).mean(axis=1)
        expected_labels = p.argmax(axis=1)
    else:
        p = (1 / (1 + np.exp(-raw))).mean(axis=1)
        expected_labels = (p[:, 0] > 0.5).astype(int)
    np.testing.assert_allclose(model.predict_proba(X), p, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), expected_labels)


def test_fit_save_load_and_resume_keep_the_heads(tmp_path):
    loss, n_out = "cross_entropy", 3
    X, y, _ = _problem(loss, n_out, n=64)
    whole = _tabm_like(loss, n_out=n_out, dropout=0.1)
    h = whole.fit(X, y, epochs=4, batch_size=16, seed=2, optimizer="adamw", progress=False)
    assert h.loss[-1] < h.loss[0]
    half = _tabm_like(loss, n_out=n_out, dropout=0.1)
    half.fit(X, y, epochs=2, batch_size=16, seed=2, optimizer="adamw", progress=False)
    half.save(tmp_path / "tabm.fastbp")
    loaded = fastbp.load(tmp_path / "tabm.fastbp")
    assert loaded.objective.heads == K
    assert [type(la) for la in loaded.layers] == [type(la) for la in half.layers]
    np.testing.assert_array_equal(loaded.predict_proba(X), half.predict_proba(X))
    loaded.fit(X, y, epochs=2, resume=True, progress=False)
    assert_same_params(loaded, whole)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="heads"):
        _tabm_like("cross_entropy", n_out=3).objective = Objective(heads=5)
    model = Sequential([fastbp.Dense(3, 4, dtype="float64")], loss="cross_entropy")
    with pytest.raises(ValueError, match="at least 2 classes"):
        model.objective = Objective(heads=4)
    with pytest.raises(ValueError, match="heads"):
        Objective(heads=0)
    with pytest.raises(TypeError, match="shared_input"):
        LinearBatchEnsemble(3, 4, 2, shared_input="no")
    with pytest.raises(ValueError, match="k"):
        LinearEnsemble(3, 4, 0)
    with pytest.raises(ValueError, match="element-wise"):
        LinearEnsemble(3, 4, 2, "softmax")
    with pytest.raises(ValueError, match="scaling_init"):
        LinearBatchEnsemble(3, 4, 2, scaling_init="zeros")
    with pytest.raises(ValueError, match="scaling_chunks"):
        LinearBatchEnsemble(3, 4, 2, scaling_chunks=[1, 1])
    layer = LinearEnsemble(3, 4, 2, bias=False)
    with pytest.raises(AttributeError, match="bias=False"):
        layer.b = np.zeros((2, 4))
    with pytest.raises(ValueError, match="shape"):
        layer.W = np.zeros((3, 4))
    model = _tabm_like("mse", n_out=2)
    X, y, _ = _problem("mse", 2)
    with pytest.raises(ValueError, match="shape"):
        # a head's width (2) or every head's (2·K), nothing else
        model.fit(X, np.tile(y, (1, K))[:, :3], epochs=1, progress=False)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss,n_out", CASES)
def test_files_and_both_exports(loss, n_out, dtype, tmp_path):
    """A file round trip, and the ONNX graph (onnxruntime) and C source (the system
    compiler) giving the model's raw output and its heads' mean prediction."""
    ort = pytest.importorskip("onnxruntime")
    model = _tabm_like(loss, n_out=n_out, dtype=dtype)
    X, y, _ = _problem(loss, n_out)
    model.fit(X, y, epochs=2, batch_size=16, progress=False)
    check_files_and_exports(model, X, tmp_path, f"tabm_{loss}_{dtype}", ort)
    Xd = X.astype(dtype)
    graph = ort.InferenceSession(fastbp.export.to_onnx(model))
    (got,) = graph.run(None, {"X": Xd})
    want = model.predict(Xd) if loss == "mse" else model.predict_proba(Xd)
    assert got.shape == want.shape == (len(X), n_out)
    assert_close(got, want, np.dtype(dtype), rtol=tol(np.dtype(dtype), "onnx_rtol"))


def test_the_members_scalings_share_a_value_per_chunk():
    layer = LinearBatchEnsemble(5, 3, 6, scaling_init=("random-signs", "ones"), scaling_chunks=[2, 3],
                                seed=0)
    assert set(np.unique(layer.r)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(layer.r[:, 0], layer.r[:, 1])
    np.testing.assert_array_equal(layer.r[:, 2], layer.r[:, 4])
    np.testing.assert_array_equal(layer.s, np.ones((6, 3)))
    np.testing.assert_array_equal(layer.b, np.broadcast_to(layer.b[0], (6, 3)))


# ---------------------------------------------------------------- against tabm's TabM

torch = pytest.importorskip("torch")
tabm = pytest.importorskip("tabm")


def _torch_tabm(model, n_features, n_out, k=K):
    """tabm's TabM (no embeddings, two blocks, no dropout) holding the model's arrays."""
    net = tabm.TabM.make(n_num_features=n_features, d_out=n_out, k=k, n_blocks=2,
                         d_block=model.layers[0].d_out, dropout=0.0).double()
    with torch.no_grad():
        for block, layer in zip(net.backbone.blocks, model.layers[:2]):
            lin = block[0]
            lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))
            lin.r.copy_(torch.from_numpy(layer.r))
            lin.s.copy_(torch.from_numpy(layer.s))
            lin.bias.copy_(torch.from_numpy(layer.b))
        net.output.weight.copy_(torch.from_numpy(model.layers[2].W))
        net.output.bias.copy_(torch.from_numpy(model.layers[2].b))
    return net


def _torch_arrays(net, grad=False):
    """The network's parameters (or their gradients) in fastbp's order and layout."""
    def get(t, transpose=False):
        a = (t.grad if grad else t).detach().numpy()
        return a.T if transpose else a
    out = []
    for block in net.backbone.blocks:
        lin = block[0]
        out += [get(lin.weight, True), get(lin.r), get(lin.s), get(lin.bias)]
    return out + [get(net.output.weight), get(net.output.bias)]


@pytest.mark.parametrize("loss,n_out", [("cross_entropy", 3), ("mse", 1)])
def test_equals_tabm_forward_loss_gradients_and_adam_steps(loss, n_out):
    """Forward (n, k, C), the mean loss over the n·k heads (tabm's recipe: the targets
    repeated per head), every gradient, then five full-batch AdamW steps, equal to
    tabm 0.0.3's TabM in PyTorch to 1e-10 in float64."""
    model = _tabm_like(loss, n_out=n_out)
    X, y, _ = _problem(loss, n_out)
    net = _torch_tabm(model, 5, n_out)
    xt = torch.from_numpy(X)
    yt = torch.from_numpy(y)

    def torch_loss():
        pred = net(xt)   # (n, k, d_out)
        flat = pred.flatten(0, 1)
        if loss == "cross_entropy":
            return torch.nn.functional.cross_entropy(flat, yt.repeat_interleave(K))
        return torch.nn.functional.mse_loss(flat, yt.repeat_interleave(K, dim=0))

    check_steps_equal_torch(model, X, y, net, xt, torch_loss)


def check_steps_equal_torch(model, X, y, net, xt, torch_loss):
    """model's forward on X equals net's on xt, its loss and every gradient on (X, y)
    torch_loss()'s, then five AdamW steps each (1e-10, float64)."""
    np.testing.assert_allclose(model.forward(X), net(xt).detach().numpy().reshape(len(X), -1),
                               rtol=1e-12, atol=1e-13)
    value = torch_loss()
    value.backward()
    assert model.backward(X, y) == pytest.approx(value.item(), rel=1e-12)
    for mine, theirs in zip(model.gradients(), _torch_arrays(net, grad=True)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-13)
    opt = fastbp.AdamW(model.parameters(), lr=1e-2, weight_decay=3e-4)
    topt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=3e-4)
    for _ in range(5):
        model.train_step(X, y, opt)
        topt.zero_grad()
        torch_loss().backward()
        topt.step()
    for mine, theirs in zip(model.parameters(), _torch_arrays(net)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


def test_heads_are_checked_wherever_they_could_stop_fitting(tmp_path):
    """The layers setter re-checks objective.heads; label smoothing smooths over one
    head's classes; exports refuse derivatives of a heads model and Ensembles whose
    members have different heads."""
    model = _tabm_like("cross_entropy", n_out=3)
    with pytest.raises(ValueError, match="heads"):
        model.layers = list(model.layers[:-1]) + [LinearEnsemble(8, 1, K, dtype="float64")]
    X, y, _ = _problem("cross_entropy", 3)
    h = model.fit(X, y, epochs=1, batch_size=16, label_smoothing=0.1, progress=False)
    assert np.isfinite(h.loss[-1])
    reg = Sequential([fastbp.Dense(3, 4, dtype="float64")], loss="mse")
    reg.objective = Objective(heads=2)
    with pytest.raises(ValueError, match="heads"):
        fastbp.export.to_c(reg, tmp_path, name="d", derivatives=True)
    plain = Sequential([fastbp.Dense(3, 4, dtype="float64")], loss="mse")
    with pytest.raises(ValueError, match="heads"):
        fastbp.export.to_c(fastbp.Ensemble([reg, plain]), tmp_path, name="e")
