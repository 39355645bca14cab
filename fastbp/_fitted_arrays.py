"""The estimators' ``coefs_`` and ``intercepts_``: scikit-learn's plain lists of arrays,
kept tied to the compiled network so that no assignment is silently dropped.

scikit-learn's user code replaces these lists (``est.coefs_ = [...]``, also before a
fit, then ``partial_fit`` or a ``warm_start`` fit goes on from them) and edits their
items (``est.coefs_[1] = W``). Here the arrays live in the network, so:

- on a fitted estimator the attribute is a fresh ``LayerArrays``: a ``list`` of the
  network's live arrays whose item assignment writes into the network (checked as any
  parameter assignment: shape, finite values, converted to the model's dtype) and
  whose length, the network's, cannot change;
- before a fit the list given is kept as it is (items may be filled in later) and is
  read when the next ``warm_start`` fit or ``partial_fit`` builds the network.
"""
from __future__ import annotations

import operator
from typing import Any, Callable, NoReturn

import numpy as np

from fastbp.layers.base import assign_into


class LayerArrays(list[np.ndarray]):
    """A fitted estimator's ``coefs_`` or ``intercepts_``: the network's live arrays,
    one per layer. ``lst[i] = value`` writes ``value`` into layer i's array; a change of
    length or order is a ``TypeError``."""

    def __init__(self, arrays: list[np.ndarray], name: str) -> None:
        super().__init__(arrays)
        self._name = name

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            targets = range(len(self))[index]
            values = list(value)
            if len(values) != len(targets):
                raise ValueError(f"{self._name}[{index.start}:{index.stop}] holds "
                                 f"{len(targets)} arrays, got {len(values)}")
            write_all(self, dict(zip(targets, values)), self._name)
            return
        i = operator.index(index)
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self._name} has {len(self)} arrays, no index {i}")
        assign_into(list.__getitem__(self, i), value, f"{self._name}[{i % len(self)}]")

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{self._name} has one array per layer of the network: its length "
                        f"and order cannot change (assign an item, or the whole list)")

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __delitem__ = __iadd__ = __imul__ = _refuse

    def __reduce__(self) -> Any:   # a copy or pickle is a plain list of copies
        return (list, ([np.array(a) for a in self],))


def write_all(live: list[np.ndarray], values: dict[int, Any], name: str) -> None:
    """``live[i][...] = values[i]`` for each i, each checked as ``assign_into``; all or
    nothing (a rejected value leaves every array as it was)."""
    before = {i: live[i].copy() for i in values}
    try:
        for i, value in values.items():
            assign_into(list.__getitem__(live, i), value, f"{name}[{i}]")
    except BaseException:
        for i, old in before.items():
            list.__getitem__(live, i)[...] = old
        raise


def _as_list(values: Any, name: str) -> list[Any]:
    """``values`` as a list (itself when it is one): a sequence of arrays, not one array."""
    if isinstance(values, (str, bytes, np.ndarray)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list of arrays, got {type(values).__name__}")
    return values if isinstance(values, list) else list(values)


def assign_list(live: list[np.ndarray], values: Any, name: str) -> None:
    """A whole new ``coefs_``/``intercepts_`` for a fitted estimator: as many arrays as
    the network has layers, written all or nothing."""
    values = _as_list(values, name)
    if len(values) != len(live):
        raise ValueError(f"{name} must hold {len(live)} arrays (one per layer), got "
                         f"{len(values)}")
    write_all(live, dict(enumerate(values)), name)


def layer_property(name: str, live: Callable[[Any], list[np.ndarray]]) -> property:
    """The ``coefs_``/``intercepts_`` property: ``live(est)`` gives the fitted network's
    arrays; before a fit, the list the user assigned (kept in ``__dict__["_given_" +
    name]``) or AttributeError."""
    given = "_given_" + name

    def get(est: Any) -> list[Any]:
        if "model_" in est.__dict__:
            return LayerArrays(live(est), name)
        if given in est.__dict__:
            return est.__dict__[given]
        raise AttributeError(f"{name} exists once the estimator is fitted (or assigned)")

    def set_(est: Any, values: Any) -> None:
        if "model_" in est.__dict__:
            assign_list(live(est), values, name)
            return
        # kept as given, so that the caller's later item edits are seen
        est.__dict__[given] = _as_list(values, name)

    def delete(est: Any) -> None:
        est.__dict__.pop(given, None)

    get.__doc__ = (f"The {name[:-1]} arrays, one per layer: a list of the network's live "
                   f"arrays whose item assignment writes into it (fastbp._fitted_arrays).")
    return property(get, set_, delete, get.__doc__)
