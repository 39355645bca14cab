"""Residual blocks (x + f(x)) and the engine's flattened order of a model's layers."""
from __future__ import annotations

from typing import Any

import numpy as np

from fastbp._convert import as_input
from fastbp._table import ACTIVATIONS, LAYER_KINDS, code
from fastbp.layers.base import Layer, checked_gradient
from fastbp.layers.chain import bind_open_layers, check_chain, layer_tuple


class Residual(Layer):
    """A residual block: ``x + f(x)``, f being its layers applied in order (a ResNet's
    skip connection). The block's output width must equal its input width.

    Parameters
    ----------
    layers : sequence of Layer
        The block (kept: ``Residual(layers).layers`` holds the same objects). Layers
        left without a width (``Activation``, ``Dropout``) take their neighbour's here.

    Attributes
    ----------
    layers : tuple of Layer
        The block's layers. ``parameters()`` is the concatenation of theirs.

    Raises
    ------
    TypeError
        Not a non-empty sequence of fastbp layers; layers of several dtypes.
    ValueError
        Widths that do not chain, or a block whose output width is not its input width.
    """

    kind = "residual"

    def __init__(self, layers: Any) -> None:
        layers = layer_tuple(layers)
        undo = bind_open_layers(layers)
        try:
            check_chain(layers, model_input=False)
            if layers[-1].out_features != layers[0].in_features:
                raise ValueError(f"layers: a residual block maps a width to itself, but its "
                                 f"layers take {layers[0].in_features} inputs and give "
                                 f"{layers[-1].out_features} outputs")
        except BaseException:
            for layer, state in undo:   # a refused block leaves its layers as they were
                layer.__dict__.update(state)
            raise
        self._layers = layers
        self.in_features = self.out_features = int(layers[0].in_features)
        self.dtype = layers[0].dtype
        self._cache: tuple[np.ndarray] | None = None

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The block's layers, in order."""
        return self._layers

    def parameters(self) -> list[np.ndarray]:
        """The block's layers' parameters, in order."""
        return [p for layer in self._layers for p in layer.parameters()]

    def gradients(self) -> list[np.ndarray]:
        """Aligned with ``parameters()``."""
        return [g for layer in self._layers for g in layer.gradients()]

    def parameter_names(self) -> tuple[str, ...]:
        """"<i>/<name>" for each layer i of the block."""
        return tuple(f"{i}/{name}" for i, layer in enumerate(self._layers)
                     for name in layer.parameter_names())

    def penalized(self) -> tuple[bool, ...]:
        """The block's layers' flags, in order."""
        return tuple(f for layer in self._layers for f in layer.penalized())

    def engine_record(self) -> tuple[int, int, int, int, int, tuple[float, ...]]:
        """The record of the block's last step (x + f(x)); the block's layers come before
        it in the engine (``engine_layers``), and its constant is their number."""
        return (code(LAYER_KINDS, self.kind), code(ACTIVATIONS, "identity"),
                self.in_features, self.out_features, 0,
                (float(len(engine_layers(self._layers))),))

    def buffers(self) -> list[np.ndarray]:
        """The block's layers' buffers, in order."""
        return [b for layer in self._layers for b in layer.buffers()]

    def engine_buffers(self) -> tuple[np.ndarray, ...]:
        """None: the engine runs the block's layers as layers of their own."""
        return ()

    def buffer_names(self) -> tuple[str, ...]:
        """"<i>/<name>" for each layer i of the block."""
        return tuple(f"{i}/{name}" for i, layer in enumerate(self._layers)
                     for name in layer.buffer_names())

    def check_buffers(self) -> None:
        """The block's layers' checks."""
        for layer in self._layers:
            layer.check_buffers()

    def spec(self) -> dict[str, Any]:
        """{"kind": "residual", "layers": [the block's specs]}."""
        return {"kind": self.kind, "layers": [layer.spec() for layer in self._layers]}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> Residual:
        """A Residual of ``spec`` (its layers' arrays not yet set).

        Parameters
        ----------
        spec : dict
            ``{"layers": [...]}``, as ``spec()`` writes it (blocks nest at most
            ``MAX_NESTING`` deep).
        dtype : numpy.dtype
            The layers' dtype, float32 or float64.

        Returns
        -------
        Residual

        Raises
        ------
        KeyError
            A key missing from ``spec``.
        TypeError, ValueError
            Values the constructor refuses; blocks nested too deep.
        """
        if _nesting(spec) > MAX_NESTING:
            raise ValueError(f"residual blocks nest at most {MAX_NESTING} deep")
        from fastbp.layers import layer_from_spec   # (the registry imports this module)
        specs = spec["layers"]
        if not isinstance(specs, list):
            raise ValueError("a residual spec's layers must be a list")
        return cls([layer_from_spec(s, dtype) for s in specs])

    def __repr__(self) -> str:
        return f"Residual([{', '.join(repr(layer) for layer in self._layers)}])"

    def forward(self, X: Any) -> np.ndarray:
        """X + f(X) through the block's layers' own forward.

        Parameters
        ----------
        X : array-like of shape (n_samples, width)
            Real numbers, converted to the block's dtype.

        Returns
        -------
        ndarray of shape (n_samples, width)

        Raises
        ------
        TypeError
            X does not hold real numbers.
        ValueError
            X is not 2-D or has another width than the block's.
        """
        X = as_input(X, self.dtype, self.in_features)
        out = X
        for layer in self._layers:
            out = layer.forward(out)
        self._cache = (X,)
        return X + out

    def backward(self, dA: Any) -> np.ndarray:
        """dX = dA + (the block's backward of dA); fills the layers' gradients.

        Parameters
        ----------
        dA : array-like of the last forward output's shape
            Converted to the block's dtype.

        Returns
        -------
        ndarray

        Raises
        ------
        RuntimeError
            No forward was run.
        TypeError
            dA does not hold real numbers.
        ValueError
            dA of another shape than the last forward's output.
        """
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        X = self._cache[0]
        dA = checked_gradient(self, dA, X.shape)
        d = dA
        for layer in reversed(self._layers):
            d = layer.backward(d)
        return d + dA


#: how deep residual blocks may nest in a file's spec (deeper: refused, not recursed)
MAX_NESTING = 16


def _nesting(spec: Any) -> int:
    """How deep residual specs nest in ``spec`` (iteratively: a hostile file cannot
    exhaust the stack); stops counting past MAX_NESTING."""
    deepest, todo = 0, [(spec, 1)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            break
        inner = item.get("layers") if isinstance(item, dict) else None
        if isinstance(inner, list):
            todo += [(s, depth + 1) for s in inner
                     if isinstance(s, dict) and s.get("kind") == "residual"]
    return deepest


def engine_layers(layers: Any) -> list[Layer]:
    """The layers in the compiled engine's order: each Residual's block layers, then the
    Residual itself (its x + f(x) step)."""
    flat: list[Layer] = []
    for layer in layers:
        if isinstance(layer, Residual):
            flat += engine_layers(layer.layers)
        flat.append(layer)
    return flat
