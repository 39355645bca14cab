"""Ensemble.fit(..., client=client) and GridSearchCV under joblib's Dask backend, on a
real LocalCluster of two worker processes (started here, closed at the end)."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import fastbp
from fastbp import Adam, Ensemble, Sequential

from conftest import (assert_same_history, assert_same_params, assert_same_training,
                      param_copies, tol)

# starts a cluster of worker processes: selected with -m packaging
pytestmark = pytest.mark.packaging

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=None, silence_logs=50)
    c = distributed.Client(cluster)
    c.wait_for_workers(2, timeout=60)
    yield c
    c.close()
    cluster.close()


def _data(n=150, n_in=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in))
    return X, (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 1)


def _members(n_in=6, k=3, width=8):
    return [fastbp.MLP((n_in, width, k), "relu", "cross_entropy", dtype="float64", seed=1),
            fastbp.MLP((n_in, width // 2, 5, k), "tanh", "cross_entropy", dtype="float64", seed=2),
            fastbp.MLP((n_in, k), "relu", "cross_entropy", dtype="float64", seed=3),
            fastbp.MLP((n_in, width + 3, k), "gelu", "cross_entropy", dtype="float64", seed=4),
            fastbp.MLP((n_in, width, k), "sigmoid", "cross_entropy", dtype="float64", seed=5)]


FIT = dict(epochs=6, batch_size=8, lr=[0.01, 0.02, 0.005, 0.03, 0.01],
           weight_decay=[0.0, 1e-3, 0.0, 0.0, 1e-2], seed=[3, 4, 3, 5, 6], early_stopping=2,
           progress=False)


def _assert_same(models, expected):
    for m, e in zip(models, expected):
        assert_same_training(m, e)


def test_cluster_fit_matches_local_fit(client):
    X, y = _data()
    Xv, yv = _data(50, seed=1)
    remote, local = _members(), _members()
    live = [m.parameters() for m in remote]
    opts_r = [Adam(m.parameters(), amsgrad=True) for m in remote]
    opts_l = [Adam(m.parameters(), amsgrad=True) for m in local]
    hr = Ensemble(remote).fit(X, y, optimizer=opts_r, validation_data=(Xv, yv), client=client,
                              **FIT)
    hl = Ensemble(local).fit(X, y, optimizer=opts_l, validation_data=(Xv, yv), **FIT)
    _assert_same(remote, local)
    for a, b in zip(hr, hl):
        assert_same_history(a, b)
    # the members were trained (not left as they were) and stay the live arrays
    assert any(h.epochs > 1 for h in hr)
    assert all(a is b for m, ps in zip(remote, live) for a, b in zip(m.parameters(), ps))
    # the optimizers' state came back too: a further local step agrees
    for o_r, o_l in zip(opts_r, opts_l):
        assert o_r.step_count == o_l.step_count > 0
        np.testing.assert_allclose(o_r.state[0]["exp_avg_sq"], o_l.state[0]["exp_avg_sq"],
                                   rtol=tol(np.float64, "path_rtol"))


def test_cluster_fit_with_sample_weight_matches_local_and_separate_fits(client):
    X, y = _data()
    w = np.random.default_rng(5).uniform(0.0, 2.5, len(X))
    w[::7] = 0.0
    remote, local, alone = _members(), _members(), _members()
    kwargs = dict(epochs=3, batch_size=8, lr=FIT["lr"], seed=FIT["seed"], progress=False)
    hr = Ensemble(remote).fit(X, y, sample_weight=w, client=client, **kwargs)
    hl = Ensemble(local).fit(X, y, sample_weight=w, **kwargs)
    _assert_same(remote, local)
    for a, b in zip(hr, hl):
        assert_same_history(a, b)
    for m, lr, seed in zip(alone, FIT["lr"], FIT["seed"]):
        m.fit(X, y, epochs=3, batch_size=8, lr=lr, seed=seed, sample_weight=w, progress=False)
    _assert_same(remote, alone)
    # the weights reached the workers: an unweighted cluster fit ends elsewhere
    plain = _members()
    Ensemble(plain).fit(X, y, client=client, **kwargs)
    assert not np.allclose(plain[0].layers[0].W, remote[0].layers[0].W)


def test_cluster_fit_refuses_bad_sample_weight_before_sending_anything(client):
    X, y = _data()
    models = _members()[:2]
    snap = [param_copies(m) for m in models]
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        Ensemble(models).fit(X, y, sample_weight=-np.ones(len(X)), client=client,
                             progress=False)
    for m, s in zip(models, snap):
        assert_same_params(m, s)


def test_cluster_fit_by_name_matches_separate_fits(client):
    X, y = _data()
    remote, alone = _members()[:3], _members()[:3]
    Ensemble(remote).fit(X, y, epochs=2, optimizer="rmsprop", lr=[0.01, 0.02, 0.03], seed=9,
                         client=client, progress=False)
    for m, lr in zip(alone, [0.01, 0.02, 0.03]):
        m.fit(X, y, epochs=2, optimizer="rmsprop", lr=lr, seed=9, progress=False)
    _assert_same(remote, alone)


def test_cluster_fit_reports_divergence_like_local(client):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)) * 100
    y = rng.standard_normal((40, 1)) * 1e3
    make = lambda: [fastbp.MLP((3, 4, 1), "relu", dtype="float64", seed=s) for s in range(2)]
    remote, local = make(), make()
    kwargs = dict(epochs=3, batch_size=8, optimizer="sgd", lr=[1e-6, 1e3], seed=0,
                  progress=False)
    with pytest.raises(fastbp.TrainingDiverged, match="member 1"):
        Ensemble(remote).fit(X, y, client=client, **kwargs)
    with pytest.raises(fastbp.TrainingDiverged, match="member 1"):
        Ensemble(local).fit(X, y, **kwargs)
    _assert_same(remote, local)


def test_gridsearchcv_under_the_dask_backend_matches_a_local_search(client):
    joblib = pytest.importorskip("joblib")
    from sklearn.model_selection import GridSearchCV

    from fastbp.sklearn import MLPClassifier

    X, y = _data(120)
    grid = {"alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 1e-2]}
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=15, random_state=0, dtype="float64")
    local = GridSearchCV(est, grid, cv=2).fit(X, y)
    with joblib.parallel_backend("dask"):
        remote = GridSearchCV(est, grid, cv=2, n_jobs=-1).fit(X, y)
    np.testing.assert_allclose(remote.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"],
                               rtol=tol(np.float64, "path_rtol"))
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(remote.predict(X), local.predict(X))


def test_a_worker_killed_during_the_fit_loses_nothing(client):
    """Kill the worker process running a shard; Dask reruns that shard elsewhere and the
    result equals the local fit, or the call fails clearly with every member unchanged."""
    X, y = _data(3000, n_in=20)
    kwargs = dict(epochs=6, batch_size=4, optimizer="adam", lr=1e-3, seed=[1, 2, 3, 4],
                  progress=False)
    make = lambda: [fastbp.MLP((20, 48, 3), "relu", "cross_entropy", dtype="float64", seed=s)
                    for s in range(4)]
    remote, local = make(), make()
    before = [param_copies(m) for m in remote]
    pids = client.run(os.getpid)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["histories"] = Ensemble(remote).fit(X, y, client=client, **kwargs)
        except BaseException as exc:  # checked below
            outcome["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    victim = None
    deadline = time.monotonic() + 30
    while victim is None and time.monotonic() < deadline:
        for addr, keys in client.processing().items():
            if any(str(k).startswith("fastbp-ensemble-shard") for k in keys):
                victim = addr
                break
        time.sleep(0.02)
    assert victim is not None, "no shard was ever running"
    os.kill(pids[victim], signal.SIGKILL)
    t.join(timeout=90)
    assert not t.is_alive()
    local_hist = Ensemble(local).fit(X, y, **kwargs)
    if "error" in outcome:  # the clear failure: nothing changed
        assert isinstance(outcome["error"], RuntimeError)
        assert "no member was changed" in str(outcome["error"])
        for m, snap in zip(remote, before):
            assert_same_params(m, snap)
    else:
        _assert_same(remote, local)
        for a, b in zip(outcome["histories"], local_hist):
            assert_same_history(a, b)
    # the worker really died (its nanny started a new process)
    client.wait_for_workers(2, timeout=60)
    assert pids[victim] not in client.run(os.getpid).values()


def test_client_must_be_a_dask_client():
    X, y = _data()
    models = _members()[:2]
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
        Ensemble(models).fit(X, y, client=object())
    assert isinstance(models[0], Sequential)


def test_regression_back_to_back_fits_on_the_same_arrays_all_finish(client):
    # The data was scattered under content-hashed keys: a fit on the same arrays as
    # the fit before reused keys the scheduler was still forgetting, and about one
    # such fit in 20 failed with "lost dependencies" or waited forever.
    X, y = _data(60)
    done, errors = [], []

    def fits():
        try:
            for _ in range(40):
                Ensemble(_members()[:2]).fit(X, y, epochs=1, optimizer="sgd", lr=0.01, seed=1,
                                             client=client, progress=False)
                done.append(1)
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)

    worker = threading.Thread(target=fits, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not errors, errors
    assert not worker.is_alive(), f"a fit on the cluster hung after {len(done)} fits"
    assert len(done) == 40


def test_search_on_the_cluster_equals_the_local_search(client):
    """MLPSearchCV(client=...) ships each fold's candidates to the workers as lock-step
    groups (20 inputs: they pack): the same cv_results_ scores and the same best
    candidate as the local run, and as every fit alone (pack=False)."""
    pytest.importorskip("sklearn")
    from fastbp.sklearn import MLPClassifier, MLPSearchCV
    X, y = _data(120, n_in=20)
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
    grid = {"alpha": [1e-4, 1e-1], "learning_rate_init": [1e-3, 3e-2, 0.1]}
    w = np.linspace(0.5, 1.5, len(y))
    remote = MLPSearchCV(est, grid, cv=3, client=client).fit(X, y, sample_weight=w)
    local = MLPSearchCV(est, grid, cv=3, pack=False).fit(X, y, sample_weight=w)
    for key in ("mean_test_score", "std_test_score", "rank_test_score", "split2_test_score"):
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key])
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(remote.predict_proba(X), local.predict_proba(X))


def test_pruned_fit_on_the_cluster_equals_the_local_one(client):
    """prune= with client=: the members still training go to the workers a rung at a
    time and are ranked here; the same pruning and the same numbers as a local fit."""
    X, y = _data()
    Xv, yv = _data(50, seed=1)
    remote = fastbp.Ensemble.of(9, (6, 8, 3), activation="tanh", loss="cross_entropy",
                                dtype="float64", seed=0)
    local = fastbp.Ensemble.of(9, (6, 8, 3), activation="tanh", loss="cross_entropy",
                               dtype="float64", seed=0)
    kwargs = dict(epochs=5, batch_size=16, lr=list(np.geomspace(1e-4, 3e-1, 9)), seed=2,
                  validation_data=(Xv, yv), progress=False)
    hr = remote.fit(X, y, client=client, prune=fastbp.SuccessiveHalving(eta=3), **kwargs)
    hl = local.fit(X, y, prune=fastbp.SuccessiveHalving(eta=3), **kwargs)
    assert [h.pruned_at for h in hr] == [h.pruned_at for h in hl]
    assert sorted(h.pruned_at or 5 for h in hr) == [1] * 6 + [3] * 2 + [5]
    for a, b in zip(hr, hl):
        assert_same_history(a, b)
    _assert_same(list(remote), list(local))
