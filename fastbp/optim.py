"""Optimizers over a list of parameter arrays: SGD, AdaGrad, RMSprop, Adam, AdamW.

Each ``step(grads)`` validates every gradient first (count, shape, dtype), so a
failing call changes nothing, then runs one fused compiled kernel per
parameter. Semantics are PyTorch's (``torch.optim``), the step counted from 1.

An optimizer is its parameter tuple and one ``OptimizerLink`` (``engine_link``,
shared with the compiled engine): the configuration record
(``fastbp._optim_config``, where every hyper-parameter is validated), the state
arrays (``state[i][name]``, plain arrays so that they can be saved without
pickle) and the step counter. Assigning a hyper-parameter replaces the record;
``load_state_dict`` replaces the record, the state and the counter.
"""
from __future__ import annotations

import dataclasses
import inspect
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from fastbp import _validation as check
from fastbp._convert import own_writable
from fastbp._kernels import optim as _optim
from fastbp._kernels.optim import OptimizerLink
from fastbp._optim_config import (CHECKS, AdaGradConfig, AdamConfig, OptimizerConfig,
                                  RMSpropConfig, SGDConfig)

__all__ = ["Optimizer", "SGD", "AdaGrad", "RMSprop", "Adam", "AdamW", "OPTIMIZERS", "make_optimizer"]


class Optimizer:
    """Base class: parameter list, configuration record, state arrays, state_dict.

    A subclass outside fastbp (with ``update``, ``hyperparameters`` and, if it
    keeps state, a class attribute ``state_names``) gets the learning-rate-only
    record; the built-in kinds set ``config_type`` and run compiled kernels.

    Parameters
    ----------
    params : sequence of ndarray, or sequence of dict
        The parameters to update in place (at least one), such as
        ``model.parameters()``: writable, C-contiguous float32/float64 arrays. The
        optimizer keeps these very arrays. Or parameter groups (``no_decay_groups``):
        dicts {"params": [...], "lr": ..., "weight_decay": ...}, "lr" and
        "weight_decay" optional (the optimizer's own by default); ``params`` is then
        their arrays in group order. A group's lr is kept as its ratio to ``lr``:
        assigning ``opt.lr`` (as schedules do) scales every group's.
    lr : float
        The learning rate (finite, >= 0).
    **hyper
        The kind's other hyper-parameters (the fields of ``config_type``).

    Attributes
    ----------
    params : tuple of ndarray
        The parameters, the live arrays given.
    lr : float
        The learning rate. It and every other hyper-parameter can be read and
        assigned as attributes (validated like the constructor's; an assignment that
        would change which state arrays exist, e.g. momentum 0 to 0.9, raises
        ValueError). A new value applies from the next step.
    state : tuple of mapping
        Per parameter, its state arrays by name (read-only mappings of live arrays).
    step_count : int
        Steps taken so far.

    Raises
    ------
    TypeError
        A parameter that is not a float32/float64 ndarray; a hyper-parameter that is
        not a real number (flags: not a bool).
    ValueError
        No parameter, a parameter that is read-only or not C-contiguous, a
        hyper-parameter that is not finite or out of range.
    """

    name = "optimizer"
    #: the record type of this optimizer's hyper-parameters
    config_type: type[OptimizerConfig] = OptimizerConfig
    #: the parameters (a tuple: the compiled engine holds pointers into these arrays,
    #: which may change in place but never be replaced)
    params: tuple[np.ndarray, ...]
    #: configuration, state and step counter, shared with the compiled engine
    engine_link: OptimizerLink

    def __init__(self, params: Sequence[Any], lr: float, **hyper: Any) -> None:
        config = self._config_of(lr=lr, **hyper)
        params, groups = _parse_groups(list(params), config)
        if not params:
            raise ValueError("params must be a non-empty sequence of arrays, got an empty one")
        for i, p in enumerate(params):
            check.inplace_array(p, f"params[{i}]")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("params holds an array twice (in two groups?): each parameter "
                             "once")
        object.__setattr__(self, "params", tuple(params))
        object.__setattr__(self, "_groups", groups)
        object.__setattr__(self, "engine_link", OptimizerLink(config, ()))
        names = self.state_names
        # Read-only mappings: the engine points into these arrays too.
        self.engine_link.state = tuple(
            MappingProxyType({name: np.zeros_like(p) for name in names}) for p in params)

    @classmethod
    def _config_of(cls, **hyper: Any) -> OptimizerConfig:
        """The record of the constructor's keyword arguments (validated)."""
        return cls.config_type(**hyper)

    # ---------------------------------------------------------------- the shared record
    @property
    def config(self) -> OptimizerConfig:
        """The current configuration record (immutable; assignments replace it)."""
        return self.engine_link.config

    @property
    def state(self) -> tuple[Mapping[str, np.ndarray], ...]:
        """Per parameter, its state arrays by name (read-only mappings of live arrays)."""
        return self.engine_link.state

    @property
    def step_count(self) -> int:
        """Steps taken so far (the next one is step_count + 1)."""
        return int(self.engine_link.step_count)

    @step_count.setter
    def step_count(self, value: int) -> None:
        self.engine_link.step_count = check.int_in_range(value, "step_count", 0, check.MAX_STEP)

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the per-parameter state arrays this optimizer keeps."""
        return self.config.state_names

    @property
    def kind(self) -> int:
        """The compiled kernels' code of this optimizer (-1: none)."""
        return self.config.kind

    @property
    def lr(self) -> float:
        """The learning rate (assignable: checked, applies from the next step)."""
        return self.config.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._assign("lr", value)

    # ---------------------------------------------------------------- parameter groups
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The parameter groups (one without groups), as dicts {"params", "lr",
        "weight_decay"} of their current values (a copy: build a new optimizer to
        change them)."""
        member, scale, wd = self.group_table()
        default_wd = getattr(self.config, "weight_decay", 0.0)
        return [{"params": [p for p, m in zip(self.params, member) if m == g],
                 "lr": self.lr * scale[g],
                 "weight_decay": default_wd if np.isnan(wd[g]) else float(wd[g])}
                for g in range(len(scale))]

    def group_table(self) -> tuple[list[int], list[float], list[float]]:
        """(each parameter's group, each group's lr / ``lr``, each group's weight decay,
        NaN where it is the optimizer's own): what the compiled engine reads."""
        if self._groups is None:
            return [0] * len(self.params), [1.0], [float("nan")]
        return self._groups

    def set_group_weight_decay(self, weight_decays: Any) -> None:
        """Each parameter group's weight decay, from the next step on (a weight-decay
        schedule between epochs, from a ``fit`` callback: RealMLP's flat cosine).

        Parameters
        ----------
        weight_decays : list or tuple
            One value per group (>= 0), or None to use the optimizer's own.

        Raises
        ------
        TypeError
            Not a list or tuple; a value not a real number.
        ValueError
            The optimizer has no groups; another length; a negative value.
        """
        if self._groups is None:
            raise ValueError("the optimizer has no parameter groups (build it from group dicts)")
        if not isinstance(weight_decays, (list, tuple)):
            raise TypeError(f"weight_decays must be a list or tuple, got "
                            f"{type(weight_decays).__name__}")
        member, scale, _ = self._groups
        if len(weight_decays) != len(scale):
            raise ValueError(f"weight_decays must hold one value per group ({len(scale)}), "
                             f"got {len(weight_decays)}")
        wd = [float("nan") if v is None else
              CHECKS["weight_decay"](v, f"weight_decays[{g}]") for g, v in enumerate(weight_decays)]
        object.__setattr__(self, "_groups", (member, scale, wd))
        # a new record: the engine sees the binding is stale and reads the groups again
        self.engine_link.config = self.config.replace()

    def _group_configs(self) -> list[tuple[OptimizerConfig, list[int]]]:
        """Each group's record (lr and weight decay its own) and its parameters' indices."""
        member, scale, wd = self.group_table()
        config = self.config
        out = []
        for g in range(len(scale)):
            cfg = config if scale[g] == 1.0 and np.isnan(wd[g]) else dataclasses.replace(
                config, lr=config.lr * scale[g],
                **({} if np.isnan(wd[g]) else {"weight_decay": wd[g]}))
            out.append((cfg, [i for i, m in enumerate(member) if m == g]))
        return out

    def __getattr__(self, name: str) -> Any:
        # The other hyper-parameters, read from the record (only reached for names
        # that are not ordinary attributes).
        link = self.__dict__.get("engine_link")
        if link is not None and name in _fields(link.config):
            return getattr(link.config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if "engine_link" in self.__dict__ and name != "step_count" \
                and not isinstance(getattr(type(self), name, None), property):
            self._assign(name, value)
        else:
            object.__setattr__(self, name, value)

    def _changes(self, name: str, value: Any) -> dict[str, Any]:
        """The record fields that assigning ``name`` sets."""
        return {name: value}

    def _assign(self, name: str, value: Any) -> None:
        """Replace the record with one where hyper-parameter ``name`` is ``value``:
        validated like the constructor's; refused if it would change which state
        arrays exist (e.g. momentum 0 -> 0.9). Allocates nothing."""
        if name not in self.hyperparameters():
            raise AttributeError(f"{type(self).__name__} has no hyper-parameter {name!r}")
        changes = self._changes(name, value)
        if not set(changes) <= _fields(self.config):
            # a hyper-parameter of a subclass outside fastbp, kept as its attribute
            object.__setattr__(self, name, value)
            return
        config = self.config.replace(**changes)
        if config.state_names != self.config.state_names:
            raise ValueError(f"changing {name} would change the optimizer's state "
                             f"({self.state_names} -> {config.state_names}); build a new "
                             "optimizer instead")
        self.engine_link.config = config

    # ---------------------------------------------------------------- stepping
    def check_grads(self, grads: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The gradients, C-contiguous, after checking count, shape and dtype of each.

        Parameters
        ----------
        grads : sequence of ndarray
            One gradient per parameter, of its shape and dtype (strided or read-only
            arrays are accepted and copied to C order).

        Returns
        -------
        list of ndarray
            The gradients, C-contiguous.

        Raises
        ------
        TypeError
            A gradient that is not an ndarray or has another dtype than its parameter.
        ValueError
            Not one gradient per parameter, or a gradient of another shape.
        """
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
        """Update every parameter in place from its gradient.

        Every gradient is checked before anything changes; then ``step_count``
        advances by one and each parameter and its state are updated.

        Parameters
        ----------
        grads : sequence of ndarray
            One gradient per parameter (aligned with ``params``), of its shape and dtype.

        Raises
        ------
        TypeError
            A gradient that is not an ndarray or has another dtype than its parameter.
        ValueError
            Not one gradient per parameter, or a gradient of another shape.
        """
        grads = self.check_grads(grads)
        link = self.engine_link
        config = link.config
        step = self.step_count + 1
        if config.kind >= 0:
            # The compiled step over every parameter: the engine's kernels, per group.
            states = [[s.get(k) for k in config.kernel_state] for s in link.state]
            for cfg, idx in self._group_configs():
                _optim.optimizer_step_into(cfg, [self.params[i] for i in idx],
                                           [grads[i] for i in idx], [states[i] for i in idx],
                                           step)
            link.step_count = step
            return
        link.step_count = step
        for p, g, state in zip(self.params, grads, link.state):
            if p.size:
                self.update(p.reshape(-1), g.reshape(-1),
                            {k: a.reshape(-1) for k, a in state.items()})

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        """One parameter's update (subclasses without a compiled kernel).

        Parameters
        ----------
        p : ndarray
            A flat (1-D) view of the parameter, to update in place.
        g : ndarray
            Its gradient, flat.
        state : dict of str to ndarray
            Flat views of its state arrays by name (``state_names``), to update in place.

        Raises
        ------
        NotImplementedError
            Always in the base class; a subclass overrides it.
        """
        raise NotImplementedError

    # ---------------------------------------------------------------- state
    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's keyword arguments (lr included).

        Returns
        -------
        dict
            By name: lr in the base class; subclasses add their own.
            ``type(opt)(params, **opt.hyperparameters())`` rebuilds the configuration.
        """
        return {"lr": self.lr}

    def state_dict(self) -> dict[str, Any]:
        """A copy of everything needed to resume: type, hyper-parameters, step, state arrays.

        Returns
        -------
        dict
            ``"type"``: the kind's name ("sgd", ...); ``"hyperparameters"``:
            ``hyperparameters()``; ``"step"``: ``step_count``; ``"state"``: one dict per
            parameter of copies of its state arrays by name; with parameter groups,
            ``"param_groups"``: each parameter's group ("member"), each group's lr ratio
            ("lr_scale") and weight decay (None: the optimizer's).
        """
        d = {"type": self.name, "hyperparameters": self.hyperparameters(),
             "step": self.step_count,
             "state": [{k: a.copy() for k, a in s.items()} for s in self.state]}
        if self._groups is not None:
            member, scale, wd = self._groups
            d["param_groups"] = {"member": list(member), "lr_scale": list(scale),
                                 "weight_decay": [None if np.isnan(v) else v for v in wd]}
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore a state_dict of the same optimizer type over parameters of the same shapes.

        Replaces the hyper-parameters, the state arrays (copied in) and the step
        count; nothing changes unless the whole dict is valid.

        Parameters
        ----------
        d : dict
            A ``state_dict()`` of an optimizer of this type whose parameters had the
            shapes and dtypes of these.

        Raises
        ------
        ValueError
            ``d`` is not a dict of this type, misses a key, or holds state of another
            parameter count, names, shape or dtype, or a bad step or hyper-parameter.
        TypeError
            A hyper-parameter of the wrong type or an unknown hyper-parameter name.
        """
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
        try:
            step = check.int_in_range(d["step"], "state_dict step", 0, check.MAX_STEP)
        except TypeError as exc:  # a malformed dict, like every other error here
            raise ValueError(str(exc)) from None
        hyper = d["hyperparameters"]
        if not isinstance(hyper, dict):
            raise ValueError(f"state_dict hyperparameters must be a dict, got {type(hyper).__name__}")
        try:
            config = self._config_of(**hyper)  # validates the hyper-parameters
        except TypeError as exc:
            if "unexpected keyword" not in str(exc):
                raise
            raise ValueError(f"state_dict hyperparameters hold one {type(self).__name__} "
                             f"does not have: {exc}") from None
        names = config.state_names if self.config_type is not OptimizerConfig \
            else self.state_names
        arrays: list[Mapping[str, np.ndarray]] = []
        for i, (p, s) in enumerate(zip(self.params, state)):
            if not isinstance(s, dict) or set(s) != set(names):
                raise ValueError(f"state_dict state[{i}] must hold {sorted(names)}, "
                                 f"got {sorted(s) if isinstance(s, dict) else s!r}")
            own: dict[str, np.ndarray] = {}
            for k in names:
                a = np.asarray(s[k])
                if a.shape != p.shape or a.dtype != p.dtype:
                    raise ValueError(f"state_dict state[{i}][{k!r}] must be {p.dtype} of shape "
                                     f"{p.shape}, got {a.dtype} {a.shape}")
                own[k] = np.zeros_like(p)
                own[k][...] = a
            arrays.append(MappingProxyType(own))
        groups = _groups_of_state(d.get("param_groups"), len(self.params))
        # Everything checked: adopt the new record, state and count (a failing load
        # changed nothing). New objects, so a bound engine rebinds.
        object.__setattr__(self, "_groups", groups)
        link = self.engine_link
        link.config = config
        link.state = tuple(arrays)
        link.step_count = step

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling and copy.deepcopy: rebuilt from the state_dict over the same parameter
        # arrays, which a model pickled in the same call shares (pickle keeps the identity
        # of the arrays) unless joblib memory-mapped them (see _convert.own_writable: the
        # model and the optimizer then get copies of their own). fastbp.sklearn's
        # estimators pickle their optimizer as its state_dict for that reason.
        return _rebuild, (type(self), self.params, self.state_dict())


class SGD(Optimizer):
    """torch.optim.SGD: momentum, dampening, Nesterov, L2 weight decay.

    With d the gradient (plus weight_decay·p) and b the momentum buffer:
    b = d on the first step, else momentum·b + (1 - dampening)·d; then
    p -= lr·(d + momentum·b if nesterov else b), or p -= lr·d without momentum.

    Parameters
    ----------
    params : sequence of ndarray
        The parameters to update in place (at least one), such as
        ``model.parameters()``: writable, C-contiguous float32/float64 arrays. The
        optimizer keeps these very arrays.
    lr : float, default 0.01
        The learning rate (>= 0).
    momentum : float, default 0.0
        The momentum factor (>= 0).
    dampening : float, default 0.0
        Dampening of the momentum (a real number).
    nesterov : bool, default False
        Nesterov momentum (needs momentum > 0 and dampening 0).
    weight_decay : float, default 0.0
        L2 penalty (>= 0): weight_decay·p is added to the gradient.

    Raises
    ------
    TypeError
        A parameter that is not a float32/float64 ndarray; a hyper-parameter that is
        not a real number (flags: not a bool).
    ValueError
        No parameter, a parameter that is read-only or not C-contiguous, a
        hyper-parameter that is not finite or out of range,
        nesterov without momentum or with dampening.
    """

    name = "sgd"
    config_type = SGDConfig

    def __init__(self, params: Sequence[Any], lr: float = 0.01, momentum: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                         weight_decay=weight_decay)

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's keyword arguments.

        Returns
        -------
        dict
            By name: lr, momentum, dampening, nesterov and weight_decay.
            ``type(opt)(params, **opt.hyperparameters())`` rebuilds the configuration.
        """
        c = self.engine_link.config
        return dict(lr=c.lr, momentum=c.momentum, dampening=c.dampening,
                    nesterov=c.nesterov, weight_decay=c.weight_decay)


class AdaGrad(Optimizer):
    """torch.optim.Adagrad (lr_decay 0, initial accumulator 0).

    s += d²; p -= lr·d/(√s + eps), d the gradient (plus weight_decay·p).

    Parameters
    ----------
    params : sequence of ndarray
        The parameters to update in place (at least one), such as
        ``model.parameters()``: writable, C-contiguous float32/float64 arrays. The
        optimizer keeps these very arrays.
    lr : float, default 0.01
        The learning rate (>= 0).
    eps : float, default 1e-10
        Added to the denominator (>= 0).
    weight_decay : float, default 0.0
        L2 penalty (>= 0): weight_decay·p is added to the gradient.

    Raises
    ------
    TypeError
        A parameter that is not a float32/float64 ndarray; a hyper-parameter that is
        not a real number (flags: not a bool).
    ValueError
        No parameter, a parameter that is read-only or not C-contiguous, a
        hyper-parameter that is not finite or out of range.
    """

    name = "adagrad"
    config_type = AdaGradConfig

    def __init__(self, params: Sequence[Any], lr: float = 0.01, eps: float = 1e-10,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, eps=eps, weight_decay=weight_decay)

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's keyword arguments.

        Returns
        -------
        dict
            By name: lr, eps and weight_decay.
            ``type(opt)(params, **opt.hyperparameters())`` rebuilds the configuration.
        """
        c = self.engine_link.config
        return dict(lr=c.lr, eps=c.eps, weight_decay=c.weight_decay)


class RMSprop(Optimizer):
    """torch.optim.RMSprop: plain, centered, with momentum.

    v = alpha·v + (1 - alpha)·d², d the gradient (plus weight_decay·p); the step
    is lr·d/(√v + eps), v less the square of the running mean gradient when
    centered, accumulated in a momentum buffer when momentum > 0.

    Parameters
    ----------
    params : sequence of ndarray
        The parameters to update in place (at least one), such as
        ``model.parameters()``: writable, C-contiguous float32/float64 arrays. The
        optimizer keeps these very arrays.
    lr : float, default 0.01
        The learning rate (>= 0).
    alpha : float, default 0.99
        The smoothing constant of the running averages, in [0, 1].
    eps : float, default 1e-8
        Added to the denominator (>= 0).
    momentum : float, default 0.0
        The momentum factor (>= 0).
    centered : bool, default False
        Normalise by the estimated variance of the gradient.
    weight_decay : float, default 0.0
        L2 penalty (>= 0): weight_decay·p is added to the gradient.

    Raises
    ------
    TypeError
        A parameter that is not a float32/float64 ndarray; a hyper-parameter that is
        not a real number (flags: not a bool).
    ValueError
        No parameter, a parameter that is read-only or not C-contiguous, a
        hyper-parameter that is not finite or out of range.
    """

    name = "rmsprop"
    config_type = RMSpropConfig

    def __init__(self, params: Sequence[Any], lr: float = 0.01, alpha: float = 0.99,
                 eps: float = 1e-8, momentum: float = 0.0, centered: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, alpha=alpha, eps=eps, momentum=momentum, centered=centered,
                         weight_decay=weight_decay)

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's keyword arguments.

        Returns
        -------
        dict
            By name: lr, alpha, eps, momentum, centered and weight_decay.
            ``type(opt)(params, **opt.hyperparameters())`` rebuilds the configuration.
        """
        c = self.engine_link.config
        return dict(lr=c.lr, alpha=c.alpha, eps=c.eps, momentum=c.momentum,
                    centered=c.centered, weight_decay=c.weight_decay)


class Adam(Optimizer):
    """torch.optim.Adam (eps_mode="paper") or scikit-learn's Adam (eps_mode="folded").

    Parameters
    ----------
    params : sequence of ndarray
        The parameters to update in place (at least one), such as
        ``model.parameters()``: writable, C-contiguous float32/float64 arrays. The
        optimizer keeps these very arrays.
    lr : float, default 1e-3
        The learning rate (>= 0).
    betas : (float, float), default (0.9, 0.999)
        The decay rates (beta1, beta2) of the first- and second-moment estimates,
        each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator (>= 0).
    weight_decay : float, default 0.0
        L2 penalty (>= 0): weight_decay·p is added to the gradient.
    amsgrad : bool, default False
        Divide by the running maximum of the second-moment estimate (AMSGrad).
    eps_mode : {"paper", "folded"}, default "paper"
        "paper": p -= lr/(1-beta1**t)·m / (√v/√(1-beta2**t) + eps), PyTorch's;
        "folded": p -= lr·√(1-beta2**t)/(1-beta1**t)·m / (√v + eps), scikit-learn's.

    Raises
    ------
    TypeError
        A parameter that is not a float32/float64 ndarray; a hyper-parameter that is
        not a real number (flags: not a bool), betas that are not a pair.
    ValueError
        No parameter, a parameter that is read-only or not C-contiguous, a
        hyper-parameter that is not finite or out of range, an unknown eps_mode.
    """

    name = "adam"
    config_type = AdamConfig
    #: AdamW's decoupled weight decay (a property of the class, not a hyper-parameter)
    decoupled = False

    def __init__(self, params: Sequence[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, eps_mode: str = "paper") -> None:
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, eps_mode=eps_mode)

    @classmethod
    def _config_of(cls, betas: Any = (0.9, 0.999), **hyper: Any) -> OptimizerConfig:
        return AdamConfig(**_betas(betas), decoupled=cls.decoupled, **hyper)

    def _changes(self, name: str, value: Any) -> dict[str, Any]:
        return _betas(value) if name == "betas" else {name: value}

    @property
    def betas(self) -> tuple[float, float]:
        """(beta1, beta2) (assignable as a pair: checked, applies from the next step)."""
        c = self.engine_link.config
        return (c.beta1, c.beta2)

    @betas.setter
    def betas(self, value: tuple[float, float]) -> None:
        self._assign("betas", value)

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's keyword arguments.

        Returns
        -------
        dict
            By name: lr, betas (a list), eps, weight_decay, amsgrad and eps_mode.
            ``type(opt)(params, **opt.hyperparameters())`` rebuilds the configuration.
        """
        c = self.engine_link.config
        return dict(lr=c.lr, betas=[c.beta1, c.beta2], eps=c.eps,
                    weight_decay=c.weight_decay, amsgrad=c.amsgrad, eps_mode=c.eps_mode)


def _fields(config: OptimizerConfig) -> set[str]:
    return {f.name for f in dataclasses.fields(config)}


def _betas(betas: Any) -> dict[str, Any]:
    """Adam's (beta1, beta2) pair as record fields."""
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError) as exc:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}") from exc
    return {"beta1": beta1, "beta2": beta2}


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay p ← p·(1 - lr·λ) (default λ 0.01).

    Parameters
    ----------
    params : sequence of ndarray
        The parameters to update in place (at least one), such as
        ``model.parameters()``: writable, C-contiguous float32/float64 arrays. The
        optimizer keeps these very arrays.
    lr : float, default 1e-3
        The learning rate (>= 0).
    betas : (float, float), default (0.9, 0.999)
        The decay rates (beta1, beta2) of the first- and second-moment estimates,
        each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator (>= 0).
    weight_decay : float, default 0.01
        The decoupled weight decay λ (>= 0), applied to p before the Adam step and
        not added to the gradient.
    amsgrad : bool, default False
        Divide by the running maximum of the second-moment estimate (AMSGrad).
    eps_mode : {"paper", "folded"}, default "paper"
        Where eps enters, as for ``Adam``: "paper" is PyTorch's form, "folded"
        scikit-learn's.

    Raises
    ------
    TypeError
        A parameter that is not a float32/float64 ndarray; a hyper-parameter that is
        not a real number (flags: not a bool), betas that are not a pair.
    ValueError
        No parameter, a parameter that is read-only or not C-contiguous, a
        hyper-parameter that is not finite or out of range, an unknown eps_mode.
    """

    name = "adamw"
    decoupled = True

    def __init__(self, params: Sequence[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False, eps_mode: str = "paper") -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, eps_mode)


def from_state_dict(params: Sequence[np.ndarray], state: dict[str, Any],
                    cls: type[Optimizer] | None = None) -> Optimizer:
    """An optimizer over ``params`` resumed from ``state`` (a ``state_dict()``).

    How unpickling, fastbp.load, the estimators' pickles and the Dask workers
    restore an optimizer.

    Parameters
    ----------
    params : sequence of ndarray
        The parameters, of the shapes and dtypes the state was saved with.
    state : dict
        An optimizer's ``state_dict()``.
    cls : type of Optimizer or None, default None
        The optimizer class to build (None: the kind ``state["type"]`` names).

    Returns
    -------
    Optimizer
        A new optimizer over ``params`` with the saved hyper-parameters, state arrays
        (copied) and step count.

    Raises
    ------
    ValueError
        ``state`` is malformed: not a dict, no known kind (with ``cls`` None), no or
        unknown hyper-parameters, or it fails ``load_state_dict``'s checks.
    TypeError
        Bad parameters, or hyper-parameters of the wrong type.
    """
    if cls is None:
        if not isinstance(state, dict) or state.get("type") not in OPTIMIZERS:
            got = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state_dict type must be one of {sorted(OPTIMIZERS)}, got {got!r}")
        cls = OPTIMIZERS[state["type"]]
    hyper = state.get("hyperparameters") if isinstance(state, dict) else None
    if not isinstance(hyper, dict):
        raise ValueError("state_dict must hold a dict of hyperparameters")
    unknown = set(hyper) - set(inspect.signature(cls.__init__).parameters) - {"self", "params"}
    if unknown:
        raise ValueError(f"state_dict hyperparameters {sorted(unknown)} are not {cls.__name__}'s")
    optimizer = cls(params, **hyper)
    optimizer.load_state_dict(state)
    return optimizer


_GROUP_KEYS = ("params", "lr", "weight_decay")


def _parse_groups(items: list[Any], config: OptimizerConfig
                  ) -> tuple[list[Any], tuple[list[int], list[float], list[float]] | None]:
    """(the flat parameters, the group table or None) of a list of arrays or of group
    dicts (see Optimizer)."""
    if not items or not any(isinstance(x, dict) for x in items):
        return items, None
    if not all(isinstance(x, dict) for x in items):
        raise TypeError("params must be a list of arrays or a list of group dicts, not both")
    if config.kind < 0:
        raise TypeError("parameter groups need one of fastbp's optimizers (SGD, AdaGrad, "
                        "RMSprop, Adam, AdamW)")
    params: list[Any] = []
    member: list[int] = []
    scale: list[float] = []
    wd: list[float] = []
    for g, group in enumerate(items):
        unknown = set(group) - set(_GROUP_KEYS)
        if unknown:
            raise ValueError(f"params[{g}] (a group) has keys {sorted(unknown)}; a group takes "
                             f"{_GROUP_KEYS}")
        arrays = group.get("params")
        if isinstance(arrays, np.ndarray) or not isinstance(arrays, (list, tuple)) or not arrays:
            raise TypeError(f"params[{g}]['params'] must be a non-empty list of arrays")
        if "lr" in group:
            lr = CHECKS["lr"](group["lr"], f"params[{g}]['lr']")
            if config.lr == 0:
                raise ValueError("lr must be > 0 when a group sets its own lr (a group's lr is "
                                 "kept as its ratio to lr)")
            scale.append(lr / config.lr)
        else:
            scale.append(1.0)
        wd.append(CHECKS["weight_decay"](group["weight_decay"], f"params[{g}]['weight_decay']")
                  if "weight_decay" in group else float("nan"))
        params += list(arrays)
        member += [g] * len(arrays)
    return params, (member, scale, wd)


def _groups_of_state(spec: Any, n_params: int
                     ) -> tuple[list[int], list[float], list[float]] | None:
    """The group table a state_dict's "param_groups" holds (None: no groups), checked."""
    if spec is None:
        return None
    try:
        member = [check.int_in_range(m, "member", 0) for m in spec["member"]]
        scale = [check.finite_scalar(v, "lr_scale", low=0.0) for v in spec["lr_scale"]]
        wd = [float("nan") if v is None else check.finite_scalar(v, "weight_decay", low=0.0)
              for v in spec["weight_decay"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"state_dict param_groups is malformed: {exc}") from None
    if len(member) != n_params or len(wd) != len(scale) or not scale \
            or max(member) >= len(scale):
        raise ValueError("state_dict param_groups does not fit the parameters")
    return member, scale, wd


def _rebuild(cls: type[Optimizer], params: tuple[np.ndarray, ...],
             state: dict[str, Any]) -> Optimizer:
    """Unpickling (Optimizer.__reduce__): over ``params``, made the process's own."""
    return from_state_dict([own_writable(p) for p in params], state, cls)


OPTIMIZERS = {"sgd": SGD, "adagrad": AdaGrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def make_optimizer(optimizer: Any, params: list[np.ndarray], lr: float | None) -> Optimizer:
    """An optimizer instance from a name ("adam", ...) or an instance over ``params``.

    Parameters
    ----------
    optimizer : str or Optimizer
        A kind's name, "sgd", "adagrad", "rmsprop", "adam" or "adamw" (a new
        optimizer with that kind's defaults), or an instance built over ``params``
        (the same arrays, in the same order; with parameter groups, in any order),
        returned as is.
    params : list of ndarray
        The model's parameters.
    lr : float or None
        The learning rate: given to a new optimizer, or assigned to the instance;
        None keeps the default or the instance's own.

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        An unknown name, an instance built over other arrays, a bad lr.
    TypeError
        An lr that is not a real number.
    """
    if isinstance(optimizer, Optimizer):
        grouped = getattr(optimizer, "_groups", None) is not None
        if not (same_arrays(optimizer.params, params) if grouped else
                len(optimizer.params) == len(params)
                and all(a is b for a, b in zip(optimizer.params, params))):
            raise ValueError("optimizer must be built over model.parameters() (the same live "
                             "arrays; in the same order, or in parameter groups)")
        if lr is not None:
            optimizer.lr = lr
        return optimizer
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)} or an Optimizer instance, "
                         f"got {optimizer!r}")
    cls = OPTIMIZERS[optimizer]
    return cls(params) if lr is None else cls(params, lr=lr)


def same_arrays(ours: Sequence[np.ndarray], theirs: Sequence[np.ndarray]) -> bool:
    """Whether ``ours`` holds exactly the arrays of ``theirs`` (by identity, any order)."""
    return len(ours) == len(theirs) and {id(a) for a in ours} == {id(b) for b in theirs} \
        and len({id(b) for b in theirs}) == len(theirs)


def in_order_of(optimizer: Optimizer, params: Sequence[np.ndarray]) -> list[int]:
    """The optimizer's index of each of ``params`` (the same arrays, see same_arrays)."""
    where = {id(p): i for i, p in enumerate(optimizer.params)}
    return [where[id(p)] for p in params]
