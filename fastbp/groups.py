"""Parameter groups of a model for the optimizers: ``no_decay_groups``."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastbp._optim_config import CHECKS
from fastbp.layers import Layer

__all__ = ["no_decay_groups"]

#: the kinds whose W is a linear map's weights (decayed)
_LINEAR_KINDS = ("dense", "batch_ensemble", "linear_ensemble")


def _leaf_layers(layers: Any) -> Iterator[Layer]:
    """The layers holding parameters, in ``parameters()`` order (blocks opened)."""
    for layer in layers:
        if layer.kind == "residual":
            yield from _leaf_layers(layer.layers)
        else:
            yield layer


def no_decay_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: the Dense and ensemble layers' weights W with
    ``weight_decay``, and everything else (biases, a BatchEnsemble's scalings,
    LayerNorm/BatchNorm parameters, embedding tables and frequencies) without: the
    usual "no decay on biases and normalisation parameters".

    Parameters
    ----------
    model : Sequential
        Any fastbp model (Residual blocks included).
    weight_decay : float
        The weights' decay (finite, >= 0).

    Returns
    -------
    list of dict
        ``[{"params": [...], "weight_decay": weight_decay}, {"params": [...],
        "weight_decay": 0.0}]``, each list in ``model.parameters()`` order; a group with
        no parameter is left out. For ``fit(param_groups=...)`` or an optimizer.

    Raises
    ------
    TypeError
        ``model`` is not a fastbp model; a weight_decay that is not a real number.
    ValueError
        A weight_decay that is negative or not finite.
    """
    wd = CHECKS["weight_decay"](weight_decay, "weight_decay")
    layers = getattr(model, "layers", None)
    if not isinstance(layers, (list, tuple)) or not all(isinstance(la, Layer) for la in layers):
        raise TypeError(f"model must be a fastbp Sequential or MLP, got {type(model).__name__}")
    decay: list[Any] = []
    rest: list[Any] = []
    for layer in _leaf_layers(layers):
        for name, p in zip(layer.parameter_names(), layer.parameters()):
            (decay if layer.kind in _LINEAR_KINDS and name == "W" else rest).append(p)
    groups = [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
