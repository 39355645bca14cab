"""Shared test configuration: the per-dtype tolerance table, the comparison helpers and
the Hypothesis profiles.

Nothing here imports from the source tree by path: the tests import ``fastbp`` (the
installed package when run against a wheel) and ``strategies`` (this directory, which
pytest puts on ``sys.path`` because ``tests/`` has no ``__init__.py``).
"""
from __future__ import annotations

import contextlib
import copy
import os

import numpy as np
import pytest
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

def pytest_make_parametrize_id(config, val, argname):
    """A NumPy scalar type in a test id is its name (np.float32 -> "float32")."""
    if isinstance(val, type) and issubclass(val, np.generic):
        return np.dtype(val).name
    return None


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
#
# The named entries below are the suite's other comparisons, each with the tolerance its
# tests need and why. "Measured" is the worst disagreement seen in a default run (2-core
# x86-64 VM, OpenBLAS); a float32 value exists only where a float32 test uses the entry.
# Exact-equality checks (assert_array_equal, ==) are not in the table.
#
# trajectory_atol -- the absolute part of test_optim.py's trajectories (the optimizer
#   classes against fastbp.reference's step functions run by hand, and against PyTorch;
#   20-25 steps); measured bit-identical in both dtypes.
# onnx_rtol -- onnxruntime running fastbp.export's graph against fastbp (test_export.py):
#   the export's contract, 1e-6 in float32 (tighter than rtol, which covers the kernels'
#   double-evaluated transcendentals against NumPy's float32 loops). The exported C code
#   is held to rtol: it calls libm in the model's precision where fastbp evaluates in
#   double, a few float32 ulps apart.
# formula_rtol/_atol -- a kernel's value against the same formula written out (by hand,
#   with math or NumPy, or scikit-learn's evaluation of it): a few roundings apart; the
#   atol (a few ulps of 1) is for results that cancel to ~0. Measured: float64 6e-16,
#   float32 1.2e-7.
# lossy_rtol -- formula_rtol where float32 loses digits on the way: a loss after a float32
#   step (cancellation in (4 - 3.6)^2), 50 float32 SGD steps, float32 inputs against the
#   float64 reference. Measured 4.8e-7.
# closed_rtol/_atol -- a handful of float64 roundings from a closed form (an optimizer step
#   by hand, an lr schedule over epochs, a softmax of O(5) values, the parabola's first
#   steps). Measured 9e-16 (Adam's v after one step).
# exact_rtol -- at most a couple of roundings from the exact value (1.8 after one SGD step,
#   a bias added to every output, the mean of the members' predictions). Measured 0.
# path_rtol/_atol -- the same numbers reached by two routes of the compiled code:
#   train_step against backward + step, fit's epoch loop against train_step per batch, an
#   Ensemble member against its own fit, a Dask cluster against a local fit, a copy against
#   its original, scikit-learn's initial draws against ours. The same kernels run in the
#   same order: float64 measured bit-identical everywhere; the tolerance leaves a few ulps.
#   The float32 entry also bounds a route that rounds float64 inputs to float32 once
#   (test_predict_fast.py, measured 2.3e-8).
# reordered_rtol/_atol -- the same math summed in another order: integer sample weights
#   against repeated rows, then 3 epochs of training from those gradients. Measured 7.4e-15.
# threads_rtol/_atol, threads_grad_rtol -- float32 at another BLAS thread count (or an
#   Ensemble's members at one BLAS thread against fits at the default): OpenBLAS's sgemm
#   blocks its sums per thread count, so 1024-term sums differ by ~sqrt(1024)*eps32 of
#   their scale (threads_atol is relative to max(1, max|result|)); gradients go through
#   two such products. float64 is bit-identical there (test_threads.py asserts equality).
# limit_rtol/_atol -- a saturated function against its limit (f(+-1e4), f(1e30), softmax of
#   +-finfo.max, poisson at -1e4), one bound for both dtypes: float32 results round to
#   float32 (float64 measured 7e-8, from the derivative tails).
# oracle_* -- fastbp.reference itself against mpmath at 400 digits, SymPy's derivatives and
#   textbook formulas (test_reference.py), float64: values 1e-13 (measured 5.7e-14);
#   derivatives 1e-12 with an absolute part, for sigmoid' = a(1 - a) and tanh' = 1 - a^2
#   near a = 1, which lose relative, not absolute, accuracy (measured 1.6e-15, and 4e-15
#   times |dA| <= 3: oracle_dA_atol); oracle_grad_atol for the poisson gradient (~0.1/12).
# fd_rtol/_atol -- against central differences with h = 1e-6, whose error is
#   ~h^2 f''' + eps/h ~ 1e-10 absolute on O(1) functions (test_reference.py,
#   test_sample_weight.py). Measured 4e-7 relative, 3.3e-9 absolute.
# sklearn_rtol/_atol -- fastbp.sklearn against scikit-learn's MLPClassifier/MLPRegressor
#   after whole fits (up to 25 epochs or lbfgs iterations): the same formulas summed in
#   other orders (BLAS against NumPy), amplified by training and lbfgs's line search.
#   Measured 1.8e-10 relative.
# vmath_tanh_rtol, vmath_sigmoid_rtol -- _vmath.h's tanh against NumPy's and its sigmoid
#   against 1/(1 + libm exp(-z)) at special values (test_vmath.py): ~2 float64 ulps
#   (eps64 = 2.2e-16); float32 rounds the double result once (eps32 = 1.2e-7).
TOL = {
    np.float64: dict(rtol=1e-12, trajectory_rtol=1e-10, trajectory_atol=1e-12,
                     layer_rtol=1e-12, layer_atol=1e-13,
                     model_rtol=1e-12, model_atol=1e-13, model_floor=1e-3,
                     onnx_rtol=1e-12, formula_rtol=1e-12, formula_atol=1e-15, lossy_rtol=1e-12,
                     closed_rtol=1e-14, closed_atol=1e-15, exact_rtol=1e-15,
                     path_rtol=1e-14, path_atol=1e-16,
                     reordered_rtol=1e-12, reordered_atol=1e-15,
                     limit_rtol=1e-6, limit_atol=1e-6,
                     oracle_rtol=1e-13, oracle_atol=1e-300, oracle_grad_atol=1e-16,
                     oracle_derivative_rtol=1e-12, oracle_derivative_atol=1e-15,
                     oracle_dA_atol=1e-14, fd_rtol=1e-6, fd_atol=1e-8,
                     sklearn_rtol=1e-6, sklearn_atol=1e-9,
                     vmath_tanh_rtol=4e-16, vmath_sigmoid_rtol=5e-16),
    np.float32: dict(rtol=2e-6, trajectory_rtol=1e-6, trajectory_atol=1e-6,
                     layer_rtol=2e-5, layer_atol=2e-6,
                     model_rtol=1e-4, model_atol=2e-5, model_floor=1e-2,
                     onnx_rtol=1e-6, formula_rtol=1e-6, lossy_rtol=1e-5,
                     path_rtol=1e-6, path_atol=1e-7,
                     threads_rtol=1e-5, threads_atol=1e-4, threads_grad_rtol=1e-4,
                     limit_rtol=1e-6, limit_atol=1e-6,
                     vmath_tanh_rtol=1e-7, vmath_sigmoid_rtol=1e-7),
}

DTYPES = (np.float32, np.float64)
#: the activations of the public API, in order (tests/test_build.py checks fastbp's against it)
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
               "softplus", "gelu", "silu", "softmax", "selu", "mish")


def make_data(loss, n, n_in, n_out, dtype=np.float64, seed=0, probs=False):
    """X (n, n_in) of the dtype and a valid target for ``loss``: int labels for
    cross_entropy (class probabilities with probs=True), uniform [0, 1) targets for
    binary_cross_entropy, normal targets (n, n_out) otherwise. One generator, X first."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in)).astype(dtype)
    if loss == "cross_entropy":
        if probs:
            y = rng.dirichlet(np.ones(n_out), size=n).astype(dtype)
        else:
            y = rng.integers(0, n_out, size=n)
    elif loss == "binary_cross_entropy":
        y = rng.uniform(0, 1, size=(n, n_out)).astype(dtype)
    else:
        y = rng.normal(size=(n, n_out)).astype(dtype)
    return X, y


def param_copies(model) -> list[np.ndarray]:
    """Copies of a model's parameter arrays (W1, b1, W2, ...), e.g. a snapshot."""
    return [p.copy() for p in model.parameters()]


def assert_same_params(a, b) -> None:
    """Bit for bit the same parameters: each of a and b a model or a list of arrays."""
    a = a.parameters() if hasattr(a, "parameters") else a
    b = b.parameters() if hasattr(b, "parameters") else b
    assert len(a) == len(b), f"{len(a)} parameter arrays, expected {len(b)}"
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def assert_state_equal(a, b) -> None:
    """Two optimizer state_dicts hold the same type, step, hyper-parameters and arrays."""
    assert a.keys() == b.keys()
    assert a["type"] == b["type"]
    assert a["step"] == b["step"]
    assert a["hyperparameters"] == b["hyperparameters"]
    assert len(a["state"]) == len(b["state"])
    for sa, sb in zip(a["state"], b["state"]):
        assert sa.keys() == sb.keys()
        for k in sa:
            assert np.asarray(sa[k]).dtype == np.asarray(sb[k]).dtype
            np.testing.assert_array_equal(sa[k], sb[k])


def clone(model):
    """An independent copy of a model (same layers, parameters, loss and dropout seed),
    through the model's own copy path (its __getstate__, as deepcopy and pickle use)."""
    return copy.deepcopy(model)


def tol(dtype, key: str = "rtol") -> float:
    """The tolerance `key` of TOL for a dtype given as type, np.dtype or string."""
    return TOL[np.dtype(dtype).type][key]


def tols(dtype, name: str) -> dict[str, float]:
    """rtol and atol of the entry `name` (TOL's name_rtol and name_atol), as keyword
    arguments for np.testing.assert_allclose."""
    return dict(rtol=tol(dtype, f"{name}_rtol"), atol=tol(dtype, f"{name}_atol"))


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


def assert_model_close(actual, expected, dtype, what: str = "") -> None:
    """A model's result against fastbp.reference chained by hand: TOL's model_* entries
    (float64 1e-12: the same formulas, BLAS against NumPy summation order; float32 1e-4:
    a chain of float32 products and transcendental functions, where summation orders
    drift by a few ulps per layer), atol relative to the result's scale."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    rtol = tol(dtype, "model_rtol")
    atol = tol(dtype, "model_atol") * max(scale, tol(dtype, "model_floor"))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def assert_same_training(model, expected, dtype=np.float64) -> None:
    """Two models trained alike by two routes (an Ensemble member and its own fit, a Dask
    cluster and a local fit): the same parameters to path_rtol in float64 (bit-identical,
    measured); float32 to threads_rtol (the members train at one BLAS thread)."""
    for a, b in zip(model.parameters(), expected.parameters()):
        if np.dtype(dtype) == np.float64:
            np.testing.assert_allclose(a, b, rtol=tol(dtype, "path_rtol"), atol=0)
        else:
            assert_close(a, b, dtype, rtol=tol(dtype, "threads_rtol"))


def assert_same_history(h, expected) -> None:
    """Two fits' Histories: the same epochs, losses (path_rtol), rates and stopping."""
    assert h.epochs == expected.epochs
    np.testing.assert_allclose(h.loss, expected.loss, rtol=tol(np.float64, "path_rtol"))
    np.testing.assert_allclose(h.val_loss, expected.val_loss, rtol=tol(np.float64, "path_rtol"))
    assert h.lr == expected.lr
    assert h.best_epoch == expected.best_epoch and h.stopped_early == expected.stopped_early


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


@contextlib.contextmanager
def sklearn_string_label_bug(y, early_stopping):
    """Around scikit-learn's own fit: some releases (1.7 among them, the last for
    Python 3.10) fail in their early-stopping score on string labels (np.isnan on the
    predicted labels). There is then nothing to compare against: skip, saying so."""
    try:
        yield
    except TypeError as exc:
        if early_stopping and np.asarray(y).dtype.kind in "OSU" and "isnan" in str(exc):
            import sklearn

            pytest.skip(f"scikit-learn {sklearn.__version__} fails on string labels with "
                        "early_stopping (its own np.isnan on the labels)")
        raise


@pytest.fixture
def packs(monkeypatch):
    """The members of each lock-step packed epoch (fastbp._kernels.network.packed_epoch)
    the test runs, in call order: tests of the packs assert they happened."""
    from fastbp._kernels import network
    calls: list[int] = []
    real = network.packed_epoch

    def counting(engines, *args, **kwargs):
        calls.append(len(engines))
        return real(engines, *args, **kwargs)

    monkeypatch.setattr(network, "packed_epoch", counting)
    return calls


def central_differences(f, x, eps=1e-6):
    """Central differences of the scalar f() with respect to every element of x (x is
    perturbed in place and restored)."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        up = f()
        x[idx] = old - eps
        down = f()
        x[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad
