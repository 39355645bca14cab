"""Pure-NumPy reference of every fastbp kernel: the oracle for the compiled core.

Same functions and signatures as :mod:`fastbp.ops`, one short function per
formula, no performance tricks. It never imports ``fastbp._kernels``; it
shares the input checks of :mod:`fastbp._validation`, so both modules reject
bad input identically. The output dtype is the input dtype; transcendental
functions come from NumPy/SciPy in that dtype.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import numpy.typing as npt
from scipy.special import erfc

from fastbp import _validation as check
from fastbp._bins import ple_args
from fastbp._codes import categorical_args
from fastbp._optim_config import AdaGradConfig, AdamConfig, RMSpropConfig, SGDConfig
from fastbp._table import (ELU_ALPHA, HUBER_DELTA, LEAKY_SLOPE, SELU_ALPHA, SELU_SCALE,
                           SOFTPLUS_THRESHOLD)
from fastbp._validation import ACTIVATIONS, LOSSES

__all__ = ["ACTIVATIONS", "LOSSES", "activation_forward", "activation_backward",
           "dense_forward", "dense_backward", "loss_forward_backward",
           "sgd_step", "adagrad_step", "rmsprop_step", "adam_step",
           "dropout_mask", "dropout_apply", "network_derivatives", "network_input_gradient",
           "layer_norm_forward", "layer_norm_backward", "periodic_embedding_forward",
           "periodic_embedding_backward", "piecewise_linear_encoding_forward",
           "piecewise_linear_encoding_backward", "categorical_embedding_forward",
           "categorical_embedding_backward", "batch_ensemble_forward",
           "batch_ensemble_backward", "linear_ensemble_forward", "linear_ensemble_backward",
           "scale_forward", "scale_backward", "parametric_activation_forward",
           "parametric_activation_backward", "periodic_bias_embedding_forward",
           "periodic_bias_embedding_backward"]

#: type of every array here: float32 or float64 (the public functions spell it out)
_FloatArray = npt.NDArray[np.floating[Any]]


# ---------------------------------------------------------------- activations: f(z)

def sigmoid(z: _FloatArray) -> _FloatArray:
    """σ(z) = 1/(1+e^-z), as e^z/(1+e^z) for z < 0 so that nothing overflows."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def softplus(z: _FloatArray) -> _FloatArray:
    """log(1+e^z), z itself above 20 (PyTorch's threshold)."""
    return np.where(z > SOFTPLUS_THRESHOLD, z, np.log1p(np.exp(np.minimum(z, SOFTPLUS_THRESHOLD))))


def gelu(z: _FloatArray) -> _FloatArray:
    """z·Φ(z), Φ(z) = erfc(-z/√2)/2."""
    return 0.5 * z * erfc(-z * np.sqrt(0.5))


def elu(z: _FloatArray) -> _FloatArray:
    """z for z > 0, alpha·(e^z - 1) otherwise (alpha ELU_ALPHA)."""
    return np.where(z > 0, z, ELU_ALPHA * np.expm1(np.minimum(z, 0)))


def selu(z: _FloatArray) -> _FloatArray:
    """scale·z for z > 0, scale·alpha·(e^z - 1) otherwise (SELU_SCALE, SELU_ALPHA)."""
    return SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0)))


def mish(z: _FloatArray) -> _FloatArray:
    """z·tanh(softplus(z))."""
    return z * np.tanh(softplus(z))


def softmax(z: _FloatArray) -> _FloatArray:
    """e^(z - max) / Σ e^(z - max) along the last axis."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


FORWARD: dict[str, Callable[[_FloatArray], _FloatArray]] = {
    "identity": lambda z: z.copy(),
    "sigmoid": sigmoid,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, LEAKY_SLOPE * z),
    "elu": elu,
    "softplus": softplus,
    "gelu": gelu,
    "silu": lambda z: z * sigmoid(z),
    "softmax": softmax,
    "selu": selu,
    "mish": mish,
}


# ---------------------------------------------------------------- activations: dL/dZ

def gelu_grad(z: _FloatArray) -> _FloatArray:
    """Φ(z) + z·φ(z), φ(z) = e^(-z²/2)/√(2π)."""
    return 0.5 * erfc(-z * np.sqrt(0.5)) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)


def silu_grad(z: _FloatArray) -> _FloatArray:
    """σ(z)·(1 + z·(1 - σ(z)))."""
    s = sigmoid(z)
    return s * (1 + z * (1 - s))


def selu_grad(z: _FloatArray) -> _FloatArray:
    """scale for z > 0, scale·alpha·e^z otherwise."""
    return SELU_SCALE * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(z, 0)))


def mish_grad(z: _FloatArray) -> _FloatArray:
    """t + z·(1 - t²)·σ(z), t = tanh(softplus(z))."""
    t = np.tanh(softplus(z))
    return t + z * (1 - t * t) * sigmoid(z)


def softmax_backward(a: _FloatArray, da: _FloatArray) -> _FloatArray:
    """Jacobian-vector product of softmax: a·(da - Σ_j da_j·a_j)."""
    return a * (da - (da * a).sum(axis=-1, keepdims=True))


BACKWARD: dict[str, Callable[[_FloatArray, _FloatArray, _FloatArray], _FloatArray]] = {
    # (Z, A, dA) -> dZ
    "identity": lambda z, a, da: da.copy(),
    "sigmoid": lambda z, a, da: da * (a * (1 - a)),
    "tanh": lambda z, a, da: da * (1 - a * a),
    "relu": lambda z, a, da: np.where(z <= 0, 0, da),
    "leaky_relu": lambda z, a, da: np.where(z > 0, da, LEAKY_SLOPE * da),
    "elu": lambda z, a, da: np.where(z > 0, da, da * (ELU_ALPHA * np.exp(np.minimum(z, 0)))),
    "softplus": lambda z, a, da: np.where(z > SOFTPLUS_THRESHOLD, da, da * sigmoid(z)),
    "gelu": lambda z, a, da: da * gelu_grad(z),
    "silu": lambda z, a, da: da * silu_grad(z),
    "softmax": lambda z, a, da: softmax_backward(a, da),
    "selu": lambda z, a, da: da * selu_grad(z),
    "mish": lambda z, a, da: da * mish_grad(z),
}


def activation_forward(
    name: str,
    Z: npt.NDArray[np.floating[Any]],
) -> npt.NDArray[np.floating[Any]]:
    """A = f(Z): the activation ``name`` applied to Z, in NumPy (``FORWARD``).

    Parameters
    ----------
    name : str
        The activation, one of ``ACTIVATIONS`` ("identity", "sigmoid", "tanh", "relu",
        "leaky_relu", "elu", "softplus", "gelu", "silu", "softmax", "selu", "mish";
        softmax is taken over each row).
    Z : ndarray of shape (n_samples, n_units)
        The pre-activations (float32 or float64, at least one column).

    Returns
    -------
    A : ndarray of shape (n_samples, n_units)
        A new array of Z's dtype.

    Raises
    ------
    TypeError
        ``Z`` is not a float32/float64 ndarray.
    ValueError
        An unknown ``name``; ``Z`` not 2-D or without a column.
    """
    _, Z = check.activation_args(name, Z)
    return FORWARD[name](Z).astype(Z.dtype, copy=False)


def activation_backward(
    name: str,
    Z: npt.NDArray[np.floating[Any]],
    A: npt.NDArray[np.floating[Any]],
    dA: npt.NDArray[np.floating[Any]],
) -> npt.NDArray[np.floating[Any]]:
    """dZ = dL/dZ given dA = dL/dA, in NumPy (``BACKWARD``).

    The arrays are NumPy arrays of one dtype, float32 or float64; they are only read,
    so they may be strided, Fortran-ordered or read-only.

    Parameters
    ----------
    name : str
        The activation, one of ``ACTIVATIONS`` ("identity", "sigmoid", "tanh", "relu",
        "leaky_relu", "elu", "softplus", "gelu", "silu", "softmax", "selu", "mish";
        softmax is taken over each row).
    Z : ndarray of shape (n_samples, n_units)
        The pre-activations of the forward pass.
    A : ndarray of shape (n_samples, n_units)
        Their activations f(Z), as the forward pass returned them.
    dA : ndarray of shape (n_samples, n_units)
        The gradient of the loss with respect to A.

    Returns
    -------
    dZ : ndarray of shape (n_samples, n_units)
        The gradient with respect to Z, a new array of Z's dtype.

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray, or arrays of different dtypes.
    ValueError
        An unknown ``name``, an array that is not 2-D or has no column, shapes that
        differ.
    """
    _, Z, A, dA = check.activation_backward_args(name, Z, A, dA)
    return BACKWARD[name](Z, A, dA).astype(Z.dtype, copy=False)


# ---------------------------------------------------------------- dense layer

def dense_forward(
    X: npt.NDArray[np.floating[Any]],
    W: npt.NDArray[np.floating[Any]],
    b: npt.NDArray[np.floating[Any]],
    activation: str,
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]:
    """Z = X·W + b, A = f(Z): a dense layer's forward pass, in NumPy.

    The arrays are NumPy arrays of one dtype, float32 or float64; they are only read,
    so they may be strided, Fortran-ordered or read-only.

    Parameters
    ----------
    X : ndarray of shape (n_samples, in_features)
        The inputs (n_samples may be 0).
    W : ndarray of shape (in_features, out_features)
        The weights.
    b : ndarray of shape (out_features,)
        The biases.
    activation : str
        One of ``ACTIVATIONS``.

    Returns
    -------
    Z, A : ndarray of shape (n_samples, out_features)
        The pre-activations and the activations, new arrays of X's dtype.

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray, arrays of different dtypes.
    ValueError
        An unknown ``activation``; arrays of the wrong number of dimensions or of
        shapes that do not fit together; a dimension larger than 2**31 - 1.
    """
    _, X, W, b = check.dense_forward_args(X, W, b, activation)
    X = _dense_form(X)
    Z = X @ W + b
    return Z, FORWARD[activation](Z).astype(Z.dtype, copy=False)


def _dense_form(X: Any) -> np.ndarray:
    """X as a dense array: a sparse X's dense form (the oracle's plain formulas)."""
    if isinstance(X, np.ndarray):
        return X
    dense = np.zeros(X.shape, dtype=X.dtype)
    for i in range(X.n_rows):
        for p in range(X.indptr[i], X.indptr[i + 1]):
            dense[i, X.indices[p]] += X.data[p]
    return dense


def dense_backward(
    X: npt.NDArray[np.floating[Any]],
    W: npt.NDArray[np.floating[Any]],
    Z: npt.NDArray[np.floating[Any]],
    A: npt.NDArray[np.floating[Any]],
    dA: npt.NDArray[np.floating[Any]],
    activation: str,
    need_dX: bool = True,
) -> tuple[
    npt.NDArray[np.floating[Any]] | None,
    npt.NDArray[np.floating[Any]],
    npt.NDArray[np.floating[Any]],
]:
    """dZ = f'(Z)·dA; dW = Xᵀ·dZ; db = Σ_rows dZ; dX = dZ·Wᵀ.

    The arrays are NumPy arrays of one dtype, float32 or float64; they are only read,
    so they may be strided, Fortran-ordered or read-only. An empty batch
    (n_samples 0) gives zero dW and db.

    Parameters
    ----------
    X : ndarray of shape (n_samples, in_features)
        The inputs of the forward pass.
    W : ndarray of shape (in_features, out_features)
        The weights.
    Z, A : ndarray of shape (n_samples, out_features)
        The pre-activations and activations ``dense_forward`` returned.
    dA : ndarray of shape (n_samples, out_features)
        The gradient of the loss with respect to A.
    activation : str
        The forward pass's activation, one of ``ACTIVATIONS``.
    need_dX : bool, default True
        Compute dX (False skips the product and returns None in its place).

    Returns
    -------
    dX : ndarray of shape (n_samples, in_features) or None
        The gradient with respect to X (None unless ``need_dX``).
    dW : ndarray of shape (in_features, out_features)
        The gradient with respect to W, summed over the samples.
    db : ndarray of shape (out_features,)
        The gradient with respect to b, summed over the samples.

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray, arrays of different dtypes,
        a ``need_dX`` that is not a bool.
    ValueError
        An unknown ``activation``; arrays of the wrong number of dimensions or of
        shapes that do not fit together; a dimension larger than 2**31 - 1.
    """
    _, X, W, Z, A, dA, need_dX = check.dense_backward_args(X, W, Z, A, dA, activation,
                                                               need_dX)
    X = _dense_form(X)
    dZ = BACKWARD[activation](Z, A, dA).astype(Z.dtype, copy=False)
    dW = X.T @ dZ
    db = dZ.sum(axis=0)
    dX = dZ @ W.T if need_dX else None
    return dX, dW, db


# ---------------------------------------------------------------- losses: (loss, dL/d_output)

def mse(o: _FloatArray, t: _FloatArray) -> tuple[float, _FloatArray]:
    """mean((o-t)²); (2/N)·(o-t)."""
    r = o - t
    return np.mean(r * r, dtype=np.float64), (2.0 / r.size) * r


def mae(o: _FloatArray, t: _FloatArray) -> tuple[float, _FloatArray]:
    """mean(|o-t|); sign(o-t)/N."""
    r = o - t
    return np.mean(np.abs(r), dtype=np.float64), np.sign(r) * (1.0 / r.size)


def huber(o: _FloatArray, t: _FloatArray) -> tuple[float, _FloatArray]:
    """delta δ: mean(r²/2 if |r| < δ else δ·(|r| - δ/2)); clip(r, -δ, δ)/N."""
    r = o - t
    a = np.abs(r)
    d = HUBER_DELTA
    loss = np.where(a >= d, d * (a - 0.5 * d), 0.5 * r * r)
    return np.mean(loss, dtype=np.float64), np.clip(r, -d, d) * (1.0 / r.size)


def log_sigmoid(x: _FloatArray) -> _FloatArray:
    """log σ(x) = min(x, 0) - log1p(e^-|x|)."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def binary_cross_entropy(x: _FloatArray, y: _FloatArray) -> tuple[float, _FloatArray]:
    """From logits: mean((1-y)·x - log σ(x)); (σ(x) - y)/N."""
    loss = (1 - y) * x - log_sigmoid(x)
    return np.mean(loss, dtype=np.float64), (sigmoid(x) - y) / x.size


def log_softmax(x: _FloatArray) -> _FloatArray:
    """x - max - log Σ e^(x - max), per row."""
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy(x: _FloatArray, y: _FloatArray) -> tuple[float, _FloatArray]:
    """From logits, y class probabilities: mean_i(-Σ_c y_ic·log p_ic); (p·Σ_c y_c - y)/n."""
    n = x.shape[0]
    loss = -(y * log_softmax(x)).sum(axis=1)
    return np.mean(loss, dtype=np.float64), (softmax(x) * y.sum(axis=1, keepdims=True) - y) / n


def cross_entropy_labels(x: _FloatArray, labels: npt.NDArray[np.intp]) -> tuple[float, _FloatArray]:
    """From logits, int labels: mean_i(-log p_i,label_i); (p - onehot(label))/n."""
    n = x.shape[0]
    rows = np.arange(n)
    loss = -log_softmax(x)[rows, labels]
    grad = softmax(x)
    grad[rows, labels] -= 1
    return np.mean(loss, dtype=np.float64), grad / n


def poisson(z: _FloatArray, y: _FloatArray) -> tuple[float, _FloatArray]:
    """z = log of the mean: mean(e^z - y·z); (e^z - y)/N. e^z is +inf past ~709, where
    the loss is infinite (no overflow warning: that is its value)."""
    with np.errstate(over="ignore"):
        e = np.exp(z)
    loss = e - np.where(y != 0, y * z, 0)
    return np.mean(loss, dtype=np.float64), (e - y) / z.size


LOSS: dict[str, Callable[[_FloatArray, _FloatArray], tuple[float, _FloatArray]]] = {
    "mse": mse, "mae": mae, "huber": huber,
    "binary_cross_entropy": binary_cross_entropy, "cross_entropy": cross_entropy,
    "poisson": poisson}


def _per_sample(name: str, output: _FloatArray, target: Any,
                labels: npt.NDArray[np.intp] | None) -> tuple[_FloatArray, _FloatArray]:
    """(ℓ_i of each sample alone, the gradient of Σ_i ℓ_i): each row as a batch of one."""
    n = output.shape[0]
    losses = np.empty(n)
    grads = np.empty(output.shape, dtype=np.float64)
    for i in range(n):
        if labels is not None:
            losses[i], grads[i] = cross_entropy_labels(output[i:i + 1], labels[i:i + 1])
        else:
            losses[i], grads[i] = LOSS[name](output[i:i + 1], target[i:i + 1])
    return losses, grads


def loss_forward_backward(
    name: str,
    output: npt.NDArray[np.floating[Any]],
    target: npt.NDArray[Any],
    sample_weight: npt.ArrayLike | None = None,
) -> tuple[float, npt.NDArray[np.floating[Any]]]:
    """(mean loss, dL/d_output); with sample_weight Σ w_i·ℓ_i / Σ w_i, gradient w_i/Σw·∂ℓ_i.

    Parameters
    ----------
    name : str
        The loss, one of ``LOSSES`` ("mse", "mae", "huber", "binary_cross_entropy",
        "cross_entropy", "poisson"). The cross entropies take logits; poisson takes
        the log of the mean.
    output : ndarray of shape (n_samples, n_outputs)
        The raw output (float32 or float64, at least one sample and one column).
    target : ndarray
        Of output's shape and dtype; shape (n_samples,) is taken as (n_samples, 1)
        when n_outputs is 1. For cross_entropy also int class labels of shape
        (n_samples,) in [0, n_outputs). For poisson every value must be >= 0.
    sample_weight : array-like of shape (n_samples,) or None, default None
        One finite weight >= 0 per sample, with a positive sum. None (or all ones)
        weighs every sample equally.

    Returns
    -------
    loss : float
        The mean loss: over every element for the element-wise losses, over the
        samples for cross_entropy. With ``sample_weight``, Σ w_i·ℓ_i / Σ w_i, ℓ_i
        being sample i's loss.
    d_output : ndarray of shape (n_samples, n_outputs)
        The gradient of ``loss`` with respect to output, a new array of its dtype.

    Raises
    ------
    TypeError
        ``output`` or ``target`` not an ndarray, a wrong dtype, 1-D cross_entropy
        labels that are not ints, weights that are not real numbers.
    ValueError
        An unknown ``name``, an empty batch, shapes that do not match, labels out of
        range, a negative poisson target, weights that are negative, not finite or
        sum to 0.
    """
    _, output, target, labels = check.loss_args(name, output, target)
    w = check.sample_weight(sample_weight, output.shape[0])
    if w is not None:
        losses, grads = _per_sample(name, output, target, labels)
        keep = w > 0   # a zero weight drops its sample
        loss = np.sum(w[keep] * losses[keep]) / w.sum()
        grad = np.where(keep[:, None], grads * (w / w.sum())[:, None], 0.0)
    elif labels is not None:
        loss, grad = cross_entropy_labels(output, labels)
    else:
        loss, grad = LOSS[name](output, target)
    return float(loss), grad.astype(output.dtype, copy=False)


# ---------------------------------------------------------------- optimizers (in place)

def lerp(a: _FloatArray, b: _FloatArray, w: float) -> _FloatArray:
    """a + w·(b - a), in PyTorch's two-sided form."""
    return a + w * (b - a) if w < 0.5 else b - (b - a) * (1 - w)


def sgd_step(
    p: npt.NDArray[np.floating[Any]],
    g: npt.NDArray[np.floating[Any]],
    buf: npt.NDArray[np.floating[Any]] | None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    first_step: bool = False,
) -> None:
    """torch.optim.SGD: b = g (first step) or μb + (1-τ)g; p -= lr·(g + μb if nesterov else b).

    Updates ``p`` and the state arrays in place and returns None. ``p`` and every
    state array must be writable, C-contiguous float32/float64 ndarrays of p's shape
    and dtype, none sharing memory with another or with ``g``; ``g`` (read only) has
    p's shape and dtype. A state array the configuration does not use may be None.

    Parameters
    ----------
    p : ndarray
        The parameters, updated in place.
    g : ndarray
        Their gradient.
    buf : ndarray or None
        The momentum buffer (zeros before the first step); needed when momentum != 0.
    lr : float
        The learning rate (>= 0).
    momentum : float, default 0.0
        The momentum factor (>= 0).
    dampening : float, default 0.0
        Dampening of the momentum (the gradient enters the buffer times 1 - dampening).
    nesterov : bool, default False
        Nesterov momentum (needs momentum > 0 and dampening 0).
    weight_decay : float, default 0.0
        L2 penalty (>= 0): weight_decay·p is added to the gradient.
    first_step : bool, default False
        True on the first step: the buffer is set to the gradient instead of updated.

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray or has another dtype than p; a
        hyper-parameter that is not a real number (or, for flags, not a bool).
    ValueError
        Shapes that differ, a state array that is read-only, not C-contiguous, shares
        memory or is None where it is needed; a hyper-parameter out of range. Nothing
        is changed then.
    """
    c = SGDConfig(lr, momentum, dampening, nesterov, weight_decay)
    first_step = check.flag(first_step, "first_step")
    p, g, (buf,) = check.step_arrays(c, p, g, buf=buf)
    d = g + c.weight_decay * p if c.weight_decay != 0 else g
    if c.momentum != 0:
        buf[...] = d if first_step else c.momentum * buf + (1 - c.dampening) * d
        d = d + c.momentum * buf if c.nesterov else buf
    p -= c.lr * d


def adagrad_step(
    p: npt.NDArray[np.floating[Any]],
    g: npt.NDArray[np.floating[Any]],
    sum_sq: npt.NDArray[np.floating[Any]],
    *,
    lr: float,
    eps: float = 1e-10,
    weight_decay: float = 0.0,
) -> None:
    """torch.optim.Adagrad: s += g²; p -= lr·g/(√s + eps).

    Updates ``p`` and the state arrays in place and returns None. ``p`` and every
    state array must be writable, C-contiguous float32/float64 ndarrays of p's shape
    and dtype, none sharing memory with another or with ``g``; ``g`` (read only) has
    p's shape and dtype. A state array the configuration does not use may be None.

    Parameters
    ----------
    p : ndarray
        The parameters, updated in place.
    g : ndarray
        Their gradient.
    sum_sq : ndarray
        The running sum of squared gradients (zeros before the first step).
    lr : float
        The learning rate (>= 0).
    eps : float, default 1e-10
        Added to the denominator (>= 0).
    weight_decay : float, default 0.0
        L2 penalty (>= 0): weight_decay·p is added to the gradient.

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray or has another dtype than p; a
        hyper-parameter that is not a real number (or, for flags, not a bool).
    ValueError
        Shapes that differ, a state array that is read-only, not C-contiguous, shares
        memory or is None where it is needed; a hyper-parameter out of range. Nothing
        is changed then.
    """
    c = AdaGradConfig(lr, eps, weight_decay)
    p, g, (sum_sq,) = check.step_arrays(c, p, g, sum_sq=sum_sq)
    d = g + c.weight_decay * p if c.weight_decay != 0 else g
    sum_sq += d * d
    p -= c.lr * (d / (np.sqrt(sum_sq) + c.eps))


def rmsprop_step(
    p: npt.NDArray[np.floating[Any]],
    g: npt.NDArray[np.floating[Any]],
    sq_avg: npt.NDArray[np.floating[Any]],
    buf: npt.NDArray[np.floating[Any]] | None,
    grad_avg: npt.NDArray[np.floating[Any]] | None,
    *,
    lr: float,
    alpha: float = 0.99,
    eps: float = 1e-8,
    momentum: float = 0.0,
    centered: bool = False,
    weight_decay: float = 0.0,
) -> None:
    """torch.optim.RMSprop: v = αv + (1-α)g²; p -= lr·g/(√v + eps) (or centered, momentum).

    Updates ``p`` and the state arrays in place and returns None. ``p`` and every
    state array must be writable, C-contiguous float32/float64 ndarrays of p's shape
    and dtype, none sharing memory with another or with ``g``; ``g`` (read only) has
    p's shape and dtype. A state array the configuration does not use may be None.

    Parameters
    ----------
    p : ndarray
        The parameters, updated in place.
    g : ndarray
        Their gradient.
    sq_avg : ndarray
        The running average of squared gradients (zeros before the first step).
    buf : ndarray or None
        The momentum buffer; needed when momentum > 0.
    grad_avg : ndarray or None
        The running average of gradients; needed when ``centered``.
    lr : float
        The learning rate (>= 0).
    alpha : float, default 0.99
        The smoothing constant of the averages, in [0, 1].
    eps : float, default 1e-8
        Added to the denominator (>= 0).
    momentum : float, default 0.0
        The momentum factor (>= 0).
    centered : bool, default False
        Divide by the estimated variance of the gradient instead of its second moment.
    weight_decay : float, default 0.0
        L2 penalty (>= 0): weight_decay·p is added to the gradient.

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray or has another dtype than p; a
        hyper-parameter that is not a real number (or, for flags, not a bool).
    ValueError
        Shapes that differ, a state array that is read-only, not C-contiguous, shares
        memory or is None where it is needed; a hyper-parameter out of range. Nothing
        is changed then.
    """
    c = RMSpropConfig(lr, alpha, eps, momentum, centered, weight_decay)
    p, g, (sq_avg, buf, grad_avg) = check.step_arrays(c, p, g, sq_avg=sq_avg, buf=buf,
                                                      grad_avg=grad_avg)
    d = g + c.weight_decay * p if c.weight_decay != 0 else g
    sq_avg[...] = sq_avg * c.alpha + (1 - c.alpha) * (d * d)
    if c.centered:
        grad_avg[...] = lerp(grad_avg, d, 1 - c.alpha)
        avg = np.sqrt(sq_avg - grad_avg * grad_avg) + c.eps
    else:
        avg = np.sqrt(sq_avg) + c.eps
    if c.momentum > 0:
        buf[...] = buf * c.momentum + d / avg
        p -= c.lr * buf
    else:
        p -= c.lr * (d / avg)


def adam_step(
    p: npt.NDArray[np.floating[Any]],
    g: npt.NDArray[np.floating[Any]],
    m: npt.NDArray[np.floating[Any]],
    v: npt.NDArray[np.floating[Any]],
    vmax: npt.NDArray[np.floating[Any]] | None,
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    amsgrad: bool = False,
    eps_mode: str = "paper",
) -> None:
    """torch.optim.Adam/AdamW (eps_mode="paper") or scikit-learn's Adam (eps_mode="folded").

    Updates ``p`` and the state arrays in place and returns None. ``p`` and every
    state array must be writable, C-contiguous float32/float64 ndarrays of p's shape
    and dtype, none sharing memory with another or with ``g``; ``g`` (read only) has
    p's shape and dtype. A state array the configuration does not use may be None.

    Parameters
    ----------
    p : ndarray
        The parameters, updated in place.
    g : ndarray
        Their gradient.
    m, v : ndarray
        The first- and second-moment estimates (zeros before the first step).
    vmax : ndarray or None
        The running maximum of v; needed when ``amsgrad``.
    step : int
        This step's number t, counted from 1 (at most 2**62): the bias corrections
        use beta1**t and beta2**t.
    lr : float
        The learning rate (>= 0).
    beta1, beta2 : float, default 0.9 and 0.999
        The decay rates of m and v, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator (>= 0).
    weight_decay : float, default 0.0
        The weight decay λ (>= 0): added to the gradient as λ·p (L2), or with
        ``decoupled`` applied as p ← p·(1 - lr·λ) (AdamW).
    decoupled : bool, default False
        AdamW's decoupled weight decay.
    amsgrad : bool, default False
        Divide by the running maximum of v (AMSGrad).
    eps_mode : {"paper", "folded"}, default "paper"
        "paper": p -= lr/(1-beta1**t)·m / (√v/√(1-beta2**t) + eps) (PyTorch);
        "folded": p -= lr·√(1-beta2**t)/(1-beta1**t)·m / (√v + eps) (scikit-learn).

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray or has another dtype than p; a
        hyper-parameter that is not a real number (or, for flags, not a bool).
    ValueError
        Shapes that differ, a state array that is read-only, not C-contiguous, shares
        memory or is None where it is needed; a hyper-parameter out of range. Nothing
        is changed then.
    """
    c = AdamConfig(lr, beta1, beta2, eps, weight_decay, amsgrad, eps_mode, decoupled)
    p, g, (m, v, vmax) = check.step_arrays(c, p, g, m=m, v=v, vmax=vmax)
    step = check.adam_step_count(step)
    # (step_size, √(1-β₂ᵗ)): lr/(1-β₁ᵗ) (paper) or lr·√(1-β₂ᵗ)/(1-β₁ᵗ) (folded)
    bc1 = 1.0 - c.beta1 ** step
    bc2_sqrt = math.sqrt(1.0 - c.beta2 ** step)
    step_size = c.lr * bc2_sqrt / bc1 if c.folded else c.lr / bc1
    d = g
    if c.weight_decay != 0:
        if c.decoupled:
            p *= 1 - c.lr * c.weight_decay
        else:
            d = g + c.weight_decay * p
    m[...] = c.beta1 * m + (1 - c.beta1) * d if c.folded else lerp(m, d, 1 - c.beta1)
    v[...] = v * c.beta2 + (1 - c.beta2) * (d * d)
    vhat = v
    if c.amsgrad:
        np.maximum(vmax, v, out=vmax)
        vhat = vmax
    denom = np.sqrt(vhat) + c.eps if c.folded else np.sqrt(vhat) / bc2_sqrt + c.eps
    p -= step_size * (m / denom)


# ---------------------------------------------------------------- dropout
# The counter-based mask generator of fastbp/_kernels/_dropout.h (see the comment
# there), in Python ints for the per-call keys and NumPy uint64 arithmetic (which
# wraps modulo 2**64, as C's does) for the elements.

_U64 = 2**64 - 1
DROPOUT_GAMMA = 0x9E3779B97F4A7C15
DROPOUT_ABSORB = 0x632BE59BD9B4E019
_MIX1, _MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def mix64(z: int) -> int:
    """SplitMix64's finalizer of one uint64 (as a Python int)."""
    z = ((z ^ (z >> 30)) * _MIX1) & _U64
    z = ((z ^ (z >> 27)) * _MIX2) & _U64
    return z ^ (z >> 31)


def mix64_array(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """mix64 elementwise (uint64 arrays: products wrap modulo 2**64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


def dropout_key(seed: int, layer: int, step: int) -> int:
    """The key of the (seed, layer, step) stream: absorb(absorb(mix(seed + γ), layer), step)."""
    def absorb(h: int, x: int) -> int:
        return mix64(h ^ ((x * DROPOUT_GAMMA + DROPOUT_ABSORB) & _U64))
    return absorb(absorb(mix64((seed + DROPOUT_GAMMA) & _U64), layer), step)


def dropout_mask(
    seed: int,
    layer: int,
    step: int,
    shape: int | tuple[int, ...],
    p: float,
) -> npt.NDArray[np.bool_]:
    """The dropout keep-mask of (seed, layer, step), as the training engine draws it.

    Element i (C order) is kept iff its 32-bit half h of SplitMix64 output i // 2
    of the stream's key (the low half for even i, the high half for odd i) has
    h >= ceil(p·2^32).

    Parameters
    ----------
    seed : int
        The seed of the masks, in [0, 2**64).
    layer : int
        The layer's index in the model, in [0, 2**63).
    step : int
        The optimizer step whose mask is drawn, in [0, 2**62] (training counts
        steps from 1).
    shape : int or tuple of int
        The mask's shape (each dimension in [0, 2**31 - 1]).
    p : float
        The dropout probability, 0 <= p < 1: each element is dropped with
        probability p.

    Returns
    -------
    mask : ndarray of bool of shape ``shape``
        True where the element is kept. The same arguments always give the same mask.

    Raises
    ------
    TypeError
        A seed, layer, step or dimension that is not an int; a shape that is not an
        int or a tuple; a p that is not a real number.
    ValueError
        A value out of its range, or more than 2**62 elements.
    """
    seed, layer, step, dims, p = check.dropout_mask_args(seed, layer, step, shape, p)
    n = int(np.prod(dims, dtype=np.int64))
    counters = np.arange(1, (n + 1) // 2 + 1, dtype=np.uint64) * np.uint64(DROPOUT_GAMMA)
    u = mix64_array(np.uint64(dropout_key(seed, layer, step)) + counters)
    halves = np.stack([u & np.uint64(0xFFFFFFFF), u >> np.uint64(32)], axis=1).reshape(-1)[:n]
    return (halves >= np.uint64(math.ceil(p * 2.0**32))).reshape(dims)


def dropout_apply(
    A: npt.NDArray[np.floating[Any]],
    mask: npt.NDArray[np.bool_],
    p: float,
) -> npt.NDArray[np.floating[Any]]:
    """Inverted dropout A·mask/(1-p); the backward is the same product with dA.

    Parameters
    ----------
    A : ndarray
        The activations (float32 or float64, any shape), or the gradient dA in the
        backward pass.
    mask : ndarray of bool
        The keep-mask of A's shape (``dropout_mask``).
    p : float
        The dropout probability the mask was drawn with, 0 <= p < 1.

    Returns
    -------
    ndarray
        A new array of A's shape and dtype: A·1/(1-p) where mask is True, 0 where it
        is False (1/(1-p) rounded to A's dtype).

    Raises
    ------
    TypeError
        ``A`` not a float32/float64 ndarray, ``mask`` not a bool ndarray, ``p`` not
        a real number.
    ValueError
        ``mask`` of another shape than A; ``p`` outside [0, 1).
    """
    A, mask, p = check.dropout_apply_args(A, mask, p)
    m = np.where(mask, A.dtype.type(check.dropout_scale(p)), A.dtype.type(0))
    with np.errstate(invalid="ignore", over="ignore"):  # inf·0 = NaN and overflow, as in C
        return A * m


# ---------------------------------------------------------------- input derivatives

def activation_derivatives(name: str, z: _FloatArray, a: _FloatArray
                           ) -> tuple[_FloatArray, _FloatArray]:
    """(f'(z), f''(z)) element-wise, in closed form (a = f(z)); relu's and leaky relu's
    second derivative is 0 (almost everywhere)."""
    one, zero = np.ones_like(z), np.zeros_like(z)
    if name == "identity":
        return one, zero
    if name == "sigmoid":
        d1 = a * (1 - a)
        return d1, d1 * (1 - 2 * a)
    if name == "tanh":
        d1 = 1 - a * a
        return d1, -2 * a * d1
    if name == "relu":
        return np.where(z > 0, one, zero), zero
    if name == "leaky_relu":
        return np.where(z > 0, one, LEAKY_SLOPE * one), zero
    if name == "elu":
        e = ELU_ALPHA * np.exp(np.minimum(z, 0))
        return np.where(z > 0, one, e), np.where(z > 0, zero, e)
    if name == "softplus":
        s = sigmoid(z)
        return (np.where(z > SOFTPLUS_THRESHOLD, one, s),
                np.where(z > SOFTPLUS_THRESHOLD, zero, s * (1 - s)))
    if name == "gelu":
        phi = np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
        return 0.5 * erfc(-z * np.sqrt(0.5)) + z * phi, phi * (2 - z * z)
    if name == "silu":
        s = sigmoid(z)
        return s * (1 + z * (1 - s)), s * (1 - s) * (2 + z * (1 - 2 * s))
    if name == "selu":
        e = SELU_SCALE * SELU_ALPHA * np.exp(np.minimum(z, 0))
        return np.where(z > 0, SELU_SCALE * one, e), np.where(z > 0, zero, e)
    if name == "mish":
        t, s = np.tanh(softplus(z)), sigmoid(z)
        return (t + z * (1 - t * t) * s,
                (1 - t * t) * s * (2 + z * ((1 - s) - 2 * t * s)))
    raise ValueError(f"no input derivatives through {name!r}")


def network_derivatives(
    X: npt.NDArray[np.floating[Any]],
    Ws: list[npt.NDArray[np.floating[Any]]],
    bs: list[npt.NDArray[np.floating[Any]]],
    activations: list[str],
    kind: str = "jacobian",
) -> tuple[npt.NDArray[np.floating[Any]], ...]:
    """y of a Dense stack and dy/dX (and d²y/dx_j² or their sum) by forward mode: each
    layer carries the tangents T[i, j] = dA_i/dx_j and H[i, j] = d²A_i/dx_j² through
    Z = A·W + b (T·W, H·W) and A' = f(Z) (f'·T, f''·T² + f'·H).

    Parameters
    ----------
    X, Ws, bs, activations
        The input (n, in) and the Dense stack: per layer the weights (in_l, out_l), the
        bias (out_l,) and the activation's name.
    kind : {"jacobian", "hessian_diagonal", "laplacian"}
        What to carry besides the Jacobian.

    Returns
    -------
    (Y, J) or (Y, J, H) or (Y, J, L)
        The output, J[i, k, j] = dy_k/dx_j, and d²y_k/dx_j² or its sum over j.
    """
    X, Ws, bs, _ = check.network_args(X, Ws, bs, activations)
    if kind not in ("jacobian", "hessian_diagonal", "laplacian"):
        raise ValueError(f"kind must be one of ('jacobian', 'hessian_diagonal', 'laplacian'), "
                         f"got {kind!r}")
    n, n_in = X.shape
    A = X
    T = np.broadcast_to(np.eye(n_in, dtype=X.dtype), (n, n_in, n_in))   # dX/dx_j
    H = np.zeros_like(T)                                                 # d²X/dx_j²
    for W, b, act in zip(Ws, bs, activations):
        Z = A @ W + b
        TZ, HZ = T @ W, H @ W
        A = FORWARD[act](Z).astype(X.dtype, copy=False)   # (NumPy scalars may widen)
        d1, d2 = (d.astype(X.dtype, copy=False) for d in activation_derivatives(act, Z, A))
        T = d1[:, None, :] * TZ
        H = d2[:, None, :] * TZ * TZ + d1[:, None, :] * HZ
    J = np.ascontiguousarray(T.transpose(0, 2, 1))
    if kind == "jacobian":
        return A, J
    Hd = np.ascontiguousarray(H.transpose(0, 2, 1))
    return (A, J, Hd) if kind == "hessian_diagonal" else (A, J, Hd.sum(axis=2))


def network_input_gradient(
    X: npt.NDArray[np.floating[Any]],
    Ws: list[npt.NDArray[np.floating[Any]]],
    bs: list[npt.NDArray[np.floating[Any]]],
    activations: list[str],
    output: int | None = None,
) -> npt.NDArray[np.floating[Any]]:
    """d(Σ_k y_k)/dX (or dy_output/dX): the Jacobian's rows summed (or one row).

    Parameters
    ----------
    X, Ws, bs, activations
        The input (n, in) and the Dense stack: per layer the weights (in_l, out_l), the
        bias (out_l,) and the activation's name.
    output : int or None
        The output to differentiate (None: their sum).
    """
    _, J = network_derivatives(X, Ws, bs, activations, "jacobian")
    if output is None:
        return np.ascontiguousarray(J.sum(axis=1))
    return np.ascontiguousarray(J[:, check.int_in_range(output, "output", 0, J.shape[1]), :])


# ---------------------------------------------------------------- layer normalisation

def layer_norm_forward(
    X: npt.NDArray[np.floating[Any]],
    gamma: npt.NDArray[np.floating[Any]] | None,
    beta: npt.NDArray[np.floating[Any]] | None,
    eps: float = 1e-5,
    groups: int = 1,
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]],
           npt.NDArray[np.floating[Any]]]:
    """A = γ·x̂ + β, x̂ = (x − mean(x))/√(var(x) + eps) per row (per row block with
    ``groups``), in NumPy.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        float32 or float64 (n_samples may be 0).
    gamma, beta : ndarray of shape (n_features,) or None
        The affine map; both None for none.
    eps : float, default 1e-5
        Added to the (biased) variance.
    groups : int, default 1
        As ``fastbp.ops.layer_norm_forward``.

    Returns
    -------
    A, Xhat : ndarray of shape (n_samples, n_features)
    rstd : ndarray of shape (n_samples · groups,)

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.layer_norm_forward``.
    """
    X, gamma, beta, eps, groups = check.layer_norm_forward_args(X, gamma, beta, eps, groups)
    n, width = X.shape
    blocks = X.reshape(n * groups, width // groups)   # a row's blocks, one after another
    mean = blocks.mean(axis=1, keepdims=True)
    var = ((blocks - mean) ** 2).mean(axis=1, keepdims=True)
    rstd = (1 / np.sqrt(var + eps)).astype(X.dtype)
    Xhat = ((blocks - mean) * rstd).astype(X.dtype).reshape(n, width)
    A = Xhat.copy() if gamma is None else gamma * Xhat + beta
    return A, Xhat, rstd[:, 0]


def layer_norm_backward(
    Xhat: npt.NDArray[np.floating[Any]],
    rstd: npt.NDArray[np.floating[Any]],
    gamma: npt.NDArray[np.floating[Any]] | None,
    dA: npt.NDArray[np.floating[Any]],
    need_dX: bool = True,
    groups: int = 1,
) -> tuple[npt.NDArray[np.floating[Any]] | None, npt.NDArray[np.floating[Any]] | None,
           npt.NDArray[np.floating[Any]] | None]:
    """dX = r·(g − mean(g) − x̂·mean(g·x̂)) with g = γ·dA (per row block with
    ``groups``); dγ = Σ dA·x̂; dβ = Σ dA.

    Parameters
    ----------
    Xhat, rstd, gamma, dA, need_dX, groups
        As ``fastbp.ops.layer_norm_backward``.

    Returns
    -------
    dX : ndarray of shape (n_samples, n_features) or None
    dgamma, dbeta : ndarray of shape (n_features,) or None

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.layer_norm_backward``.
    """
    Xhat, rstd, gamma, dA, need_dX, groups = check.layer_norm_backward_args(
        Xhat, rstd, gamma, dA, need_dX, groups)
    g = dA if gamma is None else dA * gamma
    dX = None
    if need_dX:
        n, width = Xhat.shape
        gb = g.reshape(n * groups, width // groups)
        xb = Xhat.reshape(n * groups, width // groups)
        dX = rstd[:, None] * (gb - gb.mean(axis=1, keepdims=True)
                              - xb * (gb * xb).mean(axis=1, keepdims=True))
        dX = dX.astype(Xhat.dtype).reshape(n, width)
    if gamma is None:
        return dX, None, None
    return dX, (dA * Xhat).sum(axis=0), dA.sum(axis=0)


# ---------------------------------------------------------------- periodic embeddings

def periodic_embedding_forward(
    X: npt.NDArray[np.floating[Any]],
    frequencies: npt.NDArray[np.floating[Any]],
    weight: npt.NDArray[np.floating[Any]],
    bias: npt.NDArray[np.floating[Any]],
    activation: bool = True,
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]],
           npt.NDArray[np.floating[Any]]]:
    """P_f = [cos a, sin a], a = (2π·frequencies[f])·x_f; Z_f = P_f·W_f + b_f; A = relu(Z).

    Parameters
    ----------
    X, frequencies, weight, bias, activation
        As ``fastbp.ops.periodic_embedding_forward``.

    Returns
    -------
    A, Z : ndarray of shape (n_samples, n_features·d)
    P : ndarray of shape (n_features, n_samples, 2·n_frequencies)

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.periodic_embedding_forward``.
    """
    X, freq, W, b, lite = check.periodic_args(X, frequencies, weight, bias)
    assert b is not None
    relu = check.flag(activation, "activation")
    angles = (2 * math.pi * freq.T)[None] * X[:, None, :]          # (n, k, F)
    P = np.concatenate([np.cos(angles), np.sin(angles)], axis=1).transpose(2, 0, 1)
    Ws = [W] * X.shape[1] if lite else list(W)
    bs = [b] * X.shape[1] if lite else list(b)
    Z = np.concatenate([P[f] @ Ws[f] + bs[f] for f in range(X.shape[1])], axis=1) \
        if X.shape[0] else np.zeros((0, X.shape[1] * W.shape[-1]), dtype=X.dtype)
    Z = Z.astype(X.dtype)
    return (np.maximum(Z, 0) if relu else Z.copy()), Z, np.ascontiguousarray(P, dtype=X.dtype)


def periodic_embedding_backward(
    X: npt.NDArray[np.floating[Any]],
    frequencies: npt.NDArray[np.floating[Any]],
    weight: npt.NDArray[np.floating[Any]],
    P: npt.NDArray[np.floating[Any]],
    Z: npt.NDArray[np.floating[Any]],
    A: npt.NDArray[np.floating[Any]],
    dA: npt.NDArray[np.floating[Any]],
    activation: bool = True,
    need_dX: bool = True,
) -> tuple[npt.NDArray[np.floating[Any]] | None, npt.NDArray[np.floating[Any]],
           npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]:
    """The chain rule through relu, the per-feature linear maps and the angles.

    Parameters
    ----------
    X, frequencies, weight, P, Z, A, dA, activation, need_dX
        As ``fastbp.ops.periodic_embedding_backward``.

    Returns
    -------
    dX or None, dfrequencies, dweight, dbias

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.periodic_embedding_backward``.
    """
    X, freq, W, _, lite = check.periodic_args(X, frequencies, weight)
    relu = check.flag(activation, "activation")
    need_dX = check.flag(need_dX, "need_dX")
    n, F = X.shape
    k, d = freq.shape[1], W.shape[-1]
    dZ = np.where(Z > 0, dA, 0) if relu else np.asarray(dA)
    dZf = dZ.reshape(n, F, d).transpose(1, 0, 2)                   # (F, n, d)
    Ws = np.broadcast_to(W, (F, 2 * k, d)) if lite else W
    dW_f = np.einsum("fnj,fnd->fjd", P, dZf)
    db_f = dZf.sum(axis=1)
    dP = np.einsum("fnd,fjd->fnj", dZf, Ws)
    g = P[..., :k] * dP[..., k:] - P[..., k:] * dP[..., :k]        # (F, n, k)
    dfreq = np.einsum("fnk,nf->fk", g, X) * (2 * math.pi)
    dX = (np.einsum("fnk,fk->nf", g, freq) * (2 * math.pi)).astype(X.dtype) if need_dX else None
    dW = dW_f.sum(axis=0) if lite else dW_f
    db = db_f.sum(axis=0) if lite else db_f
    return dX, dfreq.astype(X.dtype), dW.astype(X.dtype), db.astype(X.dtype)


# ---------------------------------------------------------------- piecewise-linear encoding

def _ple_feature(x: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One feature's encoding before and after its clamps, and the clamps' pass mask:
    v_j = (x − e_j)/(e_{j+1} − e_j) as rtdl computes it (x·(1/width) − e_j/width)."""
    width = np.diff(e)
    v = (1 / width)[None, :] * x[:, None] + (-e[:-1] / width)[None, :]
    lo = np.zeros(width.size)
    hi = np.ones(width.size)
    lo[0], hi[-1] = -np.inf, np.inf   # (a lone bin: both, so unclamped)
    return v, np.clip(v, lo, hi), (v >= lo) & (v <= hi)


def piecewise_linear_encoding_forward(
    X: npt.NDArray[np.floating[Any]], bins: list[Any],
) -> npt.NDArray[np.floating[Any]]:
    """Per feature: [1, ..., 1, (x − e_j)/width_j, 0, ..., 0], unclamped at the ends
    (below the first edge the first value goes negative, above the last the last
    exceeds 1).

    Parameters
    ----------
    X, bins
        As ``fastbp.ops.piecewise_linear_encoding_forward``.

    Returns
    -------
    ndarray of shape (n_samples, total bins)

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.piecewise_linear_encoding_forward``.
    """
    X, bins = ple_args(X, bins)
    parts = [_ple_feature(X[:, f], e)[1] for f, e in enumerate(bins)]
    return np.concatenate(parts, axis=1).astype(X.dtype)


def piecewise_linear_encoding_backward(
    X: npt.NDArray[np.floating[Any]], bins: list[Any], dA: npt.NDArray[np.floating[Any]],
) -> npt.NDArray[np.floating[Any]]:
    """dx_f = Σ_j dA_j/width_j over the feature's values that no clamp stopped.

    Parameters
    ----------
    X, bins, dA
        As ``fastbp.ops.piecewise_linear_encoding_backward``.

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.piecewise_linear_encoding_backward``.
    """
    X, bins = ple_args(X, bins)
    dA = check.float_array(dA, "dA", 2, X.dtype)
    total = sum(e.size - 1 for e in bins)
    if dA.shape != (X.shape[0], total):
        raise ValueError(f"dA must have shape {(X.shape[0], total)}, got {dA.shape}")
    dX = np.zeros_like(X)
    col = 0
    for f, e in enumerate(bins):
        _, _, passes = _ple_feature(X[:, f], e)
        m = e.size - 1
        dX[:, f] = (np.where(passes, dA[:, col:col + m], 0) / np.diff(e)).sum(axis=1)
        col += m
    return dX


# ---------------------------------------------------------------- categorical embeddings

def categorical_embedding_forward(
    X: npt.NDArray[np.floating[Any]], columns: Any, tables: list[Any],
) -> npt.NDArray[np.floating[Any]]:
    """[X's numeric columns, tables[0][codes₀], tables[1][codes₁], ...].

    Parameters
    ----------
    X, columns, tables
        As ``fastbp.ops.categorical_embedding_forward``.

    Returns
    -------
    ndarray of shape (n_samples, n_features − len(columns) + Σ dim)

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.categorical_embedding_forward``.
    """
    X, cols, tabs = categorical_args(X, columns, tables)
    numeric = [c for c in range(X.shape[1]) if c not in cols]
    parts = [X[:, numeric]] + [t[X[:, c].astype(np.intp)] for c, t in zip(cols, tabs)]
    return np.concatenate(parts, axis=1)


def categorical_embedding_backward(
    X: npt.NDArray[np.floating[Any]], columns: Any, tables: list[Any],
    dA: npt.NDArray[np.floating[Any]],
) -> tuple[npt.NDArray[np.floating[Any]], list[npt.NDArray[np.floating[Any]]]]:
    """dX: dA's numeric part in its columns; d table j: np.add.at over the codes.

    Parameters
    ----------
    X, columns, tables, dA
        As ``fastbp.ops.categorical_embedding_backward``.

    Returns
    -------
    dX, dtables

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.categorical_embedding_backward``.
    """
    X, cols, tabs = categorical_args(X, columns, tables)
    numeric = [c for c in range(X.shape[1]) if c not in cols]
    width = len(numeric) + sum(t.shape[1] for t in tabs)
    dA = check.float_array(dA, "dA", 2, X.dtype)
    if dA.shape != (X.shape[0], width):
        raise ValueError(f"dA must have shape {(X.shape[0], width)}, got {dA.shape}")
    dX = np.zeros_like(X)
    dX[:, numeric] = dA[:, :len(numeric)]
    dtabs, at = [], len(numeric)
    for c, t in zip(cols, tabs):
        g = np.zeros_like(t)
        np.add.at(g, X[:, c].astype(np.intp), dA[:, at:at + t.shape[1]])
        dtabs.append(g)
        at += t.shape[1]
    return dX, dtabs


# ---------------------------------------------------------------- ensembles (TabM)

def batch_ensemble_forward(
    X: npt.NDArray[np.floating[Any]],
    W: npt.NDArray[np.floating[Any]],
    r: npt.NDArray[np.floating[Any]],
    s: npt.NDArray[np.floating[Any]],
    b: npt.NDArray[np.floating[Any]] | None = None,
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]],
           npt.NDArray[np.floating[Any]]]:
    """(Y, U, V) of k BatchEnsemble linear maps, in NumPy: U = X ∘ r, V = U·W,
    Y = V ∘ s + b (see fastbp.ops.batch_ensemble_forward).

    Parameters
    ----------
    X : ndarray of shape (n_samples, k, d_in) or (n_samples, d_in)
    W : ndarray of shape (d_in, d_out)
    r : ndarray of shape (k, d_in)
    s : ndarray of shape (k, d_out)
    b : ndarray of shape (k, d_out) or None, default None

    Returns
    -------
    Y, U, V : ndarray
        Of shapes (n, k, d_out), (n, k, d_in), (n, k, d_out).
    """
    X, W, r, s, b, shared = check.batch_ensemble_args(X, W, r, s, b)
    U = (X[:, None, :] if shared else X) * r
    V = U @ W
    Y = V * s if b is None else V * s + b
    return Y, U, V


def batch_ensemble_backward(
    X: npt.NDArray[np.floating[Any]],
    W: npt.NDArray[np.floating[Any]],
    r: npt.NDArray[np.floating[Any]],
    s: npt.NDArray[np.floating[Any]],
    U: npt.NDArray[np.floating[Any]],
    V: npt.NDArray[np.floating[Any]],
    dY: npt.NDArray[np.floating[Any]],
    bias: bool = True,
    need_dX: bool = True,
) -> tuple[npt.NDArray[np.floating[Any]] | None, npt.NDArray[np.floating[Any]],
           npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]],
           npt.NDArray[np.floating[Any]] | None]:
    """(dX, dW, dr, ds, db) of ``batch_ensemble_forward``, in NumPy.

    Parameters
    ----------
    X, W, r, s : ndarray
        The forward's inputs.
    U, V : ndarray
        The forward's U and V.
    dY : ndarray of shape (n_samples, k, d_out)
    bias, need_dX : bool, default True
        Compute db, dX (False: None in their place).

    Returns
    -------
    dX, dW, dr, ds, db : ndarray or None
    """
    X, W, r, s, _, shared = check.batch_ensemble_args(X, W, r, s, None)
    n, (k, d_in), d_out = X.shape[0], r.shape, W.shape[1]
    U = check.ensemble_array(U, "U", (n, k, d_in), W.dtype)
    V = check.ensemble_array(V, "V", (n, k, d_out), W.dtype)
    dY = check.ensemble_array(dY, "dY", (n, k, d_out), W.dtype)
    dV = dY * s
    dU = dV @ W.T
    Xm = X[:, None, :] if shared else X
    dr = (dU * Xm).sum(axis=0)
    dX = None
    if check.flag(need_dX, "need_dX"):
        dX = (dU * r).sum(axis=1) if shared else dU * r
    dW = U.reshape(-1, d_in).T @ dV.reshape(-1, d_out)
    db = dY.sum(axis=0) if check.flag(bias, "bias") else None
    return dX, dW, dr, (dY * V).sum(axis=0), db


def linear_ensemble_forward(
    X: npt.NDArray[np.floating[Any]],
    W: npt.NDArray[np.floating[Any]],
    b: npt.NDArray[np.floating[Any]] | None = None,
) -> npt.NDArray[np.floating[Any]]:
    """Y[:, m] = X[:, m]·W_m + b_m, in NumPy (see fastbp.ops.linear_ensemble_forward).

    Parameters
    ----------
    X : ndarray of shape (n_samples, k, d_in)
    W : ndarray of shape (k, d_in, d_out)
    b : ndarray of shape (k, d_out) or None, default None

    Returns
    -------
    Y : ndarray of shape (n_samples, k, d_out)
    """
    X, W, b = check.linear_ensemble_args(X, W, b)
    Y = np.einsum("nki,kio->nko", X, W)
    return Y if b is None else Y + b


def linear_ensemble_backward(
    X: npt.NDArray[np.floating[Any]],
    W: npt.NDArray[np.floating[Any]],
    dY: npt.NDArray[np.floating[Any]],
    bias: bool = True,
    need_dX: bool = True,
) -> tuple[npt.NDArray[np.floating[Any]] | None, npt.NDArray[np.floating[Any]],
           npt.NDArray[np.floating[Any]] | None]:
    """(dX, dW, db) of ``linear_ensemble_forward``, in NumPy.

    Parameters
    ----------
    X, W : ndarray
        The forward's inputs.
    dY : ndarray of shape (n_samples, k, d_out)
    bias, need_dX : bool, default True
        Compute db, dX (False: None in their place).

    Returns
    -------
    dX, dW, db : ndarray or None
    """
    X, W, _ = check.linear_ensemble_args(X, W, None)
    dY = check.ensemble_array(dY, "dY", (X.shape[0],) + (W.shape[0], W.shape[2]), W.dtype)
    dX = np.einsum("nko,kio->nki", dY, W) if check.flag(need_dX, "need_dX") else None
    db = dY.sum(axis=0) if check.flag(bias, "bias") else None
    return dX, np.einsum("nki,nko->kio", X, dY), db


# ---------------------------------------------------------------- RealMLP's layers

def scale_forward(
    X: npt.NDArray[np.floating[Any]],
    s: npt.NDArray[np.floating[Any]],
) -> npt.NDArray[np.floating[Any]]:
    """A = X·s, in NumPy.

    Parameters
    ----------
    X, s
        As ``fastbp.ops.scale_forward``.

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.scale_forward``.
    """
    X, s = check.column_scale_args(X, s, "s")
    return X * s


def scale_backward(
    X: npt.NDArray[np.floating[Any]],
    s: npt.NDArray[np.floating[Any]],
    dA: npt.NDArray[np.floating[Any]],
    need_dX: bool = True,
) -> tuple[npt.NDArray[np.floating[Any]] | None, npt.NDArray[np.floating[Any]]]:
    """(dA·s or None, Σ_rows dA·X), in NumPy.

    Parameters
    ----------
    X, s, dA, need_dX
        As ``fastbp.ops.scale_backward``.

    Returns
    -------
    dX : ndarray or None
    ds : ndarray of shape (n_features,)

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.scale_backward``.
    """
    X, s, dA, _, need = check.column_scale_backward_args(X, s, "s", dA, need_dX)
    ds = (dA.astype(np.float64) * X).sum(axis=0).astype(X.dtype)
    return (dA * s if need else None), ds


def parametric_activation_forward(
    name: str,
    X: npt.NDArray[np.floating[Any]],
    alpha: npt.NDArray[np.floating[Any]],
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]:
    """(X + α·(f(X) − X), f(X)), in NumPy.

    Parameters
    ----------
    name, X, alpha
        As ``fastbp.ops.parametric_activation_forward``.

    Returns
    -------
    A, F : ndarray of shape (n_samples, n_features)

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.parametric_activation_forward``.
    """
    check.elementwise_activation(name)
    X, alpha = check.column_scale_args(X, alpha, "alpha")
    F = FORWARD[name](X)
    return X + alpha * (F - X), F


def parametric_activation_backward(
    name: str,
    X: npt.NDArray[np.floating[Any]],
    alpha: npt.NDArray[np.floating[Any]],
    F: npt.NDArray[np.floating[Any]],
    dA: npt.NDArray[np.floating[Any]],
    need_dX: bool = True,
) -> tuple[npt.NDArray[np.floating[Any]] | None, npt.NDArray[np.floating[Any]]]:
    """(dA + α·(f'(X)·dA − dA) or None, Σ_rows dA·(F − X)), in NumPy.

    Parameters
    ----------
    name, X, alpha, F, dA, need_dX
        As ``fastbp.ops.parametric_activation_backward``.

    Returns
    -------
    dX : ndarray or None
    dalpha : ndarray of shape (n_features,)

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.parametric_activation_backward``.
    """
    check.elementwise_activation(name)
    X, alpha, dA, F_, need = check.column_scale_backward_args(X, alpha, "alpha", dA, need_dX,
                                                              F)
    assert F_ is not None
    F = F_
    dalpha = (dA.astype(np.float64) * (F.astype(np.float64) - X)).sum(axis=0).astype(X.dtype)
    if not need:
        return None, dalpha
    return dA + alpha * (BACKWARD[name](X, F, dA) - dA), dalpha


def periodic_bias_embedding_forward(
    X: npt.NDArray[np.floating[Any]],
    frequencies: npt.NDArray[np.floating[Any]],
    phases: npt.NDArray[np.floating[Any]],
    weight: npt.NDArray[np.floating[Any]],
    bias: npt.NDArray[np.floating[Any]],
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]:
    """[cos(2π·c_f·x_f + φ_f)·W_f + b_f for f < F, X], and P = [cos, sin] (F, n, 2k), in
    NumPy.

    Parameters
    ----------
    X, frequencies, phases, weight, bias
        As ``fastbp.ops.periodic_bias_embedding_forward``.

    Returns
    -------
    A : ndarray of shape (n_samples, F·d + n_in)
    P : ndarray of shape (F, n_samples, 2·k)

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.periodic_bias_embedding_forward``.
    """
    X, freq, phases_, W, b = check.periodic_bias_args(X, frequencies, phases, weight, bias)
    assert phases_ is not None and b is not None
    F = freq.shape[0]
    angles = (2 * math.pi * freq)[:, None, :] * X.T[:F, :, None] + phases_[:, None, :]
    P = np.concatenate([np.cos(angles), np.sin(angles)], axis=2)   # (F, n, 2k)
    k = freq.shape[1]
    emb = [P[f, :, :k] @ W[f] + b[f] for f in range(F)]
    return np.concatenate(emb + [X], axis=1).astype(X.dtype), P.astype(X.dtype)


def periodic_bias_embedding_backward(
    X: npt.NDArray[np.floating[Any]],
    frequencies: npt.NDArray[np.floating[Any]],
    weight: npt.NDArray[np.floating[Any]],
    P: npt.NDArray[np.floating[Any]],
    dA: npt.NDArray[np.floating[Any]],
    need_dX: bool = True,
) -> tuple[npt.NDArray[np.floating[Any]] | None, npt.NDArray[np.floating[Any]],
           npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]],
           npt.NDArray[np.floating[Any]]]:
    """The backward of ``periodic_bias_embedding_forward``, in NumPy.

    Parameters
    ----------
    X, frequencies, weight, P, dA, need_dX
        As ``fastbp.ops.periodic_bias_embedding_backward``.

    Returns
    -------
    dX : ndarray or None
    dfrequencies, dphases, dweight, dbias : ndarray

    Raises
    ------
    TypeError, ValueError
        As ``fastbp.ops.periodic_bias_embedding_backward``.
    """
    X, freq, W, P, dA, need = check.periodic_bias_backward_args(X, frequencies, weight, P, dA,
                                                                need_dX)
    (F, k), d = freq.shape, W.shape[2]
    cos, sin = P[:, :, :k], P[:, :, k:]
    D = [dA[:, f * d:(f + 1) * d] for f in range(F)]
    dW = np.stack([cos[f].T @ D[f] for f in range(F)])
    db = np.stack([D[f].sum(axis=0) for f in range(F)])
    g = np.stack([-sin[f] * (D[f] @ W[f].T) for f in range(F)])      # (F, n, k)
    dphase = g.sum(axis=1)
    dfreq = 2 * math.pi * (g * X.T[:F, :, None]).sum(axis=1)
    dX = None
    if need:
        dX = dA[:, F * d:].copy()
        dX[:, :F] += 2 * math.pi * (g * freq[:, None, :]).sum(axis=2).T
    return dX, dfreq, dphase, dW, db
