"""Lock-step epochs: members of a training that share an architecture and a batch order
step together in one compiled call (fastbp/_kernels/_packed.pxi's packed_epoch).

Why: the members of an Ensemble (a search's candidates, a seed sweep) that see the same
batches all multiply the same batch by their first layer's weights; packed, that is one
wide product X·[W₁ … W_k] and one for the weight gradients, at the BLAS's large-matrix
rate, and the batch is gathered once instead of k times. The layers above run per
member inside the same call.

Which members pack (``plan``): runs that allow it (``run.pack``) on a fresh epoch (not
the rest of an interrupted one) of one drawn order and one batch size, whose models are
Dense stacks of the same widths, activations and bias flags without dropout, trained
without a per-batch schedule, gradient clipping or derivative targets, on dense X, with
a first layer of at least PACK_MIN_IN inputs and at most PACK_MAX_OUT outputs (outside
that the members' own products were as fast or faster, measured on 8 members of
64-h-10 networks, 1,500 rows, Adam, one thread: h = 16 or 32 gained 0-6% in float32
and float64 at batches of 32 and 128, h = 64 or 128 lost 10-20% mostly; on E3's 2-16-1
networks packs were slower); the engine then
checks what Python cannot see (a bound optimizer, the layers' records) and declines
the pack otherwise. Every other run steps its own epoch, as before. Packs are split over the
worker threads.

What equals what: each member ends its epoch where its own epoch would, up to the
rounding of the two wide products (their sums may run in another order than the
members' own products') and, with an L2 penalty, of the loss value (Σw² of the first
layer sums its transposed block); everything else is the same arithmetic.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np

from fastbp._kernels import network
from fastbp.layers.dense import Dense

__all__ = ["PACK_MAX_OUT", "PACK_MIN_IN", "architecture_key", "pack_epoch", "plan", "run_pack"]

#: a pack's first layer takes at least this many inputs and has at most this many
#: outputs (see the module's comment)
PACK_MIN_IN = 16
PACK_MAX_OUT = 32


def architecture_key(model: Any, data: Any) -> tuple[Any, ...] | None:
    """What the models of a pack must share besides the batches (dtype, loss, widths,
    activations, bias flags), or None for a model or data that cannot pack."""
    if data.dy is not None or data.clip_norm or not isinstance(data.X, np.ndarray) \
            or model.objective.heads != 1:   # (the packs score one head)
        return None
    layers = model.layers
    if len(layers) < 2 or layers[0].in_features < PACK_MIN_IN \
            or layers[0].out_features > PACK_MAX_OUT or not all(
            type(la) is Dense and la.dropout == 0.0 for la in layers):
        return None
    return (model.data_signature(),
            tuple((la.in_features, la.out_features, la.activation, la.bias) for la in layers))


def _key(run: Any, data: Any, order: Any) -> tuple[Any, ...] | None:
    """What runs must share to step as one pack, or None for a run that cannot pack."""
    if not run.pack or order is None or run.partial is not None:
        return None
    if run.scheduler is not None and run.scheduler.per_batch:
        return None
    arch = architecture_key(run.model, data)
    return None if arch is None else (id(order), run.batch(data.n), run.drop_last, arch)


def plan(jobs: list[tuple[Any, Any, Any]], data: Any, workers: int
         ) -> list[Callable[[], None]]:
    """The epoch's work as callables: each packable group (two runs or more per worker)
    split into ``workers`` packs, every other run alone.

    Parameters
    ----------
    jobs : list of (run, order, generator state)
        As fastbp.training._orders gives them.
    data : TrainingData
        The epoch's arrays.
    workers : int
        The threads that will run the callables.

    Returns
    -------
    list of callables
        Each runs its runs' epoch (``run_epoch``'s results in each run).
    """
    groups: dict[tuple[Any, ...], list[tuple[Any, Any, Any]]] = {}
    work: list[Callable[[], None]] = []
    for job in jobs:
        key = _key(job[0], data, job[1])
        if key is None:
            work.append(_alone(job, data))
        else:
            groups.setdefault(key, []).append(job)
    for group in groups.values():
        parts = min(workers, len(group) // 2) or 1
        if len(group) < 2:
            work.append(_alone(group[0], data))
            continue
        size = -(-len(group) // parts)
        for i in range(0, len(group), size):
            part = group[i:i + size]
            work.append(_alone(part[0], data) if len(part) == 1 else _pack(part, data))
    return work


def _alone(job: tuple[Any, Any, Any], data: Any) -> Callable[[], None]:
    run, order, state = job
    return lambda: run.run_epoch(data, order, state)


def _pack(jobs: list[tuple[Any, Any, Any]], data: Any) -> Callable[[], None]:
    return lambda: run_pack(jobs, data)


def run_pack(jobs: list[tuple[Any, Any, Any]], data: Any) -> None:
    """One lock-step epoch of the jobs' runs (one order, one batch size), or each run's
    own epoch when the engine declines the pack.

    Parameters
    ----------
    jobs : list of (run, order, generator state)
        Runs that ``plan`` grouped.
    data : TrainingData
        The epoch's arrays.
    """
    runs = [job[0] for job in jobs]
    starts = [run.begin_epoch(data, order, state) for run, order, state in jobs]
    rest, batch = starts[0][0], starts[0][1]
    results = pack_epoch([run.model for run in runs], [run.optimizer for run in runs], data,
                         rest, batch)
    if results is None:
        results = [run.model.run_epoch(data, start[0], start[1], run.optimizer, start[3],
                                       start[4]) for run, start in zip(runs, starts)]
    for run, start, (status, steps, total) in zip(runs, starts, results):
        run.finish_epoch(data, status, start[2], steps, total)


def pack_epoch(models: list[Any], optimizers: list[Any], data: Any, order: np.ndarray,
               batch: int) -> list[tuple[int, int, float]] | None:
    """One lock-step epoch of distinct models, each with its optimizer, over ``order``
    (run_epoch's results per model), or None when the engine declines the pack (then
    nothing has changed).

    Parameters
    ----------
    models : list of Sequential
        Distinct models of one architecture (``architecture_key``).
    optimizers : list of Optimizer
        Each model's compiled optimizer.
    data : TrainingData
        The arrays, the same for every model.
    order : ndarray of intp
        The rows, in batches of ``batch``.
    batch : int
        Rows per step.
    """
    with contextlib.ExitStack() as stack:
        for m in models:   # (members are distinct models: no lock is taken twice)
            stack.enter_context(m._lock)
        engines = []
        for m, opt in zip(models, optimizers):
            engine = m._compiled()
            m._bind(engine, opt)
            engines.append(engine)
        if not network.can_pack(engines):
            return None
        results: list[tuple[int, int, float]] = network.packed_epoch(
            engines, data.X, data.targets, data.labels,
            np.ascontiguousarray(order, dtype=np.intp), batch, data.sample_weight)
        return results
