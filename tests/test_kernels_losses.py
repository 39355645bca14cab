"""fastbp.ops loss kernels against fastbp.reference, plus hand-computed values.

Every loss returns (mean loss as a Python float, dL/d_output in the output's dtype).
Gradient elements are O(1/N) (N = n·k for the element-wise losses, n for cross
entropy), so the gradient's error scale is max(max|grad|, (1 + max|target|)/N):
the rounding of σ(x) - y or p·Σy - y is that of its O(1)-sized terms, divided by N.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import DTYPES, assert_close, assert_scalar_close, tol
from hypothesis import given
from hypothesis import strategies as st
from strategies import class_labels, float_arrays, layouts, shapes, to_layout

import fastbp
from fastbp import ops, reference

LOSSES = ("mse", "mae", "huber", "binary_cross_entropy", "cross_entropy", "poisson")
ELEMENTWISE = ("mse", "mae", "huber", "binary_cross_entropy")
MODULES = pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
LABEL_DTYPES = (np.int8, np.int32, np.int64, np.uint8)


def test_loss_names_are_the_contract():
    assert fastbp.LOSSES == ops.LOSSES == reference.LOSSES == LOSSES


def compare(name, output, target, dtype, *, output_in=None, target_in=None, err_msg=""):
    """ops (on the laid-out inputs, if given) against reference (on the C arrays)."""
    output_in = output if output_in is None else output_in
    target_in = target if target_in is None else target_in
    loss, grad = ops.loss_forward_backward(name, output_in, target_in)
    eloss, egrad = reference.loss_forward_backward(name, output, target)
    assert isinstance(loss, float) and isinstance(eloss, float)
    assert grad.dtype == np.dtype(dtype) and grad.shape == output.shape
    assert_scalar_close(loss, eloss, dtype, err_msg=f"{name} loss {err_msg}")
    denom = output.shape[0] if name == "cross_entropy" else output.size
    tmax = float(np.abs(target).max()) if target.dtype.kind == "f" else 1.0
    scale = max(float(np.abs(egrad).max()), (1.0 + tmax) / denom)
    assert_close(grad, egrad, dtype, scale=scale, err_msg=f"{name} grad {err_msg}")
    return loss, grad


# ---------------------------------------------------------------- ops vs reference

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
@given(data=st.data())
def test_elementwise_losses_match_reference(name, dtype, data):
    shape = data.draw(shapes(), label="shape")
    output = data.draw(float_arrays(dtype, shape), label="output")
    if name == "binary_cross_entropy":
        target = data.draw(float_arrays(dtype, shape, min_value=0.0, max_value=1.0), label="target")
    else:
        target = data.draw(float_arrays(dtype, shape), label="target")
    lo, lt = data.draw(layouts, label="layout output"), data.draw(layouts, label="layout target")
    compare(name, output, target, dtype, output_in=to_layout(output, lo),
            target_in=to_layout(target, lt), err_msg=f"{lo}/{lt}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
@given(data=st.data())
def test_cross_entropy_labels_match_reference(label_dtype, dtype, data):
    n, k = data.draw(shapes(max_cols=127), label="shape")      # int8 labels reach 126
    output = data.draw(float_arrays(dtype, (n, k)), label="output")
    labels = data.draw(class_labels(n, k, label_dtype), label="labels")
    lo, ll = data.draw(layouts, label="layout output"), data.draw(layouts, label="layout labels")
    loss, grad = compare("cross_entropy", output, labels, dtype, output_in=to_layout(output, lo),
                         target_in=to_layout(labels, ll), err_msg=f"{lo}/{ll}")
    # The integer type of the labels changes nothing.
    loss64, grad64 = ops.loss_forward_backward("cross_entropy", output, labels.astype(np.int64))
    assert loss == loss64
    np.testing.assert_array_equal(grad, grad64)


@st.composite
def probability_targets(draw, dtype, shape, normalised):
    """Non-negative rows; normalised ones sum to 1 (all-zero rows become uniform)."""
    t = draw(float_arrays(np.float64, shape, min_value=0.0, max_value=3.0))
    if normalised:
        s = t.sum(axis=1, keepdims=True)
        t = np.where(s > 0, t / np.where(s > 0, s, 1.0), 1.0 / shape[1])
    return t.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalised", [True, False], ids=["normalised", "unnormalised"])
@given(data=st.data())
def test_cross_entropy_probabilities_match_reference(normalised, dtype, data):
    shape = data.draw(shapes(), label="shape")
    output = data.draw(float_arrays(dtype, shape), label="output")
    target = data.draw(probability_targets(dtype, shape, normalised), label="target")
    lo, lt = data.draw(layouts, label="layout output"), data.draw(layouts, label="layout target")
    compare("cross_entropy", output, target, dtype, output_in=to_layout(output, lo),
            target_in=to_layout(target, lt), err_msg=f"{lo}/{lt}")


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_cross_entropy_labels_equal_one_hot_probabilities(dtype, data):
    n, k = data.draw(shapes(), label="shape")
    output = data.draw(float_arrays(dtype, (n, k)), label="output")
    labels = data.draw(class_labels(n, k), label="labels")
    one_hot = np.zeros((n, k), dtype=dtype)
    one_hot[np.arange(n), labels] = 1
    loss_l, grad_l = ops.loss_forward_backward("cross_entropy", output, labels)
    loss_p, grad_p = ops.loss_forward_backward("cross_entropy", output, one_hot)
    assert_scalar_close(loss_l, loss_p, dtype)
    assert_close(grad_l, grad_p, dtype, scale=1.0 / n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
@MODULES
@given(data=st.data())
def test_1d_target_is_a_column(module, name, dtype, data):
    n = data.draw(st.integers(1, 300), label="n")
    output = data.draw(float_arrays(dtype, (n, 1)), label="output")
    lo, hi = (0.0, 1.0) if name == "binary_cross_entropy" else (-10.0, 10.0)
    target = data.draw(float_arrays(dtype, (n,), min_value=lo, max_value=hi), label="target")
    loss1, grad1 = module.loss_forward_backward(name, output, target)
    loss2, grad2 = module.loss_forward_backward(name, output, target.reshape(n, 1))
    assert loss1 == loss2
    assert grad1.shape == (n, 1) and grad1.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(grad1, grad2)
    if module is ops:
        compare(name, output, target.reshape(n, 1), dtype, target_in=target)


# ---------------------------------------------------------------- hand-computed values

L2, L3, L43 = math.log(2.0), math.log(3.0), math.log(4.0 / 3.0)

# (loss, output, target, expected loss, expected gradient), each worked out by hand.
HAND = [
    # mean((1,2)²) = 5/2; 2/N·r = r
    ("mse", [[1, 2]], [[0, 0]], 2.5, [[1, 2]]),
    # r = (1, -3, 0, 2): (1 + 9 + 0 + 4)/4; 2/4·r
    ("mse", [[2, -1], [3, 2]], [[1, 2], [3, 0]], 3.5, [[0.5, -1.5], [0, 1]]),
    # |r| = (1, 2, 0): mean 1; sign/3 with sign(0) = 0
    ("mae", [[1, -2, 3]], [[0, 0, 3]], 1.0, [[1 / 3, -1 / 3, 0]]),
    # r = 0.5 -> 0.125; r = -3 -> 2.5; |r| = 1 -> 0.5 (both branches agree); mean of 3
    ("huber", [[0.5, -3, 1]], [[0, 0, 0]], (0.125 + 2.5 + 0.5) / 3, [[0.5 / 3, -1 / 3, 1 / 3]]),
    # σ(0) = 1/2: -log(1/2) for either target; (σ - y)/2
    ("binary_cross_entropy", [[0, 0]], [[1, 0]], L2, [[-0.25, 0.25]]),
    # σ(ln 3) = 3/4: y = 1 -> log(4/3); y = 1/4 -> (3/4)·ln 3 + log(4/3); grads (σ - y)/2
    ("binary_cross_entropy", [[L3, L3]], [[1, 0.25]], (L43 + 0.75 * L3 + L43) / 2,
     [[-0.125, 0.25]]),
    # softmax(0, 0) = (1/2, 1/2); label 0: log 2; p - onehot
    ("cross_entropy", [[0, 0]], np.array([0]), L2, [[-0.5, 0.5]]),
    # row 1: softmax(0, ln 3) = (1/4, 3/4), label 1 -> log(4/3); row 2 as above, label 0
    ("cross_entropy", [[0, L3], [0, 0]], np.array([1, 0]), (L43 + L2) / 2,
     [[0.125, -0.125], [-0.25, 0.25]]),
    # probabilities (1/2, 1/2) on (1/4, 3/4): -(log(1/4) + log(3/4))/2; p - y
    ("cross_entropy", [[0, L3]], [[0.5, 0.5]], (math.log(4.0) + L43) / 2, [[-0.25, 0.25]]),
    # unnormalised (1, 1): log 4 + log(4/3); p·Σy - y = (1/2 - 1, 3/2 - 1)
    ("cross_entropy", [[0, L3]], [[1, 1]], math.log(4.0) + L43, [[-0.5, 0.5]]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@MODULES
@pytest.mark.parametrize("name, output, target, loss, grad", HAND,
                         ids=[f"{h[0]}-{i}" for i, h in enumerate(HAND)])
def test_hand_computed(module, dtype, name, output, target, loss, grad):
    output = np.array(output, dtype=dtype)
    target = target if isinstance(target, np.ndarray) else np.array(target, dtype=dtype)
    got_loss, got_grad = module.loss_forward_backward(name, output, target)
    rtol = tol(dtype, "formula_rtol")
    assert isinstance(got_loss, float)
    assert got_loss == pytest.approx(loss, rel=rtol, abs=rtol)
    assert got_grad.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got_grad, grad, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
@MODULES
@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_hand_computed_labels_any_int_dtype(module, dtype, label_dtype):
    output = np.array([[0.0, L3], [0.0, 0.0], [L3, 0.0]], dtype=dtype)
    labels = np.array([1, 0, 1], dtype=label_dtype)
    loss, grad = module.loss_forward_backward("cross_entropy", output, labels)
    rtol = tol(dtype, "formula_rtol")
    assert loss == pytest.approx((L43 + L2 + math.log(4.0)) / 3, rel=rtol)
    np.testing.assert_allclose(grad, np.array([[0.25, -0.25], [-0.5, 0.5], [0.75, -0.75]]) / 3,
                               rtol=rtol, atol=rtol)
