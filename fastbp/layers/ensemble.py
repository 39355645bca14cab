"""Ensemble layers (TabM's): ``LinearBatchEnsemble`` and ``LinearEnsemble``.

Both hold k members side by side in a row: a layer's output (n, k·d_out) is
(n, k, d_out) in memory, member m's values at columns [m·d_out, (m+1)·d_out), so
element-wise layers (activations, dropout) act on every member at once and the
next ensemble layer reads its members' inputs where this one wrote them. A
``LinearBatchEnsemble`` with ``shared_input=True`` reads one (n, d_in) input that
every member sees (tabm's ``EnsembleView`` before the first layer).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fastbp import _validation as check
from fastbp import ops
from fastbp._convert import as_input
from fastbp.layers.base import (Layer, assign_into, checked_gradient, positive_int,
                                positive_ints)

SCALING_INITS = ("random-signs", "normal", "ones")


def _rsqrt_uniform(rng: np.random.Generator, d: int, shape: tuple[int, ...],
                   dtype: np.dtype) -> np.ndarray:
    """U(±1/√d), tabm's initialisation of weights and biases."""
    return np.ascontiguousarray(rng.uniform(-d ** -0.5, d ** -0.5, size=shape), dtype=dtype)


def _scaling(init: str, shape: tuple[int, int], rng: np.random.Generator, dtype: np.dtype,
             chunks: tuple[int, ...] | None) -> np.ndarray:
    """tabm's init_scaling_: ones, N(0, 1) or random signs ±1; with ``chunks``, one
    value per member and chunk of columns (a feature's embedding columns share it)."""
    k, d = shape
    if init == "ones":
        return np.ones(shape, dtype=dtype)
    widths = chunks if chunks is not None else (1,) * d
    draw = rng.standard_normal((k, len(widths))) if init == "normal" \
        else rng.integers(0, 2, (k, len(widths))) * 2.0 - 1.0
    return np.ascontiguousarray(np.repeat(draw, widths, axis=1), dtype=dtype)


def _live(name: str, gradient: bool = False) -> property:
    """A property reading a live parameter (or its gradient) by name; assigning a
    parameter copies into it (``assign_into``)."""

    def get(self: _EnsembleLayer) -> np.ndarray:
        return self._array(name, gradient)

    def put(self: _EnsembleLayer, value: Any) -> None:
        assign_into(self._array(name, False), value, name)

    get.__doc__ = (f"The gradient of {name} of the last backward (updated in place)."
                   if gradient else f"The live parameter {name} (assignment copies into it).")
    return property(get) if gradient else property(get, put)


class _EnsembleLayer(Layer):
    """What both ensemble kinds share: k, the widths per member, the activation, the
    live arrays and their assignment, and the spec's common part."""

    _names: tuple[str, ...] = ()

    def _common(self, in_features: int, out_features: int, k: int, activation: str,
                dtype: Any, bias: bool, shared: bool) -> None:
        self.bias = check.flag(bias, "bias")
        self.k = positive_int(k, "k")
        self.d_in = positive_int(in_features, "in_features")
        self.d_out = positive_int(out_features, "out_features")
        self.shared_input = shared
        self.in_features = self.d_in if shared else self.k * self.d_in
        self.out_features = self.k * self.d_out
        check.blas_dims(in_features=self.in_features, out_features=self.out_features)
        self.act_code = check.activation_code(activation)
        if activation == "softmax":
            raise ValueError("an ensemble layer's activation is element-wise; softmax is "
                             "not (it would mix the members)")
        self.activation = activation
        self.dtype = check.float_dtype(dtype)
        self._cache: Any = None

    def _set_arrays(self, arrays: list[np.ndarray]) -> None:
        names = self._names if self.bias else self._names[:-1]
        self._params = arrays[:len(names)]
        self._grads = [np.zeros_like(a) for a in self._params]

    def _array(self, name: str, gradient: bool) -> np.ndarray:
        if name not in self.parameter_names():
            raise AttributeError(f"this {type(self).__name__} has no {name} (bias=False)")
        i = self.parameter_names().index(name)
        return self._grads[i] if gradient else self._params[i]

    def parameters(self) -> list[np.ndarray]:
        """The live arrays, in ``parameter_names()`` order."""
        return list(self._params)

    def gradients(self) -> list[np.ndarray]:
        """Their gradients of the last backward, aligned with ``parameters()``."""
        return list(self._grads)

    def parameter_names(self) -> tuple[str, ...]:
        """The names of ``parameters()`` (without "b" for a layer without bias)."""
        return self._names if self.bias else self._names[:-1]

    def penalized(self) -> tuple[bool, ...]:
        """Only W is a weight (the scalings and biases are not)."""
        return tuple(name == "W" for name in self.parameter_names())

    def engine_constants(self) -> tuple[float, ...]:
        """(k, 1.0 for a shared input else 0.0)."""
        return (float(self.k), 1.0 if self.shared_input else 0.0)

    def _activate(self, Z: np.ndarray) -> np.ndarray:
        return Z if self.activation == "identity" else ops.activation_forward(
            self.activation, Z)

    def _d_activation(self, Z: np.ndarray, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        return dA if self.activation == "identity" else ops.activation_backward(
            self.activation, Z, A, dA)

    def _spec(self, **extra: Any) -> dict[str, Any]:
        spec = {"kind": self.kind, "in_features": self.d_in, "out_features": self.d_out,
                "k": self.k, "activation": self.activation, "dropout": self.dropout}
        if not self.bias:
            spec["bias"] = False
        spec.update(extra)
        return spec


class LinearBatchEnsemble(_EnsembleLayer):
    """k BatchEnsemble linear maps sharing W (``tabm.LinearBatchEnsemble``): member m
    maps its input x to f(((x ∘ r_m)·W) ∘ s_m + b_m).

    Parameters
    ----------
    in_features, out_features : int
        Each member's widths d_in and d_out (>= 1). The layer's own widths are
        ``k·d_in`` (or ``d_in`` with ``shared_input``) and ``k·d_out``.
    k : int
        The number of members (>= 1).
    activation : str, default "identity"
        An element-wise activation of ``fastbp.ACTIVATIONS`` (not softmax).
    shared_input : bool, default False
        Every member reads the same (n, d_in) input (TabM's first layer).
    scaling_init : {"ones", "random-signs", "normal"} or (str, str), default "ones"
        The initialisation of r and s (a pair: r's, then s's), as tabm's.
    scaling_chunks : sequence of int or None, default None
        r's columns in chunks that share one drawn value per member (tabm's
        ``first_scaling_init_chunks``: a feature's embedding columns).
    bias : bool, default True
        Whether the members have biases b (k, d_out); they start equal across members.
    dtype : {"float32", "float64"}, default "float32"
    seed : None, int or numpy.random.Generator
        The draws of W (U(±1/√d_in)), b and the scalings.
    dropout : float, default 0.0
        Inverted dropout on the layer's output in training, as Dense's.

    Attributes
    ----------
    W : ndarray (d_in, d_out)
        The shared weights (``weight`` transposed).
    r : ndarray (k, d_in)
    s : ndarray (k, d_out)
    b : ndarray (k, d_out)
        The live parameters (assignment copies into them); ``dW``, ``dr``, ``ds``,
        ``db`` their gradients of the last backward.
    """

    kind = "batch_ensemble"
    _names = ("W", "r", "s", "b")
    W, r, s, b = (_live(name) for name in _names)
    dW, dr, ds, db = (_live(name, gradient=True) for name in _names)

    def __init__(self, in_features: int, out_features: int, k: int,
                 activation: str = "identity", *, shared_input: bool = False,
                 scaling_init: Any = "ones", scaling_chunks: Any = None, bias: bool = True,
                 dtype: Any = "float32", seed: Any = None, dropout: float = 0.0) -> None:
        self._dropout = check.dropout_rate(dropout)
        self._common(in_features, out_features, k, activation, dtype, bias,
                     check.flag(shared_input, "shared_input"))
        inits = scaling_init if isinstance(scaling_init, tuple) else (scaling_init,) * 2
        if len(inits) != 2 or any(i not in SCALING_INITS for i in inits):
            raise ValueError(f"scaling_init must be one of {SCALING_INITS} or a pair of "
                             f"them, got {scaling_init!r}")
        self.scaling_init = inits
        chunks = None
        if scaling_chunks is not None:
            chunks = positive_ints(scaling_chunks, "scaling_chunks", None)
            if sum(chunks) != self.d_in:
                raise ValueError(f"scaling_chunks must sum to in_features ({self.d_in}), got "
                                 f"{sum(chunks)}")
        self.scaling_chunks = chunks
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        W = _rsqrt_uniform(rng, self.d_in, (self.d_in, self.d_out), self.dtype)
        r = _scaling(inits[0], (self.k, self.d_in), rng, self.dtype, chunks)
        s = _scaling(inits[1], (self.k, self.d_out), rng, self.dtype, None)
        b = np.ascontiguousarray(np.broadcast_to(
            _rsqrt_uniform(rng, self.d_in, (self.d_out,), self.dtype), (self.k, self.d_out)))
        self._set_arrays([W, r, s, b])

    @property
    def dropout(self) -> float:  # type: ignore[override]
        """The dropout probability of the output in training (read-only)."""
        return self._dropout

    def spec(self) -> dict[str, Any]:
        """The kind, the per-member widths, k, the activation, dropout, shared_input."""
        return self._spec(shared_input=self.shared_input)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> LinearBatchEnsemble:
        """A LinearBatchEnsemble of ``spec`` (arrays drawn, to be overwritten).

        Parameters
        ----------
        spec : dict
            As ``spec()`` writes it.
        dtype : numpy.dtype
            float32 or float64.

        Returns
        -------
        LinearBatchEnsemble
        """
        return cls(spec["in_features"], spec["out_features"], spec["k"], spec["activation"],
                   shared_input=spec.get("shared_input", False), bias=spec.get("bias", True),
                   dtype=dtype, seed=0, dropout=spec.get("dropout", 0.0))

    def __repr__(self) -> str:
        return (f"LinearBatchEnsemble({self.d_in}, {self.d_out}, k={self.k}, "
                f"activation={self.activation!r}, shared_input={self.shared_input}, "
                f"dtype={self.dtype.name!r})")

    def forward(self, X: Any) -> np.ndarray:
        """The members' outputs side by side, (n_samples, k·d_out).

        Parameters
        ----------
        X : array-like of shape (n_samples, in_features)
            (n, k·d_in), member m's input at columns [m·d_in, (m+1)·d_in); or (n, d_in)
            with ``shared_input``.

        Returns
        -------
        ndarray of shape (n_samples, k·d_out)
        """
        X = as_input(X, self.dtype, self.in_features)
        n = X.shape[0]
        Xe = X if self.shared_input else X.reshape(n, self.k, self.d_in)
        Y, U, V = ops.batch_ensemble_forward(Xe, *self._params)
        Z = Y.reshape(n, self.out_features)
        A = self._activate(Z)
        self._cache = (X, U, V, Z, A)
        return A

    def backward(self, dA: Any, need_dX: bool = True) -> np.ndarray | None:
        """dL/dX given dA = dL/d(output) of the last forward; fills the gradients.

        Parameters
        ----------
        dA : array-like of shape (n_samples, k·d_out)
        need_dX : bool, default True
            Compute dX.

        Returns
        -------
        ndarray of shape (n_samples, in_features) or None
        """
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        need_dX = check.flag(need_dX, "need_dX")
        X, U, V, Z, A = self._cache
        dA = np.ascontiguousarray(checked_gradient(self, dA, Z.shape))
        n = X.shape[0]
        dZ = self._d_activation(Z, A, dA)
        Xe = X if self.shared_input else X.reshape(n, self.k, self.d_in)
        dX, *grads = ops.batch_ensemble_backward(Xe, self._params[0], self._params[1],
                                                 self._params[2], U, V,
                                                 dZ.reshape(n, self.k, self.d_out),
                                                 bias=self.bias, need_dX=need_dX)
        for g, new in zip(self._grads, grads):
            g[...] = new
        return None if dX is None else dX.reshape(n, self.in_features)


class LinearEnsemble(_EnsembleLayer):
    """k independent linear maps, member m's on its own input (``tabm.LinearEnsemble``,
    TabM's heads): Y[:, m] = f(X[:, m]·W_m + b_m).

    Parameters
    ----------
    in_features, out_features : int
        Each member's widths d_in and d_out (>= 1); the layer maps k·d_in to k·d_out.
    k : int
        The number of members (>= 1).
    activation : str, default "identity"
        An element-wise activation of ``fastbp.ACTIVATIONS`` (not softmax).
    bias : bool, default True
    dtype : {"float32", "float64"}, default "float32"
    seed : None, int or numpy.random.Generator
        The draws of W and b, U(±1/√d_in) (tabm's).

    Attributes
    ----------
    W : ndarray (k, d_in, d_out)
    b : ndarray (k, d_out)
        The live parameters; ``dW``, ``db`` their gradients of the last backward.
    """

    kind = "linear_ensemble"
    _names = ("W", "b")
    W, b = (_live(name) for name in _names)
    dW, db = (_live(name, gradient=True) for name in _names)

    def __init__(self, in_features: int, out_features: int, k: int,
                 activation: str = "identity", *, bias: bool = True, dtype: Any = "float32",
                 seed: Any = None) -> None:
        self._common(in_features, out_features, k, activation, dtype, bias, False)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        W = _rsqrt_uniform(rng, self.d_in, (self.k, self.d_in, self.d_out), self.dtype)
        b = _rsqrt_uniform(rng, self.d_in, (self.k, self.d_out), self.dtype)
        self._set_arrays([W, b])

    def spec(self) -> dict[str, Any]:
        """The kind, the per-member widths, k, the activation."""
        return self._spec()

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> LinearEnsemble:
        """A LinearEnsemble of ``spec`` (arrays drawn, to be overwritten).

        Parameters
        ----------
        spec : dict
            As ``spec()`` writes it.
        dtype : numpy.dtype
            float32 or float64.

        Returns
        -------
        LinearEnsemble
        """
        return cls(spec["in_features"], spec["out_features"], spec["k"], spec["activation"],
                   bias=spec.get("bias", True), dtype=dtype, seed=0)

    def __repr__(self) -> str:
        return (f"LinearEnsemble({self.d_in}, {self.d_out}, k={self.k}, "
                f"activation={self.activation!r}, dtype={self.dtype.name!r})")

    def forward(self, X: Any) -> np.ndarray:
        """The members' outputs side by side, (n_samples, k·d_out).

        Parameters
        ----------
        X : array-like of shape (n_samples, k·d_in)

        Returns
        -------
        ndarray of shape (n_samples, k·d_out)
        """
        X = as_input(X, self.dtype, self.in_features)
        n = X.shape[0]
        Y = ops.linear_ensemble_forward(X.reshape(n, self.k, self.d_in), *self._params)
        Z = Y.reshape(n, self.out_features)
        A = self._activate(Z)
        self._cache = (X, Z, A)
        return A

    def backward(self, dA: Any, need_dX: bool = True) -> np.ndarray | None:
        """dL/dX given dA = dL/d(output) of the last forward; fills dW and db.

        Parameters
        ----------
        dA : array-like of shape (n_samples, k·d_out)
        need_dX : bool, default True
            Compute dX.

        Returns
        -------
        ndarray of shape (n_samples, k·d_in) or None
        """
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        need_dX = check.flag(need_dX, "need_dX")
        X, Z, A = self._cache
        dA = np.ascontiguousarray(checked_gradient(self, dA, Z.shape))
        n = X.shape[0]
        dZ = self._d_activation(Z, A, dA)
        dX, *grads = ops.linear_ensemble_backward(X.reshape(n, self.k, self.d_in),
                                                  self._params[0],
                                                  dZ.reshape(n, self.k, self.d_out),
                                                  bias=self.bias, need_dX=need_dX)
        for g, new in zip(self._grads, grads):
            if new is not None:
                g[...] = new
        return None if dX is None else dX.reshape(n, self.in_features)
