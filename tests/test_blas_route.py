"""Which BLAS fastbp's gemm calls (fastbp/_blas_route.py): NumPy's bundled OpenBLAS
when found, else SciPy's; both routes give the products NumPy gives."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import _blas_route, reference
from fastbp._kernels import _blas

from conftest import assert_close, tol


@pytest.fixture
def restore_route():
    yield
    _blas_route.select()


def test_auto_takes_numpy_openblas_exactly_when_numpy_bundles_one(restore_route):
    found = _blas_route.numpy_openblas()
    assert _blas_route.select("auto") == ("numpy" if found else "scipy")
    assert _blas.blas_name() == ("numpy" if found else "scipy")
    if found:   # the library NumPy itself loaded, by path
        assert "openblas64" in found[0]


@pytest.mark.parametrize("route", ["numpy", "scipy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_routes_compute_numpys_products(route, dtype, restore_route):
    if route == "numpy" and _blas_route.numpy_openblas() is None:
        pytest.skip("this NumPy bundles no OpenBLAS")
    assert _blas_route.select(route) == route and _blas.blas_name() == route
    rng = np.random.default_rng(0)
    for m, k, n in ((1, 1, 1), (7, 3, 5), (64, 784, 128), (33, 65, 17)):
        for trans_a, trans_b in ((False, False), (True, False), (False, True), (True, True)):
            A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
            B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
            C = rng.standard_normal((m, n)).astype(dtype)
            expected = (0.5 * ((A.T if trans_a else A).astype(np.float64)
                               @ (B.T if trans_b else B).astype(np.float64))
                        - 2.0 * C.astype(np.float64)).astype(dtype)
            _blas.gemm_check(trans_a, trans_b, 0.5, A, B, -2.0, C)
            assert_close(C, expected, dtype, scale=np.sqrt(k) * 4,
                         rtol=tol(dtype, "layer_rtol"), err_msg=f"{route} {m}x{k}x{n}")


def test_backward_matches_the_reference_on_either_route(restore_route):
    routes = ["scipy"] + (["numpy"] if _blas_route.numpy_openblas() else [])
    X = np.random.default_rng(1).standard_normal((16, 40))
    y = np.random.default_rng(2).integers(0, 3, 16)
    for route in routes:
        _blas_route.select(route)
        model = fastbp.MLP((40, 12, 3), "tanh", "cross_entropy", dtype="float64", seed=0)
        params = [p.copy() for p in model.parameters()]
        acts = [layer.activation for layer in model.layers]
        loss = model.backward(X, y)
        inputs, caches, out = [], [], X
        for i, act in enumerate(acts):
            inputs.append(out)
            Z, out = reference.dense_forward(out, params[2 * i], params[2 * i + 1], act)
            caches.append((Z, out))
        expected_loss, grad = reference.loss_forward_backward("cross_entropy", out, y)
        expected = []
        for i in range(len(acts) - 1, -1, -1):
            grad, dW, db = reference.dense_backward(inputs[i], params[2 * i], *caches[i], grad,
                                                    acts[i], need_dX=i > 0)
            expected = [dW, db] + expected
        assert loss == pytest.approx(expected_loss, rel=tol(np.float64))
        for got, want in zip(model.gradients(), expected):
            assert_close(got, want, np.float64, err_msg=route)


def test_bad_choices_are_refused_by_name(monkeypatch, restore_route):
    with pytest.raises(ValueError, match="'auto', 'numpy' or 'scipy'.*'mkl'"):
        _blas_route.select("mkl")
    with pytest.raises(ValueError, match="must be"):
        _blas_route.select(True)  # type: ignore[arg-type]
    monkeypatch.setenv("FASTBP_BLAS", "openblas")
    with pytest.raises(ValueError, match="FASTBP_BLAS"):
        _blas_route.select()
    monkeypatch.setenv("FASTBP_BLAS", " SciPy ")
    assert _blas_route.select() == "scipy"
    with pytest.raises(ValueError, match="both addresses"):
        _blas.use_numpy_blas(1, 0)
    assert _blas.blas_name() == "scipy"   # the refused call changed nothing


@pytest.mark.parametrize("route", ["numpy", "numpy-loops", "scipy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_penalty_dot_and_axpy_use_the_products_library(route, dtype, restore_route):
    """The L2 penalty's Σw² and dW += a·W (dot_self, axpy) run in the library the products
    use: on NumPy's route its own sdot/ddot, the very np.dot bits (a SciPy dot there woke
    SciPy's OpenBLAS thread pool next to NumPy's, and the spinning pools made a fit 40x
    slower on two cores); without them, plain loops; on SciPy's route, SciPy's BLAS."""
    found = _blas_route.numpy_openblas()
    if route != "scipy" and found is None:
        pytest.skip("this NumPy bundles no OpenBLAS")
    if route == "numpy-loops":
        _blas.use_numpy_blas(*found[1:3])   # NumPy's gemm without its level-1 routines
    else:
        _blas_route.select(route)
    if route == "numpy":
        assert all(found[3])
    rng = np.random.default_rng(1)
    for n in (1, 7, 10_240, 100_003):   # below and above OpenBLAS's threaded dot
        x = rng.standard_normal(n).astype(dtype)
        y = rng.standard_normal(n).astype(dtype)
        want_y = (y.astype(np.float64) + 0.25 * x.astype(np.float64)).astype(dtype)
        s = _blas.level1_check(x, y, 0.25)
        if route == "numpy":
            assert s == float(np.dot(x, x))
        assert_close(np.array([s]), np.array([np.dot(x.astype(np.float64), x)]), np.float64,
                     rtol=1e-6 if dtype == np.float32 else 1e-12)
        assert_close(y, want_y, dtype, rtol=tol(dtype, "layer_rtol"))


def test_level1_addresses_are_all_or_none(restore_route):
    with pytest.raises(ValueError, match="all four"):
        _blas.use_numpy_blas(1, 2, (1, 0, 0, 0))
    with pytest.raises(ValueError, match="only with gemm"):
        _blas.use_numpy_blas(0, 0, (1, 2, 3, 4))
    with pytest.raises(ValueError, match="non-empty"):
        _blas.level1_check(np.zeros(0), np.zeros(0), 1.0)
