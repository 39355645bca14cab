"""Training: one run object for every caller.

- ``TrainingData``: the arrays of a fit (X, the targets, sample weights, the
  validation set), converted and checked once for a model; shared by every run
  that trains on them.
- ``TrainingRun``: one model's training state, everything ``fit`` carries from
  epoch to epoch: the optimizer, the schedule, the batch-order generator, the
  epoch count, the history, early stopping's bookkeeping (best loss, best
  parameters, epochs without improvement) and, after a Ctrl-C, the position
  inside the interrupted epoch. One epoch is ``run_epoch`` (the compiled pass,
  safe to run in a worker thread) then ``end_epoch`` (the bookkeeping). A run is
  kept on its model as ``model.training_state``, saved with it, and continued by
  ``fit(..., resume=True)``.
- ``train_runs``: the loop over epochs for any number of runs (``fit`` passes
  one, ``fastbp.Ensemble`` many, spread over threads; the Dask route runs it on
  each worker).
- ``fit``: the public training loop (``Sequential.fit``).
"""
from __future__ import annotations

import contextlib
import math
import sys
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from scipy.optimize import minimize

from fastbp import _validation as check
from fastbp import _packing, schedules
from fastbp._kernels import network as _network
from fastbp._optim_config import CHECKS
from fastbp._sparse import SparseRows
from fastbp._storage import take
from fastbp.optim import OPTIMIZERS, Optimizer, from_state_dict, in_order_of, make_optimizer
from fastbp.plotting import plot_history
from fastbp.threads import using_threads

__all__ = ["fit", "History", "TrainingDiverged", "TrainingInterrupted", "TrainingData",
           "TrainingRun", "train_runs", "Progress", "ctrl_c_stops_epochs", "EPOCH_DONE",
           "EPOCH_NONFINITE", "EPOCH_INTERRUPTED", "EPOCH_BAD_INDEX"]

#: how a compiled epoch ended (Sequential.run_epoch's status)
EPOCH_DONE = _network.EPOCH_DONE                  # every batch was stepped
EPOCH_NONFINITE = _network.EPOCH_NONFINITE        # a loss was not finite (after that step)
EPOCH_INTERRUPTED = _network.EPOCH_INTERRUPTED    # Ctrl-C, after a complete step
EPOCH_BAD_INDEX = _network.EPOCH_BAD_INDEX        # a row index or label out of range


class TrainingDiverged(ValueError):
    """The training loss or the parameters became NaN or infinite during an epoch; the
    parameters and the optimizer state were restored to the start of that epoch."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a fit after a complete step.

    Every step taken so far is applied, the model is at that step, and
    ``fit(..., resume=True)`` continues exactly from there. ``history`` holds the
    History of the fit (``histories``: one per member for an Ensemble fit).

    Parameters
    ----------
    message : str
        The exception's message.
    histories : list of History
        The runs' histories, one per model (fit: one).

    Attributes
    ----------
    histories : list of History
    history : History or None
        The only history of a single fit (None for several).
    """

    def __init__(self, message: str, histories: list[History]) -> None:
        super().__init__(message)
        self.histories = histories
        self.history = histories[0] if len(histories) == 1 else None


@dataclass
class History:
    """Per-epoch records of a fit.

    Parameters
    ----------
    loss, val_loss, lr : list of float, default empty lists
        The initial records (a fit appends to them).
    best_epoch : int or None, default None
        See Attributes.
    stopped_early : bool, default False
        See Attributes.
    pruned_at : int or None, default None
        See Attributes.

    Attributes
    ----------
    loss : list of float
        ``loss[e]``: the mean of epoch e's mini-batch losses, each taken before its
        update and weighted by its batch size.
    val_loss : list of float
        The loss on ``validation_data`` after each epoch (empty without it).
    lr : list of float
        The learning rate each epoch used.
    best_epoch : int or None
        With early stopping, the epoch whose parameters were restored.
    stopped_early : bool
        Whether early stopping ended the fit.
    pruned_at : int or None
        For a member of an ensemble fit with pruning: the epochs it trained before
        it was stopped (None: not pruned).
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    pruned_at: int | None = None

    @property
    def epochs(self) -> int:
        """The number of epochs recorded."""
        return len(self.loss)

    def plot(self, path: Any = None, ax: Any = None) -> Any:
        """Training/validation loss and learning rate per epoch (needs matplotlib).

        Parameters
        ----------
        path : str, os.PathLike or None, default None
            Also save the figure there.
        ax : matplotlib.axes.Axes or None, default None
            Draw on these axes (None: on a new Figure).

        Returns
        -------
        matplotlib.figure.Figure

        Raises
        ------
        ImportError
            matplotlib is missing.
        ValueError
            The history is empty.
        """
        return plot_history(self, path=path, ax=ax)


def _finite(arr: Any, name: str) -> None:
    if isinstance(arr, SparseRows):
        return   # its values were checked when it was converted (fastbp._sparse)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")


class TrainingData:
    """The arrays of a fit, converted for ``model`` and checked once.

    Parameters
    ----------
    model : Sequential
        The model the arrays are converted for (its dtype, input and output widths
        and loss); any model of the same dtype, widths and loss may train on them.
    X, y : array-like
        The samples and targets, as ``fit`` takes them.
    sample_weight : array-like or None
        One finite weight >= 0 per sample, with a positive sum.
    validation_data : (X_val, y_val) or None
        The validation set, converted and checked the same way.
    dy : array-like of shape (n_samples, out_features, in_features) or None
        Target derivatives of the raw outputs with respect to the inputs.
    dy_weight : float, default 1.0
        The weight (>= 0) of the derivatives' mean squared error in the loss.
    label_smoothing : float, default 0.0
        ε in [0, 1]: the training targets become (1 − ε)·y + ε/n_classes
        (``torch.nn.CrossEntropyLoss(label_smoothing=ε)``; cross_entropy only). The
        validation set keeps its own targets.
    clip_grad_norm : float or None, default None
        Each step scales the gradients by min(1, c/(‖g‖₂ + 1e-6)), ‖g‖₂ their global
        norm, before the update (``torch.nn.utils.clip_grad_norm_``).

    Raises
    ------
    TypeError, ValueError
        Anything ``fit`` would refuse in these arrays, naming the argument.
    """

    def __init__(self, model: Any, X: Any, y: Any, sample_weight: Any = None,
                 validation_data: Any = None, dy: Any = None, dy_weight: Any = 1.0,
                 label_smoothing: Any = 0.0, clip_grad_norm: Any = None) -> None:
        #: ε of cross-entropy's label smoothing (the training targets are smoothed)
        self.label_smoothing = check.label_smoothing(label_smoothing)
        #: each step's largest global gradient norm (0.0: no clipping)
        self.clip_norm = check.clip_grad_norm(clip_grad_norm)
        if self.label_smoothing and model.loss_name != "cross_entropy":
            raise ValueError(f"label_smoothing applies to loss='cross_entropy', not "
                             f"{model.loss_name!r}")
        if dy is not None and (self.label_smoothing or self.clip_norm):
            raise ValueError("training on derivatives (dy) takes no label_smoothing or "
                             "clip_grad_norm")
        X, y = model.check_Xy(X, y)
        _finite(X, "X")
        _finite(y, "y")
        #: target Jacobians (n, out_features, in_features) of derivative training, or None
        self.dy: np.ndarray | None = None
        self.dy_weight = check.finite_scalar(dy_weight, "dy_weight", low=0.0)
        if dy is not None:
            if isinstance(X, SparseRows):
                raise TypeError("training on derivatives (dy) takes dense X")
            self.dy = model.check_dy(dy, X.shape[0])
        #: the samples: an array, or a SparseRows for sparse input
        self.X: np.ndarray | SparseRows = X
        #: float targets (n, k), or None with labels
        self.targets: np.ndarray | None = None if y.ndim == 1 else y
        #: int class labels (n,) as intp, or None with targets
        self.labels: np.ndarray | None = y if y.ndim == 1 else None
        if self.label_smoothing:
            self.targets = check.smoothed_targets(self.labels, self.targets, model.target_width,
                                                  self.label_smoothing, model.dtype)
            self.labels = None
        self.sample_weight: np.ndarray | None = check.sample_weight(sample_weight, X.shape[0])
        self.validation: tuple[np.ndarray, np.ndarray] | None = None
        if validation_data is not None:
            self.validation = _validation_set(model, validation_data)
        self.signature = model.data_signature()

    @property
    def dense_X(self) -> np.ndarray:
        """X as an array: derivative data (dy) always has one (sparse X is refused)."""
        assert isinstance(self.X, np.ndarray)
        return self.X

    @property
    def n(self) -> int:
        """The number of samples."""
        return int(self.X.shape[0])

    @property
    def y(self) -> np.ndarray:
        """The converted targets (labels or values)."""
        return self.labels if self.labels is not None else self.targets  # type: ignore[return-value]


def _validation_set(model: Any, validation_data: Any) -> tuple[np.ndarray, np.ndarray]:
    """(X_val, y_val) converted for ``model`` and checked finite; errors name
    ``validation_data``."""
    try:
        Xv, yv = validation_data
    except (TypeError, ValueError) as exc:
        raise TypeError("validation_data must be a pair (X_val, y_val), got "
                        f"{type(validation_data).__name__}") from exc
    Xv = model.check_X(Xv, name="validation_data X")
    if Xv.shape[0] == 0:
        raise ValueError(f"validation_data X must hold at least one sample, got shape {Xv.shape}")
    yv = model.check_y(yv, Xv.shape[0], name="validation_data y")
    _finite(Xv, "validation_data X")
    _finite(yv, "validation_data y")
    return Xv, yv


class Progress:
    """A per-epoch progress bar: tqdm when installed, else a plain line on stderr.

    Parameters
    ----------
    epochs : int
        The number of epochs the bar counts to.
    show : bool
        Whether to show anything (False: every call does nothing).
    """

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
        """Show that epoch ``epoch`` (from 0) ended with ``logs``.

        Parameters
        ----------
        epoch : int
            The epoch, counted from 0.
        logs : dict of str to float
            The epoch's numbers; all but "epoch" are shown.
        """
        if not self.show:
            return
        text = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if k != "epoch")
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        else:
            width = 30
            done = min(width, int(width * (epoch + 1) / self.epochs))
            sys.stderr.write(f"\repoch {epoch + 1}/{self.epochs} [{'#' * done}{'.' * (width - done)}] "
                             f"{text}")
            sys.stderr.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.bar is not None:
            self.bar.close()
        elif self.show:
            sys.stderr.write("\n")
            sys.stderr.flush()


@dataclass
class _Partial:
    """Where an interrupted epoch stopped: the order generator's state before the
    epoch's draw, the steps done, their loss sum and the learning rate used."""

    rng_state: dict[str, Any]
    steps: int
    loss_sum: float
    lr: float


class TrainingRun:
    """One model's training: its settings and everything fit carries between epochs.

    Built by ``fit`` (and ``fastbp.Ensemble.fit``, one per member) after every
    argument was checked (the constructor checks nothing); kept on the model as
    ``model.training_state`` after the fit, saved with ``model.save`` and
    continued by ``fit(..., resume=True)``.

    Parameters
    ----------
    model : Sequential
        The model to train in place.
    optimizer : Optimizer
        A fastbp optimizer over ``model.parameters()``.
    batch_size : int or None
        Samples per mini-batch (None: the full batch).
    shuffle : bool
        Draw a new sample order each epoch.
    early_stopping : int or None
        Epochs without improvement of the monitored loss that end the run (None:
        no early stopping).
    seed : None, int or numpy SeedSequence-like, default None
        Seeds the batch-order generator (``numpy.random.default_rng(seed)``).
    scheduler : Schedule or None, default None
        A learning-rate schedule bound to ``optimizer``, stepped once per epoch (a
        per-batch one, OneCycleLR or WarmupCosine, once per batch inside the compiled
        epoch).
    drop_last : bool, default False
        Skip each epoch's last partial batch.

    Attributes
    ----------
    model : Sequential
        The model trained in place.
    optimizer : Optimizer
        The optimizer over ``model.parameters()`` (its state is the run's).
    scheduler : Schedule or None
        The learning-rate schedule bound to ``optimizer``, stepped once per epoch.
    batch_size : int or None
        Samples per mini-batch (None: the full batch).
    shuffle : bool
        Whether each epoch draws a new order of the samples.
    drop_last : bool
        Whether each epoch skips its last partial batch.
    early_stopping : int or None
        Epochs without improvement of the monitored loss that end the run.
    rng : numpy.random.Generator
        The batch-order generator (one permutation per shuffled epoch).
    history : History
        The records of every epoch of the run.
    epoch : int
        Completed epochs.
    stopped : bool
        Whether early stopping ended the run (a resumed fit then trains no more).
    diverged : str or None
        Why the run stopped on a non-finite loss (Ensemble members; fit raises).
    pack : bool
        Whether its epochs may step in lock-step with other runs' of the same
        architecture and batch order (``Ensemble.fit(pack=...)``; fastbp/_packing.py).
    """

    def __init__(self, model: Any, optimizer: Optimizer, *, batch_size: int | None,
                 shuffle: bool, early_stopping: int | None, seed: Any = None,
                 scheduler: Any = None, drop_last: bool = False) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.batch_size = batch_size
        #: skip each epoch's last partial batch (PyTorch's DataLoader drop_last)
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.history = History()
        self.epoch = 0
        self.best = math.inf
        self.best_params: list[np.ndarray] | None = None
        #: the last epoch's parameters, kept when the best were restored (for resume)
        self.last_params: list[np.ndarray] | None = None
        self.bad_epochs = 0
        self.stopped = False
        self.diverged: str | None = None
        self.partial: _Partial | None = None
        # one epoch's results, filled by run_epoch (possibly in a worker thread)
        self._status = 0
        self._steps = 0
        self._total = 0.0
        self._lr_used = 0.0
        self._val = math.nan
        self._start_state: dict[str, Any] = {}   # the generator's state at the epoch's start
        #: whether its epochs may step in lock-step with other runs' (fastbp/_packing.py)
        self.pack = True
        # the epoch's start (parameters, optimizer state, a per-batch schedule's state),
        # restored when the epoch fails
        self._start: tuple[list[np.ndarray], dict[str, Any], dict[str, Any] | None] | None \
            = None

    def __repr__(self) -> str:
        return (f"TrainingRun({self.epoch} epochs, {type(self.optimizer).__name__} at step "
                f"{self.optimizer.step_count}{', stopped' if self.stopped else ''})")

    # ---------------------------------------------------------------- one epoch
    @property
    def interrupted(self) -> bool:
        """Whether the last run_epoch was stopped by Ctrl-C (the run continues from there)."""
        return self._status == EPOCH_INTERRUPTED

    @property
    def alive(self) -> bool:
        """Whether the run trains on (not stopped early, diverged or pruned)."""
        return not self.stopped and self.diverged is None and self.history.pruned_at is None

    def batch(self, n: int) -> int:
        """The mini-batch size for n samples.

        Parameters
        ----------
        n : int
            The number of samples.

        Returns
        -------
        int
            ``batch_size`` capped at n, or n for full-batch training.
        """
        return n if self.batch_size is None else min(self.batch_size, n)

    def epoch_rows(self, n: int) -> int:
        """The rows an epoch of n samples steps: all of them, or with ``drop_last`` the
        whole batches' (n itself when one batch holds them all).

        Parameters
        ----------
        n : int

        Returns
        -------
        int
        """
        batch = self.batch(n)
        return n - n % batch if self.drop_last else n

    def steps_per_epoch(self, n: int) -> int:
        """The steps of an epoch of n samples.

        Parameters
        ----------
        n : int

        Returns
        -------
        int
        """
        return -(-self.epoch_rows(n) // self.batch(n))

    def order_key(self) -> Any:
        """A key of the generator's state: runs with equal keys draw the same next order.

        An Ensemble draws the order once for all of them.

        Returns
        -------
        str
            The generator's state, as text.
        """
        return repr(self.rng.bit_generator.state)

    def draw_order(self, n: int) -> np.ndarray:
        """The next epoch's sample order (the generator advances only when it shuffles).

        Parameters
        ----------
        n : int
            The number of samples.

        Returns
        -------
        ndarray of shape (n,)
            A permutation of range(n) (np.intp) when shuffling with batches smaller than
            n, else range(n) in order.
        """
        if self.shuffle and self.batch(n) < n:   # a full batch's gradient ignores order
            return self.rng.permutation(n).astype(np.intp, copy=False)
        return np.arange(n, dtype=np.intp)

    def run_epoch(self, data: TrainingData, order: np.ndarray | None = None,
                  rng_state: dict[str, Any] | None = None) -> None:
        """One epoch's compiled pass and validation loss.

        Touches only this run and its model: safe in a worker thread. After a Ctrl-C
        the epoch continues where the interrupted one stopped. ``end_epoch`` does the
        bookkeeping.

        Parameters
        ----------
        data : TrainingData
            The arrays, made for a model like this run's.
        order : ndarray of int or None, default None
            The order another run in this run's generator state drew (None: draw it).
        rng_state : dict or None, default None
            The generator state after that draw, adopted with ``order``.

        Raises
        ------
        TypeError
            ``data`` was not made for a model like this one.
        """
        rest, batch, first, total0, lrs = self.begin_epoch(data, order, rng_state)
        status, steps, total = self.model.run_epoch(data, rest, batch, self.optimizer, total0,
                                                    lrs)
        self.finish_epoch(data, status, first, steps, total, lrs is not None)

    def begin_epoch(self, data: TrainingData, order: np.ndarray | None = None,
                    rng_state: dict[str, Any] | None = None
                    ) -> tuple[np.ndarray, int, int, float, np.ndarray | None]:
        """The first half of ``run_epoch``: the epoch's order and start (kept for undoing).

        Parameters
        ----------
        data : TrainingData
            The arrays of the epoch.
        order : ndarray of int or None, default None
            As ``run_epoch``'s.
        rng_state : dict or None, default None
            As ``run_epoch``'s.

        Returns
        -------
        rest : ndarray of intp
            The rows still to step (all of the order, unless an interrupted epoch
            continues).
        batch : int
            Rows per step.
        first : int
            Steps already taken in this epoch.
        total0 : float
            Their loss sum.
        lrs : ndarray of float64 or None
            A per-batch schedule's rates for the steps (None without one).
        """
        opt = self.optimizer
        n = data.n
        batch = self.batch(n)
        first, total0 = 0, 0.0
        if self.partial is not None:   # continue an interrupted epoch where it stopped
            self.rng.bit_generator.state = self.partial.rng_state
            order = self.draw_order(n)
            first, total0, self._lr_used = self.partial.steps, self.partial.loss_sum, \
                self.partial.lr
            self._start_state = self.partial.rng_state
        else:
            self._start_state = dict(self.rng.bit_generator.state)
            if order is None:
                order = self.draw_order(n)
            elif rng_state is not None:
                self.rng.bit_generator.state = rng_state
            self._lr_used = opt.lr
        per_batch = self.scheduler is not None and self.scheduler.per_batch
        self._start = ([p.copy() for p in self.model.parameters()], opt.state_dict(),
                       self.scheduler.state_dict() if per_batch else None)
        order = order[:self.epoch_rows(n)]   # (drop_last: the whole batches only)
        rest = order[first * batch:]
        lrs = None
        if per_batch:
            # each batch's lr, and the one after (a schedule that cannot take this epoch's
            # steps refuses here, before any of them)
            lrs = np.asarray(self.scheduler.lrs(-(-len(rest) // batch) + 1), dtype=np.float64)
        return rest, batch, first, total0, lrs

    def finish_epoch(self, data: TrainingData, status: int, first: int, steps: int,
                     total: float, per_batch: bool = False) -> None:
        """The second half of ``run_epoch``: the compiled pass's results and the
        validation loss.

        Parameters
        ----------
        data : TrainingData
            The arrays of the epoch.
        status : int
            The pass's EPOCH_* status.
        first : int
            The steps taken before the pass (``begin_epoch``'s).
        steps : int
            The steps the pass took.
        total : float
            The epoch's loss sum so far.
        per_batch : bool, default False
            Whether a per-batch schedule gave the steps' rates (it advances by them).
        """
        if per_batch:
            self.scheduler.advance(steps)
        self._status, self._steps, self._total = status, first + steps, total
        if status == EPOCH_INTERRUPTED:
            self.partial = _Partial(self._start_state, first + steps, total, self._lr_used)
            return
        self.partial = None
        if status == EPOCH_DONE and data.validation is not None \
                and all(np.isfinite(p).all() for p in self.model.parameters()):
            self._val = self.model.loss(*data.validation)

    def end_epoch(self, data: TrainingData) -> dict[str, float] | None:
        """The bookkeeping after run_epoch: divergence, history, schedule, early stopping.

        A diverged epoch (a non-finite loss or parameters) is undone: the parameters
        and the optimizer state are restored to its start and ``diverged`` says why.

        Parameters
        ----------
        data : TrainingData
            The arrays ``run_epoch`` trained on.

        Returns
        -------
        dict of str to float or None
            The epoch's logs ("epoch", "loss", "lr", and "val_loss" with validation
            data); None when the run diverged or the epoch was interrupted.

        Raises
        ------
        ValueError
            A row index or label was out of range (the data changed during the fit);
            the epoch's start is restored.
        """
        status = self._status
        if status == EPOCH_INTERRUPTED:
            return None
        epoch = self.epoch
        if status == EPOCH_BAD_INDEX:
            self._restore_start()
            raise ValueError("a row index or class label went out of range during the fit "
                             "(were X or y changed while it ran?); the parameters and the "
                             "optimizer state were restored to the start of the epoch")
        # Each loss is taken before its update, so the epoch's last update can still
        # have made the parameters non-finite: check them too.
        finite = status == EPOCH_DONE and all(
            np.isfinite(p).all() for p in self.model.parameters())
        if not finite:
            self._restore_start()
            where = (f"the training loss became {self._total} at step {self._steps}"
                     if status == EPOCH_NONFINITE
                     else "the last update made the parameters non-finite")
            self.diverged = (f"training diverged in epoch {epoch}: {where}; the parameters and "
                             "the optimizer state were restored to the start of that epoch")
            return None
        self._start = None
        loss = self._total / self.epoch_rows(data.n)
        logs = {"epoch": float(epoch), "loss": loss, "lr": self._lr_used}
        self.history.loss.append(loss)
        self.history.lr.append(self._lr_used)
        monitored = loss
        if data.validation is not None:
            self.history.val_loss.append(self._val)
            logs["val_loss"] = self._val
            monitored = self._val
        if self.scheduler is not None and not self.scheduler.per_batch:   # (per batch: stepped
            if isinstance(self.scheduler, schedules.ReduceLROnPlateau):    # in run_epoch)
                self.scheduler.step(monitored)
            else:
                self.scheduler.step()
        if self.early_stopping is not None:
            if monitored < self.best:
                self.best = monitored
                self.best_params = [p.copy() for p in self.model.parameters()]
                self.history.best_epoch = epoch
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
                if self.bad_epochs >= self.early_stopping:
                    self.history.stopped_early = self.stopped = True
        self.epoch += 1
        return logs

    def _restore_start(self) -> None:
        assert self._start is not None
        params, state, schedule = self._start
        for p, saved in zip(self.model.parameters(), params):
            p[...] = saved
        self.optimizer.load_state_dict(state)
        if schedule is not None:
            self.scheduler.load_state_dict(schedule)
        self._start = None

    def restore_best(self) -> None:
        """At the end of a fit: put the best parameters in place (early stopping),
        keeping the last epoch's for a resumed fit."""
        if self.best_params is not None and self.diverged is None:
            self.last_params = [p.copy() for p in self.model.parameters()]
            for p, saved in zip(self.model.parameters(), self.best_params):
                p[...] = saved

    def continue_from_last(self) -> None:
        """Before a resumed fit: put back the last epoch's parameters if the best ones
        were restored over them."""
        if self.last_params is not None:
            for p, saved in zip(self.model.parameters(), self.last_params):
                p[...] = saved
            self.last_params = None

    def adopt(self, other: TrainingRun) -> None:
        """Take the results of ``other``, a copy of this run trained elsewhere.

        Used for the runs trained on Dask workers: parameters (copied into the live
        arrays), optimizer and schedule state, generator, history and bookkeeping.

        Parameters
        ----------
        other : TrainingRun
            The trained copy, over a model of the same architecture.
        """
        for p, new in zip(self.model.parameters(), other.model.parameters()):
            p[...] = new
        self.optimizer.load_state_dict(other.optimizer.state_dict())
        if self.scheduler is not None and other.scheduler is not None:
            self.scheduler.load_state_dict(other.scheduler.state_dict())
        self.rng.bit_generator.state = other.rng.bit_generator.state
        for name in ("history", "epoch", "best", "best_params", "last_params", "bad_epochs",
                     "stopped", "diverged", "partial"):
            setattr(self, name, getattr(other, name))

    # ---------------------------------------------------------------- files
    def to_archive(self, prefix: str, optimizer_stored: bool) -> tuple[dict[str, Any],
                                                                        dict[str, np.ndarray]]:
        """(JSON spec, arrays under ``prefix``) of the run for a model file.

        Parameters
        ----------
        prefix : str
            Prepended to the arrays' names (e.g. ``"training/"``).
        optimizer_stored : bool
            Whether the file holds this run's optimizer already (it is then not
            stored again).

        Returns
        -------
        spec : dict
            JSON-able settings, counters, generator state, history, schedule state and
            the optimizer's spec (None when ``optimizer_stored``).
        arrays : dict of str to ndarray
            The optimizer's state arrays and the kept best/last parameters.
        """
        arrays: dict[str, np.ndarray] = {}
        spec: dict[str, Any] = {
            "batch_size": self.batch_size, "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "early_stopping": self.early_stopping, "epoch": self.epoch,
            "best": self.best if math.isfinite(self.best) else None,
            "bad_epochs": self.bad_epochs, "stopped": self.stopped, "diverged": self.diverged,
            "rng": self.rng.bit_generator.state, "history": asdict(self.history),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "partial": None if self.partial is None else asdict(self.partial),
            "optimizer": None,
        }
        if not optimizer_stored:
            spec["optimizer"] = optimizer_spec(self.optimizer, f"{prefix}optimizer/", arrays,
                                               self.model.parameters())
        for name in ("best_params", "last_params"):
            saved = getattr(self, name)
            spec[name] = saved is not None
            if saved is not None:
                for i, a in enumerate(saved):
                    arrays[f"{prefix}{name}/{i}"] = a
        return spec, arrays

    @classmethod
    def from_archive(cls, model: Any, spec: dict[str, Any], arrays: dict[str, np.ndarray],
                     prefix: str, optimizer: Optimizer | None) -> TrainingRun:
        """The run a model file holds, over ``model``'s parameters.

        Parameters
        ----------
        model : Sequential
            The loaded model the run trains.
        spec : dict
            The run's spec, as ``to_archive`` wrote it.
        arrays : dict of str to ndarray
            The file's arrays by name; the ones read are removed from it.
        prefix : str
            The prefix of the run's arrays' names.
        optimizer : Optimizer or None
            The file's optimizer when it is the run's (the spec then holds none).

        Returns
        -------
        TrainingRun

        Raises
        ------
        ValueError
            Anything malformed (KeyError and TypeError too; ``fastbp.load`` reports
            each as a ValueError naming the file).
        """
        if spec.get("optimizer") is not None:
            optimizer = optimizer_from_spec(spec["optimizer"], model.parameters(),
                                            f"{prefix}optimizer/", arrays)
        if optimizer is None:
            raise ValueError("the training state has no optimizer")
        run = cls(model, optimizer, batch_size=_opt_int(spec["batch_size"], "batch_size"),
                  shuffle=check.flag(spec["shuffle"], "shuffle"),
                  early_stopping=_opt_int(spec["early_stopping"], "early_stopping"),
                  drop_last=check.flag(spec.get("drop_last", False), "drop_last"))
        state = spec["rng"]
        if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
            raise ValueError("the training state's generator must be a PCG64 state")
        run.rng.bit_generator.state = state
        run.epoch = check.int_in_range(spec["epoch"], "epoch", 0)
        run.best = math.inf if spec["best"] is None else float(spec["best"])
        run.bad_epochs = check.int_in_range(spec["bad_epochs"], "bad_epochs", 0)
        run.stopped = check.flag(spec["stopped"], "stopped")
        run.diverged = spec["diverged"] if isinstance(spec["diverged"], str) else None
        history = spec["history"]
        run.history = History(**{k: history[k] for k in ("loss", "val_loss", "lr",
                                                         "best_epoch", "stopped_early",
                                                         "pruned_at")})
        if spec["scheduler"] is not None:
            run.scheduler = schedules.from_state_dict(optimizer, spec["scheduler"])
        if spec["partial"] is not None:
            run.partial = _Partial(**spec["partial"])
        params = model.parameters()
        for name in ("best_params", "last_params"):
            if spec[name]:
                setattr(run, name, [take(arrays, f"{prefix}{name}/{i}", p.dtype, p.shape)
                                    for i, p in enumerate(params)])
        return run


def _opt_int(value: Any, name: str) -> int | None:
    return None if value is None else check.int_in_range(value, name, 1)


def optimizer_spec(optimizer: Optimizer, prefix: str, arrays: dict[str, np.ndarray],
                   params: list[np.ndarray] | None = None) -> dict[str, Any]:
    """An optimizer's JSON spec for a file; its state arrays are added to ``arrays``.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer to describe.
    prefix : str
        Prepended to the state arrays' names (``<prefix><i>/<name>``).
    arrays : dict of str to ndarray
        The file's arrays, to which the state arrays (copies) are added.
    params : list of ndarray, optional
        The model's parameters (the optimizer's, in any order): the state is written in
        their order, which loading takes.

    Returns
    -------
    dict
        The type, hyper-parameters, step count and each parameter's state names.
    """
    state = optimizer.state_dict()
    if params is not None:   # in the model's order (parameter groups may list another)
        order = in_order_of(optimizer, params)
        state["state"] = [state["state"][i] for i in order]
        if "param_groups" in state:
            state["param_groups"]["member"] = [state["param_groups"]["member"][i]
                                               for i in order]
    for i, s in enumerate(state["state"]):
        for k, a in s.items():
            arrays[f"{prefix}{i}/{k}"] = a
    spec = {"type": state["type"], "hyperparameters": state["hyperparameters"],
            "step": state["step"], "state_names": [sorted(s) for s in state["state"]]}
    if "param_groups" in state:
        spec["param_groups"] = state["param_groups"]
    return spec


def optimizer_from_spec(spec: dict[str, Any], params: list[np.ndarray], prefix: str,
                        arrays: dict[str, np.ndarray]) -> Optimizer:
    """The optimizer an optimizer_spec describes, over ``params``.

    Parameters
    ----------
    spec : dict
        As ``optimizer_spec`` made it.
    params : list of ndarray
        The model's parameters, of the shapes and dtypes the state was saved with.
    prefix : str
        The prefix of the state arrays' names.
    arrays : dict of str to ndarray
        The file's arrays by name; the ones read are removed from it.

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        State that does not match the parameters, or fails the optimizer's checks.
    KeyError, TypeError
        A malformed spec or a missing array.
    """
    names = spec["state_names"]
    if not isinstance(names, list) or len(names) != len(params):
        raise ValueError("the optimizer's state does not match the model's parameters")
    state = [{k: take(arrays, f"{prefix}{i}/{k}", p.dtype, p.shape) for k in keys}
             for i, (p, keys) in enumerate(zip(params, names))]
    return from_state_dict(params, {"type": spec["type"], "step": spec["step"],
                                    "hyperparameters": spec["hyperparameters"],
                                    "state": state,
                                    "param_groups": spec.get("param_groups")})


# ---------------------------------------------------------------- the loop

@contextlib.contextmanager
def ctrl_c_stops_epochs() -> Iterator[None]:
    """While the block runs, Ctrl-C makes the compiled epochs stop after their current
    step (main thread only: signals reach Python there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _network.interrupt_install()
    try:
        yield
    finally:
        _network.interrupt_remove()


@contextlib.contextmanager
def _members_on_shared_threads(models: Sequence[Any]) -> Iterator[None]:
    """Clear the models' own num_threads during the fit (it sets the process-wide
    BLAS count, which concurrent threads must not race on); restored after."""
    saved = [m.num_threads for m in models]
    try:
        for m in models:
            m.num_threads = None
        yield
    finally:
        for m, t in zip(models, saved):
            m.num_threads = t


def _run_parallel(work: list[Callable[[], None]], workers: int) -> None:
    """Every callable of the epoch's work (fastbp._packing.plan: a run's epoch, or a pack
    of runs'), ``workers`` threads pulling them from one queue (a run's result does not
    depend on which thread runs it)."""
    if workers <= 1 or len(work) == 1:
        for job in work:
            job()
        return
    lock = threading.Lock()
    pending = iter(work)
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                job = next(pending, None)
                if job is None or errors:
                    return
            try:
                job()
            except BaseException as exc:  # re-raised in the calling thread
                with lock:
                    errors.append(exc)
                return

    threads = [threading.Thread(target=worker, name=f"fastbp-train-{i}", daemon=True)
               for i in range(min(workers, len(work)) - 1)]
    for t in threads:
        t.start()
    worker()  # the calling thread is one of the workers
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _orders(runs: list[TrainingRun], n: int) -> list[tuple[TrainingRun, Any, Any]]:
    """(run, order, generator state after the draw) per run: runs whose generators are
    in one state share one draw (the order is the same for all of them)."""
    jobs: list[tuple[TrainingRun, Any, Any]] = []
    drawn: dict[Any, tuple[np.ndarray, Any]] = {}
    for run in runs:
        if run.partial is not None or len(runs) == 1:
            jobs.append((run, None, None))
            continue
        key = run.order_key()
        if key not in drawn:
            # drawn from the run's generator, which is then put back: the epoch's start
            # (kept by begin_epoch for an interrupted epoch) is the state before the draw
            before = run.rng.bit_generator.state
            order = run.draw_order(n)
            drawn[key] = (order, run.rng.bit_generator.state)
            run.rng.bit_generator.state = before
        jobs.append((run, drawn[key][0], drawn[key][1]))
    return jobs


def train_runs(runs: list[TrainingRun], data: TrainingData, epochs: int, *,
               num_threads: int | None = None, show_progress: bool = False,
               callbacks: Sequence[Callable[[int, dict[str, float]], Any]] = (),
               after_epoch: Callable[[list[TrainingRun]], None] | None = None) -> None:
    """Train every run for up to ``epochs`` more epochs on ``data``, in place.

    Ctrl-C stops every run after its current step. Divergence stops the run
    concerned (``run.diverged``); the others go on.

    Parameters
    ----------
    runs : list of TrainingRun
        The runs (one for ``fit``, one per member for an Ensemble).
    data : TrainingData
        The arrays every run trains on.
    epochs : int
        The most epochs to train (fewer when every run stopped).
    num_threads : int or None, default None
        Threads sharing out the runs, BLAS then held to one thread each when there
        are several (None: one run at a time, each with its model's own thread
        setting).
    show_progress : bool, default False
        Show a per-epoch progress bar.
    callbacks : sequence of callables, default ()
        ``cb(epoch, logs)`` after each epoch of a single run (fit's); returning
        True stops.
    after_epoch : callable or None, default None
        ``after_epoch(runs)``, called after each epoch's bookkeeping (pruning).

    Raises
    ------
    TrainingInterrupted
        Ctrl-C; every run holds its last step and can continue.
    ValueError
        A row index or label went out of range (data changed during the fit).
    """
    parallel = num_threads is not None and len(runs) > 1
    workers = max(1, min(num_threads or 1, len(runs)))
    blas = (1 if workers > 1 else num_threads) if parallel else None
    bar = Progress(epochs, show_progress)
    interrupted = False
    try:
        with contextlib.ExitStack() as stack:
            if parallel:
                stack.enter_context(_members_on_shared_threads([r.model for r in runs]))
                stack.enter_context(using_threads(blas))
            for k in range(epochs):
                alive = [r for r in runs if r.alive]
                if not alive:
                    break
                with ctrl_c_stops_epochs():
                    _run_parallel(_packing.plan(_orders(alive, data.n), data, workers),
                                  workers)
                if any(r.interrupted for r in alive):
                    # the runs that finished their epoch before the Ctrl-C keep it (its
                    # history line, early stopping); the interrupted ones return None here
                    for r in alive:
                        r.end_epoch(data)
                    interrupted = True
                    break
                logs_of = [r.end_epoch(data) for r in alive]
                if after_epoch is not None:
                    after_epoch(runs)
                if len(runs) == 1:
                    logs = logs_of[0]
                    if logs is None:
                        break
                    bar.update(k, logs)
                    # every callback sees the epoch, even after one asked to stop
                    if [cb(int(logs["epoch"]), dict(logs)) for cb in callbacks].count(True):
                        break
                else:
                    done = [r.history.loss[-1] for r, lg in zip(alive, logs_of) if lg]
                    summary = {"members": float(sum(r.alive for r in runs))}
                    if done:
                        summary["mean_loss"] = float(np.mean(done))
                    bar.update(k, summary)
    except KeyboardInterrupt as exc:   # Ctrl-C outside a compiled epoch
        if isinstance(exc, TrainingInterrupted):
            raise
        interrupted = True
    finally:
        bar.close()
    if interrupted:
        raise TrainingInterrupted(
            "training was interrupted (Ctrl-C) after a complete step: the model holds the "
            "parameters of its last step, and fit(..., resume=True) continues from there",
            [r.history for r in runs])


# ---------------------------------------------------------------- fit

def _make_scheduler(scheduler: Any, opt: Optimizer) -> Any:
    """A schedule bound to ``opt`` from a schedule instance or a factory callable."""
    if scheduler is None:
        return None
    if not isinstance(scheduler, schedules.Schedule):
        scheduler = scheduler(opt)
        if not isinstance(scheduler, schedules.Schedule):
            raise TypeError("scheduler(optimizer) must return a fastbp schedule, got "
                            f"{type(scheduler).__name__}")
    if scheduler.optimizer is not opt:
        raise ValueError("scheduler must be bound to the optimizer used by fit "
                         "(pass the same optimizer instance, or a callable)")
    return scheduler


def _check_scheduler_arg(scheduler: Any) -> None:
    if scheduler is not None and not isinstance(scheduler, schedules.Schedule) \
            and not callable(scheduler):
        raise TypeError("scheduler must be a fastbp schedule or a callable taking the "
                        f"optimizer, got {type(scheduler).__name__}")


#: fit's settings that a resumed fit takes from the run (the defaults of fit's signature)
_RUN_SETTINGS = {"batch_size": 32, "optimizer": "adam", "lr": None, "shuffle": True,
                 "seed": None, "scheduler": None, "early_stopping": None, "drop_last": False}


def _resumed_run(model: Any, given: dict[str, Any], data: TrainingData) -> TrainingRun:
    """The model's last run, checked against the arguments of the resuming call: each
    setting of the run must be left at fit's default or given the run's own value."""
    run = getattr(model, "training_state", None)
    if not isinstance(run, TrainingRun):
        raise ValueError("resume=True continues the model's last fit, and this model has no "
                         "training state (fit it first, or load a file saved after a fit)")
    make_optimizer(run.optimizer, model.parameters(), None)   # still over these parameters
    own = {"batch_size": run.batch_size, "shuffle": run.shuffle, "optimizer": run.optimizer,
           "early_stopping": run.early_stopping, "drop_last": run.drop_last}
    for name, value in given.items():
        default = _RUN_SETTINGS[name]
        if value is default or (type(value) is type(default) and value == default):
            continue   # left at fit's default: the run's setting applies
        if name in own and (value is own[name] or (type(value) is type(own[name])
                                                    and value == own[name])):
            continue
        raise ValueError(f"resume=True continues the last fit with its own {name}; leave "
                         f"{name} out (or pass the run's own value), got {name}={value!r}")
    if run.history.val_loss and data.validation is None:
        raise ValueError("the fit being resumed monitored validation_data: pass it again")
    return run


def fit(model: Any, X: Any, y: Any, *, epochs: int = 10, batch_size: int | None = 32,
        optimizer: Any = "adam", lr: float | None = None, shuffle: bool = True,
        seed: Any = None, validation_data: tuple[Any, Any] | None = None,
        scheduler: Any = None, early_stopping: int | None = None,
        callbacks: Iterable[Callable[[int, dict[str, float]], Any]] = (),
        progress: bool | None = None, sample_weight: Any = None,
        resume: bool = False, dy: Any = None, dy_weight: float = 1.0,
        clip_grad_norm: float | None = None, label_smoothing: float = 0.0,
        param_groups: Any = None, drop_last: bool = False) -> History:
    """Train ``model`` in place with mini-batch gradient descent (``Sequential.fit``).

    Parameters
    ----------
    model : Sequential
        The model to train (a fastbp Sequential or MLP).
    X : array-like of shape (n_samples, in_features)
        Training samples (finite), converted to the model's dtype.
    y : array-like
        Targets: values of shape (n_samples, out_features) or (n_samples,) for one
        output; for cross_entropy int class labels (n_samples,) or class
        probabilities (n_samples, out_features).
    epochs : int, default 10
        Epochs to train (with ``resume=True``: epochs more).
    batch_size : int or None, default 32
        Samples per mini-batch; None is full-batch gradient descent, 1 stochastic
        gradient descent. The last batch of an epoch may be smaller.
    optimizer : str or Optimizer, default "adam"
        "sgd", "adagrad", "rmsprop", "adam" or "adamw" (a fresh optimizer), or an
        optimizer instance built over ``model.parameters()`` (used and advanced
        in place); or "lbfgs": full-batch L-BFGS (``fit_lbfgs``; ``epochs`` is the
        iteration limit, batch_size, shuffle and seed are not used).
    lr : float or None
        The learning rate (None: the optimizer's default, or the instance's own).
    shuffle : bool, default True
        Draw a new sample order each epoch (from ``seed``).
    seed : None, int or numpy SeedSequence-like
        Seeds the batch order: the same seed gives bit-identical training.
    validation_data : (X_val, y_val) or None
        Evaluated after every epoch; then the schedule and early stopping watch
        its loss instead of the training loss.
    scheduler : Schedule, callable or None
        A schedule bound to the optimizer instance, or a callable taking the
        optimizer and returning one; stepped once per epoch (ReduceLROnPlateau
        with the monitored loss).
    early_stopping : int or None
        Stop after this many epochs without improvement of the monitored loss,
        and restore the best epoch's parameters.
    callbacks : iterable of callables
        ``cb(epoch, logs)`` after each epoch, ``logs`` a dict of that epoch's
        numbers ("epoch", "loss", "lr", "val_loss"); returning True stops.
    progress : bool or None
        Show a progress bar (None: only when stderr is a terminal).
    sample_weight : array-like or None
        One finite weight >= 0 per sample (positive sum): each batch's loss is the
        weighted mean over it.
    resume : bool, default False
        Continue the model's last fit (``training_state``) exactly: its
        optimizer state, batch order, schedule, epoch count and early-stopping
        bookkeeping, so fit(epochs=10) then fit(epochs=10, resume=True) equals
        fit(epochs=20). The run's settings (batch_size, optimizer, lr, shuffle,
        seed, scheduler, early_stopping) are left out or given the same values;
        pass the same X, y and validation_data.
    dy : array-like of shape (n_samples, out_features, in_features) or None
        Target derivatives of the raw output with respect to X: the training loss is
        then loss + dy_weight · mean((J - dy)²) over each batch, J the model's Jacobian
        (``jacobian``); History.loss records it (the validation loss stays the plain
        loss). Dense layers without dropout.
    dy_weight : float, default 1.0
        The derivative term's weight (finite, >= 0).
    clip_grad_norm : float or None, default None
        Each step scales every gradient by min(1, c/(‖g‖₂ + 1e-6)), ‖g‖₂ the norm of
        all of them together, before its update (``torch.nn.utils.clip_grad_norm_``,
        inside the compiled epoch). Not with dy or optimizer="lbfgs".
    label_smoothing : float, default 0.0
        ε in [0, 1] for loss="cross_entropy": the training targets become
        (1 − ε)·y + ε/n_classes, which is ``torch.nn.CrossEntropyLoss(label_smoothing=ε)``
        (History.loss records that loss; the validation loss stays the plain one).
        With ``resume``, pass these two as the first fit did (they are not stored).
    param_groups : list of dict, optional
        Parameter groups for a new optimizer of the kind ``optimizer`` names (a name,
        not an instance): dicts {"params": [...], "lr": ..., "weight_decay": ...} over
        the model's parameters, each once (``fastbp.no_decay_groups``); "lr" and
        "weight_decay" default to the optimizer's. A group's lr is kept as its ratio to
        the optimizer's lr, which ``lr`` and schedules set.
    drop_last : bool, default False
        Skip each epoch's last partial batch (see ``Sequential.fit``).

    Returns
    -------
    History
        The run's records (with ``resume``, of every epoch of the run).

    Raises
    ------
    TypeError, ValueError
        A bad argument, named (nothing about the model has changed then).
    TrainingDiverged
        The loss became NaN or infinite; the parameters and the optimizer state
        are restored to the start of that epoch.
    TrainingInterrupted
        Ctrl-C (a KeyboardInterrupt): the fit stopped after its current step;
        ``history`` holds the epochs so far and ``fit(..., resume=True)``
        continues from that step.
    """
    data = TrainingData(model, X, y, sample_weight, validation_data, dy=dy, dy_weight=dy_weight,
                        label_smoothing=label_smoothing, clip_grad_norm=clip_grad_norm)
    epochs = check.int_in_range(epochs, "epochs", 1)
    resume = check.flag(resume, "resume")
    callbacks = list(callbacks)
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables cb(epoch, logs), got {type(cb).__name__}")
    show = sys.stderr.isatty() if progress is None else check.flag(progress, "progress")
    if isinstance(optimizer, str) and optimizer == "lbfgs":
        if resume:
            raise ValueError("resume=True continues a gradient-descent run; an L-BFGS fit "
                             "starts again from the current parameters (leave resume out)")
        for name, value in (("lr", lr), ("scheduler", scheduler),
                            ("early_stopping", early_stopping), ("clip_grad_norm", clip_grad_norm),
                            ("param_groups", param_groups)):
            if value is not None:
                raise ValueError(f"optimizer='lbfgs' takes no {name} (got {name}={value!r})")
        return fit_lbfgs(model, data, epochs, callbacks=callbacks, show_progress=show)
    if resume and param_groups is not None:
        raise ValueError("resume=True continues the last fit with its own optimizer and "
                         "groups; leave param_groups out")
    if resume:
        run = _resumed_run(model, {"batch_size": batch_size, "optimizer": optimizer, "lr": lr,
                                   "shuffle": shuffle, "seed": seed, "scheduler": scheduler,
                                   "early_stopping": early_stopping, "drop_last": drop_last},
                           data)
        if run.stopped:
            return run.history
        run.continue_from_last()
    else:
        run = _new_run(model, batch_size=batch_size, optimizer=optimizer, lr=lr,
                       shuffle=shuffle, seed=seed, scheduler=scheduler,
                       early_stopping=early_stopping, param_groups=param_groups,
                       drop_last=drop_last)
    if run.scheduler is not None and run.scheduler.per_batch:
        # a per-batch schedule too short for this fit refuses now, before any step
        steps = epochs * run.steps_per_epoch(data.n) \
            - (run.partial.steps if run.partial is not None else 0)
        run.scheduler.lrs(steps + 1)
    model.training_state = run
    # A TrainingInterrupted passes through: the model keeps its last step's parameters.
    train_runs([run], data, epochs, show_progress=show, callbacks=callbacks)
    run.restore_best()
    if run.diverged is not None:
        why, run.diverged = run.diverged, None   # the run may be resumed after a change
        raise TrainingDiverged(f"{why[0].upper()}{why[1:]}. Lower the learning rate or check "
                               "the data scale.")
    return run.history


def fit_lbfgs(model: Any, data: TrainingData, max_iter: int, *,
              callbacks: Sequence[Callable[[int, dict[str, float]], Any]] = (),
              show_progress: bool = False) -> History:
    """Full-batch L-BFGS on ``data``: scipy.optimize.minimize(method="L-BFGS-B", jac=True)
    over the model's parameters packed into one float64 vector, the loss and gradient from
    the compiled forward/backward (``Sequential.full_batch_gradient``). One History
    entry per iteration; at most ``max_iter`` iterations; a callback returning True
    stops. The model ends with the last iterate (and no training state: L-BFGS keeps
    none to resume).

    Raises
    ------
    ValueError
        A model with dropout (L-BFGS needs a deterministic loss).
    TrainingDiverged
        The loss or the parameters became non-finite (the parameters are put back to
        where the fit started).
    """
    if any(layer.dropout for layer in model.layers):
        raise ValueError("optimizer='lbfgs' needs a deterministic loss: this model has dropout")
    params, grads = model.parameters(), model.gradients()
    bounds = np.cumsum([0] + [p.size for p in params])
    start = [p.copy() for p in params]
    history = History()
    bar = Progress(max_iter, show_progress)
    last = [math.nan]

    def unpack(x: np.ndarray) -> None:
        for p, lo, hi in zip(params, bounds, bounds[1:]):
            p.reshape(-1)[...] = x[lo:hi]

    def loss_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        unpack(x)
        value = model.full_batch_gradient(data)
        last[0] = value
        if not math.isfinite(value):
            return math.inf, np.zeros_like(x)
        return value, np.concatenate([g.reshape(-1) for g in grads]).astype(np.float64)

    def after_iteration(x: np.ndarray) -> None:
        epoch = history.epochs
        history.loss.append(last[0])
        history.lr.append(math.nan)
        logs = {"epoch": float(epoch), "loss": last[0]}
        if data.validation is not None:
            unpack(x)
            val = model.loss(*data.validation)
            history.val_loss.append(val)
            logs["val_loss"] = val
        bar.update(epoch, logs)
        if [cb(epoch, dict(logs)) for cb in callbacks].count(True):
            raise StopIteration

    x0 = np.concatenate([p.reshape(-1) for p in params]).astype(np.float64)
    model.training_state = None
    try:
        result = minimize(loss_grad, x0, jac=True, method="L-BFGS-B", callback=after_iteration,
                          options={"maxiter": max_iter, "maxfun": 20 * max_iter + 20})
        x = result.x
    finally:
        bar.close()
    unpack(x)
    if not (math.isfinite(model.full_batch_gradient(data))
            and all(np.isfinite(p).all() for p in params)):
        for p, saved in zip(params, start):
            p[...] = saved
        raise TrainingDiverged("L-BFGS diverged: the loss or the parameters became non-finite; "
                               "the parameters were put back to where the fit started")
    return history


def _grouped_optimizer(optimizer: Any, param_groups: Any, lr: float | None) -> Optimizer:
    """A new optimizer of the kind ``optimizer`` names over ``param_groups``."""
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise ValueError(f"param_groups builds a new optimizer: give optimizer as one of "
                         f"{tuple(OPTIMIZERS)} (or build yours over the groups), got "
                         f"{optimizer!r}")
    if isinstance(param_groups, dict) or not isinstance(param_groups, (list, tuple)) \
            or not param_groups or not all(isinstance(g, dict) for g in param_groups):
        raise TypeError("param_groups must be a non-empty list of dicts {'params': [...], "
                        "'lr': ..., 'weight_decay': ...} (see fastbp.no_decay_groups)")
    cls = OPTIMIZERS[optimizer]
    return cls(param_groups) if lr is None else cls(param_groups, lr=lr)


def _new_run(model: Any, *, batch_size: Any, optimizer: Any, lr: Any, shuffle: Any,
             seed: Any, scheduler: Any, early_stopping: Any,
             param_groups: Any = None, drop_last: Any = False) -> TrainingRun:
    """A fresh run, every argument checked before anything changes (the optimizer's
    learning rate is assigned last, and put back if the schedule cannot be built).
    ``param_groups``: a new optimizer of the kind ``optimizer`` names, over them."""
    batch = None if batch_size is None else check.int_in_range(batch_size, "batch_size", 1)
    if early_stopping is not None:
        early_stopping = check.int_in_range(early_stopping, "early_stopping", 1)
    shuffle = check.flag(shuffle, "shuffle")
    drop_last = check.flag(drop_last, "drop_last")
    _check_scheduler_arg(scheduler)
    if lr is not None:
        lr = CHECKS["lr"](lr, "lr")
    np.random.default_rng(seed)   # a bad seed raises here, before anything changed
    if param_groups is not None:
        optimizer = _grouped_optimizer(optimizer, param_groups, lr)
    previous_lr = optimizer.lr if isinstance(optimizer, Optimizer) else None
    opt = make_optimizer(optimizer, model.parameters(), lr)
    try:
        sched = _make_scheduler(scheduler, opt)
    except BaseException:
        if previous_lr is not None:
            opt.lr = previous_lr
        raise
    return TrainingRun(model, opt, batch_size=batch, shuffle=shuffle,
                       early_stopping=early_stopping, seed=seed, scheduler=sched,
                       drop_last=drop_last)
