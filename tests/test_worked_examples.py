"""The seed's two worked examples, by hand through the kernels, the reference, the
model API, the optimizer API, the demo functions and the ``python -m fastbp demo``
command line.

(a) y = w·x, x = 2, target 4, w = 1, MSE, one plain gradient step of 0.1:
    loss 4, dL/dw = -8, w becomes 1.8, new loss 0.16.
(b) L(θ) = (θ - 3)² from θ = 0 with rate 0.1: θ_k = 3(1 - 0.8^k).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import fastbp
from fastbp import demo, ops, reference

from conftest import tol

EXACT, FORMULA = tol(np.float64, "exact_rtol"), tol(np.float64, "formula_rtol")

KERNEL_MODULES = [pytest.param(ops, id="ops"), pytest.param(reference, id="reference")]


def quiet(_line: str) -> None:
    """An ``out`` printer that swallows the demo's text."""


# ---------------------------------------------------------------- (a) one weight, one step

@pytest.mark.parametrize("mod", KERNEL_MODULES)
def test_single_weight_step_through_kernels(mod):
    x = np.array([[2.0]])
    target = np.array([[4.0]])
    w = np.array([[1.0]])
    no_bias = np.zeros(1)

    Z, y_hat = mod.dense_forward(x, w, no_bias, "identity")
    assert Z[0, 0] == 2.0 and y_hat[0, 0] == 2.0
    loss0, d_out = mod.loss_forward_backward("mse", y_hat, target)
    assert loss0 == 4.0
    assert d_out[0, 0] == -4.0                    # dL/dy = 2(y - 4)
    dX, dW, db = mod.dense_backward(x, w, Z, y_hat, d_out, "identity")
    assert dW.shape == (1, 1)
    assert dW[0, 0] == -8.0                       # dL/dw = x·dL/dy
    assert dX[0, 0] == -4.0                       # dL/dx = w·dL/dy
    assert db[0] == -4.0

    mod.sgd_step(w, dW, None, lr=0.1)            # plain step, bias left alone
    assert w[0, 0] == pytest.approx(1.8, rel=EXACT)
    _, y_hat = mod.dense_forward(x, w, no_bias, "identity")
    assert y_hat[0, 0] == pytest.approx(3.6, rel=EXACT)
    loss1, _ = mod.loss_forward_backward("mse", y_hat, target)
    assert loss1 == pytest.approx(0.16, rel=FORMULA)


@pytest.mark.parametrize("mod", KERNEL_MODULES)
def test_single_weight_step_float32(mod):
    x = np.array([[2.0]], dtype=np.float32)
    target = np.array([[4.0]], dtype=np.float32)
    w = np.array([[1.0]], dtype=np.float32)
    Z, y_hat = mod.dense_forward(x, w, np.zeros(1, np.float32), "identity")
    loss0, d_out = mod.loss_forward_backward("mse", y_hat, target)
    _, dW, _ = mod.dense_backward(x, w, Z, y_hat, d_out, "identity", need_dX=False)
    assert (loss0, dW.dtype, dW[0, 0]) == (4.0, np.float32, -8.0)
    mod.sgd_step(w, dW, None, lr=0.1)
    assert w.dtype == np.float32
    assert w[0, 0] == pytest.approx(1.8, rel=tol(np.float32, "formula_rtol"))
    loss1, _ = mod.loss_forward_backward("mse", mod.dense_forward(x, w, np.zeros(1, np.float32),
                                                                  "identity")[1], target)
    assert loss1 == pytest.approx(0.16, rel=tol(np.float32, "lossy_rtol"))


def test_single_weight_step_through_model_api():
    layer = fastbp.Dense(1, 1, dtype="float64")
    layer.W[...] = 1.0
    model = fastbp.Sequential([layer], loss="mse")
    x, target = np.array([[2.0]]), np.array([4.0])
    assert model.loss(x, target) == 4.0
    assert model.backward(x, target) == 4.0
    assert layer.dW[0, 0] == -8.0
    assert layer.db[0] == -4.0
    # The plain gradient step on w only (the example has no bias).
    ops.sgd_step(layer.W, layer.dW, None, lr=0.1)
    assert layer.W[0, 0] == pytest.approx(1.8, rel=EXACT)
    assert model.loss(x, target) == pytest.approx(0.16, rel=FORMULA)
    assert model.predict(x)[0] == pytest.approx(3.6, rel=EXACT)


def test_single_weight_demo_function():
    lines: list[str] = []
    loss0, w, loss1 = demo.single_weight_example(out=lines.append)
    assert loss0 == 4.0
    assert w == pytest.approx(1.8, rel=EXACT)
    assert loss1 == pytest.approx(0.16, rel=FORMULA)
    text = "\n".join(lines)
    assert "-8" in text and "1.8" in text and "0.16" in text
    # And silently, as the brief's out=lambda s: None.
    assert demo.single_weight_example(out=lambda s: None)[1] == pytest.approx(1.8, rel=EXACT)


# ---------------------------------------------------------------- (b) the parabola

def closed_form(k: int) -> float:
    return 3.0 * (1.0 - 0.8 ** k)


@pytest.mark.parametrize("mod", KERNEL_MODULES)
def test_parabola_through_kernels(mod):
    theta = np.zeros((1, 1))
    target = np.array([[3.0]])
    for k in range(1, 51):
        loss, grad = mod.loss_forward_backward("mse", theta, target)
        assert loss == pytest.approx((theta[0, 0] - 3.0) ** 2, rel=FORMULA)
        assert grad[0, 0] == pytest.approx(2.0 * (theta[0, 0] - 3.0), rel=FORMULA)
        mod.sgd_step(theta, grad, None, lr=0.1)
        assert theta[0, 0] == pytest.approx(closed_form(k), rel=FORMULA), k


def test_parabola_first_steps_by_hand():
    # 0.6, 1.08, 1.464, 1.7712 (printed in the seed)
    theta = np.zeros((1, 1))
    got = []
    for _ in range(4):
        _, grad = ops.loss_forward_backward("mse", theta, np.array([[3.0]]))
        ops.sgd_step(theta, grad, None, lr=0.1)
        got.append(theta[0, 0])
    np.testing.assert_allclose(got, [0.6, 1.08, 1.464, 1.7712], rtol=tol(np.float64, "closed_rtol"))


def test_parabola_demo_function():
    thetas = demo.parabola_example(steps=50, out=quiet)
    assert len(thetas) == 51
    assert thetas[0] == 0.0
    for k in range(1, 51):
        assert thetas[k] == pytest.approx(closed_form(k), rel=FORMULA), k
    assert len(demo.parabola_example(out=quiet)) == 11   # 10 steps by default


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_parabola_through_sgd_optimizer(dtype):
    theta = np.zeros(1, dtype=dtype)
    opt = fastbp.SGD([theta], lr=0.1)
    target = np.array([[3.0]], dtype=dtype)
    rel = tol(dtype, "lossy_rtol")
    for k in range(1, 51):
        _, grad = ops.loss_forward_backward("mse", theta.reshape(1, 1), target)
        opt.step([grad.reshape(1)])
        assert theta.dtype == dtype
        assert float(theta[0]) == pytest.approx(closed_form(k), rel=rel), k


def test_parabola_through_sgd_optimizer_hand_gradient():
    theta = np.zeros(1)
    opt = fastbp.SGD([theta], lr=0.1)
    for k in range(1, 51):
        opt.step([2.0 * (theta - 3.0)])
        assert theta[0] == pytest.approx(closed_form(k), rel=FORMULA), k


# ---------------------------------------------------------------- the command line

@pytest.mark.packaging
def test_cli_demo_subprocess(tmp_path):
    env = dict(os.environ)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fastbp", "demo", "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    print(f"python -m fastbp demo took {seconds:.2f} s")   # loosely timed, never asserted
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "1.8" in out
    assert "0.16" in out
    assert "test accuracy" in out
    # the parabola table is printed too
    assert "2.677877452800000" in out
