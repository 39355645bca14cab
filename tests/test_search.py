"""fastbp.sklearn.MLPSearchCV against scikit-learn's GridSearchCV/RandomizedSearchCV over
the same fastbp estimator (float64, integer random_state): the same cv_results_ scores,
ranks and best candidate, with the fits stepped as packs (counted: the comparisons must
not pass by packing nothing) and without; and its successive halving against fits
stopped at the rung."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from scipy.stats import loguniform  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV  # noqa: E402

import fastbp  # noqa: E402
from fastbp.sklearn import MLPClassifier, MLPRegressor, MLPSearchCV  # noqa: E402

SCORES = ("mean_test_score", "std_test_score", "rank_test_score", "split0_test_score",
          "split1_test_score", "split2_test_score")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _digits(n=450):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16, y[:n]


def _same_results(ours, theirs):
    for key in SCORES:
        np.testing.assert_array_equal(ours.cv_results_[key], theirs.cv_results_[key], err_msg=key)
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    assert ours.best_index_ == theirs.best_index_
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_score_ == theirs.best_score_


@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("pack", [True, False])
def test_grid_search_equals_gridsearchcv(num_threads, pack, packs):
    X, y = _digits()
    est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=8, random_state=0)
    grid = {"alpha": [1e-4, 1e-1], "learning_rate_init": [1e-3, 1e-2],
            "activation": ["relu", "tanh"]}
    ours = MLPSearchCV(est, grid, cv=3, num_threads=num_threads, pack=pack).fit(X, y)
    # packs: per fold and activation, the 4 (alpha, rate) candidates share their batches
    # (6 groups: whole on either thread count)
    if pack:
        assert sum(packs) == 3 * 2 * 4 * 8 and set(packs) == {4}
    else:
        assert packs == []
    theirs = GridSearchCV(est, grid, cv=3).fit(X, y)
    _same_results(ours, theirs)
    np.testing.assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.score(X, y) == theirs.score(X, y)
    for a, b in zip(ours.best_estimator_.coefs_, theirs.best_estimator_.coefs_):
        np.testing.assert_array_equal(a, b)


def test_regression_search_with_a_scorer_weights_and_a_splitter():
    X, y = make_regression(n_samples=150, n_features=6, noise=5.0, random_state=1)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    est = MLPRegressor(hidden_layer_sizes=(12,), max_iter=10, random_state=3, solver="sgd",
                       learning_rate_init=1e-3)
    grid = [{"momentum": [0.0, 0.9]}, {"solver": ["lbfgs"], "alpha": [1e-3]}]
    cv = KFold(3, shuffle=True, random_state=2)
    ours = MLPSearchCV(est, grid, cv=cv, scoring="neg_mean_absolute_error").fit(
        X, y, sample_weight=w)
    theirs = GridSearchCV(est, grid, cv=cv, scoring="neg_mean_absolute_error").fit(
        X, y, sample_weight=w)
    _same_results(ours, theirs)
    np.testing.assert_array_equal(ours.cv_results_["param_solver"].mask, [True, True, False])


def test_random_search_equals_randomizedsearchcv():
    X, y = _digits(300)
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=1)
    dists = {"alpha": loguniform(1e-5, 1e-1), "batch_size": [16, 64]}
    ours = MLPSearchCV(est, param_distributions=dists, n_iter=4, cv=3, random_state=7).fit(X, y)
    theirs = RandomizedSearchCV(est, dists, n_iter=4, cv=3, random_state=7).fit(X, y)
    _same_results(ours, theirs)


def test_early_stopping_candidates_pack_and_equal_gridsearchcv(packs):
    """Every candidate splits off its validation rows with the same random_state, so the
    fits of a fold still share their (split) rows and batches; each stops on its own."""
    X, y = _digits(400)
    est = MLPClassifier(hidden_layer_sizes=(20,), max_iter=30, random_state=4,
                        early_stopping=True, n_iter_no_change=2, validation_fraction=0.2)
    grid = {"alpha": [1e-4, 1.0], "learning_rate_init": [1e-3, 3e-2, 0.3]}
    ours = MLPSearchCV(est, grid, cv=3, num_threads=1).fit(X, y)
    assert packs and max(packs) == 6
    theirs = GridSearchCV(est, grid, cv=3).fit(X, y)
    _same_results(ours, theirs)
    # the candidates stopped at different epochs, and the packs shrank as they did
    assert min(packs) < 6


def test_halving_keeps_the_best_and_each_candidate_scores_as_its_fit_stopped_there(packs):
    X, y = _digits(360)
    est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=8, random_state=0, tol=0.0)
    grid = {"learning_rate_init": [1e-4, 3e-2, 1e-3, 3e-3, 3e-5, 1e-2]}
    search = MLPSearchCV(est, grid, cv=3, halving=fastbp.SuccessiveHalving(eta=2, min_epochs=2),
                         num_threads=2).fit(X, y)
    assert packs   # the candidates of a fold stepped together
    pruned = search.cv_results_["pruned_at"]
    # rungs after 2 and 4 epochs: 6 -> 3 -> 2 candidates train on
    assert sorted(pruned.tolist()) == [-1, -1, 2, 2, 2, 4]
    splits = list(_splits(X, y))
    for c, params in enumerate(search.cv_results_["params"]):
        epochs = 8 if pruned[c] == -1 else pruned[c]
        for s, (train, test) in enumerate(splits):
            alone = clone(est).set_params(**params, max_iter=int(epochs)).fit(X[train], y[train])
            assert search.cv_results_[f"split{s}_test_score"][c] == alone.score(X[test], y[test])
    # the pruned at each rung were the worst by mean score among those training then
    # (their scores at that rung from fits stopped there)
    for rung in (2, 4):
        still = [c for c in range(len(pruned)) if pruned[c] == -1 or pruned[c] >= rung]
        mean_at = {}
        for c in still:
            params = search.cv_results_["params"][c]
            mean_at[c] = np.mean([
                clone(est).set_params(**params, max_iter=rung).fit(X[tr], y[tr]).score(X[te], y[te])
                for tr, te in splits])
        keep = sorted(still, key=lambda c: (-mean_at[c], c))[:-(-len(still) // 2)]
        assert {c for c in still if pruned[c] == rung} == set(still) - set(keep)
    assert search.best_index_ in np.flatnonzero(pruned == -1)


def _splits(X, y):
    from sklearn.model_selection import check_cv
    return check_cv(3, y, classifier=True).split(X, y)


def test_refit_false_keeps_the_best_without_an_estimator():
    X, y = _digits(200)
    search = MLPSearchCV(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0),
                         {"alpha": [1e-4, 1e-2]}, cv=2, refit=False).fit(X, y)
    assert search.best_params_ in search.cv_results_["params"]
    assert not hasattr(search, "best_estimator_")
    with pytest.raises(AttributeError):
        search.predict(X)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(param_grid=None), ValueError, "exactly one"),
    (dict(param_grid={"alpha": [1.0]}, param_distributions={"alpha": [1.0]}), ValueError,
     "exactly one"),
    (dict(param_grid={"alpha": [1.0]}, n_iter=3), ValueError, "n_iter"),
    (dict(param_distributions={"alpha": [1.0]}, n_iter=0), ValueError, "n_iter"),
    (dict(param_grid={"alpha": [1.0]}, scoring=["accuracy", "f1"]), ValueError, "one scorer"),
    (dict(param_grid={"alpha": [1.0]}, refit="no"), TypeError, "refit"),
    (dict(param_grid={"alpha": [1.0]}, pack="no"), TypeError, "pack"),
    (dict(param_grid={"alpha": [1.0]}, halving="halving"), TypeError, "prune"),
    (dict(param_grid={"solver": ["lbfgs"]}, halving=fastbp.SuccessiveHalving()), ValueError,
     "lbfgs"),
    (dict(param_grid={"alpha": [1.0]}, client="tcp://x"), TypeError, "client"),
    (dict(param_grid={"alpha": [1.0]}, num_threads=0), ValueError, "thread"),
])
def test_bad_arguments_are_named_errors(kwargs, error, match):
    X, y = _digits(60)
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    with pytest.raises(error, match=match):
        MLPSearchCV(est, **kwargs).fit(X, y)


def test_a_foreign_estimator_is_refused():
    from sklearn.linear_model import LogisticRegression
    X, y = _digits(60)
    with pytest.raises(TypeError, match="fastbp.sklearn"):
        MLPSearchCV(LogisticRegression(), {"C": [1.0]}).fit(X, y)
