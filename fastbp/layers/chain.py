"""The checks of a list of layers: each a fastbp layer, widths that chain in one
dtype, open widths bound to their neighbours."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastbp.layers.base import Layer
from fastbp.layers.elementwise import OpenWidthLayer


def bind_open_layers(layers: tuple[Layer, ...]) -> list[tuple[Layer, dict[str, Any]]]:
    """Give each layer whose width or dtype was left open (an Activation without
    n_features) those of the layer before it (after it, when it comes first); returns
    their previous states, to restore if the model is refused."""
    undo: list[tuple[Layer, dict[str, Any]]] = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, OpenWidthLayer) or layer.unbound == (False, False):
            continue
        neighbour = layers[i - 1] if i > 0 else (layers[1] if len(layers) > 1 else None)
        width = None if neighbour is None else \
            (neighbour.out_features if i > 0 else neighbour.in_features)
        if width is None:
            if layer.in_features is None:
                raise ValueError(f"layers[{i}] ({layer!r}) has no width, and no neighbour "
                                 "gives one: give it n_features")
            width = layer.in_features
        undo.append((layer, dict(layer.__dict__)))
        layer.bind(width, layer.dtype if neighbour is None else neighbour.dtype)
    return undo


def check_chain(layers: tuple[Layer, ...], *, model_input: bool = True) -> None:
    """That each layer takes the width the one before it gives, in one dtype, and that a
    layer reading the model's input itself (``checks_input``) comes first, in a chain
    that takes the model's input (``model_input``)."""
    for i, layer in enumerate(layers):
        if layer.checks_input and (i > 0 or not model_input):
            raise ValueError(f"layers[{i}] ({type(layer).__name__}) reads the model's input: it "
                             "must be the model's first layer (not after another layer, nor "
                             "inside a Residual)")
    for i, (a, b) in enumerate(zip(layers, layers[1:])):
        if a.out_features != b.in_features:
            raise ValueError(f"layers[{i + 1}] takes {b.in_features} inputs but layers[{i}] "
                             f"gives {a.out_features} outputs")
        if a.dtype != b.dtype:
            raise TypeError(f"all layers must share one dtype, got {a.dtype} (layers[{i}]) and "
                            f"{b.dtype} (layers[{i + 1}])")


def layer_tuple(layers: Any, name: str = "layers") -> tuple[Layer, ...]:
    """A non-empty sequence of fastbp layers, as a tuple (TypeError otherwise)."""
    if isinstance(layers, Layer) or not isinstance(layers, Iterable):
        raise TypeError(f"{name} must be a sequence of fastbp layers, got "
                        f"{type(layers).__name__}")
    layers = tuple(layers)
    if not layers:
        raise TypeError(f"{name} must be a non-empty sequence of fastbp layers, got an empty one")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"{name}[{i}] must be a fastbp layer (such as fastbp.Dense), got "
                            f"{type(layer).__name__}")
    return layers
