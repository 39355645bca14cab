"""Compiled kernels behind the public kernel API of ``API.md``.

Each function validates its inputs once (:mod:`fastbp._validation`, shared
with :mod:`fastbp.reference`), allocates its outputs, and calls one compiled
kernel from ``fastbp._kernels`` with the GIL released. Read-only inputs may be
strided, Fortran-ordered or read-only (they are copied to C order when
needed); arrays updated in place must be writable and C-contiguous.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from fastbp import _validation as check
from fastbp._kernels import activations as _act
from fastbp._kernels import dense as _dense
from fastbp._kernels import dropout as _dropout
from fastbp._kernels import losses as _loss
from fastbp._kernels import optim as _optim
from fastbp._optim_config import AdaGradConfig, AdamConfig, RMSpropConfig, SGDConfig
from fastbp._validation import ACTIVATIONS, LOSSES

__all__ = ["ACTIVATIONS", "LOSSES", "activation_forward", "activation_backward",
           "dense_forward", "dense_backward", "loss_forward_backward",
           "sgd_step", "adagrad_step", "rmsprop_step", "adam_step",
           "dropout_mask", "dropout_apply"]


def activation_forward(
    name: str,
    Z: npt.NDArray[np.floating[Any]],
) -> npt.NDArray[np.floating[Any]]:
    """A = f(Z)."""
    code, Z = check.activation_args(name, Z)
    A = np.empty_like(Z)
    _act.activation_forward_into(code, Z, A)
    return A


def activation_backward(
    name: str,
    Z: npt.NDArray[np.floating[Any]],
    A: npt.NDArray[np.floating[Any]],
    dA: npt.NDArray[np.floating[Any]],
) -> npt.NDArray[np.floating[Any]]:
    """dZ = dL/dZ given dA = dL/dA."""
    code, Z, A, dA = check.activation_backward_args(name, Z, A, dA)
    dZ = np.empty_like(Z)
    _act.activation_backward_into(code, Z, A, dA, dZ)
    return dZ


def dense_forward(
    X: npt.NDArray[np.floating[Any]],
    W: npt.NDArray[np.floating[Any]],
    b: npt.NDArray[np.floating[Any]],
    activation: str,
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]:
    """Z = X·W + b, A = f(Z)."""
    code, X, W, b = check.dense_forward_args(X, W, b, activation)
    shape = (X.shape[0], W.shape[1])
    Z = np.empty(shape, dtype=X.dtype)
    A = np.empty(shape, dtype=X.dtype)
    if X.shape[0]:
        _dense.dense_forward_into(code, X, W, b, Z, A)
    return Z, A


def dense_backward(
    X: npt.NDArray[np.floating[Any]],
    W: npt.NDArray[np.floating[Any]],
    Z: npt.NDArray[np.floating[Any]],
    A: npt.NDArray[np.floating[Any]],
    dA: npt.NDArray[np.floating[Any]],
    activation: str,
    need_dX: bool = True,
) -> tuple[
    npt.NDArray[np.floating[Any]] | None,
    npt.NDArray[np.floating[Any]],
    npt.NDArray[np.floating[Any]],
]:
    """dZ = f'(Z)·dA; dW = Xᵀ·dZ; db = Σ_rows dZ; dX = dZ·Wᵀ (None unless need_dX)."""
    code, X, W, Z, A, dA, need_dX = check.dense_backward_args(X, W, Z, A, dA, activation,
                                                               need_dX)
    dX = np.empty_like(X) if need_dX else None
    if X.shape[0] == 0:  # an empty batch contributes nothing
        return dX, np.zeros_like(W), np.zeros(W.shape[1], dtype=W.dtype)
    dW = np.empty_like(W)
    db = np.empty(W.shape[1], dtype=W.dtype)
    _dense.dense_backward_into(code, X, W, Z, A, dA, np.empty_like(Z), dX, dW, db, bool(need_dX))
    return dX, dW, db


def loss_forward_backward(
    name: str,
    output: npt.NDArray[np.floating[Any]],
    target: npt.NDArray[Any],
    sample_weight: npt.ArrayLike | None = None,
) -> tuple[float, npt.NDArray[np.floating[Any]]]:
    """(mean loss, dL/d_output) of the raw output against target; with sample_weight
    the weighted mean Σ w_i·ℓ_i / Σ w_i over the samples."""
    code, output, target, labels = check.loss_args(name, output, target)
    w = check.sample_weight(sample_weight, output.shape[0])
    d_out = np.empty_like(output)
    if w is not None:
        loss = _loss.weighted_loss_into(code, output, target, labels, w, d_out)
    elif labels is not None:
        loss = _loss.cross_entropy_labels_into(output, labels, d_out)
    else:
        loss = _loss.loss_forward_backward_into(code, output, target, d_out)
    return float(loss), d_out


def sgd_step(
    p: npt.NDArray[np.floating[Any]],
    g: npt.NDArray[np.floating[Any]],
    buf: npt.NDArray[np.floating[Any]] | None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    first_step: bool = False,
) -> None:
    """torch.optim.SGD step, in place on p (and buf)."""
    config = SGDConfig(lr, momentum, dampening, nesterov, weight_decay)
    first_step = check.flag(first_step, "first_step")
    p, g, (buf,) = check.step_arrays(config, p, g, buf=buf)
    if p.size:
        _optim.sgd_step_into(p.reshape(-1), g.reshape(-1), _flat(buf), config, first_step)


def adagrad_step(
    p: npt.NDArray[np.floating[Any]],
    g: npt.NDArray[np.floating[Any]],
    sum_sq: npt.NDArray[np.floating[Any]],
    *,
    lr: float,
    eps: float = 1e-10,
    weight_decay: float = 0.0,
) -> None:
    """torch.optim.Adagrad step, in place on p and sum_sq."""
    config = AdaGradConfig(lr, eps, weight_decay)
    p, g, (sum_sq,) = check.step_arrays(config, p, g, sum_sq=sum_sq)
    if p.size:
        _optim.adagrad_step_into(p.reshape(-1), g.reshape(-1), sum_sq.reshape(-1), config)


def rmsprop_step(
    p: npt.NDArray[np.floating[Any]],
    g: npt.NDArray[np.floating[Any]],
    sq_avg: npt.NDArray[np.floating[Any]],
    buf: npt.NDArray[np.floating[Any]] | None,
    grad_avg: npt.NDArray[np.floating[Any]] | None,
    *,
    lr: float,
    alpha: float = 0.99,
    eps: float = 1e-8,
    momentum: float = 0.0,
    centered: bool = False,
    weight_decay: float = 0.0,
) -> None:
    """torch.optim.RMSprop step, in place on p and its state."""
    config = RMSpropConfig(lr, alpha, eps, momentum, centered, weight_decay)
    p, g, (sq_avg, buf, grad_avg) = check.step_arrays(config, p, g, sq_avg=sq_avg, buf=buf,
                                                      grad_avg=grad_avg)
    if p.size:
        _optim.rmsprop_step_into(p.reshape(-1), g.reshape(-1), sq_avg.reshape(-1), _flat(buf),
                                 _flat(grad_avg), config)


def adam_step(
    p: npt.NDArray[np.floating[Any]],
    g: npt.NDArray[np.floating[Any]],
    m: npt.NDArray[np.floating[Any]],
    v: npt.NDArray[np.floating[Any]],
    vmax: npt.NDArray[np.floating[Any]] | None,
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    amsgrad: bool = False,
    eps_mode: str = "paper",
) -> None:
    """torch.optim.Adam/AdamW step (eps_mode="folded": scikit-learn's Adam), in place."""
    config = AdamConfig(lr, beta1, beta2, eps, weight_decay, amsgrad, eps_mode, decoupled)
    p, g, (m, v, vmax) = check.step_arrays(config, p, g, m=m, v=v, vmax=vmax)
    step = check.adam_step_count(step)
    if p.size:
        _optim.adam_step_into(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                              _flat(vmax), config, step)


def dropout_mask(
    seed: int,
    layer: int,
    step: int,
    shape: int | tuple[int, ...],
    p: float,
) -> npt.NDArray[np.bool_]:
    """The dropout keep-mask of (seed, layer, step), as the training engine draws it for
    layer ``layer`` at optimizer step ``step`` (see fastbp/_kernels/_dropout.h)."""
    seed, layer, step, dims, p = check.dropout_mask_args(seed, layer, step, shape, p)
    keep = np.empty(math.prod(dims), dtype=np.uint8)
    _dropout.dropout_mask_into(seed, layer, step, p, keep)
    return keep.view(np.bool_).reshape(dims)


def dropout_apply(
    A: npt.NDArray[np.floating[Any]],
    mask: npt.NDArray[np.bool_],
    p: float,
) -> npt.NDArray[np.floating[Any]]:
    """Inverted dropout A·mask/(1-p) (the engine's loop; also its backward, with dA)."""
    A, mask, p = check.dropout_apply_args(A, mask, p)
    out = A.copy(order="C")
    _dropout.dropout_apply_into(mask.view(np.uint8).reshape(-1), check.dropout_scale(p),
                                out.reshape(-1))
    return out


def _flat(a: np.ndarray | None) -> np.ndarray | None:
    """A flat view of an optional state buffer (C-contiguous, so never a copy)."""
    return None if a is None else a.reshape(-1)
