"""Many models in one call: ``fastbp.Ensemble``.

An ensemble trains its members in place, each exactly as ``member.fit`` with
the same arguments (its own learning rate, weight decay and seed) would: each
member is one ``fastbp.training.TrainingRun``, and ``train_runs`` steps them
all through the same epochs as ``fit`` steps one. The ensemble is a speed
device only: the members are split over ``num_threads`` OS threads, each
compiled epoch runs without the GIL, and BLAS is held to one thread while
several threads train (one core per thread; small products gain nothing from
BLAS threads). With ``client`` the members are split over a Dask cluster's
workers instead (fastbp/_dask.py).
"""
from __future__ import annotations

import sys
from typing import Any, Iterator, Sequence

import numpy as np

from fastbp import _dask, _storage
from fastbp import _validation as check
from fastbp._optim_config import CHECKS
from fastbp._table import CLASSIFICATION_LOSSES
from fastbp._sparse import SparseRows
from fastbp.models import MLP, Sequential, _require_finite
from fastbp.optim import OPTIMIZERS, Optimizer, make_optimizer
from fastbp.pruning import Halving, check_pruner
from fastbp.threads import check_threads
from fastbp.threads import get_num_threads
from fastbp.training import (History, TrainingData, TrainingDiverged, TrainingInterrupted,
                             TrainingRun, train_runs)

__all__ = ["Ensemble"]


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


#: np.lib.array_utils.byte_bounds (NumPy 2), np.byte_bounds before
_byte_bounds = getattr(getattr(np.lib, "array_utils", np), "byte_bounds")


def _check_own_memory(models: Sequence[Sequential]) -> None:
    """No two members' parameter arrays overlap in memory (views of one buffer would
    make their updates race): the arrays' byte ranges, sorted, must not overlap."""
    bounds = []
    for i, m in enumerate(models):
        for p in m.parameters():
            lo, hi = _byte_bounds(p)
            bounds.append((lo, hi, i))
    bounds.sort()
    for (lo1, hi1, i), (lo2, hi2, j) in zip(bounds, bounds[1:]):
        if lo2 < hi1 and i != j:
            raise ValueError(f"models[{max(i, j)}] shares parameter memory with "
                             f"models[{min(i, j)}]; each member must own its parameters")


class Ensemble:
    """Members trained in place in one call, and predicting together.

    Parameters
    ----------
    models : sequence of Sequential
        The members (fastbp Sequential/MLP models of one dtype, one loss, one input
        and output width), each its own object owning its parameters.

    Raises
    ------
    TypeError
        ``models`` not a sequence of fastbp models, or members of several dtypes.
    ValueError
        No member, a member given twice or sharing parameter memory with another,
        members of different losses or widths.
    """

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
        _check_own_memory(models)
        self._models = models

    @classmethod
    def of(cls, n_models: int, sizes: Sequence[int], *, activation: str = "relu",
           loss: str = "mse", dtype: Any = "float32", seed: int = 0,
           dropout: float = 0.0) -> Ensemble:
        """``n_models`` fresh MLPs, member i seeded with ``seed + i``.

        Member i is
        ``MLP(sizes, activation, loss, dtype=dtype, seed=seed + i, dropout=dropout)``.

        Parameters
        ----------
        n_models : int
            The number of members (>= 1).
        sizes : sequence of int
            (in_features, hidden widths..., out_features), as ``fastbp.MLP`` takes it.
        activation : str, default "relu"
            The hidden layers' activation, one of ``fastbp.ACTIVATIONS``.
        loss : str, default "mse"
            One of ``fastbp.LOSSES``.
        dtype : {"float32", "float64"}, default "float32"
            The members' dtype.
        seed : int, default 0
            The first member's seed (>= 0); member i draws its weights from seed + i.
        dropout : float, default 0.0
            Dropout on every hidden layer's output, in training only (0 <= dropout < 1).

        Returns
        -------
        Ensemble

        Raises
        ------
        TypeError
            ``n_models`` or ``seed`` not an int, and whatever ``fastbp.MLP`` refuses.
        ValueError
            ``n_models`` < 1, a negative ``seed``, and whatever ``fastbp.MLP`` refuses.
        """
        n_models = check.int_in_range(n_models, "n_models", 1)
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
        """The members' dtype."""
        return self._models[0].dtype

    @property
    def loss_name(self) -> str:
        """The members' loss."""
        return self._models[0].loss_name

    @property
    def in_features(self) -> int:
        """The members' input width."""
        return self._models[0].in_features

    @property
    def out_features(self) -> int:
        """The members' output width."""
        return self._models[0].out_features

    # ---------------------------------------------------------------- predictions
    def _checked_X(self, X: Any, check_finite: bool) -> np.ndarray | SparseRows:
        check_finite = check.flag(check_finite, "check_finite")
        X = self._models[0].check_X(X)
        if check_finite:
            _require_finite(X)
        return X

    def predict_all(self, X: Any, *, check_finite: bool = True) -> np.ndarray:
        """Every member's raw output: (n_models, n_samples, out_features).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            Real numbers, converted to the members' dtype.
        check_finite : bool, default True
            Refuse NaN and infinite values in X (False skips the check, for input
            known to be finite).

        Returns
        -------
        ndarray of shape (n_models, n_samples, out_features)
            Member k's ``forward(X)`` at index k, in the members' dtype.

        Raises
        ------
        TypeError
            X not real numbers; ``check_finite`` not a bool.
        ValueError
            X of the wrong shape or width, or (with check_finite) not finite.
        """
        X = self._checked_X(X, check_finite)
        return np.stack([m.forward(X, check_finite=False) for m in self._models])

    def predict_proba(self, X: Any, *, check_finite: bool = True) -> np.ndarray:
        """The mean over members of their class probabilities (cross-entropy losses).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            Real numbers, converted to the members' dtype.
        check_finite : bool, default True
            Refuse NaN and infinite values in X (False skips the check, for input
            known to be finite).

        Returns
        -------
        ndarray of shape (n_samples, out_features)
            The mean of the members' ``predict_proba(X)`` (softmax or sigmoid of their
            logits).

        Raises
        ------
        TypeError
            X not real numbers; ``check_finite`` not a bool.
        ValueError
            A regression loss (use predict); X of the wrong shape or width, or (with
            check_finite) not finite.
        """
        if self.loss_name not in CLASSIFICATION_LOSSES:
            raise ValueError(f"predict_proba needs a cross-entropy loss; this ensemble's loss "
                             f"is {self.loss_name!r} (use predict)")
        X = self._checked_X(X, check_finite)
        return np.mean([m.predict_proba(X, check_finite=False) for m in self._models], axis=0)

    def predict(self, X: Any, *, check_finite: bool = True) -> np.ndarray:
        """The members' joint prediction: mean output, or labels from mean probabilities.

        Mean output (regression); for cross_entropy the argmax of the mean
        probabilities, for binary_cross_entropy 1 where the mean probability > 0.5.
        Shape (n_samples,) for cross_entropy and for one output, as Sequential.predict.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            Real numbers, converted to the members' dtype.
        check_finite : bool, default True
            Refuse NaN and infinite values in X (False skips the check, for input
            known to be finite).

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, out_features)
            Values (regression losses), int class labels (cross_entropy) or 0/1 int
            labels (binary_cross_entropy).

        Raises
        ------
        TypeError
            X not real numbers; ``check_finite`` not a bool.
        ValueError
            X of the wrong shape or width, or (with check_finite) not finite.
        """
        if self.loss_name == "cross_entropy":
            return self.predict_proba(X, check_finite=check_finite).argmax(axis=1)
        if self.loss_name == "binary_cross_entropy":
            out = (self.predict_proba(X, check_finite=check_finite) > 0.5).astype(np.intp)
        else:
            out = self.predict_all(X, check_finite=check_finite).mean(axis=0)
        return out[:, 0] if out.shape[1] == 1 else out

    def evaluate(self, X: Any, y: Any, *, check_finite: bool = True) -> np.ndarray:
        """Each member's mean loss on (X, y): shape (n_models,).

        Parameters
        ----------
        X : array-like of shape (n_samples, in_features)
            At least one sample, converted to the members' dtype.
        y : array-like
            The targets, as ``Sequential.fit`` takes them.
        check_finite : bool, default True
            Refuse NaN and infinite values in X.

        Returns
        -------
        ndarray of shape (n_models,)
            Member k's ``loss(X, y)`` at index k (float64; no dropout, no objective
            scaling).

        Raises
        ------
        TypeError
            X or y not real numbers; ``check_finite`` not a bool.
        ValueError
            Shapes that do not fit the members, no sample, targets the loss refuses, or
            (with check_finite) a non-finite X.
        """
        X, y = self._models[0].check_Xy(X, y)
        self._checked_X(X, check_finite)
        return np.array([m.loss(X, y, check_finite=False) for m in self._models])

    # ---------------------------------------------------------------- files
    def save(self, path: Any) -> None:
        """Write every member to one file at ``path``, atomically and without pickle.

        ``fastbp.load`` reads it back as an Ensemble. Any number of members fits.

        Parameters
        ----------
        path : str, bytes or os.PathLike
            The file to write (replaced if it exists); its directory must exist.

        Raises
        ------
        TypeError
            ``path`` is not a path.
        ValueError
            An empty path.
        FileNotFoundError, IsADirectoryError, PermissionError
            The directory is missing, ``path`` is a directory, or it cannot be written.
        """
        header, arrays = self.to_archive()
        _storage.write_archive(path, header, arrays)

    def to_archive(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(header, arrays) of the ensemble's file.

        Returns
        -------
        header : dict
            JSON-able: ``"kind": "ensemble"``, the shared dtype and loss, and one
            architecture spec per member under ``"members"``.
        arrays : dict of str to ndarray
            Every member's parameters (the live arrays), member k's under ``members/<k>/``.
        """
        arrays: dict[str, np.ndarray] = {}
        members = []
        for k, model in enumerate(self._models):
            spec, member_arrays = model.model_archive(f"members/{k}/")
            del spec["dtype"], spec["loss"]   # stored once, for every member
            members.append(spec)
            arrays.update(member_arrays)
        header = {"kind": "ensemble", "dtype": self.dtype.name, "loss": self.loss_name,
                  "members": members}
        return header, arrays

    @classmethod
    def from_archive(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Ensemble:
        """The ensemble an ensemble file's header and arrays describe.

        Parameters
        ----------
        header : dict
            The file's header (as ``to_archive`` makes it).
        arrays : dict of str to ndarray
            The file's arrays by name; the ones read are removed from it.

        Returns
        -------
        Ensemble
            New members holding copies of the arrays.

        Raises
        ------
        ValueError, KeyError, TypeError
            A malformed header or missing, misshapen arrays (``fastbp.load`` reports
            each as a ValueError naming the file).
        """
        members = header["members"]
        if not isinstance(members, list):
            raise ValueError("members must be a list")
        return cls([Sequential.from_archive(dict(m, dtype=header["dtype"], loss=header["loss"]),
                                            arrays, f"members/{k}/")[0]
                    for k, m in enumerate(members)])

    # ---------------------------------------------------------------- training
    def fit(self, X: Any, y: Any, *, epochs: int = 10, batch_size: int | None = 32,
            optimizer: Any = "adam", lr: Any = None, weight_decay: Any = None,
            shuffle: bool = True, seed: Any = None,
            validation_data: tuple[Any, Any] | None = None, early_stopping: int | None = None,
            sample_weight: Any = None, num_threads: int | None = None, client: Any = None,
            progress: bool | None = None, prune: Any = None, pack: bool = True
            ) -> list[History]:
        """Train every member in place, each as its own ``fit`` would; one History each.

        Parameters
        ----------
        X, y, epochs, batch_size, shuffle, validation_data, early_stopping, sample_weight
            As ``Sequential.fit``, the same for every member (sample weights weight
            the training loss; the validation loss stays unweighted, as fit's).
        optimizer : str or list of Optimizer, default "adam"
            A name (each member gets a fresh optimizer of that kind, with its lr and
            weight_decay), or one fastbp optimizer instance per member, each built
            over that member's parameters (used and advanced in place; lr and
            weight_decay, if given, are assigned to them).
        lr, weight_decay : float, sequence of float or None
            One value for every member, or one per member (None: the optimizer's).
        seed : None, int or sequence of int
            None (a fresh random batch order, shared by all members), an int (every
            member sees that seed's order) or one int per member.
        num_threads : int or None
            OS threads sharing out the members (None: fastbp.get_num_threads()).
        client : dask.distributed.Client or None
            Train the members on that cluster's workers instead, each worker on its
            own thread count (``num_threads`` and ``progress`` then do not apply),
            with the same results.
        progress : bool or None
            Show a progress bar (None: only when stderr is a terminal).
        prune : None, fastbp.SuccessiveHalving, fastbp.Hyperband or a fastbp.pruning.Pruner
            Stop the losers early (needs ``validation_data``): at each rung the members
            still training are ranked by validation loss (ties: member index), the best
            ⌈n/eta⌉ go on from where they are, the others stop there, keeping their
            state; their History's ``pruned_at`` is the epochs they trained. Each member
            still ends where its own ``fit`` of that many epochs would. With ``client``
            the members still training go to the cluster a rung at a time.
        pack : bool, default True
            Step the members that share an architecture (Dense layers of the same
            widths and activations, no dropout, a first layer of at least 16 inputs)
            and a batch order in lock-step, in one compiled call per thread: their first
            layers' products become one wide product each. Each member still ends
            where its own ``fit`` would, up to the rounding of those products (they may
            sum in another order than the member's own: float32 differs in the last
            bits; float64 came out bit for bit on NumPy's OpenBLAS in every case
            tested). False: every member steps its own epochs, bit for bit its own fit.

        Returns
        -------
        list of History
            One per member, in order. Each member's ``training_state`` is its run.

        Raises
        ------
        TypeError, ValueError
            A bad argument, named; nothing about any member has changed then.
        TrainingDiverged
            Some members diverged: each was restored to the start of that epoch and
            stopped while the others went on; the exception names them and its
            ``histories`` attribute holds every member's History.
        TrainingInterrupted
            Ctrl-C: every member stopped after its current step (a member that had
            finished the epoch keeps it); its ``histories`` attribute holds every
            member's History, and each member resumes with ``fit(..., resume=True)``.
        RuntimeError
            The fit on the Dask cluster failed (no member was changed).
        """
        show = sys.stderr.isatty() if progress is None else check.flag(progress, "progress")
        pack = check.flag(pack, "pack")
        prune = check_pruner(prune)
        if prune is not None and validation_data is None:
            raise ValueError("prune ranks the members by validation loss: give validation_data")
        if prune is not None and client is not None and not isinstance(prune, Halving):
            raise ValueError("on a Dask cluster, prune must be fastbp.SuccessiveHalving or "
                             "fastbp.Hyperband (the members go to the cluster a rung at a "
                             f"time); got {type(prune).__name__}")
        if client is not None:
            _dask.check_client(client)
        models = self._models
        n_models = len(models)
        data = TrainingData(models[0], X, y, sample_weight, validation_data)
        epochs = check.int_in_range(epochs, "epochs", 1)
        batch = None if batch_size is None else check.int_in_range(batch_size, "batch_size", 1)
        if early_stopping is not None:
            early_stopping = check.int_in_range(early_stopping, "early_stopping", 1)
        shuffle = check.flag(shuffle, "shuffle")
        num_threads = get_num_threads() if num_threads is None else check_threads(num_threads)
        lrs = [None if v is None else CHECKS["lr"](v, f"lr[{i}]")
               for i, v in enumerate(_per_member(lr, "lr", n_models))]
        decays = [None if v is None else CHECKS["weight_decay"](v, f"weight_decay[{i}]")
                  for i, v in enumerate(_per_member(weight_decay, "weight_decay", n_models))]
        if seed is None:
            # One fresh order shared by all members (fit with seed=None draws a fresh one too).
            seeds = [int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> 1)] * n_models
        else:
            many = isinstance(seed, (list, tuple, np.ndarray))
            seeds = [_seed(s, f"seed[{i}]" if many else "seed")
                     for i, s in enumerate(_per_member(seed, "seed", n_models))]
        if isinstance(prune, Halving):
            prune.brackets(n_models, epochs)   # its own checks, before anything changes
        opts, undo = self._optimizers(optimizer, lrs, decays)
        runs = [TrainingRun(m, o, batch_size=batch, shuffle=shuffle,
                            early_stopping=early_stopping, seed=s)
                for m, o, s in zip(models, opts, seeds)]
        previous = [m.training_state for m in models]
        for run in runs:   # (what a run shipped to a Dask worker carries along)
            run.model.training_state = run
            run.pack = pack
        try:
            if client is not None and prune is not None:
                _dask.train_on_cluster_pruned(runs, data, epochs, client, prune)
            elif client is not None:
                _dask.train_on_cluster(runs, data, epochs, client)
            else:
                hook = None if prune is None else prune.hook(runs, epochs)
                train_runs(runs, data, epochs, num_threads=num_threads, show_progress=show,
                           after_epoch=hook)
        except TrainingInterrupted:
            raise   # each member keeps its last step, resumable (its training_state)
        except Exception:
            if client is not None:   # nothing was trained: put back what the call changed
                undo()
                for m, state in zip(models, previous):
                    m.training_state = state
            raise
        for run in runs:
            run.restore_best()
        return _finish(runs)

    def _optimizers(self, optimizer: Any, lrs: list[float | None],
                    decays: list[float | None]) -> tuple[list[Optimizer], Any]:
        """The members' optimizers, every check passed before any instance is changed;
        and a function that puts back the instances' lr and weight_decay."""
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
            return opts, lambda: None
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
            if opt.kind < 0:
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
        before = [(opt.lr, getattr(opt, "weight_decay", None)) for opt in optimizer]
        for opt, lr, wd in zip(optimizer, lrs, decays):
            if lr is not None:
                opt.lr = lr
            if wd is not None:
                opt.weight_decay = wd

        def undo() -> None:
            for opt, (lr, wd), new_wd in zip(optimizer, before, decays):
                opt.lr = lr
                if new_wd is not None:
                    opt.weight_decay = wd

        return list(optimizer), undo


def _finish(runs: list[TrainingRun]) -> list[History]:
    """The histories; TrainingDiverged naming every member that diverged."""
    histories = [r.history for r in runs]
    bad = [(i, r.diverged) for i, r in enumerate(runs) if r.diverged is not None]
    if bad:
        lines = "; ".join(f"member {i}: {why}" for i, why in bad)
        for r in runs:
            r.diverged = None
        exc = TrainingDiverged(f"{len(bad)} of {len(runs)} members diverged ({lines}). "
                               "The other members finished their training. Lower the learning "
                               "rate or check the data scale.")
        exc.histories = histories  # type: ignore[attr-defined]
        raise exc
    return histories
