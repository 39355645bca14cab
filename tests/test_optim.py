"""Tests for the optimizer classes: 25-step trajectories against fastbp.reference's
step functions run by hand, the lr setter, hyper-parameter validation, failing steps
that change nothing, state_dict round trips and (if installed) torch.optim parity."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import fastbp
from fastbp import reference

from conftest import DTYPES, assert_state_equal, tol, tols

SHAPES = [(5, 3), (3,), (2, 3, 4), (1,)]
N_STEPS = 25


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype(dtype) for s in SHAPES]


def grad_stream(dtype, n_steps=N_STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=s).astype(dtype) for s in SHAPES] for _ in range(n_steps)]


def zeros_like_all(params):
    return [np.zeros_like(p) for p in params]


# ---------------------------------------------------------------- by-hand reference runners
# Each returns a function step(params, grads, t) applying one reference step with its
# own state arrays (t counted from 1).

def ref_sgd(params, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    bufs = zeros_like_all(params) if momentum != 0 else [None] * len(params)

    def step(ps, gs, t):
        for p, g, b in zip(ps, gs, bufs):
            reference.sgd_step(p, g, b, lr=lr, momentum=momentum, dampening=dampening,
                               nesterov=nesterov, weight_decay=weight_decay, first_step=t == 1)
    return step


def ref_adagrad(params, lr=0.01, eps=1e-10, weight_decay=0.0):
    sums = zeros_like_all(params)

    def step(ps, gs, t):
        for p, g, s in zip(ps, gs, sums):
            reference.adagrad_step(p, g, s, lr=lr, eps=eps, weight_decay=weight_decay)
    return step


def ref_rmsprop(params, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, centered=False,
                weight_decay=0.0):
    sq = zeros_like_all(params)
    bufs = zeros_like_all(params) if momentum > 0 else [None] * len(params)
    gavg = zeros_like_all(params) if centered else [None] * len(params)

    def step(ps, gs, t):
        for p, g, s, b, a in zip(ps, gs, sq, bufs, gavg):
            reference.rmsprop_step(p, g, s, b, a, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                                   centered=centered, weight_decay=weight_decay)
    return step


def ref_adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
             eps_mode="paper", decoupled=False):
    m, v = zeros_like_all(params), zeros_like_all(params)
    vmax = zeros_like_all(params) if amsgrad else [None] * len(params)

    def step(ps, gs, t):
        for p, g, mi, vi, vm in zip(ps, gs, m, v, vmax):
            reference.adam_step(p, g, mi, vi, vm, step=t, lr=lr, beta1=betas[0], beta2=betas[1],
                                eps=eps, weight_decay=weight_decay, decoupled=decoupled,
                                amsgrad=amsgrad, eps_mode=eps_mode)
    return step


def ref_adamw(params, weight_decay=0.01, **kw):
    return ref_adam(params, weight_decay=weight_decay, decoupled=True, **kw)


CASES = [
    ("SGD", fastbp.SGD, ref_sgd, dict(lr=0.05)),
    ("SGD-momentum", fastbp.SGD, ref_sgd, dict(lr=0.05, momentum=0.9)),
    ("SGD-dampening", fastbp.SGD, ref_sgd, dict(lr=0.05, momentum=0.8, dampening=0.3)),
    ("SGD-nesterov", fastbp.SGD, ref_sgd, dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD-wd", fastbp.SGD, ref_sgd, dict(lr=0.05, weight_decay=0.1)),
    ("SGD-momentum-wd", fastbp.SGD, ref_sgd, dict(lr=0.05, momentum=0.5, weight_decay=0.1,
                                                  dampening=0.1)),
    ("AdaGrad", fastbp.AdaGrad, ref_adagrad, dict(lr=0.1)),
    ("AdaGrad-wd-eps", fastbp.AdaGrad, ref_adagrad, dict(lr=0.1, eps=1e-3, weight_decay=0.05)),
    ("RMSprop", fastbp.RMSprop, ref_rmsprop, dict(lr=0.01)),
    ("RMSprop-centered", fastbp.RMSprop, ref_rmsprop, dict(lr=0.01, centered=True)),
    ("RMSprop-momentum", fastbp.RMSprop, ref_rmsprop, dict(lr=0.01, momentum=0.9)),
    ("RMSprop-all", fastbp.RMSprop, ref_rmsprop, dict(lr=0.01, alpha=0.9, momentum=0.5,
                                                      centered=True, weight_decay=0.1, eps=1e-6)),
    ("Adam", fastbp.Adam, ref_adam, dict(lr=0.01)),
    ("Adam-amsgrad", fastbp.Adam, ref_adam, dict(lr=0.01, amsgrad=True)),
    ("Adam-wd", fastbp.Adam, ref_adam, dict(lr=0.01, weight_decay=0.1)),
    ("Adam-folded", fastbp.Adam, ref_adam, dict(lr=0.01, eps_mode="folded")),
    ("Adam-betas", fastbp.Adam, ref_adam, dict(lr=0.01, betas=(0.5, 0.9), eps=1e-4)),
    ("Adam-all", fastbp.Adam, ref_adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1,
                                             eps_mode="folded")),
    ("AdamW", fastbp.AdamW, ref_adamw, dict(lr=0.01)),
    ("AdamW-amsgrad-wd", fastbp.AdamW, ref_adamw, dict(lr=0.01, amsgrad=True, weight_decay=0.3)),
]
CASE_PARAMS = [pytest.param(cls, ref, kw, id=name) for name, cls, ref, kw in CASES]


def assert_trajectory_close(actual, expected, dtype, step):
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, e, **tols(dtype, "trajectory"),
                                   err_msg=f"param {i} after step {step}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, ref, kw", CASE_PARAMS)
def test_trajectory_matches_reference(cls, ref, kw, dtype):
    params = make_params(dtype)
    ref_params = [p.copy() for p in params]
    ids = [id(p) for p in params]
    opt = cls(params, **kw)
    ref_step = ref(ref_params, **kw)
    for t, grads in enumerate(grad_stream(dtype), start=1):
        grads_copy = [g.copy() for g in grads]
        opt.step(grads)
        ref_step(ref_params, grads, t)
        assert_trajectory_close(params, ref_params, dtype, t)
        for g, gc in zip(grads, grads_copy):
            np.testing.assert_array_equal(g, gc)        # gradients are only read
    assert [id(p) for p in opt.params] == ids           # updated in place
    assert not np.allclose(params[0], make_params(dtype)[0])


def test_sgd_first_step_only_sets_buffer():
    """Momentum: step 1 uses the gradient as buffer (PyTorch), later steps do not."""
    p = np.zeros(1)
    opt = fastbp.SGD([p], lr=1.0, momentum=0.5, dampening=0.5)
    opt.step([np.ones(1)])
    assert p[0] == -1.0                      # buf = g = 1 (not (1 - dampening)·g = 0.5)
    opt.step([np.ones(1)])
    assert p[0] == -2.0                      # buf = 0.5·1 + 0.5·1 = 1
    opt.step([np.ones(1)])
    assert p[0] == -3.0


def test_adam_step_counted_from_one():
    """Bias correction at t = 1 makes the first Adam step exactly lr·sign(g)."""
    p = np.zeros(3)
    opt = fastbp.Adam([p], lr=0.1, eps=0.0)
    opt.step([np.array([2.0, -3.0, 0.5])])
    np.testing.assert_allclose(p, [-0.1, 0.1, -0.1], rtol=tol(np.float64, "closed_rtol"))


def test_adamw_default_weight_decay_is_decoupled():
    p0 = np.array([1.0, -2.0, 3.0])
    pw, pa = p0.copy(), p0.copy()
    adamw = fastbp.AdamW([pw], lr=0.1)
    adam = fastbp.Adam([pa], lr=0.1, weight_decay=0.01)
    zero = [np.zeros(3)]
    adamw.step(zero)
    adam.step(zero)
    # AdamW: p ← p·(1 - lr·0.01), the zero gradient moves nothing else.
    np.testing.assert_allclose(pw, p0 * (1 - 0.1 * 0.01), rtol=tol(np.float64, "exact_rtol"))
    # Adam's L2 decay enters the gradient: the first step is lr·g/(|g| + eps) with
    # g = 0.01·p, i.e. lr·sign(p) to within eps/min|g| (eps = 1e-8, min|g| = 0.01).
    np.testing.assert_allclose(pa, p0 - 0.1 * np.sign(p0), rtol=1e-8 / 0.01)


def test_adamw_default_matches_reference_with_decay_001():
    params = make_params(np.float64)
    ref_params = [p.copy() for p in params]
    opt = fastbp.AdamW(params)
    ref_step = ref_adam(ref_params, weight_decay=0.01, decoupled=True)
    for t, grads in enumerate(grad_stream(np.float64, 5), start=1):
        opt.step(grads)
        ref_step(ref_params, grads, t)
    assert_trajectory_close(params, ref_params, np.float64, 5)


@pytest.mark.parametrize("cls, lr", [(fastbp.SGD, 0.01), (fastbp.AdaGrad, 0.01),
                                     (fastbp.RMSprop, 0.01), (fastbp.Adam, 1e-3),
                                     (fastbp.AdamW, 1e-3)])
def test_default_lr(cls, lr):
    assert cls([np.zeros(2)]).lr == lr


def test_lr_change_takes_effect():
    p = np.zeros(1)
    opt = fastbp.SGD([p], lr=0.1)
    opt.step([np.ones(1)])
    opt.lr = 0.5
    assert opt.lr == 0.5
    opt.step([np.ones(1)])
    assert p[0] == pytest.approx(-0.6, rel=tol(np.float64, "exact_rtol"))


# ---------------------------------------------------------------- lr setter

ALL_CLASSES = [fastbp.SGD, fastbp.AdaGrad, fastbp.RMSprop, fastbp.Adam, fastbp.AdamW]


@pytest.mark.parametrize("cls", ALL_CLASSES)
@pytest.mark.parametrize("bad", [-0.1, -1e-300, math.nan, math.inf, -math.inf, np.float64("nan")])
def test_lr_setter_rejects_and_keeps_old_value(cls, bad):
    opt = cls([np.zeros(2)], lr=0.05)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = bad
    assert opt.lr == 0.05
    p = opt.params[0]
    opt.step([np.ones(2)])           # still usable, with the old lr
    assert np.all(np.isfinite(p)) and np.all(p < 0)


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_lr_setter_rejects_non_numbers(cls):
    opt = cls([np.zeros(2)], lr=0.05)
    for bad in ("0.1", None, True):
        with pytest.raises(TypeError, match="lr"):
            opt.lr = bad
    assert opt.lr == 0.05
    opt.lr = 0                       # zero is allowed
    assert opt.lr == 0.0


@pytest.mark.parametrize("cls", ALL_CLASSES)
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_constructor_rejects_bad_lr(cls, bad):
    with pytest.raises(ValueError, match="lr"):
        cls([np.zeros(2)], lr=bad)


# ---------------------------------------------------------------- hyper-parameter validation

P = [np.zeros((2, 2))]

BAD_HYPER = [
    (fastbp.Adam, dict(betas=(1.0, 0.999)), "beta"),
    (fastbp.Adam, dict(betas=(0.9, 1.0)), "beta"),
    (fastbp.Adam, dict(betas=(-0.1, 0.999)), "beta"),
    (fastbp.Adam, dict(betas=(0.9, 1.5)), "beta"),
    (fastbp.AdamW, dict(betas=(0.9, -0.5)), "beta"),
    (fastbp.Adam, dict(betas=(0.9, math.nan)), "beta"),
    (fastbp.SGD, dict(nesterov=True), "nesterov"),
    (fastbp.SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), "nesterov"),
    (fastbp.AdaGrad, dict(eps=-1e-8), "eps"),
    (fastbp.RMSprop, dict(eps=-1e-8), "eps"),
    (fastbp.Adam, dict(eps=-1e-8), "eps"),
    (fastbp.AdamW, dict(eps=math.inf), "eps"),
    (fastbp.SGD, dict(momentum=-0.5), "momentum"),
    (fastbp.RMSprop, dict(momentum=-0.5), "momentum"),
    (fastbp.SGD, dict(weight_decay=-0.1), "weight_decay"),
    (fastbp.AdaGrad, dict(weight_decay=-0.1), "weight_decay"),
    (fastbp.RMSprop, dict(weight_decay=-0.1), "weight_decay"),
    (fastbp.Adam, dict(weight_decay=-0.1), "weight_decay"),
    (fastbp.AdamW, dict(weight_decay=-0.1), "weight_decay"),
    (fastbp.RMSprop, dict(alpha=-0.1), "alpha"),
    (fastbp.RMSprop, dict(alpha=1.5), "alpha"),
    (fastbp.Adam, dict(eps_mode="sklearn"), "eps_mode"),
    (fastbp.AdamW, dict(eps_mode=None), "eps_mode"),
]


@pytest.mark.parametrize("cls, kw, name", [pytest.param(c, k, n, id=f"{c.__name__}-{n}-{i}")
                                           for i, (c, k, n) in enumerate(BAD_HYPER)])
def test_bad_hyperparameters(cls, kw, name):
    with pytest.raises(ValueError, match=name):
        cls([np.zeros((2, 2))], **kw)


# Flags are bools: a string such as "no" is truthy and once turned Nesterov momentum on.
BAD_FLAGS = [(fastbp.SGD, dict(momentum=0.9), "nesterov"), (fastbp.RMSprop, {}, "centered"),
             (fastbp.Adam, {}, "amsgrad"), (fastbp.AdamW, {}, "amsgrad")]


@pytest.mark.parametrize("cls, kw, flag", BAD_FLAGS, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("value", ["no", "", 1, 0, None, 2.5, np.int64(1), [True]],
                         ids=repr)
def test_regression_flag_must_be_bool(cls, kw, flag, value):
    with pytest.raises(TypeError, match=rf"{flag} must be a bool"):
        cls(P, **kw, **{flag: value})
    opt = cls(P, **kw)
    with pytest.raises(TypeError, match=rf"{flag} must be a bool"):
        setattr(opt, flag, value)
    assert getattr(opt, flag) is False
    for ok in (True, np.bool_(False)):
        assert getattr(cls(P, **kw, **{flag: ok}), flag) is bool(ok)


def test_betas_not_a_pair():
    for bad in (0.9, (0.9,), (0.9, 0.99, 0.999)):
        with pytest.raises(TypeError, match="betas"):
            fastbp.Adam([np.zeros(2)], betas=bad)


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_empty_params(cls):
    with pytest.raises(ValueError, match="params"):
        cls([])
    with pytest.raises(ValueError, match="params"):
        cls(iter([]))


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_non_contiguous_params(cls):
    base = np.zeros((4, 6))
    with pytest.raises(ValueError, match=r"params\[1\]"):
        cls([np.zeros(3), base[:, ::2]])
    with pytest.raises(ValueError, match="params"):
        cls([np.asfortranarray(base)])


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_read_only_params(cls):
    p = np.zeros(3)
    p.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\]"):
        cls([p])


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_non_float_params(cls):
    with pytest.raises(TypeError, match="params"):
        cls([np.zeros(3, dtype=np.int64)])
    with pytest.raises(TypeError, match="params"):
        cls([[0.0, 1.0]])
    with pytest.raises(TypeError, match="params"):
        cls([np.zeros(3, dtype=np.float16)])


# ---------------------------------------------------------------- failing steps change nothing

def warm(cls, kw, dtype=np.float64):
    params = make_params(dtype)
    opt = cls(params, **kw)
    for grads in grad_stream(dtype, 3):
        opt.step(grads)
    return params, opt


def snapshot(params, opt):
    return [p.copy() for p in params], opt.state_dict()


def assert_unchanged(params, opt, snap):
    old_params, old_state = snap
    for a, b in zip(params, old_params):
        np.testing.assert_array_equal(a, b)
    assert_state_equal(opt.state_dict(), old_state)


STATEFUL = [pytest.param(c, k, id=n) for n, c, _, k in CASES
            if n in ("SGD-momentum", "AdaGrad", "RMSprop-all", "Adam-amsgrad", "AdamW", "SGD")]


@pytest.mark.parametrize("cls, kw", STATEFUL)
def test_step_wrong_number_of_grads(cls, kw):
    params, opt = warm(cls, kw)
    snap = snapshot(params, opt)
    grads = grad_stream(np.float64, 1, seed=9)[0]
    with pytest.raises(ValueError, match="grads"):
        opt.step(grads[:-1])
    with pytest.raises(ValueError, match="grads"):
        opt.step(grads + [np.zeros(1)])
    assert_unchanged(params, opt, snap)


@pytest.mark.parametrize("cls, kw", STATEFUL)
def test_step_wrong_shape(cls, kw):
    params, opt = warm(cls, kw)
    snap = snapshot(params, opt)
    grads = grad_stream(np.float64, 1, seed=9)[0]
    grads[-1] = np.zeros(2)                       # the last one: the first ones are fine
    with pytest.raises(ValueError, match=r"grads\[3\]"):
        opt.step(grads)
    grads[-1] = np.zeros(1)
    grads[2] = grads[2].reshape(6, 4)             # same size, wrong shape
    with pytest.raises(ValueError, match=r"grads\[2\]"):
        opt.step(grads)
    assert_unchanged(params, opt, snap)


@pytest.mark.parametrize("cls, kw", STATEFUL)
def test_step_wrong_dtype(cls, kw):
    params, opt = warm(cls, kw)
    snap = snapshot(params, opt)
    grads = grad_stream(np.float64, 1, seed=9)[0]
    grads[-1] = grads[-1].astype(np.float32)
    with pytest.raises(TypeError, match=r"grads\[3\]"):
        opt.step(grads)
    grads[-1] = [0.0]                             # not an array
    with pytest.raises(TypeError, match=r"grads\[3\]"):
        opt.step(grads)
    assert_unchanged(params, opt, snap)


def test_step_accepts_strided_and_read_only_grads():
    p1, p2 = np.zeros((3, 2)), np.zeros((3, 2))
    o1, o2 = fastbp.Adam([p1], lr=0.1), fastbp.Adam([p2], lr=0.1)
    g = np.random.default_rng(0).normal(size=(3, 2))
    gf = np.asfortranarray(g)
    gf.flags.writeable = False
    o1.step([g])
    o2.step([gf])
    np.testing.assert_array_equal(p1, p2)


# ---------------------------------------------------------------- state_dict

ROUND_TRIP = [pytest.param(c, k, id=n) for n, c, _, k in CASES]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kw", ROUND_TRIP)
def test_state_dict_round_trip(cls, kw, dtype):
    grads = grad_stream(dtype, 20, seed=3)
    params = make_params(dtype)
    opt = cls(params, **kw)
    for g in grads[:10]:
        opt.step(g)
    saved = opt.state_dict()
    saved_params = [p.copy() for p in params]
    for g in grads[10:]:
        opt.step(g)
    # state_dict returned copies: continuing did not change them
    assert saved["step"] == 10
    # a fresh optimizer over copies of the step-10 parameters, loaded with the state
    copies = [p.copy() for p in saved_params]
    fresh = cls(copies, **kw)
    fresh.load_state_dict(saved)
    assert fresh.params[0] is copies[0]
    for g in grads[10:]:
        fresh.step(g)
    for a, b in zip(params, copies):
        np.testing.assert_array_equal(a, b)          # bit-identical
    assert_state_equal(fresh.state_dict(), opt.state_dict())


@pytest.mark.parametrize("cls, kw", ROUND_TRIP)
def test_state_dict_restores_hyperparameters(cls, kw):
    params, opt = warm(cls, kw)
    opt.lr = 0.0123
    other = cls([p.copy() for p in params])          # default hyper-parameters
    other.load_state_dict(opt.state_dict())
    assert other.lr == 0.0123
    assert other.state_dict()["hyperparameters"] == opt.state_dict()["hyperparameters"]


def test_state_dict_without_steps_continues_from_scratch():
    p1, p2 = np.zeros(2), np.zeros(2)
    a = fastbp.Adam([p1], lr=0.1)
    b = fastbp.Adam([p2], lr=0.1)
    b.load_state_dict(a.state_dict())
    a.step([np.ones(2)])
    b.step([np.ones(2)])
    np.testing.assert_array_equal(p1, p2)


def test_state_dict_is_a_copy():
    params, opt = warm(fastbp.Adam, dict(lr=0.1))
    d = opt.state_dict()
    before = {k: a.copy() for k, a in d["state"][0].items()}
    opt.step(grad_stream(np.float64, 1, seed=5)[0])
    for k, a in d["state"][0].items():
        np.testing.assert_array_equal(a, before[k])
    # mutating the dict does not touch the optimizer
    d2 = opt.state_dict()
    for a in d2["state"][0].values():
        a[...] = 123.0
    assert not any(np.any(a == 123.0) for a in opt.state_dict()["state"][0].values())


@pytest.mark.parametrize("src, dst", [(fastbp.Adam, fastbp.AdamW), (fastbp.AdamW, fastbp.Adam),
                                      (fastbp.SGD, fastbp.RMSprop), (fastbp.AdaGrad, fastbp.SGD)])
def test_load_state_dict_other_type(src, dst):
    params, opt = warm(dst, {})
    snap = snapshot(params, opt)
    _, other = warm(src, {})
    with pytest.raises(ValueError, match="state_dict"):
        opt.load_state_dict(other.state_dict())
    assert_unchanged(params, opt, snap)
    opt.step(grad_stream(np.float64, 1)[0])          # still usable


@pytest.mark.parametrize("cls, kw", STATEFUL)
def test_load_state_dict_wrong_shapes(cls, kw):
    params, opt = warm(cls, kw)
    snap = snapshot(params, opt)
    other = cls([np.zeros(s[::-1] + (2,)) for s in SHAPES], **kw)
    other.step([np.ones_like(p) for p in other.params])
    bad = other.state_dict()
    if any(bad["state"]):
        with pytest.raises(ValueError, match="state"):
            opt.load_state_dict(bad)
        assert_unchanged(params, opt, snap)
    fewer = cls([np.zeros(2)], **kw)
    with pytest.raises(ValueError, match="state"):
        opt.load_state_dict(fewer.state_dict())
    assert_unchanged(params, opt, snap)


def test_load_state_dict_wrong_dtype_and_bad_values():
    params, opt = warm(fastbp.Adam, dict(lr=0.1))
    snap = snapshot(params, opt)
    d = opt.state_dict()
    d32 = dict(d, state=[{k: a.astype(np.float32) for k, a in s.items()} for s in d["state"]])
    with pytest.raises(ValueError, match="state"):
        opt.load_state_dict(d32)
    # a bad last entry: nothing of the good first entries is adopted
    d_last = opt.state_dict()
    d_last["state"][-1] = {"exp_avg": np.zeros(1)}
    for s in d_last["state"][:-1]:
        for a in s.values():
            a[...] = 7.0
    with pytest.raises(ValueError, match="state"):
        opt.load_state_dict(d_last)
    with pytest.raises(ValueError, match="step"):
        opt.load_state_dict(dict(d, step=-1))
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict(dict(d, hyperparameters=dict(d["hyperparameters"], lr=-1.0)))
    with pytest.raises(ValueError):
        opt.load_state_dict({"type": "adam"})
    with pytest.raises(ValueError):
        opt.load_state_dict("adam")
    assert_unchanged(params, opt, snap)


# ---------------------------------------------------------------- PyTorch parity (optional)

TORCH_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01), "SGD", {}),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), "SGD", {}),
    ("SGD", dict(lr=0.05), "SGD", {}),
    ("AdaGrad", dict(lr=0.1, weight_decay=0.05), "Adagrad", {}),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.01), "RMSprop", {}),
    ("RMSprop", dict(lr=0.01), "RMSprop", {}),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01), "Adam", {}),
    ("Adam", dict(lr=0.01, amsgrad=True), "Adam", {}),
    ("AdamW", dict(lr=0.01), "AdamW", {}),
    ("AdamW", dict(lr=0.01, weight_decay=0.2, amsgrad=True), "AdamW", {}),
]


@pytest.mark.parametrize("ours, kw, theirs, extra",
                         [pytest.param(*c, id=f"{c[0]}-{i}") for i, c in enumerate(TORCH_CASES)])
def test_matches_torch(ours, kw, theirs, extra):
    torch = pytest.importorskip("torch")
    params = make_params(np.float64)
    tparams = [torch.tensor(p.copy(), dtype=torch.float64, requires_grad=True) for p in params]
    opt = getattr(fastbp, ours)(params, **kw)
    topt = getattr(torch.optim, theirs)(tparams, **kw, **extra)
    for grads in grad_stream(np.float64, 20, seed=4):
        opt.step(grads)
        for tp, g in zip(tparams, grads):
            tp.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p, tp.detach().numpy(), **tols(np.float64, "trajectory"))


# ---------------------------------------------------------------- the configuration record

def test_assignment_replaces_the_record_and_allocates_nothing():
    params = [np.zeros((3, 2)), np.zeros(2)]
    opt = fastbp.SGD(params, lr=0.1, momentum=0.9)
    record, state = opt.config, opt.state
    arrays = [a for s in opt.state for a in s.values()]
    opt.lr = 0.05
    assert opt.config is not record and record.lr == 0.1 and opt.config.lr == opt.lr == 0.05
    opt.momentum = 0.5                                   # keeps the momentum buffer
    assert opt.config.momentum == opt.momentum == 0.5
    assert opt.state is state
    assert all(a is b for a, b in zip(arrays, [a for s in opt.state for a in s.values()]))
    with pytest.raises(ValueError, match="would change the optimizer's state"):
        opt.momentum = 0.0                               # would drop the buffer
    assert opt.momentum == 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        opt.config.lr = 1.0
    with pytest.raises(AttributeError, match="hyper-parameter"):
        opt.learning_rate = 0.1
    # everything else lives in the link the engine shares
    assert set(vars(opt)) == {"params", "engine_link", "_groups"}


def test_betas_assignment_replaces_both_fields():
    opt = fastbp.AdamW([np.zeros(3)], lr=0.1)
    opt.betas = (0.8, 0.9)
    assert opt.betas == (0.8, 0.9) and opt.config.beta1 == 0.8 and opt.config.decoupled
    with pytest.raises(TypeError, match="betas"):
        opt.betas = 0.9
    with pytest.raises(ValueError, match="beta2"):
        opt.betas = (0.8, 1.0)
    assert opt.betas == (0.8, 0.9)


# (constructor kwargs, ops function, its kwargs): one bad value each, all four paths
ONE_PATH = [
    (fastbp.SGD, dict(lr=-1.0), "sgd_step", dict(lr=-1.0)),
    (fastbp.SGD, dict(momentum=0.9, nesterov="no"), "sgd_step", dict(lr=0.1, momentum=0.9, nesterov="no")),
    (fastbp.SGD, dict(dampening=math.nan), "sgd_step", dict(lr=0.1, dampening=math.nan)),
    (fastbp.AdaGrad, dict(eps=-1.0), "adagrad_step", dict(lr=0.1, eps=-1.0)),
    (fastbp.RMSprop, dict(alpha=2.0), "rmsprop_step", dict(lr=0.1, alpha=2.0)),
    (fastbp.RMSprop, dict(centered=1), "rmsprop_step", dict(lr=0.1, centered=1)),
    (fastbp.Adam, dict(betas=(0.9, 1.0)), "adam_step", dict(lr=0.1, beta2=1.0, step=1)),
    (fastbp.Adam, dict(weight_decay=-0.1), "adam_step", dict(lr=0.1, weight_decay=-0.1, step=1)),
    (fastbp.Adam, dict(amsgrad="yes"), "adam_step", dict(lr=0.1, amsgrad="yes", step=1)),
]


@pytest.mark.parametrize("cls, kw, func, fkw", ONE_PATH,
                         ids=[f"{c.__name__}-{next(iter(k))}" for c, k, _, _ in ONE_PATH])
def test_one_validation_path(cls, kw, func, fkw):
    """Constructor, assignment, load_state_dict, fastbp.ops and fastbp.reference reject
    a bad hyper-parameter with the same exception and message (one check, in
    fastbp._optim_config)."""
    from fastbp import ops, reference
    p = np.zeros(4)
    state = {"sgd_step": (None,), "adagrad_step": (np.zeros(4),),
             "rmsprop_step": (np.zeros(4), np.zeros(4), np.zeros(4)),
             "adam_step": (np.zeros(4), np.zeros(4), np.zeros(4))}[func]
    errors = []
    with pytest.raises((TypeError, ValueError)) as exc:
        cls([p], **kw)
    errors.append(exc.value)
    for module in (ops, reference):
        with pytest.raises((TypeError, ValueError)) as exc:
            getattr(module, func)(np.zeros(4), np.ones(4), *state, **fkw)
        errors.append(exc.value)
    good = cls([p])
    d = good.state_dict()
    d["hyperparameters"].update({k: (list(v) if k == "betas" else v) for k, v in kw.items()})
    with pytest.raises((TypeError, ValueError)) as exc:
        good.load_state_dict(d)
    errors.append(exc.value)
    name, value = next(iter(kw.items())) if len(kw) == 1 else list(kw.items())[-1]
    with pytest.raises((TypeError, ValueError)) as exc:
        setattr(good, name, value)
    errors.append(exc.value)
    assert len({(type(e), str(e)) for e in errors}) == 1, errors
