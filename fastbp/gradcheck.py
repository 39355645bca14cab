"""Gradient checking: backward() against central finite differences in float64."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastbp import _validation as check
from fastbp import ops
from fastbp.layers import Residual, layer_from_spec
from fastbp.layers.elementwise import dropout_slots
from fastbp.layers.residual import engine_layers
from fastbp.models import Sequential

__all__ = ["gradcheck", "GradcheckResult"]


@dataclass(frozen=True)
class GradcheckResult:
    """Outcome of :func:`gradcheck`: ``ok`` iff every entry passes |a-n| <= atol + rtol·|n|.

    The fields are attributes of the same names; ``bool(result)`` is ``ok``.

    Parameters
    ----------
    ok : bool
        Whether every parameter entry passed.
    max_abs_error : float
        The largest |analytic - numeric| over the entries (NaN if one was NaN).
    max_rel_error : float
        The largest |analytic - numeric| / |numeric| (NaN if one was NaN).
    n_checked : int
        The number of parameter entries compared.
    """

    ok: bool
    max_abs_error: float
    max_rel_error: float
    n_checked: int

    def __bool__(self) -> bool:
        return self.ok


def gradcheck(model: Any, X: Any, y: Any, *, eps: float = 1e-6, rtol: float = 1e-5,
              atol: float = 1e-8) -> GradcheckResult:
    """Compare ``model.backward`` with (L(θ+eps) - L(θ-eps))/(2·eps) for every parameter entry.

    Parameters
    ----------
    model : Sequential
        The model to check (left unchanged).
    X, y : array-like
        A batch and its targets, as ``model.backward`` takes them.
    eps : float, default 1e-6
        The step of the central differences (> 0).
    rtol, atol : float
        An entry passes when |analytic - numeric| <= atol + rtol·|numeric|.

    Returns
    -------
    GradcheckResult
        ``ok``, ``max_abs_error``, ``max_rel_error``, ``n_checked`` (truthy when ok).

    Raises
    ------
    TypeError
        ``model`` is not a fastbp model.
    ValueError
        Bad eps/rtol/atol, or X, y that the model refuses.

    The check runs on a float64 copy of the model (so a float32 model is checked
    in float64 too); the model itself is left unchanged.

    With dropout, what is checked is the gradient of the masked network with the
    masks held fixed: those of step ``DROPOUT_STEP`` (``model.backward(X, y,
    step=DROPOUT_STEP)``), and every function evaluation applies the same masks
    (through ``fastbp.ops``, not the engine). Without dropout no evaluation applies
    any.
    """

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a fastbp Sequential/MLP, got {type(model).__name__}")
    eps = check.finite_scalar(eps, "eps", low=0.0, low_open=True)
    rtol = check.finite_scalar(rtol, "rtol", low=0.0)
    atol = check.finite_scalar(atol, "atol", low=0.0)
    # A float64 model is checked as it is (its own backward, parameters restored
    # bit for bit afterwards); a float32 one through a float64 copy of itself.
    model64 = model if model.dtype == np.float64 else as_float64(model)
    X, y = model64.check_Xy(X, y)
    layers = engine_layers(model64.layers)
    # Training-mode losses (batch statistics) move BatchNorm's running statistics: they,
    # and the layers' mode flags, are put back afterwards.
    modes = [layer.training for layer in layers]
    kept = [b.copy() for layer in layers for b in layer.buffers()]
    try:
        return _compare(model64, X, y, eps, rtol, atol)
    finally:
        for layer, mode in zip(layers, modes):
            layer.training = mode
        for b, old in zip([b for layer in layers for b in layer.buffers()], kept):
            b[...] = old


def _compare(model64: Any, X: np.ndarray, y: np.ndarray, eps: float, rtol: float,
             atol: float) -> GradcheckResult:
    """gradcheck's comparison on the float64 model (its training-mode loss)."""
    layers = engine_layers(model64.layers)
    if any(layer.dropout or layer.buffers() for layer in layers):
        # layer by layer, in training mode, with the engine's dropout masks
        for layer in layers:
            layer.training = True
        model64.backward(X, y, step=DROPOUT_STEP)

        def loss() -> float:
            return masked_loss(model64, X, y, DROPOUT_STEP)
    else:
        model64.backward(X, y)

        def loss() -> float:
            return float(model64.loss(X, y))
    analytic = [g.copy() for g in model64.gradients()]
    max_abs = max_rel = 0.0
    ok = True
    n = 0
    for p, a in zip(model64.parameters(), analytic):
        flat = p.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            try:
                flat[i] = old + eps
                up = loss()
                flat[i] = old - eps
                down = loss()
            finally:
                flat[i] = old
            numeric = (up - down) / (2 * eps)
            err = abs(a.reshape(-1)[i] - numeric)
            rel = err / max(abs(numeric), np.finfo(np.float64).tiny)
            # NaN-propagating maxima: a NaN gradient must show in the result.
            max_abs = err if np.isnan(err) else max(max_abs, err)
            max_rel = rel if np.isnan(rel) else max(max_rel, rel)
            ok = ok and err <= atol + rtol * abs(numeric)
            n += 1
    return GradcheckResult(bool(ok), float(max_abs), float(max_rel), n)


#: the step whose dropout masks gradcheck holds fixed (any step would do: the first)
DROPOUT_STEP = 1


def masked_loss(model: Any, X: np.ndarray, y: np.ndarray, step: int) -> float:
    """The training loss of (converted) X, y with the dropout masks of ``step``,
    layer by layer through fastbp.ops (the masks the engine draws at that step)."""

    flat = engine_layers(model.layers)
    slots = dict(zip(map(id, flat), dropout_slots(flat)))

    def run(layers: Any, out: np.ndarray) -> np.ndarray:
        for layer in layers:
            if isinstance(layer, Residual):   # x + f(x), with f's own masks
                out = out + run(layer.layers, out)
                continue
            out = layer.forward(out)
            if layer.dropout:
                mask = ops.dropout_mask(model.dropout_seed, slots[id(layer)], step, out.shape,
                                        layer.dropout)
                out = ops.dropout_apply(out, mask, layer.dropout)
        return out

    return ops.loss_forward_backward(model.loss_name, run(model.layers, X), y)[0]


def as_float64(model: Any) -> Any:
    """A float64 copy of a Sequential model (of the same class, so that an
    overridden ``backward`` is the one checked) with the same parameters."""
    layers = []
    for layer in model.layers:
        twin = layer_from_spec(layer.spec(), np.dtype(np.float64))
        for p, q in zip(twin.parameters(), layer.parameters()):
            p[...] = q
        layers.append(twin)
    twin_model = copy.deepcopy(model)  # the model's copy path (its __getstate__)
    twin_model.layers = layers
    return twin_model
