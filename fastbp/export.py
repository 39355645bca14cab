"""Deployment: a trained model as an ONNX graph or as dependency-free C99 source.

``to_onnx`` writes a standard-operator graph (default domain, opset 17) that
onnxruntime and any other ONNX runtime run without fastbp; ``to_c`` writes one
header and one source file for embedded targets (no allocation, ``<math.h>``
only). Both compute what fastbp computes: ``forward`` for a regression loss,
``predict_proba`` (softmax / sigmoid of the output) for the cross-entropy losses.

Every activation is built from operators whose semantics match fastbp's
kernels exactly (see ``_onnx_activation``): for example softplus is
``Where(x > 20, x, Log(1 + Exp(x)))`` (PyTorch's threshold, which ONNX's
Softplus lacks) and GELU the exact-erf form. Nothing taken from a model reaches
the generated C text as a string: activations and losses map through fixed
tables, numbers are written as hexadecimal float literals (exact round trip),
and ``name`` must be a C identifier that is not a keyword and not reserved.

Each layer kind has one export rule per format (``_ONNX_LAYERS``,
``_C_LAYERS``), keyed by its ``kind``. An ``Ensemble`` exports as the mean of
its members' outputs (probabilities for the cross-entropy losses), as its
``predict_proba`` and regression ``predict`` compute it. Files are written with
``fastbp._storage.atomic_write``.
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable, Sequence

import numpy as np

from fastbp import _validation as check
from fastbp._storage import atomic_write
from fastbp._table import (LEAKY_SLOPE, PROBABILITY_LINK, SELU_ALPHA, SELU_SCALE,
                           SOFTPLUS_THRESHOLD)
from fastbp.ensemble import Ensemble
from fastbp.layers.residual import engine_layers
from fastbp.models import Sequential

__all__ = ["to_onnx", "to_c", "estimator_to_onnx"]

#: The opset the graphs declare, and the IR version of that opset (so that
#: runtimes older than the installed ``onnx`` package still load the file).
OPSET = 17
IR_VERSION = 8


_OUTPUT_KINDS = ("auto", "raw")


# ---------------------------------------------------------------- shared checks

def _members(model: Any) -> list[Sequential]:
    """The networks to export: the model, or an ensemble's members (their mean is
    exported); every parameter must be finite."""
    if isinstance(model, Ensemble):
        members = list(model.models)
    elif isinstance(model, Sequential):
        members = [model]
    else:
        raise TypeError(f"model must be a fastbp Sequential, MLP or Ensemble, got "
                        f"{type(model).__name__}")
    for k, member in enumerate(members):
        for i, layer in enumerate(member.layers):
            for name, arr in zip(layer.parameter_names() + layer.buffer_names(),
                                 layer.parameters() + layer.buffers()):
                if not np.all(np.isfinite(arr)):
                    where = f"models[{k}]." if len(members) > 1 else "model."
                    raise ValueError(f"{where}layers[{i}].{name} holds non-finite values (NaN "
                                     "or inf); a model with such weights cannot be exported")
    if len({m.objective.heads for m in members}) > 1:
        raise ValueError("the members of an exported Ensemble must share objective.heads")
    return members


def _check_model(model: Any) -> Sequential:
    """A single fastbp model with finite parameters (the estimators' export)."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a fastbp Sequential or MLP, got {type(model).__name__}")
    _members(model)
    return model


def _final_transform(model: Any, output: Any) -> str:
    """'softmax', 'sigmoid' or 'identity': what follows the last layer in the export."""
    if not isinstance(output, str) or output not in _OUTPUT_KINDS:
        raise ValueError(f"output must be one of {_OUTPUT_KINDS}, got {output!r}")
    if output == "raw":
        return "identity"
    return PROBABILITY_LINK.get(_loss_name(model), "identity")


def _heads(model: Sequential, output: str) -> int:
    """The heads whose mean the export gives (objective.heads; 1 for the raw output)."""
    return 1 if output == "raw" else model.objective.heads


def _width(model: Sequential, output: str) -> int:
    """The exported output's width: out_features, or one head's for their mean."""
    return model.out_features // _heads(model, output)


def _loss_name(model: Any) -> str:
    """The model's loss, from the fixed table (never the model's own string)."""
    return check.LOSSES[check.loss_code(model.loss_name)]


def _activation_name(layer: Any) -> str:
    """The layer's activation, from the fixed table (never the layer's own string)."""
    return check.ACTIVATIONS[layer.act_code]


# ---------------------------------------------------------------- ONNX

def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("fastbp.export.to_onnx needs the onnx package: "
                          "pip install \"fastbp[onnx]\" (or pip install onnx)") from exc
    return onnx


class _GraphBuilder:
    """Nodes and initializers of one graph, with fresh tensor names."""

    def __init__(self, onnx: Any, dtype: np.dtype) -> None:
        self.onnx = onnx
        self.h = onnx.helper
        self.dtype = np.dtype(dtype)
        self.elem_type = self.h.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0
        self._constants: dict[tuple[str, float], str] = {}

    def fresh(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def tensor(self, stem: str, value: np.ndarray) -> str:
        name = self.fresh(stem)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value),
                                                                   name))
        return name

    def scalar(self, value: float) -> str:
        """A shared 0-d constant of the graph's dtype."""
        key = (self.dtype.name, float(value))
        if key not in self._constants:
            self._constants[key] = self.tensor("c", np.array(value, dtype=self.dtype))
        return self._constants[key]

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        out = out or self.fresh(op_type.lower())
        self.nodes.append(self.h.make_node(op_type, inputs, [out], **attrs))
        return out


def _onnx_activation(g: _GraphBuilder, act: str, x: str, out: str | None = None) -> str:
    """The graph of one activation, built to equal fastbp's kernel on x.

    Only operators that onnxruntime implements for float and double are used
    (its Elu, LeakyRelu, Softplus and Gelu are float-only), and each formula is
    the kernel's: the comparisons pick the same branch, the constants are the
    same numbers in the model's dtype."""
    if act == "identity":
        return g.op("Identity", [x], out) if out else x
    if act in ("sigmoid", "tanh", "relu"):
        return g.op({"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}[act], [x], out)
    if act == "softmax":
        return g.op("Softmax", [x], out, axis=-1)
    if act == "silu":
        if g.dtype == np.float64:
            # x / (1 + e^-x): onnxruntime before 1.24 fuses Mul(x, Sigmoid(x)) into a
            # QuickGelu node that has a float kernel only, and then cannot load the model
            return g.op("Div", [x, g.op("Add", [g.op("Exp", [g.op("Neg", [x])]),
                                                 g.scalar(1.0)])], out)
        return g.op("Mul", [x, g.op("Sigmoid", [x])], out)
    if act == "gelu":
        # x·Φ(x), Φ(x) = (1 + erf(x/√2))/2, the exact GELU
        u = g.op("Mul", [x, g.scalar(np.sqrt(0.5))])
        if g.dtype == np.float32:
            e = g.op("Erf", [u])
            return g.op("Mul", [g.op("Mul", [x, g.scalar(0.5)]),
                                g.op("Add", [e, g.scalar(1.0)])], out)
        return g.op("Mul", [g.op("Mul", [x, g.scalar(0.5)]), _onnx_erfc_f64(g, g.op("Neg", [u]))],
                    out)
    if act == "mish":   # x·tanh(softplus(x)) (ONNX Mish needs opset 18)
        return g.op("Mul", [x, g.op("Tanh", [_onnx_activation(g, "softplus", x)])], out)
    positive = g.op("Greater", [x, g.scalar(0.0)])
    if act == "selu" and g.dtype == np.float32:
        # the float kernel's steps (_vmath.h): scale·(x > 0 ? x : alpha·expm1(x)), its
        # expm1 the Taylor series to x^7/7! above −0.25 and e^x − 1 below
        z = g.op("Min", [x, g.scalar(0.0)])
        series = g.scalar(1.0 / 5040.0)
        for c in (1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1.0):
            series = g.op("Add", [g.op("Mul", [series, z]), g.scalar(c)])
        series = g.op("Mul", [series, z])
        em1 = g.op("Where", [g.op("Greater", [z, g.scalar(-0.25)]), series,
                             g.op("Sub", [g.op("Exp", [z]), g.scalar(1.0)])])
        return g.op("Mul", [g.scalar(SELU_SCALE), g.op("Where", [
            positive, x, g.op("Mul", [g.scalar(SELU_ALPHA), em1])])], out)
    if act == "selu":
        # e^x - 1 as tanh(x/2)·(e^x + 1): no cancellation near 0 (the kernel's expm1)
        em1 = g.op("Mul", [g.op("Tanh", [g.op("Mul", [x, g.scalar(0.5)])]),
                           g.op("Add", [g.op("Exp", [x]), g.scalar(1.0)])])
        return g.op("Where", [positive, g.op("Mul", [x, g.scalar(SELU_SCALE)]),
                              g.op("Mul", [em1, g.scalar(SELU_SCALE * SELU_ALPHA)])], out)
    if act == "leaky_relu":
        return g.op("Where", [positive, x, g.op("Mul", [x, g.scalar(LEAKY_SLOPE)])], out)
    if act == "elu":
        return g.op("Where", [positive, x, g.op("Sub", [g.op("Exp", [x]), g.scalar(1.0)])], out)
    if act == "softplus":
        above = g.op("Greater", [x, g.scalar(SOFTPLUS_THRESHOLD)])
        soft = g.op("Log", [g.op("Add", [g.op("Exp", [x]), g.scalar(1.0)])])
        return g.op("Where", [above, x, soft], out)
    raise AssertionError(f"no ONNX graph for activation {act!r}")  # pragma: no cover


#: Terms of _onnx_erf_f64's series: 2.8e-15 worst absolute error of erf over the reals.
_ERF_TERMS = 100
_ERF_CLAMP = 5.9   # erf(5.9) is 1 to within 1.2e-16


def _onnx_erf_f64(g: _GraphBuilder, u: str) -> str:
    """erf(u) in float64 from elementwise operators (onnxruntime has Erf for float only).

    erf(u) = 2/√π · e^(-u²) · Σₙ 2ⁿ u^(2n+1) / (1·3·…·(2n+1)), a series of positive
    terms (no cancellation), with u clamped to ±5.9 where erf is ±1 in double."""
    u = g.op("Clip", [u, g.scalar(-_ERF_CLAMP), g.scalar(_ERF_CLAMP)])
    u2 = g.op("Mul", [u, u])
    term = total = u
    for n in range(_ERF_TERMS):
        term = g.op("Mul", [term, g.op("Mul", [u2, g.scalar(2.0 / (2 * n + 3))])])
        total = g.op("Add", [total, term])
    weight = g.op("Exp", [g.op("Neg", [u2])])
    return g.op("Mul", [g.op("Mul", [total, weight]), g.scalar(2.0 / np.sqrt(np.pi))])


# Cody's rational approximations of erfc (W. J. Cody, "Rational Chebyshev
# approximations for the error function", Math. Comp. 1969; netlib specfun CALERF),
# relative error below 1e-16 in double: on (0.46875, 4] erfc(t) = e^(-t²)·C(t)/D(t);
# above 4, erfc(t) = e^(-t²)/t·(1/√π - R(1/t²)/t²).
_CODY_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
           2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
           2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_CODY_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
           1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
           3.43936767414372164e03, 1.23033935480374942e03)
_CODY_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
           1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_CODY_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
           6.05183413124413191e-2, 2.33520497626869185e-3)
#: erfc(t) is 0 in double beyond this (Cody's XBIG)
_ERFC_ZERO = 26.543


def _onnx_erfc_f64(g: _GraphBuilder, t: str) -> str:
    """erfc(t) in float64 from elementwise operators, accurate to a few ulp relative
    everywhere (so x·Φ(x) = x·erfc(-x/√2)/2 keeps its precision far into the negative
    tail, where 1 + erf would cancel): 1 - erf(t) up to t = 0.46875 (erf from the
    series), Cody's rationals beyond, 0 past 26.543; Where picks the branch."""
    def poly(coeffs: Sequence[float], last: float, z: str, w: str) -> str:
        # Cody's Horner form: num = ((c8·w + c0)·w + c1)·w ... ; w is z or 1/z²
        acc = g.op("Mul", [g.scalar(last), w])
        for c in coeffs:
            acc = g.op("Mul", [g.op("Add", [acc, g.scalar(c)]), w])
        return acc

    small = g.op("Sub", [g.scalar(1.0), _onnx_erf_f64(g, t)])
    # e^(-t²) without the rounding of t²: t = h + d, h = floor(16t)/16 (exact square)
    y = g.op("Clip", [t, g.scalar(0.46875), g.scalar(_ERFC_ZERO)])
    h = g.op("Div", [g.op("Floor", [g.op("Mul", [y, g.scalar(16.0)])]), g.scalar(16.0)])
    d = g.op("Mul", [g.op("Sub", [y, h]), g.op("Add", [y, h])])
    gauss = g.op("Mul", [g.op("Exp", [g.op("Neg", [g.op("Mul", [h, h])])]),
                         g.op("Exp", [g.op("Neg", [d])])])
    # (0.46875, 4]
    num = g.op("Add", [poly(_CODY_C[:7], _CODY_C[8], y, y), g.scalar(_CODY_C[7])])
    den = g.op("Add", [poly(_CODY_D[:7], 1.0, y, y), g.scalar(_CODY_D[7])])
    middle = g.op("Mul", [gauss, g.op("Div", [num, den])])
    # (4, 26.543]
    w = g.op("Div", [g.scalar(1.0), g.op("Mul", [y, y])])
    num = g.op("Add", [poly(_CODY_P[:4], _CODY_P[5], y, w), g.scalar(_CODY_P[4])])
    den = g.op("Add", [poly(_CODY_Q[:4], 1.0, y, w), g.scalar(_CODY_Q[4])])
    r = g.op("Mul", [w, g.op("Div", [num, den])])
    tail = g.op("Mul", [gauss, g.op("Div", [g.op("Sub", [g.scalar(0.5641895835477563), r]), y])])
    out = g.op("Where", [g.op("Greater", [t, g.scalar(4.0)]), tail, middle])
    out = g.op("Where", [g.op("Greater", [t, g.scalar(_ERFC_ZERO)]), g.scalar(0.0), out])
    return g.op("Where", [g.op("Greater", [t, g.scalar(0.46875)]), out, small])


def _onnx_dense(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """Gemm (X·W + b) then the activation."""
    W = g.tensor(f"{tag}W", np.asarray(layer.W, dtype=g.dtype))
    b = g.tensor(f"{tag}b", np.asarray(layer.b, dtype=g.dtype))
    return _onnx_activation(g, _activation_name(layer), g.op("Gemm", [x, W, b]))


def _onnx_activation_layer(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """The activation alone."""
    return _onnx_activation(g, _activation_name(layer), x)


def _onnx_layer_norm(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """LayerNormalization over the last axis (γ = 1, β = 0 without affine); with groups,
    over the row's blocks as (N, groups, width/groups), γ and β applied per column after
    (so the kernel's x̂ first, then γ·x̂ + β). Its epsilon is a float32 attribute: a
    float64 model whose eps float32 does not hold exactly gets the same formula from
    ReduceMean, Sub, Mul, Add, Sqrt and Div, eps in float64."""
    k, groups = layer.out_features, layer.groups
    gamma = np.asarray(np.ones(k) if layer.gamma is None else layer.gamma, g.dtype)
    beta = np.asarray(np.zeros(k) if layer.beta is None else layer.beta, g.dtype)
    exact_eps = g.dtype == np.float32 or float(np.float32(layer.eps)) == layer.eps
    if exact_eps and groups == 1:
        return g.op("LayerNormalization", [x, g.tensor(f"{tag}gamma", gamma),
                                           g.tensor(f"{tag}beta", beta)],
                    axis=-1, epsilon=float(layer.eps))
    if groups > 1:
        x = g.op("Reshape", [x, _onnx_ints(g, f"{tag}blocks", [-1, groups, k // groups])])
    if exact_eps:
        w = k // groups
        xhat = g.op("LayerNormalization", [x, g.tensor(f"{tag}ones", np.ones(w, g.dtype)),
                                           g.tensor(f"{tag}zeros", np.zeros(w, g.dtype))],
                    axis=-1, epsilon=float(layer.eps))
    else:
        d = g.op("Sub", [x, g.op("ReduceMean", [x], axes=[-1], keepdims=1)])
        var = g.op("ReduceMean", [g.op("Mul", [d, d])], axes=[-1], keepdims=1)
        xhat = g.op("Div", [d, g.op("Sqrt", [g.op("Add", [var, g.scalar(layer.eps)])])])
    if groups > 1:
        xhat = g.op("Reshape", [xhat, _onnx_ints(g, f"{tag}rows", [-1, k])])
    if layer.gamma is None:
        return xhat
    return g.op("Add", [g.op("Mul", [xhat, g.tensor(f"{tag}gamma", gamma)]),
                        g.tensor(f"{tag}beta", beta)])


def _onnx_batch_norm(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """BatchNormalization in inference mode (the running statistics); as LayerNorm's,
    a float64 eps that float32 cannot hold gets the formula in elementary operators."""
    k = layer.out_features
    gamma = np.asarray(np.ones(k) if layer.gamma is None else layer.gamma, g.dtype)
    beta = np.asarray(np.zeros(k) if layer.beta is None else layer.beta, g.dtype)
    mean = g.tensor(f"{tag}mean", np.asarray(layer.running_mean, g.dtype))
    var = g.tensor(f"{tag}var", np.asarray(layer.running_var, g.dtype))
    if g.dtype == np.float32 or float(np.float32(layer.eps)) == layer.eps:
        return g.op("BatchNormalization", [x, g.tensor(f"{tag}gamma", gamma),
                                           g.tensor(f"{tag}beta", beta), mean, var],
                    epsilon=float(layer.eps))
    xhat = g.op("Div", [g.op("Sub", [x, mean]),
                        g.op("Sqrt", [g.op("Add", [var, g.scalar(layer.eps)])])])
    return g.op("Add", [g.op("Mul", [xhat, g.tensor(f"{tag}gamma", gamma)]),
                        g.tensor(f"{tag}beta", beta)])


def _onnx_cos(g: _GraphBuilder, angles: str) -> str:
    """cos of the angles. onnxruntime before 1.24 has no float64 Cos (its Sin it has): a
    float64 graph takes cos a as sin(a + π/2), which differs from cos a by the rounding
    of that sum."""
    return g.op("Cos", [angles]) if g.dtype == np.float32 else \
        g.op("Sin", [g.op("Add", [angles, g.scalar(np.pi / 2)])])


def _onnx_periodic(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """Angles x_f·(2π·c_f) (Unsqueeze, Mul), their cosines and sines concatenated, each
    feature's linear map (a broadcast MatMul; lite: one shared), ReLU, flattened
    feature-major."""
    F, d = layer.in_features, layer.d_embedding

    two_pi_c = g.tensor(f"{tag}freq", np.asarray(2 * np.pi * layer.frequencies.astype(np.float64),
                                                 g.dtype))
    angles = g.op("Mul", [g.op("Unsqueeze", [x, _onnx_ints(g, f"{tag}ax", [2])]), two_pi_c])
    P = g.op("Concat", [_onnx_cos(g, angles), g.op("Sin", [angles])], axis=2)
    W = g.tensor(f"{tag}W", np.asarray(layer.weight, g.dtype))
    if layer.lite:
        Z = g.op("Add", [g.op("MatMul", [P, W]), g.tensor(f"{tag}b", np.asarray(layer.bias,
                                                                               g.dtype))])
    else:   # (N, F, 1, 2k) @ (F, 2k, d) -> (N, F, 1, d)
        P4 = g.op("Unsqueeze", [P, _onnx_ints(g, f"{tag}ax2", [2])])
        Z = g.op("Add", [g.op("MatMul", [P4, W]),
                         g.tensor(f"{tag}b", np.asarray(layer.bias, g.dtype).reshape(F, 1, d))])
    if layer.relu:
        Z = g.op("Relu", [Z])
    return g.op("Reshape", [Z, _onnx_ints(g, f"{tag}shape", [-1, F * d])])


def _onnx_periodic_bias(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """The embedded columns (Gather), angles x_f·(2π·c_f) + φ_f, their cosines, each
    feature's linear map (a broadcast MatMul) and bias, flattened feature-major, then x
    itself (Concat)."""
    F, d = layer.n_embedded, layer.d_embedding

    cols = g.op("Gather", [x, _onnx_ints(g, f"{tag}cols", list(range(F)))], axis=1)
    two_pi_c = g.tensor(f"{tag}freq", np.asarray(2 * np.pi * layer.frequencies.astype(np.float64),
                                                 g.dtype))
    angles = g.op("Add", [g.op("Mul", [g.op("Unsqueeze", [cols, _onnx_ints(g, f"{tag}ax", [2])]),
                                       two_pi_c]),
                          g.tensor(f"{tag}phase", np.asarray(layer.phases, g.dtype))])
    Z = g.op("Add", [g.op("MatMul", [g.op("Unsqueeze", [_onnx_cos(g, angles),
                                                        _onnx_ints(g, f"{tag}ax2", [2])]),
                                     g.tensor(f"{tag}W", np.asarray(layer.weight, g.dtype))]),
                     g.tensor(f"{tag}b", np.asarray(layer.bias, g.dtype).reshape(F, 1, d))])
    flat = g.op("Reshape", [Z, _onnx_ints(g, f"{tag}shape", [-1, F * d])])
    return g.op("Concat", [flat, x], axis=1)


def _onnx_scale(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """x·s."""
    return g.op("Mul", [x, g.tensor(f"{tag}s", np.asarray(layer.scale, g.dtype))])


def _onnx_parametric(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """x + α·(f(x) − x)."""
    f = _onnx_activation(g, layer.activation, x)
    return g.op("Add", [x, g.op("Mul", [g.tensor(f"{tag}alpha", np.asarray(layer.alpha, g.dtype)),
                                        g.op("Sub", [f, x])])])


def _onnx_ple(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """Each output column's feature gathered (Gather on axis 1), times 1/width plus
    −edge/width, then the clamps (Max with 0 or −inf, Min with 1 or +inf)."""
    feat, coef = layer.engine_buffers()
    w, b, lo, hi = (np.asarray(part, g.dtype) for part in coef.reshape(4, -1))
    cols = g.op("Gather", [x, g.tensor(f"{tag}feat", feat.astype(np.int64))], axis=1)
    z = g.op("Add", [g.op("Mul", [cols, g.tensor(f"{tag}w", w)]), g.tensor(f"{tag}b", b)])
    return g.op("Min", [g.op("Max", [z, g.tensor(f"{tag}lo", lo)]), g.tensor(f"{tag}hi", hi)])


def _onnx_categorical(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """The numeric columns (Gather on axis 1), then per coded column its code (Gather,
    Cast to int64: onnxruntime refuses a code out of range) and its table's row (Gather
    on axis 0), concatenated."""
    lay = layer.engine_buffers()[0]
    n_num = layer.in_features - len(layer.columns)
    parts = [] if not n_num else [
        g.op("Gather", [x, g.tensor(f"{tag}num", lay[:n_num].astype(np.int64))], axis=1)]
    for j, (col, table) in enumerate(zip(layer.columns, layer.tables)):
        codes = g.op("Gather", [x, g.tensor(f"{tag}col", np.array([col], dtype=np.int64))],
                     axis=1)   # (N, 1), then (N,) int64
        codes = g.op("Cast", [g.op("Reshape", [codes, g.tensor(f"{tag}flat", np.array(
            [-1], dtype=np.int64))])], to=g.onnx.TensorProto.INT64)
        parts.append(g.op("Gather", [g.tensor(f"{tag}table{j}", np.asarray(table, g.dtype)),
                                     codes], axis=0))
    return parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=1)


def _onnx_ints(g: _GraphBuilder, stem: str, values: list[int]) -> str:
    return g.tensor(stem, np.asarray(values, dtype=np.int64))


def _onnx_batch_ensemble(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """The members side by side as (N, k, d_in) (a shared input as (N, 1, d_in)), times
    r, MatMul by the shared W, times s, plus b, flattened back to (N, k·d_out), then
    the activation: the kernel's order of operations."""
    k, d_in, d_out = layer.k, layer.d_in, layer.d_out
    x3 = g.op("Reshape", [x, _onnx_ints(g, f"{tag}in", [-1, 1 if layer.shared_input else k,
                                                        d_in])])
    u = g.op("Mul", [x3, g.tensor(f"{tag}r", np.asarray(layer.r, g.dtype))])
    v = g.op("MatMul", [u, g.tensor(f"{tag}W", np.asarray(layer.W, g.dtype))])
    y = g.op("Mul", [v, g.tensor(f"{tag}s", np.asarray(layer.s, g.dtype))])
    if layer.bias:
        y = g.op("Add", [y, g.tensor(f"{tag}b", np.asarray(layer.b, g.dtype))])
    flat = g.op("Reshape", [y, _onnx_ints(g, f"{tag}out", [-1, k * d_out])])
    return _onnx_activation(g, _activation_name(layer), flat)


def _onnx_linear_ensemble(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """Member m's columns times W_m: (N, k, d_in) transposed to (k, N, d_in), a batched
    MatMul by W (k, d_in, d_out), transposed back, plus b, flattened to (N, k·d_out),
    then the activation."""
    k, d_in, d_out = layer.k, layer.d_in, layer.d_out
    x3 = g.op("Transpose", [g.op("Reshape", [x, _onnx_ints(g, f"{tag}in", [-1, k, d_in])])],
              perm=[1, 0, 2])
    y = g.op("Transpose", [g.op("MatMul", [x3, g.tensor(f"{tag}W", np.asarray(layer.W,
                                                                             g.dtype))])],
             perm=[1, 0, 2])
    if layer.bias:
        y = g.op("Add", [y, g.tensor(f"{tag}b", np.asarray(layer.b, g.dtype))])
    flat = g.op("Reshape", [y, _onnx_ints(g, f"{tag}out", [-1, k * d_out])])
    return _onnx_activation(g, _activation_name(layer), flat)


#: each layer kind's ONNX rule: (graph, layer, input name, tensor name stem) -> output name
_ONNX_LAYERS: dict[str, Callable[[_GraphBuilder, Any, str, str], str]] = {
    "dense": _onnx_dense, "activation": _onnx_activation_layer,
    "dropout": lambda g, layer, x, tag: x,   # the identity in inference
    "layer_norm": _onnx_layer_norm, "batch_norm": _onnx_batch_norm,
    "periodic_embedding": _onnx_periodic, "piecewise_linear_encoding": _onnx_ple,
    "categorical_embedding": _onnx_categorical, "batch_ensemble": _onnx_batch_ensemble,
    "linear_ensemble": _onnx_linear_ensemble, "scale": _onnx_scale,
    "parametric_activation": _onnx_parametric, "periodic_bias_embedding": _onnx_periodic_bias}


def _onnx_layers(g: _GraphBuilder, layers: Any, x: str, prefix: str) -> str:
    """Each layer by its kind's rule, in order; returns the last output's name."""
    for i, layer in enumerate(layers):
        rule = _ONNX_LAYERS.get(layer.kind)
        if rule is None:
            raise NotImplementedError(f"no ONNX export for layer kind {layer.kind!r}")
        x = rule(g, layer, x, f"{prefix}{i}")
    return x


def _onnx_residual(g: _GraphBuilder, layer: Any, x: str, tag: str) -> str:
    """x + the block's layers applied to x."""
    return g.op("Add", [x, _onnx_layers(g, layer.layers, x, f"{tag}_")])


_ONNX_LAYERS["residual"] = _onnx_residual


def _onnx_network(g: _GraphBuilder, model: Sequential, x: str, prefix: str = "") -> str:
    """Every layer by its kind's rule; returns the raw output's name."""
    return _onnx_layers(g, model.layers, x, prefix)


def _onnx_prediction(g: _GraphBuilder, model: Sequential, final: str, output: str,
                     prefix: str = "", out: str | None = None, x: str = "X") -> str:
    """The model's exported output on the tensor ``x``: the raw output, or its final
    transform; a model with objective.heads > 1 (and output "auto") gives the mean of its
    heads' outputs (probabilities), as its predict_proba / predict."""
    raw = _onnx_network(g, model, x, prefix)
    heads = _heads(model, output)
    if heads == 1:
        return _onnx_activation(g, final, raw, out)
    per_head = g.op("Reshape", [raw, _onnx_ints(g, f"{prefix}heads",
                                                [-1, heads, model.target_width])])
    return g.op("ReduceMean", [_onnx_activation(g, final, per_head)], out, axes=[1],
                keepdims=0)


#: the ai.onnx.ml opset a graph with LabelEncoder (string categories) declares
ML_OPSET = 3


def _onnx_finish(g: _GraphBuilder, inputs: list[Any], outputs: list[Any], path: Any,
                 doc: str, ml: bool = False) -> bytes:
    onnx, h = g.onnx, g.h
    graph = h.make_graph(g.nodes, "fastbp", inputs, outputs, initializer=g.initializers)
    opsets = [h.make_opsetid("", OPSET)] + ([h.make_opsetid("ai.onnx.ml", ML_OPSET)]
                                             if ml else [])
    model = h.make_model(graph, opset_imports=opsets, producer_name="fastbp", doc_string=doc)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    data: bytes = model.SerializeToString()
    if path is not None:
        atomic_write(path, data)
    return data


def to_onnx(model: Any, path: Any = None, *, output: str = "auto") -> bytes:
    """The model as a serialized ONNX graph (also written to ``path`` if given).

    Parameters
    ----------
    model : Sequential or Ensemble
        An Ensemble exports the mean of its members' outputs.
    path : str, os.PathLike or None
        Where to write the graph too (atomically).
    output : {"auto", "raw"}, default "auto"
        "auto": the probabilities for the cross-entropy losses (softmax for
        cross_entropy, sigmoid for binary_cross_entropy: ``predict_proba``), the raw
        output otherwise (``forward``); "raw": always the raw output. A model with
        ``objective.heads`` > 1 gives its heads' mean ("auto": the mean of the heads'
        probabilities or outputs, as ``predict_proba`` / ``predict``; "raw": every head).

    Returns
    -------
    bytes
        The serialized model: input ``"X"`` [N, in_features] and output ``"Y"``
        [N, out_features] (one head's width for the heads' mean), both in the model's
        dtype (opset 17, default domain).

    Raises
    ------
    TypeError
        ``model`` is not a fastbp model or ensemble.
    ValueError
        Non-finite parameters, an unknown ``output``.
    ImportError
        The onnx package is missing.
    """
    members = _members(model)
    final = _final_transform(model, output)
    onnx = _import_onnx()
    g = _GraphBuilder(onnx, model.dtype)
    if len(members) == 1:
        _onnx_prediction(g, members[0], final, output, out="Y")
    else:
        outs = [_onnx_prediction(g, m, final, output, f"m{k}_") for k, m in enumerate(members)]
        g.op("Div", [g.op("Sum", outs), g.scalar(float(len(outs)))], "Y")
    h = g.h
    inputs = [h.make_tensor_value_info("X", g.elem_type, ["N", model.in_features])]
    outputs = [h.make_tensor_value_info("Y", g.elem_type, ["N", _width(members[0], output)])]
    kind = "raw" if final == "identity" else "probabilities"
    return _onnx_finish(g, inputs, outputs, path, f"fastbp {model!r}, output {kind}")


def estimator_to_onnx(est: Any, path: Any = None) -> bytes:
    """A fitted fastbp.sklearn estimator as ONNX, with skl2onnx's conventions (zipmap=False).

    Classifier: outputs ``"label"`` [N] (int64, or string when ``classes_`` are
    strings; the class of the largest logit, or of a positive logit for a single
    logistic output) and ``"probabilities"`` [N, n_classes]; a single logistic
    output p gives the columns [1 - p, p]; a multilabel classifier (sigmoid
    outputs) gives labels [N, n_labels] of 0/1. Regressor: output ``"variable"``
    [N, n_outputs] (exp of the network's output for loss="poisson"). The input is
    ``"X"`` [N, n_features] in the model's dtype.

    Parameters
    ----------
    est : fastbp.sklearn.MLPClassifier or fastbp.sklearn.MLPRegressor
        A fitted estimator.
    path : str, os.PathLike or None, default None
        Where to write the graph too (atomically).

    Returns
    -------
    bytes
        The serialized model (opset 17, default domain).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        ``est`` is not fitted.
    TypeError
        ``est`` is not a fitted estimator holding a fastbp model.
    ValueError
        Non-finite parameters; class labels that are neither integers nor strings,
        or unsigned integers of 2**63 or more.
    ImportError
        The onnx package is missing.
    """
    from sklearn.base import is_classifier  # type: ignore[import-untyped, unused-ignore]
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est)
    model = _check_model(est.model_)
    onnx = _import_onnx()
    g = _GraphBuilder(onnx, model.dtype)
    h, TP = g.h, onnx.TensorProto
    raw = _onnx_network(g, model, "X")
    inputs = [h.make_tensor_value_info("X", g.elem_type, ["N", model.in_features])]
    if not is_classifier(est):
        # MLPRegressor(loss="poisson") predicts exp of the network's output (the log mean).
        g.op("Exp" if getattr(est, "out_activation_", "identity") == "exp" else "Identity",
             [raw], "variable")
        outputs = [h.make_tensor_value_info("variable", g.elem_type, ["N", model.out_features])]
        return _onnx_finish(g, inputs, outputs, path, f"fastbp {type(est).__name__}")

    classes = np.asarray(est.classes_)
    k = model.out_features
    loss = _loss_name(model)
    if loss == "cross_entropy":
        g.op("Softmax", [raw], "probabilities", axis=-1)
        index = g.op("ArgMax", [raw], axis=1, keepdims=0)
        n_proba = k
    elif loss == "binary_cross_entropy" and k == 1 and classes.ndim == 1 \
            and len(classes) == 2:
        # One logistic output for two classes: columns [1 - p, p], label from the logit's sign.
        p = g.op("Sigmoid", [raw])
        g.op("Concat", [g.op("Sub", [g.scalar(1.0), p]), p], "probabilities", axis=1)
        positive = g.op("Greater", [raw, g.scalar(0.0)])
        flat = g.op("Reshape", [positive, g.tensor("shape", np.array([-1], dtype=np.int64))])
        index = g.op("Cast", [flat], to=TP.INT64)
        n_proba = 2
    elif loss == "binary_cross_entropy":
        # Multilabel: independent sigmoids, 0/1 labels per output.
        g.op("Sigmoid", [raw], "probabilities")
        g.op("Cast", [g.op("Greater", [raw, g.scalar(0.0)])], "label", to=TP.INT64)
        outputs = [h.make_tensor_value_info("label", TP.INT64, ["N", k]),
                   h.make_tensor_value_info("probabilities", g.elem_type, ["N", k])]
        return _onnx_finish(g, inputs, outputs, path, f"fastbp {type(est).__name__}")
    else:
        raise ValueError(f"cannot export a classifier whose model has loss {loss!r}")
    if classes.dtype.kind in "OUS":
        label_type = TP.STRING
        table = np.array([str(c).encode("utf-8") for c in classes], dtype=object)
        table_name = g.fresh("classes")
        g.initializers.append(h.make_tensor(table_name, TP.STRING, [len(table)], list(table)))
    elif classes.dtype.kind in "biu":
        if classes.size and classes.dtype.kind == "u" and classes.max() > np.iinfo(np.int64).max:
            raise ValueError("classes_ hold unsigned labels of 2**63 or more, which ONNX's int64 "
                             "label output cannot represent; encode the labels as smaller ints "
                             "or strings")
        label_type = TP.INT64
        table_name = g.tensor("classes", classes.astype(np.int64))
    else:
        raise ValueError(f"classes_ must be integers or strings to export labels, got dtype "
                         f"{classes.dtype}")
    g.op("Gather", [table_name, index], "label", axis=0)
    outputs = [h.make_tensor_value_info("label", label_type, ["N"]),
               h.make_tensor_value_info("probabilities", g.elem_type, ["N", n_proba])]
    return _onnx_finish(g, inputs, outputs, path, f"fastbp {type(est).__name__}")


# ---------------------------------------------------------------- C

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: C99 and C11/C23 keywords, and names the standard reserves as macros
_C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic
_Imaginary _Noreturn _Static_assert _Thread_local alignas alignof bool constexpr false
nullptr static_assert thread_local true typeof typeof_unqual _BitInt _Decimal128 _Decimal32
_Decimal64 asm fortran
""".split())


#: the longest name to_c takes (file names <name>.h/.c stay far below the usual 255-byte
#: limit, and C99 guarantees 63 significant characters of an internal identifier)
MAX_C_NAME = 63


def _check_c_name(name: Any) -> str:
    if not isinstance(name, str):
        raise ValueError(f"name must be a str (a C identifier), got {type(name).__name__}")
    if not _IDENTIFIER.match(name) or not name.isascii():
        raise ValueError(f"name must be a C identifier ([A-Za-z_][A-Za-z0-9_]*), got {name!r}")
    if name.startswith("_"):
        raise ValueError(f"name must not start with an underscore (C reserves such names at "
                         f"file scope, and system headers use them), got {name!r}")
    if name in _C_KEYWORDS:
        raise ValueError(f"name must not be a C keyword, got {name!r}")
    if len(name) > MAX_C_NAME:
        raise ValueError(f"name must have at most {MAX_C_NAME} characters, got {len(name)}")
    return name


class _CType:
    """The C spelling of one dtype: type name, literal suffix and math functions."""

    def __init__(self, dtype: np.dtype) -> None:
        self.f32 = dtype == np.float32
        self.name = "float" if self.f32 else "double"
        self.suffix = "f" if self.f32 else ""

    def fn(self, base: str) -> str:
        return base + ("f" if self.f32 else "")

    def lit(self, value: float) -> str:
        """An exact hexadecimal literal (float32 values are exact in a double's hex)."""
        v = float(value)
        if not np.isfinite(v):
            raise ValueError(f"cannot write the non-finite value {v} to C")
        mantissa, exponent = v.hex().split("p")
        mantissa = mantissa.rstrip("0").rstrip(".")   # 0x1.8000p+0 -> 0x1.8p+0, 0x1p+0
        return f"{mantissa}p{exponent}{self.suffix}"


def _c_array(t: _CType, name: str, values: np.ndarray) -> str:
    flat = np.asarray(values).ravel()
    items = [t.lit(v) for v in flat.tolist()]
    rows = [", ".join(items[i:i + 4]) for i in range(0, len(items), 4)]
    body = ",\n    ".join(rows)
    return f"static const {t.name} {name}[{len(items)}] = {{\n    {body}\n}};\n"


def _c_sigmoid(t: _CType, name: str) -> str:
    """The source of ``<name>_sigmoid``, which the activation loops call."""
    T, zero, one = t.name, t.lit(0.0), t.lit(1.0)
    return (f"\n/* sigma(z), never overflowing: e^z/(1+e^z) below 0 */\n"
            f"static {T} {name}_sigmoid({T} z) {{\n"
            f"    {T} e = {t.fn('exp')}(-{t.fn('fabs')}(z));\n"
            f"    return z >= {zero} ? {one} / ({one} + e) : e / ({one} + e);\n}}\n")


def _c_activation_loop(t: _CType, prefix: str, act: str, buf: str, k: int) -> list[str]:
    """C statements applying one activation to buf[0..k) in place (fixed table)."""
    T = t.name
    fn = t.fn
    one, zero, half = t.lit(1.0), t.lit(0.0), t.lit(0.5)
    loop = f"for (j = 0; j < {k}; j++) "
    if act == "identity":
        return []
    if act == "relu":
        return [loop + f"{buf}[j] = {buf}[j] <= {zero} ? {zero} : {buf}[j];"]
    if act == "leaky_relu":
        slope = t.lit(LEAKY_SLOPE)
        return [loop + f"{buf}[j] = {buf}[j] > {zero} ? {buf}[j] : {slope} * {buf}[j];"]
    if act == "sigmoid":
        return [loop + f"{buf}[j] = {prefix}_sigmoid({buf}[j]);"]
    if act == "silu":
        return [loop + f"{buf}[j] = {buf}[j] * {prefix}_sigmoid({buf}[j]);"]
    if act == "tanh":
        return [loop + f"{buf}[j] = {fn('tanh')}({buf}[j]);"]
    if act == "elu":
        return [loop + f"{buf}[j] = {buf}[j] > {zero} ? {buf}[j] : {fn('expm1')}({buf}[j]);"]
    if act == "softplus":
        return [loop + f"{buf}[j] = {buf}[j] > {t.lit(SOFTPLUS_THRESHOLD)} ? {buf}[j] : "
                f"{fn('log1p')}({fn('exp')}({buf}[j]));"]
    if act == "selu":
        return [loop + f"{buf}[j] = {t.lit(SELU_SCALE)} * ({buf}[j] > {zero} ? {buf}[j] : "
                f"{t.lit(SELU_ALPHA)} * {fn('expm1')}({buf}[j]));"]
    if act == "mish":
        sp = (f"({buf}[j] > {t.lit(SOFTPLUS_THRESHOLD)} ? {buf}[j] : "
              f"{fn('log1p')}({fn('exp')}({buf}[j])))")
        return [loop + f"{buf}[j] = {buf}[j] * {fn('tanh')}({sp});"]
    if act == "gelu":
        # z·Φ(z) = z·erfc(-z/√2)/2, as the kernel (no 1 + erf cancellation)
        return [loop + f"{buf}[j] = {half} * {buf}[j] * {fn('erfc')}(-{buf}[j] * "
                f"{t.lit(np.sqrt(0.5))});"]
    if act == "softmax":
        return [f"{{ {T} mx = {buf}[0], s = {zero};",
                f"  for (j = 1; j < {k}; j++) mx = {buf}[j] > mx ? {buf}[j] : mx;",
                f"  for (j = 0; j < {k}; j++) {{ {buf}[j] = {fn('exp')}({buf}[j] - mx); "
                f"s += {buf}[j]; }}",
                f"  s = {one} / s;",
                f"  for (j = 0; j < {k}; j++) {buf}[j] *= s; }}"]
    raise AssertionError(f"no C code for activation {act!r}")  # pragma: no cover


def _c_dense(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
             ) -> tuple[list[str], list[str]]:
    """(the weight arrays, the statements) of a Dense layer reading ``src``, writing
    ``dst``: o[j] = sum_i in[i]·W[i][j] + b[j], i outer so that the inner loop over j is
    a vectorisable axpy, then the activation in place."""
    n_in, k = layer.in_features, layer.out_features
    arrays = [_c_array(t, f"{prefix}_W{tag}", layer.W), _c_array(t, f"{prefix}_b{tag}", layer.b)]
    lines = [f"o = {dst};",
             f"for (j = 0; j < {k}; j++) o[j] = {t.lit(0.0)};",
             f"for (i = 0; i < {n_in}; i++) {{",
             f"    const {t.name} xi = {src}[i];",
             f"    const {t.name} *w = {prefix}_W{tag} + i * {k};",
             f"    for (j = 0; j < {k}; j++) o[j] += xi * w[j];",
             "}",
             f"for (j = 0; j < {k}; j++) o[j] += {prefix}_b{tag}[j];"]
    lines += _c_activation_loop(t, prefix, _activation_name(layer), "o", k)
    return arrays, lines


def _c_activation_layer(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
                        ) -> tuple[list[str], list[str]]:
    """(no arrays, the statements) of an Activation layer (a Dropout layer: the
    identity in inference): a copy, then the activation in place."""
    k = layer.out_features
    lines = [f"o = {dst};", f"for (j = 0; j < {k}; j++) o[j] = {src}[j];"]
    return [], lines + _c_activation_loop(t, prefix, _activation_name(layer), "o", k)


def _c_layer_norm(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
                  ) -> tuple[list[str], list[str]]:
    """(γ and β, the statements) of a LayerNorm: each row block's (the whole row without
    groups) mean and biased variance in double, then x̂ (rounded to the model's type)
    and γ·x̂ + β, as the kernel."""
    k, groups = layer.out_features, layer.groups
    w = k // groups
    lines = [f"o = {dst};",
             f"{{ size_t m; for (m = 0; m < {groups}; m++) {{",
             f"  const {t.name} *xb = {src} + m * {w}; {t.name} *ob = o + m * {w};",
             "  double mu = 0.0, var = 0.0, r;",
             f"  for (j = 0; j < {w}; j++) mu += xb[j];",
             f"  mu /= {w};",
             f"  for (j = 0; j < {w}; j++) {{ double d = xb[j] - mu; var += d * d; }}",
             f"  r = 1.0 / sqrt(var / {w} + {float(layer.eps).hex()});",
             f"  for (j = 0; j < {w}; j++) ob[j] = ({t.name})((xb[j] - mu) * r); }} }}"]
    if not layer.affine:
        return [], lines
    g, b = f"{prefix}_gamma{tag}", f"{prefix}_beta{tag}"
    arrays = [_c_array(t, g, layer.gamma), _c_array(t, b, layer.beta)]
    return arrays, lines + [f"for (j = 0; j < {k}; j++) o[j] = {g}[j] * o[j] + {b}[j];"]


def _c_batch_norm(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
                  ) -> tuple[list[str], list[str]]:
    """(the running statistics, γ and β; the statements) of a BatchNorm in inference:
    (x − mean)/√(var + eps) in double, rounded to the model's type, then γ·x̂ + β."""
    k = layer.out_features
    m, v = f"{prefix}_mean{tag}", f"{prefix}_var{tag}"
    arrays = [_c_array(t, m, layer.running_mean), _c_array(t, v, layer.running_var)]
    lines = [f"o = {dst};",
             f"for (j = 0; j < {k}; j++) o[j] = ({t.name})(((double){src}[j] - {m}[j]) / "
             f"sqrt((double){v}[j] + {float(layer.eps).hex()}));"]
    if layer.affine:
        g, b = f"{prefix}_gamma{tag}", f"{prefix}_beta{tag}"
        arrays += [_c_array(t, g, layer.gamma), _c_array(t, b, layer.beta)]
        lines.append(f"for (j = 0; j < {k}; j++) o[j] = {g}[j] * o[j] + {b}[j];")
    return arrays, lines


def _c_periodic(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
                ) -> tuple[list[str], list[str]]:
    """(2π·frequencies in double, the weights; the statements) of a periodic embedding:
    per feature the angles and their cos and sin in double, rounded to the model's type
    as the kernel's, then the feature's linear map and ReLU."""
    F, k, d, T = layer.in_features, layer.n_frequencies, layer.d_embedding, t.name
    c, w, b = f"{prefix}_c{tag}", f"{prefix}_w{tag}", f"{prefix}_b{tag}"
    arrays = [_c_array(_CType(np.dtype(np.float64)), c,
                       2 * np.pi * layer.frequencies.astype(np.float64)),
              _c_array(t, w, layer.weight), _c_array(t, b, layer.bias)]
    w_off = "0" if layer.lite else f"i * {2 * k * d}"
    b_off = "0" if layer.lite else f"i * {d}"
    relu = f"s > {t.lit(0.0)} ? s : {t.lit(0.0)}" if layer.relu else "s"
    lines = [f"o = {dst};",
             f"for (i = 0; i < {F}; i++) {{ {T} p[{2 * k}]; size_t u;",
             f"  for (j = 0; j < {k}; j++) {{ double a = {c}[i * {k} + j] * (double){src}[i];",
             f"    p[j] = ({T})cos(a); p[{k} + j] = ({T})sin(a); }}",
             f"  for (u = 0; u < {d}; u++) {{ {T} s = {b}[{b_off} + u];",
             f"    for (j = 0; j < {2 * k}; j++) s += p[j] * {w}[{w_off} + j * {d} + u];",
             f"    o[i * {d} + u] = {relu}; }} }}"]
    return arrays, lines


def _c_periodic_bias(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
                     ) -> tuple[list[str], list[str]]:
    """(2π·frequencies and phases in double, the weights; the statements) of a PBLD
    embedding: per embedded column the angles and their cosines in double, rounded to
    the model's type as the kernel's, the feature's linear map, then the row itself."""
    F, k, d, T = layer.n_embedded, layer.n_frequencies, layer.d_embedding, t.name
    c, ph, w, b = (f"{prefix}_{stem}{tag}" for stem in ("c", "ph", "w", "b"))
    f64 = _CType(np.dtype(np.float64))
    arrays = [_c_array(f64, c, 2 * np.pi * layer.frequencies.astype(np.float64)),
              _c_array(f64, ph, layer.phases.astype(np.float64)),
              _c_array(t, w, layer.weight), _c_array(t, b, layer.bias)]
    lines = [f"o = {dst};",
             f"for (i = 0; i < {F}; i++) {{ {T} p[{k}]; size_t u;",
             f"  for (j = 0; j < {k}; j++) p[j] = ({T})cos({c}[i * {k} + j] * (double){src}[i]"
             f" + {ph}[i * {k} + j]);",
             f"  for (u = 0; u < {d}; u++) {{ {T} s = {b}[i * {d} + u];",
             f"    for (j = 0; j < {k}; j++) s += p[j] * {w}[i * {k * d} + j * {d} + u];",
             f"    o[i * {d} + u] = s; }} }}",
             f"for (j = 0; j < {layer.in_features}; j++) o[{F * d} + j] = {src}[j];"]
    return arrays, lines


def _c_scale(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
             ) -> tuple[list[str], list[str]]:
    """(the factors; the statements) of a Scale: o = x·s."""
    s = f"{prefix}_s{tag}"
    return [_c_array(t, s, layer.scale)], [
        f"o = {dst};", f"for (j = 0; j < {layer.out_features}; j++) o[j] = {src}[j] * {s}[j];"]


def _c_parametric(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
                  ) -> tuple[list[str], list[str]]:
    """(α; the statements) of a ParametricActivation: f(x) in place on a copy, then
    x + α·(f(x) − x)."""
    a, k = f"{prefix}_a{tag}", layer.out_features
    lines = [f"o = {dst};", f"for (j = 0; j < {k}; j++) o[j] = {src}[j];"]
    lines += _c_activation_loop(t, prefix, layer.activation, "o", k)
    lines.append(f"for (j = 0; j < {k}; j++) o[j] = {src}[j] + {a}[j] * (o[j] - {src}[j]);")
    return [_c_array(t, a, layer.alpha)], lines


def _c_ple(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
           ) -> tuple[list[str], list[str]]:
    """(each column's feature, clamps, 1/width and −edge/width; the statements) of a
    piecewise-linear encoding: b + w·x of the column's feature, then its clamps (bit 1:
    below at 0, bit 2: above at 1), as the kernel."""
    feat, coef = layer.engine_buffers()
    w, b, lo, hi = coef.reshape(4, -1)
    m = feat.size
    clamps = (np.isfinite(lo).astype(int) + 2 * np.isfinite(hi).astype(int)).tolist()
    f, c, wn, bn = (f"{prefix}_{stem}{tag}" for stem in ("f", "c", "w", "b"))

    def ints(name: str, values: list[int]) -> str:
        rows = [", ".join(str(int(v)) for v in values[i:i + 16]) for i in range(0, m, 16)]
        return f"static const int {name}[{m}] = {{\n    " + ",\n    ".join(rows) + "\n};\n"
    arrays = [ints(f, feat.tolist()), ints(c, clamps), _c_array(t, wn, w), _c_array(t, bn, b)]
    zero, one = t.lit(0.0), t.lit(1.0)
    lines = [f"o = {dst};",
             f"for (j = 0; j < {m}; j++) {{ {t.name} z = {bn}[j] + {wn}[j] * {src}[{f}[j]];",
             f"  if (({c}[j] & 1) && z < {zero}) z = {zero};",
             f"  if (({c}[j] & 2) && z > {one}) z = {one};",
             "  o[j] = z; }"]
    return arrays, lines


def _c_categorical(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
                   ) -> tuple[list[str], list[str]]:
    """(the tables; the statements) of a categorical embedding: the numeric columns
    copied, then per coded column its table's row, NaN for a code that is not an
    integer in range (as the kernel: nothing is read out of bounds)."""
    n_num = layer.in_features - len(layer.columns)
    numeric = layer.engine_buffers()[0][:n_num].tolist()
    arrays, lines = [], [f"o = {dst};"]
    lines += [f"o[{j}] = {src}[{c}];" for j, c in enumerate(numeric)]
    off = n_num
    for j, (col, card, dim, table) in enumerate(zip(layer.columns, layer.cardinalities,
                                                    layer.dims, layer.tables)):
        name = f"{prefix}_table{j}{tag}"
        arrays.append(_c_array(t, name, table))
        lines += [f"{{ const double v = (double){src}[{col}];",
                  f"  if (v >= 0.0 && v < {card}.0 && v == floor(v)) {{",
                  f"    const {t.name} *r = {name} + (size_t)v * {dim};",
                  f"    for (j = 0; j < {dim}; j++) o[{off} + j] = r[j];",
                  f"  }} else {{ for (j = 0; j < {dim}; j++) o[{off} + j] = ({t.name})NAN; }} }}"]
        off += dim
    return arrays, lines


def _c_batch_ensemble(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
                      ) -> tuple[list[str], list[str]]:
    """(W, r, s, b; the statements) of a LinearBatchEnsemble: per member m, u = x_m ∘ r_m
    (x_m: the shared input or the member's columns), o_m = (u·W) ∘ s_m + b_m, then the
    activation over all members' columns."""
    T, k, d_in, d_out = t.name, layer.k, layer.d_in, layer.d_out
    W, r, sc, b = (f"{prefix}_{stem}{tag}" for stem in ("W", "r", "s", "b"))
    arrays = [_c_array(t, W, layer.W), _c_array(t, r, layer.r), _c_array(t, sc, layer.s)]
    bias = ""
    if layer.bias:
        arrays.append(_c_array(t, b, layer.b))
        bias = f" + {b}[m * {d_out} + j]"
    x_off = "" if layer.shared_input else f"m * {d_in} + "
    lines = [f"o = {dst};",
             f"{{ size_t m; {T} u[{d_in}];",
             f"  for (m = 0; m < {k}; m++) {{ {T} *om = o + m * {d_out};",
             f"    for (i = 0; i < {d_in}; i++) u[i] = {src}[{x_off}i] * {r}[m * {d_in} + i];",
             f"    for (j = 0; j < {d_out}; j++) om[j] = {t.lit(0.0)};",
             f"    for (i = 0; i < {d_in}; i++) {{ const {T} ui = u[i]; "
             f"const {T} *w = {W} + i * {d_out};",
             f"      for (j = 0; j < {d_out}; j++) om[j] += ui * w[j]; }}",
             f"    for (j = 0; j < {d_out}; j++) om[j] = om[j] * {sc}[m * {d_out} + j]{bias}; }} }}"]
    return arrays, lines + _c_activation_loop(t, prefix, _activation_name(layer), "o",
                                              layer.out_features)


def _c_linear_ensemble(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
                       ) -> tuple[list[str], list[str]]:
    """(W, b; the statements) of a LinearEnsemble: per member m, o_m = x_m·W_m + b_m on
    its own columns, then the activation."""
    T, k, d_in, d_out = t.name, layer.k, layer.d_in, layer.d_out
    W, b = f"{prefix}_W{tag}", f"{prefix}_b{tag}"
    arrays = [_c_array(t, W, layer.W)]
    lines = [f"o = {dst};",
             "{ size_t m;",
             f"  for (m = 0; m < {k}; m++) {{ {T} *om = o + m * {d_out}; "
             f"const {T} *xm = {src} + m * {d_in};",
             f"    for (j = 0; j < {d_out}; j++) om[j] = {t.lit(0.0)};",
             f"    for (i = 0; i < {d_in}; i++) {{ const {T} xi = xm[i]; "
             f"const {T} *w = {W} + (m * {d_in} + i) * {d_out};",
             f"      for (j = 0; j < {d_out}; j++) om[j] += xi * w[j]; }}"]
    if layer.bias:
        arrays.append(_c_array(t, b, layer.b))
        lines.append(f"    for (j = 0; j < {d_out}; j++) om[j] += {b}[m * {d_out} + j];")
    lines.append("  } }")
    return arrays, lines + _c_activation_loop(t, prefix, _activation_name(layer), "o",
                                              layer.out_features)


#: each layer kind's C rule: (type, name prefix, layer, array tag, source, destination)
#: -> (array definitions, statements)
_C_LAYERS: dict[str, Callable[[_CType, str, Any, str, str, str],
                              tuple[list[str], list[str]]]] = {
    "dense": _c_dense, "activation": _c_activation_layer, "dropout": _c_activation_layer,
    "layer_norm": _c_layer_norm, "batch_norm": _c_batch_norm,
    "periodic_embedding": _c_periodic, "piecewise_linear_encoding": _c_ple,
    "categorical_embedding": _c_categorical, "batch_ensemble": _c_batch_ensemble,
    "linear_ensemble": _c_linear_ensemble, "scale": _c_scale,
    "parametric_activation": _c_parametric, "periodic_bias_embedding": _c_periodic_bias}


def _c_residual(t: _CType, prefix: str, layer: Any, tag: str, src: str, dst: str
                ) -> tuple[list[str], list[str]]:
    """(the block's arrays, the statements) of a Residual: its input kept in a local
    array, the block's layers through two local buffers, then the sum into ``dst``."""
    T, w = t.name, layer.out_features
    wide = max(inner.out_features for inner in engine_layers(layer.layers))
    keep, bufs = f"s{tag}", (f"ra{tag}", f"rb{tag}")
    arrays: list[str] = []
    used = ", ".join(f"{buf}[{wide}]" for buf in bufs[:min(2, len(layer.layers))])
    lines = [f"{{ {T} {keep}[{w}], {used};",
             f"  for (j = 0; j < {w}; j++) {keep}[j] = {src}[j];"]
    here = keep
    for i, inner in enumerate(layer.layers):
        rule = _C_LAYERS.get(inner.kind)
        if rule is None:
            raise NotImplementedError(f"no C export for layer kind {inner.kind!r}")
        out = bufs[i % 2]
        a, body = rule(t, prefix, inner, f"{tag}_{i}", here, out)
        arrays += a
        lines += ["  " + line for line in body]
        here = out
    lines += [f"  o = {dst};", f"  for (j = 0; j < {w}; j++) o[j] = {keep}[j] + {here}[j]; }}"]
    return arrays, lines


_C_LAYERS["residual"] = _c_residual


def _c_member(t: _CType, name: str, model: Sequential, tag: str, final: str, dst: str
              ) -> tuple[list[str], list[str]]:
    """One network's arrays and statements: from ``in`` (the row), through buf0/buf1,
    to ``dst``, then the final transform (with objective.heads > 1: the raw output into
    a local buffer, each head's transform, their mean into ``dst``)."""
    arrays: list[str] = []
    lines: list[str] = []
    n = len(model.layers)
    heads, width = model.objective.heads, model.target_width
    last = dst if heads == 1 else "hb"
    src = "in"
    for i, layer in enumerate(model.layers):
        rule = _C_LAYERS.get(layer.kind)
        if rule is None:
            raise NotImplementedError(f"no C export for layer kind {layer.kind!r}")
        out = last if i == n - 1 else ("buf0" if i % 2 == 0 else "buf1")
        a, body = rule(t, name, layer, f"{tag}{i}", src, out)
        arrays += a
        lines += body
        src = "o"
        if i < n - 1:
            lines.append("in = o;")
            src = "in"
    if heads == 1:
        return arrays, lines + _c_activation_loop(t, name, final, "o", model.out_features)
    link = _c_activation_loop(t, name, final, "hh", width)
    if link:
        lines += [f"for (m = 0; m < {heads}; m++) {{ {t.name} *hh = hb + m * {width};",
                  *("  " + line for line in link), "}"]
    lines += [f"o = {dst};",
              f"for (j = 0; j < {width}; j++) {{ {t.name} s = {t.lit(0.0)};",
              f"  for (m = 0; m < {heads}; m++) s += hb[m * {width} + j];",
              f"  o[j] = s / {t.lit(float(heads))}; }}"]
    return arrays, [f"{{ {t.name} hb[{model.out_features}]; size_t m;",
                    *("  " + line for line in lines), "}"]


def _c_activation_derivative(t: _CType, prefix: str, act: str, z: str) -> str:
    """A C expression of f'(z) (fixed table; softmax is refused before)."""
    fn, one, zero = t.fn, t.lit(1.0), t.lit(0.0)
    if act == "identity":
        return one
    if act == "relu":
        return f"({z} > {zero} ? {one} : {zero})"
    if act == "leaky_relu":
        return f"({z} > {zero} ? {one} : {t.lit(LEAKY_SLOPE)})"
    if act == "sigmoid":
        return f"({prefix}_sigmoid({z}) * ({one} - {prefix}_sigmoid({z})))"
    if act == "tanh":
        return f"({one} - {fn('tanh')}({z}) * {fn('tanh')}({z}))"
    if act == "elu":
        return f"({z} > {zero} ? {one} : {fn('exp')}({z}))"
    if act == "softplus":
        return f"({z} > {t.lit(SOFTPLUS_THRESHOLD)} ? {one} : {prefix}_sigmoid({z}))"
    if act == "gelu":
        return (f"({t.lit(0.5)} * {fn('erfc')}(-{z} * {t.lit(np.sqrt(0.5))}) + {z} * "
                f"{t.lit(1 / np.sqrt(2 * np.pi))} * {fn('exp')}({t.lit(-0.5)} * {z} * {z}))")
    if act == "silu":
        s = f"{prefix}_sigmoid({z})"
        return f"({s} * ({one} + {z} * ({one} - {s})))"
    if act == "selu":
        return (f"({t.lit(SELU_SCALE)} * ({z} > {zero} ? {one} : "
                f"{t.lit(SELU_ALPHA)} * {fn('exp')}({z})))")
    if act == "mish":
        sp = f"({z} > {t.lit(SOFTPLUS_THRESHOLD)} ? {z} : {fn('log1p')}({fn('exp')}({z})))"
        th = f"{fn('tanh')}({sp})"
        return f"({th} + {z} * ({one} - {th} * {th}) * {prefix}_sigmoid({z}))"
    raise AssertionError(f"no C derivative for activation {act!r}")  # pragma: no cover


def _c_input_derivative(t: _CType, name: str, model: Sequential, jacobian: bool) -> list[str]:
    """The body of ``<name>_gradient`` (d(Σ_k y_k)/dx per row) or, with ``jacobian``,
    of ``<name>_jacobian`` (dy_k/dx per row and output): one forward pass keeping each
    layer's z, then a backward pass from a seed of ones, or one per output from the
    unit seed e_k (out: n_rows × n_out × n_in)."""
    T = t.name
    sizes = model.sizes
    n_layers = len(model.layers)
    n_in, n_out = sizes[0], sizes[-1]
    widest = max(sizes)
    acts = [_activation_name(layer) for layer in model.layers]
    what = "jacobian" if jacobian else "gradient"
    body = [f"void {name}_{what}(const {T} *x, size_t n_rows, {T} *out) {{",
            *[f"    {T} z{l}[{sizes[l + 1]}];" for l in range(n_layers)],
            f"    {T} a[{widest}], g[{widest}], h[{widest}];",
            "    size_t r, i, j, k;" if jacobian else "    size_t r, i, j;",
            "    for (r = 0; r < n_rows; r++) {",
            f"        const {T} *in = x + r * {n_in};"]
    for l in range(n_layers):
        k_in, k = sizes[l], sizes[l + 1]
        body += [f"        for (j = 0; j < {k}; j++) z{l}[j] = {name}_b{l}[j];",
                 f"        for (i = 0; i < {k_in}; i++) for (j = 0; j < {k}; j++) "
                 f"z{l}[j] += in[i] * {name}_W{l}[i * {k} + j];"]
        if l < n_layers - 1:
            body += [f"        for (j = 0; j < {k}; j++) a[j] = z{l}[j];"]
            body += ["        " + s for s in _c_activation_loop(t, name, acts[l], "a", k)]
            body += ["        in = a;"]
    if jacobian:
        body += [f"        for (k = 0; k < {n_out}; k++) {{",
                 f"        for (j = 0; j < {n_out}; j++) g[j] = j == k ? {t.lit(1.0)} : "
                 f"{t.lit(0.0)};"]
        first = f"out + (r * {n_out} + k) * {n_in}"
    else:
        body += [f"        for (j = 0; j < {n_out}; j++) g[j] = {t.lit(1.0)};"]
        first = f"out + r * {n_in}"
    for l in range(n_layers - 1, -1, -1):
        k_in, k = sizes[l], sizes[l + 1]
        dst = first if l == 0 else "h"
        body += [f"        for (j = 0; j < {k}; j++) g[j] *= "
                 f"{_c_activation_derivative(t, name, acts[l], f'z{l}[j]')};",
                 f"        {{ {T} *o = {dst};",
                 f"          for (i = 0; i < {k_in}; i++) {{ {T} s = {t.lit(0.0)};",
                 f"            for (j = 0; j < {k}; j++) s += {name}_W{l}[i * {k} + j] * g[j];",
                 "            o[i] = s; } }"]
        if l > 0:
            body += [f"        for (i = 0; i < {k_in}; i++) g[i] = h[i];"]
    if jacobian:
        body += ["        }"]
    body += ["    }", "}", ""]
    return body


def to_c(model: Any, directory: Any, *, name: str = "fastbp_model",
         derivatives: bool = False) -> tuple[str, str]:
    """Write ``<name>.h`` and ``<name>.c`` into ``directory``; returns their paths.

    Parameters
    ----------
    model : Sequential, Ensemble or fitted fastbp.tabular estimator
        An Ensemble exports the mean of its members' outputs.
    directory : str or os.PathLike
        An existing directory.
    name : str, default "fastbp_model"
        A C identifier (not a keyword, not starting with an underscore, at most 63
        characters): the prefix of every name the files define.
    derivatives : bool, default False
        Also write ``void <name>_gradient(const T *x, size_t n_rows, T *out)``: the
        gradient of the sum of the raw outputs with respect to x (``out`` n_rows ×
        in_features), what ``model.input_gradient(x)`` computes; and
        ``void <name>_jacobian(const T *x, size_t n_rows, T *out)``: every output's
        (``out`` n_rows × out_features × in_features), what ``model.jacobian(x)``
        computes (one model of Dense layers without softmax).

    Returns
    -------
    (header_path, source_path)

    Notes
    -----
    A fitted ``fastbp.tabular`` estimator exports with its table encoding:
    ``void <name>_predict(const double *x_num, const char *const *x_cat, size_t n_rows,
    float *out)`` (see fastbp/tabular/_export.py).

    The source defines ``void <name>_predict(const T *x, size_t n_rows, T *out)``
    (T ``float`` or ``double``, the model's dtype): x is n_rows × in_features and
    out n_rows × out_features, row-major; it computes what ``to_onnx(model)``'s
    output does. C99, ``<math.h>`` only (``<stddef.h>`` for size_t), no
    allocation: the workspace is stack arrays of the widest layer.

    Raises
    ------
    TypeError
        ``model`` is not a fastbp model or ensemble.
    ValueError
        A bad ``name``, a missing directory, non-finite parameters.
    """
    name = _check_c_name(name)
    derivatives = check.flag(derivatives, "derivatives")
    if type(model).__module__.startswith("fastbp.tabular"):   # an estimator, its encoding
        if derivatives:                                       # included
            raise ValueError("derivatives=True exports a network's input gradient, not a "
                             "tabular estimator's")
        from fastbp.tabular._export import tabular_to_c
        return tabular_to_c(model, directory, name)
    members = _members(model)
    final = _final_transform(model, "auto")
    if derivatives and members[0].objective.heads > 1:
        raise ValueError("derivatives=True exports the raw outputs' derivatives; a model "
                         "with objective.heads > 1 predicts its heads' mean")
    if derivatives:
        if len(members) > 1:
            raise ValueError("derivatives=True exports one model's input gradient, not an "
                             "Ensemble's")
        for i, layer in enumerate(members[0].layers):
            if layer.kind != "dense" or _activation_name(layer) == "softmax":
                raise ValueError(f"derivatives=True needs Dense layers with element-wise "
                                 f"activations; layers[{i}] is {layer!r}")
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"directory must be an existing directory, got {directory!r}")
    t = _CType(model.dtype)
    T = t.name
    n_in, n_out = model.in_features, _width(members[0], "auto")
    widest = max(layer.out_features for m in members for layer in m.layers)
    guard = f"FASTBP_GENERATED_{name.upper()}_H"
    signature = f"void {name}_predict(const {T} *x, size_t n_rows, {T} *out)"
    what = (f"a {'-'.join(map(str, members[0].sizes))} network" if len(members) == 1
            else f"the mean of {len(members)} networks")
    header = (
        f"/* Generated by fastbp.export.to_c: {what} in {T}. C99, no allocation. */\n"
        f"#ifndef {guard}\n#define {guard}\n\n#include <stddef.h>\n\n"
        f"#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n"
        f"#define {name.upper()}_N_INPUTS {n_in}\n"
        f"#define {name.upper()}_N_OUTPUTS {n_out}\n\n"
        f"/* x: n_rows x {n_in}, out: n_rows x {n_out}, row-major. */\n"
        f"{signature};\n\n"
        + (f"/* the gradient of the sum of the raw outputs: out n_rows x {n_in}. */\n"
           f"void {name}_gradient(const {T} *x, size_t n_rows, {T} *out);\n"
           f"/* dy_k/dx_i: out n_rows x {n_out} x {n_in}. */\n"
           f"void {name}_jacobian(const {T} *x, size_t n_rows, {T} *out);\n\n"
           if derivatives else "")
        + f"#ifdef __cplusplus\n}}\n#endif\n\n#endif\n")

    acts = {_activation_name(layer) for m in members for layer in engine_layers(m.layers)} \
        | {final}
    parts = [f"/* Generated by fastbp.export.to_c; weights as exact hexadecimal literals. */\n"
             f"#include <math.h>\n\n#include \"{name}.h\"\n\n"]
    lines: list[str] = []
    many = len(members) > 1
    for k, member in enumerate(members):
        dst = "acc" if many else f"out + r * {n_out}"
        arrays, body = _c_member(t, name, member, f"m{k}_" if many else "", final, dst)
        parts += arrays
        lines.append(f"in = x + r * {n_in};")
        lines += body
        if many:
            sum_op = "=" if k == 0 else "+="
            lines.append(f"for (j = 0; j < {n_out}; j++) out[r * {n_out} + j] {sum_op} acc[j];")
    if many:
        lines.append(f"for (j = 0; j < {n_out}; j++) out[r * {n_out} + j] /= "
                     f"{t.lit(float(len(members)))};")
    if acts & {"sigmoid", "silu"} or (derivatives and "softplus" in acts):
        parts.append(_c_sigmoid(t, name))
    n_buffers = min(2, max(len(m.layers) for m in members) - 1)
    body = [f"{signature} {{",
            *[f"    {T} buf{j}[{widest}];" for j in range(n_buffers)],
            *([f"    {T} acc[{n_out}];"] if many else []),
            "    size_t r, i, j;",
            "    for (r = 0; r < n_rows; r++) {",
            f"        const {T} *in;",
            f"        {T} *o;"]
    body += ["        " + line for line in lines]
    body += ["    }", "}", ""]
    if derivatives:
        body += _c_input_derivative(t, name, members[0], jacobian=False)
        body += _c_input_derivative(t, name, members[0], jacobian=True)
    return _write_c(directory, name, header, "".join(parts) + "\n" + "\n".join(body))


def _write_c(directory: str, name: str, header: str, source: str) -> tuple[str, str]:
    """Write ``<name>.h`` and ``<name>.c`` (ASCII, atomically); their paths."""
    header_path = os.path.join(directory, f"{name}.h")
    source_path = os.path.join(directory, f"{name}.c")
    atomic_write(header_path, header.encode("ascii"))
    atomic_write(source_path, source.encode("ascii"))
    return header_path, source_path
