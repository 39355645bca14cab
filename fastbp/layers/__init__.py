"""Layers: the layer protocol and the layer kinds, one module each.

- ``base``: the protocol (``Layer``) and what every kind shares;
- ``dense``: Dense; ``elementwise``: Activation and Dropout; ``norm``: LayerNorm and
  BatchNorm; ``embedding``: PeriodicEmbedding,
  PiecewiseLinearEncoding, CategoricalEmbedding and PeriodicBiasEmbedding (RealMLP's);
  ``ensemble``: LinearBatchEnsemble and LinearEnsemble (TabM's); ``scaling``: Scale and
  ParametricActivation (RealMLP's); ``residual``: Residual (and the
  engine's flattened layer order); ``chain``: the checks of a list of layers.

``layer_from_spec`` finds a kind's class by the ``kind`` its spec names
(``LAYER_CLASSES``). Adding a kind: see the README's "places a new layer kind touches".
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fastbp.layers.base import INITS, Layer
from fastbp.layers.dense import Dense
from fastbp.layers.elementwise import Activation, Dropout
from fastbp.layers.elementwise import dropout_slots as dropout_slots   # (re-exported)
from fastbp.layers.ensemble import LinearBatchEnsemble, LinearEnsemble
from fastbp.layers.embedding import (CategoricalEmbedding, PeriodicBiasEmbedding,
                                     PeriodicEmbedding, PiecewiseLinearEncoding)
from fastbp.layers.norm import BatchNorm, LayerNorm
from fastbp.layers.residual import Residual
from fastbp.layers.scaling import ParametricActivation, Scale
from fastbp.layers.residual import engine_layers as engine_layers   # (re-exported)

__all__ = ["Layer", "Dense", "Activation", "Dropout", "LayerNorm", "BatchNorm", "Residual",
           "PeriodicEmbedding", "PiecewiseLinearEncoding", "CategoricalEmbedding",
           "LinearBatchEnsemble", "LinearEnsemble", "Scale", "ParametricActivation",
           "PeriodicBiasEmbedding", "INITS",
           "layer_from_spec"]


#: the layer classes by kind (fastbp/_table.py LAYER_KINDS)
LAYER_CLASSES: dict[str, type[Layer]] = {
    cls.kind: cls for cls in (Dense, Activation, Dropout, LayerNorm, BatchNorm, Residual,
                              PeriodicEmbedding, PiecewiseLinearEncoding, CategoricalEmbedding,
                              LinearBatchEnsemble, LinearEnsemble, Scale, ParametricActivation,
                              PeriodicBiasEmbedding)}


def layer_from_spec(spec: Any, dtype: np.dtype) -> Layer:
    """The layer a ``spec()`` describes (its arrays not yet set). Specs written before
    layer kinds existed have no "kind": they are Dense layers."""
    if not isinstance(spec, dict):
        raise ValueError(f"a layer spec must be a dict, got {type(spec).__name__}")
    kind = spec.get("kind", "dense")
    if kind not in LAYER_CLASSES:
        raise ValueError(f"unknown layer kind {kind!r} (this fastbp knows {sorted(LAYER_CLASSES)})")
    return LAYER_CLASSES[kind].from_spec(spec, dtype)
