"""Ensemble.fit(..., client=client): the members trained on a Dask cluster.

The data (with the sample weights, if any) is scattered once to every worker
(broadcast, so that a lost worker loses no data); the members are split into
one shard per worker, each shard trained on its worker as a local ensemble
(fastbp.ensemble.train, on that worker's threads); the trained parameters,
optimizer states and histories come back and are written into the members only
after every shard has returned, so a failed call leaves every member as it
was. A shard's result does not depend on the worker or thread count that ran
it (float64 bit for bit, float32 to rounding), so a shard that Dask reruns
after losing a worker gives the same numbers. ``dask[distributed]`` is
imported only here (the ``fastbp[dask]`` extra).
"""
from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from fastbp.ensemble import _Member, _Plan, train
from fastbp.models import Sequential
from fastbp.optim import from_state_dict
from fastbp.training import History

__all__ = ["check_client", "fit_on_cluster"]

_Result = tuple[list[np.ndarray], dict[str, Any], History, "str | None"]


def check_client(client: Any) -> None:
    """A TypeError unless ``client`` is a dask.distributed.Client."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise TypeError("client must be a dask.distributed.Client (install the extra: "
                        f"pip install 'fastbp[dask]'), got {type(client).__name__}") from exc
    if not isinstance(client, Client):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")


def _shards(members: list[_Member], n_shards: int) -> list[list[int]]:
    """Member indices in n_shards groups of about equal work (parameter count),
    largest first onto the least loaded group; each group in member order."""
    cost = [sum(p.size for p in r.model.parameters()) for r in members]
    groups: list[list[int]] = [[] for _ in range(n_shards)]
    load = [0] * n_shards
    for i in sorted(range(len(members)), key=lambda i: -cost[i]):
        g = load.index(min(load))
        groups[g].append(i)
        load[g] += cost[i]
    return [sorted(g) for g in groups if g]


def train_shard(models: list[Sequential], opt_states: list[dict[str, Any]], seeds: list[int],
                X: np.ndarray, y: np.ndarray, validation: tuple[np.ndarray, np.ndarray] | None,
                epochs: int, batch: int, shuffle: bool, early_stopping: int | None,
                sample_weight: np.ndarray | None = None) -> list[_Result]:
    """On a worker: train these members (copies) as one local ensemble; their
    parameters, optimizer states, histories and divergence messages."""
    from distributed import get_worker

    worker = get_worker()
    threads = getattr(getattr(worker, "state", worker), "nthreads", 1) or 1
    members = []
    for model, state, seed in zip(models, opt_states, seeds):
        members.append(_Member(model, from_state_dict(model.parameters(), state), seed))
    plan = _Plan(X, y, validation, epochs, batch, shuffle, early_stopping, int(threads),
                 members, False, sample_weight)
    train(plan)
    return [(r.model.parameters(), r.opt.state_dict(), r.history, r.diverged) for r in members]


def fit_on_cluster(plan: _Plan, client: Any) -> None:
    """Train the plan's members on the cluster and write the results into them."""
    members = plan.members
    n_workers = len(client.scheduler_info()["workers"])
    if n_workers == 0:
        raise RuntimeError("the Dask cluster has no workers; no member was changed")
    groups = _shards(members, min(len(members), n_workers))
    token = uuid.uuid4().hex[:12]
    futures: list[Any] = []
    try:
        # The weights (checked float64, or None) travel with the data, in one scatter.
        # hash=False: keys of their own for each call. With content-hashed keys, a fit
        # on the same arrays as the call before reuses keys the scheduler may still be
        # forgetting, and the new call's tasks then wait for data that is gone ("lost
        # dependencies", or a hang; seen here about once in 20 back-to-back fits).
        data = [plan.X, plan.y] + ([] if plan.sample_weight is None else [plan.sample_weight])
        X, y, *rest = client.scatter(data, broadcast=True, hash=False)
        weights = rest[0] if rest else None
        validation = None
        if plan.validation is not None:
            validation = tuple(client.scatter(list(plan.validation), broadcast=True,
                                              hash=False))
        for k, group in enumerate(groups):
            futures.append(client.submit(
                train_shard, [members[i].model for i in group],
                [members[i].opt.state_dict() for i in group], [members[i].seed for i in group],
                X, y, validation, plan.epochs, plan.batch, plan.shuffle, plan.early_stopping,
                weights, key=f"fastbp-ensemble-shard-{k}-{token}", pure=False))
        results = client.gather(futures)
    except Exception as exc:
        client.cancel(futures)
        raise RuntimeError(f"the ensemble fit on the Dask cluster failed ({type(exc).__name__}: "
                           f"{exc}); no member was changed") from exc
    # Every shard is back: only now write into the members.
    for group, shard in zip(groups, results):
        for i, (params, state, history, diverged) in zip(group, shard):
            r = members[i]
            for p, new in zip(r.model.parameters(), params):
                p[...] = new
            r.opt.load_state_dict(state)
            r.history = history
            r.diverged = diverged
