"""fastbp's public kernel functions, each running one compiled kernel.

Each function validates its inputs once (:mod:`fastbp._validation`, shared
with :mod:`fastbp.reference`), allocates its outputs, and calls one compiled
kernel from ``fastbp._kernels`` with the GIL released. Read-only inputs may be
strided, Fortran-ordered or read-only (they are copied to C order when
needed); arrays updated in place must be writable and C-contiguous.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from fastbp import _validation as check
from fastbp._bins import ple_args, ple_table
from fastbp._codes import categorical_args, layout
from fastbp._kernels import activations as _act
from fastbp._kernels import dense as _dense
from fastbp._kernels import derivatives as _deriv
from fastbp._kernels import dropout as _dropout
from fastbp._kernels import embed as _embed
from fastbp._kernels import losses as _loss
from fastbp._kernels import norm as _norm
from fastbp._kernels import optim as _optim
from fastbp._kernels import scaling as _scaling
from fastbp._optim_config import AdaGradConfig, AdamConfig, RMSpropConfig, SGDConfig
from fastbp._validation import ACTIVATIONS, LOSSES
from fastbp._workspace import Workspace

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

#: the kinds of network_derivatives (and the kernel's mode of each)
DERIVATIVE_KINDS = {"jacobian": _deriv.MODE_JACOBIAN,
                    "hessian_diagonal": _deriv.MODE_HESSIAN_DIAG,
                    "laplacian": _deriv.MODE_LAPLACIAN}


def activation_forward(
    name: str,
    Z: npt.NDArray[np.floating[Any]],
) -> npt.NDArray[np.floating[Any]]:
    """A = f(Z): the activation ``name`` applied to Z, in one compiled kernel.

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
    code, Z = check.activation_args(name, Z)
    A = np.empty_like(Z)
    _act.activation_forward_into(code, Z, A)
    return A


def activation_backward(
    name: str,
    Z: npt.NDArray[np.floating[Any]],
    A: npt.NDArray[np.floating[Any]],
    dA: npt.NDArray[np.floating[Any]],
) -> npt.NDArray[np.floating[Any]]:
    """dZ = dL/dZ given dA = dL/dA: the backward pass of the activation ``name``.

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
    code, Z, A, dA = check.activation_backward_args(name, Z, A, dA)
    dZ = np.empty_like(Z)
    _act.activation_backward_into(code, Z, A, dA, dZ)
    return dZ


def dense_forward(
    X: npt.NDArray[np.floating[Any]],
    W: npt.NDArray[np.floating[Any]],
    b: npt.NDArray[np.floating[Any]],
    activation: str,
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]:
    """Z = X·W + b, A = f(Z): a dense layer's forward pass.

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
    code, X, W, b = check.dense_forward_args(X, W, b, activation)
    shape = (X.shape[0], W.shape[1])
    Z = np.empty(shape, dtype=X.dtype)
    A = np.empty(shape, dtype=X.dtype)
    if X.shape[0]:
        if isinstance(X, _dense.SparseRows):
            _dense.sparse_dense_forward_into(code, X, W, b, Z, A)
        else:
            _dense.dense_forward_into(code, X, W, b, Z, A)
    return Z, A


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
    """dZ = f'(Z)·dA; dW = Xᵀ·dZ; db = Σ_rows dZ; dX = dZ·Wᵀ (None unless need_dX).

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
    code, X, W, Z, A, dA, need_dX = check.dense_backward_args(X, W, Z, A, dA, activation,
                                                               need_dX)
    dX = np.empty(X.shape, dtype=X.dtype) if need_dX else None
    if X.shape[0] == 0:  # an empty batch contributes nothing
        return dX, np.zeros_like(W), np.zeros(W.shape[1], dtype=W.dtype)
    dW = np.empty_like(W)
    db = np.empty(W.shape[1], dtype=W.dtype)
    if isinstance(X, _dense.SparseRows):   # dX (dense, n × in_features) from dZ, by BLAS
        dZ = np.empty_like(Z)
        _dense.sparse_dense_backward_into(code, X, Z, A, dA, dZ, dW, db)
        return (dZ @ W.T if need_dX else None), dW, db
    _dense.dense_backward_into(code, X, W, Z, A, dA, np.empty_like(Z), dX, dW, db, bool(need_dX))
    return dX, dW, db


def loss_forward_backward(
    name: str,
    output: npt.NDArray[np.floating[Any]],
    target: npt.NDArray[Any],
    sample_weight: npt.ArrayLike | None = None,
) -> tuple[float, npt.NDArray[np.floating[Any]]]:
    """(mean loss, dL/d_output) of the raw output against target.

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
    code, output, target, labels = check.loss_args(name, output, target)
    w = check.sample_weight(sample_weight, output.shape[0])
    d_out = np.empty_like(output)
    if w is not None:
        loss = _loss.weighted_loss_into(code, output, target, labels, w, d_out)
    elif labels is not None:
        loss = _loss.cross_entropy_labels_into(output, labels, d_out)
    else:
        loss = _loss.loss_forward_backward_into(code, output, target, d_out)
    return float(loss), d_out


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
    """torch.optim.SGD step, in place on p (and buf).

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
    config = SGDConfig(lr, momentum, dampening, nesterov, weight_decay)
    first_step = check.flag(first_step, "first_step")
    p, g, (buf,) = check.step_arrays(config, p, g, buf=buf)
    if p.size:
        _optim.sgd_step_into(p.reshape(-1), g.reshape(-1), _flat(buf), config, first_step)


def adagrad_step(
    p: npt.NDArray[np.floating[Any]],
    g: npt.NDArray[np.floating[Any]],
    sum_sq: npt.NDArray[np.floating[Any]],
    *,
    lr: float,
    eps: float = 1e-10,
    weight_decay: float = 0.0,
) -> None:
    """torch.optim.Adagrad step, in place on p and sum_sq.

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
    config = AdaGradConfig(lr, eps, weight_decay)
    p, g, (sum_sq,) = check.step_arrays(config, p, g, sum_sq=sum_sq)
    if p.size:
        _optim.adagrad_step_into(p.reshape(-1), g.reshape(-1), sum_sq.reshape(-1), config)


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
    """torch.optim.RMSprop step, in place on p and its state.

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
    config = RMSpropConfig(lr, alpha, eps, momentum, centered, weight_decay)
    p, g, (sq_avg, buf, grad_avg) = check.step_arrays(config, p, g, sq_avg=sq_avg, buf=buf,
                                                      grad_avg=grad_avg)
    if p.size:
        _optim.rmsprop_step_into(p.reshape(-1), g.reshape(-1), sq_avg.reshape(-1), _flat(buf),
                                 _flat(grad_avg), config)


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
    """torch.optim.Adam/AdamW step (eps_mode="folded": scikit-learn's Adam), in place.

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
    config = AdamConfig(lr, beta1, beta2, eps, weight_decay, amsgrad, eps_mode, decoupled)
    p, g, (m, v, vmax) = check.step_arrays(config, p, g, m=m, v=v, vmax=vmax)
    step = check.adam_step_count(step)
    if p.size:
        _optim.adam_step_into(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                              _flat(vmax), config, step)


def dropout_mask(
    seed: int,
    layer: int,
    step: int,
    shape: int | tuple[int, ...],
    p: float,
) -> npt.NDArray[np.bool_]:
    """The dropout keep-mask of (seed, layer, step), as the training engine draws it.

    The mask of layer ``layer`` at optimizer step ``step``; the generator is
    described in fastbp/_kernels/_dropout.h.

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
    keep = np.empty(math.prod(dims), dtype=np.uint8)
    _dropout.dropout_mask_into(seed, layer, step, p, keep)
    return keep.view(np.bool_).reshape(dims)


def dropout_apply(
    A: npt.NDArray[np.floating[Any]],
    mask: npt.NDArray[np.bool_],
    p: float,
) -> npt.NDArray[np.floating[Any]]:
    """Inverted dropout A·mask/(1-p) (the engine's loop; also its backward, with dA).

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
    out = A.copy(order="C")
    _dropout.dropout_apply_into(mask.view(np.uint8).reshape(-1), check.dropout_scale(p),
                                out.reshape(-1))
    return out


def _flat(a: np.ndarray | None) -> np.ndarray | None:
    """A flat view of an optional state buffer (C-contiguous, so never a copy)."""
    return None if a is None else a.reshape(-1)


def network_derivatives(
    X: npt.NDArray[np.floating[Any]],
    Ws: list[npt.NDArray[np.floating[Any]]],
    bs: list[npt.NDArray[np.floating[Any]]],
    activations: list[str],
    kind: str = "jacobian",
) -> tuple[npt.NDArray[np.floating[Any]], ...]:
    """The output of a Dense stack and its derivatives with respect to the input, in one
    forward-mode pass.

    Layer l computes ``A_l = activations[l](A_{l-1}·Ws[l] + bs[l])`` from ``A_0 = X``; the
    output y is the last A (the raw output of a model).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_in)
        float32 or float64.
    Ws, bs : list of ndarray
        Per layer, W of shape (k_in, k_out) and b of shape (k_out,), chained, of X's dtype.
    activations : list of str
        One activation per layer, any of ACTIVATIONS but softmax.
    kind : {"jacobian", "hessian_diagonal", "laplacian"}, default "jacobian"
        What to compute besides y: J[i, k, j] = dy_k/dx_j; also H[i, k, j] = d²y_k/dx_j²
        ("hessian_diagonal") or L[i, k] = Σ_j d²y_k/dx_j² ("laplacian").

    Returns
    -------
    (Y, J) or (Y, J, H) or (Y, J, L)
        Y (n_samples, n_out), J and H (n_samples, n_out, n_in), L (n_samples, n_out), of
        X's dtype.

    Raises
    ------
    TypeError
        Arrays of another kind or dtype, Ws/bs/activations not lists.
    ValueError
        Shapes that do not chain, an unknown activation or kind, softmax.
    """
    X, Ws, bs, codes = check.network_args(X, Ws, bs, activations)
    if kind not in DERIVATIVE_KINDS:
        raise ValueError(f"kind must be one of {tuple(DERIVATIVE_KINDS)}, got {kind!r}")
    return derivatives_checked(X, Ws, bs, codes, kind, Workspace(limit_bytes=0))


def derivatives_checked(X: np.ndarray, Ws: list[np.ndarray], bs: list[np.ndarray],
                        codes: list[int], kind: str, scratch: Workspace) -> tuple[Any, ...]:
    """network_derivatives on checked arguments, its scratch from ``scratch`` (a model's
    Workspace, under the model's lock; the outputs are always new arrays)."""
    mode = DERIVATIVE_KINDS[kind]
    n, n_in = X.shape
    n_out = Ws[-1].shape[1]
    dt = X.dtype
    Y = np.empty((n, n_out), dtype=dt)
    T_out = np.empty((n * n_in, n_out), dtype=dt)
    S_rows = n * n_in if kind == "hessian_diagonal" else n
    S_out = None if kind == "jacobian" else np.empty((S_rows, n_out), dtype=dt)
    if n:
        kmax = max(W.shape[1] for W in Ws)
        small = [scratch.get(f"small{i}", (n, kmax), dt) for i in range(4)]
        tall = [scratch.get(f"tall{i}", (n * n_in, kmax), dt) for i in range(2)]
        S = None if S_out is None else [scratch.get(f"second{i}", (S_rows, kmax), dt)
                                        for i in range(2)]
        _deriv.derivatives_into(Ws, bs, codes, X, mode, Y, T_out, S_out, *small, *tall,
                                *(S or (None, None)))
    J = np.ascontiguousarray(T_out.reshape(n, n_in, n_out).transpose(0, 2, 1))
    if kind == "jacobian":
        return Y, J
    if kind == "hessian_diagonal":
        assert S_out is not None
        return Y, J, np.ascontiguousarray(S_out.reshape(n, n_in, n_out).transpose(0, 2, 1))
    assert S_out is not None
    return Y, J, S_out


def network_input_gradient(
    X: npt.NDArray[np.floating[Any]],
    Ws: list[npt.NDArray[np.floating[Any]]],
    bs: list[npt.NDArray[np.floating[Any]]],
    activations: list[str],
    output: int | None = None,
) -> npt.NDArray[np.floating[Any]]:
    """d(Σ_k y_k)/dX, or dy_output/dX, of a Dense stack (see network_derivatives), by one
    reverse-mode pass.

    Parameters
    ----------
    X, Ws, bs, activations
        As for ``network_derivatives``.
    output : int or None, default None
        The output to differentiate (None: the sum of all outputs).

    Returns
    -------
    ndarray of shape (n_samples, n_in)
        Of X's dtype.

    Raises
    ------
    TypeError, ValueError
        As ``network_derivatives``; ``output`` not an int in [0, n_out).
    """
    X, Ws, bs, codes = check.network_args(X, Ws, bs, activations)
    n = X.shape[0]
    n_out = Ws[-1].shape[1]
    seed = np.zeros((n, n_out), dtype=X.dtype)
    if output is None:
        seed[...] = 1
    else:
        seed[:, check.int_in_range(output, "output", 0, n_out)] = 1
    G = np.empty_like(X)
    if n:
        Zs = [np.empty((n, W.shape[1]), dtype=X.dtype) for W in Ws]
        As = [np.empty_like(Z) for Z in Zs]
        Ds = [np.empty_like(Z) for Z in Zs]
        _deriv.input_gradient_into(Ws, bs, codes, X, seed, G, Zs, As, Ds)
    return G


# ---------------------------------------------------------------- layer normalisation

def layer_norm_forward(
    X: npt.NDArray[np.floating[Any]],
    gamma: npt.NDArray[np.floating[Any]] | None,
    beta: npt.NDArray[np.floating[Any]] | None,
    eps: float = 1e-5,
    groups: int = 1,
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]],
           npt.NDArray[np.floating[Any]]]:
    """A = γ·x̂ + β with x̂ = (x − mean(x))/√(var(x) + eps) over each row (biased
    variance): ``torch.nn.LayerNorm`` over the last axis; with ``groups`` = k, over
    each of a row's k blocks of n_features/k columns (tabm's ``LayerNormEnsemble``:
    k members side by side, each normalised on its own), γ and β per column.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        float32 or float64 (n_samples may be 0); only read.
    gamma, beta : ndarray of shape (n_features,) or None
        The affine map, of X's dtype; both None for none (A = x̂).
    eps : float, default 1e-5
        Added to the variance (> 0).
    groups : int, default 1
        The blocks each row is normalised in (>= 1, dividing n_features).

    Returns
    -------
    A, Xhat : ndarray of shape (n_samples, n_features)
        The output and the normalised input x̂, new arrays of X's dtype.
    rstd : ndarray of shape (n_samples · groups,)
        1/√(var + eps) of each row (and block, row-major; ``layer_norm_backward``
        reads x̂ and it).

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray, arrays of different dtypes,
        a non-numeric eps, a groups that is not an int.
    ValueError
        Shapes that do not fit; only one of gamma and beta given; eps <= 0 or not
        finite; groups < 1 or not dividing n_features.
    """
    X, gamma, beta, eps, groups = check.layer_norm_forward_args(X, gamma, beta, eps, groups)
    Xhat = np.empty_like(X)
    A = np.empty_like(X)
    rstd = np.empty(X.shape[0] * groups, dtype=X.dtype)
    if X.shape[0]:
        _norm.layer_norm_forward_into(X, gamma, beta, Xhat, A, rstd, eps, groups)
    return A, Xhat, rstd


def layer_norm_backward(
    Xhat: npt.NDArray[np.floating[Any]],
    rstd: npt.NDArray[np.floating[Any]],
    gamma: npt.NDArray[np.floating[Any]] | None,
    dA: npt.NDArray[np.floating[Any]],
    need_dX: bool = True,
    groups: int = 1,
) -> tuple[npt.NDArray[np.floating[Any]] | None, npt.NDArray[np.floating[Any]] | None,
           npt.NDArray[np.floating[Any]] | None]:
    """dX, dγ = Σ_rows dA·x̂ and dβ = Σ_rows dA, given dA = dL/dA of ``layer_norm_forward``.

    dX = r·(g − mean(g) − x̂·mean(g·x̂)) per row (per row block with ``groups``), with
    g = γ·dA (dA without γ) and r that row's (block's) rstd.

    Parameters
    ----------
    Xhat : ndarray of shape (n_samples, n_features)
        x̂ of the forward pass.
    rstd : ndarray of shape (n_samples · groups,)
        rstd of the forward pass.
    gamma : ndarray of shape (n_features,) or None
        The forward's γ (None: no affine map).
    dA : ndarray of shape (n_samples, n_features)
        The gradient with respect to the output A.
    need_dX : bool, default True
        Compute dX (False: None is returned in its place).
    groups : int, default 1
        The forward's groups.

    Returns
    -------
    dX : ndarray of shape (n_samples, n_features) or None
    dgamma, dbeta : ndarray of shape (n_features,) or None
        None without gamma; zero for an empty batch.

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray, arrays of different dtypes,
        need_dX not a bool.
    ValueError
        Shapes that do not fit.
    """
    Xhat, rstd, gamma, dA, need_dX, groups = check.layer_norm_backward_args(
        Xhat, rstd, gamma, dA, need_dX, groups)
    dX = np.empty_like(Xhat) if need_dX else None
    dgamma = None if gamma is None else np.zeros(Xhat.shape[1], dtype=Xhat.dtype)
    dbeta = None if gamma is None else np.zeros_like(dgamma)
    if Xhat.shape[0]:
        _norm.layer_norm_backward_into(Xhat, rstd, gamma, dA, dX, dgamma, dbeta, groups)
    return dX, dgamma, dbeta


# ---------------------------------------------------------------- periodic embeddings

def periodic_embedding_forward(
    X: npt.NDArray[np.floating[Any]],
    frequencies: npt.NDArray[np.floating[Any]],
    weight: npt.NDArray[np.floating[Any]],
    bias: npt.NDArray[np.floating[Any]],
    activation: bool = True,
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]],
           npt.NDArray[np.floating[Any]]]:
    """``rtdl_num_embeddings.PeriodicEmbeddings``: per feature f, P_f = [cos a, sin a] with
    a = 2π·frequencies[f]·x_f, then P_f·W_f + b_f (W shared when ``weight`` is 2-D:
    lite), then ReLU when ``activation``; flattened feature-major.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        float32 or float64 (n_samples may be 0).
    frequencies : ndarray of shape (n_features, n_frequencies)
    weight : ndarray of shape (n_features, 2·n_frequencies, d) or (2·n_frequencies, d)
        The cosines' rows before the sines'.
    bias : ndarray of shape (n_features, d) or (d,)
    activation : bool, default True

    Returns
    -------
    A, Z : ndarray of shape (n_samples, n_features·d)
        The output and its value before the ReLU (the same values without activation).
    P : ndarray of shape (n_features, n_samples, 2·n_frequencies)
        The cosines and sines (``periodic_embedding_backward`` reads them).

    Raises
    ------
    TypeError
        Arrays that are not float32/float64 ndarrays of one dtype; activation not a bool.
    ValueError
        Shapes that do not fit together.
    """
    X, freq, W, b, lite = check.periodic_args(X, frequencies, weight, bias)
    assert b is not None
    relu = check.flag(activation, "activation")
    n, F = X.shape
    k, d = freq.shape[1], W.shape[-1]
    P = np.empty((F, n, 2 * k), dtype=X.dtype)
    Z = np.empty((n, F * d), dtype=X.dtype)
    A = np.empty_like(Z)
    if n:
        _embed.periodic_forward_into(X, freq.reshape(-1), W.reshape(-1), b.reshape(-1),
                                     P.reshape(-1), Z, A, k, d, lite, relu)
    return A, Z, P


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
    """dX, d frequencies, d weight and d bias of ``periodic_embedding_forward``, given
    dA = dL/dA.

    Parameters
    ----------
    X, frequencies, weight
        As the forward's.
    P, Z, A
        What the forward returned.
    dA : ndarray of shape (n_samples, n_features·d)
    activation : bool, default True
        As the forward's.
    need_dX : bool, default True
        Compute dX (None otherwise).

    Returns
    -------
    dX : ndarray of shape (n_samples, n_features) or None
    dfrequencies, dweight, dbias : ndarray
        Of the shapes of frequencies, weight and the bias.

    Raises
    ------
    TypeError, ValueError
        As the forward; Z, A, dA or P of other shapes than the forward's.
    """
    X, freq, W, _, lite = check.periodic_args(X, frequencies, weight)
    relu = check.flag(activation, "activation")
    need_dX = check.flag(need_dX, "need_dX")
    n, F = X.shape
    k, d = freq.shape[1], W.shape[-1]
    P = check.float_array(P, "P", 3, X.dtype)
    if P.shape != (F, n, 2 * k):
        raise ValueError(f"P must have shape {(F, n, 2 * k)}, got {P.shape}")
    Z, A, dA = (check.float_array(a, name, 2, X.dtype) for a, name in ((Z, "Z"), (A, "A"),
                                                                         (dA, "dA")))
    for arr, name in ((Z, "Z"), (A, "A"), (dA, "dA")):
        if arr.shape != (n, F * d):
            raise ValueError(f"{name} must have shape {(n, F * d)}, got {arr.shape}")
    dX = np.zeros_like(X) if need_dX else None
    dfreq = np.zeros_like(freq)
    dW = np.zeros_like(W)
    db = np.zeros((d,) if lite else (F, d), dtype=X.dtype)
    if n:
        _embed.periodic_backward_into(X, freq.reshape(-1), W.reshape(-1), P.reshape(-1), Z, A,
                                      np.array(dA, order="C"), dX, dfreq.reshape(-1),
                                      dW.reshape(-1), db.reshape(-1),
                                      np.empty(n * 2 * k, dtype=X.dtype), k, d, lite, relu)
    return dX, dfreq, dW, db


# ---------------------------------------------------------------- piecewise-linear encoding

def piecewise_linear_encoding_forward(
    X: npt.NDArray[np.floating[Any]], bins: list[Any],
) -> npt.NDArray[np.floating[Any]]:
    """``rtdl_num_embeddings.PiecewiseLinearEncoding``: feature f with edges e_0 < ... <
    e_m becomes m values (x − e_j)/(e_{j+1} − e_j), the first clamped above at 1, the
    middle ones to [0, 1], the last below at 0 (a lone bin: not clamped); concatenated
    feature-major.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        float32 or float64 (n_samples may be 0).
    bins : list of 1-D array-like
        One strictly increasing array of at least two edges per feature (``compute_bins``).

    Returns
    -------
    ndarray of shape (n_samples, total bins)

    Raises
    ------
    TypeError
        X not a float32/float64 ndarray; bins not a list of real arrays.
    ValueError
        X not 2-D; bins of another count than X's columns, too short, non-finite or not
        strictly increasing.
    """
    X, bins = ple_args(X, bins)
    feat, coef = ple_table(bins, X.dtype)
    A = np.empty((X.shape[0], feat.size), dtype=X.dtype)
    if X.shape[0]:
        _embed.ple_forward_into(X, feat, coef, A)
    return A


def piecewise_linear_encoding_backward(
    X: npt.NDArray[np.floating[Any]], bins: list[Any], dA: npt.NDArray[np.floating[Any]],
) -> npt.NDArray[np.floating[Any]]:
    """dX of ``piecewise_linear_encoding_forward`` given dA = dL/dA: each value's slope
    1/width where its clamp lets it through (bounds included, as PyTorch's clamp), summed
    per feature.

    Parameters
    ----------
    X, bins
        As the forward's.
    dA : ndarray of shape (n_samples, total bins)

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Raises
    ------
    TypeError, ValueError
        As the forward; dA of another shape or dtype.
    """
    X, bins = ple_args(X, bins)
    feat, coef = ple_table(bins, X.dtype)
    dA = check.float_array(dA, "dA", 2, X.dtype)
    if dA.shape != (X.shape[0], feat.size):
        raise ValueError(f"dA must have shape {(X.shape[0], feat.size)}, got {dA.shape}")
    dX = np.zeros_like(X)
    if X.shape[0]:
        _embed.ple_backward_into(X, feat, coef, dA, dX)
    return dX


# ---------------------------------------------------------------- categorical embeddings

def categorical_embedding_forward(
    X: npt.NDArray[np.floating[Any]], columns: Any, tables: list[Any],
) -> npt.NDArray[np.floating[Any]]:
    """``torch.nn.Embedding`` per coded column: X's other columns in order, then each
    coded column's table row (``tables[j][code]``), in ``columns`` order.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        float32 or float64; the coded columns hold integer codes.
    columns : sequence of int
        The coded columns, distinct.
    tables : list of ndarray of shape (cardinality, dim)
        One per coded column, X's dtype.

    Returns
    -------
    ndarray of shape (n_samples, n_features − len(columns) + Σ dim)

    Raises
    ------
    TypeError
        Arrays of other types or dtypes; columns or tables not sequences.
    ValueError
        Columns out of range or repeated; empty tables; a code that is not an integer
        in [0, cardinality) (the message names the cell).
    """
    X, cols, tabs = categorical_args(X, columns, tables)
    lay = layout(X.shape[1], cols, [t.shape[0] for t in tabs], [t.shape[1] for t in tabs])
    A = np.empty((X.shape[0], X.shape[1] - len(cols) + sum(t.shape[1] for t in tabs)),
                 dtype=X.dtype)
    if X.shape[0]:
        _embed.categorical_forward_into(X, lay, tabs, A)
    return A


def categorical_embedding_backward(
    X: npt.NDArray[np.floating[Any]], columns: Any, tables: list[Any],
    dA: npt.NDArray[np.floating[Any]],
) -> tuple[npt.NDArray[np.floating[Any]], list[npt.NDArray[np.floating[Any]]]]:
    """dX (dA's numeric columns; 0 in the coded ones) and each table's gradient (dA's
    rows summed into their codes' rows) of ``categorical_embedding_forward``.

    Parameters
    ----------
    X, columns, tables
        As the forward's.
    dA : ndarray of shape (n_samples, the forward's width)

    Returns
    -------
    dX : ndarray of shape (n_samples, n_features)
    dtables : list of ndarray
        Of the tables' shapes.

    Raises
    ------
    TypeError, ValueError
        As the forward; dA of another shape or dtype.
    """
    X, cols, tabs = categorical_args(X, columns, tables)
    lay = layout(X.shape[1], cols, [t.shape[0] for t in tabs], [t.shape[1] for t in tabs])
    width = X.shape[1] - len(cols) + sum(t.shape[1] for t in tabs)
    dA = check.float_array(dA, "dA", 2, X.dtype)
    if dA.shape != (X.shape[0], width):
        raise ValueError(f"dA must have shape {(X.shape[0], width)}, got {dA.shape}")
    dX = np.zeros_like(X)
    dtabs = [np.zeros_like(t) for t in tabs]
    if X.shape[0]:
        _embed.categorical_backward_into(X, lay, dA, dtabs, dX)
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
    """k BatchEnsemble linear maps at once (``tabm.LinearBatchEnsemble``): member m
    maps its input x to ((x ∘ r_m)·W) ∘ s_m + b_m, W shared by all members.

    Parameters
    ----------
    X : ndarray of shape (n_samples, k, d_in) or (n_samples, d_in)
        Each member's input, or one input every member reads (``tabm.EnsembleView``
        before the first layer). float32 or float64; n_samples may be 0.
    W : ndarray of shape (d_in, d_out)
        The shared weights (``LinearBatchEnsemble.weight`` transposed).
    r : ndarray of shape (k, d_in)
        Each member's input scaling.
    s : ndarray of shape (k, d_out)
        Each member's output scaling.
    b : ndarray of shape (k, d_out) or None, default None
        Each member's bias (None: none).

    Returns
    -------
    Y : ndarray of shape (n_samples, k, d_out)
        The outputs.
    U : ndarray of shape (n_samples, k, d_in)
        X ∘ r (``batch_ensemble_backward`` reads it).
    V : ndarray of shape (n_samples, k, d_out)
        U·W (``batch_ensemble_backward`` reads it).

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray, arrays of different dtypes.
    ValueError
        Shapes that do not fit together; a dimension too large for BLAS.
    """
    X, W, r, s, b, shared = check.batch_ensemble_args(X, W, r, s, b)
    n, (k, d_in), d_out = X.shape[0], r.shape, W.shape[1]
    U = np.empty((n, k, d_in), dtype=W.dtype)
    V = np.empty((n, k, d_out), dtype=W.dtype)
    Y = np.empty((n, k, d_out), dtype=W.dtype)
    if n:
        _dense.batch_ensemble_forward_into(X.reshape(-1), W.reshape(-1), r.reshape(-1),
                                           s.reshape(-1), None if b is None else b.reshape(-1),
                                           U.reshape(-1), V.reshape(-1), Y.reshape(-1), n, k,
                                           d_in, d_out, shared)
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
    """The gradients of ``batch_ensemble_forward`` given dY = dL/dY.

    db = Σ_rows dY, ds = Σ_rows dY ∘ V, dW = Uᵀ·(dY ∘ s) over all rows and members,
    dr = Σ_rows (dY ∘ s)·Wᵀ ∘ X, dX = (dY ∘ s)·Wᵀ ∘ r (summed over the members for a
    shared X).

    Parameters
    ----------
    X, W, r, s : ndarray
        The forward's inputs.
    U, V : ndarray of shape (n_samples, k, d_in), (n_samples, k, d_out)
        The forward's U and V.
    dY : ndarray of shape (n_samples, k, d_out)
        The gradient with respect to Y.
    bias : bool, default True
        Compute db (False: None is returned in its place).
    need_dX : bool, default True
        Compute dX (False: None is returned in its place).

    Returns
    -------
    dX : ndarray of X's shape or None
    dW : ndarray of shape (d_in, d_out)
    dr : ndarray of shape (k, d_in)
    ds : ndarray of shape (k, d_out)
    db : ndarray of shape (k, d_out) or None
        Zero for an empty batch.

    Raises
    ------
    TypeError, ValueError
        As the forward; U, V or dY of other shapes or dtypes; a flag not a bool.
    """
    X, W, r, s, _, shared = check.batch_ensemble_args(X, W, r, s, None)
    n, (k, d_in), d_out = X.shape[0], r.shape, W.shape[1]
    U = check.ensemble_array(U, "U", (n, k, d_in), W.dtype)
    V = check.ensemble_array(V, "V", (n, k, d_out), W.dtype)
    dY = check.ensemble_array(dY, "dY", (n, k, d_out), W.dtype)
    bias, need_dX = check.flag(bias, "bias"), check.flag(need_dX, "need_dX")
    dX = np.zeros_like(X) if need_dX else None
    dW = np.zeros_like(W)
    dr, ds = np.zeros_like(r), np.zeros_like(s)
    db = np.zeros_like(s) if bias else None
    if n:
        _dense.batch_ensemble_backward_into(
            X.reshape(-1), W.reshape(-1), r.reshape(-1), s.reshape(-1), U.reshape(-1),
            V.reshape(-1), dY.reshape(-1), np.empty(n * k * d_out, dtype=W.dtype),
            np.empty(n * k * d_in, dtype=W.dtype), None if dX is None else dX.reshape(-1),
            dW.reshape(-1), dr.reshape(-1), ds.reshape(-1), None if db is None else db.reshape(-1),
            n, k, d_in, d_out, shared)
    return dX, dW, dr, ds, db


def linear_ensemble_forward(
    X: npt.NDArray[np.floating[Any]],
    W: npt.NDArray[np.floating[Any]],
    b: npt.NDArray[np.floating[Any]] | None = None,
) -> npt.NDArray[np.floating[Any]]:
    """k independent linear maps, member m's on its own input (``tabm.LinearEnsemble``,
    TabM's heads): Y[:, m] = X[:, m]·W_m + b_m.

    Parameters
    ----------
    X : ndarray of shape (n_samples, k, d_in)
        float32 or float64; n_samples may be 0.
    W : ndarray of shape (k, d_in, d_out)
        Each member's weights (``LinearEnsemble.weight``'s layout).
    b : ndarray of shape (k, d_out) or None, default None

    Returns
    -------
    Y : ndarray of shape (n_samples, k, d_out)

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray, arrays of different dtypes.
    ValueError
        Shapes that do not fit together; a dimension too large for BLAS.
    """
    X, W, b = check.linear_ensemble_args(X, W, b)
    n, (k, d_in, d_out) = X.shape[0], W.shape
    Y = np.empty((n, k, d_out), dtype=W.dtype)
    if n:
        _dense.linear_ensemble_forward_into(X.reshape(-1), W.reshape(-1),
                                            None if b is None else b.reshape(-1),
                                            Y.reshape(-1), n, k, d_in, d_out)
    return Y


def linear_ensemble_backward(
    X: npt.NDArray[np.floating[Any]],
    W: npt.NDArray[np.floating[Any]],
    dY: npt.NDArray[np.floating[Any]],
    bias: bool = True,
    need_dX: bool = True,
) -> tuple[npt.NDArray[np.floating[Any]] | None, npt.NDArray[np.floating[Any]],
           npt.NDArray[np.floating[Any]] | None]:
    """The gradients of ``linear_ensemble_forward`` given dY: dX[:, m] = dY[:, m]·W_mᵀ,
    dW_m = X[:, m]ᵀ·dY[:, m], db = Σ_rows dY.

    Parameters
    ----------
    X, W : ndarray
        The forward's inputs.
    dY : ndarray of shape (n_samples, k, d_out)
    bias : bool, default True
        Compute db (False: None in its place).
    need_dX : bool, default True
        Compute dX (False: None in its place).

    Returns
    -------
    dX : ndarray of shape (n_samples, k, d_in) or None
    dW : ndarray of shape (k, d_in, d_out)
    db : ndarray of shape (k, d_out) or None
        Zero for an empty batch.

    Raises
    ------
    TypeError, ValueError
        As the forward; dY of another shape or dtype; a flag not a bool.
    """
    X, W, _ = check.linear_ensemble_args(X, W, None)
    n, (k, d_in, d_out) = X.shape[0], W.shape
    dY = check.ensemble_array(dY, "dY", (n, k, d_out), W.dtype)
    bias, need_dX = check.flag(bias, "bias"), check.flag(need_dX, "need_dX")
    dX = np.zeros_like(X) if need_dX else None
    dW = np.zeros_like(W)
    db = np.zeros((k, d_out), dtype=W.dtype) if bias else None
    if n:
        _dense.linear_ensemble_backward_into(
            X.reshape(-1), W.reshape(-1), dY.reshape(-1), None if dX is None else dX.reshape(-1),
            dW.reshape(-1), None if db is None else db.reshape(-1), n, k, d_in, d_out)
    return dX, dW, db


# ---------------------------------------------------------------- RealMLP's layers

def scale_forward(
    X: npt.NDArray[np.floating[Any]],
    s: npt.NDArray[np.floating[Any]],
) -> npt.NDArray[np.floating[Any]]:
    """A = X·s, one factor per column (RealMLP's front scale, ``fastbp.Scale``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        float32 or float64 (n_samples may be 0).
    s : ndarray of shape (n_features,)

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Raises
    ------
    TypeError
        Arrays that are not float32/float64 ndarrays of one dtype.
    ValueError
        Shapes that do not fit together.
    """
    X, s = check.column_scale_args(X, s, "s")
    A = np.empty_like(X)
    _scaling.scale_forward_into(X, s, A)
    return A


def scale_backward(
    X: npt.NDArray[np.floating[Any]],
    s: npt.NDArray[np.floating[Any]],
    dA: npt.NDArray[np.floating[Any]],
    need_dX: bool = True,
) -> tuple[npt.NDArray[np.floating[Any]] | None, npt.NDArray[np.floating[Any]]]:
    """(dX = dA·s or None, ds = Σ_rows dA·X) of ``scale_forward``.

    Parameters
    ----------
    X, s
        As ``scale_forward``.
    dA : ndarray of shape (n_samples, n_features)
    need_dX : bool, default True

    Returns
    -------
    dX : ndarray or None
    ds : ndarray of shape (n_features,)

    Raises
    ------
    TypeError, ValueError
        As ``scale_forward``; dA of another shape; need_dX not a bool.
    """
    X, s, dA, _, need = check.column_scale_backward_args(X, s, "s", dA, need_dX)
    dX = np.empty_like(X) if need else None
    ds = np.empty_like(s)
    _scaling.scale_backward_into(X, s, dA, dX, ds)
    return dX, ds


def parametric_activation_forward(
    name: str,
    X: npt.NDArray[np.floating[Any]],
    alpha: npt.NDArray[np.floating[Any]],
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]:
    """A = X + α·(f(X) − X), one α per column (RealMLP's parametric activation,
    ``fastbp.ParametricActivation``): f at α = 1, the identity at 0.

    Parameters
    ----------
    name : str
        An element-wise activation of ``ACTIVATIONS`` (not softmax).
    X : ndarray of shape (n_samples, n_features)
    alpha : ndarray of shape (n_features,)

    Returns
    -------
    A, F : ndarray of shape (n_samples, n_features)
        The output and f(X) (``parametric_activation_backward`` reads it).

    Raises
    ------
    TypeError
        Arrays that are not float32/float64 ndarrays of one dtype; a non-str name.
    ValueError
        An unknown activation or softmax; shapes that do not fit.
    """
    act = check.elementwise_activation(name)
    X, alpha = check.column_scale_args(X, alpha, "alpha")
    A, F = np.empty_like(X), np.empty_like(X)
    _scaling.parametric_forward_into(act, X, alpha, F, A)
    return A, F


def parametric_activation_backward(
    name: str,
    X: npt.NDArray[np.floating[Any]],
    alpha: npt.NDArray[np.floating[Any]],
    F: npt.NDArray[np.floating[Any]],
    dA: npt.NDArray[np.floating[Any]],
    need_dX: bool = True,
) -> tuple[npt.NDArray[np.floating[Any]] | None, npt.NDArray[np.floating[Any]]]:
    """(dX = dA + α·(f'(X)·dA − dA) or None, dα = Σ_rows dA·(f(X) − X)).

    Parameters
    ----------
    name, X, alpha
        As ``parametric_activation_forward``.
    F : ndarray of shape (n_samples, n_features)
        f(X), from the forward.
    dA : ndarray of shape (n_samples, n_features)
    need_dX : bool, default True

    Returns
    -------
    dX : ndarray or None
    dalpha : ndarray of shape (n_features,)

    Raises
    ------
    TypeError, ValueError
        As ``parametric_activation_forward``; F or dA of another shape.
    """
    act = check.elementwise_activation(name)
    X, alpha, dA, F_, need = check.column_scale_backward_args(X, alpha, "alpha", dA, need_dX,
                                                              F)
    assert F_ is not None
    dX = np.empty_like(X) if need else None
    dalpha = np.empty_like(alpha)
    _scaling.parametric_backward_into(act, X, alpha, F_, dA, dX, dalpha)
    return dX, dalpha


def periodic_bias_embedding_forward(
    X: npt.NDArray[np.floating[Any]],
    frequencies: npt.NDArray[np.floating[Any]],
    phases: npt.NDArray[np.floating[Any]],
    weight: npt.NDArray[np.floating[Any]],
    bias: npt.NDArray[np.floating[Any]],
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]:
    """RealMLP's PBLD embedding (pytabkit's ``PLREmbeddingsLayerCosBias`` with a
    linear map and the input appended): for each of X's first F columns,
    cos(2π·frequencies[f]·x + phases[f])·W_f + b_f (d values, feature-major), then
    X's columns themselves.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_in)
    frequencies, phases : ndarray of shape (F, k), F <= n_in
    weight : ndarray of shape (F, k, d)
    bias : ndarray of shape (F, d)

    Returns
    -------
    A : ndarray of shape (n_samples, F·d + n_in)
    P : ndarray of shape (F, n_samples, 2·k)
        [cos a, sin a] of the angles (``periodic_bias_embedding_backward`` reads it).

    Raises
    ------
    TypeError
        Arrays that are not float32/float64 ndarrays of one dtype.
    ValueError
        Shapes that do not fit together.
    """
    X, freq, phases_, W, b = check.periodic_bias_args(X, frequencies, phases, weight, bias)
    assert phases_ is not None and b is not None
    n, (F, k), d = X.shape[0], freq.shape, W.shape[2]
    P = np.empty((F, n, 2 * k), dtype=X.dtype)
    A = np.empty((n, F * d + X.shape[1]), dtype=X.dtype)
    _embed.periodic_bias_forward_into(X, freq.reshape(-1), phases_.reshape(-1), W.reshape(-1),
                                      b.reshape(-1), P.reshape(-1), A, F, k, d)
    return A, P


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
    """(dX or None, dfrequencies, dphases, dweight, dbias) of
    ``periodic_bias_embedding_forward`` for dA = dL/dA.

    Parameters
    ----------
    X, frequencies, weight
        As the forward's.
    P : ndarray of shape (F, n_samples, 2·k)
        The forward's.
    dA : ndarray of shape (n_samples, F·d + n_in)
    need_dX : bool, default True

    Returns
    -------
    dX : ndarray of shape (n_samples, n_in) or None
    dfrequencies, dphases : ndarray of shape (F, k)
    dweight : ndarray of shape (F, k, d)
    dbias : ndarray of shape (F, d)

    Raises
    ------
    TypeError, ValueError
        As the forward; P or dA of another shape.
    """
    X, freq, W, P, dA, need = check.periodic_bias_backward_args(X, frequencies, weight, P, dA,
                                                                need_dX)
    n, (F, k), d = X.shape[0], freq.shape, W.shape[2]
    dX = np.empty_like(X) if need else None
    dfreq, dphase = np.empty_like(freq), np.empty_like(freq)
    dW, db = np.empty_like(W), np.empty((F, d), dtype=X.dtype)
    _embed.periodic_bias_backward_into(X, freq.reshape(-1), W.reshape(-1), P.reshape(-1), dA,
                                       dX, dfreq.reshape(-1), dphase.reshape(-1),
                                       dW.reshape(-1), db.reshape(-1),
                                       np.empty(max(n, 1) * k, dtype=X.dtype), F, k, d)
    return dX, dfreq, dphase, dW, db
