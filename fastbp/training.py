"""The training loop: ``fit`` (full-batch, stochastic and mini-batch gradient
descent), its ``History`` and the progress display."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from fastbp import _validation as check
from fastbp import schedules
from fastbp.optim import Optimizer, make_optimizer
from fastbp.plotting import plot_history

__all__ = ["fit", "History", "TrainingDiverged"]


class TrainingDiverged(ValueError):
    """The training loss or the parameters became NaN or infinite during an epoch; the
    parameters and the optimizer state were restored to the start of that epoch."""


@dataclass
class History:
    """Per-epoch records of a fit: training loss, validation loss (if any) and learning rate.

    ``loss[e]`` is the mean of epoch e's mini-batch losses, each taken before its
    update and weighted by its batch size.
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def plot(self, path: Any = None, ax: Any = None) -> Any:
        """Training/validation loss and learning rate per epoch (needs matplotlib)."""
        return plot_history(self, path=path, ax=ax)


def _int_at_least(value: Any, name: str, low: int) -> int:
    return check.int_in_range(value, name, low)


def _finite(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_validation_data(model: Any, validation_data: Any) -> tuple[np.ndarray, np.ndarray]:
    """(X_val, y_val) converted for ``model`` and checked finite (fit's and Ensemble.fit's)."""
    try:
        Xv, yv = validation_data
    except (TypeError, ValueError) as exc:
        raise TypeError("validation_data must be a pair (X_val, y_val)") from exc
    Xv, yv = model.check_Xy(Xv, yv)
    _finite(Xv, "validation_data X")
    _finite(yv, "validation_data y")
    return Xv, yv


class Progress:
    """A per-epoch progress bar: tqdm when installed, else a plain line on stderr."""

    def __init__(self, epochs: int, show: bool) -> None:
        self.epochs = epochs
        self.show = show
        self.bar = None
        if show:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=epochs, unit="epoch", file=sys.stderr, leave=True)

    def update(self, epoch: int, logs: dict[str, float]) -> None:
        if not self.show:
            return
        text = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if k != "epoch")
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        else:
            width = 30
            done = int(width * (epoch + 1) / self.epochs)
            sys.stderr.write(f"\repoch {epoch + 1}/{self.epochs} [{'#' * done}{'.' * (width - done)}] "
                             f"{text}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.show:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _make_scheduler(scheduler: Any, opt: Optimizer) -> Any:
    """A schedule bound to ``opt`` from a schedule instance or a factory callable."""
    if scheduler is None:
        return None
    if not isinstance(scheduler, schedules.Schedule):
        if not callable(scheduler):
            raise TypeError("scheduler must be a fastbp schedule or a callable taking the "
                            f"optimizer, got {type(scheduler).__name__}")
        scheduler = scheduler(opt)
        if not isinstance(scheduler, schedules.Schedule):
            raise TypeError("scheduler(optimizer) must return a fastbp schedule, got "
                            f"{type(scheduler).__name__}")
    if scheduler.optimizer is not opt:
        raise ValueError("scheduler must be bound to the optimizer used by fit "
                         "(pass the same optimizer instance, or a callable)")
    return scheduler


def fit(model: Any, X: Any, y: Any, *, epochs: int = 10, batch_size: int | None = 32,
        optimizer: Any = "adam", lr: float | None = None, shuffle: bool = True,
        seed: Any = None, validation_data: tuple[Any, Any] | None = None,
        scheduler: Any = None, early_stopping: int | None = None,
        callbacks: Iterable[Callable[[int, dict[str, float]], Any]] = (),
        progress: bool | None = None, sample_weight: Any = None) -> History:
    """Train ``model`` on (X, y); see API.md. Returns the History."""
    X, y = model.check_Xy(X, y)
    _finite(X, "X")
    _finite(y, "y")
    n = X.shape[0]
    weights = check.sample_weight(sample_weight, n)
    epochs = _int_at_least(epochs, "epochs", 1)
    batch = n if batch_size is None else min(_int_at_least(batch_size, "batch_size", 1), n)
    if early_stopping is not None:
        early_stopping = _int_at_least(early_stopping, "early_stopping", 1)
    callbacks = list(callbacks)
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables cb(epoch, logs), got {type(cb).__name__}")
    if validation_data is not None:
        Xv, yv = check_validation_data(model, validation_data)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    sched = _make_scheduler(scheduler, opt)
    rng = np.random.default_rng(seed)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    bar = Progress(epochs, show)
    history = History()
    best = math.inf
    best_params: list[np.ndarray] | None = None
    bad_epochs = 0
    order = np.arange(n, dtype=np.intp)
    try:
        for epoch in range(epochs):
            # Snapshot for a diverging epoch: the model keeps its last finite state.
            start_params = [p.copy() for p in model.parameters()]
            start_state = opt.state_dict()
            if shuffle and batch < n:  # (a full batch's gradient does not depend on order)
                order = rng.permutation(n).astype(np.intp, copy=False)
            lr_used = opt.lr
            steps, total = model.train_epoch(X, y, order, batch, opt, weights)
            # Each loss is taken before its update, so the epoch's last update can
            # still have made the parameters non-finite: check them too.
            finite = steps >= 0 and all(np.isfinite(p).all() for p in model.parameters())
            if not finite:
                for p, saved in zip(model.parameters(), start_params):
                    p[...] = saved
                opt.load_state_dict(start_state)
                where = (f"the training loss became {total} at step {-steps}" if steps < 0
                         else "the last update made the parameters non-finite")
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch}: {where}; the parameters and the "
                    "optimizer state were restored to the start of that epoch. Lower the "
                    "learning rate or check the data scale.")
            logs = {"epoch": epoch, "loss": total / n, "lr": lr_used}
            history.loss.append(total / n)
            history.lr.append(lr_used)
            monitored = total / n
            if validation_data is not None:
                val = model.loss(Xv, yv)
                history.val_loss.append(val)
                logs["val_loss"] = val
                monitored = val
            if sched is not None:
                if isinstance(sched, schedules.ReduceLROnPlateau):
                    sched.step(monitored)
                else:
                    sched.step()
            stop = False
            if early_stopping is not None:
                if monitored < best:
                    best = monitored
                    best_params = [p.copy() for p in model.parameters()]
                    history.best_epoch = epoch
                    bad_epochs = 0
                else:
                    bad_epochs += 1
                    if bad_epochs >= early_stopping:
                        stop = history.stopped_early = True
            bar.update(epoch, logs)
            for cb in callbacks:
                if cb(epoch, dict(logs)) is True:
                    stop = True
            if stop:
                break
    finally:
        bar.close()
    if best_params is not None:
        for p, saved in zip(model.parameters(), best_params):
            p[...] = saved
    return history
