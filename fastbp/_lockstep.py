"""Many scikit-learn-style fits in lock-step: their epochs, round by round, as packs.

Why: a search fits every candidate on every fold; candidates of one architecture on one
fold (and one ``random_state``: the same initial draw, so the same shuffles) see the
same batches in every epoch, which is what a pack (fastbp/_packing.py) steps at once.
A fit here is a fastbp.sklearn estimator's ``_fit_epochs(..., requests=True)``
generator: scikit-learn's loop line for line, which yields each compiled epoch as an
``EpochRequest`` and takes its results back, so that everything else of the fit
(early stopping, ``tol``/``n_iter_no_change``, adaptive rates, the loss curve) stays
the estimator's own. The fits' first requests are grouped: those with the same
architecture, batch order, batch size and data (by content) form a group, every
other fit is a group of its own. Each group trains on a worker thread to its end,
without waiting for the others: epoch by epoch, its fits whose requests still match
step as one pack (a fit that stops early leaves it), the rest alone.

What equals what: a fit ends where its own ``fit`` ends, up to the rounding the packs
allow (their module says which); a fit that packs with no other, or ``pack=False``,
is its own fit bit for bit.
"""
from __future__ import annotations

import functools
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Generator, NamedTuple

import numpy as np

from fastbp import _packing
from fastbp.threads import using_threads
from fastbp.training import ctrl_c_stops_epochs

__all__ = ["EpochRequest", "LockstepFits", "run_alone"]


class EpochRequest(NamedTuple):
    """One compiled epoch a fit asks for: ``model.run_epoch(data, order, batch,
    optimizer)``, whose (status, steps, loss_sum) the fit is sent back."""
    model: Any
    data: Any
    order: np.ndarray
    batch: int
    optimizer: Any

    def run(self) -> tuple[int, int, float]:
        """The epoch, alone."""
        with ctrl_c_stops_epochs():
            result: tuple[int, int, float] = self.model.run_epoch(
                self.data, self.order, self.batch, self.optimizer)
        return result


def run_alone(steps: Generator[Any, Any, None]) -> Generator[Any, None, None]:
    """A fit's generator with its epoch requests run here, one after another; yields
    what else it yields (``n_iter_`` after each epoch)."""
    reply = None
    try:
        while True:
            try:
                item = steps.send(reply)
            except StopIteration:
                return
            if isinstance(item, EpochRequest):
                reply = item.run()
            else:
                reply = None
                yield item
    finally:
        steps.close()


class _Fit:
    """One fit in flight: its generator, the epoch it asks for, its seconds so far."""

    def __init__(self, gen: Generator[Any, Any, None], estimator: Any) -> None:
        self.gen = gen
        self.estimator = estimator
        self.request: EpochRequest | None = None
        self.done = False
        self.seconds = 0.0

    def advance(self, reply: Any, until: int | None) -> None:
        """Send ``reply`` and run the fit on to its next epoch request, its end, or the
        end of epoch ``until`` (then it waits, with no request)."""
        start = time.perf_counter()
        self.request = None
        try:
            while True:
                item = self.gen.send(reply)
                reply = None
                if isinstance(item, EpochRequest):
                    self.request = item
                    break
                if until is not None and item >= until:
                    break
        except StopIteration:
            self.done = True
        finally:
            self.seconds += time.perf_counter() - start


class LockstepFits:
    """Fits stepped together, round by round (see the module's docstring).

    Parameters
    ----------
    fits : list of (estimator, X, y, fit keyword arguments)
        Each a fastbp.sklearn estimator and what its ``fit`` would be given. Fits of
        one fold should share the X object (its fingerprint is then taken once).
    workers : int
        Threads running a round's work (BLAS on one thread meanwhile).
    pack : bool, default True
        Step fits that can as packs (False: each alone, still on the threads).
    """

    def __init__(self, fits: list[tuple[Any, Any, Any, dict[str, Any]]], workers: int,
                 pack: bool = True) -> None:
        self.fits = [_Fit(est._fit_epochs(X, y, requests=True, **kwargs), est)
                     for est, X, y, kwargs in fits]
        self.workers = workers
        self.pack = pack
        self._started = False
        self._digests: dict[int, tuple[Any, bytes]] = {}

    @property
    def seconds(self) -> list[float]:
        """Each fit's seconds so far (its own Python and epochs; a pack's epoch shared
        out evenly among its members)."""
        return [f.seconds for f in self.fits]

    def run(self, which: list[int] | None = None, until: int | None = None) -> None:
        """Train the fits ``which`` (default all) to their end, or to the end of epoch
        ``until``. An error of a fit propagates (the others stay where they are)."""
        fits = [self.fits[i] for i in (range(len(self.fits)) if which is None else which)]
        with using_threads(1), ThreadPoolExecutor(max(1, self.workers)) as pool:
            # every fit's checks and set-up (lbfgs: the whole fit), to its first request
            self._parallel(pool, [functools.partial(f.advance, None, until) for f in fits
                                  if not f.done and f.request is None])
            groups = self._groups([f for f in fits if not f.done and f.request is not None])
            # each group trains to its end on a thread of its own (no barrier between
            # groups), the largest first
            groups.sort(key=len, reverse=True)
            self._parallel(pool, [functools.partial(self._train, g, until) for g in groups])

    def close(self, which: list[int] | None = None) -> None:
        """Stop the fits ``which`` (default all) where they are (a pruned candidate)."""
        for i in range(len(self.fits)) if which is None else which:
            self.fits[i].gen.close()
            self.fits[i].done = True

    def _parallel(self, pool: ThreadPoolExecutor, work: list[Callable[[], None]]) -> None:
        if len(work) <= 1 or self.workers <= 1:
            for fn in work:
                fn()
            return
        for future in [pool.submit(fn) for fn in work]:
            future.result()

    def _by_key(self, fits: list[_Fit]) -> list[list[_Fit]]:
        """The fits whose requests can step as one pack together (in order of first
        appearance); every fit that cannot pack, alone."""
        groups: dict[Any, list[_Fit]] = {}
        alone: list[list[_Fit]] = []
        for f in fits:
            key = self._key(f.request) if self.pack else None
            if key is None:
                alone.append([f])
            else:
                groups.setdefault(key, []).append(f)
        return list(groups.values()) + alone

    def _groups(self, fits: list[_Fit]) -> list[list[_Fit]]:
        """The units of work: the packable groups, each split over the workers (at least
        two fits a part) only when there are fewer groups than workers."""
        groups = self._by_key(fits)
        if len(groups) >= self.workers:
            return groups
        out: list[list[_Fit]] = []
        for group in groups:
            parts = min(self.workers, len(group) // 2) or 1
            size = -(-len(group) // parts)
            out.extend(group[i:i + size] for i in range(0, len(group), size))
        return out

    def _train(self, group: list[_Fit], until: int | None) -> None:
        """A group's epochs until each of its fits ends or waits at ``until``: those
        whose requests still match step as a pack, the others alone."""
        while True:
            waiting = [f for f in group if not f.done and f.request is not None]
            if not waiting:
                return
            for sub in self._by_key(waiting) if len(waiting) > 1 else [waiting]:
                if len(sub) > 1:
                    self._packed(sub, until)
                else:
                    self._alone(sub[0], until)

    def _key(self, req: EpochRequest | None) -> tuple[Any, ...] | None:
        assert req is not None
        arch = _packing.architecture_key(req.model, req.data)
        if arch is None:
            return None
        data = req.data
        return (arch, req.batch, np.ascontiguousarray(req.order, dtype=np.intp).tobytes(),
                self._digest(data.X), self._digest(data.targets), self._digest(data.labels),
                self._digest(data.sample_weight))

    def _digest(self, a: np.ndarray | None) -> tuple[Any, ...] | None:
        """A content fingerprint of an array (once per array object, while it lives)."""
        if a is None:
            return None
        seen = self._digests.get(id(a))
        if seen is None or seen[0] is not a:
            c = np.ascontiguousarray(a)
            seen = (a, hashlib.blake2b(c.view(np.uint8).reshape(-1).data, digest_size=16).digest())
            self._digests[id(a)] = seen
        return (a.shape, a.dtype.str, seen[1])

    @staticmethod
    def _alone(f: _Fit, until: int | None) -> None:
        assert f.request is not None
        start = time.perf_counter()
        reply = f.request.run()
        f.seconds += time.perf_counter() - start
        f.advance(reply, until)

    @staticmethod
    def _packed(fits: list[_Fit], until: int | None) -> None:
        reqs = [f.request for f in fits]
        assert all(r is not None for r in reqs)
        first = reqs[0]
        assert first is not None
        start = time.perf_counter()
        with ctrl_c_stops_epochs():
            results = _packing.pack_epoch([r.model for r in reqs if r is not None],
                                          [r.optimizer for r in reqs if r is not None],
                                          first.data, first.order, first.batch)
        if results is None:   # the engine declined: each alone
            results = [r.run() for r in reqs if r is not None]
        share = (time.perf_counter() - start) / len(fits)
        for f, reply in zip(fits, results):
            f.seconds += share
            f.advance(reply, until)
