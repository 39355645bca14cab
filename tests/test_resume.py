"""Exact resume (fit(..., resume=True), the training state in model files) and Ctrl-C
during a fit."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastbp
from fastbp.schedules import ReduceLROnPlateau, StepLR
from conftest import assert_same_params, make_data


def _problem():
    X, y = make_data("cross_entropy", 240, 6, 3, np.float64, seed=4)
    Xv, yv = make_data("cross_entropy", 60, 6, 3, np.float64, seed=5)
    return X, y, Xv, yv


def _model():
    return fastbp.MLP((6, 16, 16, 3), "relu", "cross_entropy", dtype="float64", seed=3,
                      dropout=0.2)


SCHEDULES = {"step": lambda o: StepLR(o, 3, 0.5),
             "plateau": lambda o: ReduceLROnPlateau(o, factor=0.5, patience=1)}


@pytest.mark.parametrize("through_file", [False, True])
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("patience", [4, 30])
def test_ten_plus_ten_epochs_equal_twenty(through_file, schedule, patience, tmp_path):
    """fit(epochs=10) then fit(epochs=10, resume=True) gives the bits of fit(epochs=20):
    shuffled batches, dropout masks, the schedule and early stopping (which with
    patience 4 stops the run partway) included, also through save and load."""
    X, y, Xv, yv = _problem()
    kw = dict(batch_size=16, seed=5, validation_data=(Xv, yv), early_stopping=patience,
              scheduler=SCHEDULES[schedule], progress=False)
    whole = _model()
    h_whole = whole.fit(X, y, epochs=20, **kw)
    half = _model()
    half.fit(X, y, epochs=10, **kw)
    if through_file:
        half.save(tmp_path / "half.fastbp")
        half = fastbp.load(tmp_path / "half.fastbp")
    h = half.fit(X, y, epochs=10, validation_data=(Xv, yv), resume=True, progress=False)
    assert h == h_whole                    # every loss, rate and stopping record, exactly
    assert_same_params(half, whole)
    assert half.training_state.optimizer.step_count == whole.training_state.optimizer.step_count


def test_resume_in_several_pieces_with_an_explicit_optimizer(tmp_path):
    X, y, _, _ = _problem()
    whole = _model()
    whole.fit(X, y, epochs=9, batch_size=32, seed=1,
              optimizer=fastbp.SGD(whole.parameters(), lr=0.05, momentum=0.9), progress=False)
    piece = _model()
    opt = fastbp.SGD(piece.parameters(), lr=0.05, momentum=0.9)
    piece.fit(X, y, epochs=2, batch_size=32, seed=1, optimizer=opt, progress=False)
    piece.fit(X, y, epochs=3, resume=True, optimizer=opt, batch_size=32, progress=False)
    piece.save(tmp_path / "p.fastbp", optimizer=opt)   # the run's optimizer, stored once
    piece, opt2 = fastbp.load(tmp_path / "p.fastbp", with_optimizer=True)
    assert opt2 is piece.training_state.optimizer
    piece.fit(X, y, epochs=4, resume=True, progress=False)
    assert_same_params(piece, whole)


def test_resume_refuses_what_would_not_continue_the_run():
    X, y, Xv, yv = _problem()
    model = _model()
    with pytest.raises(ValueError, match="no training state"):
        model.fit(X, y, resume=True)
    model.fit(X, y, epochs=1, batch_size=16, validation_data=(Xv, yv), progress=False)
    state = model.training_state
    for kwargs, name in (({"batch_size": 8}, "batch_size"), ({"lr": 0.1}, "lr"),
                         ({"seed": 3}, "seed"), ({"optimizer": "sgd"}, "optimizer"),
                         ({"shuffle": False}, "shuffle")):
        with pytest.raises(ValueError, match=name):
            model.fit(X, y, validation_data=(Xv, yv), resume=True, **kwargs)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(X, y, resume=True)
    with pytest.raises(TypeError, match="resume"):
        model.fit(X, y, resume="yes")
    assert model.training_state is state and state.epoch == 1
    model.fit(X, y, epochs=1, batch_size=16, validation_data=(Xv, yv), resume=True,
              progress=False)   # the run's own value is accepted
    assert state.epoch == 2
    model.layers = [fastbp.Dense(6, 3, dtype="float64")]   # a new architecture: no run
    assert model.training_state is None


def test_a_fit_stopped_early_resumes_to_nothing_more():
    X, y, Xv, yv = _problem()
    model = _model()
    h = model.fit(X, y, epochs=200, validation_data=(Xv, yv), early_stopping=2, lr=0.05,
                  progress=False)
    assert h.stopped_early
    before = [p.copy() for p in model.parameters()]
    h2 = model.fit(X, y, epochs=5, validation_data=(Xv, yv), resume=True, progress=False)
    assert h2.epochs == h.epochs
    for p, q in zip(model.parameters(), before):
        np.testing.assert_array_equal(p, q)


CTRL_C = """
    import os, signal, threading, time
    import numpy as np, fastbp
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100_000, 20))
    y = (X[:, 0] > 0).astype(float)
    def model(dropout=0.1, width=64):
        return fastbp.MLP((20, width, width, 1), "tanh", "binary_cross_entropy",
                          dtype="float64", seed=3, dropout=dropout)
    {body}
"""


@pytest.mark.packaging
@pytest.mark.parametrize("trainer", ["fit", "ensemble", "packed"])
def test_ctrl_c_stops_within_a_step_and_resume_continues_exactly(trainer):
    """SIGINT in the middle of a compiled epoch: fit raises TrainingInterrupted (a
    KeyboardInterrupt) within a step, with the history so far; the model is at that step,
    and fit(..., resume=True) ends where the uninterrupted fit does, bit for bit (for the
    members of a lock-step pack too: float64 on this machine's OpenBLAS)."""
    if trainer == "fit":
        body = """
    whole = model()
    start = time.perf_counter()
    h_whole = whole.fit(X, y, epochs=3, batch_size=64, seed=1, progress=False)
    m = model()
    fired = []
    # in the middle of the fit, however fast this machine runs it
    threading.Timer(0.5 * (time.perf_counter() - start),
                    lambda: (fired.append(time.perf_counter()),
                             os.kill(os.getpid(), signal.SIGINT))).start()
    try:
        m.fit(X, y, epochs=3, batch_size=64, seed=1, progress=False)
        raise SystemExit("not interrupted")
    except fastbp.TrainingInterrupted as exc:
        latency = time.perf_counter() - fired[0]
        done = exc.history.epochs
        assert isinstance(exc, KeyboardInterrupt) and done < 3
    h = m.fit(X, y, epochs=3 - done, resume=True, progress=False)
    same = all(np.array_equal(p, q) for p, q in zip(m.parameters(), whole.parameters()))
    print(latency < 0.05, same, h.loss == h_whole.loss)
"""
    elif trainer == "packed":   # two members in lock-step (one order, no dropout, narrow)
        body = """
    whole = model(0.0, 32)
    start = time.perf_counter()
    whole.fit(X, y, epochs=3, batch_size=64, seed=1, progress=False)
    ens = fastbp.Ensemble([model(0.0, 32) for _ in range(2)])
    fired = []
    threading.Timer(0.5 * 2 * (time.perf_counter() - start),
                    lambda: (fired.append(time.perf_counter()),
                             os.kill(os.getpid(), signal.SIGINT))).start()
    try:
        ens.fit(X, y, epochs=3, batch_size=64, seed=1, num_threads=1, progress=False)
        raise SystemExit("not interrupted")
    except fastbp.TrainingInterrupted as exc:
        latency = time.perf_counter() - fired[0]
        done = [h.epochs for h in exc.histories]
        steps = [m.training_state.optimizer.step_count for m in ens]
        assert steps[0] == steps[1], steps   # stopped together: one pack
    # each member continues its interrupted epoch alone, on the order the pack used (a
    # member that had finished its epoch when the other was stopped keeps that epoch)
    for m, d in zip(ens, done):
        m.fit(X, y, epochs=3 - d, resume=True, progress=False)
    same = all(np.array_equal(p, q) for m in ens for p, q in zip(m.parameters(),
                                                                 whole.parameters()))
    print(latency < 0.05, same, min(done) < 3)
"""
    else:
        body = """
    start = time.perf_counter()
    model().fit(X, y, epochs=1, batch_size=64, seed=1, progress=False)
    epoch = time.perf_counter() - start
    ens = fastbp.Ensemble([model() for _ in range(2)])
    fired = []
    # about half-way through the ensemble's three epochs (two members on two threads)
    threading.Timer(1.5 * epoch, lambda: (fired.append(time.perf_counter()),
                                          os.kill(os.getpid(), signal.SIGINT))).start()
    try:
        ens.fit(X, y, epochs=3, batch_size=64, seed=1, num_threads=2, progress=False)
        raise SystemExit("not interrupted")
    except fastbp.TrainingInterrupted as exc:
        latency = time.perf_counter() - fired[0]
        assert len(exc.histories) == 2
    steps = [m.training_state.optimizer.step_count for m in ens]
    finite = all(np.isfinite(p).all() for m in ens for p in m.parameters())
    print(latency < 0.05, finite, min(steps) > 0)
"""
    code = textwrap.dedent(CTRL_C).format(body=textwrap.dedent(body))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=os.path.dirname(os.path.dirname(fastbp.__file__)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["True", "True", "True"], result.stdout


def test_ctrl_c_in_one_member_keeps_the_epoch_another_member_finished():
    """Members step their epochs one after another on one thread: a Ctrl-C during the
    second member's epoch stops it after a step, while the first member, which finished
    that epoch, keeps it (its history line). Resuming each member for the rest of its
    epochs ends where its uninterrupted fit does, bit for bit. (The old loop dropped the
    finished epoch's bookkeeping, and the resumed member trained one epoch too many.)"""
    import signal
    X, y, _, _ = _problem()

    def model():
        return fastbp.MLP((6, 16, 16, 3), "relu", "cross_entropy", dtype="float64", seed=3)

    whole = model()
    whole.fit(X, y, epochs=3, batch_size=16, seed=1, progress=False)
    ens = fastbp.Ensemble([model(), model()])
    second = ens[1]
    own = second.run_epoch
    calls = []

    def interrupted_epoch(*args, **kwargs):   # Ctrl-C as the second member's 2nd epoch starts
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)
        return own(*args, **kwargs)

    second.run_epoch = interrupted_epoch
    with pytest.raises(fastbp.TrainingInterrupted) as info:
        ens.fit(X, y, epochs=3, batch_size=16, seed=1, num_threads=1, pack=False,
                progress=False)
    del second.run_epoch
    done = [h.epochs for h in info.value.histories]
    assert done == [2, 1]
    steps = [m.training_state.optimizer.step_count for m in ens]
    assert steps[0] == 2 * 15 and 15 <= steps[1] < 2 * 15   # (15 batches an epoch)
    for m, d in zip(ens, done):
        m.fit(X, y, epochs=3 - d, resume=True, progress=False)
        assert_same_params(m, whole)
