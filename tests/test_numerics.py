"""Numerical stability: logits of magnitude 1e4 (API.md: "numerically stable for logits of
magnitude up to 1e4"), saturated activations, and the accuracy of float64 loss sums.

Every check runs through fastbp.ops and fastbp.reference in both dtypes. A RuntimeWarning
(overflow in exp, 0·inf, log(0), ...) is an error here, independently of the pytest
configuration the suite is run with.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import DTYPES

from fastbp import ops, reference

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

MODULES = pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
DTYPE_PARAM = pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
               "softplus", "gelu", "silu", "softmax")
BIG = 1e4
L2 = math.log(2.0)

# rows of pure ±1e4, mixed with moderate values, and all-equal huge rows
LOGITS = [[BIG, -BIG, 0.0],
          [-BIG, -BIG, BIG],
          [BIG, BIG, BIG],
          [-BIG, -BIG, -BIG],
          [BIG, 3.0, -2.0],
          [-BIG, 0.5, 0.25]]


def rtol_for(dtype):
    return 1e-12 if np.dtype(dtype) == np.float64 else 1e-6


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
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-6)


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
    rtol = rtol_for(dtype)
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
    rtol = rtol_for(dtype)
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
    assert ref_loss == pytest.approx(exact, rel=1e-14)
    assert ops_loss == pytest.approx(ref_loss, rel=1e-12), (
        f"ops {ops_loss!r} vs reference {ref_loss!r}: relative "
        f"{abs(ops_loss - ref_loss) / ref_loss:.2e}")
