"""Every instruction-set variant of the element-wise loops gives the same bits.

_simd.h promises that the AVX-512, AVX2 and baseline builds of the optimizer and
_vmath loops agree bit for bit, but a test run only reaches the clone the loader
picks for its CPU. fastbp._kernels.simd_variants compiles the same bodies once per
variant under its own name; here each variant runs the same inputs and must give
the bits of the baseline, and the production path (ops, activations) the same
bits again. Variants this CPU (or build) cannot run are skipped, with the reason.
"""
from __future__ import annotations

import numpy as np
import pytest

from fastbp import ops
from fastbp._kernels import simd_variants as sv
from fastbp._optim_config import AdaGradConfig, AdamConfig, RMSpropConfig, SGDConfig

from conftest import DTYPES

VARIANTS = [pytest.param(v, marks=pytest.mark.skipif(
    not sv.supported(v), reason=f"this CPU or build cannot run the {v} variant"))
    for v in sv.VARIANTS if v != "baseline"]

# Every branch of every kernel: the common option sets have loops of their own.
CONFIGS = [
    (SGDConfig(lr=0.1), 3),
    (SGDConfig(lr=0.1, momentum=0.9), 1),
    (SGDConfig(lr=0.1, momentum=0.9), 4),
    (SGDConfig(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), 4),
    (SGDConfig(lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.01), 2),
    (AdaGradConfig(lr=0.1), 1),
    (AdaGradConfig(lr=0.1, weight_decay=0.01), 2),
    (RMSpropConfig(lr=0.01), 2),
    (RMSpropConfig(lr=0.01, momentum=0.5, centered=True, weight_decay=0.01), 3),
    (AdamConfig(lr=0.01), 5),
    (AdamConfig(lr=0.01, weight_decay=0.01), 5),
    (AdamConfig(lr=0.01, weight_decay=0.01, decoupled=True), 5),
    (AdamConfig(lr=0.01, eps_mode="folded"), 5),
    (AdamConfig(lr=0.01, beta1=0.3, amsgrad=True, weight_decay=0.01), 7),
]


def _inputs(dtype, n=1037, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=n).astype(dtype)
    g = rng.normal(size=n).astype(dtype)
    g[:5] = [0.0, -0.0, 1e-30, 1e30, -7.0]
    state = tuple(np.abs(rng.normal(size=n)).astype(dtype) for _ in range(3))
    return p, g, state


def _run_optim(variant, config, step, dtype):
    p, g, state = _inputs(dtype)
    used = tuple(s if name in config.state_names else None
                 for s, name in zip(state, config.kernel_state))
    if isinstance(config, RMSpropConfig) and config.centered:
        used[2][...] = used[2] * 0.1    # the centered variance must stay positive
    sv.optim_update(variant, config, p, g, used, step)
    return [p] + [s for s in used if s is not None]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("config, step", CONFIGS, ids=lambda c: repr(c) if not isinstance(c, int) else str(c))
def test_optimizer_variants_bit_identical(variant, dtype, config, step):
    want = _run_optim("baseline", config, step, dtype)
    got = _run_optim(variant, config, step, dtype)
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_production_optimizer_step_is_the_baseline_bits(dtype):
    """The clone the loader picked (ops.adam_step) gives the variants' bits too."""
    config = AdamConfig(lr=0.01, weight_decay=0.01, amsgrad=True)
    want = _run_optim("baseline", config, 3, dtype)
    p, g, (m, v, vmax) = _inputs(dtype)
    ops.adam_step(p, g, m, v, vmax, step=3, lr=0.01, weight_decay=0.01, amsgrad=True)
    for a, b in zip([p, m, v, vmax], want):
        assert a.tobytes() == b.tobytes()


def _vmath_inputs(dtype, k):
    rng = np.random.default_rng(k)
    x = (rng.normal(size=(41, k)) * 8).astype(dtype)
    x.flat[:8] = [0.0, -0.0, 30.0, -30.0, 700.0, -745.5, np.inf, -np.inf][: x.size]
    return x


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("kernel", sv.VMATH_KERNELS)
@pytest.mark.parametrize("k", [1, 7, 300])   # exp_rows: batched short rows and long rows
def test_vmath_variants_bit_identical(variant, dtype, kernel, k):
    if kernel in sv.FLOAT32_ONLY and dtype is not np.float32:
        pytest.skip("float64 runs the scalar double kernels")
    x = _vmath_inputs(dtype, k)
    with np.errstate(all="ignore"):
        want = sv.vmath("baseline", kernel, x)
        got = sv.vmath(variant, kernel, x)
    for a, b in zip(got, want):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("kernel", ["tanh", "sigmoid", "silu", "elu", "softplus", "gelu"])
def test_production_activations_are_the_baseline_bits(dtype, kernel):
    if kernel in sv.FLOAT32_ONLY and dtype is not np.float32:
        pytest.skip("float64 runs the scalar double kernels")
    x = _vmath_inputs(dtype, 7)
    x = x[np.isfinite(x).all(axis=1)]
    want, _, _ = sv.vmath("baseline", kernel, x)
    got = ops.activation_forward(kernel, x)
    assert got.tobytes() == want.tobytes()
    if kernel in sv.FLOAT32_ONLY:
        dZ, _, _ = sv.vmath("baseline", kernel + "_grad", x)
        got = ops.activation_backward(kernel, x, ops.activation_forward(kernel, x),
                                      np.ones_like(x))
        assert got.tobytes() == dZ.tobytes()


def test_unknown_or_unsupported_variant_is_refused():
    with pytest.raises(ValueError, match="variant"):
        sv.supported("sse9")
    assert sv.supported("baseline")
    for v in sv.VARIANTS:
        if not sv.supported(v):
            with pytest.raises(RuntimeError, match=v):
                sv.vmath(v, "tanh", np.zeros((1, 1)))
