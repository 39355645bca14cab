"""Every check the compiled kernels rely on, in one place.

``fastbp.ops`` and ``fastbp.reference`` call these at the top of each function,
so both reject bad input identically; after them the kernels may run without
bounds checks. Conventions: a wrong kind of object or dtype raises
``TypeError``; a wrong shape, size or value raises ``ValueError``. Every
message names the argument, what was expected and what was given.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastbp._table import ACTIVATIONS as ACTIVATIONS  # re-exported: ops, reference, fastbp
from fastbp._table import LOSSES as LOSSES
from fastbp._sparse import as_sparse_rows, is_sparse

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: largest step count (the compiled step counter is a C long long)
MAX_STEP = 2**62
#: largest matrix dimension (BLAS takes 32-bit ints)
MAX_DIM = 2**31 - 1


def activation_code(name: Any) -> int:
    """The kernel code of an activation name (its index in ACTIVATIONS)."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
    return ACTIVATIONS.index(name)


def loss_code(name: Any) -> int:
    """The kernel code of a loss name (its index in LOSSES)."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
    return LOSSES.index(name)


def float_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """np.float32 or np.float64 from a dtype-like; anything else is a TypeError."""
    if dtype is None:  # np.dtype(None) would silently mean float64
        raise TypeError(f"{name} must be float32 or float64, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


def float_array(x: Any, name: str, ndim: int, dtype: np.dtype | None = None) -> np.ndarray:
    """A C-contiguous float32/float64 array of ``ndim`` dimensions.

    Inputs that are only read may be strided, Fortran-ordered or read-only:
    they are copied to C order when needed (never cast: dtype must match).
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} like the other arrays, got {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {x.shape}")
    return np.ascontiguousarray(x)


def matrix(x: Any, name: str, dtype: np.dtype | None = None) -> np.ndarray:
    """A 2-D float array with at least one column (rows may be zero)."""
    x = float_array(x, name, 2, dtype)
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column, got shape {x.shape}")
    return x


def same_shape(x: np.ndarray, name: str, ref: np.ndarray, ref_name: str) -> None:
    if x.shape != ref.shape:
        raise ValueError(f"{name} must have the shape of {ref_name} {ref.shape}, got {x.shape}")


def non_empty_batch(x: np.ndarray, name: str) -> None:
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample, got shape {x.shape}")


def activation_args(name: Any, Z: Any) -> tuple[int, np.ndarray]:
    return activation_code(name), matrix(Z, "Z")


def activation_backward_args(name: Any, Z: Any, A: Any, dA: Any
                             ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    code = activation_code(name)
    Z = matrix(Z, "Z")
    A = matrix(A, "A", Z.dtype)
    dA = matrix(dA, "dA", Z.dtype)
    same_shape(A, "A", Z, "Z")
    same_shape(dA, "dA", Z, "Z")
    return code, Z, A, dA


def layer_input(X: Any) -> Any:
    """A Dense layer's X for the ops: a 2-D float array (as ``matrix``), or a
    scipy.sparse float32/float64 matrix as a SparseRows (fastbp._sparse; not cast)."""
    if not is_sparse(X):
        return matrix(X, "X")
    if X.dtype not in FLOAT_DTYPES:
        raise TypeError(f"X must have dtype float32 or float64, got {X.dtype}")
    if len(X.shape) != 2 or X.shape[1] == 0:
        raise ValueError(f"X must be 2-dimensional with at least one column, got shape "
                         f"{X.shape}")
    return as_sparse_rows(X, X.dtype, X.shape[1])


def dense_forward_args(X: Any, W: Any, b: Any, activation: Any
                       ) -> tuple[int, Any, np.ndarray, np.ndarray]:
    code = activation_code(activation)
    X = layer_input(X)
    W = matrix(W, "W", X.dtype)
    b = float_array(b, "b", 1, X.dtype)
    if W.shape[0] != X.shape[1]:
        raise ValueError(f"W must have shape (in_features={X.shape[1]}, out_features) "
                         f"to match X {X.shape}, got {W.shape}")
    if X.shape[1] == 0 or W.shape[0] == 0:
        raise ValueError(f"X must have at least one feature, got shape {X.shape}")
    if b.shape != (W.shape[1],):
        raise ValueError(f"b must have shape ({W.shape[1]},) to match W {W.shape}, got {b.shape}")
    blas_dims(n_samples=X.shape[0], in_features=X.shape[1], out_features=W.shape[1])
    return code, X, W, b


def clip_grad_norm(value: Any, name: str = "clip_grad_norm") -> float:
    """None (no clipping: 0.0) or the largest global gradient norm, finite and > 0."""
    if value is None:
        return 0.0
    return finite_scalar(value, name, low=0.0, low_open=True)


def label_smoothing(value: Any, name: str = "label_smoothing") -> float:
    """ε of cross-entropy's label smoothing: a real number in [0, 1] (PyTorch's range)."""
    return finite_scalar(value, name, low=0.0, high=1.0)


def smoothed_targets(labels: np.ndarray | None, targets: np.ndarray | None, k: int,
                     eps: float, dtype: np.dtype) -> np.ndarray:
    """The class probabilities (1 − ε)·y + ε/k of labels (one-hot) or of probability
    targets: with them, cross-entropy's value and gradient are those of
    ``torch.nn.CrossEntropyLoss(label_smoothing=ε)``."""
    if targets is None:
        assert labels is not None
        T = np.full((labels.shape[0], k), eps / k, dtype=dtype)
        T[np.arange(labels.shape[0]), labels] += 1.0 - eps
        return T
    return np.ascontiguousarray(targets * (1.0 - eps) + eps / k, dtype=dtype)


def periodic_args(X: Any, frequencies: Any, weight: Any, bias: Any = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """A periodic embedding's X (n, F), frequencies (F, k), weight (F, 2k, d) or, shared
    (lite), (2k, d), and bias (F, d) or (d,) (None: not checked), of one dtype; and
    whether it is lite."""
    X = matrix(X, "X")
    frequencies = float_array(frequencies, "frequencies", 2, X.dtype)
    F, k = X.shape[1], frequencies.shape[1]
    if frequencies.shape[0] != F or k == 0:
        raise ValueError(f"frequencies must have shape ({F}, n_frequencies >= 1) for X "
                         f"{X.shape}, got {frequencies.shape}")
    if not isinstance(weight, np.ndarray) or weight.ndim not in (2, 3):
        raise ValueError("weight must be a 3-D (n_features, 2·n_frequencies, d) or, shared, "
                         "2-D (2·n_frequencies, d) ndarray")
    lite = weight.ndim == 2
    weight = float_array(weight, "weight", weight.ndim, X.dtype)
    d = weight.shape[-1]
    if weight.shape[-2] != 2 * k or d == 0 or (not lite and weight.shape[0] != F):
        raise ValueError(f"weight must have shape {'' if lite else f'({F}, '}{2 * k}, d >= 1"
                         f"{'' if lite else ')'} for {k} frequencies, got {weight.shape}")
    if bias is not None:
        bias = float_array(bias, "bias", 1 if lite else 2, X.dtype)
        if bias.shape != ((d,) if lite else (F, d)):
            raise ValueError(f"bias must have shape {(d,) if lite else (F, d)}, got "
                             f"{bias.shape}")
    blas_dims(n_samples=X.shape[0], width=2 * k, d_embedding=d, out_features=F * d)
    return X, frequencies, weight, bias, lite


def column_scale_args(X: Any, v: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """X (n, d) and a per-column vector ``name`` (d,) of X's dtype (Scale's s,
    ParametricActivation's alpha)."""
    X = matrix(X, "X")
    v = float_array(v, name, 1, X.dtype)
    if v.shape != (X.shape[1],):
        raise ValueError(f"{name} must have shape ({X.shape[1]},) (one value per column of X), "
                         f"got {v.shape}")
    return X, v


def column_scale_backward_args(X: Any, v: Any, name: str, dA: Any, need_dX: Any,
                               F: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                       np.ndarray | None, bool]:
    """A per-column layer's backward arguments: (X, v, dA, F or None, need_dX), dA (and
    F, f(X) of a parametric activation, when given) of X's shape and dtype."""
    X, v = column_scale_args(X, v, name)
    dA = matrix(dA, "dA", X.dtype)
    same_shape(dA, "dA", X, "X")
    if F is not None:
        F = matrix(F, "F", X.dtype)
        same_shape(F, "F", X, "X")
    return X, v, dA, F, flag(need_dX, "need_dX")


def periodic_bias_backward_args(X: Any, frequencies: Any, weight: Any, P: Any, dA: Any,
                                need_dX: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                       np.ndarray, np.ndarray, bool]:
    """A PBLD embedding's backward arguments: (X, frequencies, weight, P, dA, need_dX),
    P (F, n, 2k) and dA (n, F·d + n_in) checked against the others."""
    X, freq, _, W, _ = periodic_bias_args(X, frequencies, None, weight)
    n, (F, k), d = X.shape[0], freq.shape, W.shape[2]
    P = float_array(P, "P", 3, X.dtype)
    if P.shape != (F, n, 2 * k):
        raise ValueError(f"P must have shape {(F, n, 2 * k)}, got {P.shape}")
    dA = matrix(dA, "dA", X.dtype)
    if dA.shape != (n, F * d + X.shape[1]):
        raise ValueError(f"dA must have shape {(n, F * d + X.shape[1])}, got {dA.shape}")
    return X, freq, W, P, dA, flag(need_dX, "need_dX")


def elementwise_activation(name: Any) -> int:
    """The code of an element-wise activation (not softmax)."""
    code = activation_code(name)
    if name == "softmax":
        raise ValueError("a parametric activation is element-wise; softmax is not")
    return code


def periodic_bias_args(X: Any, frequencies: Any, phases: Any, weight: Any, bias: Any = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray,
                                  np.ndarray | None]:
    """A PBLD embedding's X (n, n_in), frequencies and phases (F, k) with F <= n_in (X's
    first F columns are embedded), weight (F, k, d) and bias (F, d), of one dtype
    (phases and bias: None, not checked)."""
    X = matrix(X, "X")
    frequencies = float_array(frequencies, "frequencies", 2, X.dtype)
    F, k = frequencies.shape
    if not 1 <= F <= X.shape[1] or k == 0:
        raise ValueError(f"frequencies must have shape (F, k) with 1 <= F <= {X.shape[1]} "
                         f"(X's embedded columns) and k >= 1, got {frequencies.shape}")
    if phases is not None:
        phases = float_array(phases, "phases", 2, X.dtype)
        same_shape(phases, "phases", frequencies, "frequencies")
    weight = float_array(weight, "weight", 3, X.dtype)
    if weight.shape[:2] != (F, k) or weight.shape[2] == 0:
        raise ValueError(f"weight must have shape ({F}, {k}, d >= 1), got {weight.shape}")
    d = weight.shape[2]
    if bias is not None:
        bias = float_array(bias, "bias", 2, X.dtype)
        if bias.shape != (F, d):
            raise ValueError(f"bias must have shape {(F, d)}, got {bias.shape}")
    blas_dims(n_samples=X.shape[0], width=2 * k, d_embedding=d,
              out_features=F * d + X.shape[1])
    return X, frequencies, phases, weight, bias


def norm_eps(value: Any, name: str = "eps") -> float:
    """A normalisation's eps: a finite real number > 0."""
    return finite_scalar(value, name, low=0.0, low_open=True)


def affine_pair(gamma: Any, beta: Any, k: int, dtype: np.dtype
                ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A normalisation's (gamma, beta): both None, or both (k,) arrays of ``dtype``."""
    if (gamma is None) != (beta is None):
        raise ValueError("gamma and beta must both be arrays or both be None (no affine map)")
    if gamma is None:
        return None, None
    gamma = float_array(gamma, "gamma", 1, dtype)
    beta = float_array(beta, "beta", 1, dtype)
    for arr, name in ((gamma, "gamma"), (beta, "beta")):
        if arr.shape != (k,):
            raise ValueError(f"{name} must have shape ({k},) (one value per feature), got "
                             f"{arr.shape}")
    return gamma, beta


def norm_groups(groups: Any, width: int) -> int:
    """A LayerNorm's groups: an int >= 1 dividing its width (each row's blocks)."""
    groups = int_in_range(groups, "groups", 1)
    if width % groups:
        raise ValueError(f"groups ({groups}) must divide the width ({width})")
    return groups


def layer_norm_forward_args(X: Any, gamma: Any, beta: Any, eps: Any, groups: Any = 1
                            ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, float,
                                       int]:
    X = matrix(X, "X")
    gamma, beta = affine_pair(gamma, beta, X.shape[1], X.dtype)
    return X, gamma, beta, norm_eps(eps), norm_groups(groups, X.shape[1])


def layer_norm_backward_args(Xhat: Any, rstd: Any, gamma: Any, dA: Any, need_dX: Any,
                             groups: Any = 1) -> tuple[np.ndarray, np.ndarray,
                                                       np.ndarray | None, np.ndarray, bool, int]:
    Xhat = matrix(Xhat, "Xhat")
    groups = norm_groups(groups, Xhat.shape[1])
    rstd = float_array(rstd, "rstd", 1, Xhat.dtype)
    if rstd.shape != (Xhat.shape[0] * groups,):
        raise ValueError(f"rstd must have shape ({Xhat.shape[0] * groups},) (one value per "
                         f"row of Xhat and group), got {rstd.shape}")
    if gamma is not None:
        gamma = float_array(gamma, "gamma", 1, Xhat.dtype)
        if gamma.shape != (Xhat.shape[1],):
            raise ValueError(f"gamma must have shape ({Xhat.shape[1]},), got {gamma.shape}")
    dA = matrix(dA, "dA", Xhat.dtype)
    same_shape(dA, "dA", Xhat, "Xhat")
    return Xhat, rstd, gamma, dA, flag(need_dX, "need_dX"), groups


def network_args(X: Any, Ws: Any, bs: Any, activations: Any
                 ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[int]]:
    """A Dense stack's input and parameters for the derivative kernels: X (n, n_in),
    one W (k_in, k_out) and b (k_out,) per layer, chained, of X's dtype, and one
    activation per layer (softmax is not element-wise: refused)."""
    X = float_array(X, "X", 2)
    if X.shape[1] == 0:
        raise ValueError(f"X must have at least one feature, got shape {X.shape}")
    if not isinstance(Ws, (list, tuple)) or not isinstance(bs, (list, tuple)) \
            or not isinstance(activations, (list, tuple)):
        raise TypeError("Ws, bs and activations must be lists (one entry per layer)")
    if not 1 <= len(Ws) <= 64 or len(bs) != len(Ws) or len(activations) != len(Ws):
        raise ValueError(f"Ws, bs and activations must hold one entry per layer (1 to 64), "
                         f"got {len(Ws)}, {len(bs)} and {len(activations)}")
    width = X.shape[1]
    out_W, out_b, codes = [], [], []
    for i, (W, b, act) in enumerate(zip(Ws, bs, activations)):
        code = activation_code(act)
        if act == "softmax":
            raise ValueError(f"activations[{i}] is softmax, which is not element-wise: input "
                             "derivatives of a softmax layer are not available")
        W = matrix(W, f"Ws[{i}]", X.dtype)
        b = float_array(b, f"bs[{i}]", 1, X.dtype)
        if W.shape[0] != width:
            raise ValueError(f"Ws[{i}] must have {width} rows (the width before it), got "
                             f"shape {W.shape}")
        if b.shape != (W.shape[1],):
            raise ValueError(f"bs[{i}] must have shape ({W.shape[1]},), got {b.shape}")
        blas_dims(**{f"Ws[{i}] columns": W.shape[1]})
        width = W.shape[1]
        out_W.append(W)
        out_b.append(b)
        codes.append(code)
    blas_dims(**{"X rows times its features": X.shape[0] * X.shape[1]})
    return X, out_W, out_b, codes


def dense_backward_args(X: Any, W: Any, Z: Any, A: Any, dA: Any, activation: Any, need_dX: Any
                        ) -> tuple[int, Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                   bool]:
    code = activation_code(activation)
    need_dX = flag(need_dX, "need_dX")
    X = layer_input(X)
    W = matrix(W, "W", X.dtype)
    if W.shape[0] != X.shape[1]:
        raise ValueError(f"W must have shape (in_features={X.shape[1]}, out_features) "
                         f"to match X {X.shape}, got {W.shape}")
    expected = (X.shape[0], W.shape[1])
    arrays: list[np.ndarray] = []
    for arr, arr_name in ((Z, "Z"), (A, "A"), (dA, "dA")):
        arr = matrix(arr, arr_name, X.dtype)
        if arr.shape != expected:
            raise ValueError(f"{arr_name} must have shape (n_samples, out_features) = {expected}, "
                             f"got {arr.shape}")
        arrays.append(arr)
    blas_dims(n_samples=X.shape[0], in_features=X.shape[1], out_features=W.shape[1])
    Z, A, dA = arrays
    return code, X, W, Z, A, dA, need_dX


def loss_args(name: Any, output: Any, target: Any
              ) -> tuple[int, np.ndarray, Any, np.ndarray | None]:
    """Validated (code, output, target-or-None, labels-or-None).

    target is typed Any: it is an array exactly when labels is None.

    A target of shape (n,) is taken as (n, 1) for the element-wise losses;
    cross-entropy takes int labels (n,) in [0, k) or probabilities (n, k).
    """
    code = loss_code(name)
    output = matrix(output, "output")
    non_empty_batch(output, "output")
    if not isinstance(target, np.ndarray):
        raise TypeError(f"target must be a numpy.ndarray, got {type(target).__name__}")
    n, k = output.shape
    if name == "cross_entropy" and target.ndim == 1:
        return code, output, None, class_labels(target, n, k)
    if target.ndim == 1 and name != "cross_entropy" and k == 1:
        target = target.reshape(-1, 1)
    target = float_array(target, "target", 2, output.dtype)
    same_shape(target, "target", output, "output")
    if name == "poisson":
        poisson_target(target, "target")
    return code, output, target, None


def poisson_target(target: np.ndarray, name: str) -> None:
    """The poisson loss needs counts/means y >= 0 (NaN passes, as for the other losses)."""
    if target.size and np.any(target < 0):
        raise ValueError(f"{name} for the poisson loss must be >= 0, got a minimum of "
                         f"{target.min()}")


def sample_weight(w: Any, n_samples: int, name: str = "sample_weight") -> np.ndarray | None:
    """None, or the weights as a C-contiguous float64 (n_samples,) array: finite, >= 0,
    with a positive sum. All-ones weights become None, so they take the unweighted path
    and give exactly its bits (a promise of the public API)."""
    if w is None:
        return None
    arr = np.asarray(w)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != n_samples:
        raise ValueError(f"{name} must have shape ({n_samples},) (one weight per sample), "
                         f"got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got NaN or infinite values")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0, got a minimum of {arr.min()}")
    if not arr.sum() > 0:
        raise ValueError(f"{name} must have a positive sum, got {arr.sum()}")
    if np.all(arr == 1.0):
        return None
    return arr


def class_labels(target: np.ndarray, n: int, k: int) -> np.ndarray:
    """Integer class labels of shape (n,) in [0, k), as np.intp."""
    if target.dtype.kind not in "iu":
        raise TypeError("target for cross_entropy must be int class labels of shape (n,) "
                        f"or class probabilities of shape (n, k), got 1-D {target.dtype}")
    if target.shape != (n,):
        raise ValueError(f"target labels must have shape ({n},) to match output, got {target.shape}")
    if n and (target.min() < 0 or target.max() >= k):
        raise ValueError(f"target labels must lie in [0, {k}) for output with {k} columns, "
                         f"got values in [{target.min()}, {target.max()}]")
    return np.ascontiguousarray(target, dtype=np.intp)


def finite_scalar(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                  low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number within [low, high] (or open ends); TypeError for non-numbers."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        v = float(value)
    except OverflowError:  # a Python int beyond float's range
        raise ValueError(f"{name} must be finite, got an int with {len(str(value))} digits") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return v


def inplace_array(x: Any, name: str, shape: tuple[int, ...] | None = None,
                  dtype: np.dtype | None = None) -> np.ndarray:
    """An array updated in place: float32/float64, writable and C-contiguous, never copied."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} like p, got {x.dtype}")
    if shape is not None and x.shape != shape:
        raise ValueError(f"{name} must have the shape of p {shape}, got {x.shape}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (it is updated in place)")
    if not x.flags.writeable:
        raise ValueError(f"{name} must be writable (it is updated in place)")
    return x


def optimizer_arrays(p: Any, g: Any, **state: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """p (in place), g (read) and the state buffers (in place) of one optimizer step.

    State buffers given as None stay None; the caller decides which are required.
    """
    p = inplace_array(p, "p")
    g = float_array(g, "g", p.ndim, p.dtype)
    same_shape(g, "g", p, "p")
    checked: dict[str, np.ndarray | None] = {}
    for key, arr in state.items():
        checked[key] = None if arr is None else inplace_array(arr, key, p.shape, p.dtype)
    buffers = [p] + [a for a in checked.values() if a is not None]
    for i, a in enumerate(buffers):
        for b_ in buffers[i + 1:] + [g]:
            if np.shares_memory(a, b_):
                raise ValueError("p, g and the optimizer state arrays must not share memory "
                                 "(they are updated in place)")
    return p, g, checked


def flag(value: Any, name: str) -> bool:
    """A bool option: Python or NumPy bool only (the string "no" is not False, nor 0 a flag)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def blas_dims(**dims: int) -> None:
    """Matrix dimensions must fit BLAS's 32-bit ints."""
    for name, d in dims.items():
        if d > MAX_DIM:
            raise ValueError(f"{name} = {d} exceeds the largest matrix dimension BLAS takes "
                             f"({MAX_DIM})")


def require(arr: np.ndarray | None, name: str, why: str) -> None:
    if arr is None:
        raise ValueError(f"{name} must be an array {why}, got None")


# ---------------------------------------------------------------- optimizer steps
# The arrays of one fastbp.ops/fastbp.reference optimizer step; the hyper-parameters
# are checked by building the step's record (fastbp._optim_config). A state buffer
# the configuration does not use is returned as None (whatever was given); one it
# uses must be an array (typed Any: an array exactly when the step uses it).

#: why a state buffer is needed, by the optimizer's state name
STATE_NEEDED = {
    "momentum_buffer": "when momentum != 0",
    "sum": "(the running sum of squared gradients)",
    "square_avg": "(the running average of squared gradients)",
    "grad_avg": "when centered=True",
    "exp_avg": "(the first-moment estimate)",
    "exp_avg_sq": "(the second-moment estimate)",
    "max_exp_avg_sq": "when amsgrad=True",
}


def step_arrays(config: Any, p: Any, g: Any, **state: Any) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """p (in place), g (read) and the state buffers of one step of ``config``.

    ``state`` gives the buffers under the ops argument names, in the order of
    ``config.kernel_state``; they come back in that order."""
    p, g, checked = optimizer_arrays(p, g, **state)
    used = config.state_names
    out: list[Any] = []
    for (arg, arr), name in zip(checked.items(), config.kernel_state):
        if name in used:
            require(arr, arg, STATE_NEEDED[name])
            out.append(arr)
        else:
            out.append(None)
    return p, g, out


def adam_step_count(step: Any) -> int:
    """Adam's step t, counted from 1."""
    step = int_in_range(step, "step (counted from 1)", 1)
    if step > MAX_STEP:
        raise ValueError(f"step must be <= {MAX_STEP}, got {step}")
    return step


# ---------------------------------------------------------------- dropout
#: dropout seeds are unsigned 64-bit integers (the mask generator's key, _dropout.h)
SEED_LIMIT = 2**64


def dropout_rate(value: Any, name: str = "dropout") -> float:
    """A dropout probability: a real number (not a bool or a string) with 0 <= p < 1."""
    return finite_scalar(value, name, low=0.0, high=1.0, high_open=True)


def int_in_range(value: Any, name: str, low: int, high: int | None = None) -> int:
    """An int (Python or NumPy, not bool) with low <= value < high (no upper bound
    when high is None): the one integer check of the package."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if high is None:
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    elif not low <= value < high:
        raise ValueError(f"{name} must be in [{low}, {high}), got {value}")
    return int(value)


def dropout_seed(value: Any, name: str = "dropout_seed") -> int:
    """A seed of the dropout masks: an int in [0, 2**64)."""
    return int_in_range(value, name, 0, SEED_LIMIT)


def dropout_step(value: Any, name: str = "step") -> int:
    """The step whose dropout masks are drawn (the optimizer's step count, from 1)."""
    return int_in_range(value, name, 1, MAX_STEP + 1)


def dropout_mask_args(seed: Any, layer: Any, step: Any, shape: Any, p: Any
                      ) -> tuple[int, int, int, tuple[int, ...], float]:
    seed = dropout_seed(seed, "seed")
    layer = int_in_range(layer, "layer", 0, 2**63)
    step = int_in_range(step, "step", 0, MAX_STEP + 1)
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    if not isinstance(shape, tuple):
        raise TypeError(f"shape must be an int or a tuple of ints, got {type(shape).__name__}")
    dims = tuple(int_in_range(d, f"shape[{i}]", 0, MAX_DIM + 1) for i, d in enumerate(shape))
    if math.prod(dims) > 2**62:
        raise ValueError(f"shape {dims} holds more than 2**62 elements")
    return seed, layer, step, dims, dropout_rate(p, "p")


def dropout_apply_args(A: Any, mask: Any, p: Any) -> tuple[np.ndarray, np.ndarray, float]:
    if not isinstance(A, np.ndarray):
        raise TypeError(f"A must be a numpy.ndarray, got {type(A).__name__}")
    A = float_array(A, "A", A.ndim)
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise TypeError(f"mask must be a numpy.ndarray of dtype bool, got "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}")
    same_shape(mask, "mask", A, "A")
    return A, np.ascontiguousarray(mask), dropout_rate(p, "p")


def dropout_scale(p: float) -> float:
    """1/(1-p), the factor of the kept elements (in double; the kernels round it once
    to the buffer's dtype)."""
    return 1.0 / (1.0 - p)


# ---------------------------------------------------------------- ensembles (TabM)
def _ensemble_input(X: Any, name: str, k: int, d: int, dtype: np.dtype,
                    shared_ok: bool) -> tuple[np.ndarray, bool]:
    """An ensemble layer's input: (n, k, d), or (shared_ok) (n, d) read by all k
    members; (the array, whether shared)."""
    ndim = X.ndim if isinstance(X, np.ndarray) else 3
    if ndim == 2 and shared_ok:
        X = float_array(X, name, 2, dtype)
        if X.shape[1] != d:
            raise ValueError(f"{name} must have shape (n, {d}) or (n, {k}, {d}), got {X.shape}")
        return X, True
    X = float_array(X, name, 3, dtype)
    if X.shape[1:] != (k, d):
        want = f"(n, {d}) or (n, {k}, {d})" if shared_ok else f"(n, {k}, {d})"
        raise ValueError(f"{name} must have shape {want}, got {X.shape}")
    return X, False


def _member_rows(a: Any, name: str, k: int | None, width: int, dtype: np.dtype) -> np.ndarray:
    """A (k, width) array of per-member vectors (k None: any k >= 1)."""
    a = float_array(a, name, 2, dtype)
    if a.shape[0] == 0 or (k is not None and a.shape[0] != k) or a.shape[1] != width:
        raise ValueError(f"{name} must have shape ({'k' if k is None else k}, {width}) "
                         f"(one row per member), got {a.shape}")
    return a


def batch_ensemble_args(X: Any, W: Any, r: Any, s: Any, b: Any
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                   np.ndarray | None, bool]:
    """(X, W, r, s, b, shared) of a BatchEnsemble linear layer: W (d_in, d_out) shared,
    r (k, d_in), s and b (k, d_out) per member, X (n, k, d_in) or shared (n, d_in)."""
    W = matrix(W, "W")
    if W.shape[0] == 0:
        raise ValueError(f"W must have at least one row, got shape {W.shape}")
    d_in, d_out = W.shape
    r = _member_rows(r, "r", None, d_in, W.dtype)
    k = r.shape[0]
    s = _member_rows(s, "s", k, d_out, W.dtype)
    if b is not None:
        b = _member_rows(b, "b", k, d_out, W.dtype)
    X, shared = _ensemble_input(X, "X", k, d_in, W.dtype, True)
    blas_dims(rows=X.shape[0] * k, d_in=d_in, d_out=d_out)
    return X, W, r, s, b, shared


def linear_ensemble_args(X: Any, W: Any, b: Any
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(X, W, b) of a linear ensemble: W (k, d_in, d_out), b (k, d_out), X (n, k, d_in)."""
    W = float_array(W, "W", 3)
    if 0 in W.shape:
        raise ValueError(f"W must have shape (k, d_in, d_out), none of them 0, got {W.shape}")
    k, d_in, d_out = W.shape
    if b is not None:
        b = _member_rows(b, "b", k, d_out, W.dtype)
    X, _ = _ensemble_input(X, "X", k, d_in, W.dtype, False)
    blas_dims(rows=X.shape[0], d_in=d_in, d_out=d_out, stride=k * max(d_in, d_out))
    return X, W, b


def ensemble_array(a: Any, name: str, shape: tuple[int, int, int], dtype: np.dtype
                   ) -> np.ndarray:
    """An (n, k, d) array an ensemble layer's backward reads (the forward's shape)."""
    a = float_array(a, name, 3, dtype)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (the forward's), got {a.shape}")
    return a
