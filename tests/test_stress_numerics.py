"""Numerical stress: saturation, huge logits, divergence and non-finite data.

* Every activation at saturating inputs (+-1e4, +-1e30 and +-finfo.max) gives finite
  outputs and finite gradients where the function and its derivative are finite,
  with the limiting values (sigmoid -> 0/1, tanh -> +-1, softplus(z) -> z, ...), in
  the kernels (``fastbp.ops``) and through a Dense layer.
* Every loss is finite, with its closed-form value, for logits up to +-1e4.
* ``fit`` with a huge learning rate on large targets raises ``TrainingDiverged`` (a
  ValueError) naming the epoch, and leaves every parameter finite and equal to its
  value at the start of that epoch (recorded by a callback at the end of each epoch).
* NaN/inf in X, y or validation_data raises ValueError naming the argument before any
  training: parameters, optimizer state and step count unchanged, no callback called.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import fastbp
from fastbp import ops, reference

DTYPES = ["float32", "float64"]
BIG = (1e4, 1e30)


def _finite(a):
    return bool(np.all(np.isfinite(a)))


# ---------------------------------------------------------------- saturated activations
def _limits(name, z):
    """(f(z), f'(z)) in the limit of a saturating |z| (the exact value the kernel must give)."""
    pos = z > 0
    if name == "identity":
        return z, np.ones_like(z)
    if name == "sigmoid":
        return np.where(pos, 1.0, 0.0), np.zeros_like(z)
    if name == "tanh":
        return np.where(pos, 1.0, -1.0), np.zeros_like(z)
    if name == "relu":
        return np.where(pos, z, 0.0), np.where(pos, 1.0, 0.0)
    if name == "leaky_relu":
        return np.where(pos, z, 0.01 * z), np.where(pos, 1.0, 0.01)
    if name == "elu":
        return np.where(pos, z, -1.0), np.where(pos, 1.0, 0.0)
    if name in ("softplus", "gelu", "silu"):
        return np.where(pos, z, 0.0), np.where(pos, 1.0, 0.0)
    raise AssertionError(name)


def _saturating_inputs(dtype):
    big = [1e4, 1e30, float(np.finfo(dtype).max)]
    vals = np.array(big + [-v for v in big], dtype=dtype)
    return vals.reshape(2, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", [a for a in fastbp.ACTIVATIONS if a != "softmax"])
def test_saturated_activation_kernels(name, dtype):
    Z = _saturating_inputs(dtype)
    A = ops.activation_forward(name, Z)
    dZ = ops.activation_backward(name, Z, A, np.ones_like(Z))
    assert _finite(A), f"{name}({Z.ravel()}) = {A.ravel()}"
    assert _finite(dZ), f"{name}'({Z.ravel()}) = {dZ.ravel()}"
    f, df = _limits(name, Z.astype(np.float64))
    np.testing.assert_allclose(A.astype(np.float64), f, rtol=1e-6, atol=0)
    np.testing.assert_allclose(dZ.astype(np.float64), df, rtol=1e-6, atol=0)
    # a non-trivial upstream gradient keeps the products finite too
    dA = np.full_like(Z, 1e4 if dtype == "float32" else 1e30)
    assert _finite(ops.activation_backward(name, Z, A, dA))


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_softmax(dtype):
    m = float(np.finfo(dtype).max)
    Z = np.array([[1e4, -1e4, 0.0], [1e30, -1e30, 1e30], [m, -m, 0.0], [-1e30, -1e30, -1e30]],
                 dtype=dtype)
    A = ops.activation_forward("softmax", Z)
    expected = np.array([[1, 0, 0], [0.5, 0, 0.5], [1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(A.astype(np.float64), expected, rtol=1e-6, atol=0)
    for dA in (np.ones_like(Z), np.arange(12, dtype=dtype).reshape(4, 3)):
        dZ = ops.activation_backward("softmax", Z, A, dA)
        assert _finite(dZ)
        # rows that are one-hot have a zero Jacobian
        assert not dZ[0].any() and not dZ[2].any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", fastbp.ACTIVATIONS)
@pytest.mark.parametrize("scale", BIG)
def test_saturated_dense_layer(name, dtype, scale):
    """Z = X·W + b of magnitude 1e4 / 1e30 through Dense.forward/backward."""
    layer = fastbp.Dense(3, 4, activation=name, dtype=dtype, seed=0)
    layer.W = np.array([[1, -1, 0.5, 0], [0, 0, 0.5, -2], [0, 1, 0, 1]], dtype=dtype)
    X = np.array([[scale, 0, 0], [-scale, 0, 0], [0, scale, -scale], [scale, scale, scale]],
                 dtype=dtype)
    A = layer.forward(X)
    dX = layer.backward(np.ones_like(A))
    assert _finite(A), A
    if name in ("identity", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu") \
            and scale == 1e30:
        # dW = X^T dZ with |X| = 1e30 and dZ = O(1): finite for float64, and for float32
        # while the products stay below 3.4e38
        assert _finite(layer.db) and _finite(dX)
        assert _finite(layer.dW) or dtype == "float32"
    else:
        assert _finite(dX) and _finite(layer.dW) and _finite(layer.db)


# ---------------------------------------------------------------- losses at large logits
@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_finite_at_large_logits(dtype):
    o = np.array([[1e4], [-1e4], [1e4], [-1e4], [0.0]], dtype=dtype)
    t = np.array([[0.0], [1.0], [1.0], [0.0], [0.5]], dtype=dtype)
    n = 5
    cases = {
        "mse": (np.mean((o.astype(float) - t) ** 2), 2 * (o.astype(float) - t) / n),
        "mae": (np.mean(np.abs(o.astype(float) - t)), np.sign(o.astype(float) - t) / n),
        "huber": (np.mean(np.abs(o.astype(float) - t) - 0.5 * (np.abs(o.astype(float) - t) >= 1)
                          + (np.abs(o.astype(float) - t) < 1) * (0.5 * (o.astype(float) - t) ** 2
                                                               - np.abs(o.astype(float) - t))),
                  np.clip(o.astype(float) - t, -1, 1) / n),
        # from logits: (1-y)x - log σ(x): 1e4, 1e4, 0, 0, log 2
        "binary_cross_entropy": ((1e4 + 1e4 + 0 + 0 + np.log(2)) / n,
                                 (np.array([[1], [0], [1], [0], [0.5]]) - t) / n),
    }
    for name, (loss_ref, grad_ref) in cases.items():
        loss, grad = ops.loss_forward_backward(name, o, t)
        assert np.isfinite(loss) and _finite(grad), name
        assert loss == pytest.approx(float(loss_ref), rel=1e-6), name
        np.testing.assert_allclose(grad.astype(float), grad_ref, rtol=1e-6, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_finite_at_large_logits(dtype):
    o = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4 - 1, -1e4]],
                 dtype=dtype)
    labels = np.array([0, 1, 2, 1])
    loss, grad = ops.loss_forward_backward("cross_entropy", o, labels)
    # per sample: 0, 2e4, log 3, 1 + log(1 + e^-1)
    expected = (0 + 2e4 + np.log(3) + 1 + np.log1p(np.exp(-1))) / 4
    assert np.isfinite(loss) and _finite(grad)
    assert loss == pytest.approx(expected, rel=1e-6)
    probs = np.eye(3)[labels].astype(dtype)
    loss_p, grad_p = ops.loss_forward_backward("cross_entropy", o, probs)
    assert loss_p == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(grad_p, grad, rtol=1e-5, atol=1e-7)
    soft = np.full((4, 3), 1 / 3, dtype=dtype)
    loss_s, grad_s = ops.loss_forward_backward("cross_entropy", o, soft)
    assert np.isfinite(loss_s) and _finite(grad_s)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
def test_poisson_at_large_outputs(module, dtype):
    """poisson's output is a log-mean: at -1e4 the loss is -y·z (finite); at +1e4 the mean
    e^z itself is beyond every float, so the loss and gradient are +inf (its true value),
    never NaN, and without an overflow warning (warnings are errors here)."""
    o = np.array([[-1e4], [-1e4], [0.0], [1e4]], dtype=dtype)
    t = np.array([[0.0], [2.0], [3.0], [0.0]], dtype=dtype)
    loss, grad = module.loss_forward_backward("poisson", o[:3], t[:3])
    assert loss == pytest.approx((0 + 2e4 + 1) / 3, rel=1e-6)
    np.testing.assert_allclose(grad.astype(float).ravel(), [0, -2 / 3, -2 / 3], rtol=1e-6)
    loss, grad = module.loss_forward_backward("poisson", o, t)
    assert loss == np.inf and grad[3, 0] == np.inf and not np.isnan(grad).any()


@pytest.mark.parametrize("loss", [name for name in fastbp.LOSSES if name != "poisson"])
def test_model_loss_and_gradients_finite_with_huge_logits(loss):
    """A model whose output layer produces logits of ~1e4."""
    k = 3 if loss == "cross_entropy" else 2
    model = fastbp.MLP((4, 8, k), activation="relu", loss=loss, dtype="float64", seed=0)
    model.layers[-1].W = model.layers[-1].W * 1e4
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 4)) * 3
    y = rng.integers(0, k, 16) if loss == "cross_entropy" else \
        (rng.random((16, k)) > 0.5).astype(float)
    out = model.forward(X)
    assert np.abs(out).max() > 1e3
    value = model.backward(X, y)
    assert np.isfinite(value) and all(_finite(g) for g in model.gradients())
    assert np.isfinite(model.loss(X, y))


# ---------------------------------------------------------------- divergence
def _diverging_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    y = (rng.normal(size=64) * 1e6).astype(np.float32)
    return X, y


def _fit_until_divergence(model, X, y, opt, **kwargs):
    """Runs fit; returns (the exception, {epoch: parameters at the end of that epoch})."""
    snapshots = {-1: [p.copy() for p in model.parameters()]}
    extra = kwargs.pop("callbacks", ())

    def record(epoch, logs):
        snapshots[epoch] = [p.copy() for p in model.parameters()]

    with pytest.raises(fastbp.TrainingDiverged) as info:
        model.fit(X, y, epochs=30, optimizer=opt, callbacks=[record, *extra], **kwargs)
    return info.value, snapshots


def _check_restored(model, exc, snapshots):
    assert isinstance(exc, ValueError)
    match = re.search(r"epoch (\d+)", str(exc))
    assert match, f"the message must name the epoch: {exc}"
    epoch = int(match.group(1))
    assert epoch == max(snapshots) + 1, (
        f"message names epoch {epoch}, but the last completed epoch was {max(snapshots)}")
    start = snapshots[epoch - 1]            # end of the previous epoch = start of this one
    params = model.parameters()
    assert all(_finite(p) for p in params), (
        f"parameters after TrainingDiverged in epoch {epoch} are not finite")
    assert all(np.array_equal(p, s) for p, s in zip(params, start)), (
        "parameters must equal those at the start of the diverged epoch")


@pytest.mark.parametrize("batch_size", [
    16,    # diverges inside the first epoch
    32,    # the last update of an epoch makes the parameters non-finite
    None,  # full batch: every epoch is one step
])
def test_fit_diverges_with_huge_learning_rate(batch_size):
    X, y = _diverging_problem()
    model = fastbp.MLP((4, 8, 1), seed=0)
    opt = fastbp.SGD(model.parameters(), lr=1e6)
    exc, snapshots = _fit_until_divergence(model, X, y, opt, batch_size=batch_size,
                                           shuffle=False)
    _check_restored(model, exc, snapshots)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_fit_diverges_in_a_later_epoch(momentum):
    """The learning rate is raised to 1e6 after epoch 2, so epoch 3 diverges."""
    X, y = _diverging_problem()
    model = fastbp.MLP((4, 8, 1), seed=0)
    opt = fastbp.SGD(model.parameters(), lr=1e-6, momentum=momentum)

    def boost(epoch, logs):
        if epoch == 2:
            opt.lr = 1e6

    exc, snapshots = _fit_until_divergence(model, X, y, opt, batch_size=16, seed=0,
                                           callbacks=[boost])
    assert max(snapshots) >= 2
    _check_restored(model, exc, snapshots)
    assert all(not np.array_equal(a, b) for a, b in zip(snapshots[-1], snapshots[2])), \
        "the first epochs trained"


def test_fit_can_resume_after_divergence_with_a_lower_learning_rate():
    X, y = _diverging_problem()
    model = fastbp.MLP((4, 8, 1), seed=0)
    opt = fastbp.SGD(model.parameters(), lr=1e6, momentum=0.9)
    _fit_until_divergence(model, X, y, opt, batch_size=16, shuffle=False)
    opt.lr = 1e-9
    history = model.fit(X, y / 1e6, epochs=2, batch_size=16, optimizer=opt)
    assert all(np.isfinite(history.loss))


# ---------------------------------------------------------------- non-finite data
def _nonfinite_cases():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    y = rng.normal(size=20)

    def with_value(a, idx, v):
        a = a.copy()
        a[idx] = v
        return a

    return [
        ("X-nan", with_value(X, (3, 1), np.nan), y, None, r"\bX\b"),
        ("X-inf", with_value(X, (0, 0), np.inf), y, None, r"\bX\b"),
        ("y-nan", X, with_value(y, 7, np.nan), None, r"\by\b"),
        ("y-neginf", X, with_value(y, 19, -np.inf), None, r"\by\b"),
        ("val-X-nan", X, y, (with_value(X[:5], (2, 2), np.nan), y[:5]), r"validation_data"),
        ("val-y-inf", X, y, (X[:5], with_value(y[:5], 0, np.inf)), r"validation_data"),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", _nonfinite_cases(), ids=lambda c: c[0])
def test_nonfinite_data_is_refused_before_training(case, dtype):
    _, X, y, val, pattern = case
    model = fastbp.MLP((3, 8, 1), dtype=dtype, seed=0)
    opt = fastbp.Adam(model.parameters())
    start = [p.copy() for p in model.parameters()]
    calls = []
    with pytest.raises(ValueError, match=pattern):
        model.fit(X, y, epochs=3, optimizer=opt, validation_data=val,
                  callbacks=[lambda e, logs: calls.append(e)])
    assert not calls and opt.step_count == 0
    assert all(np.array_equal(p, s) for p, s in zip(model.parameters(), start))
    assert all(not a.any() for s in opt.state for a in s.values())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_class_labels_are_refused_before_training(bad):
    model = fastbp.MLP((3, 8, 4), loss="cross_entropy", seed=0)
    start = [p.copy() for p in model.parameters()]
    X = np.ones((6, 3))
    y = np.array([0, 1, 2, 3, bad, 0])
    with pytest.raises(ValueError, match=r"\by\b"):
        model.fit(X, y, epochs=2)
    assert all(np.array_equal(p, s) for p, s in zip(model.parameters(), start))
