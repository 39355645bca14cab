"""The oracle must be right too: fastbp.reference against finite differences and SymPy.

All in float64. Central differences with step h have error ~h²·f''' + eps/h, so
h = 1e-6 gives ~1e-10 absolute on O(1) functions; conftest.TOL's fd_rtol (1e-6) and
fd_atol (1e-8) leave room for that.
Points near kinks (relu, leaky_relu, mae, huber) are kept away from them.
"""
from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy

from fastbp import ops, reference

from conftest import ACTIVATIONS, tol, tols

H = 1e-6
FD = tols(np.float64, "fd")            # rtol, atol against central differences


def central_difference(f, x, h=H):
    """∂f/∂x for a scalar function f of the float64 array x (x is restored afterwards)."""
    grad = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        fp = f()
        x[idx] = old - h
        fm = f()
        x[idx] = old
        grad[idx] = (fp - fm) / (2 * h)
    return grad


# ---------------------------------------------------------------- activations vs SymPy

z = sympy.Symbol("z", real=True)
SYMBOLIC = {
    "identity": z,
    "sigmoid": 1 / (1 + sympy.exp(-z)),
    "tanh": sympy.tanh(z),
    "relu": sympy.Piecewise((0, z < 0), (z, True)),
    "leaky_relu": sympy.Piecewise((sympy.Rational(1, 100) * z, z < 0), (z, True)),
    "elu": sympy.Piecewise((sympy.exp(z) - 1, z < 0), (z, True)),
    # PyTorch's threshold: z itself above 20
    "softplus": sympy.Piecewise((sympy.log(1 + sympy.exp(z)), z <= 20), (z, True)),
    "gelu": z * (1 + sympy.erf(z / sympy.sqrt(2))) / 2,
    "silu": z / (1 + sympy.exp(-z)),
}
# Away from the kinks at 0 and the softplus threshold at 20; both tails included.
POINTS = np.concatenate([np.linspace(-12.0, 12.0, 41) + 0.013,
                         [-35.0, -20.5, -3e-3, 3e-3, 19.5, 20.5, 25.0, 40.0]])


def mp_values(expr, points, digits=400):
    """expr at each point, evaluated by mpmath with `digits` significant digits (enough
    for 1 + erf(z/√2) at z = -35, which cancels down to ~1e-268)."""
    f = sympy.lambdify(z, expr, modules="mpmath")
    with mpmath.workdps(digits):
        return np.array([float(f(mpmath.mpf(float(p)))) for p in points])


@pytest.mark.parametrize("name", list(SYMBOLIC))
def test_activation_forward_against_sympy(name):
    Z = POINTS.reshape(1, -1).copy()
    got = reference.activation_forward(name, Z)[0]
    want = mp_values(SYMBOLIC[name], POINTS)
    np.testing.assert_allclose(got, want, **tols(np.float64, "oracle"))


@pytest.mark.parametrize("name", list(SYMBOLIC))
def test_activation_derivative_against_sympy(name):
    """reference.activation_backward with dA = 1 is f'(Z) for the elementwise activations."""
    Z = POINTS.reshape(1, -1).copy()
    A = reference.activation_forward(name, Z)
    got = reference.activation_backward(name, Z, A, np.ones_like(Z))[0]
    want = mp_values(sympy.diff(SYMBOLIC[name], z), POINTS)
    # sigmoid' = a(1-a) and tanh' = 1-a² are computed from A, as PyTorch does: where
    # a -> 1 the subtraction loses relative (not absolute) accuracy, hence the atol.
    np.testing.assert_allclose(got, want, **tols(np.float64, "oracle_derivative"))
    # dA scales the result elementwise
    dA = np.linspace(-3, 3, Z.size).reshape(Z.shape)
    np.testing.assert_allclose(reference.activation_backward(name, Z, A, dA)[0], want * dA[0],
                               rtol=tol(np.float64, "oracle_derivative_rtol"),
                               atol=tol(np.float64, "oracle_dA_atol"))


@pytest.mark.parametrize("name", list(SYMBOLIC))
def test_activation_derivative_against_finite_differences(name):
    Z = POINTS[np.abs(POINTS) < 30].reshape(1, -1).copy()
    A = reference.activation_forward(name, Z)
    got = reference.activation_backward(name, Z, A, np.ones_like(Z))
    # elementwise, so one vectorised central difference gives every f'(z)
    want = (reference.activation_forward(name, Z + H)
            - reference.activation_forward(name, Z - H)) / (2 * H)
    np.testing.assert_allclose(got, want, **FD)


# ---------------------------------------------------------------- softmax


@pytest.mark.parametrize("seed", range(4))
def test_softmax_forward_is_normalised_exponentials(seed):
    rng = np.random.default_rng(seed)
    Z = rng.uniform(-5, 5, (4, 6))
    A = reference.activation_forward("softmax", Z)
    E = np.exp(Z)
    np.testing.assert_allclose(A, E / E.sum(axis=1, keepdims=True),
                               rtol=tol(np.float64, "closed_rtol"))
    # invariant under a shift of each row
    np.testing.assert_allclose(reference.activation_forward("softmax", Z + [[3.0]] * 4), A,
                               rtol=tol(np.float64, "oracle_rtol"))


@pytest.mark.parametrize("seed", range(4))
def test_softmax_backward_is_the_jacobian_vector_product(seed):
    rng = np.random.default_rng(seed)
    Z = rng.uniform(-3, 3, (3, 5))
    dA = rng.uniform(-2, 2, (3, 5))
    A = reference.activation_forward("softmax", Z)
    got = reference.activation_backward("softmax", Z, A, dA)
    want = central_difference(
        lambda: float((dA * reference.activation_forward("softmax", Z)).sum()), Z)
    np.testing.assert_allclose(got, want, **FD)
    # and the explicit Jacobian J = diag(a) - a·aᵀ of each row (symmetric): dZ = J·dA
    for i in range(Z.shape[0]):
        a = A[i]
        J = np.diag(a) - np.outer(a, a)
        np.testing.assert_allclose(got[i], J @ dA[i], **tols(np.float64, "oracle_derivative"))


# ---------------------------------------------------------------- losses


def loss_inputs(name, target_kind, rng):
    """(output, target) of shape (3, 4) in float64, kept away from the loss's kinks."""
    o = rng.uniform(-3, 3, (3, 4))
    if name == "binary_cross_entropy":
        return o, rng.uniform(0, 1, (3, 4))
    if name == "poisson":
        return o, rng.uniform(0, 4, (3, 4))
    if name == "cross_entropy":
        if target_kind == "labels":
            return o, rng.integers(0, 4, 3)
        t = rng.uniform(0, 2, (3, 4))
        return o, t / t.sum(axis=1, keepdims=True) if target_kind == "normalised" else t
    t = rng.uniform(-3, 3, (3, 4))
    r = o - t
    # mae: kink at r = 0; huber: second-derivative jump at |r| = 1
    r = np.where(np.abs(r) < 0.05, 0.3, r)
    r = np.where(np.abs(np.abs(r) - 1) < 0.05, 1.5 * np.sign(r), r)
    return t + r, t


LOSS_CASES = [("mse", None), ("mae", None), ("huber", None), ("binary_cross_entropy", None),
              ("poisson", None),
              ("cross_entropy", "labels"), ("cross_entropy", "normalised"),
              ("cross_entropy", "unnormalised")]


@pytest.mark.parametrize("module", [reference, ops], ids=["reference", "ops"])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name, target_kind", LOSS_CASES,
                         ids=[f"{n}-{k}" if k else n for n, k in LOSS_CASES])
def test_loss_gradient_against_finite_differences(name, target_kind, seed, module):
    output, target = loss_inputs(name, target_kind, np.random.default_rng(seed))
    loss, grad = module.loss_forward_backward(name, output, target)
    want = central_difference(lambda: module.loss_forward_backward(name, output, target)[0], output)
    np.testing.assert_allclose(grad, want, **FD)
    assert loss == module.loss_forward_backward(name, output, target)[0]   # output restored


def test_loss_values_from_their_definitions():
    """Each reference loss against its textbook formula, written independently."""
    rng = np.random.default_rng(11)
    o = rng.uniform(-3, 3, (3, 4))
    t = rng.uniform(-3, 3, (3, 4))
    y = rng.uniform(0, 1, (3, 4))
    labels = np.array([2, 0, 3])
    r = o - t
    expected = {
        "mse": (o, t, np.mean(r**2)),
        "mae": (o, t, np.mean(np.abs(r))),
        "huber": (o, t, np.mean(np.where(np.abs(r) <= 1, 0.5 * r**2, np.abs(r) - 0.5))),
        "binary_cross_entropy": (o, y, np.mean(-(y * np.log(1 / (1 + np.exp(-o)))
                                                 + (1 - y) * np.log(1 - 1 / (1 + np.exp(-o)))))),
        "cross_entropy": (o, labels, np.mean(np.log(np.exp(o).sum(axis=1))
                                             - o[np.arange(3), labels])),
        # the negative Poisson log-likelihood of counts y with mean e^o, without log y!
        "poisson": (o, 3 * y, np.mean(np.exp(o) - 3 * y * o)),
    }
    for name, (out, target, want) in expected.items():
        got = reference.loss_forward_backward(name, out, target)[0]
        assert got == pytest.approx(want, rel=tol(np.float64, "oracle_rtol")), name


# ---------------------------------------------------------------- dense layer



def dense_inputs(seed):
    """X (4, 3), W (3, 5), b (5,), dA (4, 5) in float64 with every |Z| > 0.05 (no kinks)."""
    rng = np.random.default_rng(seed)
    while True:
        X = rng.uniform(-2, 2, (4, 3))
        W = rng.uniform(-1, 1, (3, 5))
        b = rng.uniform(-1, 1, 5)
        if np.abs(X @ W + b).min() > 0.05:
            return X, W, b, rng.uniform(-1, 1, (4, 5))


@pytest.mark.parametrize("module", [reference, ops], ids=["reference", "ops"])
@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_backward_against_finite_differences(activation, seed, module):
    """dX, dW, db are the gradients of the scalar sum(dA * A(X·W + b))."""
    X, W, b, dA = dense_inputs(seed)
    Z, A = module.dense_forward(X, W, b, activation)

    def f():
        return float((dA * module.dense_forward(X, W, b, activation)[1]).sum())

    dX, dW, db = module.dense_backward(X, W, Z, A, dA, activation)
    np.testing.assert_allclose(dX, central_difference(f, X), **FD)
    np.testing.assert_allclose(dW, central_difference(f, W), **FD)
    np.testing.assert_allclose(db, central_difference(f, b), **FD)


def test_poisson_against_sympy():
    """ℓ(z) = e^z - y·z and its derivative, from SymPy at mpmath precision."""
    zs, ys = sympy.Symbol("z", real=True), sympy.Symbol("y", nonnegative=True)
    expr = sympy.exp(zs) - ys * zs
    f = sympy.lambdify((zs, ys), expr, modules="mpmath")
    df = sympy.lambdify((zs, ys), sympy.diff(expr, zs), modules="mpmath")
    rng = np.random.default_rng(5)
    o = rng.uniform(-5, 5, (4, 3))
    t = rng.uniform(0, 6, (4, 3))
    t[0, 0] = 0.0
    for module in (reference, ops):
        loss, grad = module.loss_forward_backward("poisson", o, t)
        want = sum(float(f(a, b)) for a, b in zip(o.ravel(), t.ravel())) / o.size
        assert loss == pytest.approx(want, rel=tol(np.float64, "oracle_rtol"))
        want_grad = np.array([float(df(a, b)) for a, b in zip(o.ravel(), t.ravel())]) / o.size
        np.testing.assert_allclose(grad.ravel(), want_grad, rtol=tol(np.float64, "oracle_rtol"),
                                   atol=tol(np.float64, "oracle_grad_atol"))
