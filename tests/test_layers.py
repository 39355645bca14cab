"""Tests for fastbp.Dense: shapes, dtypes, initialisation, forward/backward against
fastbp.reference, input conversion and validation (the public API of layers)."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import reference

from conftest import ACTIVATIONS, DTYPES
from conftest import tol as conftest_tol

HE_ACTS = ("relu", "leaky_relu", "elu", "gelu", "silu", "mish")


def tol(dtype):
    """(rtol, atol) for comparing a layer with fastbp.reference (conftest.TOL)."""
    return conftest_tol(dtype, "layer_rtol"), conftest_tol(dtype, "layer_atol")


def close(actual, expected, dtype):
    rtol, atol = tol(dtype)
    assert actual.dtype == np.dtype(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def layer_with_bias(n_in, n_out, act, dtype, seed=0):
    layer = fastbp.Dense(n_in, n_out, act, dtype=dtype, seed=seed)
    layer.b[...] = np.random.default_rng(seed + 100).normal(size=n_out)
    return layer


# ---------------------------------------------------------------- shapes and dtypes

def test_shapes_and_default_dtype():
    layer = fastbp.Dense(3, 5)
    assert layer.W.shape == (3, 5) and layer.b.shape == (5,)
    assert layer.dW.shape == (3, 5) and layer.db.shape == (5,)
    for arr in (layer.W, layer.b, layer.dW, layer.db):
        assert arr.dtype == np.float32
        assert arr.flags.c_contiguous
    assert layer.forward(np.ones((7, 3))).shape == (7, 5)


@pytest.mark.parametrize("spec", ["float64", np.float64, np.dtype("float64")])
def test_float64_dtype(spec):
    layer = fastbp.Dense(4, 2, "tanh", dtype=spec)
    for arr in (layer.W, layer.b, layer.dW, layer.db):
        assert arr.dtype == np.float64
    A = layer.forward(np.ones((3, 4), dtype=np.float32))
    assert A.dtype == np.float64       # a float64 layer never computes in float32
    assert layer.backward(np.ones_like(A)).dtype == np.float64


def test_float64_layer_keeps_float64_precision():
    layer = fastbp.Dense(1, 1, dtype="float64")
    layer.W[...] = 1.0
    x = np.array([[1.0 + 1e-12]])
    assert layer.forward(x)[0, 0] == 1.0 + 1e-12      # float32 would round this to 1.0


# ---------------------------------------------------------------- initialisation

def test_seed_reproducible():
    a = fastbp.Dense(20, 30, "relu", seed=1)
    b = fastbp.Dense(20, 30, "relu", seed=1)
    c = fastbp.Dense(20, 30, "relu", seed=2)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.W, c.W)
    g1 = fastbp.Dense(20, 30, "tanh", seed=1)
    g2 = fastbp.Dense(20, 30, "tanh", seed=1)
    np.testing.assert_array_equal(g1.W, g2.W)
    assert not np.array_equal(g1.W, fastbp.Dense(20, 30, "tanh", seed=3).W)


def test_no_seed_draws_differ():
    assert not np.array_equal(fastbp.Dense(10, 10).W, fastbp.Dense(10, 10).W)


@pytest.mark.parametrize("shape", [(400, 400), (800, 200)])
def test_he_statistics(shape):
    n_in, n_out = shape
    W = fastbp.Dense(n_in, n_out, "identity", init="he", dtype="float64", seed=0).W
    std = np.sqrt(2.0 / n_in)                         # fan_in, not fan_out
    assert W.std() == pytest.approx(std, rel=0.05)
    assert abs(W.mean()) < 0.05 * std
    # normal, not uniform: some entries beyond 3 std exist (uniform never exceeds 1.73 std)
    assert np.abs(W).max() > 3 * std


@pytest.mark.parametrize("shape", [(400, 400), (800, 200)])
def test_glorot_statistics(shape):
    n_in, n_out = shape
    W = fastbp.Dense(n_in, n_out, "relu", init="glorot", dtype="float64", seed=0).W
    limit = np.sqrt(6.0 / (n_in + n_out))
    assert np.abs(W).max() <= limit
    assert np.abs(W).max() > 0.99 * limit            # uniform fills the whole interval
    assert W.std() == pytest.approx(limit / np.sqrt(3.0), rel=0.05)
    assert abs(W.mean()) < 0.05 * limit


def test_init_dtype_float32():
    W = fastbp.Dense(400, 400, init="he", seed=0).W
    assert W.dtype == np.float32
    assert W.std() == pytest.approx(np.sqrt(2.0 / 400), rel=0.05)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_auto_init_choice(act):
    expected = "he" if act in HE_ACTS else "glorot"
    other = "glorot" if expected == "he" else "he"
    auto = fastbp.Dense(50, 40, act, seed=3).W
    np.testing.assert_array_equal(auto, fastbp.Dense(50, 40, act, init=expected, seed=3).W)
    assert not np.array_equal(auto, fastbp.Dense(50, 40, act, init=other, seed=3).W)
    np.testing.assert_array_equal(auto, fastbp.Dense(50, 40, act, init="auto", seed=3).W)


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_auto_init_statistics(act):
    W = fastbp.Dense(400, 400, act, dtype="float64", seed=5).W
    if act == "relu":
        assert W.std() == pytest.approx(np.sqrt(2 / 400), rel=0.05)
    else:
        limit = np.sqrt(6 / 800)
        assert np.abs(W).max() <= limit
        assert W.std() == pytest.approx(limit / np.sqrt(3), rel=0.05)


@pytest.mark.parametrize("init", ["auto", "he", "glorot"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_biases_start_at_zero(init, dtype):
    layer = fastbp.Dense(6, 9, "relu", init=init, dtype=dtype, seed=0)
    np.testing.assert_array_equal(layer.b, np.zeros(9))
    assert layer.b.dtype == dtype


# ---------------------------------------------------------------- forward / backward

@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_matches_reference(act, dtype):
    layer = layer_with_bias(5, 4, act, dtype, seed=1)
    X = np.random.default_rng(2).normal(size=(7, 5)).astype(dtype)
    A = layer.forward(X)
    Z_ref, A_ref = reference.dense_forward(X, layer.W, layer.b, act)
    close(A, A_ref, dtype)
    assert A.shape == (7, 4)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_matches_reference_in_place(act, dtype):
    layer = layer_with_bias(5, 4, act, dtype, seed=3)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(6, 5)).astype(dtype)
    dA = rng.normal(size=(6, 4)).astype(dtype)
    dW_obj, db_obj = layer.dW, layer.db
    layer.forward(X)
    dX = layer.backward(dA)
    assert layer.dW is dW_obj and layer.db is db_obj       # filled in place
    Z_ref, A_ref = reference.dense_forward(X, layer.W, layer.b, act)
    dX_ref, dW_ref, db_ref = reference.dense_backward(X, layer.W, Z_ref, A_ref, dA, act)
    close(dW_obj, dW_ref, dtype)
    close(db_obj, db_ref, dtype)
    close(dX, dX_ref, dtype)
    # A second backward with another dA overwrites (does not accumulate).
    layer.backward(2 * dA)
    close(dW_obj, 2 * dW_ref, dtype)
    assert layer.dW is dW_obj


def test_backward_need_dX_false():
    layer = layer_with_bias(3, 2, "tanh", np.float64)
    X = np.random.default_rng(0).normal(size=(4, 3))
    layer.forward(X)
    assert layer.backward(np.ones((4, 2)), need_dX=False) is None
    Z, A = reference.dense_forward(X, layer.W, layer.b, "tanh")
    close(layer.dW, reference.dense_backward(X, layer.W, Z, A, np.ones((4, 2)), "tanh")[1],
          np.float64)


def test_backward_uses_last_forward():
    layer = layer_with_bias(3, 2, "sigmoid", np.float64)
    rng = np.random.default_rng(1)
    X1, X2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    dA = rng.normal(size=(4, 2))
    layer.forward(X1)
    layer.forward(X2)
    layer.backward(dA)
    Z, A = reference.dense_forward(X2, layer.W, layer.b, "sigmoid")
    close(layer.dW, reference.dense_backward(X2, layer.W, Z, A, dA, "sigmoid")[1], np.float64)


def test_backward_without_forward_raises():
    layer = fastbp.Dense(3, 2)
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(np.ones((4, 2), np.float32))


def test_backward_wrong_rows_raises():
    layer = fastbp.Dense(3, 2)
    layer.forward(np.ones((4, 3)))
    with pytest.raises(ValueError, match="dA"):
        layer.backward(np.ones((5, 2), np.float32))
    with pytest.raises(ValueError, match="dA"):
        layer.backward(np.ones((4, 3), np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_batch(dtype):
    layer = layer_with_bias(3, 2, "relu", dtype)
    A = layer.forward(np.empty((0, 3)))
    assert A.shape == (0, 2) and A.dtype == dtype
    layer.dW[...] = 7
    dX = layer.backward(np.empty((0, 2)))
    assert dX.shape == (0, 3)
    np.testing.assert_array_equal(layer.dW, 0)
    np.testing.assert_array_equal(layer.db, 0)


def test_forward_does_not_modify_input():
    layer = layer_with_bias(3, 2, "relu", np.float32)
    X = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    X0 = X.copy()
    layer.forward(X)
    layer.backward(np.ones((4, 2)))
    np.testing.assert_array_equal(X, X0)


# ---------------------------------------------------------------- input conversion

@pytest.fixture
def layer32():
    return layer_with_bias(4, 3, "tanh", np.float32, seed=7)


@pytest.fixture
def X64():
    return np.random.default_rng(8).normal(size=(5, 4))


def test_float64_input_to_float32_layer(layer32, X64):
    A = layer32.forward(X64)
    assert A.dtype == np.float32
    np.testing.assert_array_equal(A, layer32.forward(X64.astype(np.float32)))
    close(A, reference.dense_forward(X64.astype(np.float32), layer32.W, layer32.b, "tanh")[1],
          np.float32)


def test_int_input_converted(layer32):
    Xi = np.arange(20).reshape(5, 4) - 10
    A = layer32.forward(Xi)
    assert A.dtype == np.float32
    np.testing.assert_array_equal(A, layer32.forward(Xi.astype(np.float32)))


def test_bool_input_converted(layer32):
    Xb = np.eye(4, dtype=bool)
    np.testing.assert_array_equal(layer32.forward(Xb), layer32.forward(np.eye(4, dtype=np.float32)))


def test_fortran_input(layer32, X64):
    X = X64.astype(np.float32)
    F = np.asfortranarray(X)
    assert not F.flags.c_contiguous
    np.testing.assert_array_equal(layer32.forward(F), layer32.forward(X))


def test_strided_input(layer32, X64):
    big = np.zeros((10, 8), dtype=np.float32)
    big[::2, ::2] = X64
    np.testing.assert_array_equal(layer32.forward(big[::2, ::2]),
                                  layer32.forward(X64.astype(np.float32)))


def test_list_input(layer32, X64):
    X = X64.astype(np.float32)
    np.testing.assert_array_equal(layer32.forward(X.tolist()), layer32.forward(X))


def test_converted_input_cached_for_backward(layer32, X64):
    layer32.forward(np.asfortranarray(X64))
    dA = np.ones((5, 3), np.float32)
    layer32.backward(dA)
    dW1 = layer32.dW.copy()
    layer32.forward(X64.astype(np.float32))
    layer32.backward(dA)
    np.testing.assert_array_equal(dW1, layer32.dW)


@pytest.mark.parametrize("bad", [
    np.ones((2, 4), dtype=complex),
    np.array([[object()] * 4] * 2, dtype=object),
    np.array([["a", "b", "c", "d"]] * 2),
], ids=["complex", "object", "str"])
def test_non_real_input_raises_type_error(layer32, bad):
    with pytest.raises(TypeError, match="X"):
        layer32.forward(bad)


@pytest.mark.parametrize("shape", [(5, 3), (5, 5), (4,), (2, 2, 4)])
def test_wrong_feature_count_raises(layer32, shape):
    with pytest.raises(ValueError, match="X"):
        layer32.forward(np.ones(shape))


def test_replaced_W_wrong_shape_raises(layer32, X64):
    # Either the assignment or the next forward must refuse the array.
    with pytest.raises(ValueError, match="W"):
        layer32.W = np.zeros((3, 4), dtype=np.float32)
        layer32.forward(X64)


def test_replaced_b_wrong_shape_raises(layer32, X64):
    with pytest.raises(ValueError, match="b"):
        layer32.b = np.zeros(4, dtype=np.float32)
        layer32.forward(X64)


@pytest.mark.parametrize("make", [lambda: np.full((4, 3), 0.25, dtype=np.float64),
                                  lambda: np.asfortranarray(np.full((4, 3), 0.25, np.float32))],
                         ids=["float64", "fortran"])
def test_replaced_W_other_dtype_or_order(layer32, X64, make):
    """Refused with ValueError, or converted: never used with the wrong layout or dtype."""
    try:
        layer32.W = make()
        A = layer32.forward(X64)
    except ValueError as exc:
        assert "W" in str(exc)
        return
    W = np.full((4, 3), 0.25, dtype=np.float32)
    close(A, reference.dense_forward(X64.astype(np.float32), W, layer32.b, "tanh")[1], np.float32)


def test_replaced_W_good_shape_is_used(layer32, X64):
    layer32.W = np.full((4, 3), 0.5, dtype=np.float32)
    close(layer32.forward(X64),
          reference.dense_forward(X64.astype(np.float32), layer32.W, layer32.b, "tanh")[1],
          np.float32)


# ---------------------------------------------------------------- constructor validation

@pytest.mark.parametrize("name", ["in_features", "out_features"])
@pytest.mark.parametrize("value, exc", [(0, ValueError), (-2, ValueError), ("3", TypeError),
                                        (True, TypeError), (2.0, TypeError), (None, TypeError)])
def test_bad_sizes(name, value, exc):
    args = {"in_features": 3, "out_features": 2}
    args[name] = value
    with pytest.raises(exc, match=name):
        fastbp.Dense(args["in_features"], args["out_features"])


def test_numpy_int_sizes_accepted():
    layer = fastbp.Dense(np.int64(3), np.int32(2))
    assert layer.W.shape == (3, 2)


@pytest.mark.parametrize("act", ["swish", "ReLU", "", None, 3])
def test_unknown_activation(act):
    with pytest.raises(ValueError, match="activation"):
        fastbp.Dense(3, 2, act)


@pytest.mark.parametrize("init", ["xavier", "kaiming", "HE", None])
def test_unknown_init(init):
    with pytest.raises(ValueError, match="init"):
        fastbp.Dense(3, 2, init=init)


@pytest.mark.parametrize("dtype", ["int32", "float16", np.int64, "complex128", "bogus"])
def test_bad_dtype(dtype):
    with pytest.raises(TypeError, match="dtype"):
        fastbp.Dense(3, 2, dtype=dtype)


# ---------------------------------------------------------------- BLAS's 32-bit dimensions

@pytest.mark.parametrize("dims, name", [((2**31, 1), "in_features"), ((1, 2**31), "out_features")])
def test_regression_dense_refuses_dimensions_blas_cannot_take(dims, name):
    # Checked before any allocation (an 8 GiB W would otherwise be drawn first).
    with pytest.raises(ValueError, match=rf"{name} = {2**31} exceeds"):
        fastbp.Dense(*dims)


def test_regression_model_refuses_more_rows_than_blas_takes():
    # A zero-stride view: 2**31 rows of one feature without the memory behind them.
    X = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(2**31, 1), strides=(0, 4))
    model = fastbp.MLP((1, 2, 1), seed=0)
    for call in (model.forward, model.predict, fastbp.Dense(1, 2).forward):
        with pytest.raises(ValueError, match="n_samples.*exceeds"):
            call(X)
    assert model.forward(np.ones((3, 1), np.float32)).shape == (3, 1)
