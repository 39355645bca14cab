"""Gradient checking: backward() against central finite differences in float64."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fastbp import _validation as check

__all__ = ["gradcheck", "GradcheckResult"]


@dataclass(frozen=True)
class GradcheckResult:
    """Outcome of :func:`gradcheck`: ``ok`` iff every entry passes |a-n| <= atol + rtol·|n|."""

    ok: bool
    max_abs_error: float
    max_rel_error: float
    n_checked: int

    def __bool__(self) -> bool:
        return self.ok


def gradcheck(model: Any, X: Any, y: Any, *, eps: float = 1e-6, rtol: float = 1e-5,
              atol: float = 1e-8) -> GradcheckResult:
    """Compare ``model.backward`` with (L(θ+eps) - L(θ-eps))/(2·eps) for every parameter entry.

    The check runs on a float64 copy of the model (so a float32 model is checked
    in float64 too); the model itself is left unchanged.
    """
    from fastbp.models import Sequential  # local: models imports the kernels

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a fastbp Sequential/MLP, got {type(model).__name__}")
    eps = check.finite_scalar(eps, "eps", low=0.0, low_open=True)
    rtol = check.finite_scalar(rtol, "rtol", low=0.0)
    atol = check.finite_scalar(atol, "atol", low=0.0)
    # A float64 model is checked as it is (its own backward, parameters restored
    # bit for bit afterwards); a float32 one through a float64 copy of itself.
    model64 = model if model.dtype == np.float64 else as_float64(model)
    X, y = model64.check_Xy(X, y)
    model64.backward(X, y)
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
                up = model64.loss(X, y)
                flat[i] = old - eps
                down = model64.loss(X, y)
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


def as_float64(model: Any) -> Any:
    """A float64 copy of a Sequential model (of the same class, so that an
    overridden ``backward`` is the one checked) with the same parameters."""
    import copy
    import threading

    from fastbp.layers import Dense

    layers = []
    for layer in model.layers:
        twin = Dense(layer.in_features, layer.out_features, layer.activation, dtype="float64")
        twin.W[...] = layer.W
        twin.b[...] = layer.b
        layers.append(twin)
    twin_model = copy.copy(model)
    twin_model._lock = threading.Lock()
    twin_model.layers = layers  # (drops the copied engine)
    return twin_model
