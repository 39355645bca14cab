"""RealMLP's layer kinds -- Scale, ParametricActivation, PeriodicBiasEmbedding -- and the
selu and mish activations: kernels against the NumPy reference, the compiled step
against the layers' own passes, central differences, files and both exports, and each
block against pytabkit 1.8's PyTorch original."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import ParametricActivation, PeriodicBiasEmbedding, Scale, Sequential, ops
from fastbp import reference as ref
from conftest import assert_close, tol
from layer_checks import check_files_and_exports


def _realmlp_like(loss="cross_entropy", n_out=3, dtype="float64", dropout=0.0, n_in=5, F=3):
    """PBLD over the first F columns, the front scale, two Dense + parametric
    activation blocks (selu, mish), the output layer."""
    pb = PeriodicBiasEmbedding(n_in, F, 3, n_frequencies=4, dtype=dtype, seed=1)
    w = pb.out_features
    return Sequential([pb, Scale(w, dtype=dtype), fastbp.Dense(w, 8, dtype=dtype, seed=2),
                       ParametricActivation(8, "selu", dtype=dtype, dropout=dropout),
                       fastbp.Dense(8, 8, dtype=dtype, seed=3),
                       ParametricActivation(8, "mish", dtype=dtype),
                       fastbp.Dense(8, n_out, dtype=dtype, seed=4)], loss)


def _problem(loss, n_out, n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    y = rng.integers(0, n_out, n) if loss == "cross_entropy" else rng.standard_normal((n, n_out))
    return X, y


def _perturbed(model, seed=5):
    """Move α and s away from 1 so that their gradients and the blend are exercised."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p[...] += 0.1 * rng.standard_normal(p.shape)
    return model


# ---------------------------------------------------------------- kernels

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_equal_the_reference(dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((9, 5)).astype(dtype)
    s = rng.standard_normal(5).astype(dtype)
    dA = rng.standard_normal((9, 5)).astype(dtype)
    rtol = tol(np.dtype(dtype), "rtol")
    assert_close(ops.scale_forward(X, s), ref.scale_forward(X, s), np.dtype(dtype), rtol=rtol)
    for mine, theirs in zip(ops.scale_backward(X, s, dA), ref.scale_backward(X, s, dA)):
        assert_close(mine, theirs, np.dtype(dtype), rtol=rtol)
    for act in ("selu", "mish", "tanh", "relu"):
        A, F = ops.parametric_activation_forward(act, X, s)
        A2, F2 = ref.parametric_activation_forward(act, X, s)
        assert_close(A, A2, np.dtype(dtype), rtol=rtol)
        assert_close(F, F2, np.dtype(dtype), rtol=rtol)
        got = ops.parametric_activation_backward(act, X, s, F, dA)
        want = ref.parametric_activation_backward(act, X, s, F2, dA)
        for mine, theirs in zip(got, want):
            assert_close(mine, theirs, np.dtype(dtype), rtol=rtol)
        assert ops.parametric_activation_backward(act, X, s, F, dA, need_dX=False)[0] is None
    F_, k, d = 3, 4, 2
    freq, phase = rng.standard_normal((F_, k)), rng.standard_normal((F_, k))
    W, b = rng.standard_normal((F_, k, d)), rng.standard_normal((F_, d))
    freq, phase, W, b = (a.astype(dtype) for a in (freq, phase, W, b))
    A, P = ops.periodic_bias_embedding_forward(X, freq, phase, W, b)
    A2, P2 = ref.periodic_bias_embedding_forward(X, freq, phase, W, b)
    assert A.shape == (9, F_ * d + 5)
    np.testing.assert_array_equal(A[:, F_ * d:], X)    # the input, appended unchanged
    assert_close(A, A2, np.dtype(dtype), rtol=rtol)
    dA = rng.standard_normal(A.shape).astype(dtype)
    got = ops.periodic_bias_embedding_backward(X, freq, W, P, dA)
    want = ref.periodic_bias_embedding_backward(X, freq, W, P2, dA)
    for mine, theirs in zip(got, want):
        # (the angle gradients sum k·n terms of either sign: float32 keeps ~1e-5 of them)
        assert_close(mine, theirs, np.dtype(dtype), rtol=rtol if dtype == np.float64 else 1e-4,
                     scale=np.abs(theirs).max())
    empty = ops.periodic_bias_embedding_forward(X[:0], freq, phase, W, b)[0]
    assert empty.shape == (0, F_ * d + 5)
    assert not ops.periodic_bias_embedding_backward(X[:0], freq, W, P[:, :0], dA[:0])[1].any()


def test_kernel_arguments_are_checked_by_name():
    X = np.ones((3, 4))
    with pytest.raises(ValueError, match="s must have shape"):
        ops.scale_forward(X, np.ones(3))
    with pytest.raises(TypeError, match="s must have dtype float64"):
        ops.scale_forward(X, np.ones(4, dtype=np.float32))
    with pytest.raises(ValueError, match="softmax"):
        ops.parametric_activation_forward("softmax", X, np.ones(4))
    with pytest.raises(ValueError, match="frequencies must have shape"):
        ops.periodic_bias_embedding_forward(X, np.ones((5, 2)), np.ones((5, 2)),
                                            np.ones((5, 2, 1)), np.ones((5, 1)))
    with pytest.raises(ValueError, match="phases must have the shape"):
        ops.periodic_bias_embedding_forward(X, np.ones((2, 2)), np.ones((2, 3)),
                                            np.ones((2, 2, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="n_embedded"):
        PeriodicBiasEmbedding(3, 4)
    with pytest.raises(ValueError, match="softmax"):
        ParametricActivation(3, "softmax")
    with pytest.raises(TypeError):
        Scale(3, dropout="no")


@pytest.mark.parametrize("name", ["selu", "mish"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_selu_and_mish_equal_torch(name, dtype):
    torch = pytest.importorskip("torch")
    z = np.concatenate([np.linspace(-30, 30, 2001), [-1e-8, 0.0, 1e-8, 19.99, 20.01]])
    Z = z.reshape(-1, 1).astype(dtype)
    zt = torch.tensor(Z, requires_grad=True)
    out = getattr(torch.nn.functional, name)(zt)
    out.backward(torch.ones_like(zt))
    A = ops.activation_forward(name, Z)
    assert_close(A, out.detach().numpy(), np.dtype(dtype), rtol=tol(np.dtype(dtype), "rtol"),
                 scale=np.abs(out.detach().numpy()) + 1e-6)
    dZ = ops.activation_backward(name, Z, A, np.ones_like(Z))
    # mish' = t + z·(1 - t²)·σ(z) cancels to 0 near its minimum (z ≈ -1.19): float32
    # keeps digits relative to its terms (O(1)), not to the small sum
    assert_close(dZ, zt.grad.numpy(), np.dtype(dtype), rtol=tol(np.dtype(dtype), "rtol"),
                 scale=np.maximum(np.abs(zt.grad.numpy()), 1.0 if dtype == np.float32
                                  else 1e-6))


# ---------------------------------------------------------------- in a model

@pytest.mark.parametrize("loss,n_out", [("cross_entropy", 3), ("mse", 2)])
def test_the_engine_step_equals_the_layers_own_passes(loss, n_out):
    model = _perturbed(_realmlp_like(loss, n_out))
    X, y = _problem(loss, n_out)
    value = model.backward(X, y)
    compiled = [g.copy() for g in model.gradients()]
    h = X
    for layer in model.layers:
        h = layer.forward(h)
    own, d = model.loss_and_grad(np.ascontiguousarray(h), model.check_y(y, len(X)), None)
    for layer in reversed(model.layers):
        d = layer.backward(d)
    assert value == pytest.approx(own, rel=1e-12)
    for a, b in zip(compiled, model.gradients()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.forward(X), h, rtol=1e-12, atol=1e-14)


def test_float32_step_equals_the_layers_own_passes_to_float32_rounding():
    model = _perturbed(_realmlp_like(dtype="float32"))
    X, y = _problem("cross_entropy", 3)
    model.backward(X, y)
    compiled = [g.copy() for g in model.gradients()]
    h = X.astype(np.float32)
    for layer in model.layers:
        h = layer.forward(h)
    _, d = model.loss_and_grad(h, model.check_y(y, len(X)), None)
    for layer in reversed(model.layers):
        d = layer.backward(d)
    for a, b in zip(compiled, model.gradients()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


def test_gradients_match_central_differences_with_dropout():
    model = _perturbed(_realmlp_like(dropout=0.2))
    X, y = _problem("cross_entropy", 3)
    result = fastbp.gradcheck(model, X, y)
    assert result.ok, result


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_files_and_both_exports(dtype, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _realmlp_like(dtype=dtype, dropout=0.1)
    X, y = _problem("cross_entropy", 3)
    model.fit(X, y, epochs=3, batch_size=8, optimizer="adam", lr=1e-2, progress=False)
    check_files_and_exports(model, X, tmp_path, f"realmlp_{dtype}", ort)


def test_dropout_rates_change_between_epochs():
    """set_dropout_rates: the next epochs draw their masks with the new rate, as a model
    built with it does (same seed, layer and step keys); rates are checked by name."""
    X, y = _problem("cross_entropy", 3)
    changed, built = _realmlp_like(dropout=0.3), _realmlp_like(dropout=0.1)
    changed.fit(X, y, epochs=1, batch_size=8, seed=0, progress=False)   # (its engine exists)
    for p, q in zip(built.parameters(), changed.parameters()):
        p[...] = q
    built.dropout_seed = changed.dropout_seed
    rates = [layer.dropout for layer in changed.layers]
    rates[3] = 0.1
    changed.set_dropout_rates(rates)
    assert changed.layers[3].dropout == 0.1 and changed.layers[3].spec()["dropout"] == 0.1
    changed.fit(X, y, epochs=2, batch_size=8, seed=1, progress=False)
    built.fit(X, y, epochs=2, batch_size=8, seed=1, progress=False)
    np.testing.assert_allclose(changed.forward(X), built.forward(X), rtol=1e-12)
    rates[2] = 0.5   # a Dense layer may get dropout (its buffers come with the next step)
    changed.set_dropout_rates(rates)
    changed.fit(X, y, epochs=1, batch_size=8, progress=False)
    assert np.isfinite(changed.forward(X)).all()
    with pytest.raises(ValueError, match=r"layers\[0\]"):
        changed.set_dropout_rates([0.1, 0, 0, 0.1, 0, 0, 0])
    with pytest.raises(ValueError, match=r"layers\[6\]"):
        changed.set_dropout_rates([0, 0, 0, 0.1, 0, 0, 0.1])
    with pytest.raises(ValueError, match="one rate per layer"):
        changed.set_dropout_rates([0.1])
    with pytest.raises(ValueError, match=r"rates\[3\]"):
        changed.set_dropout_rates([0, 0, 0, 1.0, 0, 0, 0])
    with pytest.raises(TypeError, match=r"rates\[3\]"):
        changed.set_dropout_rates([0, 0, 0, "0.1", 0, 0, 0])


# ---------------------------------------------------------------- against pytabkit

def test_each_block_equals_pytabkit():
    """Scale, ParametricActivation (selu, mish) and PBLD: forward and every gradient
    equal pytabkit 1.8's PyTorch layers (ScaleLayer, ParametricActivationLayer,
    PLREmbeddingsLayerCosBias with plr_act_name="linear", densenet) to 1e-12."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("pytabkit")
    from pytabkit.models.nn_models.activations import ParametricActivationLayer, mish
    from pytabkit.models.nn_models.base import ScaleLayer, Variable
    from pytabkit.models.nn_models.nn import PLREmbeddingsLayerCosBias
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 4))
    dA_rng = np.random.default_rng(1)

    def compare(layer, theirs, params):
        xt = torch.tensor(X, requires_grad=True)
        out = theirs(xt)
        A = layer.forward(X)
        np.testing.assert_allclose(A, out.detach().numpy(), rtol=1e-12, atol=1e-14)
        dA = dA_rng.standard_normal(A.shape)
        out.backward(torch.tensor(dA))
        dX = layer.backward(dA)
        np.testing.assert_allclose(dX, xt.grad.numpy(), rtol=1e-12, atol=1e-13)
        for g, p in zip(layer.gradients(), params):
            np.testing.assert_allclose(g, p.grad.numpy().reshape(g.shape), rtol=1e-11, atol=1e-13)

    scale = Scale(4, dtype="float64")
    scale.scale = rng.standard_normal(4)
    s = Variable(torch.tensor(scale.scale[None, :].copy()))
    compare(scale, ScaleLayer(s).forward_cont, [s])
    for name, f in (("selu", torch.selu), ("mish", mish)):
        pa = ParametricActivation(4, name, dtype="float64")
        pa.alpha = rng.standard_normal(4)
        a = Variable(torch.tensor(pa.alpha[None, :].copy()))
        compare(pa, ParametricActivationLayer(f, a).forward_cont, [a])
    pb = PeriodicBiasEmbedding(4, 4, 3, n_frequencies=5, dtype="float64", seed=2)
    w1 = Variable(torch.tensor(pb.frequencies[:, None, :].copy()))
    b1 = Variable(torch.tensor(pb.phases[:, None, :].copy()))
    w2 = Variable(torch.tensor(pb.weight.copy()))
    b2 = Variable(torch.tensor(pb.bias[:, None, :].copy()))
    theirs = PLREmbeddingsLayerCosBias(None, w1, b1, w2, b2, plr_act_name="linear",
                                       plr_use_densenet=True)
    compare(pb, theirs.forward_cont, [w1, b1, w2, b2])


def test_a_refused_objective_changes_nothing():
    """The engine checks every part of an objective before changing any (a clip_eps
    for a regression loss is refused, and the heads stay as they were)."""
    model = _realmlp_like("mse", 2)
    engine = model._compiled()
    with pytest.raises(ValueError, match="clip_eps"):
        engine.set_objective(1.0, 1.0, 0.0, 0.1, 2)
    assert engine.target_width == 2
