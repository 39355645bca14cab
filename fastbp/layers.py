"""Layers: the layer protocol, and the Dense layer (Z = X·W + b, A = f(Z)).

A layer kind is one class here. What every kind declares, and who reads it:

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

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from fastbp import _validation as check
from fastbp._convert import as_input, own_writable
from fastbp._kernels import activations as _act
from fastbp._kernels import dense as _dense
from fastbp._kernels import embed as _embed
from fastbp._kernels import norm as _norm
from fastbp._table import ACTIVATIONS, LAYER_KINDS, code

__all__ = ["Layer", "Dense", "Activation", "Dropout", "LayerNorm", "BatchNorm", "Residual",
           "PeriodicEmbedding", "INITS", "layer_from_spec"]

INITS = ("auto", "he", "glorot")
# "auto": He for the rectifier family, Glorot for saturating and linear units.
HE_ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu")


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


def checked_gradient(layer: Any, dA: Any, shape: tuple[int, ...]) -> np.ndarray:
    """dA converted to ``layer``'s dtype, which must have the last forward's output
    ``shape`` (a ValueError naming dA otherwise)."""
    dA = as_input(dA, layer.dtype, shape[1], "dA")
    if dA.shape != shape:
        raise ValueError(f"dA must have the last forward's shape {shape}, got {dA.shape}")
    return dA


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


class Dense(Layer):
    """A fully connected layer holding W (in_features, out_features) and b (out_features,).

    Computes ``Z = X @ W + b`` and ``A = activation(Z)``.

    Parameters
    ----------
    in_features, out_features : int
        The widths of the input and the output (>= 1).
    activation : str, default "identity"
        One of ``fastbp.ACTIVATIONS``.
    init : {"auto", "he", "glorot"}, default "auto"
        How W is drawn: "he" is Kaiming normal N(0, 2/in_features), "glorot" is
        Glorot uniform U(±√(6/(in_features+out_features))), "auto" He for the
        rectifier family (relu, leaky_relu, elu, gelu, silu) and Glorot otherwise.
        b starts at zero.
    dtype : {"float32", "float64"}, default "float32"
        The dtype of the parameters and of every computation.
    seed : None, int or numpy.random.Generator
        The draw of W (the same seed gives the same W).
    dropout : float, default 0.0
        Inverted dropout on the layer's output A while a model trains
        (``train_step``, ``fit``, ``Sequential.backward``), 0 <= dropout < 1; the
        layer's own ``forward``/``backward`` and every inference call ignore it.
        A model's last layer cannot have dropout.
    bias : bool, default True
        False: no b (``torch.nn.Linear(..., bias=False)``): ``parameters()`` is [W],
        and ``b`` reads as zeros that cannot be assigned.

    Attributes
    ----------
    W, b : ndarray
        The live parameters. Assigning copies into them (shape checked, values
        converted to the layer's dtype): the arrays themselves never change, so
        models, optimizers and the compiled engine that hold them stay valid.
    dW, db : ndarray
        dL/dW and dL/db of the last backward (updated in place).

    Raises
    ------
    TypeError
        A non-integer width, an unknown dtype, a non-numeric dropout.
    ValueError
        A width < 1, an unknown activation or init, dropout outside [0, 1).
    """

    kind = "dense"

    def __init__(self, in_features: int, out_features: int, activation: str = "identity", *,
                 init: str = "auto", dtype: Any = "float32", seed: Any = None,
                 dropout: float = 0.0, bias: bool = True) -> None:
        self._dropout = check.dropout_rate(dropout)  # first: a failed call draws nothing
        self.bias = check.flag(bias, "bias")
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        # The compiled engine passes these to BLAS as 32-bit ints.
        check.blas_dims(in_features=self.in_features, out_features=self.out_features)
        self.act_code = check.activation_code(activation)
        self.activation = activation
        self.dtype = check.float_dtype(dtype)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._W = init_weights(self.in_features, self.out_features, init, activation, self.dtype, rng)
        self._b = np.zeros(self.out_features, dtype=self.dtype)
        self._dW = np.zeros_like(self._W)
        self._db = np.zeros_like(self._b)
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def W(self) -> np.ndarray:
        """Weights, shape (in_features, out_features) (assignment copies into them)."""
        return self._W

    @W.setter
    def W(self, value: Any) -> None:
        assign_into(self._W, value, "W")

    @property
    def b(self) -> np.ndarray:
        """Biases, shape (out_features,) (assignment copies into them)."""
        return self._b

    @b.setter
    def b(self, value: Any) -> None:
        if not self.bias:
            raise AttributeError("this Dense layer has no b (bias=False)")
        assign_into(self._b, value, "b")

    @property
    def dropout(self) -> float:  # type: ignore[override]
        """The dropout probability of the layer's output in training (read-only: build a
        new layer to change it, so that no compiled engine sees a stale value)."""
        return self._dropout

    @property
    def dW(self) -> np.ndarray:
        """dL/dW of the last backward (updated in place)."""
        return self._dW

    @property
    def db(self) -> np.ndarray:
        """dL/db of the last backward (updated in place)."""
        return self._db

    # ---------------------------------------------------------------- the protocol
    def parameters(self) -> list[np.ndarray]:
        """[W, b]: the live arrays ([W] without bias)."""
        return [self._W, self._b] if self.bias else [self._W]

    def gradients(self) -> list[np.ndarray]:
        """[dW, db] ([dW] without bias)."""
        return [self._dW, self._db] if self.bias else [self._dW]

    def parameter_names(self) -> tuple[str, ...]:
        """("W", "b"), or ("W",)."""
        return ("W", "b") if self.bias else ("W",)

    def penalized(self) -> tuple[bool, ...]:
        """W is a weight, b is not."""
        return (True, False) if self.bias else (True,)

    def spec(self) -> dict[str, Any]:
        """{"kind": "dense", "in_features", "out_features", "activation", "dropout"}, and
        "bias": false for a layer without bias."""
        spec = {"kind": self.kind, "in_features": self.in_features,
                "out_features": self.out_features, "activation": self.activation,
                "dropout": self.dropout}
        if not self.bias:
            spec["bias"] = False
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> Dense:
        """A Dense layer of ``spec`` (W drawn, to be overwritten by the caller).

        Parameters
        ----------
        spec : dict
            ``{"in_features", "out_features", "activation"}`` and optionally
            ``"dropout"`` (default 0.0), as ``spec()`` writes it.
        dtype : numpy.dtype
            The layer's dtype, float32 or float64.

        Returns
        -------
        Dense

        Raises
        ------
        KeyError
            A key missing from ``spec``.
        TypeError, ValueError
            Values the constructor refuses.
        """
        return cls(spec["in_features"], spec["out_features"], spec["activation"], dtype=dtype,
                   dropout=spec.get("dropout", 0.0), bias=spec.get("bias", True), seed=0)

    def __repr__(self) -> str:
        extra = (f", dropout={self._dropout!r}" if self._dropout else "") \
            + ("" if self.bias else ", bias=False")
        return (f"Dense({self.in_features}, {self.out_features}, activation={self.activation!r}, "
                f"dtype={self.dtype.name!r}{extra})")

    def forward(self, X: Any) -> np.ndarray:
        """A = f(X·W + b); X is converted to the layer's dtype. Caches what backward needs.

        The layer's dropout does not apply here (only a model's training steps apply it).

        Parameters
        ----------
        X : array-like of shape (n_samples, in_features)
            Real numbers (bool, int or float), converted to the layer's dtype;
            shape (n_samples,) is accepted when in_features is 1. n_samples may be 0.

        Returns
        -------
        A : ndarray of shape (n_samples, out_features)
            A new array of the layer's dtype. ``backward`` reads it: do not modify it
            in place in between.

        Raises
        ------
        TypeError
            X does not hold real numbers.
        ValueError
            X is not 2-D or has another width than in_features.
        """
        X = as_input(X, self.dtype, self.in_features)
        Z = np.empty((X.shape[0], self.out_features), dtype=self.dtype)
        A = np.empty_like(Z)
        if X.shape[0]:
            _dense.dense_forward_into(self.act_code, X, self.W, self.b, Z, A)
        self._cache = (X, Z, A)
        return A

    def backward(self, dA: Any, need_dX: bool = True) -> np.ndarray | None:
        """dX given dA = dL/dA of the last forward; fills dW and db.

        ``dW`` and ``db`` are overwritten with the gradients with respect to W and b,
        summed over the samples (zero for an empty batch).

        Parameters
        ----------
        dA : array-like of shape (n_samples, out_features)
            The gradient of the loss with respect to the last forward's output A, with
            as many rows as that forward's X; converted to the layer's dtype.
        need_dX : bool, default True
            Compute dX (False skips that product).

        Returns
        -------
        dX : ndarray of shape (n_samples, in_features) or None
            The gradient with respect to the last forward's X (None unless ``need_dX``).

        Raises
        ------
        RuntimeError
            No forward was run.
        TypeError
            dA does not hold real numbers; need_dX is not a bool.
        ValueError
            dA of the wrong shape.
        """
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        need_dX = check.flag(need_dX, "need_dX")
        X, Z, A = self._cache
        dA = as_input(dA, self.dtype, self.out_features, "dA")
        if dA.shape[0] != X.shape[0]:
            raise ValueError(f"dA must have {X.shape[0]} rows like the last forward's X, "
                             f"got shape {dA.shape}")
        dX = np.empty_like(X) if need_dX else None
        if X.shape[0] == 0:
            self.dW.fill(0)
            self.db.fill(0)
            return dX
        _dense.dense_backward_into(self.act_code, X, self.W, Z, A, dA, np.empty_like(Z), dX,
                                   self.dW, self.db, need_dX)
        return dX


class OpenWidthLayer(Layer):
    """A parameter-free layer that maps a width to itself and may leave that width
    (and its dtype) open: a ``Sequential`` then gives it those of the layer before it
    (after it, when it comes first) -- once: the same object in a model of another
    width or dtype is refused. Subclasses: Activation, Dropout."""

    _cache: Any   # the last forward's arrays (X first), for backward

    def _open(self, n_features: int | None, dtype: Any) -> None:
        width = None if n_features is None else positive_int(n_features, "n_features")
        #: (width open, dtype open): what a model still has to give
        self.unbound = (width is None, dtype is None)
        self.in_features = self.out_features = width   # type: ignore[assignment]
        self.dtype = check.float_dtype("float32" if dtype is None else dtype)

    def bind(self, width: int, dtype: np.dtype) -> None:
        """Take ``width`` and ``dtype`` from the model the layer is placed in (where the
        constructor left them open); a layer already bound to others is refused.

        Parameters
        ----------
        width : int
            The width of the layer's neighbour.
        dtype : numpy.dtype
            The neighbour's dtype.

        Raises
        ------
        ValueError
            The layer already has another width.
        TypeError
            The layer was given another dtype.
        """
        free_width, free_dtype = self.unbound
        if self.in_features is not None and self.in_features != width:
            raise ValueError(f"{self!r} has width {self.in_features}; here it needs {width} "
                             f"(a layer object belongs to one model: make a new one)")
        if not free_dtype and self.dtype != dtype:
            raise TypeError(f"{self!r} has dtype {self.dtype}; here it needs {dtype}")
        self.in_features = self.out_features = width
        if free_dtype:
            self.dtype = np.dtype(dtype)
        self.unbound = (False, False)

    def _width_of(self, X: Any) -> int:
        """The width a forward of X takes: the layer's, or X's while it has none."""
        if self.in_features is not None:
            return int(self.in_features)
        return int(np.shape(X)[1]) if np.ndim(X) == 2 else 1

    def _checked_dA(self, dA: Any) -> tuple[np.ndarray, np.ndarray]:
        """(the last forward's cached X, dA converted and checked against it)."""
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        X = self._cache[0]
        return X, checked_gradient(self, dA, X.shape)


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


def check_chain(layers: tuple[Layer, ...]) -> None:
    """That each layer takes the width the one before it gives, in one dtype."""
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


class Activation(OpenWidthLayer):
    """An activation as a layer of its own: ``A = f(X)``, element-wise (softmax: over
    each row). No parameters.

    Parameters
    ----------
    name : str
        One of ``fastbp.ACTIVATIONS``.
    n_features : int or None, default None
        Its width (input = output). None: the model gives it (see ``OpenWidthLayer``).
    dtype : {"float32", "float64"} or None, default None
        None: the model's (float32 on its own, until a model binds it).

    Raises
    ------
    TypeError
        A non-integer width, an unknown dtype.
    ValueError
        An unknown activation, a width < 1.
    """

    kind = "activation"

    def __init__(self, name: str, n_features: int | None = None, *,
                 dtype: Any = None) -> None:
        self.act_code = check.activation_code(name)
        self.activation = name
        self._open(n_features, dtype)
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def spec(self) -> dict[str, Any]:
        """{"kind": "activation", "activation", "n_features"}."""
        return {"kind": self.kind, "activation": self.activation,
                "n_features": self.in_features}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> Activation:
        """An Activation layer of ``spec`` (its width as recorded, the model's dtype).

        Parameters
        ----------
        spec : dict
            ``{"activation", "n_features"}``, as ``spec()`` writes it.
        dtype : numpy.dtype
            The layer's dtype, float32 or float64.

        Returns
        -------
        Activation

        Raises
        ------
        KeyError
            A key missing from ``spec``.
        TypeError, ValueError
            Values the constructor refuses.
        """
        return cls(spec["activation"], spec["n_features"], dtype=dtype)

    def __repr__(self) -> str:
        width = "" if self.in_features is None else f", {self.in_features}"
        return f"Activation({self.activation!r}{width}, dtype={self.dtype.name!r})"

    def forward(self, X: Any) -> np.ndarray:
        """A = f(X), X converted to the layer's dtype; caches what backward needs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Real numbers; any width while the layer has none.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            A new array of the layer's dtype.

        Raises
        ------
        TypeError
            X does not hold real numbers.
        ValueError
            X is not 2-D or has another width than the layer's.
        """
        X = as_input(X, self.dtype, self._width_of(X))
        A = np.empty_like(X)
        if X.size:
            _act.activation_forward_into(self.act_code, X, A)
        self._cache = (X, A)
        return A

    def backward(self, dA: Any) -> np.ndarray:
        """dX = f'(X)·dA (softmax: its Jacobian-vector product) for the last forward.

        Parameters
        ----------
        dA : array-like of the last forward output's shape
            dL/dA, converted to the layer's dtype.

        Returns
        -------
        ndarray
            dL/dX.

        Raises
        ------
        RuntimeError
            No forward was run.
        TypeError
            dA does not hold real numbers.
        ValueError
            dA of another shape than the last forward's output.
        """
        X, dA = self._checked_dA(dA)
        assert self._cache is not None
        dX = np.empty_like(X)
        if X.size:
            _act.activation_backward_into(self.act_code, X, self._cache[1], dA, dX)
        return dX


class Dropout(OpenWidthLayer):
    """Inverted dropout as a layer of its own: while a model trains, each value of its
    input is zeroed with probability p and the others scaled by 1/(1-p); the identity
    otherwise. No parameters.

    A ``Dropout`` draws the masks the layer before it would draw for its own dropout,
    so ``Dense(n, k, f)`` then ``Dropout(p)`` trains bit for bit as
    ``Dense(n, k, f, dropout=p)``; a Dropout after a layer that has dropout of its own,
    or as the last layer, is refused. Its own ``forward``/``backward`` are the identity
    (as a Dense layer's dropout, masks apply only in a model's training steps).

    Parameters
    ----------
    p : float
        The probability of zeroing a value, 0 <= p < 1.
    n_features : int or None, default None
        Its width. None: the model gives it (see ``OpenWidthLayer``).
    dtype : {"float32", "float64"} or None, default None
        None: the model's.

    Raises
    ------
    TypeError
        A non-numeric p, a non-integer width, an unknown dtype.
    ValueError
        p outside [0, 1), a width < 1.
    """

    kind = "dropout"

    def __init__(self, p: float, n_features: int | None = None, *, dtype: Any = None) -> None:
        self._p = check.dropout_rate(p)
        self._open(n_features, dtype)
        self._cache: tuple[np.ndarray] | None = None

    @property
    def dropout(self) -> float:  # type: ignore[override]
        """p (read-only: build a new layer to change it)."""
        return self._p

    def spec(self) -> dict[str, Any]:
        """{"kind": "dropout", "p", "n_features"}."""
        return {"kind": self.kind, "p": self._p, "n_features": self.in_features}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> Dropout:
        """A Dropout layer of ``spec`` (its width as recorded, the model's dtype).

        Parameters
        ----------
        spec : dict
            ``{"p", "n_features"}``, as ``spec()`` writes it.
        dtype : numpy.dtype
            The layer's dtype, float32 or float64.

        Returns
        -------
        Dropout

        Raises
        ------
        KeyError
            A key missing from ``spec``.
        TypeError, ValueError
            Values the constructor refuses.
        """
        return cls(spec["p"], spec["n_features"], dtype=dtype)

    def __repr__(self) -> str:
        width = "" if self.in_features is None else f", {self.in_features}"
        return f"Dropout({self._p!r}{width}, dtype={self.dtype.name!r})"

    def forward(self, X: Any) -> np.ndarray:
        """X itself (converted to the layer's dtype, a new array): the identity outside a
        model's training steps.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Real numbers; any width while the layer has none.

        Returns
        -------
        ndarray of shape (n_samples, n_features)

        Raises
        ------
        TypeError
            X does not hold real numbers.
        ValueError
            X is not 2-D or has another width than the layer's.
        """
        X = as_input(X, self.dtype, self._width_of(X))
        self._cache = (X,)
        return X.copy()

    def backward(self, dA: Any) -> np.ndarray:
        """dA itself (a new array), for the last forward.

        Parameters
        ----------
        dA : array-like of the last forward output's shape
            dL/dA, converted to the layer's dtype.

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
        return self._checked_dA(dA)[1].copy()


class AffineNorm(Layer):
    """What LayerNorm and BatchNorm share: a width mapped to itself, eps, and the
    optional learned affine map γ·x̂ + β (γ from ones, β from zeros), whose arrays are
    ``parameters()`` (not weights: no L2 penalty)."""

    eps: float
    affine: bool

    def _setup(self, n_features: Any, eps: Any, affine: Any, dtype: Any) -> None:
        self.in_features = self.out_features = positive_int(n_features, "n_features")
        self.eps = check.norm_eps(eps, "eps")
        self.affine = check.flag(affine, "affine")
        self.dtype = check.float_dtype(dtype)
        k = self.in_features
        self._params = [np.ones(k, dtype=self.dtype), np.zeros(k, dtype=self.dtype)] \
            if self.affine else []
        self._grads = [np.zeros(k, dtype=self.dtype) for _ in self._params]

    @property
    def gamma(self) -> np.ndarray | None:
        """γ, shape (n_features,) (None without affine; assignment copies into it)."""
        return self._params[0] if self.affine else None

    @gamma.setter
    def gamma(self, value: Any) -> None:
        assign_into(self._affine(0), value, "gamma")

    @property
    def beta(self) -> np.ndarray | None:
        """β, shape (n_features,) (None without affine; assignment copies into it)."""
        return self._params[1] if self.affine else None

    @beta.setter
    def beta(self, value: Any) -> None:
        assign_into(self._affine(1), value, "beta")

    @property
    def dgamma(self) -> np.ndarray | None:
        """dL/dγ of the last backward (None without affine)."""
        return self._grads[0] if self.affine else None

    @property
    def dbeta(self) -> np.ndarray | None:
        """dL/dβ of the last backward (None without affine)."""
        return self._grads[1] if self.affine else None

    def _affine(self, i: int) -> np.ndarray:
        if not self.affine:
            raise AttributeError(f"this {type(self).__name__} has no gamma or beta (affine=False)")
        return self._params[i]

    def parameters(self) -> list[np.ndarray]:
        """[gamma, beta], or [] without affine."""
        return list(self._params)

    def gradients(self) -> list[np.ndarray]:
        """[dgamma, dbeta], or []."""
        return list(self._grads)

    def parameter_names(self) -> tuple[str, ...]:
        """("gamma", "beta"), or ()."""
        return ("gamma", "beta") if self.affine else ()

    def penalized(self) -> tuple[bool, ...]:
        """Neither is a weight (no L2 penalty or weight decay through the objective)."""
        return (False, False) if self.affine else ()



class LayerNorm(AffineNorm):
    """Layer normalisation over each row: ``A = γ·(X − μ)/√(σ² + eps) + β`` with the
    row's mean μ and biased variance σ² (``torch.nn.LayerNorm(n_features)``).

    Parameters
    ----------
    n_features : int
        Its width (input = output, >= 1).
    eps : float, default 1e-5
        Added to the variance (> 0).
    affine : bool, default True
        Learn γ (starting at ones) and β (zeros); False: no parameters (A = x̂).
    dtype : {"float32", "float64"}, default "float32"
        The dtype of the parameters and of every computation.

    Attributes
    ----------
    gamma, beta : ndarray of shape (n_features,) or None
        The live parameters (None without ``affine``); assigning copies into them.
    dgamma, dbeta : ndarray of shape (n_features,) or None
        Their gradients of the last backward.

    Raises
    ------
    TypeError
        A non-integer width, a non-numeric eps, a non-bool affine, an unknown dtype.
    ValueError
        A width < 1, eps <= 0 or not finite.
    """

    kind = "layer_norm"

    def __init__(self, n_features: int, *, eps: float = 1e-5, affine: bool = True,
                 dtype: Any = "float32") -> None:
        self._setup(n_features, eps, affine, dtype)
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def engine_constants(self) -> tuple[float, ...]:
        """(eps,)."""
        return (self.eps,)

    def spec(self) -> dict[str, Any]:
        """{"kind": "layer_norm", "n_features", "eps", "affine"}."""
        return {"kind": self.kind, "n_features": self.in_features, "eps": self.eps,
                "affine": self.affine}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> LayerNorm:
        """A LayerNorm of ``spec`` (γ = 1, β = 0, to be overwritten by the caller).

        Parameters
        ----------
        spec : dict
            ``{"n_features", "eps", "affine"}``, as ``spec()`` writes it.
        dtype : numpy.dtype
            The layer's dtype, float32 or float64.

        Returns
        -------
        LayerNorm

        Raises
        ------
        KeyError
            A key missing from ``spec``.
        TypeError, ValueError
            Values the constructor refuses.
        """
        return cls(spec["n_features"], eps=spec["eps"], affine=spec["affine"], dtype=dtype)

    def __repr__(self) -> str:
        extra = "" if self.affine else ", affine=False"
        return (f"LayerNorm({self.in_features}, eps={self.eps!r}{extra}, "
                f"dtype={self.dtype.name!r})")

    def forward(self, X: Any) -> np.ndarray:
        """A = γ·x̂ + β for X converted to the layer's dtype; caches x̂ and 1/σ.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Real numbers (n_samples may be 0).

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            A new array of the layer's dtype.

        Raises
        ------
        TypeError
            X does not hold real numbers.
        ValueError
            X is not 2-D or has another width than the layer's.
        """
        X = as_input(X, self.dtype, self.in_features)
        Xhat = np.empty_like(X)
        A = np.empty_like(X)
        rstd = np.empty(X.shape[0], dtype=self.dtype)
        if X.shape[0]:
            _norm.layer_norm_forward_into(X, self.gamma, self.beta, Xhat, A, rstd, self.eps)
        self._cache = (Xhat, rstd)
        return A

    def backward(self, dA: Any) -> np.ndarray:
        """dX for dA = dL/dA of the last forward; fills dgamma and dbeta (overwritten).

        Parameters
        ----------
        dA : array-like of the last forward output's shape
            Converted to the layer's dtype.

        Returns
        -------
        ndarray
            dL/dX.

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
        Xhat, rstd = self._cache
        dA = checked_gradient(self, dA, Xhat.shape)
        dX = np.empty_like(Xhat)
        for g in self._grads:
            g.fill(0)
        if Xhat.shape[0]:
            _norm.layer_norm_backward_into(Xhat, rstd, self.gamma, dA, dX, self.dgamma,
                                           self.dbeta)
        return dX

class BatchNorm(AffineNorm):
    """Batch normalisation of each feature: ``torch.nn.BatchNorm1d(n_features)``.

    While training (a model's fit/train_step/backward; the layer's own forward when
    ``training``), each feature is normalised by the batch's mean and biased variance,
    and the running statistics move towards them: ``running_mean ← momentum·μ +
    (1 − momentum)·running_mean``, ``running_var ← momentum·σ²·n/(n − 1) + (1 −
    momentum)·running_var`` (the unbiased variance), in every training forward. In
    inference (predict, evaluate, the exports; the layer's own forward after
    ``eval()``) it uses the running statistics. Then ``γ·x̂ + β``.

    Parameters
    ----------
    n_features : int
        Its width (>= 1).
    eps : float, default 1e-5
        Added to the variance (> 0).
    momentum : float, default 0.1
        The running statistics' update weight, in [0, 1].
    affine : bool, default True
        Learn γ (from ones) and β (from zeros).
    dtype : {"float32", "float64"}, default "float32"

    Attributes
    ----------
    gamma, beta, dgamma, dbeta : ndarray or None
        As LayerNorm's.
    running_mean, running_var : ndarray of shape (n_features,)
        The live running statistics (from 0 and 1; ``buffers()``); assigning copies
        into them (finite, the variance >= 0).

    Raises
    ------
    TypeError
        A non-integer width, a non-numeric eps or momentum, a non-bool affine, an
        unknown dtype.
    ValueError
        A width < 1, eps <= 0, momentum outside [0, 1]; in training, a batch of one
        sample (the batch variance is undefined; PyTorch refuses it too).
    """

    kind = "batch_norm"

    def __init__(self, n_features: int, *, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, dtype: Any = "float32") -> None:
        self.momentum = check.finite_scalar(momentum, "momentum", low=0.0, high=1.0)
        self._setup(n_features, eps, affine, dtype)
        k = self.in_features
        self._running = [np.zeros(k, dtype=self.dtype), np.ones(k, dtype=self.dtype)]
        self._cache: tuple[Any, ...] | None = None

    @property
    def running_mean(self) -> np.ndarray:
        """The running mean (assignment copies into it)."""
        return self._running[0]

    @running_mean.setter
    def running_mean(self, value: Any) -> None:
        assign_into(self._running[0], value, "running_mean")

    @property
    def running_var(self) -> np.ndarray:
        """The running variance (assignment copies into it; values >= 0)."""
        return self._running[1]

    @running_var.setter
    def running_var(self, value: Any) -> None:
        if (np.asarray(value) < 0).any():
            raise ValueError("running_var must hold values >= 0")
        assign_into(self._running[1], value, "running_var")

    def buffers(self) -> list[np.ndarray]:
        """[running_mean, running_var]."""
        return list(self._running)

    def buffer_names(self) -> tuple[str, ...]:
        """("running_mean", "running_var")."""
        return ("running_mean", "running_var")

    def check_buffers(self) -> None:
        """Finite running statistics, the variance >= 0."""
        if not (np.isfinite(self._running[0]).all() and np.isfinite(self._running[1]).all()
                and (self._running[1] >= 0).all()):
            raise ValueError("running_mean and running_var must be finite, running_var >= 0")

    def engine_constants(self) -> tuple[float, ...]:
        """(eps, momentum)."""
        return (self.eps, self.momentum)

    def spec(self) -> dict[str, Any]:
        """{"kind": "batch_norm", "n_features", "eps", "momentum", "affine"}."""
        return {"kind": self.kind, "n_features": self.in_features, "eps": self.eps,
                "momentum": self.momentum, "affine": self.affine}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> BatchNorm:
        """A BatchNorm of ``spec`` (its arrays at their initial values).

        Parameters
        ----------
        spec : dict
            ``{"n_features", "eps", "momentum", "affine"}``, as ``spec()`` writes it.
        dtype : numpy.dtype
            The layer's dtype, float32 or float64.

        Returns
        -------
        BatchNorm

        Raises
        ------
        KeyError
            A key missing from ``spec``.
        TypeError, ValueError
            Values the constructor refuses.
        """
        return cls(spec["n_features"], eps=spec["eps"], momentum=spec["momentum"],
                   affine=spec["affine"], dtype=dtype)

    def __repr__(self) -> str:
        extra = "" if self.affine else ", affine=False"
        return (f"BatchNorm({self.in_features}, eps={self.eps!r}, momentum={self.momentum!r}"
                f"{extra}, dtype={self.dtype.name!r})")

    def forward(self, X: Any) -> np.ndarray:
        """γ·x̂ + β: with the batch's statistics (updating the running ones) while
        ``training``, else with the running statistics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Real numbers; at least 2 samples while training.

        Returns
        -------
        ndarray of shape (n_samples, n_features)

        Raises
        ------
        TypeError
            X does not hold real numbers.
        ValueError
            X is not 2-D, has another width, or one sample while training.
        """
        X = as_input(X, self.dtype, self.in_features)
        A = np.empty_like(X)
        Xhat = np.empty_like(X)
        stats = np.zeros(4 * self.in_features)
        training = bool(self.training)
        if training and X.shape[0] == 1:
            raise ValueError("BatchNorm needs at least 2 samples per batch while training "
                             "(the batch variance of one sample is undefined)")
        if X.shape[0]:
            _norm.batch_norm_forward_into(X, self.gamma, self.beta, self._running[0],
                                          self._running[1], Xhat, A, stats, self.eps,
                                          self.momentum, training, True)
        self._cache = (X, Xhat, stats, training)
        return A

    def backward(self, dA: Any) -> np.ndarray:
        """dX for dA = dL/dA of the last forward (of its mode); fills dgamma and dbeta.

        Parameters
        ----------
        dA : array-like of the last forward output's shape
            Converted to the layer's dtype.

        Returns
        -------
        ndarray
            dL/dX.

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
        X, Xhat, stats, training = self._cache
        dA = checked_gradient(self, dA, X.shape)
        dX = np.empty_like(X)
        for g in self._grads:
            g.fill(0)
        if not X.shape[0]:
            return dX
        if training:
            _norm.batch_norm_backward_into(Xhat, stats, self.gamma, dA, dX, self.dgamma,
                                           self.dbeta)
            return dX
        # inference mode: a fixed affine map of X
        _norm.batch_norm_eval_backward_into(self._running[1], self.gamma, dA, dX, self.eps)
        if self.affine:
            xhat = (X - self._running[0]) / np.sqrt(self._running[1].astype(np.float64)
                                                    + self.eps)
            self._grads[0][...] = (dA * xhat).sum(axis=0)
            self._grads[1][...] = dA.sum(axis=0)
        return dX

class PeriodicEmbedding(Layer):
    """Periodic embeddings of numeric features, ``rtdl_num_embeddings.PeriodicEmbeddings``
    (the "PLR" of MLP-PLR): each feature x_f becomes ReLU(P_f·W_f + b_f) with
    P_f = [cos(2π·c_f·x_f), sin(2π·c_f·x_f)] over its ``n_frequencies`` learned
    frequencies c_f; the output is feature-major (feature 0's ``d_embedding`` values
    first), ``n_features·d_embedding`` wide.

    Parameters
    ----------
    n_features : int
    d_embedding : int, default 24
    n_frequencies : int, default 48
    frequency_init_scale : float, default 0.01
        σ of the frequencies' initial N(0, σ²), truncated at ±3σ (rtdl's).
    activation : bool, default True
        The ReLU (False: rtdl's "PL" embeddings).
    lite : bool, default False
        One linear map shared by the features (rtdl's lite; needs ``activation``).
    dtype : {"float32", "float64"}, default "float32"
    seed : None, int or numpy.random.Generator
        The initial draw: frequencies as above, weight and bias U(±1/√(2·n_frequencies)).

    Attributes
    ----------
    frequencies : ndarray of shape (n_features, n_frequencies)
    weight : ndarray of shape (n_features, 2·n_frequencies, d_embedding) or, lite,
        (2·n_frequencies, d_embedding): the cosines' rows before the sines'
    bias : ndarray of shape (n_features, d_embedding) or, lite, (d_embedding,)
        The live parameters (``parameters()`` in this order); assigning copies into
        them.

    Raises
    ------
    TypeError
        Non-integer sizes, a non-numeric scale, non-bool flags, an unknown dtype.
    ValueError
        Sizes < 1, a scale <= 0, lite without activation.
    """

    kind = "periodic_embedding"
    _NAMES = ("frequencies", "weight", "bias")

    def __init__(self, n_features: int, d_embedding: int = 24, *, n_frequencies: int = 48,
                 frequency_init_scale: float = 0.01, activation: bool = True,
                 lite: bool = False, dtype: Any = "float32", seed: Any = None) -> None:
        self.in_features = positive_int(n_features, "n_features")
        self.d_embedding = positive_int(d_embedding, "d_embedding")
        self.n_frequencies = positive_int(n_frequencies, "n_frequencies")
        self.frequency_init_scale = check.finite_scalar(
            frequency_init_scale, "frequency_init_scale", low=0.0, low_open=True)
        self.relu = check.flag(activation, "activation")
        self.lite = check.flag(lite, "lite")
        if self.lite and not self.relu:
            raise ValueError("lite=True needs activation=True (as rtdl_num_embeddings)")
        self.dtype = check.float_dtype(dtype)
        self.out_features = self.in_features * self.d_embedding
        F, k, d = self.in_features, self.n_frequencies, self.d_embedding
        check.blas_dims(out_features=self.out_features, width=2 * k)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        sigma = self.frequency_init_scale
        freq = rng.normal(0.0, sigma, (F, k))
        while (bad := np.abs(freq) > 3 * sigma).any():   # truncated at ±3σ, redrawn
            freq[bad] = rng.normal(0.0, sigma, int(bad.sum()))
        bound = (2 * k) ** -0.5
        shape_w, shape_b = ((2 * k, d), (d,)) if self.lite else ((F, 2 * k, d), (F, d))
        self._params = [np.ascontiguousarray(a, dtype=self.dtype) for a in
                        (freq, rng.uniform(-bound, bound, shape_w),
                         rng.uniform(-bound, bound, shape_b))]
        self._grads = [np.zeros_like(p) for p in self._params]
        self._cache: tuple[np.ndarray, ...] | None = None

    @property
    def frequencies(self) -> np.ndarray:
        """The frequencies (assignment copies into them)."""
        return self._params[0]

    @frequencies.setter
    def frequencies(self, value: Any) -> None:
        assign_into(self._params[0], value, "frequencies")

    @property
    def weight(self) -> np.ndarray:
        """The linear maps' weights (assignment copies into them)."""
        return self._params[1]

    @weight.setter
    def weight(self, value: Any) -> None:
        assign_into(self._params[1], value, "weight")

    @property
    def bias(self) -> np.ndarray:
        """The linear maps' biases (assignment copies into them)."""
        return self._params[2]

    @bias.setter
    def bias(self, value: Any) -> None:
        assign_into(self._params[2], value, "bias")

    def parameters(self) -> list[np.ndarray]:
        """[frequencies, weight, bias]."""
        return list(self._params)

    def gradients(self) -> list[np.ndarray]:
        """Aligned with ``parameters()``."""
        return list(self._grads)

    def parameter_names(self) -> tuple[str, ...]:
        """("frequencies", "weight", "bias")."""
        return self._NAMES

    def penalized(self) -> tuple[bool, ...]:
        """The weight only."""
        return (False, True, False)

    def engine_constants(self) -> tuple[float, ...]:
        """(n_frequencies, lite + 2·activation)."""
        return (float(self.n_frequencies), float(self.lite + 2 * self.relu))

    def spec(self) -> dict[str, Any]:
        """{"kind": "periodic_embedding", "n_features", "d_embedding", "n_frequencies",
        "frequency_init_scale", "activation", "lite"}."""
        return {"kind": self.kind, "n_features": self.in_features,
                "d_embedding": self.d_embedding, "n_frequencies": self.n_frequencies,
                "frequency_init_scale": self.frequency_init_scale, "activation": self.relu,
                "lite": self.lite}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> PeriodicEmbedding:
        """A PeriodicEmbedding of ``spec`` (its arrays drawn, to be overwritten).

        Parameters
        ----------
        spec : dict
            As ``spec()`` writes it.
        dtype : numpy.dtype
            The layer's dtype, float32 or float64.

        Returns
        -------
        PeriodicEmbedding

        Raises
        ------
        KeyError
            A key missing from ``spec``.
        TypeError, ValueError
            Values the constructor refuses.
        """
        return cls(spec["n_features"], spec["d_embedding"], n_frequencies=spec["n_frequencies"],
                   frequency_init_scale=spec["frequency_init_scale"],
                   activation=spec["activation"], lite=spec["lite"], dtype=dtype, seed=0)

    def __repr__(self) -> str:
        return (f"PeriodicEmbedding({self.in_features}, {self.d_embedding}, n_frequencies="
                f"{self.n_frequencies}, activation={self.relu}, lite={self.lite}, "
                f"dtype={self.dtype.name!r})")

    def forward(self, X: Any) -> np.ndarray:
        """The embeddings of X, (n_samples, n_features·d_embedding).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Real numbers, converted to the layer's dtype.

        Returns
        -------
        ndarray of shape (n_samples, n_features·d_embedding)

        Raises
        ------
        TypeError
            X does not hold real numbers.
        ValueError
            X is not 2-D or has another width.
        """
        X = as_input(X, self.dtype, self.in_features)
        n, F, k = X.shape[0], self.in_features, self.n_frequencies
        P = np.empty(F * n * 2 * k, dtype=self.dtype)
        Z = np.empty((n, self.out_features), dtype=self.dtype)
        A = np.empty_like(Z)
        if n:
            freq, W, b = (p.reshape(-1) for p in self._params)
            _embed.periodic_forward_into(X, freq, W, b, P, Z, A, k, self.d_embedding, self.lite,
                                         self.relu)
        self._cache = (X, P, Z, A)
        return A

    def backward(self, dA: Any) -> np.ndarray:
        """dX for dA = dL/dA of the last forward; fills the gradients.

        Parameters
        ----------
        dA : array-like of shape (n_samples, n_features·d_embedding)

        Returns
        -------
        ndarray of shape (n_samples, n_features)

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
        X, P, Z, A = self._cache
        D = np.array(checked_gradient(self, dA, Z.shape), order="C")   # (overwritten)
        dX = np.zeros_like(X)
        for g in self._grads:
            g.fill(0)
        if X.shape[0]:
            dfreq, dW, db = (g.reshape(-1) for g in self._grads)
            _embed.periodic_backward_into(
                X, self._params[0].reshape(-1), self._params[1].reshape(-1), P, Z, A, D, dX,
                dfreq, dW, db, np.empty(X.shape[0] * 2 * self.n_frequencies, dtype=self.dtype),
                self.n_frequencies, self.d_embedding, self.lite, self.relu)
        return dX



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
            check_chain(layers)
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


#: the layer classes by kind (fastbp/_table.py LAYER_KINDS)
LAYER_CLASSES: dict[str, type[Layer]] = {
    cls.kind: cls for cls in (Dense, Activation, Dropout, LayerNorm, BatchNorm, Residual,
                              PeriodicEmbedding)}


def dropout_slots(layers: Any) -> list[int]:
    """The index that keys each layer's dropout masks (with the model's dropout seed and
    the step): its index among the layers that are not Dropout layers; a Dropout layer
    takes the slot of the layer before it (which has no dropout of its own), so that
    ``[Dense(..., f), Dropout(p)]`` draws the masks of ``Dense(..., f, dropout=p)``. For a
    model without Dropout layers, the layer indices."""
    slots, slot = [], -1
    for layer in layers:
        if not isinstance(layer, Dropout) or slot < 0:
            slot += 1
        slots.append(slot)
    return slots


def layer_from_spec(spec: Any, dtype: np.dtype) -> Layer:
    """The layer a ``spec()`` describes (its arrays not yet set). Specs written before
    layer kinds existed have no "kind": they are Dense layers."""
    if not isinstance(spec, dict):
        raise ValueError(f"a layer spec must be a dict, got {type(spec).__name__}")
    kind = spec.get("kind", "dense")
    if kind not in LAYER_CLASSES:
        raise ValueError(f"unknown layer kind {kind!r} (this fastbp knows {sorted(LAYER_CLASSES)})")
    return LAYER_CLASSES[kind].from_spec(spec, dtype)
