"""Saving and loading without pickle: ``fastbp.load`` and ``fastbp.save``.

A file is a checksummed archive (fastbp/_storage.py: format, checks, atomic
writes) whose header says what it holds: ``"kind": "model"`` (a Sequential/MLP,
with its optimizer and training state when saved with them; headers without a
kind are models too) or ``"kind": "ensemble"`` (an Ensemble: one architecture
per member) or ``"kind": "tabular"`` (a fastbp.tabular estimator: its settings, table
encoder and network). The models and the ensemble describe themselves
(``to_archive``/``from_archive``); this module writes and reads the files and
dispatches on the kind.
"""
from __future__ import annotations

import os
from typing import Any, Literal, Union, cast, overload

from fastbp import _storage
from fastbp.ensemble import Ensemble
from fastbp.models import Sequential
from fastbp.optim import Optimizer

__all__ = ["save", "load", "load_ensemble"]

#: what fastbp.load returns: a model or an ensemble, by the file's kind (a "tabular" file
#: gives a fastbp.tabular estimator, which this static type leaves out: typed code that
#: loads one narrows with isinstance)
Loaded = Union[Sequential, Ensemble]


def save(obj: Any, path: Any, optimizer: Optimizer | None = None) -> None:
    """Write a model (with ``optimizer``'s state, if given) or an ensemble to ``path``.

    Atomically and without pickle: ``model.save(path)``, ``ensemble.save(path)``.
    ``fastbp.load`` reads the file back.

    Parameters
    ----------
    obj : Sequential or Ensemble
        The model (with its training state) or the ensemble to write.
    path : str, bytes or os.PathLike
        The file to write (replaced if it exists); its directory must exist.
    optimizer : Optimizer or None, default None
        For a model only: an optimizer over ``obj.parameters()`` whose state the
        file holds too.

    Raises
    ------
    TypeError
        ``obj`` is neither a fastbp model nor an Ensemble; ``optimizer`` given with an
        Ensemble, or not a fastbp optimizer; ``path`` not a path.
    ValueError
        ``optimizer`` is not built over the model's parameters; an empty path.
    FileNotFoundError, IsADirectoryError, PermissionError
        The directory is missing, ``path`` is a directory, or it cannot be written.
    """
    if isinstance(obj, Sequential):
        obj.save(path, optimizer)
    elif isinstance(obj, Ensemble):
        if optimizer is not None:
            raise TypeError("optimizer applies to a single model; an Ensemble's file holds "
                            "its members")
        obj.save(path)
    else:
        raise TypeError(f"save needs a fastbp Sequential/MLP or Ensemble, got {type(obj).__name__}")


@overload
def load(path: Any, *, with_optimizer: Literal[False] = ...) -> Loaded: ...
@overload
def load(path: Any, *, with_optimizer: Literal[True]) -> tuple[Loaded, Optimizer | None]: ...
@overload
def load(path: Any, *, with_optimizer: bool) -> Loaded | tuple[Loaded, Optimizer | None]: ...
def load(path: Any, *, with_optimizer: bool = False) -> Loaded | tuple[Loaded, Optimizer | None]:
    """The model or ensemble saved at ``path``.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        A file written by ``save``.
    with_optimizer : bool, default False
        Also return the optimizer the file holds (the one given to ``save``, else the
        one of its training state; None if neither): ``(model, optimizer)``.

    Returns
    -------
    Sequential, Ensemble or a fastbp.tabular estimator, or (that, Optimizer or None)
        By the file's kind; a model keeps its training state, so that
        ``fit(..., resume=True)`` continues its last fit. With ``with_optimizer``,
        the pair ``(model, optimizer)``.

    Raises
    ------
    ValueError
        A foreign, truncated, corrupted or pickled file (nothing from it is executed).
    TypeError
        ``path`` is not a path; ``with_optimizer`` is not a bool.
    FileNotFoundError, PermissionError, IsADirectoryError
        As ``open`` raises them.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str, bytes or os.PathLike, got {type(path).__name__}")
    if not isinstance(with_optimizer, bool):
        raise TypeError(f"with_optimizer must be a bool, got {type(with_optimizer).__name__}")
    header, arrays = _storage.read_archive(path)
    try:
        kind = header.get("kind", "model")
        opt: Optimizer | None = None
        result: Loaded
        if kind == "ensemble":
            result = Ensemble.from_archive(header, arrays)
        elif kind == "model":
            result, opt = Sequential.from_archive(header, arrays)
        elif kind == "tabular":   # (needs scikit-learn, as the estimators do)
            from fastbp.tabular._base import from_archive
            result = cast(Loaded, from_archive(header, arrays))
        else:
            raise ValueError(f"unknown kind {kind!r} (this fastbp reads 'model', 'ensemble' "
                             "and 'tabular')")
        if arrays:
            raise ValueError(f"unexpected arrays {sorted(arrays)}")
    except Exception as exc:  # anything a malformed header can provoke
        raise ValueError(f"{os.fsdecode(os.fspath(path))!r} is not a valid fastbp "
                         f"model file: {type(exc).__name__}: {exc}") from exc
    return (result, opt) if with_optimizer else result


def load_ensemble(path: Any) -> Ensemble:
    """The ensemble saved at ``path`` by Ensemble.save.

    ``fastbp.load`` reads it too; this is the typed spelling, and refuses a
    single-model file.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        A file written by ``Ensemble.save`` (or ``fastbp.save`` of an ensemble).

    Returns
    -------
    Ensemble

    Raises
    ------
    ValueError
        The file holds a single model, or is foreign, truncated or corrupted.
    TypeError
        ``path`` is not a path.
    FileNotFoundError, PermissionError, IsADirectoryError
        As ``open`` raises them.
    """
    result = load(path)
    if not isinstance(result, Ensemble):
        raise ValueError(f"{os.fsdecode(os.fspath(path))!r} holds a single model, not an "
                         "ensemble (read it with fastbp.load)")
    return result
