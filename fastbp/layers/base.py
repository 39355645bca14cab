"""The layer protocol (``Layer``) and what every kind shares: initial weights,
assignment into live arrays, the dA check.

A layer kind is one class of this package. What every kind declares, and who reads it:

- ``kind`` (a name in fastbp/_table.py's LAYER_KINDS): the compiled engine's
  dispatch (``_kernels/network.pyx``), the file format and the exporters;
- ``parameters()``/``gradients()``, aligned lists of live arrays (possibly
  empty), with ``parameter_names()`` naming them and ``penalized()`` saying
  which are weights (an L2 penalty or weight decay on weights only applies to
  those): ``Sequential`` concatenates them, the optimizers and the engine step
  them, ``gradcheck`` perturbs them, files store them;
- ``engine_record()``: what the engine needs besides the arrays;
- ``spec()`` and ``from_spec(spec, dtype)``: the JSON description files and
  exports carry (``layer_from_spec`` finds the class by ``kind``);
- ``forward(X)``/``backward(dA)``: the layer on its own, through ``fastbp.ops``
  (whose twins in ``fastbp.reference`` are the math it is tested against).

A parameter array is created once, with its layer, and never replaced:
assigning ``layer.W = value`` copies ``value`` into the live array (shape and
dtype checked), so that the compiled engine and the optimizers, which hold the
arrays, always see the current values.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fastbp import _validation as check
from fastbp._convert import as_input, own_writable
from fastbp._table import ACTIVATIONS, LAYER_KINDS, code

INITS = ("auto", "he", "glorot")
# "auto": He for the rectifier family, Glorot for saturating and linear units.
HE_ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "mish")


def positive_int(value: Any, name: str) -> int:
    """An int >= 1 (not a bool), else TypeError/ValueError naming ``name``."""
    return check.int_in_range(value, name, 1)


def init_weights(in_features: int, out_features: int, init: str, activation: str,
                 dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """He: N(0, 2/fan_in) (Kaiming normal); Glorot: U(±√(6/(fan_in+fan_out)))."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "auto":
        init = "he" if activation in HE_ACTIVATIONS else "glorot"
    if init == "he":
        W = rng.normal(0.0, np.sqrt(2.0 / in_features), size=(in_features, out_features))
    else:
        limit = np.sqrt(6.0 / (in_features + out_features))
        W = rng.uniform(-limit, limit, size=(in_features, out_features))
    return np.ascontiguousarray(W, dtype=dtype)


def positive_ints(value: Any, name: str, count: int | None, low: int = 1) -> tuple[int, ...]:
    """One int (repeated ``count`` times) or a sequence of ``count`` ints (any length
    when count is None), each >= low."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) \
            and count is not None:
        value = [value] * count
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be {'an int or ' if count is not None else ''}a sequence "
                        f"of ints, got {type(value).__name__}")
    values = tuple(check.int_in_range(v, f"{name}[{i}]", low) for i, v in enumerate(value))
    if count is not None and len(values) != count:
        raise ValueError(f"{name} must hold {count} values (one per coded column), got "
                         f"{len(values)}")
    return values


def assign_into(live: np.ndarray, value: Any, name: str) -> None:
    """``live[...] = value`` after checking that ``value`` holds finite real numbers of
    ``live``'s shape (converted to its dtype): the one way a parameter is set. A
    rejected value leaves ``live`` unchanged."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.shape != live.shape:
        raise ValueError(f"{name} must have shape {live.shape}, got {arr.shape}")
    with np.errstate(over="ignore"):
        converted = arr.astype(live.dtype)
    if not np.isfinite(converted).all():
        raise ValueError(f"{name} must be finite in {live.dtype} (NaN, infinite or too "
                         f"large values given)")
    live[...] = converted


def live_parameter(i: int, name: str) -> property:
    """A layer's i-th parameter (``self._params[i]``) as a property whose assignment
    copies into the live array (``assign_into``)."""
    def get(self: Any) -> np.ndarray:
        return self._params[i]

    def put(self: Any, value: Any) -> None:
        assign_into(self._params[i], value, name)
    get.__doc__ = f"The {name} (assignment copies into them)."
    return property(get, put)


def checked_gradient(layer: Any, dA: Any, shape: tuple[int, ...]) -> np.ndarray:
    """dA converted to ``layer``'s dtype, which must have the last forward's output
    ``shape`` (a ValueError naming dA otherwise)."""
    dA = as_input(dA, layer.dtype, shape[1], "dA")
    if dA.shape != shape:
        raise ValueError(f"dA must have the last forward's shape {shape}, got {dA.shape}")
    return dA


def last_input_and_gradient(layer: Any, dA: Any) -> tuple[np.ndarray, np.ndarray]:
    """(X of the layer's last forward, kept as its ``_cache``; dA checked against that
    forward's output shape, C-contiguous): the start of a backward whose cache is X."""
    if layer._cache is None:
        raise RuntimeError("backward() needs a forward() first")
    X = layer._cache
    D = checked_gradient(layer, dA, (X.shape[0], layer.out_features))
    return X, np.ascontiguousarray(D)


class Layer:
    """The layer protocol (see the module docstring); subclasses are the layer kinds.

    Attributes every layer has: ``in_features``, ``out_features`` (the widths it
    maps between), ``dtype``, ``dropout`` (the dropout probability of its output
    in training, 0.0 for none) and ``activation`` (the name of the activation
    the layer ends with, "identity" for none).
    """

    #: the kind's name (fastbp/_table.py LAYER_KINDS)
    kind: ClassVar[str] = ""
    in_features: int
    out_features: int
    dtype: np.dtype
    activation: str = "identity"
    act_code: int = code(ACTIVATIONS, "identity")   # (the code of ``activation``)
    dropout: float = 0.0
    #: whether it reads the model's input itself (CategoricalEmbedding's codes): it is
    #: then a model's first layer, and the model calls its ``check_input``
    checks_input: ClassVar[bool] = False
    #: the mode its own forward/backward follow (a model's train()/eval() set it;
    #: only BatchNorm behaves differently)
    training: bool = True

    def parameters(self) -> list[np.ndarray]:
        """The live parameter arrays, in a fixed order (possibly none)."""
        return []

    def gradients(self) -> list[np.ndarray]:
        """The gradient arrays, aligned with ``parameters()``."""
        return []

    def parameter_names(self) -> tuple[str, ...]:
        """The names of ``parameters()``, in order (file entries, error messages)."""
        return ()

    def penalized(self) -> tuple[bool, ...]:
        """Which parameters are weights (an L2 penalty on weights applies to them)."""
        return ()

    def buffers(self) -> list[np.ndarray]:
        """Live arrays the layer keeps besides its parameters (BatchNorm's running
        statistics): files store them, the engine updates them, no optimizer steps them."""
        return []

    def buffer_names(self) -> tuple[str, ...]:
        """The names of ``buffers()``."""
        return ()

    def check_buffers(self) -> None:
        """Raise ValueError if a buffer holds values its kernels cannot take (after a
        file filled them in without the setters' checks)."""

    def check_input(self, X: np.ndarray, name: str = "X") -> None:
        """Raise ValueError for values of the model's converted input X this first
        layer cannot take (``checks_input`` kinds only; the others take any).

        Parameters
        ----------
        X : ndarray of shape (n_samples, in_features)
            The model's converted input.
        name : str, default "X"
            The argument's name in the message.
        """

    def engine_buffers(self) -> tuple[np.ndarray, ...]:
        """The arrays the engine points at besides the parameters: ``buffers()``, or
        the tables a kind derives from its constants (PiecewiseLinearEncoding's)."""
        return tuple(self.buffers())

    def engine_constants(self) -> tuple[float, ...]:
        """The kind's constants the engine reads (at most two; LayerNorm's eps...)."""
        return ()

    def engine_record(self) -> tuple[int, int, int, int, int, tuple[float, ...]]:
        """(kind code, activation code, in_features, out_features, number of parameters,
        ``engine_constants()``), what the compiled engine needs besides the arrays."""
        return (code(LAYER_KINDS, self.kind), code(ACTIVATIONS, self.activation),
                self.in_features, self.out_features, len(self.parameters()),
                self.engine_constants())

    def spec(self) -> dict[str, Any]:
        """The layer's JSON-able description (its kind and constructor arguments, not
        its arrays): what a file or an export records."""
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> Layer:
        """A layer of this kind from ``spec()`` (its arrays not yet set).

        Parameters
        ----------
        spec : dict
            A description ``spec()`` returned.
        dtype : numpy.dtype
            The layer's dtype, float32 or float64.

        Returns
        -------
        Layer
        """
        raise NotImplementedError

    def forward(self, X: Any) -> np.ndarray:
        """The layer's output for X; caches what ``backward`` needs.

        Parameters
        ----------
        X : array-like of shape (n_samples, in_features)
            The input, converted to the layer's dtype.

        Returns
        -------
        ndarray of shape (n_samples, out_features)
        """
        raise NotImplementedError

    def backward(self, dA: Any) -> np.ndarray | None:
        """dL/dX given dA = dL/d(output) of the last forward; fills the gradients.

        Parameters
        ----------
        dA : array-like of shape (n_samples, out_features)
            The gradient of the loss with respect to the last forward's output.

        Returns
        -------
        ndarray of shape (n_samples, in_features) or None
        """
        raise NotImplementedError

    # Pickling and copy.deepcopy: a model's one copy path (its layers go through here):
    # the last forward's arrays are not part of the layer, and restored arrays are
    # made the process's own (the engine writes into parameters and gradients).
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                state[key] = own_writable(value)
            elif isinstance(value, list) and all(isinstance(v, np.ndarray) for v in value):
                state[key] = [own_writable(v) for v in value]   # (_params, _running...)
        self.__dict__.update(state)
