"""Tests for Sequential.fit: convergence, determinism, History, optimizers and
schedules, early stopping, callbacks, progress output, validation and divergence
(the public ``fit`` API)."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

import fastbp
from fastbp.datasets import make_spirals
from fastbp.schedules import ExponentialLR, ReduceLROnPlateau, StepLR

from conftest import DTYPES, assert_same_params, clone, param_copies, tol, tols

EXACT, CLOSED, PATH = (tol(np.float64, k) for k in ("exact_rtol", "closed_rtol", "path_rtol"))


def regression_data(n=200, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X @ np.array([1.5, -2.0, 0.5]) + 0.3 + 0.05 * rng.normal(size=n)) * scale
    return X, y


@pytest.fixture
def reg():
    return regression_data()


def tanh_net(dtype="float64", seed=0, sizes=(3, 8, 1)):
    return fastbp.MLP(sizes, "tanh", "mse", dtype=dtype, seed=seed)


# ---------------------------------------------------------------- convergence

@pytest.mark.parametrize("batch_size, epochs", [(None, 30), (1, 5), (32, 30)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_reduces_loss(reg, batch_size, epochs, dtype):
    X, y = reg
    model = tanh_net(dtype)
    before = model.loss(X, y)
    history = model.fit(X, y, epochs=epochs, batch_size=batch_size, lr=0.05, seed=0)
    after = model.loss(X, y)
    assert after < 0.1 * before
    assert history.loss[-1] < 0.2 * history.loss[0]
    assert all(p.dtype == np.dtype(dtype) for p in model.parameters())


def test_fit_spirals_classification():
    X, y = make_spirals(300, seed=0)
    model = fastbp.MLP((2, 32, 32, 3), "relu", "cross_entropy", seed=0)
    before = model.loss(X, y)
    model.fit(X, y, epochs=40, batch_size=32, lr=0.01, seed=0)
    assert model.loss(X, y) < 0.5 * before
    assert np.mean(model.predict(X) == y) > 0.8


def test_batch_size_larger_than_n(reg):
    X, y = reg
    X, y = X[:20], y[:20]
    a, b = tanh_net(), tanh_net()
    ha = a.fit(X, y, epochs=5, batch_size=1000, lr=0.05, optimizer="sgd", shuffle=False)
    hb = b.fit(X, y, epochs=5, batch_size=None, lr=0.05, optimizer="sgd", shuffle=False)
    assert ha.loss == hb.loss
    assert_same_params(param_copies(a), param_copies(b))
    assert ha.loss[-1] < ha.loss[0]


def test_fit_returns_history_and_accepts_lists(reg):
    X, y = reg
    model = tanh_net()
    history = model.fit(X[:30].tolist(), y[:30].tolist(), epochs=2)
    assert isinstance(history, fastbp.History)
    assert len(history.loss) == 2


# ---------------------------------------------------------------- determinism

def test_same_seed_bit_identical(reg):
    X, y = reg
    runs = []
    for _ in range(2):
        model = tanh_net(seed=1)
        h = model.fit(X, y, epochs=4, batch_size=16, lr=0.01, seed=42)
        runs.append((param_copies(model), h))
    assert_same_params(runs[0][0], runs[1][0])
    assert runs[0][1].loss == runs[1][1].loss
    assert runs[0][1].lr == runs[1][1].lr


def test_same_seed_bit_identical_generator_seed(reg):
    X, y = reg
    a, b = tanh_net(seed=1), tanh_net(seed=1)
    a.fit(X, y, epochs=2, batch_size=16, seed=np.random.default_rng(7))
    b.fit(X, y, epochs=2, batch_size=16, seed=np.random.default_rng(7))
    assert_same_params(param_copies(a), param_copies(b))


def test_different_seeds_differ(reg):
    X, y = reg
    a, b = tanh_net(seed=1), tanh_net(seed=1)
    ha = a.fit(X, y, epochs=3, batch_size=16, seed=1)
    hb = b.fit(X, y, epochs=3, batch_size=16, seed=2)
    assert not np.array_equal(a.parameters()[0], b.parameters()[0])
    assert ha.loss != hb.loss


def test_shuffle_false_deterministic_without_seed(reg):
    X, y = reg
    a, b = tanh_net(seed=1), tanh_net(seed=1)
    ha = a.fit(X, y, epochs=3, batch_size=16, shuffle=False)
    hb = b.fit(X, y, epochs=3, batch_size=16, shuffle=False)
    assert_same_params(param_copies(a), param_copies(b))
    assert ha.loss == hb.loss
    # and it is not what a shuffled run gives
    c = tanh_net(seed=1)
    c.fit(X, y, epochs=3, batch_size=16, shuffle=True, seed=0)
    assert not np.array_equal(c.parameters()[0], a.parameters()[0])


# ---------------------------------------------------------------- History

def test_history_lengths(reg):
    X, y = reg
    model = tanh_net()
    h = model.fit(X, y, epochs=5, batch_size=50)
    assert len(h.loss) == len(h.lr) == 5
    assert h.val_loss == []
    h2 = model.fit(X, y, epochs=4, batch_size=50, validation_data=(X[:20], y[:20]))
    assert len(h2.loss) == len(h2.lr) == len(h2.val_loss) == 4
    assert all(isinstance(v, float) and math.isfinite(v) for v in h2.loss + h2.val_loss + h2.lr)


def test_val_loss_is_loss_after_epoch(reg):
    X, y = reg
    model = tanh_net()
    Xv, yv = X[:20] + 0.1, y[:20]
    seen = []
    h = model.fit(X, y, epochs=3, batch_size=50, validation_data=(Xv, yv),
                  callbacks=[lambda e, logs: seen.append(model.loss(Xv, yv))])
    assert h.val_loss == pytest.approx(seen, rel=PATH)


@pytest.mark.parametrize("batch_size", [4, 3, None])
def test_history_loss_is_weighted_mean_of_step_losses(batch_size):
    X, y = regression_data(n=10, seed=3)
    model = tanh_net(seed=2)
    twin = clone(model)
    h = model.fit(X, y, epochs=3, batch_size=batch_size, optimizer="sgd", lr=0.05, shuffle=False)
    opt = fastbp.SGD(twin.parameters(), lr=0.05)
    bs = 10 if batch_size is None else batch_size
    for e in range(3):
        losses, sizes = [], []
        for s in range(0, 10, bs):
            losses.append(twin.train_step(X[s:s + bs], y[s:s + bs], opt))
            sizes.append(len(X[s:s + bs]))
        expected = sum(l * n for l, n in zip(losses, sizes)) / 10
        assert h.loss[e] == pytest.approx(expected, rel=PATH)
        if len(set(sizes)) > 1:      # the last batch is smaller: weighting matters
            assert abs(expected - np.mean(losses)) > 1e-6 * expected
    for a, b in zip(model.parameters(), twin.parameters()):
        np.testing.assert_allclose(a, b, **tols(np.float64, "path"))


# ---------------------------------------------------------------- optimizers

@pytest.mark.parametrize("name, default", [("sgd", 0.01), ("adagrad", 0.01), ("rmsprop", 0.01),
                                           ("adam", 1e-3), ("adamw", 1e-3)])
def test_optimizer_string_default_lr(reg, name, default):
    X, y = reg
    model = tanh_net()
    h = model.fit(X[:40], y[:40], epochs=2, optimizer=name, lr=None)
    assert h.lr == [default, default]
    h = model.fit(X[:40], y[:40], epochs=2, optimizer=name, lr=0.02)
    assert h.lr == [0.02, 0.02]


def test_optimizer_string_matches_instance(reg):
    X, y = reg
    a, b = tanh_net(), tanh_net()
    a.fit(X, y, epochs=2, batch_size=25, optimizer="rmsprop", lr=0.01, shuffle=False)
    b.fit(X, y, epochs=2, batch_size=25, optimizer=fastbp.RMSprop(b.parameters(), lr=0.01),
          shuffle=False)
    assert_same_params(param_copies(a), param_copies(b))


def test_unknown_optimizer_string(reg):
    X, y = reg
    with pytest.raises(ValueError, match="optimizer"):
        tanh_net().fit(X, y, optimizer="newton")


def test_optimizer_instance_keeps_state_across_fits(reg):
    X, y = reg
    a, b = tanh_net(), tanh_net()
    opt_a = fastbp.Adam(a.parameters(), lr=0.01)
    ha1 = a.fit(X, y, epochs=2, batch_size=50, optimizer=opt_a, shuffle=False)
    assert opt_a.state_dict()["step"] == 8
    ha2 = a.fit(X, y, epochs=2, batch_size=50, optimizer=opt_a, shuffle=False)
    assert opt_a.state_dict()["step"] == 16
    hb = b.fit(X, y, epochs=4, batch_size=50, optimizer=fastbp.Adam(b.parameters(), lr=0.01),
               shuffle=False)
    assert_same_params(param_copies(a), param_copies(b))     # Adam's moments carried over
    assert ha1.loss + ha2.loss == hb.loss
    assert ha1.lr == [0.01, 0.01]
    # a fresh Adam for the second half would give something else
    c = tanh_net()
    c.fit(X, y, epochs=2, batch_size=50, optimizer=fastbp.Adam(c.parameters(), lr=0.01),
          shuffle=False)
    c.fit(X, y, epochs=2, batch_size=50, optimizer=fastbp.Adam(c.parameters(), lr=0.01),
          shuffle=False)
    assert not np.array_equal(c.parameters()[0], a.parameters()[0])


def test_optimizer_of_another_model_raises(reg):
    X, y = reg
    model, other = tanh_net(), tanh_net()
    before = param_copies(model)
    with pytest.raises(ValueError, match="optimizer"):
        model.fit(X, y, epochs=1, optimizer=fastbp.SGD(other.parameters()))
    assert_same_params(before, param_copies(model))


# ---------------------------------------------------------------- schedules

def test_step_lr_factory(reg):
    X, y = reg
    model = tanh_net()
    made = []

    def factory(opt):
        sched = StepLR(opt, step_size=3, gamma=0.5)
        made.append((opt, sched))
        return sched

    h = model.fit(X, y, epochs=8, batch_size=50, optimizer="sgd", lr=0.1, scheduler=factory)
    assert len(made) == 1
    assert isinstance(made[0][0], fastbp.SGD)
    assert h.lr == pytest.approx([0.1 * 0.5 ** (e // 3) for e in range(8)], rel=EXACT)
    assert made[0][0].lr == pytest.approx(0.1 * 0.5 ** (8 // 3), rel=EXACT)


def test_schedule_instance_bound_to_instance(reg):
    X, y = reg
    model = tanh_net()
    opt = fastbp.SGD(model.parameters(), lr=0.1)
    h = model.fit(X, y, epochs=5, batch_size=50, optimizer=opt, scheduler=ExponentialLR(opt, 0.9))
    assert h.lr == pytest.approx([0.1 * 0.9 ** e for e in range(5)], rel=CLOSED)


def test_schedule_changes_training(reg):
    X, y = reg
    a, b = tanh_net(), tanh_net()
    a.fit(X, y, epochs=3, batch_size=50, optimizer="sgd", lr=0.1, shuffle=False)
    b.fit(X, y, epochs=3, batch_size=50, optimizer="sgd", lr=0.1, shuffle=False,
          scheduler=lambda o: StepLR(o, 1, 0.1))
    assert not np.array_equal(a.parameters()[0], b.parameters()[0])


def anti_validation(X, y):
    """Validation targets that get worse as the training targets are fitted."""
    return X, -y


def test_reduce_on_plateau_uses_validation_loss(reg):
    X, y = reg
    linear = dict(sizes=(3, 1))
    # Without validation data the (improving) training loss is watched: no drop.
    a = tanh_net(**linear)
    ha = a.fit(X, y, epochs=8, batch_size=None, optimizer="sgd", lr=0.05,
               scheduler=lambda o: ReduceLROnPlateau(o, factor=0.5, patience=1))
    assert all(b < a_ for a_, b in zip(ha.loss, ha.loss[1:]))
    assert ha.lr == [0.05] * 8
    # With validation data whose loss only grows, the lr drops.
    b = tanh_net(**linear)
    hb = b.fit(X, y, epochs=8, batch_size=None, optimizer="sgd", lr=0.05,
               validation_data=anti_validation(X, y),
               scheduler=lambda o: ReduceLROnPlateau(o, factor=0.5, patience=1))
    assert all(v2 > v1 for v1, v2 in zip(hb.val_loss, hb.val_loss[1:]))
    assert hb.loss[-1] < hb.loss[0]
    # best at epoch 0; epochs 1, 2 are bad -> reduced after epoch 2, then every 2 epochs
    assert hb.lr == pytest.approx([0.05, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.00625],
                                  rel=EXACT)


def test_scheduler_bound_to_another_optimizer_raises(reg):
    X, y = reg
    model, other = tanh_net(), tanh_net()
    foreign = fastbp.SGD(other.parameters(), lr=0.1)
    before = param_copies(model)
    with pytest.raises(ValueError, match="scheduler"):
        model.fit(X, y, epochs=2, optimizer="sgd", scheduler=StepLR(foreign, 1))
    own = fastbp.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="scheduler"):
        model.fit(X, y, epochs=2, optimizer=own, scheduler=lambda o: StepLR(foreign, 1))
    assert_same_params(before, param_copies(model))
    assert foreign.lr == 0.1


def test_scheduler_wrong_kind(reg):
    X, y = reg
    with pytest.raises(TypeError, match="scheduler"):
        tanh_net().fit(X, y, epochs=1, scheduler=3)
    with pytest.raises(TypeError, match="scheduler"):
        tanh_net().fit(X, y, epochs=1, scheduler=lambda o: None)


# ---------------------------------------------------------------- early stopping

def test_early_stopping_restores_best_parameters(reg):
    X, y = reg
    model = tanh_net(sizes=(3, 1))
    Xv, yv = X, 0.5 * y            # improves while the fit passes y/2, then gets worse
    recorded = []
    h = model.fit(X, y, epochs=100, batch_size=None, optimizer="sgd", lr=0.05,
                  validation_data=(Xv, yv), early_stopping=3,
                  callbacks=[lambda e, logs: recorded.append(param_copies(model))])
    best = int(np.argmin(h.val_loss))
    assert best > 2                                   # a non-trivial best epoch
    assert h.best_epoch == best
    assert len(h.loss) == best + 3 + 1                # stopped after 3 bad epochs
    assert len(recorded) == len(h.loss)
    assert_same_params(param_copies(model), recorded[best])
    assert not np.array_equal(recorded[-1][0], recorded[best][0])
    assert model.loss(Xv, yv) == pytest.approx(h.val_loss[best], rel=PATH)


def test_early_stopping_on_training_loss_without_validation(reg):
    X, y = reg
    model = tanh_net()
    before = param_copies(model)
    h = model.fit(X, y, epochs=50, batch_size=None, optimizer="sgd", lr=0.0, early_stopping=2)
    assert len(h.loss) == 3                           # epoch 0 best, 1 and 2 no better
    assert h.best_epoch == 0
    assert_same_params(before, param_copies(model))


def test_early_stopping_not_triggered(reg):
    X, y = reg
    model = tanh_net()
    h = model.fit(X, y, epochs=6, batch_size=None, optimizer="sgd", lr=0.05, early_stopping=2)
    assert len(h.loss) == 6
    assert h.best_epoch == 5


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                      (True, TypeError)])
def test_early_stopping_invalid(reg, bad, exc):
    X, y = reg
    with pytest.raises(exc, match="early_stopping"):
        tanh_net().fit(X, y, epochs=2, early_stopping=bad)


# ---------------------------------------------------------------- callbacks

def test_callbacks_receive_epoch_and_logs(reg):
    X, y = reg
    model = tanh_net()
    calls = []
    h = model.fit(X, y, epochs=3, batch_size=50, validation_data=(X[:30], y[:30]),
                  callbacks=[lambda e, logs: calls.append((e, logs))])
    assert [e for e, _ in calls] == [0, 1, 2]
    for e, logs in calls:
        assert isinstance(logs, dict)
        assert {"loss", "lr", "val_loss"} <= set(logs)
        assert logs["loss"] == h.loss[e]
        assert logs["lr"] == h.lr[e]
        assert logs["val_loss"] == h.val_loss[e]
    calls.clear()
    model.fit(X, y, epochs=2, batch_size=50, callbacks=[lambda e, logs: calls.append(logs)])
    assert all({"loss", "lr"} <= set(logs) and "val_loss" not in logs for logs in calls)


def test_callback_returning_true_stops(reg):
    X, y = reg
    model = tanh_net()
    seen = []

    def stop_at_2(epoch, logs):
        seen.append(epoch)
        return epoch == 2

    other = []
    h = model.fit(X, y, epochs=10, batch_size=50, callbacks=[stop_at_2, lambda e, l: other.append(e)])
    assert len(h.loss) == 3
    assert seen == [0, 1, 2]
    assert other == [0, 1, 2]        # every callback still sees the stopping epoch


def test_callback_returning_none_or_false_continues(reg):
    X, y = reg
    h = tanh_net().fit(X, y, epochs=4, batch_size=50,
                       callbacks=[lambda e, l: None, lambda e, l: False])
    assert len(h.loss) == 4


def test_callbacks_must_be_callable(reg):
    X, y = reg
    with pytest.raises(TypeError, match="callbacks"):
        tanh_net().fit(X, y, epochs=1, callbacks=[3])


# ---------------------------------------------------------------- progress

def test_progress_true_writes_stderr(reg, capsys):
    X, y = reg
    tanh_net().fit(X, y, epochs=3, batch_size=50, progress=True)
    captured = capsys.readouterr()
    assert captured.err.strip() != ""
    assert captured.out == ""


@pytest.mark.parametrize("progress", [False, None])
def test_progress_false_or_non_terminal_writes_nothing(reg, capfd, progress):
    X, y = reg
    tanh_net().fit(X, y, epochs=3, batch_size=50, progress=progress)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


# ---------------------------------------------------------------- input validation

@pytest.mark.parametrize("where", ["X", "y"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_training_data(reg, where, value):
    X, y = (a.copy() for a in reg)
    (X if where == "X" else y)[7] = value
    model = tanh_net()
    before = param_copies(model)
    with pytest.raises(ValueError, match=where):
        model.fit(X, y, epochs=1)
    assert_same_params(before, param_copies(model))


@pytest.mark.parametrize("where", [0, 1])
def test_non_finite_validation_data(reg, where):
    X, y = reg
    val = [X[:10].copy(), y[:10].copy()]
    val[where][3] = np.nan
    with pytest.raises(ValueError, match="validation"):
        tanh_net().fit(X, y, epochs=1, validation_data=tuple(val))


def test_validation_data_must_be_a_pair(reg):
    X, y = reg
    with pytest.raises(TypeError, match="validation_data"):
        tanh_net().fit(X, y, epochs=1, validation_data=(X,))


def test_validation_data_wrong_shape(reg):
    X, y = reg
    with pytest.raises(ValueError):
        tanh_net().fit(X, y, epochs=1, validation_data=(X[:, :2], y))


@pytest.mark.parametrize("name", ["epochs", "batch_size"])
@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError), (2.5, TypeError),
                                      (True, TypeError), ("3", TypeError)])
def test_invalid_epochs_and_batch_size(reg, name, bad, exc):
    X, y = reg
    model = tanh_net()
    before = param_copies(model)
    with pytest.raises(exc, match=name):
        model.fit(X, y, **{name: bad})
    assert_same_params(before, param_copies(model))


def test_mismatched_X_y(reg):
    X, y = reg
    with pytest.raises(ValueError, match="y"):
        tanh_net().fit(X, y[:-1], epochs=1)


# ---------------------------------------------------------------- divergence
# fit restores the parameters (and optimizer state) of the start of the diverged epoch
# and raises TrainingDiverged, a ValueError naming that epoch.
def _finite(a):
    return bool(np.all(np.isfinite(a)))


def _diverging_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    y = (rng.normal(size=64) * 1e6).astype(np.float32)
    return X, y


def _fit_until_divergence(model, X, y, opt, **kwargs):
    """Runs fit; returns (the exception, {epoch: parameters at the end of that epoch})."""
    snapshots = {-1: param_copies(model)}
    extra = kwargs.pop("callbacks", ())

    def record(epoch, logs):
        snapshots[epoch] = param_copies(model)

    with pytest.raises(fastbp.TrainingDiverged) as info:
        model.fit(X, y, epochs=30, optimizer=opt, callbacks=[record, *extra], **kwargs)
    return info.value, snapshots


def _check_restored(model, exc, snapshots):
    assert isinstance(exc, ValueError)
    match = re.search(r"epoch (\d+)", str(exc))
    assert match, f"the message must name the epoch: {exc}"
    epoch = int(match.group(1))
    assert epoch == max(snapshots) + 1, (
        f"message names epoch {epoch}, but the last completed epoch was {max(snapshots)}")
    start = snapshots[epoch - 1]            # end of the previous epoch = start of this one
    params = model.parameters()
    assert all(_finite(p) for p in params), (
        f"parameters after TrainingDiverged in epoch {epoch} are not finite")
    assert all(np.array_equal(p, s) for p, s in zip(params, start)), (
        "parameters must equal those at the start of the diverged epoch")


@pytest.mark.parametrize("batch_size", [
    16,    # diverges inside the first epoch
    32,    # the last update of an epoch makes the parameters non-finite
    None,  # full batch: every epoch is one step
])
def test_fit_diverges_with_huge_learning_rate(batch_size):
    X, y = _diverging_problem()
    model = fastbp.MLP((4, 8, 1), seed=0)
    opt = fastbp.SGD(model.parameters(), lr=1e6)
    exc, snapshots = _fit_until_divergence(model, X, y, opt, batch_size=batch_size,
                                           shuffle=False)
    _check_restored(model, exc, snapshots)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_fit_diverges_in_a_later_epoch(momentum):
    """The learning rate is raised to 1e6 after epoch 2, so epoch 3 diverges."""
    X, y = _diverging_problem()
    model = fastbp.MLP((4, 8, 1), seed=0)
    opt = fastbp.SGD(model.parameters(), lr=1e-6, momentum=momentum)

    def boost(epoch, logs):
        if epoch == 2:
            opt.lr = 1e6

    exc, snapshots = _fit_until_divergence(model, X, y, opt, batch_size=16, seed=0,
                                           callbacks=[boost])
    assert max(snapshots) >= 2
    _check_restored(model, exc, snapshots)
    assert all(not np.array_equal(a, b) for a, b in zip(snapshots[-1], snapshots[2])), \
        "the first epochs trained"


def test_fit_can_resume_after_divergence_with_a_lower_learning_rate():
    X, y = _diverging_problem()
    model = fastbp.MLP((4, 8, 1), seed=0)
    opt = fastbp.SGD(model.parameters(), lr=1e6, momentum=0.9)
    _fit_until_divergence(model, X, y, opt, batch_size=16, shuffle=False)
    opt.lr = 1e-9
    history = model.fit(X, y / 1e6, epochs=2, batch_size=16, optimizer=opt)
    assert all(np.isfinite(history.loss))


# ---------------------------------------------------------------- non-finite data
def _nonfinite_cases():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    y = rng.normal(size=20)

    def with_value(a, idx, v):
        a = a.copy()
        a[idx] = v
        return a

    return [
        ("X-nan", with_value(X, (3, 1), np.nan), y, None, r"\bX\b"),
        ("X-inf", with_value(X, (0, 0), np.inf), y, None, r"\bX\b"),
        ("y-nan", X, with_value(y, 7, np.nan), None, r"\by\b"),
        ("y-neginf", X, with_value(y, 19, -np.inf), None, r"\by\b"),
        ("val-X-nan", X, y, (with_value(X[:5], (2, 2), np.nan), y[:5]), r"validation_data"),
        ("val-y-inf", X, y, (X[:5], with_value(y[:5], 0, np.inf)), r"validation_data"),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", _nonfinite_cases(), ids=lambda c: c[0])
def test_nonfinite_data_is_refused_before_training(case, dtype):
    _, X, y, val, pattern = case
    model = fastbp.MLP((3, 8, 1), dtype=dtype, seed=0)
    opt = fastbp.Adam(model.parameters())
    start = param_copies(model)
    calls = []
    with pytest.raises(ValueError, match=pattern):
        model.fit(X, y, epochs=3, optimizer=opt, validation_data=val,
                  callbacks=[lambda e, logs: calls.append(e)])
    assert not calls and opt.step_count == 0
    assert all(np.array_equal(p, s) for p, s in zip(model.parameters(), start))
    assert all(not a.any() for s in opt.state for a in s.values())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_class_labels_are_refused_before_training(bad):
    model = fastbp.MLP((3, 8, 4), loss="cross_entropy", seed=0)
    start = param_copies(model)
    X = np.ones((6, 3))
    y = np.array([0, 1, 2, 3, bad, 0])
    with pytest.raises(ValueError, match=r"\by\b"):
        model.fit(X, y, epochs=2)
    assert all(np.array_equal(p, s) for p, s in zip(model.parameters(), start))


def test_schedule_lr_takes_effect_in_training(reg):
    """fit with a schedule equals the same steps by hand with the lr changed per epoch."""
    X, y = reg
    model = tanh_net(seed=3)
    twin = clone(model)
    h = model.fit(X, y, epochs=4, batch_size=50, optimizer="sgd", lr=0.1, shuffle=False,
                  scheduler=lambda o: ExponentialLR(o, 0.5))
    opt = fastbp.SGD(twin.parameters(), lr=0.1)
    for e in range(4):
        opt.lr = 0.1 * 0.5 ** e
        for s in range(0, len(X), 50):
            twin.train_step(X[s:s + 50], y[s:s + 50], opt)
    assert h.lr == pytest.approx([0.1 * 0.5 ** e for e in range(4)], rel=EXACT)
    for a, b in zip(model.parameters(), twin.parameters()):
        np.testing.assert_allclose(a, b, **tols(np.float64, "path"))
