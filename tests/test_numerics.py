"""Numerical stability: logits of magnitude 1e4 (the API promises stability for
logits of magnitude up to 1e4), saturated activations (at ±1e4 with their exact limits,
and up to ±1e30 and ±finfo.max, alone and through a Dense layer), huge model outputs,
and the accuracy of float64 loss sums.

Every check runs through fastbp.ops and fastbp.reference in both dtypes. A RuntimeWarning
(overflow in exp, 0·inf, log(0), ...) is an error here, independently of the pytest
configuration the suite is run with.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import ACTIVATIONS, DTYPES, tol

import fastbp
from fastbp import ops, reference

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

MODULES = pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
DTYPE_PARAM = pytest.mark.parametrize("dtype", DTYPES)
BIG = 1e4
L2 = math.log(2.0)

# rows of pure ±1e4, mixed with moderate values, and all-equal huge rows
LOGITS = [[BIG, -BIG, 0.0],
          [-BIG, -BIG, BIG],
          [BIG, BIG, BIG],
          [-BIG, -BIG, -BIG],
          [BIG, 3.0, -2.0],
          [-BIG, 0.5, 0.25]]


def targets_for(name, dtype):
    if name == "binary_cross_entropy":
        return np.array([[0, 1, 0.5]] * 6, dtype=dtype)
    if name in ("mse", "mae", "huber"):
        return np.array([[1.0, -1.0, 0.0]] * 6, dtype=dtype)
    raise AssertionError(name)


def check_finite(loss, grad, dtype):
    assert isinstance(loss, float) and math.isfinite(loss)
    assert grad.dtype == np.dtype(dtype)
    assert np.isfinite(grad).all(), grad


@DTYPE_PARAM
@MODULES
@pytest.mark.parametrize("name", ["mse", "mae", "huber", "binary_cross_entropy"])
def test_elementwise_losses_finite_for_huge_logits(module, name, dtype):
    loss, grad = module.loss_forward_backward(name, np.array(LOGITS, dtype=dtype),
                                              targets_for(name, dtype))
    check_finite(loss, grad, dtype)


@DTYPE_PARAM
@MODULES
@pytest.mark.parametrize("targets", ["labels", "probabilities", "unnormalised"])
def test_cross_entropy_finite_for_huge_logits(module, targets, dtype):
    output = np.array(LOGITS, dtype=dtype)
    if targets == "labels":
        target = np.array([1, 0, 2, 1, 2, 0])
    else:
        target = np.tile(np.array([0.25, 0.25, 0.5], dtype=dtype), (6, 1))
        if targets == "unnormalised":
            target = target * 3
    loss, grad = module.loss_forward_backward("cross_entropy", output, target)
    check_finite(loss, grad, dtype)
    # gradient rows of softmax minus (a multiple of) the target sum to 0
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=tol(dtype, "limit_atol"))


# (loss, output, target, loss value, gradient), worked out by hand
HUGE = [
    # softplus-form BCE: (1-y)x - log σ(x); σ(1e4) = 1, σ(-1e4) = 0
    ("binary_cross_entropy", [[BIG]], [[0.0]], BIG, [[1.0]]),
    ("binary_cross_entropy", [[BIG]], [[1.0]], 0.0, [[0.0]]),
    ("binary_cross_entropy", [[-BIG]], [[1.0]], BIG, [[-1.0]]),
    ("binary_cross_entropy", [[-BIG]], [[0.0]], 0.0, [[0.0]]),
    ("binary_cross_entropy", [[BIG, -BIG]], [[0.5, 0.5]], BIG / 2, [[0.25, -0.25]]),
    # log-sum-exp: lse(1e4, -1e4) = 1e4
    ("cross_entropy", [[BIG, -BIG]], np.array([1]), 2 * BIG, [[1.0, -1.0]]),
    ("cross_entropy", [[BIG, -BIG]], np.array([0]), 0.0, [[0.0, 0.0]]),
    ("cross_entropy", [[BIG, BIG]], np.array([0]), L2, [[-0.5, 0.5]]),
    ("cross_entropy", [[-BIG, -BIG]], np.array([1]), L2, [[0.5, -0.5]]),
    ("cross_entropy", [[BIG, -BIG], [0.0, 0.0]], np.array([1, 0]), (2 * BIG + L2) / 2,
     [[0.5, -0.5], [-0.25, 0.25]]),
    ("cross_entropy", [[BIG, -BIG]], [[0.5, 0.5]], BIG, [[0.5, -0.5]]),
    ("cross_entropy", [[-BIG, 0.0, BIG]], [[1.0, 0.0, 1.0]], 2 * BIG, [[-1.0, 0.0, 1.0]]),
    ("mse", [[BIG, -BIG]], [[0.0, 0.0]], BIG**2, [[BIG, -BIG]]),
    ("mae", [[BIG, -BIG]], [[0.0, 0.0]], BIG, [[0.5, -0.5]]),
    ("huber", [[BIG, -BIG]], [[0.0, 0.0]], BIG - 0.5, [[0.5, -0.5]]),
]


@DTYPE_PARAM
@MODULES
@pytest.mark.parametrize("name, output, target, loss, grad", HUGE,
                         ids=[f"{h[0]}-{i}" for i, h in enumerate(HUGE)])
def test_huge_logits_hand_computed(module, dtype, name, output, target, loss, grad):
    output = np.array(output, dtype=dtype)
    target = target if isinstance(target, np.ndarray) else np.array(target, dtype=dtype)
    got_loss, got_grad = module.loss_forward_backward(name, output, target)
    check_finite(got_loss, got_grad, dtype)
    rtol = tol(dtype, "formula_rtol")
    assert got_loss == pytest.approx(loss, rel=rtol, abs=rtol)
    np.testing.assert_allclose(got_grad, grad, rtol=rtol, atol=rtol)


# ---------------------------------------------------------------- activations at ±1e4

# f(1e4), f(-1e4), f'(1e4), f'(-1e4); the derivative columns for dA = 1 (softmax apart)
SATURATED = {
    "identity": (BIG, -BIG, 1.0, 1.0),
    "sigmoid": (1.0, 0.0, 0.0, 0.0),
    "tanh": (1.0, -1.0, 0.0, 0.0),
    "relu": (BIG, 0.0, 1.0, 0.0),
    "leaky_relu": (BIG, -100.0, 1.0, 0.01),
    "elu": (BIG, -1.0, 1.0, 0.0),
    "softplus": (BIG, 0.0, 1.0, 0.0),
    "gelu": (BIG, 0.0, 1.0, 0.0),
    "silu": (BIG, 0.0, 1.0, 0.0),
}


@DTYPE_PARAM
@MODULES
@pytest.mark.parametrize("name", list(SATURATED))
def test_saturated_activations(module, name, dtype):
    Z = np.array([[BIG, -BIG]], dtype=dtype)
    A = module.activation_forward(name, Z)
    dZ = module.activation_backward(name, Z, A, np.ones_like(Z))
    f_hi, f_lo, d_hi, d_lo = SATURATED[name]
    assert np.isfinite(A).all() and np.isfinite(dZ).all()
    rtol = tol(dtype, "formula_rtol")
    np.testing.assert_allclose(A[0], [f_hi, f_lo], rtol=rtol, atol=0)
    np.testing.assert_allclose(dZ[0], [d_hi, d_lo], rtol=rtol, atol=0)


@DTYPE_PARAM
@MODULES
def test_sigmoid_and_softplus_are_exact_at_1e4(module, dtype):
    Z = np.array([[BIG, -BIG]], dtype=dtype)
    np.testing.assert_array_equal(module.activation_forward("sigmoid", Z), [[1.0, 0.0]])
    np.testing.assert_array_equal(module.activation_forward("softplus", Z), [[BIG, 0.0]])


@DTYPE_PARAM
@MODULES
def test_softmax_of_huge_logits(module, dtype):
    Z = np.array([[BIG, 0.0], [0.0, BIG], [BIG, BIG], [-BIG, -BIG], [BIG, -BIG]], dtype=dtype)
    A = module.activation_forward("softmax", Z)
    np.testing.assert_array_equal(A, [[1, 0], [0, 1], [0.5, 0.5], [0.5, 0.5], [1, 0]])
    dA = np.array([[1.0, -1.0]] * 5, dtype=dtype)
    dZ = module.activation_backward("softmax", Z, A, dA)
    # a·(dA - Σ dA·a): one-hot rows give 0; the uniform rows give (0.5, -0.5)
    np.testing.assert_array_equal(dZ, [[0, 0], [0, 0], [0.5, -0.5], [0.5, -0.5], [0, 0]])


@DTYPE_PARAM
@MODULES
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_layer_with_huge_preactivations_is_finite(module, name, dtype):
    X = np.array([[1.0, -1.0], [2.0, 0.5]], dtype=dtype)
    W = np.array([[BIG, -BIG, 1.0], [0.0, BIG, -BIG]], dtype=dtype)
    b = np.zeros(3, dtype=dtype)
    Z, A = module.dense_forward(X, W, b, name)
    dX, dW, db = module.dense_backward(X, W, Z, A, np.ones_like(A), name)
    for arr in (Z, A, dX, dW, db):
        assert arr.dtype == np.dtype(dtype)
        assert np.isfinite(arr).all(), (name, arr)


# ---------------------------------------------------------------- float64 loss sums


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "binary_cross_entropy", "cross_entropy"])
def test_float64_loss_value_keeps_1e12_on_a_large_batch(name):
    """The mean over 200000 equal terms is that term; the contract's float64 agreement
    (1e-12 relative with the reference) must hold for a large batch too. A plain
    running sum in double drifts by ~N·eps (about 4e-12 here); pairwise or blocked
    summation (what NumPy does) stays at ~1e-16."""
    n = 200_000
    if name == "cross_entropy":
        output = np.tile([1.1, -0.7, 0.3], (n, 1))
        target = np.zeros(n, dtype=np.int64)
        row = output[0]
        exact = math.log(math.fsum(math.exp(v) for v in row)) - row[0]
    else:
        output = np.full((n, 1), 1.1)
        target = np.zeros((n, 1)) if name != "binary_cross_entropy" else np.full((n, 1), 0.3)
        exact = {"mse": 1.1 * 1.1, "mae": 1.1, "huber": 1.1 - 0.5,
                 "binary_cross_entropy": 0.7 * 1.1 + math.log1p(math.exp(-1.1))}[name]
    ref_loss, _ = reference.loss_forward_backward(name, output, target)
    ops_loss, _ = ops.loss_forward_backward(name, output, target)
    assert ref_loss == pytest.approx(exact, rel=tol(np.float64, "closed_rtol"))
    assert ops_loss == pytest.approx(ref_loss, rel=tol(np.float64)), (
        f"ops {ops_loss!r} vs reference {ref_loss!r}: relative "
        f"{abs(ops_loss - ref_loss) / ref_loss:.2e}")


# ---------------------------------------------------------------- beyond 1e4: 1e30 and finfo.max
BIGGER = (1e4, 1e30)


def _finite(a):
    return bool(np.all(np.isfinite(a)))


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
    if name in ("softplus", "gelu", "silu", "mish"):
        return np.where(pos, z, 0.0), np.where(pos, 1.0, 0.0)
    if name == "selu":
        scale, alpha = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717
        return np.where(pos, scale * z, -scale * alpha), np.where(pos, scale, 0.0)
    raise AssertionError(name)


def _saturating_inputs(dtype, name=""):
    # selu's scale (1.05) takes finfo.max past the dtype: its largest input is halved
    big = [1e4, 1e30, float(np.finfo(dtype).max) / (2 if name == "selu" else 1)]
    vals = np.array(big + [-v for v in big], dtype=dtype)
    return vals.reshape(2, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", [a for a in fastbp.ACTIVATIONS if a != "softmax"])
def test_saturated_activation_kernels(name, dtype):
    Z = _saturating_inputs(dtype, name)
    A = ops.activation_forward(name, Z)
    dZ = ops.activation_backward(name, Z, A, np.ones_like(Z))
    assert _finite(A), f"{name}({Z.ravel()}) = {A.ravel()}"
    assert _finite(dZ), f"{name}'({Z.ravel()}) = {dZ.ravel()}"
    f, df = _limits(name, Z.astype(np.float64))
    np.testing.assert_allclose(A.astype(np.float64), f, rtol=tol(dtype, "limit_rtol"), atol=0)
    np.testing.assert_allclose(dZ.astype(np.float64), df, rtol=tol(dtype, "limit_rtol"), atol=0)
    # a non-trivial upstream gradient keeps the products finite too
    dA = np.full_like(Z, 1e4 if np.dtype(dtype) == np.float32 else 1e30)
    assert _finite(ops.activation_backward(name, Z, A, dA))


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_softmax(dtype):
    m = float(np.finfo(dtype).max)
    Z = np.array([[1e4, -1e4, 0.0], [1e30, -1e30, 1e30], [m, -m, 0.0], [-1e30, -1e30, -1e30]],
                 dtype=dtype)
    A = ops.activation_forward("softmax", Z)
    expected = np.array([[1, 0, 0], [0.5, 0, 0.5], [1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(A.astype(np.float64), expected, rtol=tol(dtype, "limit_rtol"),
                               atol=0)
    for dA in (np.ones_like(Z), np.arange(12, dtype=dtype).reshape(4, 3)):
        dZ = ops.activation_backward("softmax", Z, A, dA)
        assert _finite(dZ)
        # rows that are one-hot have a zero Jacobian
        assert not dZ[0].any() and not dZ[2].any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", fastbp.ACTIVATIONS)
@pytest.mark.parametrize("scale", BIGGER)
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
        assert _finite(layer.dW) or np.dtype(dtype) == np.float32
    else:
        assert _finite(dX) and _finite(layer.dW) and _finite(layer.db)


# ---------------------------------------------------------------- poisson and whole models
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
def test_poisson_at_large_outputs(module, dtype):
    """poisson's output is a log-mean: at -1e4 the loss is -y·z (finite); at +1e4 the mean
    e^z itself is beyond every float, so the loss and gradient are +inf (its true value),
    never NaN, and without an overflow warning (warnings are errors here)."""
    o = np.array([[-1e4], [-1e4], [0.0], [1e4]], dtype=dtype)
    t = np.array([[0.0], [2.0], [3.0], [0.0]], dtype=dtype)
    loss, grad = module.loss_forward_backward("poisson", o[:3], t[:3])
    assert loss == pytest.approx((0 + 2e4 + 1) / 3, rel=tol(dtype, "limit_rtol"))
    np.testing.assert_allclose(grad.astype(float).ravel(), [0, -2 / 3, -2 / 3],
                               rtol=tol(dtype, "limit_rtol"))
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
