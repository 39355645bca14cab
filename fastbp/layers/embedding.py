"""Embeddings: of numeric features, rtdl_num_embeddings' PeriodicEmbedding and
PiecewiseLinearEncoding; of integer-coded categories, CategoricalEmbedding."""
from __future__ import annotations

from typing import Any

import numpy as np

from fastbp import _validation as check
from fastbp._bins import checked_bins, ple_table
from fastbp._codes import check_codes, layout
from fastbp._convert import as_input
from fastbp._kernels import embed as _embed
from fastbp.layers.base import (Layer, assign_into, checked_gradient, last_input_and_gradient,
                                live_parameter,
                                positive_int, positive_ints)


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


class PeriodicBiasEmbedding(Layer):
    """RealMLP's "PBLD" numeric embeddings (pytabkit's ``PLREmbeddingsLayerCosBias``
    with a linear map and the DenseNet-style input): each of the first ``n_embedded``
    columns x_f becomes cos(2π·c_f·x_f + φ_f)·W_f + b_f (``d_embedding`` values) over its
    ``n_frequencies`` learned frequencies c_f and phases φ_f; the output is those
    embeddings, feature-major, then the input's ``n_features`` columns unchanged (the
    embedded ones too: pytabkit's "densenet" concatenation; the others pass through).

    Parameters
    ----------
    n_features : int
        The input's width.
    n_embedded : int or None, default None
        How many of its first columns are embedded (None: all).
    d_embedding : int, default 3
        Values per embedded column (pytabkit's ``plr_hidden_2`` 4 counts the column itself).
    n_frequencies : int, default 16
    frequency_init_scale : float, default 0.1
        σ of the frequencies' initial N(0, σ²) (pytabkit's ``plr_sigma``).
    dtype : {"float32", "float64"}, default "float32"
    seed : None, int or numpy.random.Generator
        The initial draw: frequencies as above, phases U(−π, π), weight and bias
        U(±1/√n_frequencies) (pytabkit's).

    Attributes
    ----------
    frequencies, phases : ndarray of shape (n_embedded, n_frequencies)
    weight : ndarray of shape (n_embedded, n_frequencies, d_embedding)
    bias : ndarray of shape (n_embedded, d_embedding)
        The live parameters (``parameters()`` in this order); assigning copies into them.

    Raises
    ------
    TypeError
        Non-integer sizes, a non-numeric scale, an unknown dtype.
    ValueError
        Sizes < 1, n_embedded > n_features, a scale <= 0.
    """

    kind = "periodic_bias_embedding"
    _NAMES = ("frequencies", "phases", "weight", "bias")

    def __init__(self, n_features: int, n_embedded: int | None = None, d_embedding: int = 3,
                 *, n_frequencies: int = 16, frequency_init_scale: float = 0.1,
                 dtype: Any = "float32", seed: Any = None) -> None:
        self.in_features = positive_int(n_features, "n_features")
        self.n_embedded = self.in_features if n_embedded is None \
            else positive_int(n_embedded, "n_embedded")
        if self.n_embedded > self.in_features:
            raise ValueError(f"n_embedded ({self.n_embedded}) must be <= n_features "
                             f"({self.in_features})")
        self.d_embedding = positive_int(d_embedding, "d_embedding")
        self.n_frequencies = positive_int(n_frequencies, "n_frequencies")
        self.frequency_init_scale = check.finite_scalar(
            frequency_init_scale, "frequency_init_scale", low=0.0, low_open=True)
        self.dtype = check.float_dtype(dtype)
        F, k, d = self.n_embedded, self.n_frequencies, self.d_embedding
        self.out_features = F * d + self.in_features
        check.blas_dims(out_features=self.out_features, width=2 * k)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        bound = k ** -0.5
        self._params = [np.ascontiguousarray(a, dtype=self.dtype) for a in
                        (rng.normal(0.0, self.frequency_init_scale, (F, k)),
                         rng.uniform(-np.pi, np.pi, (F, k)),
                         rng.uniform(-bound, bound, (F, k, d)),
                         rng.uniform(-bound, bound, (F, d)))]
        self._grads = [np.zeros_like(p) for p in self._params]
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    frequencies = live_parameter(0, "frequencies")
    phases = live_parameter(1, "phases")
    weight = live_parameter(2, "weight")
    bias = live_parameter(3, "bias")

    def parameters(self) -> list[np.ndarray]:
        """[frequencies, phases, weight, bias]."""
        return list(self._params)

    def gradients(self) -> list[np.ndarray]:
        """Aligned with ``parameters()``."""
        return list(self._grads)

    def parameter_names(self) -> tuple[str, ...]:
        """("frequencies", "phases", "weight", "bias")."""
        return self._NAMES

    def penalized(self) -> tuple[bool, ...]:
        """The weight only."""
        return (False, False, True, False)

    def engine_constants(self) -> tuple[float, ...]:
        """(n_frequencies, d_embedding)."""
        return (float(self.n_frequencies), float(self.d_embedding))

    def spec(self) -> dict[str, Any]:
        """{"kind": "periodic_bias_embedding", "n_features", "n_embedded", "d_embedding",
        "n_frequencies", "frequency_init_scale"}."""
        return {"kind": self.kind, "n_features": self.in_features,
                "n_embedded": self.n_embedded, "d_embedding": self.d_embedding,
                "n_frequencies": self.n_frequencies,
                "frequency_init_scale": self.frequency_init_scale}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> PeriodicBiasEmbedding:
        """A PeriodicBiasEmbedding of ``spec`` (its arrays drawn, to be overwritten).

        Parameters
        ----------
        spec : dict
        dtype : numpy.dtype

        Returns
        -------
        PeriodicBiasEmbedding
        """
        return cls(spec["n_features"], spec["n_embedded"], spec["d_embedding"],
                   n_frequencies=spec["n_frequencies"],
                   frequency_init_scale=spec["frequency_init_scale"], dtype=dtype, seed=0)

    def __repr__(self) -> str:
        return (f"PeriodicBiasEmbedding({self.in_features}, {self.n_embedded}, "
                f"{self.d_embedding}, n_frequencies={self.n_frequencies}, "
                f"dtype={self.dtype.name!r})")

    def forward(self, X: Any) -> np.ndarray:
        """The embeddings of X's first n_embedded columns, then X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_embedded·d_embedding + n_features)
        """
        X = as_input(X, self.dtype, self.in_features)
        F, k, d = self.n_embedded, self.n_frequencies, self.d_embedding
        P = np.empty(F * X.shape[0] * 2 * k, dtype=self.dtype)
        A = np.empty((X.shape[0], self.out_features), dtype=self.dtype)
        freq, phase, W, b = (p.reshape(-1) for p in self._params)
        _embed.periodic_bias_forward_into(X, freq, phase, W, b, P, A, F, k, d)
        self._cache = (X, P)
        return A

    def backward(self, dA: Any) -> np.ndarray:
        """dX for dA = dL/dA of the last forward; fills the gradients.

        Parameters
        ----------
        dA : array-like of shape (n_samples, n_embedded·d_embedding + n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        X, P = self._cache
        D = checked_gradient(self, dA, (X.shape[0], self.out_features))
        dX = np.empty_like(X)
        dfreq, dphase, dW, db = (g.reshape(-1) for g in self._grads)
        _embed.periodic_bias_backward_into(
            X, self._params[0].reshape(-1), self._params[2].reshape(-1), P, D, dX, dfreq,
            dphase, dW, db, np.empty(max(X.shape[0], 1) * self.n_frequencies, dtype=self.dtype),
            self.n_embedded, self.n_frequencies, self.d_embedding)
        return dX


class PiecewiseLinearEncoding(Layer):
    """The piecewise-linear encoding of numeric features,
    ``rtdl_num_embeddings.PiecewiseLinearEncoding`` (the "PLE" of MLP-PLE): feature f
    with edges e_0 < ... < e_m becomes m values, [1, ..., 1, (x − e_j)/(e_{j+1} − e_j),
    0, ..., 0] for x in bin j; the first value is only clamped above (at 1), the last
    only below (at 0), so values beyond the outer edges extrapolate; a feature with a
    single bin is its min-max scaling, unclamped. No parameters; the output is
    feature-major, (total bins) wide.

    Parameters
    ----------
    bins : list of 1-D array-like
        One strictly increasing array of at least two finite edges per feature
        (``fastbp.compute_bins``), rounded to ``dtype``.
    dtype : {"float32", "float64"}, default "float32"

    Attributes
    ----------
    bins : list of ndarray
        Copies of the edges (in ``dtype``); the layer's constants (in its spec).

    Raises
    ------
    TypeError
        bins not a list of real arrays; an unknown dtype.
    ValueError
        A feature with fewer than two edges, non-finite edges or edges not strictly
        increasing in ``dtype``.
    """

    kind = "piecewise_linear_encoding"

    def __init__(self, bins: Any, *, dtype: Any = "float32") -> None:
        self.dtype = check.float_dtype(dtype)
        self._bins = checked_bins(bins, self.dtype)
        for e in self._bins:
            e.flags.writeable = False
        self.in_features = len(self._bins)
        self._feat, self._coef = ple_table(self._bins, self.dtype)
        self.out_features = int(self._feat.size)
        check.blas_dims(out_features=self.out_features)
        self._cache: np.ndarray | None = None

    @property
    def bins(self) -> list[np.ndarray]:
        """The edges per feature (read-only arrays)."""
        return list(self._bins)

    def engine_buffers(self) -> tuple[np.ndarray, ...]:
        """(feat, coef): each output column's feature, and its w, b, lo, hi
        (``fastbp._bins.ple_table``)."""
        return (self._feat, self._coef)

    def spec(self) -> dict[str, Any]:
        """{"kind": "piecewise_linear_encoding", "bins": the edges as lists of floats}."""
        return {"kind": self.kind, "bins": [[float(v) for v in e] for e in self._bins]}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> PiecewiseLinearEncoding:
        """A PiecewiseLinearEncoding of ``spec``.

        Parameters
        ----------
        spec : dict
            As ``spec()`` writes it.
        dtype : numpy.dtype
            The layer's dtype, float32 or float64.

        Returns
        -------
        PiecewiseLinearEncoding

        Raises
        ------
        KeyError
            "bins" missing from ``spec``.
        TypeError, ValueError
            Bins the constructor refuses.
        """
        return cls(spec["bins"], dtype=dtype)

    def __repr__(self) -> str:
        return (f"PiecewiseLinearEncoding(<{self.in_features} features, {self.out_features} "
                f"bins>, dtype={self.dtype.name!r})")

    def forward(self, X: Any) -> np.ndarray:
        """The encoding of X, (n_samples, total bins).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Real numbers, converted to the layer's dtype.

        Returns
        -------
        ndarray of shape (n_samples, total bins)

        Raises
        ------
        TypeError
            X does not hold real numbers.
        ValueError
            X is not 2-D or has another width.
        """
        X = as_input(X, self.dtype, self.in_features)
        A = np.empty((X.shape[0], self.out_features), dtype=self.dtype)
        if X.shape[0]:
            _embed.ple_forward_into(X, self._feat, self._coef, A)
        self._cache = X
        return A

    def backward(self, dA: Any) -> np.ndarray:
        """dX for dA = dL/dA of the last forward (no parameters).

        Parameters
        ----------
        dA : array-like of shape (n_samples, total bins)

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
        X, D = last_input_and_gradient(self, dA)
        dX = np.zeros_like(X)
        if X.shape[0]:
            _embed.ple_backward_into(X, self._feat, self._coef, D, dX)
        return dX


class CategoricalEmbedding(Layer):
    """Embeddings of integer-coded categorical columns, ``torch.nn.Embedding`` per
    column: X's ``columns`` hold codes 0..cardinality−1, each replaced by its row of
    the column's table; the output is the other (numeric) columns in their order, then
    each coded column's ``dim`` values, in ``columns`` order. It reads the model's
    input, so it is a model's first layer (not inside a Residual). A code that is not
    an integer in range (an unseen category, NaN, 1.5) is a ValueError naming the
    cell, from every call that takes X.

    Parameters
    ----------
    n_features : int
        X's width (numeric and coded columns).
    columns : sequence of int
        The coded columns, distinct, in [0, n_features); at least one.
    cardinalities : int or sequence of int
        Each coded column's number of categories (>= 1); one int for all.
    dim : int or sequence of int
        Each coded column's embedding width (>= 1); one int for all.
    dtype : {"float32", "float64"}, default "float32"
    seed : None, int or numpy.random.Generator
        The tables' initial N(0, 1) draw (``torch.nn.Embedding``'s).

    Attributes
    ----------
    tables : list of ndarray of shape (cardinality, dim)
        The live parameters (``parameters()``), in ``columns`` order.

    Raises
    ------
    TypeError
        Non-integer sizes or columns; an unknown dtype.
    ValueError
        Sizes < 1, columns repeated or out of range, lists of other lengths than
        ``columns``.
    """

    kind = "categorical_embedding"
    checks_input = True

    def __init__(self, n_features: int, columns: Any, cardinalities: Any, dim: Any, *,
                 dtype: Any = "float32", seed: Any = None) -> None:
        self.in_features = positive_int(n_features, "n_features")
        self.columns = positive_ints(columns, "columns", None, low=0)
        if not self.columns:
            raise ValueError("columns must name at least one coded column")
        C = len(self.columns)
        if len(set(self.columns)) != C or max(self.columns) >= self.in_features:
            raise ValueError(f"columns must be distinct columns of X in [0, {self.in_features}), "
                             f"got {list(self.columns)}")
        self.cardinalities = positive_ints(cardinalities, "cardinalities", C)
        self.dims = positive_ints(dim, "dim", C)
        self.dtype = check.float_dtype(dtype)
        self.out_features = self.in_features - C + sum(self.dims)
        check.blas_dims(out_features=self.out_features,
                        table_rows=max(self.cardinalities))
        self._layout = layout(self.in_features, self.columns, self.cardinalities, self.dims)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._params = [np.ascontiguousarray(rng.standard_normal((c, d)), dtype=self.dtype)
                        for c, d in zip(self.cardinalities, self.dims)]
        self._grads = [np.zeros_like(p) for p in self._params]
        self._cache: np.ndarray | None = None

    @property
    def tables(self) -> list[np.ndarray]:
        """The live tables (write into them; the list is a copy)."""
        return list(self._params)

    def parameters(self) -> list[np.ndarray]:
        """The tables, in ``columns`` order."""
        return list(self._params)

    def gradients(self) -> list[np.ndarray]:
        """Aligned with ``parameters()``."""
        return list(self._grads)

    def parameter_names(self) -> tuple[str, ...]:
        """("table0", "table1", ...)."""
        return tuple(f"table{j}" for j in range(len(self._params)))

    def penalized(self) -> tuple[bool, ...]:
        """None (the L2 penalty is on weights; tables are lookups, as biases)."""
        return (False,) * len(self._params)

    def engine_constants(self) -> tuple[float, ...]:
        """(the number of coded columns,)."""
        return (float(len(self.columns)),)

    def engine_buffers(self) -> tuple[np.ndarray, ...]:
        """(layout,): the numeric columns, then (column, cardinality, dim) per coded one."""
        return (self._layout,)

    def check_input(self, X: np.ndarray, name: str = "X") -> None:
        """Raise ValueError naming the first cell of a coded column that is not an
        integer code in [0, cardinality) (``fastbp._codes.check_codes``).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            The model's converted input.
        name : str, default "X"
            The argument's name in the message.

        Raises
        ------
        ValueError
            A code out of range, not an integer, or not finite.
        """
        check_codes(X, self.columns, self.cardinalities, name)

    def spec(self) -> dict[str, Any]:
        """{"kind": "categorical_embedding", "n_features", "columns", "cardinalities",
        "dims"}."""
        return {"kind": self.kind, "n_features": self.in_features,
                "columns": list(self.columns), "cardinalities": list(self.cardinalities),
                "dims": list(self.dims)}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], dtype: np.dtype) -> CategoricalEmbedding:
        """A CategoricalEmbedding of ``spec`` (its tables drawn, to be overwritten).

        Parameters
        ----------
        spec : dict
            As ``spec()`` writes it.
        dtype : numpy.dtype
            The layer's dtype, float32 or float64.

        Returns
        -------
        CategoricalEmbedding

        Raises
        ------
        KeyError
            A key missing from ``spec``.
        TypeError, ValueError
            Values the constructor refuses.
        """
        return cls(spec["n_features"], spec["columns"], spec["cardinalities"], spec["dims"],
                   dtype=dtype, seed=0)

    def __repr__(self) -> str:
        return (f"CategoricalEmbedding({self.in_features}, columns={list(self.columns)}, "
                f"cardinalities={list(self.cardinalities)}, dim={list(self.dims)}, "
                f"dtype={self.dtype.name!r})")

    def forward(self, X: Any) -> np.ndarray:
        """The numeric columns, then the coded columns' embeddings.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Real numbers, converted to the layer's dtype; the coded columns integer
            codes.

        Returns
        -------
        ndarray of shape (n_samples, out_features)

        Raises
        ------
        TypeError
            X does not hold real numbers.
        ValueError
            X is not 2-D, has another width, or holds an invalid code.
        """
        X = as_input(X, self.dtype, self.in_features)
        self.check_input(X)
        A = np.empty((X.shape[0], self.out_features), dtype=self.dtype)
        if X.shape[0]:
            _embed.categorical_forward_into(X, self._layout, self._params, A)
        self._cache = X
        return A

    def backward(self, dA: Any) -> np.ndarray:
        """dX for dA = dL/dA of the last forward (0 in the coded columns); fills the
        tables' gradients.

        Parameters
        ----------
        dA : array-like of shape (n_samples, out_features)

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
        X, D = last_input_and_gradient(self, dA)
        dX = np.zeros_like(X)
        for g in self._grads:
            g.fill(0)
        if X.shape[0]:
            _embed.categorical_backward_into(X, self._layout, D, self._grads, dX)
        return dX
