"""Normalisation layers: LayerNorm and BatchNorm (torch.nn.LayerNorm, BatchNorm1d)."""
from __future__ import annotations

from typing import Any

import numpy as np

from fastbp import _validation as check
from fastbp._convert import as_input
from fastbp._kernels import norm as _norm
from fastbp.layers.base import Layer, assign_into, checked_gradient, positive_int


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
    row's mean μ and biased variance σ² (``torch.nn.LayerNorm(n_features)``); with
    ``groups`` = k, over each of the row's k blocks of n_features/k columns (the
    ensemble-aware LayerNorm: tabm's ``LayerNormEnsemble(n_features // k, k=k)``, the
    members of an ensemble layer side by side, each normalised on its own).

    Parameters
    ----------
    n_features : int
        Its width (input = output, >= 1).
    eps : float, default 1e-5
        Added to the variance (> 0).
    affine : bool, default True
        Learn γ (starting at ones) and β (zeros); False: no parameters (A = x̂).
    groups : int, default 1
        The blocks each row is normalised in (>= 1, dividing n_features); γ and β
        stay per column (per member and feature).
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
        A non-integer width or groups, a non-numeric eps, a non-bool affine, an
        unknown dtype.
    ValueError
        A width < 1, eps <= 0 or not finite, groups < 1 or not dividing the width.
    """

    kind = "layer_norm"

    def __init__(self, n_features: int, *, eps: float = 1e-5, affine: bool = True,
                 groups: int = 1, dtype: Any = "float32") -> None:
        self._setup(n_features, eps, affine, dtype)
        self.groups = check.norm_groups(groups, self.in_features)
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def engine_constants(self) -> tuple[float, ...]:
        """(eps, groups)."""
        return (self.eps, float(self.groups))

    def spec(self) -> dict[str, Any]:
        """{"kind": "layer_norm", "n_features", "eps", "affine"[, "groups"]}."""
        spec = {"kind": self.kind, "n_features": self.in_features, "eps": self.eps,
                "affine": self.affine}
        if self.groups != 1:   # (files without it are one group)
            spec["groups"] = self.groups
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> LayerNorm:
        """A LayerNorm of ``spec`` (γ = 1, β = 0, to be overwritten by the caller).

        Parameters
        ----------
        spec : dict
            ``{"n_features", "eps", "affine"[, "groups"]}``, as ``spec()`` writes it.
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
        return cls(spec["n_features"], eps=spec["eps"], affine=spec["affine"],
                   groups=spec.get("groups", 1), dtype=dtype)

    def __repr__(self) -> str:
        extra = ("" if self.affine else ", affine=False") + (
            f", groups={self.groups}" if self.groups != 1 else "")
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
        rstd = np.empty(X.shape[0] * self.groups, dtype=self.dtype)
        if X.shape[0]:
            _norm.layer_norm_forward_into(X, self.gamma, self.beta, Xhat, A, rstd, self.eps,
                                          self.groups)
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
                                           self.dbeta, self.groups)
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
