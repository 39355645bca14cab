"""The Dense layer: Z = X·W + b, A = f(Z)."""
from __future__ import annotations

from typing import Any

import numpy as np

from fastbp import _validation as check
from fastbp._convert import as_input
from fastbp._kernels import dense as _dense
from fastbp.layers.base import Layer, assign_into, init_weights, positive_int


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
