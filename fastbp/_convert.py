"""Input conversion for layers and models (inputs are converted, never truncated).

Layers and models accept array-likes of any real dtype and any memory order
and convert them to C-contiguous arrays of the model's dtype; complex, object
and string inputs, wrong shapes and non-integral class labels raise.
"""
from __future__ import annotations

import mmap
from typing import Any

import numpy as np

from fastbp._kernels.losses import labels_in_range
from fastbp._validation import MAX_DIM, blas_dims


def own_writable(a: np.ndarray) -> np.ndarray:
    """``a`` itself when it is a writable C-contiguous array in this process's own memory,
    else a copy that is. What a model or optimizer restores from a pickle must be its own
    to train: plain pickle and deepcopy give such arrays (kept, so that arrays shared by a
    model and its optimizer stay shared), but joblib's process backends memory-map large
    arrays when they unpickle them, read-only by default or shared between workers."""
    base: Any = a
    while base is not None:
        if isinstance(base, (np.memmap, mmap.mmap)):
            break
        base = getattr(base, "base", None)
    else:
        if a.flags.writeable and a.flags.c_contiguous:
            return a
    return np.array(a, order="C")  # a copy, a base-class ndarray


def as_input(X: Any, dtype: np.dtype, n_features: int, name: str = "X") -> np.ndarray:
    """X as a C-contiguous (n_samples, n_features) array of the model's dtype."""
    if type(X) is np.ndarray and X.dtype == dtype and X.ndim == 2 and X.shape[1] == n_features \
            and X.flags.c_contiguous and X.shape[0] <= MAX_DIM:
        return X  # the common case, kept cheap: train_step is called per mini-batch
    if hasattr(X, "tocsr") or type(X).__name__ == "SparseRows":
        raise TypeError(f"{name} is sparse: this takes a dense array (a model takes sparse "
                        f"input through its Dense first layer)")
    arr = np.asarray(X)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (bool, int or float), got dtype {arr.dtype}")
    if arr.ndim == 1 and n_features == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-dimensional (n_samples, {n_features}), got shape {arr.shape}")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} features (columns), got shape {arr.shape}")
    # Rows reach BLAS as a 32-bit int in the compiled engine.
    blas_dims(**{f"{name} rows (n_samples)": arr.shape[0]})
    return np.ascontiguousarray(arr, dtype=dtype)


def as_target(y: Any, loss: str, dtype: np.dtype, n_samples: int, n_outputs: int,
              name: str = "y") -> np.ndarray:
    """The target in the form the loss kernel takes.

    cross_entropy: int labels (n,) in [0, n_outputs) as np.intp (integral floats are
    accepted), or class probabilities (n, n_outputs); the other losses: values of
    shape (n, n_outputs), with (n,) taken as (n, 1).
    """
    arr = y if type(y) is np.ndarray else np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.shape[:1] != (n_samples,):
        raise ValueError(f"{name} must have {n_samples} rows like X, got shape {arr.shape}")
    if loss == "cross_entropy" and arr.ndim == 1:
        return as_labels(arr, n_outputs, name)
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr.reshape(-1, 1)
    if arr.shape != (n_samples, n_outputs):
        raise ValueError(f"{name} must have shape ({n_samples}, {n_outputs})"
                         f"{' or (n,) labels' if loss == 'cross_entropy' else ''}, got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


def as_labels(arr: np.ndarray, n_classes: int, name: str = "y") -> np.ndarray:
    """Class labels (n,) as np.intp in [0, n_classes)."""
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if np.any(bad):
            raise ValueError(f"{name} holds class labels and must be whole numbers, "
                             f"got values such as {arr[bad][:3]}")
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):  # before the int cast
            raise ValueError(f"{name} class labels must lie in [0, {n_classes}), "
                             f"got values in [{arr.min()}, {arr.max()}]")
    labels = np.ascontiguousarray(arr, dtype=np.intp)
    if not labels_in_range(labels, n_classes):
        raise ValueError(f"{name} class labels must lie in [0, {n_classes}), "
                         f"got values in [{labels.min()}, {labels.max()}]")
    return labels
