"""An Optuna study's trials trained in packs: ``fastbp.optimize_study``.

Optuna asks for one trial at a time and expects the objective to train it; a small
network trains in milliseconds, so that loop is all overhead. Here the study's trials
are asked in packs, each pack's models (made by the user's ``make(trial)``) trained
together as one ``fastbp.Ensemble``, and after every epoch each member's validation
loss is reported with ``trial.report`` and the member stopped when
``trial.should_prune()`` says so (the study's pruner decides, as in any Optuna
objective). Each trial is then told its result: the validation loss of its last epoch
(of the restored epoch with early stopping), or PRUNED. ``optuna`` is an optional
dependency (``pip install 'fastbp[optuna]'``), imported only here.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from fastbp import _validation as check
from fastbp.ensemble import Ensemble
from fastbp.models import Sequential
from fastbp.optim import Optimizer
from fastbp.pruning import Pruner
from fastbp.training import History

__all__ = ["optimize_study"]


class _ReportToTrials(Pruner):
    """Reports each member's validation loss to its trial after every epoch and stops
    the members whose trial should be pruned."""

    def __init__(self, trials: Sequence[Any]) -> None:
        self.trials = trials

    def hook(self, runs: Sequence[Any], epochs: int) -> Any:
        done = [0]

        def after_epoch(_: Any) -> None:
            done[0] += 1
            for trial, run in zip(self.trials, runs):
                if run.alive:
                    trial.report(run.history.val_loss[-1], done[0])
                    if trial.should_prune():
                        run.history.pruned_at = done[0]

        return after_epoch


def _final_loss(history: History) -> float:
    """The trial's value: the restored epoch's validation loss, else the last one."""
    epoch = history.best_epoch if history.best_epoch is not None else len(history.val_loss) - 1
    return float(history.val_loss[epoch])


def optimize_study(study: Any, make: Callable[[Any], Any], X: Any, y: Any, *, n_trials: int,
                   validation_data: tuple[Any, Any], pack: int = 16, epochs: int = 10,
                   **fit_kwargs: Any) -> list[Any]:
    """Run ``n_trials`` trials of an Optuna study, ``pack`` at a time as one Ensemble.

    Parameters
    ----------
    study : optuna.Study
        A study that minimises (the value is a validation loss); its sampler and
        pruner are used as they are.
    make : callable
        ``make(trial)`` returns the trial's fresh model, or ``(model, optimizer)`` with
        an optimizer built over that model's parameters (every trial of a pack the
        same form). Suggest hyper-parameters on the trial as in any objective.
    X, y : array-like
        The training data, as ``Ensemble.fit``'s.
    n_trials : int
        The trials to run (>= 1).
    validation_data : (X_val, y_val)
        What each trial is scored and pruned on.
    pack : int, default 16
        Trials trained together (>= 1); the last pack may be smaller.
    epochs : int, default 10
        The most epochs of each trial.
    **fit_kwargs
        The rest of ``Ensemble.fit``'s arguments (batch_size, lr, weight_decay, seed,
        early_stopping, num_threads, progress...), the same for every trial; not
        ``prune`` or ``client``.

    Returns
    -------
    list of optuna.trial.FrozenTrial
        The trials this call ran, in order.

    Raises
    ------
    TypeError, ValueError
        A bad argument (named), a study that maximises, ``make`` returning something
        else than a model or (model, optimizer). Trials asked when ``make`` or the fit
        failed are told FAIL before the error propagates.
    """
    import optuna

    if not isinstance(study, optuna.Study):
        raise TypeError(f"study must be an optuna.Study, got {type(study).__name__}")
    if study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise ValueError("the trials' values are validation losses: create the study with "
                         "direction='minimize'")
    if not callable(make):
        raise TypeError(f"make must be callable (make(trial) -> model), got {type(make).__name__}")
    n_trials = check.int_in_range(n_trials, "n_trials", 1)
    pack = check.int_in_range(pack, "pack", 1)
    for name in ("prune", "client", "optimizer"):
        if name in fit_kwargs:
            raise TypeError(f"optimize_study sets {name} itself; make(trial) returns a model or "
                            "(model, optimizer)")
    if validation_data is None:
        raise ValueError("validation_data is required: the trials are scored on it")
    frozen = []
    for start in range(0, n_trials, pack):
        trials = [study.ask() for _ in range(min(pack, n_trials - start))]
        try:
            models, optimizers = _made(make, trials)
            histories = Ensemble(models).fit(
                X, y, epochs=epochs, validation_data=validation_data,
                optimizer=optimizers if optimizers is not None else "adam",
                prune=_ReportToTrials(trials), **fit_kwargs)
        except BaseException:
            for trial in trials:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        for trial, history in zip(trials, histories):
            if history.pruned_at is not None:
                frozen.append(study.tell(trial, state=optuna.trial.TrialState.PRUNED))
            else:
                frozen.append(study.tell(trial, _final_loss(history)))
    return frozen


def _made(make: Callable[[Any], Any], trials: list[Any]
          ) -> tuple[list[Sequential], list[Optimizer] | None]:
    """Each trial's model (and optimizer, if make returns pairs), checked."""
    out = [make(trial) for trial in trials]
    pairs = [isinstance(o, tuple) for o in out]
    if any(pairs) and not all(pairs):
        raise TypeError("make(trial) must return a model for every trial or a (model, "
                        "optimizer) pair for every trial, not a mix")
    models = [o[0] if isinstance(o, tuple) else o for o in out]
    for i, model in enumerate(models):
        if not isinstance(model, Sequential):
            raise TypeError(f"make(trial) must return a fastbp model (Sequential or MLP), got "
                            f"{type(model).__name__} for trial {trials[i].number}")
    if not any(pairs):
        return models, None
    optimizers = []
    for i, o in enumerate(out):
        if len(o) != 2 or not isinstance(o[1], Optimizer):
            raise TypeError("make(trial) must return (model, optimizer) with a fastbp optimizer, "
                            f"got {o!r} for trial {trials[i].number}")
        optimizers.append(o[1])
    return models, optimizers
