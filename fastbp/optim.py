"""Optimizers over a list of parameter arrays: SGD, AdaGrad, RMSprop, Adam, AdamW.

Each ``step(grads)`` validates every gradient first (count, shape, dtype), so a
failing call changes nothing, then runs one fused compiled kernel per
parameter. Semantics are PyTorch's (``torch.optim``), the step counted from 1.
State lives in plain arrays (``self.state[i][name]``) so that it can be saved
without pickle and used by the compiled training step.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from fastbp import _validation as check
from fastbp._kernels import optim as _optim

__all__ = ["Optimizer", "SGD", "AdaGrad", "RMSprop", "Adam", "AdamW", "OPTIMIZERS", "make_optimizer"]


class Optimizer:
    """Base class: parameter list, validated learning rate, state arrays, state_dict."""

    #: names of the per-parameter state arrays this optimizer keeps
    state_names: tuple[str, ...] = ()
    name = "optimizer"
    #: the compiled engine's optimizer code (fastbp/_kernels/network.pyx)
    kind = -1
    #: the compiled kernel's state arguments, in order (absent ones are passed as None)
    kernel_state: tuple[str, ...] = ()
    _internal = frozenset(("step_count", "_lr", "_scalars", "_config_version", "_frozen"))
    #: bumped by every hyper-parameter assignment (set in __setattr__)
    _config_version: int

    def __setattr__(self, name: str, value: Any) -> None:
        # A hyper-parameter changed after construction is validated together with
        # the others (by building the optimizer it would make), and refused if it
        # would change which state arrays exist (e.g. momentum 0 -> 0.9). Every
        # accepted change bumps the configuration version, so that a compiled
        # engine bound to this optimizer re-reads it.
        hyper_parameter = name not in self._internal
        if hyper_parameter:
            if self.__dict__.get("_frozen") and name != "lr":
                hyper = self.hyperparameters()
                if name not in hyper:
                    raise AttributeError(f"{type(self).__name__} has no hyper-parameter {name!r}")
                hyper[name] = value
                fresh = type(self)(self.params, **hyper)
                if fresh.state_names != self.state_names:
                    raise ValueError(f"changing {name} would change the optimizer's state "
                                     f"({self.state_names} -> {fresh.state_names}); build a new "
                                     "optimizer instead")
                value = getattr(fresh, name)
        object.__setattr__(self, name, value)
        if hyper_parameter:
            # After the store: an engine that reads the new version (from another
            # thread) then also reads the new value.
            object.__setattr__(self, "_config_version", self.__dict__.get("_config_version", 0) + 1)

    def engine_config(self) -> tuple[dict[str, Any], list[list[np.ndarray | None]]]:
        """Hyper-parameters and per-parameter state arrays for the compiled engine."""
        hyper = dict(self.hyperparameters())
        hyper.update(decoupled=getattr(self, "decoupled", False),
                     folded=getattr(self, "eps_mode", "paper") == "folded")
        if "betas" in hyper:
            hyper["beta1"], hyper["beta2"] = hyper.pop("betas")
        pad: list[np.ndarray | None] = [None] * (3 - len(self.kernel_state))
        state = [[s.get(k) for k in self.kernel_state] + pad for s in self.state]
        return hyper, state

    def __init__(self, params: Sequence[np.ndarray], lr: float) -> None:
        params = list(params)
        if not params:
            raise ValueError("params must be a non-empty sequence of arrays, got an empty one")
        for i, p in enumerate(params):
            check.inplace_array(p, f"params[{i}]")
        # Tuples and read-only mappings: the compiled engine holds pointers into
        # these arrays, so the arrays may change in place but never be replaced.
        self.params: tuple[np.ndarray, ...] = tuple(params)
        self.lr = lr
        self.step_count = 0
        self.state: tuple[Mapping[str, np.ndarray], ...] = tuple(
            MappingProxyType({name: np.zeros_like(p) for name in self.state_names}) for p in params)
        self._frozen = True

    # ---------------------------------------------------------------- learning rate
    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = check.finite_scalar(value, "lr", low=0.0)

    # ---------------------------------------------------------------- stepping
    def check_grads(self, grads: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The gradients, C-contiguous, after checking count, shape and dtype of each."""
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"grads must hold one array per parameter ({len(self.params)}), "
                             f"got {len(grads)}")
        out = []
        for i, (p, g) in enumerate(zip(self.params, grads)):
            g = check.float_array(g, f"grads[{i}]", p.ndim, p.dtype)
            check.same_shape(g, f"grads[{i}]", p, f"params[{i}]")
            out.append(g)
        return out

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Update every parameter in place from its gradient."""
        grads = self.check_grads(grads)
        self.step_count += 1
        self.begin_step()
        for p, g, state in zip(self.params, grads, self.state):
            if p.size:
                self.update(p.reshape(-1), g.reshape(-1),
                            {k: a.reshape(-1) for k, a in state.items()})

    def begin_step(self) -> None:
        """Per-step scalar work, done once before the per-parameter updates."""

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- state
    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's keyword arguments (lr included)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """A copy of everything needed to resume: type, hyper-parameters, step, state arrays."""
        return {"type": self.name, "hyperparameters": self.hyperparameters(),
                "step": self.step_count,
                "state": [{k: a.copy() for k, a in s.items()} for s in self.state]}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore a state_dict of the same optimizer type over parameters of the same shapes."""
        if not isinstance(d, dict) or d.get("type") != self.name:
            got = d.get("type") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"state_dict must come from a {self.name} optimizer, got {got!r}")
        for key in ("hyperparameters", "step", "state"):
            if key not in d:
                raise ValueError(f"state_dict is missing the key {key!r}")
        state = d["state"]
        if len(state) != len(self.params):
            raise ValueError(f"state_dict holds state for {len(state)} parameters, "
                             f"this optimizer has {len(self.params)}")
        step = d["step"]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) \
                or not 0 <= step < check.MAX_STEP:
            raise ValueError(f"state_dict step must be an int in [0, {check.MAX_STEP}), got {step!r}")
        hyper = d["hyperparameters"]
        if not isinstance(hyper, dict):
            raise ValueError(f"state_dict hyperparameters must be a dict, got {type(hyper).__name__}")
        fresh = type(self)(self.params, **hyper)  # validates the hyper-parameters
        for i, (p, s) in enumerate(zip(self.params, state)):
            if not isinstance(s, dict) or set(s) != set(fresh.state_names):
                raise ValueError(f"state_dict state[{i}] must hold {sorted(fresh.state_names)}, "
                                 f"got {sorted(s) if isinstance(s, dict) else s!r}")
            for k, a in s.items():
                a = np.asarray(a)
                if a.shape != p.shape or a.dtype != p.dtype:
                    raise ValueError(f"state_dict state[{i}][{k!r}] must be {p.dtype} of shape "
                                     f"{p.shape}, got {a.dtype} {a.shape}")
                fresh.state[i][k][...] = a
        # Everything checked: adopt the new state (a failing load changed nothing).
        fresh.step_count = int(step)
        self.__dict__.update(fresh.__dict__)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """torch.optim.SGD: momentum, dampening, Nesterov, L2 weight decay."""

    name = "sgd"
    kind = 0
    kernel_state = ("momentum_buffer",)

    def __init__(self, params: Sequence[np.ndarray], lr: float = 0.01, momentum: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        self.momentum = check.finite_scalar(momentum, "momentum", low=0.0)
        self.dampening = check.finite_scalar(dampening, "dampening")
        self.nesterov = check.flag(nesterov, "nesterov")
        self.weight_decay = check.finite_scalar(weight_decay, "weight_decay", low=0.0)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0, "
                             f"got momentum={momentum}, dampening={dampening}")
        self.state_names = ("momentum_buffer",) if self.momentum != 0 else ()
        super().__init__(params, lr)

    def hyperparameters(self) -> dict[str, Any]:
        return dict(lr=self.lr, momentum=self.momentum, dampening=self.dampening,
                    nesterov=self.nesterov, weight_decay=self.weight_decay)

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        _optim.sgd_step_into(p, g, state.get("momentum_buffer"), self.lr, self.momentum,
                             self.dampening, self.nesterov, self.weight_decay,
                             self.step_count == 1)


class AdaGrad(Optimizer):
    """torch.optim.Adagrad (lr_decay 0, initial accumulator 0)."""

    name = "adagrad"
    kind = 1
    state_names = ("sum",)
    kernel_state = ("sum",)

    def __init__(self, params: Sequence[np.ndarray], lr: float = 0.01, eps: float = 1e-10,
                 weight_decay: float = 0.0) -> None:
        self.eps = check.finite_scalar(eps, "eps", low=0.0)
        self.weight_decay = check.finite_scalar(weight_decay, "weight_decay", low=0.0)
        super().__init__(params, lr)

    def hyperparameters(self) -> dict[str, Any]:
        return dict(lr=self.lr, eps=self.eps, weight_decay=self.weight_decay)

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        _optim.adagrad_step_into(p, g, state["sum"], self.lr, self.eps, self.weight_decay)


class RMSprop(Optimizer):
    """torch.optim.RMSprop: plain, centered, with momentum."""

    name = "rmsprop"
    kind = 2
    kernel_state = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params: Sequence[np.ndarray], lr: float = 0.01, alpha: float = 0.99,
                 eps: float = 1e-8, momentum: float = 0.0, centered: bool = False,
                 weight_decay: float = 0.0) -> None:
        self.alpha = check.finite_scalar(alpha, "alpha", low=0.0, high=1.0)
        self.eps = check.finite_scalar(eps, "eps", low=0.0)
        self.momentum = check.finite_scalar(momentum, "momentum", low=0.0)
        self.centered = check.flag(centered, "centered")
        self.weight_decay = check.finite_scalar(weight_decay, "weight_decay", low=0.0)
        self.state_names = (("square_avg",) + (("momentum_buffer",) if self.momentum > 0 else ())
                            + (("grad_avg",) if self.centered else ()))
        super().__init__(params, lr)

    def hyperparameters(self) -> dict[str, Any]:
        return dict(lr=self.lr, alpha=self.alpha, eps=self.eps, momentum=self.momentum,
                    centered=self.centered, weight_decay=self.weight_decay)

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        _optim.rmsprop_step_into(p, g, state["square_avg"], state.get("momentum_buffer"),
                                 state.get("grad_avg"), self.lr, self.alpha, self.eps,
                                 self.momentum, self.centered, self.weight_decay)


class Adam(Optimizer):
    """torch.optim.Adam (eps_mode="paper") or scikit-learn's Adam (eps_mode="folded")."""

    name = "adam"
    kind = 3
    decoupled = False
    kernel_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params: Sequence[np.ndarray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, eps_mode: str = "paper") -> None:
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError) as exc:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}") from exc
        self.betas = check.betas(beta1, beta2)
        self.eps = check.finite_scalar(eps, "eps", low=0.0)
        self.weight_decay = check.finite_scalar(weight_decay, "weight_decay", low=0.0)
        self.amsgrad = check.flag(amsgrad, "amsgrad")
        if eps_mode not in ("paper", "folded"):
            raise ValueError(f"eps_mode must be 'paper' or 'folded', got {eps_mode!r}")
        self.eps_mode = eps_mode
        self.state_names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())
        super().__init__(params, lr)

    def hyperparameters(self) -> dict[str, Any]:
        return dict(lr=self.lr, betas=list(self.betas), eps=self.eps,
                    weight_decay=self.weight_decay, amsgrad=self.amsgrad, eps_mode=self.eps_mode)

    def scalars(self) -> tuple[float, float]:
        """(step_size, √(1-β₂ᵗ)) of the current step."""
        return check.adam_scalars(self.step_count, self.lr, self.betas[0], self.betas[1],
                                  self.eps_mode == "folded")

    def begin_step(self) -> None:
        # The scalars depend on the step count only: compute them once per step.
        self._scalars = self.scalars()

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        step_size, bc2_sqrt = self._scalars
        _optim.adam_step_into(p, g, state["exp_avg"], state["exp_avg_sq"],
                              state.get("max_exp_avg_sq"), self.lr, self.betas[0], self.betas[1],
                              self.eps, self.weight_decay, self.decoupled, self.amsgrad,
                              self.eps_mode == "folded", step_size, bc2_sqrt)


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay p ← p·(1 - lr·λ) (default λ 0.01)."""

    name = "adamw"
    decoupled = True

    def __init__(self, params: Sequence[np.ndarray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False, eps_mode: str = "paper") -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, eps_mode)


OPTIMIZERS = {"sgd": SGD, "adagrad": AdaGrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def make_optimizer(optimizer: Any, params: list[np.ndarray], lr: float | None) -> Optimizer:
    """An optimizer instance from a name ("adam", ...) or an instance over ``params``."""
    if isinstance(optimizer, Optimizer):
        if len(optimizer.params) != len(params) or any(
                a is not b for a, b in zip(optimizer.params, params)):
            raise ValueError("optimizer must be built over model.parameters() "
                             "(the same live arrays, in the same order)")
        if lr is not None:
            optimizer.lr = lr
        return optimizer
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)} or an Optimizer instance, "
                         f"got {optimizer!r}")
    cls = OPTIMIZERS[optimizer]
    return cls(params) if lr is None else cls(params, lr=lr)
