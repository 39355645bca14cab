"""Parameter-free layers of an open width: Activation and Dropout (and the slots
that key dropout masks)."""
from __future__ import annotations

from typing import Any

import numpy as np

from fastbp import _validation as check
from fastbp._convert import as_input
from fastbp._kernels import activations as _act
from fastbp.layers.base import Layer, checked_gradient, positive_int


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
        self._dropout = check.dropout_rate(p)
        self._open(n_features, dtype)
        self._cache: tuple[np.ndarray] | None = None

    @property
    def dropout(self) -> float:  # type: ignore[override]
        """p (read-only: build a new layer to change it)."""
        return self._dropout

    def spec(self) -> dict[str, Any]:
        """{"kind": "dropout", "p", "n_features"}."""
        return {"kind": self.kind, "p": self._dropout, "n_features": self.in_features}

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
        return f"Dropout({self._dropout!r}{width}, dtype={self.dtype.name!r})"

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
