"""Packing and unpacking around the lock-step kernel (fastbp/_kernels/ensemble.pyx).

Members of an ensemble that see the same batch order and share their first
layer's shape and activation and their optimizer configuration and step train
one epoch together: their first-layer weights, biases, gradients and optimizer
state are copied side by side into packed arrays, the kernel runs the epoch,
and everything is copied back into the members' own (live) arrays. The copies
are a few arrays per member and epoch; the members' ``parameters()`` stay the
arrays they were.
"""
from __future__ import annotations

from typing import Any, Hashable

import numpy as np

from fastbp._kernels.ensemble import Group
from fastbp.models import Sequential
from fastbp.optim import Optimizer

__all__ = ["key", "run_group_epoch"]

# Activations whose A is Z itself in the engine (its backward needs only A).
_IN_PLACE = ("identity", "relu", "leaky_relu")


def key(model: Sequential, opt: Optimizer, seed: int) -> Hashable | None:
    """What members must share to train in one lock-step group (None: cannot)."""
    layers = model.layers
    if len(layers) < 2 or layers[0].activation == "softmax" or opt.kind not in (0, 1, 2, 3):
        return None
    hyper, _ = opt.engine_config()
    return (seed, layers[0].in_features, layers[0].out_features, layers[0].activation,
            type(opt), tuple(sorted((k, repr(v)) for k, v in hyper.items())), opt.step_count,
            opt.state_names)


def run_group_epoch(members: list[tuple[Sequential, Optimizer]], X: np.ndarray, y: np.ndarray,
                    order: np.ndarray, batch: int) -> tuple[int, np.ndarray, np.ndarray]:
    """One epoch of every member in lock-step; (steps, loss sums, statuses): status i is
    0, or -(k+1) when member i's loss at step k was the first non-finite one (its loss
    sum is then that loss), as Engine.epoch reports for one model."""
    model0, opt0 = members[0]
    dtype = model0.dtype
    first = model0.layers[0]
    n_in, h = first.in_features, first.out_features
    width = len(members) * h
    hyper, state0 = opt0.engine_config()
    P = np.empty((n_in, width), dtype)
    bP = np.empty(width, dtype)
    dP = np.empty_like(P)
    dbP = np.empty_like(bP)
    sP: list[np.ndarray | None] = [None if a is None else np.empty_like(P) for a in state0[0]]
    sbP: list[np.ndarray | None] = [None if a is None else np.empty_like(bP) for a in state0[1]]
    configs = [opt.engine_config()[1] for _, opt in members]
    blocks = [slice(i * h, (i + 1) * h) for i in range(len(members))]
    for (model, _), state, cols in zip(members, configs, blocks):
        layer = model.layers[0]
        P[:, cols] = layer.W
        bP[cols] = layer.b
        for j in range(3):
            if sP[j] is not None:
                sP[j][:, cols] = state[0][j]  # type: ignore[index]
                sbP[j][cols] = state[1][j]  # type: ignore[index]
    Z = np.empty((batch, width), dtype)
    A = Z if first.activation in _IN_PLACE else np.empty_like(Z)
    D = np.empty_like(Z)
    rest: list[list[tuple[Any, ...]]] = []
    for (model, _), state in zip(members, configs):
        layers = []
        for l, layer in enumerate(model.layers[1:], 1):
            Zl = np.empty((batch, layer.out_features), dtype)
            Al = Zl if layer.activation in _IN_PLACE else np.empty_like(Zl)
            layers.append((layer.W, layer.b, layer.dW, layer.db, Zl, Al, np.empty_like(Zl),
                           state[2 * l], state[2 * l + 1], layer.act_code))
        rest.append(layers)
    packed = (P, bP, dP, dbP, Z, A, D, sP, sbP, first.act_code)
    group = Group(packed, rest, model0.loss_code, hyper, opt0.kind, h, batch, dtype,
                  (packed, rest, configs))
    T, labels = model0._split(y)
    A1 = np.empty((len(members), batch, h), dtype)
    D1 = np.empty_like(A1)
    Xb = np.empty((batch, X.shape[1]), dtype)
    Tb = np.empty((batch, 1 if T is None else T.shape[1]), dtype)
    Lb = np.empty(batch, np.intp)
    loss_sum = np.zeros(len(members))
    status = np.zeros(len(members), np.intp)
    steps = group.epoch(X, T, labels, order, opt0.step_count, A1, D1, Xb, Tb, Lb, loss_sum,
                        status)
    for (model, _), state, cols in zip(members, configs, blocks):
        layer = model.layers[0]
        layer.W[...] = P[:, cols]
        layer.b[...] = bP[cols]
        layer.dW[...] = dP[:, cols]
        layer.db[...] = dbP[cols]
        for j in range(3):
            if sP[j] is not None:
                state[0][j][...] = sP[j][:, cols]  # type: ignore[index]
                state[1][j][...] = sbP[j][cols]  # type: ignore[index]
    return steps, loss_sum, status
