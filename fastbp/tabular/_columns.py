"""Real tabular input for the tabular estimators: ``TableEncoder``.

A table (a pandas DataFrame, or a 2-D NumPy array with ``categorical_features``)
becomes the network's float matrix, learned on the training rows:

- a numeric column: missing values (NaN, None, pd.NA) replaced by the training
  median, then mapped through its normal-quantile curve: the piecewise-linear map
  from the training quantiles at levels 0, 1/(q−1), ..., 1 to the standard normal's
  quantiles at those levels (clipped at 1e-7 and 1 − 1e-7), flat outside the
  training range (the knots of scikit-learn's ``QuantileTransformer(
  output_distribution="normal")``, interpolated linearly in the output, so that the
  map is the same few operations in NumPy, ONNX and C). A column that had missing
  values in training gets a 0/1 indicator column after it. A column constant in
  training is dropped.
- a categorical column: one-hot over the training categories (and a "missing"
  category when training had missing values); a category not seen in training is
  all zeros.

``chunks`` gives the output columns per input feature (TabM's first scaling shares
one value per chunk).

``scheme="robust"`` is RealMLP's (pytabkit's RealMLP-TD preprocessing): a numeric column
is centred on its training median, scaled by 1/(q75 − q25) (2/(max − min) when the
quartiles tie, 0 when the column is constant) and smoothly clipped,
x/√(1 + (x/3)²); missing values become the median (0 after centring) plus an indicator.
A categorical column of at most two categories becomes one ±1 column (missing and
unseen 0; a single category: +1, missing −1), of up to ``max_one_hot`` − 1 categories
one-hot (missing and unseen all zeros), of more an integer code column for an
embedding (0: missing or unseen, 1..C the categories). The encoded matrix holds the
numeric values first (the PBLD embedding reads them), then the other columns in
table order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = ["TableEncoder"]

_CLIP = 1e-7   # QuantileTransformer's clip of the levels before the normal quantile


def _is_frame(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


def _is_missing(v: Any) -> bool:
    """Whether a value of an object column is missing: None, NaN, pd.NA, NaT or the
    empty text (which the exports' text inputs use for a missing value)."""
    if v is None or (isinstance(v, str) and v == ""):
        return True
    try:
        return bool(v != v)   # NaN, NaT
    except (TypeError, ValueError):   # pd.NA's comparison raises in bool()
        return True


def _missing(values: np.ndarray) -> np.ndarray:
    """Which entries of an object column are missing (``_is_missing``)."""
    return np.fromiter((_is_missing(v) for v in values), dtype=bool, count=len(values))


def _category_key(v: Any) -> str:
    """The category a value belongs to, as text (also what a file stores)."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))   # 3.0 and 3 are one category
    return str(v)


@dataclass
class _Numeric:
    median: float
    knots: np.ndarray        # increasing training quantiles
    values: np.ndarray       # the normal quantiles at them
    indicator: bool          # a 0/1 missing column follows


@dataclass
class _Categorical:
    categories: list[str]    # one-hot order
    missing: bool            # a last "missing" column


@dataclass
class _Robust:
    """RealMLP's numeric column: smooth_clip((x − median)·factor)."""
    median: float
    factor: float
    indicator: bool          # a 0/1 missing column follows (among the extra columns)


@dataclass
class _Binary:
    """RealMLP's column of one or two categories: +1 / −1, missing or unseen 0 (one
    category: +1, missing or unseen −1)."""
    categories: list[str]

    @property
    def values(self) -> tuple[float, ...]:
        """(each category's value..., the missing value)."""
        return (1.0, -1.0, 0.0) if len(self.categories) == 2 else (1.0, -1.0)


@dataclass
class _Coded:
    """RealMLP's embedded column: its code, 0 missing or unseen, 1..C the categories."""
    categories: list[str]


SMOOTH_CLIP = 3.0   # RealMLP's smooth clip: x/sqrt(1 + (x/SMOOTH_CLIP)^2)


def smooth_clip(x: np.ndarray) -> np.ndarray:
    """x/√(1 + (x/3)²) (pytabkit's smooth_clip_func)."""
    return x / np.sqrt(1.0 + (x / SMOOTH_CLIP) ** 2)


def robust_factor(seen: np.ndarray) -> float:
    """1/(q75 − q25) of a column's training values; 2/(max − min) when the quartiles
    tie; 0 for a constant column (pytabkit's RobustScaleFactory, its eps 1e-30)."""
    diff = float(np.quantile(seen, 0.75) - np.quantile(seen, 0.25))
    if diff == 0.0:
        diff = 0.5 * float(seen.max() - seen.min())
    return 0.0 if diff == 0.0 else 1.0 / (diff + 1e-30)


@dataclass
class TableEncoder:
    """Learns the columns of a training table (``fit``) and encodes tables like it.

    Parameters
    ----------
    categorical_features : "auto", sequence of int or str, or boolean mask
        "auto": a DataFrame's category, object, string and boolean columns (none
        for a NumPy array of numbers; an object array's columns holding text); or
        the categorical columns by index or name.
    max_quantiles : int, default 1000
        The most quantile knots per numeric column (max(min(n // 30, 1000), 10),
        TabM's recipe).
    scheme : {"quantile", "robust"}, default "quantile"
        TabM's encoding or RealMLP's (see the module docstring).
    max_one_hot : int, default 9
        "robust": one-hot up to this many categories counting a missing slot
        (pytabkit's ``max_one_hot_cat_size``); more are coded for an embedding.
    """

    categorical_features: Any = "auto"
    max_quantiles: int = 1000
    scheme: str = "quantile"
    max_one_hot: int = 9
    columns_: list[Any] = field(default_factory=list)
    kinds_: list[Any] = field(default_factory=list)   # _Numeric, _Categorical or None

    # ---------------------------------------------------------------- columns
    def _split(self, X: Any, fitting: bool) -> list[np.ndarray]:
        """X's columns as 1-D arrays (object for categorical ones), checked."""
        if _is_frame(X):
            names = list(X.columns)
            if not fitting and (names != self.columns_ if self._frame
                                else len(names) != len(self.columns_)):
                raise ValueError(f"X has columns {names}, the estimator was fitted on "
                                 f"{self.columns_}")
            cols = [X.iloc[:, j] for j in range(X.shape[1])]
            if fitting:
                self.columns_ = names
                self._frame = True
            return [c.to_numpy(dtype=object) if self._is_cat(j, c) else
                    self._frame_numeric(c, names[j]) for j, c in enumerate(cols)]
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {arr.shape}")
        if arr.dtype.kind not in "biufOUS":
            raise TypeError(f"X must hold numbers or categories, got dtype {arr.dtype}")
        if fitting:
            self.columns_ = list(range(arr.shape[1]))
            self._frame = False
        elif arr.shape[1] != len(self.columns_):
            raise ValueError(f"X has {arr.shape[1]} columns, the estimator was fitted on "
                             f"{len(self.columns_)}")
        return [arr[:, j].astype(object) if self._is_cat(j, arr[:, j]) else
                self._numeric(arr[:, j], j) for j in range(arr.shape[1])]

    def _is_cat(self, j: int, col: Any) -> bool:
        if self.kinds_:   # fitted: as in training
            return isinstance(self.kinds_[j], (_Categorical, _Binary, _Coded))
        spec = self.categorical_features
        if isinstance(spec, str) and spec == "auto":
            dtype = getattr(col, "dtype", None)
            if dtype is not None and hasattr(dtype, "kind") and dtype.kind in "biuf":
                return False
            if dtype is not None and str(dtype) in ("category", "string", "boolean", "bool",
                                                    "object", "str") or getattr(
                    dtype, "kind", "") in "OUS":
                values = np.asarray(col, dtype=object)
                return any(isinstance(v, (str, bytes)) for v in values) or \
                    str(dtype) in ("category", "string", "boolean", "bool")
            return False
        return j in self._categorical_indices

    def _frame_numeric(self, col: Any, name: Any) -> np.ndarray:
        """A DataFrame's numeric column as float64, missing values (NaN, pd.NA) as NaN:
        number dtypes (NumPy's or pandas' nullable ones) directly, others through
        objects."""
        if getattr(col.dtype, "kind", "O") in "biuf":
            return np.asarray(col.to_numpy(dtype=np.float64, na_value=np.nan))
        return self._numeric(col.to_numpy(dtype=object), name)

    def _numeric(self, col: np.ndarray, name: Any) -> np.ndarray:
        """A numeric column as float64, missing values as NaN."""
        if col.dtype.kind in "biuf":
            return col.astype(np.float64)
        miss = _missing(col)
        out = np.full(len(col), np.nan)
        try:
            out[~miss] = np.asarray(col[~miss], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column {name!r} holds values that are not numbers; declare it "
                             f"in categorical_features") from exc
        return out

    def _resolve_categorical(self, X: Any) -> None:
        spec = self.categorical_features
        self._categorical_indices: set[int] = set()
        if isinstance(spec, str):
            if spec != "auto":
                raise ValueError(f"categorical_features must be 'auto', a list of column "
                                 f"indices or names, or a boolean mask; got {spec!r}")
            return
        items = list(np.asarray(spec).ravel()) if not isinstance(spec, (list, tuple)) \
            else list(spec)
        names = list(X.columns) if _is_frame(X) else None
        n_cols = X.shape[1]
        if items and all(isinstance(v, (bool, np.bool_)) for v in items):
            if len(items) != n_cols:
                raise ValueError(f"a boolean categorical_features mask needs {n_cols} "
                                 f"entries, got {len(items)}")
            self._categorical_indices = {j for j, v in enumerate(items) if v}
            return
        for v in items:
            if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
                if not -n_cols <= int(v) < n_cols:
                    raise ValueError(f"categorical_features index {v} is out of range for "
                                     f"{n_cols} columns")
                self._categorical_indices.add(int(v) % n_cols)
            elif names is not None and v in names:
                self._categorical_indices.add(names.index(v))
            else:
                raise ValueError(f"categorical_features entry {v!r} is not a column "
                                 f"{'name or ' if names is not None else ''}index of X")

    # ---------------------------------------------------------------- fit / encode
    def fit(self, X: Any) -> TableEncoder:
        """Learn the columns of the training table X.

        Parameters
        ----------
        X : pandas DataFrame or array-like of shape (n_samples, n_features)
            At least two rows.

        Returns
        -------
        TableEncoder
            self.
        """
        self.kinds_ = []
        if not _is_frame(X):
            X = np.asarray(X)
            if X.ndim != 2:
                raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        self._resolve_categorical(X)
        cols = self._split(X, fitting=True)
        n = len(cols[0]) if cols else 0
        if n < 2:
            raise ValueError(f"X needs at least 2 rows, got {n}")
        levels_max = max(min(n // 30, self.max_quantiles), 10)
        kinds: list[Any] = []
        robust = self.scheme == "robust"
        if self.scheme not in ("quantile", "robust"):
            raise ValueError(f"scheme must be 'quantile' or 'robust', got {self.scheme!r}")
        for col in cols:
            if col.dtype == object:
                miss = _missing(col)
                keys = sorted({_category_key(v) for v in col[~miss]})
                if not robust:
                    kinds.append(_Categorical(keys, bool(miss.any())))
                elif not keys or (len(keys) == 1 and not miss.any()):
                    kinds.append(_Categorical([], False))   # constant: no columns
                elif len(keys) <= 2:
                    kinds.append(_Binary(keys))
                elif len(keys) + 1 <= self.max_one_hot:
                    kinds.append(_Categorical(keys, False))
                else:
                    kinds.append(_Coded(keys))
                continue
            if np.isinf(col).any():
                raise ValueError("X holds infinite values; numeric columns take finite "
                                 "values or missing ones (NaN)")
            miss = np.isnan(col)
            seen = col[~miss]
            if robust:
                kinds.append(None if seen.size == 0 or (np.all(seen == seen[0])
                                                        and not miss.any())
                             else _Robust(float(np.median(seen)), robust_factor(seen),
                                          bool(miss.any())))
                continue
            if seen.size == 0 or np.all(seen == seen[0]):
                kinds.append(None if not miss.any() or seen.size == 0 else
                             _Numeric(float(seen[0]), np.array([seen[0]]), np.zeros(1), True))
                continue
            levels = np.linspace(0.0, 1.0, min(levels_max, seen.size))
            knots = np.quantile(seen, levels)
            targets = np.array([NormalDist().inv_cdf(min(max(p, _CLIP), 1 - _CLIP))
                                for p in levels])
            # tied knots: one knot at the mean of their levels' normal quantiles
            uniq, inverse = np.unique(knots, return_inverse=True)
            values = np.bincount(inverse, targets) / np.bincount(inverse)
            kinds.append(_Numeric(float(np.median(seen)), uniq, values, bool(miss.any())))
        self.kinds_ = kinds
        return self

    @property
    def chunks(self) -> list[int]:
        """The encoded columns of each kept feature, in order (an indicator is its own)."""
        out: list[int] = []
        for kind in self.kinds_:
            if isinstance(kind, (_Numeric, _Robust)):
                out += [1, 1] if kind.indicator else [1]
            elif isinstance(kind, _Categorical):
                out.append(len(kind.categories) + kind.missing)
            elif isinstance(kind, (_Binary, _Coded)):
                out.append(1)
        return out

    @property
    def n_outputs(self) -> int:
        """The width of the encoded matrix."""
        return sum(self.chunks)

    def layout(self) -> list[tuple[int, int]]:
        """Per kept column (in table order), (where its first encoded column goes, where
        its indicator goes or -1): the table order, or with the "robust" scheme the
        numeric values first and the other columns after them in table order."""
        robust = self.scheme == "robust"
        n_first = sum(isinstance(k, _Robust) for k in self.kinds_) if robust else 0
        out: list[tuple[int, int]] = []
        at, first = n_first, 0
        for kind in self.kinds_:
            if kind is None:
                continue
            if robust and isinstance(kind, _Robust):
                out.append((first, at if kind.indicator else -1))
                first += 1
                at += kind.indicator
                continue
            width = 1 if isinstance(kind, (_Numeric, _Binary, _Coded)) else \
                len(kind.categories) + kind.missing
            indicator = isinstance(kind, _Numeric) and kind.indicator
            out.append((at, at + 1 if indicator else -1))
            at += width + indicator
        return out

    @property
    def n_numeric_first(self) -> int:
        """The encoded matrix's leading numeric value columns ("robust"; else 0)."""
        return sum(isinstance(k, _Robust) for k in self.kinds_) if self.scheme == "robust" else 0

    @property
    def coded(self) -> list[tuple[int, int]]:
        """(encoded column, cardinality with the missing code) of each coded column."""
        places = self.layout()
        kept = [k for k in self.kinds_ if k is not None]
        return [(p[0], len(k.categories) + 1) for p, k in zip(places, kept)
                if isinstance(k, _Coded)]

    def transform(self, X: Any, dtype: Any = np.float64) -> np.ndarray:
        """The encoded matrix of a table like the training one.

        Parameters
        ----------
        X : pandas DataFrame or array-like
            The training table's columns (names and order for a DataFrame).
        dtype : numpy dtype, default float64

        Returns
        -------
        ndarray of shape (n_samples, n_outputs)
        """
        cols = self._split(X, fitting=False)
        n = len(cols[0]) if cols else 0
        out = np.zeros((n, self.n_outputs), dtype=np.float64)
        robust: list[tuple[np.ndarray, _Robust, int, int]] = []
        places = iter(self.layout())
        for col, kind in zip(cols, self.kinds_):
            if kind is None:
                continue
            at, ind = next(places)
            if isinstance(kind, (_Numeric, _Robust)):
                if col.dtype == object:
                    raise ValueError("a numeric column of the training table holds text")
                if isinstance(kind, _Robust):   # encoded together below
                    robust.append((col, kind, at, ind))
                    continue
                miss = self._numeric_missing(col)
                filled = np.where(miss, kind.median, col)
                out[:, at] = np.interp(filled, kind.knots, kind.values) \
                    if kind.knots.size > 1 else 0.0
                if ind >= 0:
                    out[:, ind] = miss
                continue
            codes = self._codes(col, kind.categories)   # -2 missing, -1 unseen
            if isinstance(kind, _Categorical):
                hot = codes >= 0
                out[np.flatnonzero(hot), at + codes[hot]] = 1.0
                if kind.missing:
                    out[codes == -2, at + len(kind.categories)] = 1.0
            elif isinstance(kind, _Binary):
                values = np.asarray(kind.values)
                out[:, at] = np.where(codes >= 0, values[np.maximum(codes, 0)], values[-1])
            else:   # _Coded
                out[:, at] = np.maximum(codes + 1, 0)
        if robust:   # one pass over all of RealMLP's numeric columns (n × r)
            values = np.column_stack([r[0] for r in robust])
            medians = np.array([r[1].median for r in robust])
            miss = self._numeric_missing(values)
            filled = np.where(miss, medians, values)
            ats = [r[2] for r in robust]
            out[:, ats] = smooth_clip((filled - medians) * np.array([r[1].factor
                                                                     for r in robust]))
            flagged = [j for j, r in enumerate(robust) if r[3] >= 0]
            if flagged:
                out[:, [robust[j][3] for j in flagged]] = miss[:, flagged]
        return out.astype(dtype, copy=False)

    @staticmethod
    def _numeric_missing(values: np.ndarray) -> np.ndarray:
        """Where numeric values are missing (NaN); infinite values are an error."""
        if np.isinf(values).any():
            raise ValueError("X holds infinite values; numeric columns take finite "
                             "values or missing ones (NaN)")
        return np.isnan(values)

    @staticmethod
    def _codes(col: np.ndarray, categories: list[str]) -> np.ndarray:
        """Each value's index in ``categories``; -2 missing, -1 unseen.

        Worked out once per distinct value: a categorical column repeats a few values,
        and the per-value tests cost microseconds each. The cache is keyed by type and
        value, so that True and 1 (equal in Python, two categories here) stay apart; a
        value that cannot be hashed or compared is worked out on its own."""
        index = {key: i for i, key in enumerate(categories)}

        def code(v: Any) -> int:
            return -2 if _is_missing(v) else index.get(_category_key(v), -1)

        seen: dict[tuple[type, Any], int] = {}
        out = np.empty(len(col), dtype=np.intp)
        for i, v in enumerate(col):
            key = (type(v), v)
            try:
                c = seen.get(key)
            except TypeError:   # unhashable, or pd.NA compared with a colliding key
                out[i] = code(v)
                continue
            if c is None:
                c = seen[key] = code(v)
            out[i] = c
        return out

    # ---------------------------------------------------------------- files
    def to_spec(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(a JSON-able description, the arrays) for a file (no pickle)."""
        kinds: list[Any] = []
        arrays: dict[str, np.ndarray] = {}
        for j, kind in enumerate(self.kinds_):
            if isinstance(kind, _Numeric):
                kinds.append({"kind": "numeric", "median": kind.median,
                              "indicator": kind.indicator})
                arrays[f"encoder/{j}/knots"] = kind.knots
                arrays[f"encoder/{j}/values"] = kind.values
            elif isinstance(kind, _Categorical):
                kinds.append({"kind": "categorical", "categories": kind.categories,
                              "missing": kind.missing})
            elif isinstance(kind, _Robust):
                kinds.append({"kind": "robust", "median": kind.median, "factor": kind.factor,
                              "indicator": kind.indicator})
            elif isinstance(kind, (_Binary, _Coded)):
                kinds.append({"kind": "binary" if isinstance(kind, _Binary) else "coded",
                              "categories": kind.categories})
            else:
                kinds.append({"kind": "dropped"})
        columns = [c if isinstance(c, (str, int)) else str(c) for c in self.columns_]
        return {"columns": columns, "frame": self._frame, "kinds": kinds,
                "scheme": self.scheme, "max_one_hot": self.max_one_hot}, arrays

    @classmethod
    def from_spec(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> TableEncoder:
        """The encoder a file describes (``to_spec``'s parts).

        Parameters
        ----------
        spec : dict
            The description.
        arrays : dict of str to ndarray
            The file's arrays; the ones read are removed.

        Returns
        -------
        TableEncoder
        """
        enc = cls(scheme=spec.get("scheme", "quantile"),
                  max_one_hot=int(spec.get("max_one_hot", 9)))
        if enc.scheme not in ("quantile", "robust"):
            raise ValueError(f"unknown encoding scheme {enc.scheme!r}")
        enc.columns_ = list(spec["columns"])
        enc._frame = bool(spec["frame"])
        kinds: list[Any] = []
        for j, k in enumerate(spec["kinds"]):
            if k["kind"] == "numeric":
                knots = np.asarray(arrays.pop(f"encoder/{j}/knots"), dtype=np.float64)
                values = np.asarray(arrays.pop(f"encoder/{j}/values"), dtype=np.float64)
                if knots.ndim != 1 or knots.shape != values.shape or knots.size == 0 \
                        or np.any(np.diff(knots) <= 0) or not np.isfinite(values).all():
                    raise ValueError(f"column {j}'s quantile curve is malformed")
                kinds.append(_Numeric(float(k["median"]), knots, values,
                                      bool(k["indicator"])))
            elif k["kind"] in ("categorical", "binary", "coded"):
                cats = k["categories"]
                if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats) \
                        or (k["kind"] == "binary" and not 1 <= len(cats) <= 2):
                    raise ValueError(f"column {j}'s categories must be a list of strings")
                kinds.append(_Categorical(list(cats), bool(k["missing"]))
                             if k["kind"] == "categorical" else
                             _Binary(list(cats)) if k["kind"] == "binary" else _Coded(list(cats)))
            elif k["kind"] == "robust":
                median, factor = float(k["median"]), float(k["factor"])
                if not (np.isfinite(median) and np.isfinite(factor) and factor >= 0):
                    raise ValueError(f"column {j}'s robust scaling is malformed")
                kinds.append(_Robust(median, factor, bool(k["indicator"])))
            elif k["kind"] == "dropped":
                kinds.append(None)
            else:
                raise ValueError(f"unknown column kind {k['kind']!r}")
        enc.kinds_ = kinds
        return enc

    _frame: bool = False
