"""Every input check of fastbp._validation, reached through fastbp.ops, and the same call
through fastbp.reference raising the same exception type (both share the checks).

Conventions under test (fastbp/_validation.py): a wrong kind of object or dtype is a
TypeError, a wrong shape, size or value a ValueError, and the message names the argument.
A failing optimizer call must leave p and every state array untouched.
"""
from __future__ import annotations

import numpy as np
import pytest

from fastbp import ops, reference

from conftest import tol

MODULES = pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
F32, F64 = np.float32, np.float64


def m(*shape, dtype=F64, fill=0.5):
    return np.full(shape, fill, dtype=dtype)


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def strided(a):
    big = np.zeros((2 * a.shape[0],) + a.shape[1:], dtype=a.dtype)
    view = big[::2]
    view[...] = a
    return view


# ---------------------------------------------------------------- activations, dense, losses
# (id, call(module), exception, regex); every call would succeed with the bad part fixed.

Z = m(3, 4)
LABELS = np.array([0, 1, 3])

KERNEL_CASES = [
    # activation names
    ("act-unknown-name", lambda mod: mod.activation_forward("swish", Z), ValueError, "activation"),
    ("act-name-not-str", lambda mod: mod.activation_forward(3, Z), ValueError, "activation"),
    ("act-bwd-unknown-name", lambda mod: mod.activation_backward("Relu", Z, Z, Z), ValueError,
     "activation"),
    # Z: kind, dtype, ndim, columns
    ("act-Z-list", lambda mod: mod.activation_forward("relu", [[1.0, 2.0]]), TypeError,
     r"\bZ\b.*ndarray"),
    ("act-Z-int", lambda mod: mod.activation_forward("relu", np.ones((2, 2), np.int64)),
     TypeError, r"\bZ\b.*dtype"),
    ("act-Z-float16", lambda mod: mod.activation_forward("tanh", m(2, 2, dtype=np.float16)),
     TypeError, r"\bZ\b.*dtype"),
    ("act-Z-complex", lambda mod: mod.activation_forward("tanh", m(2, 2, dtype=np.complex128)),
     TypeError, r"\bZ\b.*dtype"),
    ("act-Z-1d", lambda mod: mod.activation_forward("relu", m(4)), ValueError,
     r"\bZ\b.*2-dimensional"),
    ("act-Z-3d", lambda mod: mod.activation_forward("relu", m(2, 2, 2)), ValueError,
     r"\bZ\b.*2-dimensional"),
    ("act-Z-0d", lambda mod: mod.activation_forward("relu", np.array(1.0)),
     ValueError, r"\bZ\b.*2-dimensional"),
    ("act-Z-no-columns", lambda mod: mod.activation_forward("softmax", m(3, 0)), ValueError,
     r"\bZ\b.*at least one column"),
    # backward: A and dA against Z
    ("act-bwd-A-mixed-dtype", lambda mod: mod.activation_backward("sigmoid", Z, m(3, 4, dtype=F32),
                                                                  Z), TypeError, r"\bA\b.*dtype"),
    ("act-bwd-dA-mixed-dtype", lambda mod: mod.activation_backward(
        "sigmoid", m(3, 4, dtype=F32), m(3, 4, dtype=F32), Z), TypeError, r"\bdA\b.*dtype"),
    ("act-bwd-A-shape", lambda mod: mod.activation_backward("tanh", Z, m(3, 5), Z), ValueError,
     r"\bA\b.*shape"),
    ("act-bwd-dA-shape", lambda mod: mod.activation_backward("tanh", Z, Z, m(4, 4)), ValueError,
     r"\bdA\b.*shape"),
    ("act-bwd-dA-1d", lambda mod: mod.activation_backward("tanh", Z, Z, m(12)), ValueError,
     r"\bdA\b.*2-dimensional"),
    ("act-bwd-Z-not-array", lambda mod: mod.activation_backward("tanh", None, Z, Z), TypeError,
     r"\bZ\b"),
    ("act-bwd-dA-int", lambda mod: mod.activation_backward("tanh", Z, Z, np.ones((3, 4), int)),
     TypeError, r"\bdA\b"),

    # dense_forward
    ("dense-unknown-activation", lambda mod: mod.dense_forward(m(2, 3), m(3, 4), m(4), "Relu"),
     ValueError, "activation"),
    ("dense-X-not-array", lambda mod: mod.dense_forward([[1.0, 2.0, 3.0]], m(3, 4), m(4), "relu"),
     TypeError, r"\bX\b"),
    ("dense-X-int", lambda mod: mod.dense_forward(np.ones((2, 3), np.int32), m(3, 4), m(4), "relu"),
     TypeError, r"\bX\b.*dtype"),
    ("dense-X-float16", lambda mod: mod.dense_forward(m(2, 3, dtype=np.float16), m(3, 4), m(4),
                                                      "relu"), TypeError, r"\bX\b.*dtype"),
    ("dense-W-mixed", lambda mod: mod.dense_forward(m(2, 3), m(3, 4, dtype=F32), m(4), "relu"),
     TypeError, r"\bW\b.*dtype"),
    ("dense-b-mixed", lambda mod: mod.dense_forward(m(2, 3, dtype=F32), m(3, 4, dtype=F32), m(4),
                                                    "relu"), TypeError, r"\bb\b.*dtype"),
    ("dense-X-1d", lambda mod: mod.dense_forward(m(3), m(3, 4), m(4), "relu"), ValueError,
     r"\bX\b.*2-dimensional"),
    ("dense-X-no-columns", lambda mod: mod.dense_forward(m(2, 0), m(0, 4), m(4), "relu"),
     ValueError, r"\bX\b.*at least one"),
    ("dense-W-no-columns", lambda mod: mod.dense_forward(m(2, 3), m(3, 0), m(0), "relu"),
     ValueError, r"\bW\b.*at least one"),
    ("dense-W-rows", lambda mod: mod.dense_forward(m(2, 3), m(4, 4), m(4), "relu"), ValueError,
     r"\bW\b.*in_features"),
    ("dense-b-shape", lambda mod: mod.dense_forward(m(2, 3), m(3, 4), m(5), "relu"), ValueError,
     r"\bb\b.*shape"),
    ("dense-b-2d", lambda mod: mod.dense_forward(m(2, 3), m(3, 4), m(1, 4), "relu"), ValueError,
     r"\bb\b.*1-dimensional"),

    # dense_backward
    ("dense-bwd-unknown-activation", lambda mod: mod.dense_backward(
        m(2, 3), m(3, 4), m(2, 4), m(2, 4), m(2, 4), "sofmax"), ValueError, "activation"),
    ("dense-bwd-W-rows", lambda mod: mod.dense_backward(
        m(2, 3), m(2, 4), m(2, 4), m(2, 4), m(2, 4), "relu"), ValueError, r"\bW\b"),
    ("dense-bwd-Z-shape", lambda mod: mod.dense_backward(
        m(2, 3), m(3, 4), m(3, 4), m(2, 4), m(2, 4), "relu"), ValueError, r"\bZ\b.*shape"),
    ("dense-bwd-A-shape", lambda mod: mod.dense_backward(
        m(2, 3), m(3, 4), m(2, 4), m(2, 5), m(2, 4), "relu"), ValueError, r"\bA\b.*shape"),
    ("dense-bwd-dA-shape", lambda mod: mod.dense_backward(
        m(2, 3), m(3, 4), m(2, 4), m(2, 4), m(2, 3), "relu"), ValueError, r"\bdA\b.*shape"),
    ("dense-bwd-dA-mixed", lambda mod: mod.dense_backward(
        m(2, 3), m(3, 4), m(2, 4), m(2, 4), m(2, 4, dtype=F32), "relu"), TypeError,
     r"\bdA\b.*dtype"),
    ("dense-bwd-W-mixed", lambda mod: mod.dense_backward(
        m(2, 3, dtype=F32), m(3, 4), m(2, 4), m(2, 4), m(2, 4), "relu"), TypeError,
     r"\bW\b.*dtype"),
    ("dense-bwd-X-complex", lambda mod: mod.dense_backward(
        m(2, 3, dtype=np.complex64), m(3, 4), m(2, 4), m(2, 4), m(2, 4), "relu"), TypeError,
     r"\bX\b.*dtype"),

    # losses
    ("loss-unknown-name", lambda mod: mod.loss_forward_backward("nll", Z, Z), ValueError, "loss"),
    ("loss-name-not-str", lambda mod: mod.loss_forward_backward(None, Z, Z), ValueError, "loss"),
    ("loss-output-list", lambda mod: mod.loss_forward_backward("mse", [[1.0]], m(1, 1)),
     TypeError, r"\boutput\b"),
    ("loss-output-int", lambda mod: mod.loss_forward_backward("mse", np.ones((2, 2), int),
                                                              m(2, 2)), TypeError, r"\boutput\b"),
    ("loss-output-float16", lambda mod: mod.loss_forward_backward(
        "mae", m(2, 2, dtype=np.float16), m(2, 2)), TypeError, r"\boutput\b"),
    ("loss-output-1d", lambda mod: mod.loss_forward_backward("mse", m(3), m(3)), ValueError,
     r"\boutput\b.*2-dimensional"),
    ("loss-output-empty", lambda mod: mod.loss_forward_backward("mse", m(0, 2), m(0, 2)),
     ValueError, r"\boutput\b.*at least one sample"),
    ("loss-ce-output-empty", lambda mod: mod.loss_forward_backward(
        "cross_entropy", m(0, 3), np.zeros(0, int)), ValueError, r"\boutput\b.*at least one"),
    ("loss-output-no-columns", lambda mod: mod.loss_forward_backward("mse", m(2, 0), m(2, 0)),
     ValueError, r"\boutput\b.*at least one column"),
    ("loss-target-list", lambda mod: mod.loss_forward_backward("mse", m(1, 2), [[0.0, 0.0]]),
     TypeError, r"\btarget\b.*ndarray"),
    ("loss-target-mixed", lambda mod: mod.loss_forward_backward("huber", m(2, 2),
                                                                m(2, 2, dtype=F32)),
     TypeError, r"\btarget\b.*dtype"),
    ("loss-target-int-2d", lambda mod: mod.loss_forward_backward("mse", m(2, 2),
                                                                 np.ones((2, 2), int)),
     TypeError, r"\btarget\b.*dtype"),
    ("loss-target-shape", lambda mod: mod.loss_forward_backward("mse", m(2, 2), m(2, 3)),
     ValueError, r"\btarget\b.*shape"),
    ("loss-target-1d-wide-output", lambda mod: mod.loss_forward_backward("mse", m(3, 2), m(3)),
     ValueError, r"\btarget\b.*2-dimensional"),
    ("loss-target-1d-wrong-length", lambda mod: mod.loss_forward_backward(
        "binary_cross_entropy", m(3, 1), m(4)), ValueError, r"\btarget\b.*shape"),
    ("loss-ce-label-too-big", lambda mod: mod.loss_forward_backward(
        "cross_entropy", m(3, 4), np.array([0, 4, 1])), ValueError, r"labels.*\[0, 4\)"),
    ("loss-ce-label-negative", lambda mod: mod.loss_forward_backward(
        "cross_entropy", m(3, 4), np.array([0, -1, 1], np.int8)), ValueError, r"labels.*\[0, 4\)"),
    ("loss-ce-label-float", lambda mod: mod.loss_forward_backward(
        "cross_entropy", m(3, 4), np.array([0.0, 1.0, 2.0])), TypeError,
     r"target.*cross_entropy.*int"),
    ("loss-ce-label-bool", lambda mod: mod.loss_forward_backward(
        "cross_entropy", m(3, 2), np.array([True, False, True])), TypeError, r"target"),
    ("loss-ce-label-length", lambda mod: mod.loss_forward_backward(
        "cross_entropy", m(3, 4), np.array([0, 1])), ValueError, r"labels.*shape \(3,\)"),
    ("loss-ce-probabilities-shape", lambda mod: mod.loss_forward_backward(
        "cross_entropy", m(3, 4), m(3, 3)), ValueError, r"\btarget\b.*shape"),
    ("loss-ce-probabilities-mixed", lambda mod: mod.loss_forward_backward(
        "cross_entropy", m(3, 4), m(3, 4, dtype=F32)), TypeError, r"\btarget\b.*dtype"),
    ("loss-ce-labels-2d-int", lambda mod: mod.loss_forward_backward(
        "cross_entropy", m(3, 4), LABELS.reshape(3, 1)), TypeError, r"\btarget\b.*dtype"),
]


@MODULES
@pytest.mark.parametrize("call, exc, match", [c[1:] for c in KERNEL_CASES],
                         ids=[c[0] for c in KERNEL_CASES])
def test_kernel_input_checks(module, call, exc, match):
    with pytest.raises(exc, match=match):
        call(module)


@MODULES
def test_label_dtypes_are_accepted(module):
    """The fixes of the cases above do work: any int/uint label dtype is fine."""
    for dt in (np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64):
        loss, _ = module.loss_forward_backward("cross_entropy", m(3, 4), LABELS.astype(dt))
        assert loss == pytest.approx(np.log(4.0), rel=tol(np.float64, "formula_rtol"))


# ---------------------------------------------------------------- optimizers
# Each case builds fresh, valid arrays, breaks one thing, and names what must be in the
# message. The state arrays are checked to be untouched after the failed call.

SHAPE = (3, 4)


def arrays_for(opt, dtype=F64):
    """Valid keyword arrays (with non-trivial contents) for one optimizer."""
    rng = np.random.default_rng(0)

    def r():
        return rng.uniform(0.1, 1, SHAPE).astype(dtype)

    base = dict(p=r(), g=r())
    state = {"sgd": dict(buf=r()), "adagrad": dict(sum_sq=r()),
             "rmsprop": dict(sq_avg=r(), buf=r(), grad_avg=r() * 0.1),
             "adam": dict(m=r(), v=r(), vmax=r())}[opt]
    return {**base, **state}


HYPER = {"sgd": dict(lr=0.1, momentum=0.9), "adagrad": dict(lr=0.1),
         "rmsprop": dict(lr=0.01, momentum=0.9, centered=True),
         "adam": dict(lr=1e-3, step=3, amsgrad=True)}
POSITIONAL = {"sgd": ("p", "g", "buf"), "adagrad": ("p", "g", "sum_sq"),
              "rmsprop": ("p", "g", "sq_avg", "buf", "grad_avg"),
              "adam": ("p", "g", "m", "v", "vmax")}
STATE = {k: v[2:] for k, v in POSITIONAL.items()}


def call_opt(module, opt, arrays, hyper):
    fn = getattr(module, f"{opt}_step")
    return fn(*(arrays[k] for k in POSITIONAL[opt]), **hyper)


def replace(name, fn):
    """A mutation replacing array `name` by fn(that array)."""
    def mutate(arrays, hyper):
        arrays[name] = fn(arrays[name])
    return mutate


def hyper(**changes):
    def mutate(arrays, hyper_):
        hyper_.update(changes)
    return mutate


OPT_CASES = []     # (id, optimizer, mutation, exception, regex)
for _opt in POSITIONAL:
    for _name in ("p",) + STATE[_opt]:
        OPT_CASES += [
            (f"{_opt}-{_name}-strided", _opt, replace(_name, strided), ValueError,
             rf"\b{_name}\b.*C-contiguous"),
            (f"{_opt}-{_name}-fortran", _opt,
             replace(_name, lambda a: np.asfortranarray(a)), ValueError,
             rf"\b{_name}\b.*C-contiguous"),
            (f"{_opt}-{_name}-readonly", _opt, replace(_name, readonly), ValueError,
             rf"\b{_name}\b.*writable"),
            (f"{_opt}-{_name}-int", _opt, replace(_name, lambda a: a.astype(np.int64)), TypeError,
             rf"\b{_name}\b.*dtype"),
            (f"{_opt}-{_name}-list", _opt, replace(_name, lambda a: a.tolist()), TypeError,
             rf"\b{_name}\b.*ndarray"),
        ]
        if _name != "p":
            OPT_CASES += [
                (f"{_opt}-{_name}-float32", _opt, replace(_name, lambda a: a.astype(F32)),
                 TypeError, rf"\b{_name}\b.*dtype"),
                (f"{_opt}-{_name}-shape", _opt, replace(_name, lambda a: np.zeros((4, 3))),
                 ValueError, rf"\b{_name}\b.*shape"),
                (f"{_opt}-{_name}-flat", _opt, replace(_name, lambda a: a.reshape(-1).copy()),
                 ValueError, rf"\b{_name}\b.*shape"),
            ]
    OPT_CASES += [
        (f"{_opt}-p-float16", _opt, replace("p", lambda a: a.astype(np.float16)), TypeError,
         r"\bp\b.*dtype"),
        (f"{_opt}-g-mixed-dtype", _opt, replace("g", lambda a: a.astype(F32)), TypeError,
         r"\bg\b.*dtype"),
        (f"{_opt}-g-complex", _opt, replace("g", lambda a: a.astype(np.complex128)), TypeError,
         r"\bg\b.*dtype"),
        (f"{_opt}-g-shape", _opt, replace("g", lambda a: np.zeros((3, 5))), ValueError,
         r"\bg\b.*shape"),
        (f"{_opt}-g-ndim", _opt, replace("g", lambda a: a.reshape(-1)), ValueError,
         r"\bg\b.*dimensional"),
        (f"{_opt}-g-list", _opt, replace("g", lambda a: a.tolist()), TypeError, r"\bg\b"),
        (f"{_opt}-lr-negative", _opt, hyper(lr=-0.1), ValueError, r"\blr\b"),
        (f"{_opt}-lr-nan", _opt, hyper(lr=float("nan")), ValueError, r"\blr\b.*finite"),
        (f"{_opt}-lr-inf", _opt, hyper(lr=float("inf")), ValueError, r"\blr\b.*finite"),
        (f"{_opt}-lr-bool", _opt, hyper(lr=True), TypeError, r"\blr\b.*real number"),
        (f"{_opt}-lr-numpy-bool", _opt, hyper(lr=np.bool_(True)), TypeError, r"\blr\b"),
        (f"{_opt}-lr-str", _opt, hyper(lr="0.1"), TypeError, r"\blr\b"),
        (f"{_opt}-lr-none", _opt, hyper(lr=None), TypeError, r"\blr\b"),
        (f"{_opt}-weight_decay-negative", _opt, hyper(weight_decay=-1e-4), ValueError,
         r"\bweight_decay\b"),
        (f"{_opt}-weight_decay-nan", _opt, hyper(weight_decay=float("nan")), ValueError,
         r"\bweight_decay\b"),
    ]
    # two in-place arrays sharing memory (the kernels would read what they just wrote)
    _first_state = STATE[_opt][0]
    OPT_CASES.append((f"{_opt}-state-is-p", _opt,
                      lambda arrays, h, s=_first_state: arrays.__setitem__(s, arrays["p"]),
                      ValueError, "share memory"))
    if len(STATE[_opt]) > 1:
        _a, _b = STATE[_opt][:2]
        OPT_CASES.append((f"{_opt}-{_a}-is-{_b}", _opt,
                          lambda arrays, h, a=_a, b=_b: arrays.__setitem__(b, arrays[a]),
                          ValueError, "share memory"))

OPT_CASES += [
    # SGD
    ("sgd-missing-buf", "sgd", replace("buf", lambda a: None), ValueError, r"\bbuf\b.*momentum"),
    ("sgd-momentum-negative", "sgd", hyper(momentum=-0.5), ValueError, r"\bmomentum\b"),
    ("sgd-momentum-bool", "sgd", hyper(momentum=True), TypeError, r"\bmomentum\b"),
    ("sgd-dampening-nan", "sgd", hyper(dampening=float("nan")), ValueError, r"\bdampening\b"),
    # an int too large for a float is not a finite number either: ValueError, as fastbp's API
    # promises for bad hyper-parameters (one case per optimizer family of checks)
    ("sgd-lr-huge-int", "sgd", hyper(lr=10**400), ValueError, r"\blr\b"),
    ("sgd-nesterov-no-momentum", "sgd", hyper(nesterov=True, momentum=0.0), ValueError,
     r"nesterov.*momentum"),
    ("sgd-nesterov-dampening", "sgd", hyper(nesterov=True, dampening=0.1), ValueError,
     r"nesterov.*dampening"),
    # AdaGrad
    ("adagrad-missing-sum_sq", "adagrad", replace("sum_sq", lambda a: None), ValueError,
     r"\bsum_sq\b"),
    ("adagrad-eps-negative", "adagrad", hyper(eps=-1e-10), ValueError, r"\beps\b"),
    ("adagrad-eps-nan", "adagrad", hyper(eps=float("nan")), ValueError, r"\beps\b"),
    # RMSprop
    ("rmsprop-missing-sq_avg", "rmsprop", replace("sq_avg", lambda a: None), ValueError,
     r"\bsq_avg\b"),
    ("rmsprop-missing-buf", "rmsprop", replace("buf", lambda a: None), ValueError,
     r"\bbuf\b.*momentum"),
    ("rmsprop-missing-grad_avg", "rmsprop", replace("grad_avg", lambda a: None), ValueError,
     r"\bgrad_avg\b.*centered"),
    ("rmsprop-alpha-above-1", "rmsprop", hyper(alpha=1.5), ValueError, r"\balpha\b"),
    ("rmsprop-alpha-negative", "rmsprop", hyper(alpha=-0.1), ValueError, r"\balpha\b"),
    ("rmsprop-alpha-nan", "rmsprop", hyper(alpha=float("nan")), ValueError, r"\balpha\b"),
    ("rmsprop-eps-negative", "rmsprop", hyper(eps=-1.0), ValueError, r"\beps\b"),
    ("rmsprop-momentum-negative", "rmsprop", hyper(momentum=-0.9), ValueError, r"\bmomentum\b"),
    ("rmsprop-alpha-bool", "rmsprop", hyper(alpha=False), TypeError, r"\balpha\b"),
    # Adam
    ("adam-missing-m", "adam", replace("m", lambda a: None), ValueError, r"\bm\b.*first-moment"),
    ("adam-missing-v", "adam", replace("v", lambda a: None), ValueError, r"\bv\b.*second-moment"),
    ("adam-missing-vmax", "adam", replace("vmax", lambda a: None), ValueError,
     r"\bvmax\b.*amsgrad"),
    ("adam-beta1-one", "adam", hyper(beta1=1.0), ValueError, r"\bbeta1\b"),
    ("adam-beta1-negative", "adam", hyper(beta1=-0.1), ValueError, r"\bbeta1\b"),
    ("adam-beta1-nan", "adam", hyper(beta1=float("nan")), ValueError, r"\bbeta1\b"),
    ("adam-beta1-huge-int", "adam", hyper(beta1=-(10**400)), ValueError, r"\bbeta1\b"),
    ("adam-beta2-one", "adam", hyper(beta2=1.0), ValueError, r"\bbeta2\b"),
    ("adam-beta2-above-one", "adam", hyper(beta2=1.5), ValueError, r"\bbeta2\b"),
    ("adam-beta2-negative", "adam", hyper(beta2=-1e-3), ValueError, r"\bbeta2\b"),
    ("adam-eps-negative", "adam", hyper(eps=-1e-8), ValueError, r"\beps\b"),
    ("adam-eps-bool", "adam", hyper(eps=np.bool_(False)), TypeError, r"\beps\b"),
    ("adam-step-zero", "adam", hyper(step=0), ValueError, r"\bstep\b.*>= 1"),
    ("adam-step-negative", "adam", hyper(step=-2), ValueError, r"\bstep\b"),
    ("adam-step-float", "adam", hyper(step=1.0), TypeError, r"\bstep\b.*int"),
    ("adam-step-bool", "adam", hyper(step=True), TypeError, r"\bstep\b"),
    ("adam-step-none", "adam", hyper(step=None), TypeError, r"\bstep\b"),
    ("adam-eps_mode-unknown", "adam", hyper(eps_mode="sklearn"), ValueError, r"\beps_mode\b"),
    ("adam-eps_mode-none", "adam", hyper(eps_mode=None), ValueError, r"\beps_mode\b"),
]


@MODULES
@pytest.mark.parametrize("opt, mutate, exc, match", [c[1:] for c in OPT_CASES],
                         ids=[c[0] for c in OPT_CASES])
def test_optimizer_input_checks_leave_state_untouched(module, opt, mutate, exc, match):
    arrays = arrays_for(opt)
    hyper_ = dict(HYPER[opt])
    mutate(arrays, hyper_)
    before = {k: np.array(a, copy=True) for k, a in arrays.items()
              if isinstance(a, np.ndarray)}
    with pytest.raises(exc, match=match):
        call_opt(module, opt, arrays, hyper_)
    for k, a in before.items():
        np.testing.assert_array_equal(arrays[k], a, err_msg=f"{k} changed by a failed call")


@MODULES
@pytest.mark.parametrize("opt", list(POSITIONAL))
def test_optimizer_valid_baseline_updates_p(module, opt):
    """The unmutated arrays and hyper-parameters of the cases above are valid."""
    arrays = arrays_for(opt)
    p0 = arrays["p"].copy()
    call_opt(module, opt, arrays, dict(HYPER[opt]))
    assert not np.array_equal(arrays["p"], p0)


@MODULES
def test_optional_buffers_may_be_none_when_unused(module):
    p, g = m(3), m(3, fill=0.1)
    module.sgd_step(p, g, None, lr=0.1)                           # no momentum: no buf
    module.rmsprop_step(p, g, m(3), None, None, lr=0.1)           # no momentum, not centered
    module.adam_step(p, g, m(3), m(3), None, step=1, lr=0.1)      # no amsgrad: no vmax
    assert np.isfinite(p).all() and (p < 0.5).all()


@MODULES
def test_read_only_inputs_need_not_be_contiguous(module):
    """g is only read: strided, Fortran-ordered or read-only g is accepted (copied)."""
    for layout in (strided, np.asfortranarray, readonly):
        p, ref_p = m(4, 3), m(4, 3)
        g = np.arange(12.0).reshape(4, 3) / 10
        module.sgd_step(p, layout(g), None, lr=0.5)
        module.sgd_step(ref_p, g, None, lr=0.5)
        np.testing.assert_array_equal(p, ref_p)


@MODULES
def test_zero_lr_and_eps_are_allowed(module):
    """lr = 0 and eps = 0 are inside PyTorch's ranges (>= 0): p does not move."""
    p = m(3)
    module.adam_step(p, m(3, fill=0.2), m(3, fill=0.0), m(3, fill=0.0), None, step=1, lr=0.0,
                     eps=0.0)
    np.testing.assert_array_equal(p, m(3))


# ---------------------------------------------------------------- g aliasing p or a state array

def _adagrad_g_is_sum_sq(mod):
    p, s = np.ones(3), np.array([0.5, 1.0, 2.0])
    mod.adagrad_step(p, s, s, lr=0.1)
    return p, s


def _rmsprop_g_is_sq_avg(mod):
    p, sq = np.ones(3), np.array([0.5, 1.0, 2.0])
    mod.rmsprop_step(p, sq, sq, None, None, lr=0.1)
    return p, sq


def _adamw_g_is_p(mod):
    p, m_, v = np.array([0.5, 1.0, 2.0]), np.zeros(3), np.zeros(3)
    mod.adam_step(p, p, m_, v, None, step=1, lr=0.1, weight_decay=0.5, decoupled=True)
    return p, m_, v


@pytest.mark.parametrize("case", [_adagrad_g_is_sum_sq, _rmsprop_g_is_sq_avg, _adamw_g_is_p],
                         ids=["adagrad-g-is-sum_sq", "rmsprop-g-is-sq_avg", "adamw-g-is-p"])
def test_gradient_aliasing_an_updated_array_is_handled_alike(case):
    """g is only read, but if it shares memory with an array the step writes, the result
    depends on the order of reads and writes: the compiled kernel reads g[i] before it
    writes anything, the reference's whole-array statements see the already-updated values.
    Whatever the rule (reject it like p/state sharing, or copy g), ops and reference must
    follow the same one: raise the same exception, or compute the same step."""
    outcomes = []
    for mod in (ops, reference):
        try:
            outcomes.append(case(mod))
        except (ValueError, TypeError) as exc:
            outcomes.append(type(exc))
    got, want = outcomes
    if isinstance(want, type) or isinstance(got, type):
        assert got is want, f"ops: {got}, reference: {want}"
    else:
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=tol(np.float64), err_msg="ops vs reference")
