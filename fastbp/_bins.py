"""Bins of numeric features for the piecewise-linear encoding (rtdl_num_embeddings'):
their check, ``compute_bins`` (quantiles) and the per-column table the kernels read.

One place for each: ``fastbp.ops``, ``fastbp.reference``, the layer and the exports
all take their bins through ``checked_bins``; the kernels and the exports read
``ple_table``'s columns.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fastbp import _validation as check

#: the most edges a feature may have (a file's spec holds them as JSON numbers)
MAX_EDGES = 1 << 16


def checked_bins(bins: Any, dtype: np.dtype, name: str = "bins") -> list[np.ndarray]:
    """``bins`` as a list of 1-D arrays of ``dtype``, one per feature, each with at
    least two finite edges, strictly increasing in ``dtype`` (edges that collapse when
    rounded to float32 are refused, not merged)."""
    if isinstance(bins, np.ndarray) or not isinstance(bins, (list, tuple)) or not bins:
        raise TypeError(f"{name} must be a non-empty list of 1-D arrays of bin edges (one "
                        f"per feature, as compute_bins returns), got {type(bins).__name__}")
    out = []
    for i, edges in enumerate(bins):
        try:
            e = np.asarray(edges)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}[{i}] must be a 1-D array of real numbers") from exc
        if e.dtype == object or e.dtype.kind not in "iuf" or e.dtype == bool:
            raise TypeError(f"{name}[{i}] must hold real numbers, got dtype {e.dtype}")
        if e.ndim != 1 or not 2 <= e.size <= MAX_EDGES:
            raise ValueError(f"{name}[{i}] must be 1-D with 2 to {MAX_EDGES} edges, got shape "
                             f"{e.shape}")
        e = np.ascontiguousarray(e, dtype=dtype)
        if not np.all(np.isfinite(e)):
            raise ValueError(f"{name}[{i}] must hold finite edges (in {dtype})")
        if not np.all(e[1:] > e[:-1]):
            raise ValueError(f"{name}[{i}] must be strictly increasing (in {dtype})")
        out.append(e)
    return out


def compute_bins(X: Any, n_bins: int = 48) -> list[np.ndarray]:
    """Quantile bin edges of each column of X for ``PiecewiseLinearEncoding``:
    ``rtdl_num_embeddings.compute_bins(X, n_bins)`` (its quantile form): the
    ``n_bins + 1`` quantiles at 0, 1/n_bins, ..., 1 (linear interpolation), repeated
    values removed, so a feature gets at most ``n_bins`` bins.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The training features: finite, at least two rows, every column with at least
        two distinct values. float32 input gives float32 edges, anything else float64.
    n_bins : int, default 48
        More than 1 and fewer than n_samples.

    Returns
    -------
    list of ndarray
        One strictly increasing 1-D array of edges per feature.

    Raises
    ------
    TypeError
        X does not hold real numbers; n_bins not an int.
    ValueError
        X not 2-D, non-finite, too few rows, a constant column; n_bins out of range.
    """
    dtype = np.dtype(np.float32) if getattr(X, "dtype", None) == np.float32 \
        else np.dtype(np.float64)
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 2 or X.shape[1] == 0:
        raise ValueError(f"X must be 2-dimensional with at least one column, got shape "
                         f"{X.shape}")
    X = X.astype(np.float64)
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"X must have at least two rows, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite (no NaN or inf)")
    if np.any(np.all(X == X[0], axis=0)):
        raise ValueError("every column of X must hold at least two distinct values")
    n_bins = check.int_in_range(n_bins, "n_bins", 2, n)
    q = np.quantile(X, np.linspace(0.0, 1.0, n_bins + 1), axis=0).T
    return [np.unique(np.asarray(col, dtype=dtype)) for col in q]


def ple_table(bins: list[np.ndarray], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(feat, coef) of checked bins: output column c reads X[:, feat[c]] and is
    clamp(b + w·x, lo, hi) with coef = [w, b, lo, hi] (4 blocks of m = total bins),
    w = 1/width and b = −left edge/width computed in ``dtype`` as rtdl's; a feature's
    first bin is clamped above at 1, its middle ones to [0, 1], its last below at 0,
    a lone bin not at all (±inf: no bound)."""
    feats, ws, bs, los, his = [], [], [], [], []
    for f, e in enumerate(bins):
        width = np.diff(e)
        w = (1 / width).astype(dtype)
        b = (-e[:-1] / width).astype(dtype)
        m = w.size
        lo = np.full(m, 0.0)
        hi = np.full(m, 1.0)
        lo[0], hi[-1] = -np.inf, np.inf   # (a lone bin: both, so unclamped)
        feats.append(np.full(m, f, dtype=np.intp))
        ws.append(w)
        bs.append(b)
        los.append(lo)
        his.append(hi)
    feat = np.concatenate(feats)
    coef = np.concatenate([np.concatenate(ws), np.concatenate(bs), np.concatenate(los),
                           np.concatenate(his)]).astype(dtype)
    return feat, coef


def ple_args(X: Any, bins: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """The ops' X (n, F) and its F features' checked bins, in X's dtype."""
    X = check.matrix(X, "X")
    bins = checked_bins(bins, X.dtype)
    if len(bins) != X.shape[1]:
        raise ValueError(f"bins must hold one array of edges per column of X ({X.shape[1]}), "
                         f"got {len(bins)}")
    return X, bins
