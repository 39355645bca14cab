"""Integer-coded categorical columns (CategoricalEmbedding): the check of the codes and
the layout the kernels read, in one place for the layer, ``fastbp.ops`` and
``fastbp.reference``."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastbp import _validation as check


def check_codes(X: np.ndarray, columns: Sequence[int], cardinalities: Sequence[int],
                name: str = "X") -> None:
    """Raise ValueError naming the first cell of a coded column that is not an integer
    code in [0, cardinality) (an unseen category, a fraction, NaN)."""
    for col, card in zip(columns, cardinalities):
        v = X[:, col]
        bad = ~((v >= 0) & (v < card) & (v == np.floor(v)))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name}[{i}, {col}] = {float(v[i])!r} is not a code of categorical "
                             f"column {col} (an integer in 0..{card - 1}): an unseen or "
                             "non-integer category")


def layout(n_features: int, columns: Sequence[int], cardinalities: Sequence[int],
           dims: Sequence[int]) -> np.ndarray:
    """The kernels' layout (intp): the numeric columns in order, then (column,
    cardinality, dim) per coded column."""
    coded = set(columns)
    numeric = [c for c in range(n_features) if c not in coded]
    return np.array(numeric + [v for c, k, d in zip(columns, cardinalities, dims)
                               for v in (c, k, d)], dtype=np.intp)


def categorical_args(X: Any, columns: Any, tables: Any
                     ) -> tuple[np.ndarray, list[int], list[np.ndarray]]:
    """The ops' X (n, F) with valid codes, its coded columns (distinct, in range) and
    their (cardinality, dim) tables, of X's dtype."""
    X = check.matrix(X, "X")
    if isinstance(columns, (str, bytes)) or not hasattr(columns, "__len__") or not len(columns):
        raise TypeError("columns must be a non-empty sequence of column indices")
    cols = [check.int_in_range(c, f"columns[{i}]", 0, X.shape[1]) for i, c in enumerate(columns)]
    if len(set(cols)) != len(cols):
        raise ValueError(f"columns must be distinct, got {cols}")
    if not isinstance(tables, (list, tuple)) or len(tables) != len(cols):
        raise TypeError(f"tables must be a list of {len(cols)} arrays (one per coded column)")
    tabs = [check.float_array(t, f"tables[{j}]", 2, X.dtype) for j, t in enumerate(tables)]
    for j, t in enumerate(tabs):
        if 0 in t.shape:
            raise ValueError(f"tables[{j}] must have at least one row and column, got {t.shape}")
    check_codes(X, cols, [t.shape[0] for t in tabs])
    return X, cols, tabs
