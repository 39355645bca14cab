"""Stopping the losers of a sweep early: successive halving and Hyperband.

A pruner plans, for ``n`` members and a fit of ``epochs`` epochs, which members are
ranked together (a bracket) and after how many epochs (its rungs). At a rung, the
members of the bracket still training are ranked by a score (lower is better, ties
by member index: validation loss in ``Ensemble.fit``, minus the mean cross-validated
score in ``MLPSearchCV``); the ⌈n/eta⌉ best go on training from where they are and the
others stop there, keeping their state (``History.pruned_at``). A rung at or beyond
the fit's last epoch prunes nothing (every member stops there anyway).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from fastbp import _validation as check

__all__ = ["Pruner", "Halving", "SuccessiveHalving", "Hyperband", "Bracket", "survivors"]


@dataclass(frozen=True)
class Bracket:
    """Members ranked together, and the epoch counts after which they are ranked."""

    members: tuple[int, ...]
    rungs: tuple[int, ...]


def _rungs(first: int, eta: int, count: int | None, epochs: int) -> tuple[int, ...]:
    """first·etaⁱ for i = 0, 1, ... (at most ``count`` of them), below ``epochs``."""
    out: list[int] = []
    r = first
    while r < epochs and (count is None or len(out) < count):
        out.append(r)
        r *= eta
    return tuple(out)


def survivors(scores: Sequence[float], eta: int) -> list[int]:
    """The positions of the ⌈n/eta⌉ lowest scores (ties: the earlier position first),
    in ascending order. NaN ranks last."""
    n = len(scores)
    keep = -(-n // eta)
    order = sorted(range(n), key=lambda i: (math.isnan(scores[i]), scores[i], i))
    return sorted(order[:keep])


class Pruner:
    """What ``Ensemble.fit(prune=...)`` takes: something that stops members after epochs."""

    def hook(self, runs: Sequence[Any], epochs: int) -> Any:
        """``train_runs``'s after_epoch for a fit of ``runs`` over ``epochs`` epochs: it
        sets ``run.history.pruned_at`` on the runs to stop.

        Parameters
        ----------
        runs : sequence of TrainingRun
            The members' runs, in member order.
        epochs : int
            The epochs of the fit.

        Returns
        -------
        callable
            Called once after every epoch with the runs.
        """
        raise NotImplementedError


class Halving(Pruner):
    """A pruner of brackets and rungs (the members ranked by validation loss)."""

    eta: int

    def brackets(self, n: int, epochs: int) -> list[Bracket]:
        """The members ranked together and the rungs of each group.

        Parameters
        ----------
        n : int
            The number of members.
        epochs : int
            The epochs of the fit (rungs at or beyond it prune nothing).

        Returns
        -------
        list of Bracket
        """
        raise NotImplementedError

    def hook(self, runs: Sequence[Any], epochs: int) -> Any:
        """Rank the members of each bracket by validation loss at its rungs (see Pruner.hook).

        Parameters
        ----------
        runs : sequence of TrainingRun
            The members' runs, in member order.
        epochs : int
            The epochs of the fit.

        Returns
        -------
        callable
        """
        return pruning_hook(self, runs, epochs)


class SuccessiveHalving(Halving):
    """Successive halving over all the members: rungs after ``min_epochs·etaⁱ`` epochs.

    Parameters
    ----------
    eta : int, default 3
        At each rung the best ⌈n/eta⌉ of the n members still training go on (>= 2).
    min_epochs : int, default 1
        The epochs before the first rung (>= 1).

    Raises
    ------
    TypeError, ValueError
        A parameter that is not an int in range (a bool or a string included).
    """

    def __init__(self, eta: int = 3, min_epochs: int = 1) -> None:
        self.eta = check.int_in_range(eta, "eta", 2)
        self.min_epochs = check.int_in_range(min_epochs, "min_epochs", 1)

    def __repr__(self) -> str:
        return f"SuccessiveHalving(eta={self.eta}, min_epochs={self.min_epochs})"

    def brackets(self, n: int, epochs: int) -> list[Bracket]:
        """One bracket of every member, its rungs below ``epochs``.

        Parameters
        ----------
        n : int
            The number of members.
        epochs : int
            The epochs of the fit.

        Returns
        -------
        list of Bracket
        """
        return [Bracket(tuple(range(n)), _rungs(self.min_epochs, self.eta, None, epochs))]


class Hyperband(Halving):
    """Successive-halving brackets over disjoint groups of the members (Li et al., 2018).

    With R = max_epochs / min_epochs and s_max the largest s with etaˢ <= R, bracket s
    (s = s_max down to 0) starts ⌈(s_max + 1)·etaˢ / (s + 1)⌉ configurations, has its
    first rung after min_epochs·eta^(s_max − s) epochs and s rungs in all: the most
    aggressive bracket ranks many members early, the last trains its few to the end.
    The members are shared out over the brackets in those proportions (largest
    remainders; in order, the most aggressive bracket first), so any member count works.

    Parameters
    ----------
    eta : int, default 3
        The halving rate (>= 2).
    min_epochs : int, default 1
        The least epochs any member trains (>= 1).
    max_epochs : int or None, default None
        The epochs the brackets are sized for (None: the fit's epochs; at most them).

    Raises
    ------
    TypeError, ValueError
        A parameter that is not an int in range; ``min_epochs > max_epochs``.
    """

    def __init__(self, eta: int = 3, min_epochs: int = 1, max_epochs: int | None = None) -> None:
        self.eta = check.int_in_range(eta, "eta", 2)
        self.min_epochs = check.int_in_range(min_epochs, "min_epochs", 1)
        self.max_epochs = None if max_epochs is None else check.int_in_range(
            max_epochs, "max_epochs", self.min_epochs)

    def __repr__(self) -> str:
        return (f"Hyperband(eta={self.eta}, min_epochs={self.min_epochs}, "
                f"max_epochs={self.max_epochs})")

    def bracket_sizes(self, max_epochs: int) -> list[tuple[int, int]]:
        """(configurations, epochs before the first rung) of each bracket, s_max first:
        Li et al.'s n_s and r_s in epochs.

        Parameters
        ----------
        max_epochs : int
            The epochs the brackets are sized for (R·min_epochs).

        Returns
        -------
        list of (int, int)
        """
        s_max = 0
        while self.min_epochs * self.eta ** (s_max + 1) <= max_epochs:
            s_max += 1
        return [(-(-(s_max + 1) * self.eta ** s // (s + 1)),
                 self.min_epochs * self.eta ** (s_max - s)) for s in range(s_max, -1, -1)]

    def brackets(self, n: int, epochs: int) -> list[Bracket]:
        """The members shared out over the brackets, each with its rungs.

        Parameters
        ----------
        n : int
            The number of members.
        epochs : int
            The epochs of the fit (max_epochs defaults to it and may not exceed it).

        Returns
        -------
        list of Bracket
            The non-empty brackets, the most aggressive first.

        Raises
        ------
        ValueError
            max_epochs exceeds epochs.
        """
        max_epochs = epochs if self.max_epochs is None else self.max_epochs
        if max_epochs > epochs:
            raise ValueError(f"Hyperband's max_epochs ({max_epochs}) exceeds the fit's epochs "
                             f"({epochs})")
        sizes = self.bracket_sizes(max_epochs)
        total = sum(c for c, _ in sizes)
        shares = [n * c / total for c, _ in sizes]
        counts = [int(s) for s in shares]
        by_remainder = sorted(range(len(sizes)), key=lambda i: (-(shares[i] - counts[i]), i))
        for i in by_remainder[:n - sum(counts)]:
            counts[i] += 1
        out, start = [], 0
        for (_, first), count, s in zip(sizes, counts, range(len(sizes) - 1, -1, -1)):
            if count:
                out.append(Bracket(tuple(range(start, start + count)),
                                   _rungs(first, self.eta, s, epochs)))
            start += count
        return out


def check_pruner(prune: Any) -> Pruner | None:
    """``prune`` as given: None or a Pruner (SuccessiveHalving, Hyperband, ...)."""
    if prune is None or isinstance(prune, Pruner):
        return prune
    raise TypeError("prune must be None, fastbp.SuccessiveHalving(...) or fastbp.Hyperband(...), "
                    f"got {type(prune).__name__}")


def pruning_hook(pruner: Halving, runs: Sequence[Any], epochs: int, score: Any = None) -> Any:
    """``train_runs``'s after_epoch for a pruned fit of ``runs`` over ``epochs`` epochs.

    ``score(run)`` is a run's score at a rung (lower is better; default its last
    validation loss). Members that stopped otherwise (early stopping, divergence) are
    not ranked."""
    brackets = pruner.brackets(len(runs), epochs)
    done = [0]
    score = score or (lambda run: run.history.val_loss[-1])

    def after_epoch(_: Any) -> None:
        done[0] += 1
        for bracket in brackets:
            if done[0] not in bracket.rungs:
                continue
            alive = [i for i in bracket.members if runs[i].alive]
            keep = {alive[j] for j in survivors([score(runs[i]) for i in alive], pruner.eta)}
            for i in alive:
                if i not in keep:
                    runs[i].history.pruned_at = done[0]

    return after_epoch
