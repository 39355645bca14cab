"""fastbp.ops dense kernels against fastbp.reference, and the BLAS wrapper against NumPy.

GEMM results and column sums are compared with an elementwise error scale. For a sum of
k products, C = A·B, the rounding error of each element is at most ~k·u·(|A|·|B|) (u the
unit roundoff; the classic bound), typically √k·u·(|A|·|B|) as errors of random sign
cancel. The test uses atol = rtol·√k·(|A|·|B|): it is tight for every element, including
those that cancel to almost nothing, and for k <= 300 it still covers the k·u/2 that
constant data (where the rounding errors all have one sign) produce in float32
recursive sums (rtol·√k >= k·u/2 for k <= (2·rtol/u)², ~4500 in float32). Different BLAS
builds (NumPy's and SciPy's) sum in different orders, so bit-equality is not expected.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import DTYPES, assert_close, ACTIVATIONS
from hypothesis import given
from hypothesis import strategies as st
from strategies import MAX_SIZE, float_arrays, layouts, to_layout
from threadpoolctl import threadpool_limits

from fastbp import ops, reference
from fastbp._kernels._blas import gemm_check



@pytest.fixture(autouse=True)
def one_blas_thread(request):
    """One BLAS thread for these many small products: two OpenBLAS pools (NumPy's and
    SciPy's) spin-waiting on a busy 2-core machine slow them down a hundredfold. The
    threaded path is covered by test_dense_with_default_blas_threads."""
    if request.node.get_closest_marker("default_blas_threads"):
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@st.composite
def dense_shapes(draw, max_dim=300):
    """(n, n_in, n_out), each matrix X, W, Z at most MAX_SIZE elements."""
    n = draw(st.integers(1, max_dim))
    n_in = draw(st.integers(1, max(1, min(max_dim, MAX_SIZE // n))))
    n_out = draw(st.integers(1, max(1, min(max_dim, MAX_SIZE // n_in, MAX_SIZE // n))))
    return n, n_in, n_out


def abs64(a):
    return np.abs(np.asarray(a, dtype=np.float64))


def forward_scale(X, W, b):
    """Error scale of X·W + b: √n_in·(|X|·|W| + |b|)."""
    return np.sqrt(X.shape[1]) * (abs64(X) @ abs64(W) + abs64(b))


def dz_scale(activation, A, dA):
    """Magnitude of dZ's terms: |dA| elementwise (|f'| <= 1.13 for every elementwise
    activation), and for softmax A·(|dA| + Σ_j |dA_j|·A_j), its row dot product."""
    dA, A = abs64(dA), abs64(A)
    if activation == "softmax":
        return A * (dA + (dA * A).sum(axis=1, keepdims=True))
    return dA


def check_backward(got, X, W, Z, A, dA, activation, dtype, need_dX, err_msg=""):
    dX, dW, db = got
    eX, eW, eb = reference.dense_backward(X, W, Z, A, dA, activation, need_dX=need_dX)
    D = dz_scale(activation, A, dA)
    n, n_out = D.shape
    # sums over the batch (dW, db) and over the outputs (dX): see the module docstring
    assert_close(dW, eW, dtype, scale=np.sqrt(n) * (abs64(X).T @ D), err_msg="dW " + err_msg)
    assert_close(db, eb, dtype, scale=np.sqrt(n) * D.sum(axis=0), err_msg="db " + err_msg)
    if need_dX:
        assert_close(dX, eX, dtype, scale=np.sqrt(n_out) * (D @ abs64(W).T),
                     err_msg="dX " + err_msg)
    else:
        assert dX is None and eX is None


# ---------------------------------------------------------------- dense_forward

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@given(data=st.data())
def test_dense_forward_matches_reference(activation, dtype, data):
    n, n_in, n_out = data.draw(dense_shapes(), label="shape")
    X = data.draw(float_arrays(dtype, (n, n_in)), label="X")
    W = data.draw(float_arrays(dtype, (n_in, n_out)), label="W")
    b = data.draw(float_arrays(dtype, (n_out,)), label="b")
    lX, lW, lb = (data.draw(layouts, label=f"layout {x}") for x in "XWb")

    Z, A = ops.dense_forward(to_layout(X, lX), to_layout(W, lW), to_layout(b, lb), activation)

    for out in (Z, A):
        assert out.dtype == np.dtype(dtype) and out.shape == (n, n_out)
    Zr, _ = reference.dense_forward(X, W, b, activation)
    assert_close(Z, Zr, dtype, scale=forward_scale(X, W, b), err_msg=f"Z {lX}/{lW}/{lb}")
    # A against f of the kernel's own Z: comparing with f(Z_reference) would amplify the
    # GEMM's rounding through f (and saturate sigmoid/tanh/softmax comparisons).
    assert_close(A, reference.activation_forward(activation, Z), dtype, err_msg="A")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@given(data=st.data())
def test_dense_backward_matches_reference(activation, dtype, data):
    n, n_in, n_out = data.draw(dense_shapes(), label="shape")
    X = data.draw(float_arrays(dtype, (n, n_in)), label="X")
    W = data.draw(float_arrays(dtype, (n_in, n_out)), label="W")
    b = data.draw(float_arrays(dtype, (n_out,)), label="b")
    dA = data.draw(float_arrays(dtype, (n, n_out)), label="dA")
    need_dX = data.draw(st.booleans(), label="need_dX")
    Z, A = reference.dense_forward(X, W, b, activation)
    lay = {x: data.draw(layouts, label=f"layout {x}") for x in ("X", "W", "Z", "A", "dA")}

    got = ops.dense_backward(to_layout(X, lay["X"]), to_layout(W, lay["W"]),
                             to_layout(Z, lay["Z"]), to_layout(A, lay["A"]),
                             to_layout(dA, lay["dA"]), activation, need_dX=need_dX)

    dX, dW, db = got
    assert dW.dtype == db.dtype == np.dtype(dtype)
    assert dW.shape == (n_in, n_out) and db.shape == (n_out,)
    if need_dX:
        assert dX.dtype == np.dtype(dtype) and dX.shape == (n, n_in)
    check_backward(got, X, W, Z, A, dA, activation, dtype, need_dX, err_msg=str(lay))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 7, 3), (9, 1, 4), (5, 6, 1), (1, 1, 300),
                                   (300, 1, 1), (2, 300, 2), (67, 131, 29), (257, 33, 65)],
                         ids=lambda s: "x".join(map(str, s)))
def test_dense_edge_shapes(shape, dtype):
    """Batch 1, width 1 and odd sizes, every activation, forward and both backward modes."""
    n, n_in, n_out = shape
    rng = np.random.default_rng(sum(shape))
    X = rng.uniform(-2, 2, (n, n_in)).astype(dtype)
    W = (rng.uniform(-2, 2, (n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    b = rng.uniform(-1, 1, n_out).astype(dtype)
    dA = rng.uniform(-1, 1, (n, n_out)).astype(dtype)
    for activation in ACTIVATIONS:
        Z, A = ops.dense_forward(X, W, b, activation)
        Zr, Ar = reference.dense_forward(X, W, b, activation)
        assert_close(Z, Zr, dtype, scale=forward_scale(X, W, b), err_msg=activation)
        assert_close(A, reference.activation_forward(activation, Z), dtype, err_msg=activation)
        full = ops.dense_backward(X, W, Zr, Ar, dA, activation)
        check_backward(full, X, W, Zr, Ar, dA, activation, dtype, True, err_msg=activation)
        no_dX = ops.dense_backward(X, W, Zr, Ar, dA, activation, need_dX=False)
        check_backward(no_dX, X, W, Zr, Ar, dA, activation, dtype, False, err_msg=activation)
        # need_dX only drops dX: dW and db are the same computation
        np.testing.assert_array_equal(no_dX[1], full[1])
        np.testing.assert_array_equal(no_dX[2], full[2])


@pytest.mark.default_blas_threads
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_with_default_blas_threads(dtype):
    """The largest products of the suite with BLAS free to use its threads."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (300, 66)).astype(dtype)
    W = rng.uniform(-1, 1, (66, 300)).astype(dtype)
    b = rng.uniform(-1, 1, 300).astype(dtype)
    dA = rng.uniform(-1, 1, (300, 300)).astype(dtype)
    Z, A = ops.dense_forward(X, W, b, "tanh")
    Zr, Ar = reference.dense_forward(X, W, b, "tanh")
    assert_close(Z, Zr, dtype, scale=forward_scale(X, W, b))
    got = ops.dense_backward(X, W, Zr, Ar, dA, "tanh")
    check_backward(got, X, W, Zr, Ar, dA, "tanh", dtype, True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_empty_batch(activation, module, dtype):
    X = np.empty((0, 3), dtype=dtype)
    W = np.arange(12, dtype=dtype).reshape(3, 4)
    b = np.ones(4, dtype=dtype)
    Z, A = module.dense_forward(X, W, b, activation)
    assert Z.shape == A.shape == (0, 4)
    assert Z.dtype == A.dtype == np.dtype(dtype)
    dA = np.empty((0, 4), dtype=dtype)
    dX, dW, db = module.dense_backward(X, W, Z, A, dA, activation)
    assert dX.shape == (0, 3) and dX.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(dW, np.zeros((3, 4)))
    np.testing.assert_array_equal(db, np.zeros(4))
    assert dW.dtype == db.dtype == np.dtype(dtype)
    dX, dW, db = module.dense_backward(X, W, Z, A, dA, activation, need_dX=False)
    assert dX is None
    np.testing.assert_array_equal(dW, np.zeros((3, 4)))
    np.testing.assert_array_equal(db, np.zeros(4))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
def test_dense_hand_computed(module, dtype):
    X = np.array([[1.0, 2.0], [-1.0, 0.5]], dtype=dtype)
    W = np.array([[1.0, -1.0, 0.5], [2.0, 0.0, -2.0]], dtype=dtype)
    b = np.array([0.5, 1.0, -1.0], dtype=dtype)
    Z, A = module.dense_forward(X, W, b, "relu")
    np.testing.assert_array_equal(Z, [[5.5, 0.0, -4.5], [0.5, 2.0, -2.5]])
    np.testing.assert_array_equal(A, [[5.5, 0.0, 0.0], [0.5, 2.0, 0.0]])
    dA = np.array([[1.0, 2.0, 3.0], [-1.0, 1.0, 1.0]], dtype=dtype)
    dX, dW, db = module.dense_backward(X, W, Z, A, dA, "relu")
    dZ = np.array([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0]])       # relu'(0) = 0
    np.testing.assert_array_equal(db, dZ.sum(axis=0))        # [0, 1, 0]
    np.testing.assert_array_equal(dW, [[2.0, -1.0, 0.0], [1.5, 0.5, 0.0]])   # Xᵀ·dZ
    np.testing.assert_array_equal(dX, [[1.0, 2.0], [-2.0, -2.0]])            # dZ·Wᵀ


# ---------------------------------------------------------------- BLAS wrapper

ALPHAS = (1.0, 0.0, -2.5, 0.5, 0.1)
BETAS = (0.0, 1.0, -0.5, 2.0)


def gemm_expected(trans_a, trans_b, alpha, A, B, beta, C, dtype):
    """(alpha·op(A)·op(B) + beta·C rounded to dtype, elementwise error scale), in float64."""
    opA = abs64(A).T if trans_a else abs64(A)
    opB = abs64(B).T if trans_b else abs64(B)
    a64 = np.asarray(A, np.float64)
    b64 = np.asarray(B, np.float64)
    exact = alpha * ((a64.T if trans_a else a64) @ (b64.T if trans_b else b64))
    if beta != 0:       # BLAS: beta = 0 means C is not read (it may hold NaN)
        exact = exact + beta * np.asarray(C, np.float64)
    k = opA.shape[1]
    scale = np.sqrt(k) * (abs(alpha) * (opA @ opB) + abs(beta) * abs64(C))
    return exact.astype(dtype), scale


def gemm_operands(rng, trans_a, trans_b, m, n, k, dtype):
    A = rng.uniform(-10, 10, (k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.uniform(-10, 10, (n, k) if trans_b else (k, n)).astype(dtype)
    C = rng.uniform(-10, 10, (m, n)).astype(dtype)
    return A, B, C


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", list(itertools.product([False, True], repeat=2)),
                         ids=["NN", "NT", "TN", "TT"])
@given(m=st.integers(1, 120), n=st.integers(1, 120), k=st.integers(1, 120),
       alpha=st.sampled_from(ALPHAS), beta=st.sampled_from(BETAS),
       seed=st.integers(0, 2**32 - 1))
def test_gemm_check_matches_numpy(trans_a, trans_b, dtype, m, n, k, alpha, beta, seed):
    A, B, C = gemm_operands(np.random.default_rng(seed), trans_a, trans_b, m, n, k, dtype)
    expected, scale = gemm_expected(trans_a, trans_b, alpha, A, B, beta, C, dtype)
    A0, B0 = A.copy(), B.copy()
    gemm_check(trans_a, trans_b, alpha, A, B, beta, C)       # C updated in place
    assert_close(C, expected, dtype, scale=scale)
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(B, B0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_check_grid(dtype):
    """Every transpose flag x alpha x beta on one non-square shape (m, n, k all different)."""
    rng = np.random.default_rng(7)
    m, n, k = 5, 3, 4
    for trans_a, trans_b, alpha, beta in itertools.product([False, True], [False, True],
                                                           ALPHAS, BETAS):
        A, B, C = gemm_operands(rng, trans_a, trans_b, m, n, k, dtype)
        expected, scale = gemm_expected(trans_a, trans_b, alpha, A, B, beta, C, dtype)
        gemm_check(trans_a, trans_b, alpha, A, B, beta, C)
        assert_close(C, expected, dtype, scale=scale,
                     err_msg=f"trans_a={trans_a} trans_b={trans_b} alpha={alpha} beta={beta}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_check_beta_zero_does_not_read_C(dtype):
    """dense_forward hands the GEMM an np.empty Z with beta = 0: C's old contents must not leak."""
    A = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=dtype)
    B = np.array([[1.0, 0.0], [1.0, 1.0]], dtype=dtype)
    C = np.full((2, 2), np.nan, dtype=dtype)
    gemm_check(False, False, 1.0, A, B, 0.0, C)
    np.testing.assert_array_equal(C, [[3.0, 2.0], [7.0, 4.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_check_rejects_empty_operands(dtype):
    with pytest.raises(ValueError, match="non-empty"):
        gemm_check(False, False, 1.0, np.empty((2, 0), dtype), np.empty((0, 2), dtype), 0.0,
                   np.zeros((2, 2), dtype))
