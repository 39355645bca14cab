"""Ensemble.fit(..., client=client): training runs on a Dask cluster.

The training data is scattered once to every worker (broadcast, so that a lost
worker loses no data); the runs (fastbp.training.TrainingRun: model, optimizer,
batch-order generator and bookkeeping) are split into one shard per worker,
each shard trained on its worker by ``train_runs`` on that worker's threads;
the trained runs come back and are adopted by the local ones
(``TrainingRun.adopt``) only after every shard has returned, so a failed call
leaves every member as it was. A shard's result does not depend on the worker
or thread count that ran it (float64 bit for bit, float32 to rounding), so a
shard that Dask reruns after losing a worker gives the same numbers.
``dask[distributed]`` is imported only here, and only when a client is given
(the ``fastbp[dask]`` extra).
"""
from __future__ import annotations

import copy
import uuid
from typing import Any

from fastbp.training import TrainingData, TrainingRun, train_runs

__all__ = ["check_client", "train_on_cluster", "train_on_cluster_pruned"]


def check_client(client: Any) -> None:
    """A TypeError unless ``client`` is a dask.distributed.Client, a ValueError if it is
    closed."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise TypeError("client must be a dask.distributed.Client (install the extra: "
                        f"pip install '.[dask]'), got {type(client).__name__}") from exc
    if not isinstance(client, Client):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    if client.status != "running":
        raise ValueError(f"client must be a running dask.distributed.Client, got one whose "
                         f"status is {client.status!r}")


def _shards(runs: list[TrainingRun], n_shards: int) -> list[list[int]]:
    """Run indices in n_shards groups of about equal work (parameter count), largest
    first onto the least loaded group; each group in run order."""
    cost = [sum(p.size for p in r.model.parameters()) for r in runs]
    groups: list[list[int]] = [[] for _ in range(n_shards)]
    load = [0] * n_shards
    for i in sorted(range(len(runs)), key=lambda i: -cost[i]):
        g = load.index(min(load))
        groups[g].append(i)
        load[g] += cost[i]
    return [sorted(g) for g in groups if g]


def train_shard(runs: list[TrainingRun], data: TrainingData, epochs: int) -> list[TrainingRun]:
    """On a worker: train these runs (copies) on the worker's threads; returns them."""
    from distributed import get_worker

    worker = get_worker()
    threads = getattr(getattr(worker, "state", worker), "nthreads", 1) or 1
    train_runs(runs, data, epochs, num_threads=int(threads))
    return runs


def train_on_cluster(runs: list[TrainingRun], data: TrainingData, epochs: int,
                     client: Any) -> None:
    """Train the runs on the cluster and have the local runs adopt the results."""
    try:
        n_workers = len(client.scheduler_info()["workers"])
    except Exception as exc:
        raise RuntimeError(f"the Dask cluster did not answer ({type(exc).__name__}: {exc}); "
                           "no member was changed") from exc
    if n_workers == 0:
        raise RuntimeError("the Dask cluster has no workers; no member was changed")
    groups = _shards(runs, min(len(runs), n_workers))
    token = uuid.uuid4().hex[:12]
    futures: list[Any] = []
    try:
        # hash=False: keys of their own for each call. With content-hashed keys, a fit
        # on the same arrays as the call before reuses keys the scheduler may still be
        # forgetting, and the new call's tasks then wait for data that is gone ("lost
        # dependencies", or a hang; seen here about once in 20 back-to-back fits).
        [shared] = client.scatter([data], broadcast=True, hash=False)
        for k, group in enumerate(groups):
            futures.append(client.submit(train_shard, [runs[i] for i in group], shared, epochs,
                                         key=f"fastbp-ensemble-shard-{k}-{token}", pure=False))
        results = client.gather(futures)
    except Exception as exc:
        client.cancel(futures)
        raise RuntimeError(f"the ensemble fit on the Dask cluster failed ({type(exc).__name__}: "
                           f"{exc}); no member was changed") from exc
    # Every shard is back: only now write into the members.
    for group, shard in zip(groups, results):
        for i, trained in zip(group, shard):
            runs[i].adopt(trained)


def train_on_cluster_pruned(runs: list[TrainingRun], data: TrainingData, epochs: int,
                            client: Any, pruner: Any) -> None:
    """``train_on_cluster`` with successive halving or Hyperband: the runs still training
    go to the cluster one rung at a time and are ranked here between rungs (the
    pruner's own hook, given the epochs of each segment). The work is done on copies
    of the runs; the local runs adopt them only at the end, so a failed call leaves
    every member as it was, as without pruning."""
    shadows = [copy.deepcopy(run) for run in runs]
    hook = pruner.hook(shadows, epochs)
    stops = sorted({r for b in pruner.brackets(len(runs), epochs) for r in b.rungs} | {epochs})
    done = 0
    for stop in stops:
        alive = [run for run in shadows if run.alive]
        if not alive:
            break
        train_on_cluster(alive, data, stop - done, client)
        for _ in range(stop - done):
            hook(shadows)
        done = stop
    for run, shadow in zip(runs, shadows):
        run.adopt(shadow)
