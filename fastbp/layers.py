"""The Dense layer: Z = X·W + b, A = f(Z), with its backward pass."""
from __future__ import annotations

from typing import Any

import numpy as np

from fastbp import _validation as check
from fastbp._convert import as_input, own_writable
from fastbp._kernels import dense as _dense

__all__ = ["Dense", "INITS"]

INITS = ("auto", "he", "glorot")
# "auto": He for the rectifier family, Glorot for saturating and linear units.
HE_ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu")


def positive_int(value: Any, name: str) -> int:
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


class Dense:
    """A fully connected layer holding W (in_features, out_features) and b (out_features,).

    ``forward`` caches what ``backward`` needs; ``backward`` fills ``dW``/``db``
    in place (the arrays returned by ``Sequential.gradients`` stay valid).

    ``dropout`` (0 ≤ p < 1) is inverted dropout on the layer's output A while a
    model trains (``train_step``, ``fit``, ``Sequential.backward``); the layer's
    own ``forward``/``backward`` and every inference call ignore it. A model's
    last layer cannot have dropout.
    """

    def __init__(self, in_features: int, out_features: int, activation: str = "identity", *,
                 init: str = "auto", dtype: Any = "float32", seed: Any = None,
                 dropout: float = 0.0) -> None:
        self._dropout = check.dropout_rate(dropout)  # first: a failed call draws nothing
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

    # Parameters are properties so that assigning a new array is checked, and so
    # that compiled engines holding pointers to the old arrays are rebuilt.
    generation = 0  # class-wide count of parameter assignments

    @property
    def W(self) -> np.ndarray:
        """Weights, shape (in_features, out_features)."""
        return self._W

    @W.setter
    def W(self, value: Any) -> None:
        self._W = self._as_parameter(value, "W", (self.in_features, self.out_features))
        Dense.generation += 1  # after the store: whoever sees the new count sees the new array

    @property
    def b(self) -> np.ndarray:
        """Biases, shape (out_features,)."""
        return self._b

    @b.setter
    def b(self, value: Any) -> None:
        self._b = self._as_parameter(value, "b", (self.out_features,))
        Dense.generation += 1

    @property
    def dropout(self) -> float:
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

    # Pickling and copy.deepcopy: a model's one copy path (its layers go through here).
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = None  # the last forward's arrays are not part of the layer
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key in ("_W", "_b", "_dW", "_db"):  # the engine writes into all four
            state[key] = own_writable(state[key])
        self.__dict__.update(state)

    def _as_parameter(self, value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
        if arr.dtype == self.dtype and arr.flags.c_contiguous and arr.flags.writeable:
            return arr  # adopt the caller's array, as PyTorch's parameter assignment does
        return np.array(arr, dtype=self.dtype, order="C")

    def __repr__(self) -> str:
        extra = f", dropout={self._dropout!r}" if self._dropout else ""
        return (f"Dense({self.in_features}, {self.out_features}, activation={self.activation!r}, "
                f"dtype={self.dtype.name!r}{extra})")

    def forward(self, X: Any) -> np.ndarray:
        """A = f(X·W + b); X is converted to the layer's dtype."""
        X = as_input(X, self.dtype, self.in_features)
        Z = np.empty((X.shape[0], self.out_features), dtype=self.dtype)
        A = np.empty_like(Z)
        if X.shape[0]:
            _dense.dense_forward_into(self.act_code, X, self.W, self.b, Z, A)
        self._cache = (X, Z, A)
        return A

    def backward(self, dA: Any, need_dX: bool = True) -> np.ndarray | None:
        """dX given dA = dL/dA of the last forward; fills dW and db."""
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
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
