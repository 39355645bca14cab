"""fastbp.optimize_study with a real Optuna study: every epoch reported to its trial, the
study's pruner obeyed, each trial told its result, and each trial trained as its own fit."""
from __future__ import annotations

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

import fastbp  # noqa: E402


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(240, 4))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]
    return X[:160], y[:160], X[160:], y[160:]


def _make(trial):
    width = trial.suggest_int("width", 2, 24)
    lr = trial.suggest_float("lr", 1e-5, 3e-1, log=True)
    model = fastbp.MLP((4, width, 1), "tanh", "mse", dtype="float64", seed=trial.number)
    return model, fastbp.Adam(model.parameters(), lr=lr)


@pytest.fixture(autouse=True)
def _quiet():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_trials_are_reported_pruned_and_told_as_their_own_fits():
    X, y, Xv, yv = _data()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=0,
                                                                   n_warmup_steps=1))
    trials = fastbp.optimize_study(study, _make, X, y, n_trials=12, pack=6, epochs=6,
                                   validation_data=(Xv, yv), batch_size=16, seed=1,
                                   progress=False)
    assert [t.number for t in trials] == list(range(12))
    states = [t.state for t in trials]
    assert optuna.trial.TrialState.PRUNED in states and optuna.trial.TrialState.COMPLETE in states
    for t in trials:
        # each trial alone: the same model, optimizer and order give the same losses
        model, opt = _make(optuna.trial.FixedTrial(t.params, number=t.number))
        epochs = max(t.intermediate_values)
        history = model.fit(X, y, epochs=epochs, optimizer=opt, batch_size=16, seed=1,
                            validation_data=(Xv, yv), progress=False)
        assert [t.intermediate_values[e] for e in range(1, epochs + 1)] == history.val_loss
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert epochs == 6 and t.value == history.val_loss[-1]
        else:
            assert epochs < 6   # stopped when the pruner said so
    assert study.best_value == min(t.value for t in trials if t.value is not None)


def test_bad_arguments_and_a_failing_make_leave_no_running_trial():
    X, y, Xv, yv = _data()
    study = optuna.create_study()
    with pytest.raises(ValueError, match="minimize"):
        fastbp.optimize_study(optuna.create_study(direction="maximize"), _make, X, y,
                              n_trials=2, validation_data=(Xv, yv))
    with pytest.raises(TypeError, match="n_trials"):
        fastbp.optimize_study(study, _make, X, y, n_trials="2", validation_data=(Xv, yv))
    with pytest.raises(TypeError, match="prune"):
        fastbp.optimize_study(study, _make, X, y, n_trials=2, validation_data=(Xv, yv),
                              prune=fastbp.SuccessiveHalving())

    def bad(trial):
        return "not a model"

    with pytest.raises(TypeError, match="fastbp model"):
        fastbp.optimize_study(study, bad, X, y, n_trials=3, pack=3, validation_data=(Xv, yv))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 3
    # the study goes on after the failure
    done = fastbp.optimize_study(study, _make, X, y, n_trials=2, validation_data=(Xv, yv),
                                 epochs=2, progress=False)
    assert [t.state for t in done] == [optuna.trial.TrialState.COMPLETE] * 2
