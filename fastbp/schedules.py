"""Learning-rate schedules with PyTorch (2.x) semantics.

Each schedule wraps an optimizer, i.e. any object with a settable float
attribute ``lr``, and is stepped once per epoch, as in PyTorch::

    sched = StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(100):
        train_one_epoch(opt)
        sched.step()

On construction a schedule records ``base_lr = opt.lr`` and ``last_epoch = 0``
(PyTorch's constructor performs an initial step to epoch 0, which leaves the
learning rate at its base value). Each ``step()`` advances ``last_epoch`` by one
and writes the new learning rate to ``opt.lr``.

``StepLR``, ``ExponentialLR`` and ``CosineAnnealingLR`` use PyTorch's closed
forms (``_get_closed_form_lr``), evaluated from ``base_lr`` and ``last_epoch``,
so they do not accumulate rounding error and do not depend on what ``opt.lr``
held before the step. PyTorch's default ``step()`` path is recursive (it
multiplies the optimizer's current lr); both agree up to floating-point
rounding (a few ulps) as long as nothing else changes ``opt.lr``.

``ReduceLROnPlateau`` is inherently recursive: like PyTorch, it reads the
current ``opt.lr`` when it reduces it.

``state_dict()`` returns a JSON-serialisable dict of plain numbers and strings
(including the class name); ``load_state_dict(d)`` restores it and also writes
the restored current learning rate (``get_last_lr()``) to ``opt.lr``, so that a
freshly constructed schedule on a fresh optimizer continues exactly where the
saved one stopped.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Protocol

from fastbp import _validation as check

__all__ = ["Schedule", "StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau",
           "OneCycleLR", "WarmupCosine", "CosLog", "flat_cosine", "from_state_dict"]


class _HasLR(Protocol):
    """Anything with a settable float attribute ``lr`` (the fastbp optimizers)."""

    lr: float


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int ``>= minimum`` (bools and non-integers: TypeError)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    result = int(value)
    if result < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {result}")
    return result


def _check_real(name: str, value: object) -> float:
    """Return ``value`` as a finite float (bools and non-numbers: TypeError)."""
    return check.finite_scalar(value, name)


def _check_positive(name: str, value: object) -> float:
    """Finite float ``> 0``."""
    result = _check_real(name, value)
    if not result > 0.0:
        raise ValueError(f"{name} must be > 0, got {result}")
    return result


def _check_nonnegative(name: str, value: object) -> float:
    """Finite float ``>= 0``."""
    result = _check_real(name, value)
    if not result >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {result}")
    return result


def _check_optimizer(opt: object) -> float:
    """Check that ``opt`` has a finite real ``lr`` attribute and return it as a float."""
    if not hasattr(opt, "lr"):
        raise TypeError(
            f"opt must be an optimizer with a settable float attribute 'lr'; "
            f"{type(opt).__name__} has no attribute 'lr'"
        )
    return _check_real("opt.lr", getattr(opt, "lr"))


def _checked_pow(base_lr: float, gamma: float, exponent: int, cls: str) -> float:
    """``base_lr * gamma ** exponent`` with a clear error on float overflow."""
    try:
        lr = base_lr * gamma**exponent
    except OverflowError:
        lr = math.inf
    if not math.isfinite(lr):
        raise OverflowError(f"{cls}: learning rate overflowed (base_lr * gamma ** {exponent})")
    return lr


# ---------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------


class Schedule:
    """Shared plumbing: optimizer handle, ``base_lr``, ``last_epoch``, state dicts.

    The base class of fastbp's schedules; use one of its subclasses.

    Parameters
    ----------
    opt : optimizer
        Any object with a settable float attribute ``lr`` (a fastbp optimizer); its
        current ``lr`` becomes ``base_lr``.

    Attributes
    ----------
    optimizer : optimizer
        The wrapped ``opt``.
    base_lr : float
        The learning rate at construction.
    last_epoch : int
        Steps taken (0 after construction).

    Raises
    ------
    TypeError
        ``opt`` has no ``lr`` attribute, or its lr is not a real number.
    ValueError
        ``opt.lr`` is not finite.
    """

    #: stepped once per batch (OneCycleLR, WarmupCosine), inside fit's compiled epoch;
    #: False: once per epoch
    per_batch: bool = False
    #: hyper-parameter names stored in the state dict, in constructor order.
    _hyper: tuple[str, ...] = ()
    #: mutable state names (besides ``base_lr``/``last_epoch``) stored in the state dict.
    _extra: tuple[str, ...] = ()

    def __init__(self, opt: _HasLR) -> None:
        self.base_lr: float = _check_optimizer(opt)
        self.optimizer: _HasLR = opt
        self.last_epoch: int = 0
        self._last_lr: float = self.base_lr

    def get_last_lr(self) -> float:
        """The learning rate set by the most recent step (``base_lr`` before any step).

        Returns
        -------
        float
        """
        return self._last_lr

    def _set_lr(self, lr: float) -> None:
        self.optimizer.lr = lr
        # As PyTorch, report what the optimizer actually holds.
        self._last_lr = float(self.optimizer.lr)

    # -- state -----------------------------------------------------------

    def _state_extra(self) -> dict[str, Any]:
        return {}

    def _load_extra(self, d: dict[str, Any]) -> None:
        pass

    def _keys(self) -> tuple[str, ...]:
        return ("class", "base_lr", "last_epoch", *self._hyper, *self._extra)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: class name, hyper-parameters, ``base_lr``, ``last_epoch``.

        Returns
        -------
        dict
            ``"class"`` (the class name), ``"base_lr"``, ``"last_epoch"``, the
            constructor's hyper-parameters by name and, for ReduceLROnPlateau, ``"best"``
            (the string "inf" for +inf), ``"num_bad_epochs"`` and ``"last_lr"``. Plain
            numbers and strings only.
        """
        d: dict[str, Any] = {
            "class": type(self).__name__,
            "base_lr": self.base_lr,
            "last_epoch": self.last_epoch,
        }
        for name in self._hyper:
            d[name] = getattr(self, name)
        d.update(self._state_extra())
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore a ``state_dict()`` of the same class and set ``opt.lr`` to its current lr.

        Nothing is modified unless the whole dict is valid.

        Parameters
        ----------
        d : dict
            A ``state_dict()`` of a schedule of this class.

        Raises
        ------
        TypeError
            ``d`` is not a dict, or holds a value of the wrong type.
        ValueError
            ``d`` belongs to another schedule class, misses keys, has unknown keys or
            holds invalid values.
        """
        if not isinstance(d, dict):
            raise TypeError(f"state must be a dict, got {type(d).__name__}")
        cls = type(self).__name__
        if d.get("class") != cls:
            raise ValueError(f"state_dict is for schedule class {d.get('class')!r}, not {cls!r}")
        expected = set(self._keys())
        missing = sorted(expected - d.keys())
        if missing:
            raise ValueError(f"{cls} state_dict is missing keys: {missing}")
        unknown = sorted(str(k) for k in d.keys() - expected)
        if unknown:
            raise ValueError(f"{cls} state_dict has unknown keys: {unknown}")
        # Validate everything on a scratch copy first, then commit.
        scratch = object.__new__(type(self))
        scratch.__dict__.update(self.__dict__)
        scratch.base_lr = _check_real("base_lr", d["base_lr"])
        scratch.last_epoch = _check_int("last_epoch", d["last_epoch"], 0)
        scratch._validate_hyper({name: d[name] for name in self._hyper})
        scratch._load_extra(d)
        lr = scratch._current_lr()
        self.__dict__.update(scratch.__dict__)
        self._set_lr(lr)

    # -- hooks for subclasses --------------------------------------------

    def _validate_hyper(self, values: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _current_lr(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._hyper)
        return f"{type(self).__name__}({args}, base_lr={self.base_lr!r}, last_epoch={self.last_epoch})"


class _ClosedFormSchedule(Schedule):
    """A schedule whose lr is a function of ``(base_lr, last_epoch)``."""

    def _lr_at(self, epoch: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _current_lr(self) -> float:
        # Epoch 0 is exactly base_lr, as PyTorch's initial step (its get_lr returns
        # the group's lr unchanged at epoch 0).
        return self.base_lr if self.last_epoch == 0 else self._lr_at(self.last_epoch)

    def step(self) -> None:
        """Advance one epoch and set ``opt.lr`` to the schedule's value at the new epoch.

        Raises
        ------
        OverflowError
            The learning rate overflowed (gamma > 1 over many epochs); then nothing
            changed (the epoch count included).
        """
        lr = self._lr_at(self.last_epoch + 1)
        self.last_epoch += 1
        self._set_lr(lr)


class StepLR(_ClosedFormSchedule):
    """Decay by ``gamma`` every ``step_size`` epochs.

    ``lr(epoch) = base_lr * gamma ** (epoch // step_size)``

    Parameters
    ----------
    opt : optimizer
        Any object with a settable float attribute ``lr`` (a fastbp optimizer); its
        current ``lr`` becomes ``base_lr``.
    step_size : int
        The epochs between two decays (>= 1).
    gamma : float, default 0.1
        The factor of each decay (finite, > 0).

    Attributes
    ----------
    optimizer : optimizer
        The wrapped ``opt``.
    base_lr : float
        The learning rate at construction.
    last_epoch : int
        Steps taken (0 after construction).

    Raises
    ------
    TypeError
        ``opt`` has no real ``lr``; ``step_size`` not an int; ``gamma`` not a real number.
    ValueError
        ``opt.lr`` not finite; ``step_size`` < 1; ``gamma`` <= 0 or not finite.
    """

    _hyper = ("step_size", "gamma")

    def __init__(self, opt: _HasLR, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(opt)
        self._validate_hyper({"step_size": step_size, "gamma": gamma})

    def _validate_hyper(self, values: dict[str, Any]) -> None:
        self.step_size: int = _check_int("step_size", values["step_size"], 1)
        self.gamma: float = _check_positive("gamma", values["gamma"])

    def _lr_at(self, epoch: int) -> float:
        return _checked_pow(self.base_lr, self.gamma, epoch // self.step_size, "StepLR")


class ExponentialLR(_ClosedFormSchedule):
    """Decay by ``gamma`` every epoch.

    ``lr(epoch) = base_lr * gamma ** epoch``

    Parameters
    ----------
    opt : optimizer
        Any object with a settable float attribute ``lr`` (a fastbp optimizer); its
        current ``lr`` becomes ``base_lr``.
    gamma : float
        The factor of each epoch's decay (finite, > 0).

    Attributes
    ----------
    optimizer : optimizer
        The wrapped ``opt``.
    base_lr : float
        The learning rate at construction.
    last_epoch : int
        Steps taken (0 after construction).

    Raises
    ------
    TypeError
        ``opt`` has no real ``lr``; ``gamma`` not a real number.
    ValueError
        ``opt.lr`` not finite; ``gamma`` <= 0 or not finite.
    """

    _hyper = ("gamma",)

    def __init__(self, opt: _HasLR, gamma: float) -> None:
        super().__init__(opt)
        self._validate_hyper({"gamma": gamma})

    def _validate_hyper(self, values: dict[str, Any]) -> None:
        self.gamma: float = _check_positive("gamma", values["gamma"])

    def _lr_at(self, epoch: int) -> float:
        return _checked_pow(self.base_lr, self.gamma, epoch, "ExponentialLR")


class CosineAnnealingLR(_ClosedFormSchedule):
    """Cosine annealing from ``base_lr`` down to ``eta_min`` over ``T_max`` epochs.

    ``lr(epoch) = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``

    Past ``T_max`` the same formula is used, so the lr rises back to ``base_lr`` at
    ``2*T_max`` and keeps oscillating with period ``2*T_max``: this is what PyTorch's
    recursive ``CosineAnnealingLR.step()`` produces too (there is no restart and no
    clamping at ``eta_min``; use ``T_max`` = number of epochs to anneal once).

    Parameters
    ----------
    opt : optimizer
        Any object with a settable float attribute ``lr`` (a fastbp optimizer); its
        current ``lr`` becomes ``base_lr``.
    T_max : int
        The epochs of one annealing from ``base_lr`` to ``eta_min`` (>= 1).
    eta_min : float, default 0.0
        The lowest learning rate (finite, >= 0).

    Attributes
    ----------
    optimizer : optimizer
        The wrapped ``opt``.
    base_lr : float
        The learning rate at construction.
    last_epoch : int
        Steps taken (0 after construction).

    Raises
    ------
    TypeError
        ``opt`` has no real ``lr``; ``T_max`` not an int; ``eta_min`` not a real number.
    ValueError
        ``opt.lr`` not finite; ``T_max`` < 1; ``eta_min`` < 0 or not finite.
    """

    _hyper = ("T_max", "eta_min")

    def __init__(self, opt: _HasLR, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(opt)
        self._validate_hyper({"T_max": T_max, "eta_min": eta_min})

    def _validate_hyper(self, values: dict[str, Any]) -> None:
        self.T_max: int = _check_int("T_max", values["T_max"], 1)
        self.eta_min: float = _check_nonnegative("eta_min", values["eta_min"])

    def _lr_at(self, epoch: int) -> float:
        # Same operation order as PyTorch's _get_closed_form_lr.
        return (
            self.eta_min
            + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        )


class _PerBatchSchedule(_ClosedFormSchedule):
    """A closed-form schedule stepped once per batch: ``last_epoch`` counts batches,
    and the lr of batch t is ``_lr_at(t)`` (batch 0's is set at construction).
    ``fit`` gives the compiled epoch the lr of each of its batches (``lrs``) and then
    advances the schedule by the steps taken (``advance``)."""

    per_batch = True

    def _current_lr(self) -> float:
        return self._lr_at(self.last_epoch)

    def lrs(self, n: int) -> list[float]:
        """The learning rates of the next ``n`` batches (the current one first).

        Parameters
        ----------
        n : int

        Returns
        -------
        list of float

        Raises
        ------
        ValueError
            A batch beyond the schedule's total steps (OneCycleLR).
        """
        return [self._lr_at(self.last_epoch + t) for t in range(n)]

    def advance(self, n: int) -> None:
        """Take ``n`` steps at once (what n calls of ``step()`` do).

        Parameters
        ----------
        n : int
        """
        lr = self._lr_at(self.last_epoch + n)
        self.last_epoch += n
        self._set_lr(lr)


class OneCycleLR(_PerBatchSchedule):
    """PyTorch's ``OneCycleLR`` learning rates (momentum is not cycled), stepped once
    per batch: from ``max_lr/div_factor`` up to ``max_lr`` over the first
    ``pct_start·total_steps`` batches, then down to ``max_lr/(div_factor·final_div_factor)``
    (``three_phase``: down to the initial lr first, then to the minimum), annealed by
    cosine or linearly. Construction sets ``opt.lr`` to the initial lr, as PyTorch's.

    Parameters
    ----------
    opt : optimizer
        A fastbp optimizer (its lr is replaced).
    max_lr : float
        The peak learning rate (> 0).
    total_steps : int
        The batches of the cycle (>= 1); stepping beyond it is a ValueError.
    pct_start : float, default 0.3
        The share of the cycle spent increasing, in [0, 1].
    anneal_strategy : {"cos", "linear"}, default "cos"
    div_factor : float, default 25.0
        initial lr = max_lr / div_factor (> 0).
    final_div_factor : float, default 1e4
        minimum lr = initial lr / final_div_factor (> 0).
    three_phase : bool, default False

    Attributes
    ----------
    optimizer : optimizer
    base_lr : float
        The initial learning rate (max_lr / div_factor).
    last_epoch : int
        Batches stepped.

    Raises
    ------
    TypeError, ValueError
        Arguments out of their ranges, naming them.
    """

    _hyper = ("max_lr", "total_steps", "pct_start", "anneal_strategy", "div_factor",
              "final_div_factor", "three_phase")

    def __init__(self, opt: _HasLR, max_lr: float, total_steps: int, *, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False) -> None:
        super().__init__(opt)
        self._validate_hyper({"max_lr": max_lr, "total_steps": total_steps,
                              "pct_start": pct_start, "anneal_strategy": anneal_strategy,
                              "div_factor": div_factor, "final_div_factor": final_div_factor,
                              "three_phase": three_phase})
        self.base_lr = self.max_lr / self.div_factor
        self._set_lr(self._lr_at(0))

    def _validate_hyper(self, values: dict[str, Any]) -> None:
        self.max_lr: float = _check_positive("max_lr", values["max_lr"])
        self.total_steps: int = _check_int("total_steps", values["total_steps"], 1)
        self.pct_start: float = check.finite_scalar(values["pct_start"], "pct_start", low=0.0,
                                                    high=1.0)
        if values["anneal_strategy"] not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got "
                             f"{values['anneal_strategy']!r}")
        self.anneal_strategy: str = values["anneal_strategy"]
        self.div_factor: float = _check_positive("div_factor", values["div_factor"])
        self.final_div_factor: float = _check_positive("final_div_factor",
                                                       values["final_div_factor"])
        self.three_phase: bool = check.flag(values["three_phase"], "three_phase")

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _lr_at(self, epoch: int) -> float:
        # PyTorch's OneCycleLR.get_lr, its phases and operation order.
        if epoch > self.total_steps:
            raise ValueError(f"Tried to step {epoch} times. The specified number of total "
                             f"steps is {self.total_steps}")
        initial = self.max_lr / self.div_factor
        minimum = initial / self.final_div_factor
        T = self.total_steps
        if self.three_phase:
            phases = [(float(self.pct_start * T) - 1, initial, self.max_lr),
                      (float(2 * self.pct_start * T) - 2, self.max_lr, initial),
                      (T - 1, initial, minimum)]
        else:
            phases = [(float(self.pct_start * T) - 1, initial, self.max_lr),
                      (T - 1, self.max_lr, minimum)]
        start_step = 0.0
        for i, (end_step, start_lr, end_lr) in enumerate(phases):
            if epoch <= end_step or i == len(phases) - 1:
                span = end_step - start_step
                # (PyTorch: 0/0 for an empty phase; past the last step, where no batch
                # uses it, its pct exceeds 1 and a linear anneal goes below 0: held at 1)
                pct = min(1.0, (epoch - start_step) / span) if span else 0.0
                return self._anneal(start_lr, end_lr, pct)
            start_step = end_step
        raise AssertionError("unreachable")  # pragma: no cover


class WarmupCosine(_PerBatchSchedule):
    """Linear warm-up, then cosine decay, stepped once per batch: for batch t = 0, 1, ...,
    ``lr·(t+1)/warmup_steps`` while t < warmup_steps, then
    ``eta_min + (lr − eta_min)·(1 + cos(π·(t − warmup_steps)/(total_steps −
    warmup_steps)))/2`` (``eta_min`` from ``total_steps`` on), lr the optimizer's lr
    at construction (``base_lr``). Construction sets ``opt.lr`` to batch 0's.

    Parameters
    ----------
    opt : optimizer
        A fastbp optimizer; its lr becomes ``base_lr``.
    warmup_steps : int
        The batches of the warm-up (>= 0).
    total_steps : int
        The batches of warm-up and decay (> warmup_steps).
    eta_min : float, default 0.0
        The final learning rate (finite, >= 0).

    Attributes
    ----------
    optimizer : optimizer
    base_lr : float
    last_epoch : int
        Batches stepped.

    Raises
    ------
    TypeError, ValueError
        Arguments out of their ranges, naming them.
    """

    _hyper = ("warmup_steps", "total_steps", "eta_min")

    def __init__(self, opt: _HasLR, warmup_steps: int, total_steps: int, *,
                 eta_min: float = 0.0) -> None:
        super().__init__(opt)
        self._validate_hyper({"warmup_steps": warmup_steps, "total_steps": total_steps,
                              "eta_min": eta_min})
        self._set_lr(self._lr_at(0))

    def _validate_hyper(self, values: dict[str, Any]) -> None:
        self.warmup_steps: int = _check_int("warmup_steps", values["warmup_steps"], 0)
        self.total_steps: int = _check_int("total_steps", values["total_steps"],
                                           self.warmup_steps + 1)
        self.eta_min: float = _check_nonnegative("eta_min", values["eta_min"])

    def _lr_at(self, epoch: int) -> float:
        w, T = self.warmup_steps, self.total_steps
        if epoch < w:
            return self.base_lr * (epoch + 1) / w
        pct = min(1.0, (epoch - w) / (T - w))
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * pct)) / 2


class CosLog(_PerBatchSchedule):
    """RealMLP's "coslog" learning rates (pytabkit's ``coslog4``), stepped once per
    batch: for batch t of ``total_steps``, ``lr·(1 − cos(2π·log2(1 + (2^n_cycles − 1)·
    t/total_steps)))/2`` -- n_cycles cosine cycles, each half as long as the one
    before, starting from 0 (and 0 from ``total_steps`` on). Construction sets
    ``opt.lr`` to batch 0's (0).

    Parameters
    ----------
    opt : optimizer
        A fastbp optimizer; its lr becomes ``base_lr``.
    total_steps : int
        The batches of the whole run (>= 1).
    n_cycles : int, default 4

    Attributes
    ----------
    optimizer : optimizer
    base_lr : float
    last_epoch : int
        Batches stepped.

    Raises
    ------
    TypeError, ValueError
        Arguments out of their ranges, naming them.
    """

    _hyper = ("total_steps", "n_cycles")

    def __init__(self, opt: _HasLR, total_steps: int, n_cycles: int = 4) -> None:
        super().__init__(opt)
        self._validate_hyper({"total_steps": total_steps, "n_cycles": n_cycles})
        self._set_lr(self._lr_at(0))

    def _validate_hyper(self, values: dict[str, Any]) -> None:
        self.total_steps: int = _check_int("total_steps", values["total_steps"], 1)
        self.n_cycles: int = _check_int("n_cycles", values["n_cycles"], 1)

    def _lr_at(self, epoch: int) -> float:
        t = min(1.0, epoch / self.total_steps)
        cycles = math.log2(1 + (2 ** self.n_cycles - 1) * t)
        return self.base_lr * 0.5 * (1 - math.cos(2 * math.pi * cycles))


def flat_cosine(t: float) -> float:
    """pytabkit's "flat_cos" factor at progress t in [0, 1]: 1 over the first half, then
    a half cosine down to 0 at t = 1 (RealMLP's weight-decay and dropout schedules).

    Parameters
    ----------
    t : float
        The run's progress (clipped to [0, 1]).

    Returns
    -------
    float
    """
    t = min(max(float(t), 0.0), 1.0)
    return 1.0 if t <= 0.5 else 0.5 * (1 + math.cos(math.pi * (2 * t - 1)))


class ReduceLROnPlateau(Schedule):
    """Multiply the lr by ``factor`` when the monitored metric stops decreasing.

    PyTorch defaults with ``mode="min"``, ``threshold_mode="rel"``, ``cooldown=0``,
    ``eps=1e-8``. On each ``step(metric)``:

    * better iff ``metric < best * (1 - threshold)`` (``best`` starts at ``+inf``);
      then ``best = metric`` and ``num_bad_epochs = 0``, else ``num_bad_epochs += 1``;
    * if ``num_bad_epochs > patience``: ``new = max(old * factor, min_lr)`` with
      ``old = opt.lr``; ``opt.lr = new`` only if ``old - new > eps``; and
      ``num_bad_epochs = 0`` (whether or not the lr changed).

    As in PyTorch, the relative threshold is applied to ``best`` as is, so for a
    negative ``best`` the bar ``best * (1 - threshold)`` lies *above* ``best``, and a
    ``threshold >= 1`` makes no value count as better (``inf * 0`` is NaN).

    Parameters
    ----------
    opt : optimizer
        Any object with a settable float attribute ``lr`` (a fastbp optimizer); its
        current ``lr`` becomes ``base_lr``.
    factor : float, default 0.1
        The factor of each reduction, 0 < factor < 1.
    patience : int, default 10
        The epochs without improvement tolerated before a reduction (>= 0).
    threshold : float, default 1e-4
        The relative improvement that counts as better (finite, >= 0).
    min_lr : float, default 0.0
        The lowest learning rate (finite, >= 0).

    Attributes
    ----------
    optimizer : optimizer
        The wrapped ``opt``.
    base_lr : float
        The learning rate at construction.
    last_epoch : int
        Steps taken (0 after construction).
    best : float
        The best metric so far.
    num_bad_epochs : int
        Epochs since the last improvement (or reduction).

    Raises
    ------
    TypeError
        ``opt`` has no real ``lr``; ``patience`` not an int; another hyper-parameter
        not a real number.
    ValueError
        ``opt.lr`` not finite; ``factor`` outside (0, 1); a negative ``patience``,
        ``threshold`` or ``min_lr``; a value that is not finite.
    """

    mode: str = "min"
    threshold_mode: str = "rel"
    cooldown: int = 0
    eps: float = 1e-8

    _hyper = ("factor", "patience", "threshold", "min_lr")
    _extra = ("best", "num_bad_epochs", "last_lr")

    def __init__(
        self,
        opt: _HasLR,
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(opt)
        self._validate_hyper(
            {"factor": factor, "patience": patience, "threshold": threshold, "min_lr": min_lr}
        )
        self.best: float = math.inf
        self.num_bad_epochs: int = 0

    def _validate_hyper(self, values: dict[str, Any]) -> None:
        factor = _check_real("factor", values["factor"])
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.factor: float = factor
        self.patience: int = _check_int("patience", values["patience"], 0)
        self.threshold: float = _check_nonnegative("threshold", values["threshold"])
        self.min_lr: float = _check_nonnegative("min_lr", values["min_lr"])

    def _is_better(self, metric: float) -> bool:
        # PyTorch: mode "min", threshold_mode "rel".
        return metric < self.best * (1.0 - self.threshold)

    def step(self, metric: float) -> None:
        """Record one epoch's ``metric`` (finite real) and reduce ``opt.lr`` on a plateau.

        Parameters
        ----------
        metric : float
            The monitored value of the epoch (lower is better), e.g. the validation loss.

        Raises
        ------
        TypeError
            ``metric`` is not a real number (bools and strings included).
        ValueError
            ``metric`` is NaN or infinite. Nothing changes on either error.
        """
        if isinstance(metric, (bool, str, bytes)):
            raise TypeError(f"metric must be a real number, got {type(metric).__name__} {metric!r}")
        try:
            current = float(metric)
        except (TypeError, ValueError):
            raise TypeError(
                f"metric must be a real number, got {type(metric).__name__} {metric!r}"
            ) from None
        if not math.isfinite(current):
            raise ValueError(f"metric must be finite, got {current}")
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.num_bad_epochs > self.patience:
            old = float(self.optimizer.lr)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.num_bad_epochs = 0
        self._last_lr = float(self.optimizer.lr)

    def _current_lr(self) -> float:
        return self._last_lr

    def _state_extra(self) -> dict[str, Any]:
        # +inf is not valid strict JSON: store it as the string "inf".
        return {
            "best": "inf" if self.best == math.inf else self.best,
            "num_bad_epochs": self.num_bad_epochs,
            "last_lr": self._last_lr,
        }

    def _load_extra(self, d: dict[str, Any]) -> None:
        best = d["best"]
        self.best = math.inf if best == "inf" else _check_real("best", best)
        self.num_bad_epochs = _check_int("num_bad_epochs", d["num_bad_epochs"], 0)
        self._last_lr = _check_real("last_lr", d["last_lr"])


#: fastbp's schedules by class name (what a state_dict's "class" names)
SCHEDULES: dict[str, type[Schedule]] = {
    cls.__name__: cls for cls in (StepLR, ExponentialLR, CosineAnnealingLR, ReduceLROnPlateau,
                                  OneCycleLR, WarmupCosine, CosLog)}


def from_state_dict(opt: _HasLR, state: dict[str, Any]) -> Schedule:
    """A fastbp schedule bound to ``opt``, restored from its ``state_dict()``.

    The class is the one the state's "class" names; ``opt.lr`` is set to the
    restored current learning rate.

    Parameters
    ----------
    opt : optimizer
        Any object with a settable float attribute ``lr`` (a fastbp optimizer).
    state : dict
        A ``state_dict()`` of a StepLR, ExponentialLR, CosineAnnealingLR,
        ReduceLROnPlateau, OneCycleLR or WarmupCosine.

    Returns
    -------
    Schedule
        The restored schedule, of the class the state names.

    Raises
    ------
    ValueError
        The state names no schedule of fastbp's, or fails that schedule's checks.
    TypeError
        ``opt`` has no real ``lr``, or the state holds a value of the wrong type.
    """
    if not isinstance(state, dict) or state.get("class") not in SCHEDULES:
        got = state.get("class") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"state_dict class must be one of {sorted(SCHEDULES)}, got {got!r}")
    schedule = object.__new__(SCHEDULES[state["class"]])
    Schedule.__init__(schedule, opt)
    schedule.load_state_dict(state)
    return schedule
