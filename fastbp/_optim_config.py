"""One immutable, validated configuration record per optimizer kind.

Every hyper-parameter is checked here and only here (``CHECKS``): building a
record validates it, and ``fastbp.ops``, ``fastbp.reference``, the optimizer
classes (``fastbp.optim``), ``load_state_dict``/``fastbp.load`` and the compiled
engine all take their hyper-parameters from a record. A record never changes:
assigning ``opt.lr`` builds a new one (``dataclasses.replace``, which validates
again), and the engine notices the change by the record's identity.

``kind`` is the C kernels' code (``_kernels/_optim_config.h``); ``kernel_state``
names the state arrays in the order the kernels take them; ``state_names`` those
this configuration keeps (e.g. no momentum buffer without momentum).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from fastbp import _validation as check
from fastbp._table import OPTIMIZER_KINDS, code

__all__ = ["OptimizerConfig", "SGDConfig", "AdaGradConfig", "RMSpropConfig", "AdamConfig",
           "CHECKS"]


def _eps_mode(value: Any, name: str) -> str:
    if value not in ("paper", "folded"):
        raise ValueError(f"{name} must be 'paper' or 'folded', got {value!r}")
    return str(value)


def _beta(value: Any, name: str) -> float:
    return check.finite_scalar(value, name, low=0.0, high=1.0, high_open=True)


def _non_negative(value: Any, name: str) -> float:
    return check.finite_scalar(value, name, low=0.0)


def _real(value: Any, name: str) -> float:
    return check.finite_scalar(value, name)


def _unit(value: Any, name: str) -> float:
    return check.finite_scalar(value, name, low=0.0, high=1.0)


#: each hyper-parameter's check, by name (PyTorch's ranges): the only one. Called as
#: CHECKS[field](value, name), name being how the error names the value (e.g. "lr[2]").
CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "lr": _non_negative,
    "momentum": _non_negative,
    "dampening": _real,
    "weight_decay": _non_negative,
    "eps": _non_negative,
    "alpha": _unit,
    "beta1": _beta,
    "beta2": _beta,
    "nesterov": check.flag,
    "centered": check.flag,
    "amsgrad": check.flag,
    "decoupled": check.flag,
    "eps_mode": _eps_mode,
}


@dataclass(frozen=True)
class OptimizerConfig:
    """The learning rate alone: the record of an optimizer without a compiled kernel
    (a subclass of fastbp.optim.Optimizer outside fastbp)."""

    lr: float

    #: the C kernels' code of this kind (-1: none)
    kind: ClassVar[int] = -1
    #: the kernels' state arrays, in their order
    kernel_state: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, CHECKS[f.name](getattr(self, f.name), f.name))
        self._check_together()

    def _check_together(self) -> None:
        """Constraints between hyper-parameters (after each was checked alone)."""

    @property
    def state_names(self) -> tuple[str, ...]:
        """The state arrays this configuration keeps per parameter."""
        return ()

    def replace(self, **changes: Any) -> OptimizerConfig:
        """A new record with ``changes`` (validated like a new one)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class SGDConfig(OptimizerConfig):
    """torch.optim.SGD: momentum, dampening, Nesterov, L2 weight decay."""

    lr: float = 0.01
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    kind: ClassVar[int] = code(OPTIMIZER_KINDS, "sgd")
    kernel_state: ClassVar[tuple[str, ...]] = ("momentum_buffer",)

    def _check_together(self) -> None:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0, "
                             f"got momentum={self.momentum}, dampening={self.dampening}")

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.momentum != 0 else ()


@dataclass(frozen=True)
class AdaGradConfig(OptimizerConfig):
    """torch.optim.Adagrad (lr_decay 0, initial accumulator 0)."""

    lr: float = 0.01
    eps: float = 1e-10
    weight_decay: float = 0.0

    kind: ClassVar[int] = code(OPTIMIZER_KINDS, "adagrad")
    kernel_state: ClassVar[tuple[str, ...]] = ("sum",)

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("sum",)


@dataclass(frozen=True)
class RMSpropConfig(OptimizerConfig):
    """torch.optim.RMSprop: plain, centered, with momentum."""

    lr: float = 0.01
    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0
    centered: bool = False
    weight_decay: float = 0.0

    kind: ClassVar[int] = code(OPTIMIZER_KINDS, "rmsprop")
    kernel_state: ClassVar[tuple[str, ...]] = ("square_avg", "momentum_buffer", "grad_avg")

    @property
    def state_names(self) -> tuple[str, ...]:
        return (("square_avg",) + (("momentum_buffer",) if self.momentum > 0 else ())
                + (("grad_avg",) if self.centered else ()))


@dataclass(frozen=True)
class AdamConfig(OptimizerConfig):
    """torch.optim.Adam/AdamW (eps_mode "paper") or scikit-learn's Adam ("folded");
    ``decoupled``: AdamW's weight decay p ← p·(1 - lr·λ)."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False
    eps_mode: str = "paper"
    decoupled: bool = False

    kind: ClassVar[int] = code(OPTIMIZER_KINDS, "adam")
    kernel_state: ClassVar[tuple[str, ...]] = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    @property
    def folded(self) -> bool:
        return self.eps_mode == "folded"

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())
