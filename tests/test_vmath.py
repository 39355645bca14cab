"""The vectorised exp, tanh and sigmoid of _vmath.h against libm (through NumPy).

The kernels' softmax, cross-entropy, tanh and sigmoid all go through fb_exp; its
accuracy is pinned here over the whole double range, edges included, so that
the 1e-12 agreement of the kernels with the reference has margin to spare.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastbp import ops, reference
from fastbp._kernels import simd_variants as sv
from fastbp._kernels.activations import exp_into
from fastbp._kernels.losses import loss_forward_backward_into
from fastbp._table import LOSSES as LOSS_CODES

from conftest import assert_close, assert_scalar_close, tol

EDGES = np.array([0.0, -0.0, 1.0, -1.0, 1e-300, -1e-300, 0.34657359027997264,
                  -0.34657359027997264, 88.72, -87.33, 700.0, 709.78, 709.7827128933840,
                  709.79, 710.0, 1e4, -708.39, -708.4, -720.0, -740.0, -745.13, -745.14,
                  -745.2, -746.0, -1e4, np.inf, -np.inf])


def _vexp(x):
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    exp_into(x, out)
    return out


def _libm_exp(x):
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(x)


def _assert_within_ulps(got, want, ulps):
    # np.spacing of a subnormal or zero is 2^-1074: the absolute grid there
    spacing = np.spacing(np.abs(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite])
    err = np.abs(got[finite] - want[finite]) / spacing[finite]
    assert err.max(initial=0.0) <= ulps, (err.max(), got[finite][err.argmax()])


def test_exp_edges_overflow_underflow_and_nan():
    _assert_within_ulps(_vexp(EDGES), _libm_exp(EDGES), 2)
    assert np.isnan(_vexp(np.array([np.nan, 1.0, np.nan]))[[0, 2]]).all()
    assert _vexp(np.array([1.0, np.nan]))[0] == _vexp(np.array([1.0]))[0]   # no NaN across lanes


@pytest.mark.parametrize("low, high", [(-1.0, 1.0), (-50.0, 50.0), (-745.5, 710.0),
                                       (-745.2, -708.0), (700.0, 709.8)])
def test_exp_within_two_ulps_over_ranges(low, high):
    x = np.random.default_rng(7).uniform(low, high, 200_003)   # odd: vector tails too
    _assert_within_ulps(_vexp(x), _libm_exp(x), 2)


@given(hnp.arrays(np.float64, st.integers(1, 70),
                  elements=st.floats(-800, 800, allow_nan=False)))
def test_exp_within_two_ulps_hypothesis(x):
    _assert_within_ulps(_vexp(x), _libm_exp(x), 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_and_sigmoid_special_values(dtype):
    z = np.array([[0.0, -0.0, np.inf, -np.inf, 21.9, 22.1, -30.0, 0.625, -0.625, 0.6251,
                   1e-30, -1e-30, 800.0, -800.0]], dtype=dtype)
    t = ops.activation_forward("tanh", z)
    np.testing.assert_array_equal(np.signbit(t), np.signbit(np.tanh(z)))   # tanh(-0) = -0
    np.testing.assert_allclose(t, np.tanh(z), rtol=tol(dtype, "vmath_tanh_rtol"), atol=0)
    s = ops.activation_forward("sigmoid", z)
    want = 1.0 / (1.0 + _libm_exp(-z.astype(np.float64)))
    np.testing.assert_allclose(s, want.astype(dtype), rtol=tol(dtype, "vmath_sigmoid_rtol"),
                               atol=np.finfo(dtype).smallest_subnormal)
    nan = np.array([[np.nan, 1.0]], dtype=dtype)
    assert np.isnan(ops.activation_forward("tanh", nan)[0, 0])
    assert np.isnan(ops.activation_forward("sigmoid", nan)[0, 0])


@pytest.mark.parametrize("low, high", [(-0.7, 0.7), (0.6, 0.65), (-3.0, 3.0), (-25.0, 25.0),
                                       (-1e-6, 1e-6)])
def test_float64_tanh_within_one_and_a_half_ulps(low, high):
    """fb_tanh (its own exp, one division shared by both branches) against the long
    double tanh: both branches, the switch at 0.625, the cap at 22 and tiny inputs."""
    x = np.random.default_rng(11).uniform(low, high, (1, 300_001))
    want = np.tanh(x.astype(np.longdouble))
    got = ops.activation_forward("tanh", x)
    err = np.abs(got.astype(np.longdouble) - want) / np.spacing(np.abs(want.astype(np.float64)))
    assert err.max() <= 1.5, (err.max(), x[0, err.argmax()])


@pytest.mark.parametrize("low, high", [(-0.5, 0.5), (0.8, 0.95), (-3.0, 3.0), (-40.0, 40.0),
                                       (-1e-6, 1e-6), (30.0, 745.0)])
def test_binary_cross_entropy_terms_within_two_ulps(low, high):
    """The vectorised log σ of the binary cross-entropy (fdlibm's log1p on [0, 1] over
    fb_exp) against the long double -log σ(x) = max(-x, 0) + log1p(e^-|x|): both of
    log1p's branches (e^-|x| above and below √2 - 1, |x| = 0.881), tiny terms, and
    e^-|x| down to the subnormals. (libm's log1p(exp(-|x|)) and the sum measure 1.4 ulp
    on these ranges, this 1.7.)"""
    x = np.random.default_rng(12).uniform(low, high, (1, 200_001))
    _, _, terms = sv.vmath("baseline", "bce_logits", x)
    xl = x.astype(np.longdouble)
    want = np.maximum(-xl, 0) + np.log1p(np.exp(-np.abs(xl)))
    err = np.abs(terms.astype(np.longdouble) - want) / np.spacing(np.abs(want.astype(np.float64)))
    assert err.max() <= 2.0, (err.max(), x[0, err.argmax()])
    # and the production loss is those terms' mean, its gradient (σ(x) - 1)/N
    out = np.empty_like(x)
    value = loss_forward_backward_into(LOSS_CODES.index("binary_cross_entropy"), x,
                                       np.ones_like(x), out)
    assert_scalar_close(value, float(want.mean()), np.float64, rtol=1e-15)
    grad, _, _ = sv.vmath("baseline", "bce_logits", x)
    np.testing.assert_array_equal(out, grad * (1.0 / x.size))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 3, 10, 255, 256, 257, 1000])
def test_softmax_and_cross_entropy_rows_of_every_length(k, dtype):
    """exp_rows batches short rows into one buffer and splits long ones, over blocks
    of 64 rows (70 rows: two blocks). The logits spread over ±1200, so a row shifted
    by another row's maximum would overflow or vanish instead of matching."""
    rng = np.random.default_rng(k)
    z = rng.normal(scale=400, size=(70, k)).astype(dtype)
    z64 = z.astype(np.float64)
    e = _libm_exp(z64 - z64.max(axis=1, keepdims=True))
    want = e / e.sum(axis=1, keepdims=True)
    assert_close(ops.activation_forward("softmax", z), want.astype(dtype), dtype)
    labels = rng.integers(0, k, 70)
    loss, grad = ops.loss_forward_backward("cross_entropy", z, labels)
    ref_loss, ref_grad = reference.loss_forward_backward("cross_entropy", z64, labels)
    assert_scalar_close(loss, ref_loss, dtype, scale=np.abs(z64).max())
    # p - onehot cancels to 0 at a dominant logit: the error scale is 1/n
    assert_close(grad, ref_grad.astype(dtype), dtype, scale=1 / 70)


# ---------------------------------------------------------------- float32 activations
#: each float32 activation's worst error in float ulps of the float64 value (measured
#: over the inputs below; gelu: Numerical Recipes' erfc, 1.2e-7 relative, in the tails)
F32_ULPS = {"tanh": 2, "sigmoid": 3, "silu": 3, "elu": 3, "softplus": 2, "gelu": 8}


def _f32_inputs():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.uniform(-30, 30, 100_001), rng.uniform(-3, 3, 100_001),
                           rng.uniform(-0.7, 0.7, 50_001), np.logspace(-40, 1.6, 10_000),
                           -np.logspace(-40, 1.6, 10_000),
                           [0.0, -0.0, 1e-45, 88.0, -88.0, 100.0, -100.0, 1e30, -1e30,
                            3e38, -3e38]]).astype(np.float32).reshape(1, -1)


@pytest.mark.parametrize("act", sorted(F32_ULPS))
def test_float32_activations_are_float32_math_within_a_few_ulps(act):
    """float32 models evaluate in float (_vmath.h's fb_*f): against the float64 kernels,
    within F32_ULPS where the result is normal, within 1e-36 where it is subnormal;
    their derivatives (given the float32 output) within 3 ulps of max(|f'|, 1/2)."""
    X = _f32_inputs()
    X64 = X.astype(np.float64)
    got = ops.activation_forward(act, X)
    want = ops.activation_forward(act, X64)
    normal = np.isfinite(want) & (np.abs(want) >= 1e-30)
    ulps = np.abs(got - want)[normal] / np.spacing(np.abs(want[normal]).astype(np.float32))
    assert ulps.max() <= F32_ULPS[act], (ulps.max(), X[normal][ulps.argmax()])
    assert np.abs(got - want)[~normal & np.isfinite(want)].max(initial=0.0) <= 1e-36
    np.testing.assert_array_equal(got[~np.isfinite(want)], want[~np.isfinite(want)])
    dZ = ops.activation_backward(act, X, got, np.ones_like(X))
    dZ64 = ops.activation_backward(act, X64, got.astype(np.float64), np.ones_like(X64))
    scale = np.spacing(np.maximum(np.abs(dZ64), 0.5).astype(np.float32))
    assert (np.abs(dZ - dZ64) / scale).max() <= 3


@pytest.mark.parametrize("act", sorted(F32_ULPS))
def test_float32_activations_keep_nan_inf_and_signed_zero(act):
    x = np.array([[np.nan, np.inf, -np.inf, 0.0, -0.0]], dtype=np.float32)
    with np.errstate(all="ignore"):
        got = ops.activation_forward(act, x)
        want = ops.activation_forward(act, x.astype(np.float64)).astype(np.float32)
    assert np.isnan(got[0, 0])
    np.testing.assert_array_equal(got[0, 1:], want[0, 1:])
    assert np.signbit(got[0, 4]) == np.signbit(want[0, 4])
