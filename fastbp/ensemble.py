"""Many models in one call: ``fastbp.Ensemble``.

An ensemble trains its members in place, each exactly as ``member.fit`` with
the same arguments (its own learning rate, weight decay and seed) would: every
member runs the same compiled epoch (``Sequential.train_epoch``, which runs
``Engine.epoch``) over the same batch order that ``fit`` would
draw, with the same divergence and early-stopping rules. The ensemble is a
speed device only: the members are split over ``num_threads`` OS threads,
each compiled epoch runs without the GIL, and BLAS is held to one thread while
several threads train (one core per thread; small products gain nothing from
BLAS threads). With ``client`` the members are split over a Dask cluster's
workers instead (fastbp/_dask.py).
"""
from __future__ import annotations

import contextlib
import math
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from fastbp import _validation as check
from fastbp._optim_config import CHECKS
from fastbp.models import MLP, Sequential
from fastbp.optim import OPTIMIZERS, Optimizer, make_optimizer
from fastbp.threads import _check as _check_threads
from fastbp.threads import get_num_threads, using_threads
from fastbp.training import (History, Progress, TrainingDiverged, _finite, _int_at_least,
                             check_validation_data)

__all__ = ["Ensemble"]

#: optimizer kinds the compiled epoch knows (fastbp._optim_config's *Config.kind)
_ENGINE_KINDS = (0, 1, 2, 3)


def _per_member(value: Any, name: str, n: int) -> list[Any]:
    """``value`` repeated n times, or the n values of a list/tuple/1-D array."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return [value.item()] * n
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must be a scalar or hold one value per member ({n}), "
                             f"got {len(value)} values")
        return list(value)
    return [value] * n


def _seed(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be None, an int or one int per member, got "
                        f"{type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return int(value)


@dataclass
class _Member:
    """One member's training run: its optimizer, batch-order key and bookkeeping
    (the same quantities fit keeps in local variables)."""

    model: Sequential
    opt: Optimizer
    seed: int
    history: History = field(default_factory=History)
    alive: bool = True
    best: float = math.inf
    best_params: list[np.ndarray] | None = None
    bad_epochs: int = 0
    diverged: str | None = None
    # filled by each epoch (in a worker thread), read by the bookkeeping
    start_params: list[np.ndarray] = field(default_factory=list)
    start_state: dict[str, Any] = field(default_factory=dict)
    lr_used: float = 0.0
    steps: int = 0
    total: float = 0.0
    finite: bool = True
    val: float = math.nan


@dataclass
class _Plan:
    """Everything fit needs, checked (building it changes no member)."""

    X: np.ndarray
    y: np.ndarray
    validation: tuple[np.ndarray, np.ndarray] | None
    epochs: int
    batch: int
    shuffle: bool
    early_stopping: int | None
    num_threads: int
    members: list[_Member]
    show: bool
    #: checked float64 weights (fastbp._validation.sample_weight), the same for every member
    sample_weight: np.ndarray | None = None


class Ensemble:
    """Members (fastbp Sequential/MLP models of one dtype, one loss, one input and
    output width) trained in place in one call; see API.md, "Many models at once"."""

    def __init__(self, models: Any) -> None:
        if isinstance(models, (Sequential, str, bytes)) or not hasattr(models, "__iter__"):
            raise TypeError(f"models must be a sequence of fastbp models, got "
                            f"{type(models).__name__}")
        models = tuple(models)
        if not models:
            raise ValueError("models must hold at least one model, got an empty sequence")
        seen: dict[int, int] = {}
        for i, m in enumerate(models):
            if not isinstance(m, Sequential):
                raise TypeError(f"models[{i}] must be a fastbp Sequential/MLP, got "
                                f"{type(m).__name__}")
            if id(m) in seen:
                raise ValueError(f"models[{i}] is the same object as models[{seen[id(m)]}]; "
                                 "each member must be its own model")
            seen[id(m)] = i
        first = models[0]
        for i, m in enumerate(models[1:], 1):
            if m.dtype != first.dtype:
                raise TypeError(f"models must share one dtype: models[0] is {first.dtype}, "
                                f"models[{i}] is {m.dtype}")
            if m.loss_name != first.loss_name:
                raise ValueError(f"models must share one loss: models[0] has "
                                 f"{first.loss_name!r}, models[{i}] has {m.loss_name!r}")
            if (m.in_features, m.out_features) != (first.in_features, first.out_features):
                raise ValueError(
                    f"models must share in_features and out_features: models[0] maps "
                    f"{first.in_features} -> {first.out_features}, models[{i}] maps "
                    f"{m.in_features} -> {m.out_features}")
        arrays: dict[int, int] = {}
        for i, m in enumerate(models):
            for p in m.parameters():
                j = arrays.setdefault(id(p), i)
                if j != i:
                    raise ValueError(f"models[{i}] shares a parameter array with models[{j}]; "
                                     "each member must own its parameters")
        self._models = models

    @classmethod
    def of(cls, n_models: int, sizes: Sequence[int], *, activation: str = "relu",
           loss: str = "mse", dtype: Any = "float32", seed: int = 0,
           dropout: float = 0.0) -> Ensemble:
        """n_models fresh MLPs; member i is
        MLP(sizes, activation, loss, dtype=dtype, seed=seed + i, dropout=dropout)."""
        n_models = _int_at_least(n_models, "n_models", 1)
        seed = _seed(seed, "seed")
        return cls([MLP(sizes, activation, loss, dtype=dtype, seed=seed + i, dropout=dropout)
                    for i in range(n_models)])

    # ---------------------------------------------------------------- members
    @property
    def models(self) -> tuple[Sequential, ...]:
        """The members, in order (the live models, trained in place by fit)."""
        return self._models

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[Sequential]:
        return iter(self._models)

    def __getitem__(self, i: int) -> Sequential:
        return self._models[i]

    def __repr__(self) -> str:
        return f"Ensemble({len(self._models)} members, {self.dtype}, loss={self.loss_name!r})"

    @property
    def dtype(self) -> np.dtype:
        return self._models[0].dtype

    @property
    def loss_name(self) -> str:
        return self._models[0].loss_name

    @property
    def in_features(self) -> int:
        return self._models[0].in_features

    @property
    def out_features(self) -> int:
        return self._models[0].out_features

    # ---------------------------------------------------------------- predictions
    def predict_all(self, X: Any) -> np.ndarray:
        """Every member's raw output: (n_models, n_samples, out_features)."""
        X = self._models[0].check_X(X)
        return np.stack([m.forward(X) for m in self._models])

    def predict_proba(self, X: Any) -> np.ndarray:
        """The mean over members of their class probabilities (cross-entropy losses)."""
        if self.loss_name not in ("cross_entropy", "binary_cross_entropy"):
            raise ValueError(f"predict_proba needs a cross-entropy loss; this ensemble's loss "
                             f"is {self.loss_name!r} (use predict)")
        X = self._models[0].check_X(X)
        return np.mean([m.predict_proba(X) for m in self._models], axis=0)

    def predict(self, X: Any) -> np.ndarray:
        """Mean output (regression); for cross_entropy the argmax of the mean
        probabilities, for binary_cross_entropy 1 where the mean probability > 0.5."""
        if self.loss_name == "cross_entropy":
            return self.predict_proba(X).argmax(axis=1)
        if self.loss_name == "binary_cross_entropy":
            return (self.predict_proba(X) > 0.5).astype(np.intp)
        return self.predict_all(X).mean(axis=0)

    def evaluate(self, X: Any, y: Any) -> np.ndarray:
        """Each member's mean loss on (X, y): shape (n_models,)."""
        X, y = self._models[0].check_Xy(X, y)
        return np.array([m.loss(X, y) for m in self._models])

    # ---------------------------------------------------------------- files
    def save(self, path: Any) -> None:
        """Write every member to one file (fastbp.load reads it back as an Ensemble)."""
        from fastbp.io import save_ensemble  # (here: fastbp.io imports this module)
        save_ensemble(self, path)

    # ---------------------------------------------------------------- training
    def fit(self, X: Any, y: Any, *, epochs: int = 10, batch_size: int | None = 32,
            optimizer: Any = "adam", lr: Any = None, weight_decay: Any = None,
            shuffle: bool = True, seed: Any = None,
            validation_data: tuple[Any, Any] | None = None, early_stopping: int | None = None,
            sample_weight: Any = None, num_threads: int | None = None, client: Any = None,
            progress: bool | None = None) -> list[History]:
        """Train every member in place; returns one History per member.

        ``optimizer``: a name (each member gets a fresh optimizer of that kind,
        with its lr and weight_decay), or one fastbp optimizer instance per member,
        each built over that member's parameters (then used and advanced in place,
        as fit does with an instance; lr and weight_decay, if given, are assigned
        to them). ``seed``: None (a fresh random batch order, shared by all
        members), an int (every member sees that seed's order) or one int per
        member. ``sample_weight`` (None or one finite weight >= 0 per sample,
        positive sum; checked once) weights every member's training loss as
        ``fit(..., sample_weight=w)`` does (the validation loss stays unweighted, as
        fit's). If a member diverges, it is restored to the start of that epoch
        and stops while the others go on; at the end TrainingDiverged names it
        (the histories are its ``histories`` attribute). ``num_threads`` (default
        fastbp.get_num_threads()) OS threads share out the members. With ``client``
        (a dask.distributed.Client) the members train on that cluster's workers
        instead, each worker on its own thread count (``num_threads`` and
        ``progress`` then do not apply), with the same results.
        """
        if client is not None:
            from fastbp._dask import check_client  # (here: fastbp._dask imports this module)
            check_client(client)
        plan = self._plan(X, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                          lr=lr, weight_decay=weight_decay, shuffle=shuffle, seed=seed,
                          validation_data=validation_data, early_stopping=early_stopping,
                          sample_weight=sample_weight, num_threads=num_threads,
                          progress=progress)
        if client is not None:
            from fastbp._dask import fit_on_cluster
            fit_on_cluster(plan, client)
        else:
            train(plan)
        return finish(plan)

    def _plan(self, X: Any, y: Any, *, epochs: Any, batch_size: Any, optimizer: Any, lr: Any,
              weight_decay: Any, shuffle: Any, seed: Any, validation_data: Any,
              early_stopping: Any, sample_weight: Any, num_threads: Any,
              progress: Any) -> _Plan:
        """Check every argument and build the members' optimizers; changes no member
        (instances' lr/weight_decay are assigned last, after every check passed)."""
        models = self._models
        n_models = len(models)
        first = models[0]
        X, y = first.check_Xy(X, y)
        _finite(X, "X")
        _finite(y, "y")
        n = X.shape[0]
        weights = check.sample_weight(sample_weight, n)   # once, as fit checks them
        epochs = _int_at_least(epochs, "epochs", 1)
        batch = n if batch_size is None else min(_int_at_least(batch_size, "batch_size", 1), n)
        if early_stopping is not None:
            early_stopping = _int_at_least(early_stopping, "early_stopping", 1)
        shuffle = check.flag(shuffle, "shuffle")
        validation = None
        if validation_data is not None:
            validation = check_validation_data(first, validation_data)
        if num_threads is None:
            num_threads = get_num_threads()
        else:
            num_threads = _check_threads(num_threads)
        lrs = [None if v is None else CHECKS["lr"](v, f"lr[{i}]")
               for i, v in enumerate(_per_member(lr, "lr", n_models))]
        decays = [None if v is None else CHECKS["weight_decay"](v, f"weight_decay[{i}]")
                  for i, v in enumerate(_per_member(weight_decay, "weight_decay", n_models))]
        if seed is None:
            # One fresh order shared by all members (fit with seed=None draws a fresh one too).
            seeds = [int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> 1)] * n_models
        else:
            seeds = [_seed(s, "seed" if not isinstance(seed, (list, tuple, np.ndarray))
                           else f"seed[{i}]")
                     for i, s in enumerate(_per_member(seed, "seed", n_models))]
        opts = self._optimizers(optimizer, lrs, decays)
        show = sys.stderr.isatty() if progress is None else check.flag(progress, "progress")
        return _Plan(X, y, validation, epochs, batch, shuffle, early_stopping, num_threads,
                     [_Member(m, o, s) for m, o, s in zip(models, opts, seeds)], show, weights)

    def _optimizers(self, optimizer: Any, lrs: list[float | None],
                    decays: list[float | None]) -> list[Optimizer]:
        models = self._models
        if isinstance(optimizer, str):
            if optimizer not in OPTIMIZERS:
                raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)} or one optimizer "
                                 f"instance per member, got {optimizer!r}")
            cls = OPTIMIZERS[optimizer]
            opts = []
            for m, lr, wd in zip(models, lrs, decays):
                kwargs: dict[str, Any] = {}
                if lr is not None:
                    kwargs["lr"] = lr
                if wd is not None:
                    kwargs["weight_decay"] = wd
                opts.append(cls(m.parameters(), **kwargs))
            return opts
        if isinstance(optimizer, Optimizer) or not isinstance(optimizer, (list, tuple)):
            raise TypeError("optimizer must be a name (one fresh optimizer per member is made) or "
                            "a list holding one fastbp optimizer instance per member, got "
                            f"{type(optimizer).__name__}")
        if len(optimizer) != len(models):
            raise ValueError(f"optimizer must hold one instance per member ({len(models)}), got "
                             f"{len(optimizer)}")
        seen: set[int] = set()
        for i, (m, opt) in enumerate(zip(models, optimizer)):
            if not isinstance(opt, Optimizer):
                raise TypeError(f"optimizer[{i}] must be a fastbp optimizer, got "
                                f"{type(opt).__name__}")
            if opt.kind not in _ENGINE_KINDS:
                raise TypeError(f"optimizer[{i}]: the compiled epoch knows fastbp's SGD, AdaGrad, "
                                f"RMSprop, Adam and AdamW, not {type(opt).__name__}")
            if id(opt) in seen:
                raise ValueError(f"optimizer[{i}] appears twice; each member needs its own")
            seen.add(id(opt))
            try:
                make_optimizer(opt, m.parameters(), None)
            except ValueError as exc:
                raise ValueError(f"optimizer[{i}] must be built over models[{i}].parameters()"
                                 ) from exc
            if decays[i] is not None and not hasattr(opt, "weight_decay"):
                raise TypeError(f"optimizer[{i}] has no weight_decay")
        # Every check passed: only now assign the requested hyper-parameters.
        for opt, lr, wd in zip(optimizer, lrs, decays):
            if lr is not None:
                opt.lr = lr
            if wd is not None:
                opt.weight_decay = wd
        return list(optimizer)


# ---------------------------------------------------------------- the training loop

@contextlib.contextmanager
def _members_on_shared_threads(models: Sequence[Sequential]) -> Iterator[None]:
    """Clear the members' own num_threads during the fit (it sets the process-wide
    BLAS count, which concurrent threads must not race on); restored after."""
    saved = [m.num_threads for m in models]
    try:
        for m in models:
            m.num_threads = None
        yield
    finally:
        for m, t in zip(models, saved):
            m.num_threads = t


def _member_epoch(r: _Member, X: np.ndarray, y: np.ndarray, order: np.ndarray, batch: int,
                  validation: tuple[np.ndarray, np.ndarray] | None,
                  sample_weight: np.ndarray | None) -> None:
    """One epoch of one member as fit runs it: snapshot, compiled epoch (with fit's
    checked weights), finiteness check and validation loss. Runs in a worker thread;
    touches only this member (the engines only read X, y and the weights)."""
    model, opt = r.model, r.opt
    r.start_params = [p.copy() for p in model.parameters()]
    r.start_state = opt.state_dict()
    r.lr_used = opt.lr
    r.steps, r.total = model.train_epoch(X, y, order, batch, opt, sample_weight)
    r.finite = r.steps >= 0 and all(np.isfinite(p).all() for p in model.parameters())
    if r.finite and validation is not None:
        r.val = model.loss(*validation)


def _after_epoch(r: _Member, epoch: int, n: int, plan: _Plan) -> None:
    """fit's per-epoch bookkeeping for one member: divergence, history, early stopping."""
    if not r.finite:
        for p, saved in zip(r.model.parameters(), r.start_params):
            p[...] = saved
        r.opt.load_state_dict(r.start_state)
        where = (f"the training loss became {r.total} at step {-r.steps}" if r.steps < 0
                 else "the last update made the parameters non-finite")
        r.diverged = (f"training diverged in epoch {epoch}: {where}; its parameters and "
                      "optimizer state were restored to the start of that epoch")
        r.alive = False
        return
    r.history.loss.append(r.total / n)
    r.history.lr.append(r.lr_used)
    monitored = r.total / n
    if plan.validation is not None:
        r.history.val_loss.append(r.val)
        monitored = r.val
    if plan.early_stopping is not None:
        if monitored < r.best:
            r.best = monitored
            r.best_params = [p.copy() for p in r.model.parameters()]
            r.history.best_epoch = epoch
            r.bad_epochs = 0
        else:
            r.bad_epochs += 1
            if r.bad_epochs >= plan.early_stopping:
                r.history.stopped_early = True
                r.alive = False


def _run_parallel(jobs: list[tuple[_Member, np.ndarray]], plan: _Plan, workers: int) -> None:
    """Run every job's epoch, ``workers`` threads pulling members from one queue (a
    member's result does not depend on which thread runs it)."""
    lock = threading.Lock()
    pending = iter(jobs)
    errors: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                job = next(pending, None)
                if job is None or errors:
                    return
            try:
                _member_epoch(job[0], plan.X, plan.y, job[1], plan.batch, plan.validation,
                              plan.sample_weight)
            except BaseException as exc:  # re-raised in the calling thread
                with lock:
                    errors.append(exc)
                return

    threads = [threading.Thread(target=work, name=f"fastbp-ensemble-{i}", daemon=True)
               for i in range(min(workers, len(jobs)) - 1)]
    for t in threads:
        t.start()
    work()  # the calling thread is one of the workers
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def train(plan: _Plan) -> None:
    """Train every member of the plan in place (the local route)."""
    members = plan.members
    n = plan.X.shape[0]
    workers = max(1, min(plan.num_threads, len(members)))
    # One core per thread when several train at once; one thread may use them all.
    blas = 1 if workers > 1 else plan.num_threads
    rngs = {s: np.random.default_rng(s) for s in dict.fromkeys(r.seed for r in members)}
    identity = np.arange(n, dtype=np.intp)
    bar = Progress(plan.epochs, plan.show)
    try:
        with _members_on_shared_threads([r.model for r in members]), using_threads(blas):
            for epoch in range(plan.epochs):
                alive = [r for r in members if r.alive]
                if not alive:
                    break
                # fit draws one permutation per epoch from default_rng(seed): members
                # with one seed share the draw (a stopped member needs no more).
                orders = {}
                for s in dict.fromkeys(r.seed for r in alive):
                    orders[s] = (rngs[s].permutation(n).astype(np.intp, copy=False)
                                 if plan.shuffle and plan.batch < n else identity)
                _run_parallel([(r, orders[r.seed]) for r in alive], plan, workers)
                for r in alive:
                    _after_epoch(r, epoch, n, plan)
                done = [r.history.loss[-1] for r in alive if r.diverged is None]
                logs = {"members": float(sum(r.alive for r in members))}
                if done:
                    logs["mean_loss"] = float(np.mean(done))
                bar.update(epoch, logs)
    finally:
        bar.close()
    for r in members:
        if r.best_params is not None and r.diverged is None:
            for p, saved in zip(r.model.parameters(), r.best_params):
                p[...] = saved
        r.best_params = None
        r.start_params = []
        r.start_state = {}


def finish(plan: _Plan) -> list[History]:
    """The histories; TrainingDiverged naming every member that diverged."""
    histories = [r.history for r in plan.members]
    bad = [(i, r.diverged) for i, r in enumerate(plan.members) if r.diverged is not None]
    if bad:
        lines = "; ".join(f"member {i}: {why}" for i, why in bad)
        exc = TrainingDiverged(f"{len(bad)} of {len(plan.members)} members diverged ({lines}). "
                               "The other members finished their training. Lower the learning "
                               "rate or check the data scale.")
        exc.histories = histories  # type: ignore[attr-defined]
        raise exc
    return histories
