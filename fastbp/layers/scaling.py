"""Per-column learned scalings, RealMLP's: ``Scale`` (the diagonal front scale,
A = X·s) and ``ParametricActivation`` (A = X + α·(f(X) − X), one α per column).
Kernels: fastbp/_kernels/scaling.pyx."""
from __future__ import annotations

from typing import Any

import numpy as np

from fastbp import _validation as check
from fastbp._convert import as_input
from fastbp._kernels import scaling as _scaling
from fastbp.layers.base import Layer, assign_into, checked_gradient, positive_int


class _ColumnVectorLayer(Layer):
    """A width mapped to itself through one learned value per column (``_NAME``),
    starting at ones; not a weight (no L2 penalty)."""

    _NAME = ""
    _cache: tuple[np.ndarray, ...] | None

    def _setup(self, n_features: Any, dtype: Any, dropout: Any) -> None:
        self._dropout = check.dropout_rate(dropout)
        self.in_features = self.out_features = positive_int(n_features, "n_features")
        self.dtype = check.float_dtype(dtype)
        self._params = [np.ones(self.in_features, dtype=self.dtype)]
        self._grads = [np.zeros_like(self._params[0])]
        self._cache = None

    @property
    def dropout(self) -> float:  # type: ignore[override]
        """The dropout probability of the layer's output in training."""
        return self._dropout

    def parameters(self) -> list[np.ndarray]:
        """[the per-column values]."""
        return list(self._params)

    def gradients(self) -> list[np.ndarray]:
        """Aligned with ``parameters()``."""
        return list(self._grads)

    def parameter_names(self) -> tuple[str, ...]:
        """The per-column values' name ("scale"; "alpha")."""
        return (self._NAME,)

    def penalized(self) -> tuple[bool, ...]:
        """Not a weight."""
        return (False,)

    def _checked(self, dA: Any) -> tuple[np.ndarray, ...]:
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        return self._cache + (checked_gradient(self, dA, self._cache[0].shape),)


class Scale(_ColumnVectorLayer):
    """``A = X·s``: one learned factor per column, starting at 1 (RealMLP's diagonal
    "front scale", pytabkit's ``ScaleLayer``).

    Parameters
    ----------
    n_features : int
    dtype : {"float32", "float64"}, default "float32"
    dropout : float, default 0.0
        Inverted dropout on the output while a model trains.

    Attributes
    ----------
    scale : ndarray of shape (n_features,)
        The live factors (assignment copies into them).

    Raises
    ------
    TypeError
        A non-integer width, an unknown dtype, a non-numeric dropout.
    ValueError
        A width < 1, dropout outside [0, 1).
    """

    kind = "scale"
    _NAME = "scale"

    def __init__(self, n_features: int, *, dtype: Any = "float32", dropout: float = 0.0) -> None:
        self._setup(n_features, dtype, dropout)

    @property
    def scale(self) -> np.ndarray:
        """The factors (assignment copies into them)."""
        return self._params[0]

    @scale.setter
    def scale(self, value: Any) -> None:
        assign_into(self._params[0], value, "scale")

    def spec(self) -> dict[str, Any]:
        """{"kind": "scale", "n_features", "dropout"}."""
        return {"kind": self.kind, "n_features": self.in_features, "dropout": self.dropout}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> Scale:
        """A Scale of ``spec`` (factors at 1, to be overwritten).

        Parameters
        ----------
        spec : dict
        dtype : numpy.dtype

        Returns
        -------
        Scale
        """
        return cls(spec["n_features"], dtype=dtype, dropout=spec.get("dropout", 0.0))

    def __repr__(self) -> str:
        extra = f", dropout={self.dropout!r}" if self.dropout else ""
        return f"Scale({self.in_features}, dtype={self.dtype.name!r}{extra})"

    def forward(self, X: Any) -> np.ndarray:
        """X·s (no dropout here: only a model's training steps apply it).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        X = as_input(X, self.dtype, self.in_features)
        A = np.empty_like(X)
        _scaling.scale_forward_into(X, self._params[0], A)
        self._cache = (X,)
        return A

    def backward(self, dA: Any) -> np.ndarray:
        """dX = dA·s; fills the gradient Σ_rows dA·X.

        Parameters
        ----------
        dA : array-like of the last forward output's shape

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        X, dA = self._checked(dA)
        dX = np.empty_like(X)
        _scaling.scale_backward_into(X, self._params[0], dA, dX, self._grads[0])
        return dX


class ParametricActivation(_ColumnVectorLayer):
    """``A = X + α·(f(X) − X)``: an element-wise activation f blended with the
    identity by one learned α per column, starting at 1 (= f) (RealMLP's parametric
    activations, pytabkit's ``ParametricActivationLayer``).

    Parameters
    ----------
    n_features : int
    activation : str
        An element-wise activation of ``fastbp.ACTIVATIONS`` (not softmax; RealMLP
        uses "selu" for classification, "mish" for regression).
    dtype : {"float32", "float64"}, default "float32"
    dropout : float, default 0.0
        Inverted dropout on the output while a model trains.

    Attributes
    ----------
    alpha : ndarray of shape (n_features,)
        The live blend factors (assignment copies into them).

    Raises
    ------
    TypeError
        A non-integer width, a non-str activation, an unknown dtype.
    ValueError
        A width < 1, an unknown activation or softmax, dropout outside [0, 1).
    """

    kind = "parametric_activation"
    _NAME = "alpha"

    def __init__(self, n_features: int, activation: str, *, dtype: Any = "float32",
                 dropout: float = 0.0) -> None:
        self.act_code = check.elementwise_activation(activation)
        self.activation = activation
        self._setup(n_features, dtype, dropout)

    @property
    def alpha(self) -> np.ndarray:
        """The blend factors (assignment copies into them)."""
        return self._params[0]

    @alpha.setter
    def alpha(self, value: Any) -> None:
        assign_into(self._params[0], value, "alpha")

    def spec(self) -> dict[str, Any]:
        """{"kind": "parametric_activation", "n_features", "activation", "dropout"}."""
        return {"kind": self.kind, "n_features": self.in_features,
                "activation": self.activation, "dropout": self.dropout}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> ParametricActivation:
        """A ParametricActivation of ``spec`` (α at 1, to be overwritten).

        Parameters
        ----------
        spec : dict
        dtype : numpy.dtype

        Returns
        -------
        ParametricActivation
        """
        return cls(spec["n_features"], spec["activation"], dtype=dtype,
                   dropout=spec.get("dropout", 0.0))

    def __repr__(self) -> str:
        extra = f", dropout={self.dropout!r}" if self.dropout else ""
        return (f"ParametricActivation({self.in_features}, {self.activation!r}, "
                f"dtype={self.dtype.name!r}{extra})")

    def forward(self, X: Any) -> np.ndarray:
        """X + α·(f(X) − X) (no dropout here).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        X = as_input(X, self.dtype, self.in_features)
        A, F = np.empty_like(X), np.empty_like(X)
        _scaling.parametric_forward_into(self.act_code, X, self._params[0], F, A)
        self._cache = (X, F)
        return A

    def backward(self, dA: Any) -> np.ndarray:
        """dX = dA + α·(f'(X)·dA − dA); fills the gradient Σ_rows dA·(f(X) − X).

        Parameters
        ----------
        dA : array-like of the last forward output's shape

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        X, F, dA = self._checked(dA)
        dX = np.empty_like(X)
        _scaling.parametric_backward_into(self.act_code, X, self._params[0], F, dA, dX,
                                          self._grads[0])
        return dX
