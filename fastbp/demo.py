"""``python -m fastbp demo``: the seed's worked examples, then a small training run."""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from fastbp import ops
from fastbp.datasets import make_spirals
from fastbp.models import MLP
from fastbp.schedules import CosineAnnealingLR

__all__ = ["single_weight_example", "parabola_example", "spirals_example", "run"]

Printer = Callable[[str], Any]


def single_weight_example(out: Printer = print) -> tuple[float, float, float]:
    """y = w·x, x=2, target 4, w=1, MSE, one SGD step of 0.1: loss 4 → w 1.8 → loss 0.16."""
    x = np.array([[2.0]])
    target = np.array([[4.0]])
    w = np.array([[1.0]])
    no_bias = np.zeros(1)
    out("Example 1: y = w·x with x = 2, target 4, w = 1, MSE, learning rate 0.1")
    _, y_hat = ops.dense_forward(x, w, no_bias, "identity")
    loss0, d_out = ops.loss_forward_backward("mse", y_hat, target)
    _, dW, _ = ops.dense_backward(x, w, y_hat, y_hat, d_out, "identity", need_dX=False)
    out(f"  forward: y = {y_hat[0, 0]:g}, loss = (y - 4)^2 = {loss0:g}")
    out(f"  backward: dL/dy = {d_out[0, 0]:g}, dL/dw = x·dL/dy = {dW[0, 0]:g}")
    ops.sgd_step(w, dW, None, lr=0.1)
    out(f"  update: w = 1 - 0.1·({dW[0, 0]:g}) = {w[0, 0]:g}")
    _, y_hat = ops.dense_forward(x, w, no_bias, "identity")
    loss1, _ = ops.loss_forward_backward("mse", y_hat, target)
    out(f"  new loss = ({y_hat[0, 0]:g} - 4)^2 = {loss1:.6g}")
    return loss0, float(w[0, 0]), loss1


def parabola_example(steps: int = 10, out: Printer = print) -> list[float]:
    """Gradient descent on L(θ) = (θ-3)² from θ=0, rate 0.1: θ_k = 3(1 - 0.8^k)."""
    theta = np.zeros((1, 1))
    target = np.array([[3.0]])
    out("Example 2: gradient descent on L(θ) = (θ - 3)^2 from θ = 0, learning rate 0.1")
    out("   k   θ_k                 3(1 - 0.8^k)")
    thetas = [0.0]
    out(f"  {0:2d}   {0.0:<18.15f}  {0.0:.15f}")
    for k in range(1, steps + 1):
        _, grad = ops.loss_forward_backward("mse", theta, target)   # 2(θ - 3)
        ops.sgd_step(theta, grad, None, lr=0.1)
        thetas.append(float(theta[0, 0]))
        out(f"  {k:2d}   {theta[0, 0]:<18.15f}  {3 * (1 - 0.8 ** k):.15f}")
    return thetas


def spirals_example(epochs: int = 60, out: Printer = print, progress: bool | None = True,
                    plot: Any = None) -> float:
    """A 2-64-64-3 ReLU network on three generated spirals; returns the test accuracy.
    With ``plot`` (a file name), saves the loss and learning-rate curves there."""
    X, y = make_spirals(3000, seed=0)
    X_train, y_train, X_test, y_test = X[:2400], y[:2400], X[2400:], y[2400:]
    model = MLP((2, 64, 64, 3), "relu", "cross_entropy", seed=0)
    out(f"Example 3: {model.sizes} ReLU network, cross-entropy, Adam, on {len(X_train)} "
        "points of three interleaved spirals")
    t0 = time.perf_counter()
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=32, lr=0.01, seed=0,
                        validation_data=(X_test, y_test), progress=progress,
                        scheduler=lambda opt: CosineAnnealingLR(opt, T_max=epochs))
    seconds = time.perf_counter() - t0
    accuracy = float(np.mean(model.predict(X_test) == y_test))
    out(f"  {epochs} epochs in {seconds:.2f} s; loss {history.loss[0]:.3f} -> {history.loss[-1]:.3f}, "
        f"validation loss {history.val_loss[-1]:.3f}")
    out(f"  test accuracy: {accuracy:.1%}")
    if plot is not None:
        history.plot(plot)
        out(f"  loss and learning-rate curves saved to {plot}")
    return accuracy


def run(out: Printer = print, progress: bool | None = True, plot: Any = None) -> None:
    single_weight_example(out)
    out("")
    parabola_example(out=out)
    out("")
    spirals_example(out=out, progress=progress, plot=plot)
