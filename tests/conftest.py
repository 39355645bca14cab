"""Shared test configuration: the per-dtype tolerance table, the comparison helpers and
the Hypothesis profiles.

Nothing here imports from the source tree by path: the tests import ``fastbp`` (the
installed package when run against a wheel) and ``strategies`` (this directory, which
pytest puts on ``sys.path`` because ``tests/`` has no ``__init__.py``).
"""
from __future__ import annotations

import copy
import os

import numpy as np
from hypothesis import HealthCheck, settings

# ---------------------------------------------------------------- Hypothesis profiles
# "ci" (the default) keeps the whole kernel suite well under a minute on two cores;
# "thorough" is for a one-off hunt: FASTBP_HYPOTHESIS_PROFILE=thorough pytest tests/...
# deadline=None: timings of BLAS calls on a shared machine are too noisy for deadlines.
# too_slow/data_too_large: the strategies draw arrays of up to 20000 elements on purpose.
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=30, deadline=None, suppress_health_check=_SUPPRESS)
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=_SUPPRESS)
settings.load_profile(os.environ.get("FASTBP_HYPOTHESIS_PROFILE", "ci"))

def pytest_configure(config):
    config.addinivalue_line(
        "markers", "default_blas_threads: run with BLAS's own thread count "
        "(test_kernels_dense.py otherwise limits BLAS to one thread)")


# ---------------------------------------------------------------- tolerances
# One table, keyed by dtype. Every comparison of fastbp.ops against fastbp.reference
# uses `rtol` with an absolute part `atol = rtol * scale` (see assert_close). The
# numbers were measured with the "thorough" profile (500 examples per test; shapes up
# to 300 x 300, values in [-10, 10], Hypothesis edge values) and FASTBP_TOL_REPORT=1
# (see the end of this file); they leave a margin of >= 2.5x over the worst case seen
# while staying far below what a real bug (a wrong branch, a lost term, a
# transposed operand, a wrong dtype) produces.
#
# float64 -- rtol 1e-12 (the contract). Worst disagreement measured: activations
#   ~1e-14 (softmax: the kernel's row sum is sequential, NumPy's pairwise), dense and the
#   GEMM wrapper ~3e-15 of the error scale (NumPy's and SciPy's OpenBLAS builds sum in
#   different orders), losses ~4e-15 (values and gradients). `trajectory_rtol` 1e-10
#   is for 25-step optimizer trajectories, where differences could compound; measured:
#   bit-identical.
#
# float32 -- rtol 2e-6 (~17 float32 ulps at 1). The kernels evaluate exp, tanh, erfc,
#   log1p and the softmax / cross-entropy / loss sums in double and round once, while
#   the reference runs NumPy's and SciPy's float32 loops, so the two differ by a few
#   float32 ulps (eps32 = 1.19e-7). Worst disagreement measured: activations 6e-7
#   (softmax backward, silu backward), dense/GEMM 4e-7 of the error scale (8.5e-7 with a
#   plain max|result| scale), losses 8e-7 (binary cross-entropy gradient: sigmoid(x) - y
#   in double vs float32), loss values 6e-8. `trajectory_rtol` 1e-6: the kernels follow
#   PyTorch's float32 order of operations, so trajectories agree to the bit except in
#   Adam's denominator (√v·(1/bc2) for PyTorch's √v/bc2: at most 1 ulp) and where
#   the lerp weight 1-β is rounded differently (β1 < 0.5 in Adam): measured 1.2e-7 over
#   the well-conditioned hyper-parameter ranges (test_kernels_optim.py explains which).
#
# layer_* -- one Dense layer against fastbp.reference on O(1) data of small width
#   (test_layers.py). model_* -- a 3-layer chain against the reference, where float32
#   summation orders drift by a few ulps per layer (test_models.py); atol is relative
#   to the result's scale, floored at model_floor.
TOL = {
    np.float64: dict(rtol=1e-12, trajectory_rtol=1e-10, layer_rtol=1e-12, layer_atol=1e-13,
                     model_rtol=1e-12, model_atol=1e-13, model_floor=1e-3),
    np.float32: dict(rtol=2e-6, trajectory_rtol=1e-6, layer_rtol=2e-5, layer_atol=2e-6,
                     model_rtol=1e-4, model_atol=2e-5, model_floor=1e-2),
}

DTYPES = (np.float32, np.float64)
#: the activations of API.md, in order (tests/test_build.py checks fastbp's against it)
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
               "softplus", "gelu", "silu", "softmax")


def clone(model):
    """An independent copy of a model (same layers, parameters, loss and dropout seed),
    through the model's own copy path (its __getstate__, as deepcopy and pickle use)."""
    return copy.deepcopy(model)


def tol(dtype, key: str = "rtol") -> float:
    """The tolerance `key` of TOL for a dtype given as type, np.dtype or string."""
    return TOL[np.dtype(dtype).type][key]


def assert_close(actual, expected, dtype, *, scale=None, rtol=None, err_msg=""):
    """assert actual ≈ expected for arrays that must have dtype `dtype`.

    Fails on a dtype or shape mismatch first (the kernels never up- or downcast).
    Then checks |actual - expected| <= rtol*|expected| + atol elementwise, with

        atol = rtol * scale + tiny,   scale = max(1, max|expected|)   by default,

    tiny being the dtype's smallest normal number (subnormal results carry no
    relative precision).

    Why an absolute part at all: GEMMs, column sums and softmax dot products
    cancel, so an element of the result can be tiny (or exactly 0 in exact
    arithmetic) while its rounding error is that of the large terms that cancelled;
    a purely relative test would then fail on rounding noise. The default scale is
    the magnitude of the result, floored at 1 (inputs are O(1..10)). Callers whose
    result comes from a product or a reduction pass the magnitude of the terms
    instead: an array (elementwise, e.g. √n·|X|ᵀ·|dZ| for Xᵀ·dZ, after the classic
    GEMM error bound; see test_kernels_dense.py) or a scalar (e.g. max|dA| for the
    softmax backward, whose row dot product is of that size).
    """
    dtype = np.dtype(dtype)
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == dtype, f"dtype {actual.dtype}, expected {dtype}. {err_msg}"
    assert expected.dtype == dtype, f"oracle dtype {expected.dtype}, expected {dtype}. {err_msg}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}. {err_msg}"
    if rtol is None:
        rtol = tol(dtype)
    if scale is None:
        scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    # plus the smallest normal number: below it, floats are subnormal and lose relative
    # precision (Hypothesis draws subnormal inputs; products of them underflow).
    atol = rtol * np.asarray(scale, dtype=np.float64) + np.finfo(dtype).tiny
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bound = rtol * np.abs(expected.astype(np.float64)) + atol
    _record(dtype, diff, (np.abs(expected.astype(np.float64)) + atol / rtol))
    bad = ~(diff <= bound)          # also catches NaN in either array
    if bad.any():
        idx = np.unravel_index(np.argmax(np.where(bad, diff - bound, -np.inf)), bad.shape) \
            if bad.ndim else ()
        raise AssertionError(
            f"{int(bad.sum())}/{bad.size} elements differ beyond rtol={rtol:g} "
            f"(atol=rtol*scale); worst at {idx}: actual={actual[idx]!r}, "
            f"expected={expected[idx]!r}, |diff|={diff[idx]:.3g}, bound={bound[idx]:.3g}. "
            f"{err_msg}")


def assert_scalar_close(actual: float, expected: float, dtype, *, scale=None, rtol=None,
                        err_msg: str = "") -> None:
    """assert two Python floats (e.g. loss values) agree: |a-e| <= rtol*max(1, |e|)."""
    assert isinstance(actual, float), f"loss must be a Python float, got {type(actual)}"
    if rtol is None:
        rtol = tol(dtype)
    if scale is None:
        scale = max(1.0, abs(expected))
    _record(np.dtype(dtype), np.array(abs(actual - expected)), np.array(float(scale)))
    assert abs(actual - expected) <= rtol * scale, (
        f"{actual!r} != {expected!r} (|diff|={abs(actual - expected):.3g}, "
        f"allowed {rtol * scale:.3g}). {err_msg}")


# ---------------------------------------------------------------- measuring the tolerances
# FASTBP_TOL_REPORT=1 pytest tests/... prints, per test function and dtype, the smallest
# rtol that would have passed (max |diff| / (|expected| + scale)): how the TOL table
# above was measured. FASTBP_TOL_REPORT=params reports per parametrized test id.
_WORST: dict[tuple[str, str], float] = {}


def _record(dtype: np.dtype, diff: np.ndarray, unit: np.ndarray) -> None:
    if not os.environ.get("FASTBP_TOL_REPORT") or diff.size == 0:
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(diff == 0, 0.0, diff / unit)
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
    if os.environ["FASTBP_TOL_REPORT"] != "params":
        test = test.split("[")[0]
    key = (test, dtype.name)
    _WORST[key] = max(_WORST.get(key, 0.0), float(np.max(ratio)))


def pytest_terminal_summary(terminalreporter):
    if not _WORST:
        return
    terminalreporter.section("worst measured disagreement (the rtol that would just pass)")
    for (test, dtype), worst in sorted(_WORST.items()):
        terminalreporter.write_line(f"{worst:9.2e}  {dtype:8s} {test}")
