"""fastbp.ops optimizer kernels against fastbp.reference over 25-step trajectories, plus
single steps computed by hand and 0-size parameters.

Trajectories use TOL[dtype]["trajectory_rtol"] (conftest.py): 1e-10 in float64, and in
float32 the documented tolerance for a few ulps compounded over 25 steps.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import DTYPES, assert_close, tol
from hypothesis import given
from hypothesis import strategies as st

from fastbp import ops, reference

DTYPE_PARAM = pytest.mark.parametrize("dtype", DTYPES)
MODULES = pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
STEPS = 25
N_STATE = {"sgd": 1, "adagrad": 1, "rmsprop": 3, "adam": 3}
SHAPES = [(7, 13), (5,), (3, 4, 2)]


def run(module, opt, dtype, shape, options, seed, steps=STEPS, callback=None):
    """`steps` steps of module.<opt>_step from a seeded start; returns (p, state list)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(-1, 1, shape).astype(dtype)
    state = [np.zeros(shape, dtype=dtype) for _ in range(N_STATE[opt])]
    fn = getattr(module, f"{opt}_step")
    for t in range(1, steps + 1):
        g = rng.normal(0, 1, shape).astype(dtype)
        if t % 7 == 0:
            g[..., 0] = 0          # exact zero gradients now and then
        kwargs = dict(options)
        if opt == "adam":
            kwargs["step"] = t
        if opt == "sgd":
            kwargs["first_step"] = t == 1
        fn(p, g, *state, **kwargs)
        if callback is not None:
            callback(t, p, state)
    return p, state


def compare_trajectories(opt, dtype, shape, options, seed=0, steps=STEPS):
    """ops and reference step by step: p and every state array after every step."""
    ref_steps = []
    run(reference, opt, dtype, shape, options, seed, steps,
        callback=lambda t, p, s: ref_steps.append([p.copy()] + [a.copy() for a in s]))
    rtol = tol(dtype, "trajectory_rtol")

    def check(t, p, state):
        for name, got, want in zip(["p", "state0", "state1", "state2"], [p] + state,
                                   ref_steps[t - 1]):
            assert_close(got, want, dtype, rtol=rtol, err_msg=f"{opt} {options} step {t} {name}")

    p, state = run(ops, opt, dtype, shape, options, seed, steps, callback=check)
    assert p.dtype == np.dtype(dtype) and all(a.dtype == np.dtype(dtype) for a in state)
    return p, state


# ---------------------------------------------------------------- trajectories over the option grid

SGD_GRID = [dict(lr=0.1, momentum=mu, dampening=damp, nesterov=nest, weight_decay=wd)
            for mu, damp, nest, wd in itertools.product([0.0, 0.9], [0.0, 0.1], [False, True],
                                                        [0.0, 0.01])
            if not (nest and (mu == 0 or damp != 0))]
ADAGRAD_GRID = [dict(lr=0.1, weight_decay=wd, eps=eps)
                for wd in (0.0, 0.1) for eps in (1e-10, 1e-3)]
RMSPROP_GRID = [dict(lr=0.01, centered=c, momentum=mu, weight_decay=wd, alpha=al)
                for c, mu, wd, al in itertools.product([False, True], [0.0, 0.9], [0.0, 0.1],
                                                       [0.99, 0.3])]
ADAM_DECAY = [(0.0, False), (0.1, False), (0.1, True)]    # (weight_decay, decoupled)
ADAM_GRID = [dict(lr=0.01, amsgrad=ams, weight_decay=wd, decoupled=dec, eps_mode=mode)
             for ams, (wd, dec), mode in itertools.product([False, True], ADAM_DECAY,
                                                           ["paper", "folded"])]
GRID = ([("sgd", o) for o in SGD_GRID] + [("adagrad", o) for o in ADAGRAD_GRID]
        + [("rmsprop", o) for o in RMSPROP_GRID] + [("adam", o) for o in ADAM_GRID])


def grid_id(case):
    opt, options = case
    flags = "-".join(f"{k}={v}" for k, v in options.items() if k != "lr")
    return f"{opt}-{flags}"


@DTYPE_PARAM
@pytest.mark.parametrize("opt, options", GRID, ids=[grid_id(c) for c in GRID])
def test_trajectory_matches_reference(opt, options, dtype):
    for i, shape in enumerate(SHAPES):
        compare_trajectories(opt, dtype, shape, options, seed=i)


@DTYPE_PARAM
@given(data=st.data(), lr=st.floats(1e-4, 0.5), eps=st.floats(1e-10, 1e-2),
       weight_decay=st.sampled_from([0.0, 1e-3, 0.1]), decoupled=st.booleans(),
       amsgrad=st.booleans(), eps_mode=st.sampled_from(["paper", "folded"]),
       seed=st.integers(0, 2**16))
def test_adam_trajectory_random_hyperparameters(dtype, data, lr, eps, weight_decay, decoupled,
                                                amsgrad, eps_mode, seed):
    """beta1 below 0.5 takes the other branch of PyTorch's two-sided lerp, m = d - (d - m)·β₁'
    with β₁' = 1 - (1 - β₁).

    float64 is compared over the whole range 0 <= β < 1. In float32, ops computes β₁' as
    PyTorch does (1 - β₁ rounded to float32, then subtracted from 1 in float32) while the
    reference rounds 1 - (1 - β₁) once from double: the effective β₁ differs by up to
    eps32/β₁ relative (0.6% at β₁ = 1e-5). And with β₂ near 0 the step is m/|g + λp|, which
    cancels. Either turns 1-ulp differences into visibly different trajectories
    (ill-conditioning, not a kernel error), so float32 draws β₁ in {0} ∪ [0.1, 0.999] and
    β₂ in [0.5, 0.9999]."""
    if np.dtype(dtype) == np.float64:
        beta1 = data.draw(st.floats(0.0, 0.999), label="beta1")
        beta2 = data.draw(st.floats(0.0, 0.9999), label="beta2")
    else:
        beta1 = data.draw(st.one_of(st.just(0.0), st.floats(0.1, 0.999)), label="beta1")
        beta2 = data.draw(st.floats(0.5, 0.9999), label="beta2")
    compare_trajectories("adam", dtype, (6, 5), dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                                                     weight_decay=weight_decay,
                                                     decoupled=decoupled, amsgrad=amsgrad,
                                                     eps_mode=eps_mode), seed=seed, steps=10)


@DTYPE_PARAM
@given(data=st.data(), lr=st.floats(1e-4, 0.1), eps=st.floats(1e-8, 1e-2),
       momentum=st.sampled_from([0.0, 0.5, 0.9]), centered=st.booleans(),
       weight_decay=st.sampled_from([0.0, 0.01]), seed=st.integers(0, 2**16))
def test_rmsprop_trajectory_random_hyperparameters(dtype, data, lr, eps, momentum, centered,
                                                   weight_decay, seed):
    """The centered variance v - ḡ² cancels: by a factor 1/α after the first step, and
    whenever the last ~1/(1-α) gradients are close. At α ~ 1e-16 it is pure rounding and
    may come out negative (sqrt -> NaN, in PyTorch too). In float32, for α < 0.5 (the
    b-side of the lerp of ḡ) the two implementations round the lerp weight differently
    (the reference 1 - (1 - α) once from double, ops/PyTorch in float32), and that 1-ulp
    difference in ḡ is then amplified by the cancellation (1e-3 at α = 1e-4, and >1e-5
    at α = 0.1 when two consecutive gradients nearly agree). Ill-conditioning, not a
    kernel error: α is drawn from [1e-3, 0.999] in float64 and from [0.5, 0.999] in
    float32, where both sides round identically; the α = 0.3 branch is in the fixed grid.
    (α = 1 never updates the average: p moves by lr·g/eps and overflows, in both.)"""
    low = 1e-3 if np.dtype(dtype) == np.float64 else 0.5
    alpha = data.draw(st.floats(low, 0.999), label="alpha")
    compare_trajectories("rmsprop", dtype, (6, 5), dict(lr=lr, alpha=alpha, eps=eps,
                                                        momentum=momentum, centered=centered,
                                                        weight_decay=weight_decay),
                         seed=seed, steps=10)


# ---------------------------------------------------------------- one step, by hand (float64)

LR = 0.1
P0 = [1.0, -2.0, 0.5]
G1 = [0.5, 1.0, -4.0]
G2 = [-1.0, 0.25, 2.0]


def arr(values):
    return np.array(values, dtype=np.float64)


def approx(values):
    return pytest.approx(list(values), rel=tol(np.float64, "closed_rtol"),
                         abs=tol(np.float64, "closed_atol"))


@MODULES
def test_sgd_plain_and_weight_decay_by_hand(module):
    p = arr(P0)
    module.sgd_step(p, arr(G1), None, lr=LR)
    assert p.tolist() == approx(p0 - LR * g for p0, g in zip(P0, G1))       # [0.95, -2.1, 0.9]
    p = arr(P0)
    module.sgd_step(p, arr(G1), None, lr=LR, weight_decay=0.1)
    assert p.tolist() == approx(p0 - LR * (g + 0.1 * p0) for p0, g in zip(P0, G1))


@MODULES
def test_sgd_momentum_by_hand(module):
    mu, damp = 0.9, 0.1
    p, buf = arr(P0), np.full(3, 123.0)           # buf's old contents must not matter
    module.sgd_step(p, arr(G1), buf, lr=LR, momentum=mu, dampening=damp, first_step=True)
    assert buf.tolist() == G1                     # PyTorch: the first buffer is the gradient
    p1 = [p0 - LR * g for p0, g in zip(P0, G1)]
    assert p.tolist() == approx(p1)
    module.sgd_step(p, arr(G2), buf, lr=LR, momentum=mu, dampening=damp)
    b2 = [mu * g1 + (1 - damp) * g2 for g1, g2 in zip(G1, G2)]
    assert buf.tolist() == approx(b2)
    assert p.tolist() == approx(a - LR * b for a, b in zip(p1, b2))


@MODULES
def test_sgd_nesterov_by_hand(module):
    mu = 0.9
    p, buf = arr(P0), np.zeros(3)
    module.sgd_step(p, arr(G1), buf, lr=LR, momentum=mu, nesterov=True, first_step=True)
    # buf = g; step direction g + mu·buf = (1 + mu)·g
    assert p.tolist() == approx(p0 - LR * (1 + mu) * g for p0, g in zip(P0, G1))
    p1 = p.tolist()
    module.sgd_step(p, arr(G2), buf, lr=LR, momentum=mu, nesterov=True)
    b2 = [mu * g1 + g2 for g1, g2 in zip(G1, G2)]
    assert p.tolist() == approx(a - LR * (g2 + mu * b) for a, g2, b in zip(p1, G2, b2))


@MODULES
def test_adagrad_by_hand(module):
    eps = 1e-10
    p, s = arr(P0), np.zeros(3)
    module.adagrad_step(p, arr(G1), s, lr=LR, eps=eps)
    assert s.tolist() == [g * g for g in G1]
    p1 = [p0 - LR * g / (abs(g) + eps) for p0, g in zip(P0, G1)]   # a step of ±lr
    assert p.tolist() == approx(p1)
    module.adagrad_step(p, arr(G2), s, lr=LR, eps=eps)
    assert p.tolist() == approx(a - LR * g2 / (math.sqrt(g1 * g1 + g2 * g2) + eps)
                                for a, g1, g2 in zip(p1, G1, G2))


@MODULES
@pytest.mark.parametrize("alpha", [0.99, 0.3])
def test_rmsprop_by_hand(module, alpha):
    eps = 1e-8
    p, v = arr(P0), np.zeros(3)
    module.rmsprop_step(p, arr(G1), v, None, None, lr=LR, alpha=alpha, eps=eps)
    assert v.tolist() == approx((1 - alpha) * g * g for g in G1)
    assert p.tolist() == approx(p0 - LR * g / (math.sqrt(1 - alpha) * abs(g) + eps)
                                for p0, g in zip(P0, G1))


@MODULES
@pytest.mark.parametrize("alpha", [0.99, 0.3])
def test_rmsprop_centered_momentum_by_hand(module, alpha):
    eps, mu = 1e-8, 0.9
    p, v, buf, gavg = arr(P0), np.zeros(3), np.zeros(3), np.zeros(3)
    module.rmsprop_step(p, arr(G1), v, buf, gavg, lr=LR, alpha=alpha, eps=eps, momentum=mu,
                        centered=True)
    assert gavg.tolist() == approx((1 - alpha) * g for g in G1)
    # variance (1-α)g² - ((1-α)g)² = α(1-α)g²
    avg = [math.sqrt(alpha * (1 - alpha)) * abs(g) + eps for g in G1]
    assert buf.tolist() == approx(g / a for g, a in zip(G1, avg))
    assert p.tolist() == approx(p0 - LR * g / a for p0, g, a in zip(P0, G1, avg))


@MODULES
def test_adam_first_step_by_hand(module):
    """Step 1 with g = 1: m̂ = 1, v̂ = 1, so p moves by exactly lr·1/(1 + eps)."""
    lr, eps = 1e-3, 1e-8
    p, m, v = arr(P0), np.zeros(3), np.zeros(3)
    module.adam_step(p, np.ones(3), m, v, None, step=1, lr=lr, eps=eps)
    assert m.tolist() == approx([0.1] * 3)
    assert v.tolist() == approx([0.001] * 3)
    assert p.tolist() == approx(p0 - lr / (1 + eps) for p0 in P0)
    # any gradient: step 1 is lr·g/(|g| + eps) (sign descent)
    p, m, v = arr(P0), np.zeros(3), np.zeros(3)
    module.adam_step(p, arr(G1), m, v, None, step=1, lr=lr, eps=eps)
    assert p.tolist() == approx(p0 - lr * g / (abs(g) + eps) for p0, g in zip(P0, G1))


@MODULES
def test_adam_folded_eps_by_hand(module):
    """scikit-learn's form: lr_t = lr·√(1-β₂)/(1-β₁), p -= lr_t·m/(√v + eps); at step 1 that
    is lr·g/(|g| + eps/√(1-β₂)): eps is effectively ~32x larger than in the paper form."""
    lr, eps = 1e-3, 1e-2                         # an eps large enough to see where it goes
    p, m, v = arr(P0), np.zeros(3), np.zeros(3)
    module.adam_step(p, arr(G1), m, v, None, step=1, lr=lr, eps=eps, eps_mode="folded")
    assert p.tolist() == approx(p0 - lr * g / (abs(g) + eps / math.sqrt(0.001))
                                for p0, g in zip(P0, G1))
    p, m, v = arr(P0), np.zeros(3), np.zeros(3)
    module.adam_step(p, arr(G1), m, v, None, step=1, lr=lr, eps=eps)   # paper, for contrast
    assert p.tolist() == approx(p0 - lr * g / (abs(g) + eps) for p0, g in zip(P0, G1))


@MODULES
def test_adam_weight_decay_coupled_and_decoupled_by_hand(module):
    lr, eps, wd = 1e-2, 1e-8, 0.1
    # AdamW: p *= 1 - lr·wd, then the plain step 1 (lr·g/(|g| + eps))
    p, m, v = arr(P0), np.zeros(3), np.zeros(3)
    module.adam_step(p, arr(G1), m, v, None, step=1, lr=lr, eps=eps, weight_decay=wd,
                     decoupled=True)
    assert p.tolist() == approx(p0 * (1 - lr * wd) - lr * g / (abs(g) + eps)
                                for p0, g in zip(P0, G1))
    # Adam with L2: the gradient becomes g + wd·p
    p, m, v = arr(P0), np.zeros(3), np.zeros(3)
    module.adam_step(p, arr(G1), m, v, None, step=1, lr=lr, eps=eps, weight_decay=wd)
    d = [g + wd * p0 for p0, g in zip(P0, G1)]
    assert m.tolist() == approx(0.1 * x for x in d)
    assert p.tolist() == approx(p0 - lr * x / (abs(x) + eps) for p0, x in zip(P0, d))


@MODULES
def test_adam_second_step_and_amsgrad_by_hand(module):
    lr, eps, b1, b2 = 1e-2, 1e-8, 0.9, 0.999
    g1, g2 = 2.0, 0.01              # g2² < v1: the second moment shrinks at step 2
    for amsgrad in (False, True):
        p, m, v = arr([1.0]), np.zeros(1), np.zeros(1)
        vmax = np.zeros(1) if amsgrad else None
        module.adam_step(p, arr([g1]), m, v, vmax, step=1, lr=lr, eps=eps, amsgrad=amsgrad)
        module.adam_step(p, arr([g2]), m, v, vmax, step=2, lr=lr, eps=eps, amsgrad=amsgrad)
        m2 = b1 * (1 - b1) * g1 + (1 - b1) * g2
        v1 = (1 - b2) * g1 * g1
        v2 = b2 * v1 + (1 - b2) * g2 * g2
        assert v2 < v1
        vhat = v1 if amsgrad else v2                   # amsgrad keeps the larger v1
        p1 = 1.0 - lr * g1 / (abs(g1) + eps)
        p2 = p1 - lr / (1 - b1**2) * m2 / (math.sqrt(vhat) / math.sqrt(1 - b2**2) + eps)
        assert m.tolist() == approx([m2])
        assert v.tolist() == approx([v2])
        if amsgrad:
            assert vmax.tolist() == approx([v1])
        assert p.tolist() == approx([p2]), f"amsgrad={amsgrad}"


# ---------------------------------------------------------------- 0-size parameters


@DTYPE_PARAM
@MODULES
@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 4)], ids=str)
def test_zero_size_parameters_are_a_no_op(module, dtype, shape):
    def e():
        return np.empty(shape, dtype=dtype)

    p = e()
    module.sgd_step(p, e(), None, lr=0.1)
    module.sgd_step(p, e(), e(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1,
                    first_step=True)
    module.adagrad_step(p, e(), e(), lr=0.1, weight_decay=0.1)
    module.rmsprop_step(p, e(), e(), e(), e(), lr=0.1, momentum=0.9, centered=True,
                        weight_decay=0.1)
    for mode in ("paper", "folded"):
        module.adam_step(p, e(), e(), e(), e(), step=1, lr=0.1, weight_decay=0.1,
                         decoupled=True, amsgrad=True, eps_mode=mode)
    assert p.shape == shape and p.dtype == np.dtype(dtype)


@DTYPE_PARAM
def test_state_buffers_not_needed_are_left_alone(dtype):
    """A buffer passed but not used (SGD without momentum, Adam without amsgrad) is untouched."""
    g = np.full(4, 0.5, dtype=dtype)
    buf = np.full(4, 7.0, dtype=dtype)
    ops.sgd_step(np.zeros(4, dtype), g, buf, lr=0.1)
    np.testing.assert_array_equal(buf, 7.0)
    vmax = np.full(4, 7.0, dtype=dtype)
    ops.adam_step(np.zeros(4, dtype), g, np.zeros(4, dtype), np.zeros(4, dtype), vmax, step=1,
                  lr=0.1)
    np.testing.assert_array_equal(vmax, 7.0)
    sq, b, ga = (np.full(4, 7.0, dtype=dtype) for _ in range(3))
    ops.rmsprop_step(np.zeros(4, dtype), g, sq, b, ga, lr=0.1)
    np.testing.assert_array_equal(b, 7.0)
    np.testing.assert_array_equal(ga, 7.0)
