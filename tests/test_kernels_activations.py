"""fastbp.ops activation kernels against fastbp.reference: every activation x dtype x layout."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import ACTIVATIONS, DTYPES, assert_close, tol
from hypothesis import given
from hypothesis import strategies as st
from strategies import float_arrays, float_matrices, layouts, shapes, to_layout

import fastbp
from fastbp import ops, reference



@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
@given(data=st.data())
def test_forward_matches_reference(name, dtype, data):
    Z = data.draw(float_matrices(dtype), label="Z")
    layout = data.draw(layouts, label="layout")
    Z_in = to_layout(Z, layout)

    A = ops.activation_forward(name, Z_in)

    assert A.dtype == np.dtype(dtype) and A.shape == Z.shape
    assert_close(A, reference.activation_forward(name, Z), dtype, err_msg=f"{name} {layout}")
    # The layout of a read-only input changes nothing, not even the last bit ...
    np.testing.assert_array_equal(A, ops.activation_forward(name, Z))
    # ... and the input is left alone.
    np.testing.assert_array_equal(Z_in, Z)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
@given(data=st.data())
def test_backward_matches_reference(name, dtype, data):
    shape = data.draw(shapes(), label="shape")
    Z = data.draw(float_arrays(dtype, shape), label="Z")
    dA = data.draw(float_arrays(dtype, shape), label="dA")
    # One A for both implementations: backward outputs computed from different A's
    # would differ by the amplified 1-ulp differences of the forwards (1 - a² cancels).
    A = reference.activation_forward(name, Z)
    lz, la, lda = (data.draw(layouts, label=f"layout {x}") for x in ("Z", "A", "dA"))

    dZ = ops.activation_backward(name, to_layout(Z, lz), to_layout(A, la), to_layout(dA, lda))

    assert dZ.dtype == np.dtype(dtype) and dZ.shape == shape
    expected = reference.activation_backward(name, Z, A, dA)
    # The softmax backward subtracts the row dot product Σ dA·A, of size max|dA|.
    scale = max(1.0, float(np.abs(expected).max()), float(np.abs(dA).max()))
    assert_close(dZ, expected, dtype, scale=scale, err_msg=f"{name} {lz}/{la}/{lda}")
    np.testing.assert_array_equal(dZ, ops.activation_backward(name, Z, A, dA))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
@pytest.mark.parametrize("k", [1, 5])
def test_empty_batch(module, name, dtype, k):
    Z = np.empty((0, k), dtype=dtype)
    A = module.activation_forward(name, Z)
    assert A.shape == (0, k) and A.dtype == np.dtype(dtype)
    dZ = module.activation_backward(name, Z, A, np.empty((0, k), dtype=dtype))
    assert dZ.shape == (0, k) and dZ.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
def test_softmax_of_one_column_is_one_with_zero_gradient(module, dtype):
    Z = np.array([[-3.0], [0.0], [7.5]], dtype=dtype)
    A = module.activation_forward("softmax", Z)
    np.testing.assert_array_equal(A, np.ones_like(Z))
    dZ = module.activation_backward("softmax", Z, A, np.array([[2.0], [-1.0], [4.0]], dtype))
    np.testing.assert_array_equal(dZ, np.zeros_like(Z))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
def test_hand_computed_values(module, dtype):
    """Values written out by hand: ops and reference cannot agree on a wrong formula."""
    z = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0, 25.0]], dtype=dtype)
    e = np.exp(np.array([-2.0, -0.5, 0.0, 0.5, 2.0, 25.0]))
    expected = {
        "identity": z[0].astype(np.float64),
        "relu": np.array([0, 0, 0, 0.5, 2.0, 25.0]),
        "leaky_relu": np.array([-0.02, -0.005, 0, 0.5, 2.0, 25.0]),
        "elu": np.array([np.exp(-2.0) - 1, np.exp(-0.5) - 1, 0, 0.5, 2.0, 25.0]),
        "sigmoid": e / (1 + e),
        "tanh": (e**2 - 1) / (e**2 + 1),
        # log(1 + e^z), z itself above the threshold 20
        "softplus": np.array([np.log(1 + np.exp(v)) for v in (-2.0, -0.5, 0.0, 0.5, 2.0)]
                             + [25.0]),
        # z * Phi(z): Phi(-2) = 0.02275013194817921, Phi(-0.5) = 0.3085375387259869
        "gelu": np.array([-2 * 0.02275013194817921, -0.5 * 0.3085375387259869, 0.0,
                          0.5 * (1 - 0.3085375387259869), 2 * (1 - 0.02275013194817921), 25.0]),
        "silu": np.array([-2.0, -0.5, 0.0, 0.5, 2.0, 25.0]) * e / (1 + e),
        "softmax": e / e.sum(),
    }
    rtol = tol(dtype)
    for name, want in expected.items():
        got = module.activation_forward(name, z)
        np.testing.assert_allclose(got[0], want, rtol=rtol, atol=rtol, err_msg=name)
