"""Tests for fastbp.schedules: hand-computed sequences, state dicts, validation, PyTorch parity."""

from __future__ import annotations

import json
import math
from typing import Any, Callable

import pytest

from fastbp.schedules import CosineAnnealingLR, ExponentialLR, ReduceLROnPlateau, StepLR

from conftest import tol

# the schedules compute in Python floats: float64
CLOSED = tol("float64", "closed_rtol")
EXACT = tol("float64", "exact_rtol")


class StubOpt:
    """Minimal optimizer: just a settable ``lr``."""

    def __init__(self, lr: float = 1.0) -> None:
        self.lr = lr


def run(sched: Any, opt: StubOpt, n: int) -> list[float]:
    """lr at epochs 0..n (epoch 0 = after construction)."""
    out = [opt.lr]
    for _ in range(n):
        sched.step()
        out.append(opt.lr)
    return out


def run_plateau(sched: ReduceLROnPlateau, opt: StubOpt, metrics: list[float]) -> list[float]:
    """lr after each step(metric)."""
    out = []
    for m in metrics:
        sched.step(m)
        out.append(opt.lr)
    return out


# ---------------------------------------------------------------------------
# construction
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda o: StepLR(o, 3),
        lambda o: ExponentialLR(o, 0.9),
        lambda o: CosineAnnealingLR(o, 5, eta_min=0.03),
        lambda o: ReduceLROnPlateau(o),
    ],
)
def test_construction_records_base_and_leaves_lr(make: Callable[[StubOpt], Any]) -> None:
    opt = StubOpt(0.1)
    sched = make(opt)
    assert sched.base_lr == 0.1
    assert sched.last_epoch == 0
    assert opt.lr == 0.1  # exactly, even for the cosine with eta_min != 0
    assert sched.get_last_lr() == 0.1


# ---------------------------------------------------------------------------
# StepLR
# ---------------------------------------------------------------------------


def test_steplr_halving_sequence() -> None:
    opt = StubOpt(1.0)
    sched = StepLR(opt, step_size=2, gamma=0.5)
    assert run(sched, opt, 9) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.0625, 0.0625]
    assert sched.last_epoch == 9
    assert sched.get_last_lr() == 0.0625


def test_steplr_default_gamma() -> None:
    opt = StubOpt(0.1)
    sched = StepLR(opt, step_size=3)
    expected = [0.1] * 3 + [0.01] * 3 + [0.001] * 3 + [0.0001]
    assert run(sched, opt, 9) == pytest.approx(expected, rel=CLOSED)


def test_steplr_step_size_one_is_exponential() -> None:
    opt = StubOpt(2.0)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    assert run(sched, opt, 4) == [2.0, 1.0, 0.5, 0.25, 0.125]


# ---------------------------------------------------------------------------
# ExponentialLR
# ---------------------------------------------------------------------------


def test_exponentiallr_sequence() -> None:
    opt = StubOpt(1.0)
    sched = ExponentialLR(opt, gamma=0.5)
    assert run(sched, opt, 5) == [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125]


def test_exponentiallr_non_dyadic() -> None:
    opt = StubOpt(0.1)
    sched = ExponentialLR(opt, gamma=0.9)
    expected = [0.1, 0.09, 0.081, 0.0729, 0.06561, 0.059049]
    assert run(sched, opt, 5) == pytest.approx(expected, rel=CLOSED)


def test_exponentiallr_growth_overflow_is_clear() -> None:
    opt = StubOpt(1.0)
    sched = ExponentialLR(opt, gamma=1e100)
    sched.step()
    sched.step()
    sched.step()
    with pytest.raises(OverflowError, match="overflow"):
        sched.step()


# ---------------------------------------------------------------------------
# CosineAnnealingLR
# ---------------------------------------------------------------------------


def test_cosine_tmax4_over_10_epochs() -> None:
    opt = StubOpt(1.0)
    sched = CosineAnnealingLR(opt, T_max=4)
    c1 = math.cos(math.pi / 4)  # cos(pi*1/4) = sqrt(2)/2
    expected = [
        1.0,  # epoch 0: base
        (1 + c1) / 2,  # 1
        0.5,  # 2: cos(pi/2) = 0
        (1 - c1) / 2,  # 3
        0.0,  # 4 = T_max: eta_min
        (1 - c1) / 2,  # 5: past T_max the cosine rises again (period 2*T_max)
        0.5,  # 6
        (1 + c1) / 2,  # 7
        1.0,  # 8 = 2*T_max: back at base
        (1 + c1) / 2,  # 9
        0.5,  # 10
    ]
    got = run(sched, opt, 10)
    assert got == pytest.approx(expected, rel=tol("float64", "formula_rtol"),
                                abs=tol("float64", "formula_atol"))
    assert got[4] == 0.0  # exactly eta_min at T_max (cos(pi) == -1.0)


def test_cosine_with_eta_min() -> None:
    opt = StubOpt(0.5)
    sched = CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    expected = [0.1 + 0.4 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(11)]
    got = run(sched, opt, 10)
    assert got == pytest.approx(expected, rel=CLOSED)
    assert got[0] == 0.5
    assert got[4] == pytest.approx(0.1, rel=EXACT)
    assert min(got) == pytest.approx(0.1, rel=EXACT)


# ---------------------------------------------------------------------------
# ReduceLROnPlateau
# ---------------------------------------------------------------------------


def test_plateau_drop_epoch() -> None:
    opt = StubOpt(1.0)
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=2)
    metrics = [10.0, 9.0, 9.0, 9.0, 9.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    # epoch:    1     2    3    4    5    6    7    8    9    10
    # bad:      0     0    1    2    3→0  0    1    2    3→0  1
    got = run_plateau(sched, opt, metrics)
    assert got == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert sched.best == 8.0
    assert sched.num_bad_epochs == 1
    assert sched.last_epoch == 10
    assert sched.get_last_lr() == 0.25


def test_plateau_default_patience_is_10() -> None:
    opt = StubOpt(1.0)
    sched = ReduceLROnPlateau(opt)
    got = run_plateau(sched, opt, [1.0] * 13)
    # epoch 1 improves on +inf; epochs 2..11 are bad epochs 1..10; epoch 12 is bad epoch 11 > 10.
    assert got[:11] == [1.0] * 11
    assert got[11] == pytest.approx(0.1, rel=EXACT)
    assert got[12] == pytest.approx(0.1, rel=EXACT)


def test_plateau_small_relative_improvement_does_not_count() -> None:
    opt = StubOpt(1.0)
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0.1)
    # best = 1.0 -> must go below 1.0 * (1 - 0.1) = 0.9 to count as better.
    got = run_plateau(sched, opt, [1.0, 0.95, 0.91])
    assert got == [1.0, 1.0, 0.5]
    assert sched.best == 1.0


def test_plateau_same_sequence_counts_without_threshold() -> None:
    opt = StubOpt(1.0)
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0.0)
    assert run_plateau(sched, opt, [1.0, 0.95, 0.91]) == [1.0, 1.0, 1.0]
    assert sched.best == 0.91


def test_plateau_threshold_bar_is_strict() -> None:
    opt = StubOpt(1.0)
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=0.5)
    sched.step(1.0)
    sched.step(0.5)  # 0.5 < 1.0 * 0.5 is False: a bad epoch, reduce (patience 0)
    assert opt.lr == 0.5
    assert sched.best == 1.0
    sched.step(0.49)
    assert opt.lr == 0.5
    assert sched.best == 0.49


def test_plateau_negative_metric_follows_pytorch_relative_rule() -> None:
    # PyTorch applies best * (1 - threshold) even to a negative best, so the bar lies
    # above best: -0.95 counts as "better" than best = -1.0 with threshold 0.1.
    opt = StubOpt(1.0)
    sched = ReduceLROnPlateau(opt, patience=0, threshold=0.1)
    sched.step(-1.0)
    sched.step(-0.95)
    assert sched.best == -0.95
    assert opt.lr == 1.0


def test_plateau_min_lr_clamp() -> None:
    opt = StubOpt(1.0)
    sched = ReduceLROnPlateau(opt, factor=0.1, patience=0, min_lr=0.05)
    got = run_plateau(sched, opt, [1.0, 1.0, 1.0, 1.0, 1.0])
    assert got[0] == 1.0
    assert got[1] == pytest.approx(0.1, rel=EXACT)
    assert got[2:] == [0.05, 0.05, 0.05]  # max(0.01, 0.05), then old - new = 0 is not applied


def test_plateau_eps_rule() -> None:
    # old - new = 5e-9 <= eps = 1e-8: not applied, but num_bad_epochs is still reset.
    opt = StubOpt(1e-8)
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=0)
    assert run_plateau(sched, opt, [1.0, 1.0, 1.0]) == [1e-8, 1e-8, 1e-8]
    assert sched.num_bad_epochs == 0

    # old - new = 1.5e-8 > eps: applied; then 7.5e-9 <= eps: not applied.
    opt = StubOpt(3e-8)
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=0)
    got = run_plateau(sched, opt, [1.0, 1.0, 1.0])
    assert got == [3e-8, 1.5e-8, 1.5e-8]


def test_plateau_reduces_current_optimizer_lr() -> None:
    # Like PyTorch, the reduction reads the optimizer's current lr.
    opt = StubOpt(1.0)
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=0)
    sched.step(1.0)
    opt.lr = 0.3
    sched.step(1.0)
    assert opt.lr == 0.15
    assert sched.get_last_lr() == 0.15


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_plateau_non_finite_metric(bad: float) -> None:
    opt = StubOpt(1.0)
    sched = ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match="metric"):
        sched.step(bad)
    assert sched.last_epoch == 0  # rejected before any state change


@pytest.mark.parametrize("bad", ["1.0", True, None, [1.0]])
def test_plateau_non_number_metric(bad: Any) -> None:
    sched = ReduceLROnPlateau(StubOpt(1.0))
    with pytest.raises(TypeError, match="metric"):
        sched.step(bad)


def test_plateau_accepts_int_metric() -> None:
    opt = StubOpt(1.0)
    sched = ReduceLROnPlateau(opt, patience=0)
    sched.step(3)
    assert sched.best == 3.0


# ---------------------------------------------------------------------------
# state dicts
# ---------------------------------------------------------------------------

MAKERS: dict[str, Callable[[StubOpt], Any]] = {
    "StepLR": lambda o: StepLR(o, step_size=3, gamma=0.3),
    "ExponentialLR": lambda o: ExponentialLR(o, gamma=0.8),
    "CosineAnnealingLR": lambda o: CosineAnnealingLR(o, T_max=7, eta_min=0.01),
    "ReduceLROnPlateau": lambda o: ReduceLROnPlateau(o, factor=0.5, patience=2, threshold=0.01, min_lr=1e-3),
}

# A noisy metric with plateaus, for the plateau schedule.
METRICS = [5.0, 4.0, 4.0, 3.99, 4.1, 3.0, 3.0, 3.0, 3.0, 2.5, 2.5, 2.6, 2.7, 2.8, 2.9, 1.0, 1.0, 1.0, 1.0, 1.0]


def advance(sched: Any, epoch: int) -> None:
    if isinstance(sched, ReduceLROnPlateau):
        sched.step(METRICS[epoch])
    else:
        sched.step()


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_round_trip_continues_identically(name: str) -> None:
    make = MAKERS[name]
    opt = StubOpt(0.2)
    sched = make(opt)
    for e in range(8):
        advance(sched, e)
    state = sched.state_dict()
    assert state["class"] == name
    text = json.dumps(state, allow_nan=False)  # plain JSON: no NaN/Infinity

    # A fresh schedule on a fresh optimizer (with a different lr and hyper-parameters).
    opt2 = StubOpt(0.7)
    sched2 = make(opt2)
    sched2.load_state_dict(json.loads(text))
    assert opt2.lr == opt.lr
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert sched2.last_epoch == sched.last_epoch == 8
    assert sched2.base_lr == 0.2
    assert sched2.state_dict() == state

    for e in range(8, 20):
        advance(sched, e)
        advance(sched2, e)
        assert opt2.lr == opt.lr
    assert sched2.state_dict() == sched.state_dict()


def test_plateau_initial_state_is_strict_json() -> None:
    sched = ReduceLROnPlateau(StubOpt(1.0))
    state = sched.state_dict()
    assert state["best"] == "inf"
    json.dumps(state, allow_nan=False)
    sched2 = ReduceLROnPlateau(StubOpt(1.0))
    sched2.load_state_dict(json.loads(json.dumps(state)))
    assert sched2.best == math.inf


def test_state_dict_values_are_plain() -> None:
    for make in MAKERS.values():
        state = make(StubOpt(0.1)).state_dict()
        for key, value in state.items():
            assert type(value) in (int, float, str), (key, value)


def test_load_state_dict_restores_hyperparameters() -> None:
    src = StepLR(StubOpt(1.0), step_size=2, gamma=0.5)
    dst = StepLR(StubOpt(1.0), step_size=5, gamma=0.9)
    dst.load_state_dict(src.state_dict())
    assert (dst.step_size, dst.gamma) == (2, 0.5)


def test_load_state_dict_rejects_other_class() -> None:
    state = StepLR(StubOpt(1.0), 2).state_dict()
    with pytest.raises(ValueError, match="StepLR"):
        ExponentialLR(StubOpt(1.0), 0.5).load_state_dict(state)


@pytest.mark.parametrize("name", list(MAKERS))
def test_load_state_dict_rejects_missing_keys(name: str) -> None:
    state = MAKERS[name](StubOpt(1.0)).state_dict()
    for key in state:
        if key == "class":
            continue
        broken = {k: v for k, v in state.items() if k != key}
        with pytest.raises(ValueError, match=key):
            MAKERS[name](StubOpt(1.0)).load_state_dict(broken)


def test_load_state_dict_rejects_unknown_key_and_non_dict() -> None:
    sched = StepLR(StubOpt(1.0), 2)
    state = sched.state_dict()
    with pytest.raises(ValueError, match="unknown"):
        sched.load_state_dict({**state, "extra": 1})
    with pytest.raises(TypeError, match="dict"):
        sched.load_state_dict([("class", "StepLR")])  # type: ignore[arg-type]


def test_load_state_dict_invalid_value_leaves_schedule_untouched() -> None:
    opt = StubOpt(1.0)
    sched = StepLR(opt, step_size=2, gamma=0.5)
    sched.step()
    before = sched.state_dict()
    bad = {**StepLR(StubOpt(3.0), 4).state_dict(), "gamma": -1.0}
    with pytest.raises(ValueError, match="gamma"):
        sched.load_state_dict(bad)
    assert sched.state_dict() == before
    assert opt.lr == 1.0


# ---------------------------------------------------------------------------
# argument validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "exc", "name"),
    [
        (lambda o: StepLR(o, 0), ValueError, "step_size"),
        (lambda o: StepLR(o, -3), ValueError, "step_size"),
        (lambda o: StepLR(o, 2.0), TypeError, "step_size"),
        (lambda o: StepLR(o, True), TypeError, "step_size"),
        (lambda o: StepLR(o, 2, gamma=0.0), ValueError, "gamma"),
        (lambda o: StepLR(o, 2, gamma=-0.5), ValueError, "gamma"),
        (lambda o: StepLR(o, 2, gamma=math.inf), ValueError, "gamma"),
        (lambda o: StepLR(o, 2, gamma=math.nan), ValueError, "gamma"),
        (lambda o: StepLR(o, 2, gamma="0.1"), TypeError, "gamma"),
        (lambda o: ExponentialLR(o, 0.0), ValueError, "gamma"),
        (lambda o: ExponentialLR(o, math.nan), ValueError, "gamma"),
        (lambda o: ExponentialLR(o, False), TypeError, "gamma"),
        (lambda o: CosineAnnealingLR(o, 0), ValueError, "T_max"),
        (lambda o: CosineAnnealingLR(o, 10.0), TypeError, "T_max"),
        (lambda o: CosineAnnealingLR(o, None), TypeError, "T_max"),
        (lambda o: CosineAnnealingLR(o, 10, eta_min=-1e-3), ValueError, "eta_min"),
        (lambda o: CosineAnnealingLR(o, 10, eta_min=math.inf), ValueError, "eta_min"),
        (lambda o: CosineAnnealingLR(o, 10, eta_min="0"), TypeError, "eta_min"),
        (lambda o: ReduceLROnPlateau(o, factor=1.0), ValueError, "factor"),
        (lambda o: ReduceLROnPlateau(o, factor=0.0), ValueError, "factor"),
        (lambda o: ReduceLROnPlateau(o, factor=1.5), ValueError, "factor"),
        (lambda o: ReduceLROnPlateau(o, factor=math.nan), ValueError, "factor"),
        (lambda o: ReduceLROnPlateau(o, factor=True), TypeError, "factor"),
        (lambda o: ReduceLROnPlateau(o, patience=-1), ValueError, "patience"),
        (lambda o: ReduceLROnPlateau(o, patience=2.5), TypeError, "patience"),
        (lambda o: ReduceLROnPlateau(o, threshold=-1e-4), ValueError, "threshold"),
        (lambda o: ReduceLROnPlateau(o, threshold=math.nan), ValueError, "threshold"),
        (lambda o: ReduceLROnPlateau(o, min_lr=-1.0), ValueError, "min_lr"),
        (lambda o: ReduceLROnPlateau(o, min_lr=math.inf), ValueError, "min_lr"),
        (lambda o: ReduceLROnPlateau(o, min_lr=[0.0]), TypeError, "min_lr"),
    ],
)
def test_argument_validation(make: Callable[[StubOpt], Any], exc: type[Exception], name: str) -> None:
    with pytest.raises(exc, match=name):
        make(StubOpt(1.0))


def test_optimizer_without_lr() -> None:
    for make in MAKERS.values():
        with pytest.raises(TypeError, match="lr"):
            make(object())  # type: ignore[arg-type]


def test_edge_values_accepted() -> None:
    StepLR(StubOpt(), 1, gamma=2.0)  # growth is allowed, as in PyTorch
    CosineAnnealingLR(StubOpt(), 1, eta_min=0.0)
    ReduceLROnPlateau(StubOpt(), factor=1e-6, patience=0, threshold=0.0, min_lr=0.0)


# ---------------------------------------------------------------------------
# PyTorch parity (only if torch happens to be installed)
# ---------------------------------------------------------------------------


def test_matches_torch_30_epochs() -> None:
    torch = pytest.importorskip("torch")
    from torch.optim import lr_scheduler as tls

    metrics = [1.0 / (1 + e) if e < 8 else (0.1 if e % 7 else 0.05) for e in range(30)]
    metrics[20:] = [0.04 - 1e-7 * e for e in range(10)]  # improvements below the threshold

    cases: list[tuple[Callable[[StubOpt], Any], Callable[[Any], Any], float]] = [
        (lambda o: StepLR(o, 4, 0.5), lambda t: tls.StepLR(t, 4, 0.5), 0.1),
        (lambda o: StepLR(o, 3), lambda t: tls.StepLR(t, 3), 0.1),
        (lambda o: ExponentialLR(o, 0.9), lambda t: tls.ExponentialLR(t, 0.9), 0.05),
        (lambda o: CosineAnnealingLR(o, 10), lambda t: tls.CosineAnnealingLR(t, 10), 0.1),
        (
            lambda o: CosineAnnealingLR(o, 7, eta_min=0.01),
            lambda t: tls.CosineAnnealingLR(t, 7, eta_min=0.01),
            0.1,
        ),
        (
            lambda o: ReduceLROnPlateau(o, factor=0.5, patience=2, min_lr=0.004),
            lambda t: tls.ReduceLROnPlateau(t, factor=0.5, patience=2, min_lr=0.004),
            0.1,
        ),
        (lambda o: ReduceLROnPlateau(o), lambda t: tls.ReduceLROnPlateau(t), 0.1),
    ]
    for make, make_torch, lr in cases:
        opt = StubOpt(lr)
        ours = make(opt)
        param = torch.nn.Parameter(torch.zeros(1))
        topt = torch.optim.SGD([param], lr=lr)
        theirs = make_torch(topt)
        assert opt.lr == topt.param_groups[0]["lr"]
        for e in range(30):
            topt.step()
            if isinstance(ours, ReduceLROnPlateau):
                ours.step(metrics[e])
                theirs.step(metrics[e])
            else:
                ours.step()
                theirs.step()
            # PyTorch steps recursively, we use its closed forms: equal up to rounding.
            assert math.isclose(opt.lr, topt.param_groups[0]["lr"], rel_tol=1e-10, abs_tol=1e-15), (
                type(ours).__name__,
                e,
            )
            assert math.isclose(ours.get_last_lr(), theirs.get_last_lr()[0], rel_tol=1e-10, abs_tol=1e-15)
