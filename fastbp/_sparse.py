"""Sparse input: scipy.sparse matrices (any format) as the compiled first Dense layer
reads them, a ``SparseRows`` (fastbp._kernels.dense): CSR arrays of the model's
dtype, private and checked once. Nothing here ever forms the dense matrix. This
module imports no other fastbp module but the kernels (fastbp._validation imports it).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse

from fastbp._kernels.dense import SparseRows

__all__ = ["SparseRows", "is_sparse", "as_sparse_rows"]


def is_sparse(X: Any) -> bool:
    """Whether X is a scipy.sparse matrix or array, or an already converted SparseRows."""
    return isinstance(X, SparseRows) or scipy.sparse.issparse(X)


def as_sparse_rows(X: Any, dtype: np.dtype, n_features: int, name: str = "X") -> SparseRows:
    """X (scipy.sparse, any format: converted to CSR as scikit-learn does) as the rows the
    compiled kernels read: values of ``dtype``, finite (always checked: the check reads
    only the stored values), ``n_features`` columns. (The row count's limit is the
    caller's check, as for dense input: fastbp._validation.blas_dims.)"""
    if isinstance(X, SparseRows):
        if X.n_cols != n_features:
            raise ValueError(f"{name} must have {n_features} features (columns), got shape "
                             f"{X.shape}")
        if X.dtype == dtype:
            return X
        return SparseRows(X.data.astype(dtype), X.indptr, X.indices, X.n_rows, X.n_cols)
    if len(X.shape) != 2:
        raise ValueError(f"{name} must be 2-dimensional (n_samples, {n_features}), got shape "
                         f"{X.shape}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (bool, int or float), got dtype "
                        f"{X.dtype}")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} features (columns), got shape "
                         f"{X.shape}")
    csr = X.tocsr()
    with np.errstate(over="ignore"):
        data = np.asarray(csr.data, dtype=dtype)
    if not np.isfinite(data).all():
        raise ValueError(f"{name} contains NaN or infinite values (or values too large "
                         f"for {np.dtype(dtype)})")
    return SparseRows(data, csr.indptr, csr.indices, csr.shape[0], csr.shape[1])
