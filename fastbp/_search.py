"""``MLPSearchCV``: a grid or random search over a fastbp estimator, cross-validated.

What it computes is ``GridSearchCV``'s (``RandomizedSearchCV``'s): every candidate is
fitted on every training fold and scored on the matching test fold with the same
scorer, and ``cv_results_``, ``best_*`` and the refit follow scikit-learn's rules. How:
the candidate × fold fits run in lock-step (fastbp/_lockstep.py): epoch by epoch, the
fits of one fold whose candidates share an architecture, a ``random_state`` (so their
batch orders) and a batch size step as packs, on ``num_threads`` threads of this
process (the compiled epochs release the GIL; BLAS is held to one thread each
meanwhile), with no process pool, no pickling and one copy of each training fold; or
on a Dask cluster (``client``), a fold's fits in a few tasks, each a lock-step group.

With ``halving`` (fastbp.SuccessiveHalving or fastbp.Hyperband) the candidates are
trained one epoch at a time (the estimators' ``_fit_epochs``) and, at each rung, ranked
on their mean cross-validated score so far (higher is better, ties: candidate index);
the best ⌈n/eta⌉ train on from where they are, the others stop with the scores of
that rung (``cv_results_["pruned_at"]``: the epochs they trained, -1 for none).
"""
from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from inspect import signature
from typing import Any

import numpy as np
from scipy.stats import rankdata
# scikit-learn ships no type information (see sklearn.py)
from sklearn.base import (  # type: ignore[import-untyped, unused-ignore]
    BaseEstimator, MetaEstimatorMixin, clone, is_classifier)
from sklearn.metrics import check_scoring  # type: ignore[import-untyped, unused-ignore]
from sklearn.model_selection import (  # type: ignore[import-untyped, unused-ignore]
    ParameterGrid, ParameterSampler, check_cv)
from sklearn.utils.metaestimators import (  # type: ignore[import-untyped, unused-ignore]
    available_if)
from sklearn.utils.validation import (  # type: ignore[import-untyped, unused-ignore]
    check_is_fitted, indexable)

from fastbp import _dask
from fastbp import _validation as check
from fastbp._lockstep import LockstepFits
from fastbp.pruning import Halving, check_pruner, survivors
from fastbp.threads import check_threads, get_num_threads, using_threads

__all__ = ["MLPSearchCV"]


def _rows(a: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of an array, a sparse matrix or a DataFrame (None stays None)."""
    if a is None:
        return None
    return a.iloc[idx] if hasattr(a, "iloc") else a[idx]


def _scorer_takes_weights(scorer: Any) -> bool:
    """Whether ``scorer`` accepts sample_weight (scikit-learn's own test, which
    GridSearchCV uses to forward the weights to it); a UserWarning as its, if not."""
    if hasattr(scorer, "_accept_sample_weight"):
        accept = bool(scorer._accept_sample_weight())
    else:
        accept = "sample_weight" in signature(scorer).parameters
    if not accept:
        warnings.warn(f"The scoring {scorer} does not support sample_weight, which may lead "
                      "to statistically incorrect results when fitting MLPSearchCV with "
                      "sample_weight.")
    return accept


def _score(scorer: Any, estimator: Any, X: Any, y: Any, sample_weight: Any,
           test: np.ndarray) -> float:
    """The scorer on the test fold (with its weights when given: GridSearchCV's rule)."""
    kwargs = {} if sample_weight is None else {"sample_weight": _rows(sample_weight, test)}
    return float(scorer(estimator, _rows(X, test), _rows(y, test), **kwargs))


def _fold_fits(estimators: list[list[Any]], X: Any, y: Any, sample_weight: Any,
               splits: list[tuple[np.ndarray, np.ndarray]]
               ) -> list[tuple[Any, Any, Any, dict[str, Any]]]:
    """LockstepFits' fits, candidate-major (c · n_splits + s): each fold's rows taken
    once and shared by its candidates."""
    folds = [(_rows(X, train), _rows(y, train),
              {} if sample_weight is None else {"sample_weight": _rows(sample_weight, train)})
             for train, _ in splits]
    return [(est, *folds[s]) for row in estimators for s, est in enumerate(row)]


def _fit_group_and_score(estimators: list[Any], X: Any, y: Any, sample_weight: Any,
                         score_weight: Any, train: np.ndarray, test: np.ndarray, scorer: Any,
                         pack: bool) -> list[tuple[float, float, float]]:
    """(test score, fit seconds, score seconds) of each candidate of one fold, fitted in
    lock-step on this machine's one thread. A module function: Dask ships it to the
    workers."""
    fits = LockstepFits(_fold_fits([[e] for e in estimators], X, y, sample_weight,
                                   [(train, test)]), 1, pack)
    try:
        fits.run()
    finally:
        fits.close()
    out = []
    for est, seconds in zip(estimators, fits.seconds):
        start = time.perf_counter()
        score = _score(scorer, est, X, y, score_weight, test)
        out.append((score, seconds, time.perf_counter() - start))
    return out


def _estimator_has(attr: str) -> Any:
    def check_best(self: MLPSearchCV) -> bool:
        check_is_fitted(self)
        return hasattr(self.best_estimator_, attr)
    return check_best


class MLPSearchCV(MetaEstimatorMixin, BaseEstimator):  # type: ignore[misc, unused-ignore]
    """A cross-validated grid or random search over a fastbp.sklearn estimator.

    Parameters
    ----------
    estimator : fastbp.sklearn.MLPClassifier or MLPRegressor
        The estimator whose parameters are searched (cloned for every fit).
    param_grid : dict or list of dict, default None
        As ``GridSearchCV``'s. Exactly one of param_grid and param_distributions.
    param_distributions : dict or list of dict, default None
        As ``RandomizedSearchCV``'s (lists sampled uniformly, or scipy.stats
        distributions), ``n_iter`` candidates drawn with ``random_state``.
    n_iter : int or None, default None
        The candidates of a random search (None: 10). Not with param_grid.
    cv : int, cross-validation generator or iterable, default 5
        As ``GridSearchCV``'s (an int: stratified k-fold for a classifier).
    scoring : str, callable or None, default None
        One scorer, as ``GridSearchCV``'s (None: the estimator's ``score``).
    refit : bool, default True
        Refit the best candidate on all the data (``best_estimator_``).
    halving : None, fastbp.SuccessiveHalving or fastbp.Hyperband, default None
        Stop the losers early (see the module docstring); the rungs are sized for
        the largest ``max_iter`` of the candidates. Stochastic solvers only.
    pack : bool, default True
        Step the fits that can as packs (see the module docstring); False: every fit
        alone, bit for bit its own ``fit``.
    random_state : int, RandomState or None, default None
        The draw of a random search's candidates.
    num_threads : int or None, default None
        Threads running the candidate × fold fits (None: fastbp.get_num_threads()).
    client : dask.distributed.Client or None, default None
        Run the fits on that cluster's workers instead (not with halving).
    verbose : int, default 0
        Print one line per completed fit when > 0.

    Attributes
    ----------
    cv_results_ : dict of ndarray
        As ``GridSearchCV``'s: ``params``, ``param_<name>`` (masked arrays),
        ``split<i>_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``, ``mean_fit_time``, ``std_fit_time``, ``mean_score_time``,
        ``std_score_time``; with halving also ``pruned_at``.
    best_index_, best_params_, best_score_ : int, dict, float
        The candidate ranked first (the lowest index among ties).
    best_estimator_ : estimator
        The refit best candidate (refit=True).
    scorer_ : callable
        The scorer used.
    n_splits_ : int
        The number of cross-validation splits.
    refit_time_ : float
        Seconds the refit took (refit=True).
    """

    def __init__(self, estimator: Any, param_grid: Any = None, *, param_distributions: Any = None,
                 n_iter: int | None = None, cv: Any = 5, scoring: Any = None, refit: bool = True,
                 halving: Any = None, pack: bool = True, random_state: Any = None,
                 num_threads: int | None = None, client: Any = None, verbose: int = 0) -> None:
        self.estimator = estimator
        self.param_grid = param_grid
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
        self.halving = halving
        self.pack = pack
        self.random_state = random_state
        self.num_threads = num_threads
        self.client = client
        self.verbose = verbose

    # ---------------------------------------------------------------- checks
    def _candidates(self) -> list[dict[str, Any]]:
        grid, dists = self.param_grid, self.param_distributions
        if (grid is None) == (dists is None):
            raise ValueError("give exactly one of param_grid and param_distributions")
        if grid is not None:
            if self.n_iter is not None:
                raise ValueError("n_iter applies to param_distributions, not param_grid")
            return list(ParameterGrid(grid))
        n_iter = 10 if self.n_iter is None else check.int_in_range(self.n_iter, "n_iter", 1)
        return list(ParameterSampler(dists, n_iter, random_state=self.random_state))

    def _check_estimator(self) -> None:
        # fastbp.sklearn's estimators, known by the epoch-by-epoch fit the halving drives
        # (this module does not import fastbp.sklearn, which imports it)
        if not callable(getattr(self.estimator, "_fit_epochs", None)):
            raise TypeError("estimator must be a fastbp.sklearn MLPClassifier or MLPRegressor, "
                            f"got {type(self.estimator).__name__}")

    # ---------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPSearchCV:
        """Fit every candidate on every fold, score it, and refit the best.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,) or None, default None
            Passed to each fit (the training fold's rows), to the scorer (the test
            fold's rows, when it takes sample_weight) and to the refit, as
            ``GridSearchCV``'s.

        Returns
        -------
        self : MLPSearchCV

        Raises
        ------
        TypeError, ValueError
            A bad parameter (named) or data the estimator refuses; a fit's own error
            propagates (no candidate is scored as NaN).
        """
        self._check_estimator()
        candidates = self._candidates()
        refit = check.flag(self.refit, "refit")
        pack = check.flag(self.pack, "pack")
        verbose = check.int_in_range(self.verbose, "verbose", 0)
        halving = check_pruner(self.halving)
        if halving is not None and not isinstance(halving, Halving):
            raise TypeError("halving must be None, fastbp.SuccessiveHalving(...) or "
                            f"fastbp.Hyperband(...), got {type(halving).__name__}")
        workers = get_num_threads() if self.num_threads is None else check_threads(
            self.num_threads)
        if self.client is not None:
            if halving is not None:
                raise ValueError("halving with client is not supported: the rungs rank the "
                                 "candidates on this machine (run without client)")
            _dask.check_client(self.client)
        if isinstance(self.scoring, (list, tuple, set, dict)):
            raise ValueError("scoring must be one scorer (a name, a callable or None)")
        X, y, sample_weight = indexable(X, y, sample_weight)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        splits = list(cv.split(X, y))
        scorer = check_scoring(self.estimator, self.scoring)
        score_weight = None
        if sample_weight is not None and _scorer_takes_weights(scorer):
            score_weight = sample_weight
        estimators = [[clone(self.estimator).set_params(**params) for _ in splits]
                      for params in candidates]
        n_c, n_s = len(candidates), len(splits)
        scores = np.empty((n_c, n_s))
        fit_times = np.zeros((n_c, n_s))
        score_times = np.zeros((n_c, n_s))
        pruned_at = None
        if self.client is not None:
            self._fit_on_cluster(estimators, X, y, sample_weight, score_weight, splits, scorer,
                                 scores, fit_times, score_times, pack)
        else:
            fits = LockstepFits(_fold_fits(estimators, X, y, sample_weight, splits), workers,
                                pack)
            try:
                if halving is None:
                    fits.run()
                    fit_times[:] = np.reshape(fits.seconds, (n_c, n_s))
                    self._score_all(estimators, X, y, score_weight, splits, scorer, scores,
                                    score_times, workers, verbose)
                else:
                    pruned_at = self._halving(halving, fits, estimators, X, y, score_weight,
                                              splits, scorer, scores, fit_times, score_times,
                                              workers, verbose)
            finally:
                fits.close()
        self.scorer_ = scorer
        self.n_splits_ = n_s
        self.cv_results_ = self._results(candidates, scores, fit_times, score_times, pruned_at)
        self.best_index_ = int(self.cv_results_["rank_test_score"].argmin())
        self.best_params_ = candidates[self.best_index_]
        self.best_score_ = float(self.cv_results_["mean_test_score"][self.best_index_])
        if refit:
            start = time.perf_counter()
            best = clone(self.estimator).set_params(**self.best_params_)
            best.fit(X, y, **({} if sample_weight is None else {"sample_weight": sample_weight}))
            self.refit_time_ = time.perf_counter() - start
            self.best_estimator_ = best
        return self

    def _score_all(self, estimators: list[list[Any]], X: Any, y: Any, score_weight: Any,
                   splits: list[tuple[np.ndarray, np.ndarray]], scorer: Any, scores: np.ndarray,
                   score_times: np.ndarray, workers: int, verbose: int) -> None:
        """Every fitted candidate scored on its test fold, on the threads."""
        n_c, n_s = len(estimators), len(splits)

        def run(job: tuple[int, int]) -> None:
            c, s = job
            if estimators[c][s] is None:   # (halving: not trained this rung)
                return
            start = time.perf_counter()
            scores[c, s] = _score(scorer, estimators[c][s], X, y, score_weight, splits[s][1])
            score_times[c, s] += time.perf_counter() - start
            if verbose:
                print(f"[MLPSearchCV] candidate {c + 1}/{n_c} split {s + 1}/{n_s}: "
                      f"score {scores[c, s]:.5f}")

        self._run(run, [(c, s) for c in range(n_c) for s in range(n_s)], workers)

    @staticmethod
    def _run(fn: Any, jobs: list[Any], workers: int) -> None:
        """fn(job) for every job, on ``workers`` threads, BLAS on one thread meanwhile (the
        fits are the parallel work: ``num_threads`` threads in all)."""
        with using_threads(1):
            if min(workers, len(jobs)) <= 1:
                for job in jobs:
                    fn(job)
                return
            with ThreadPoolExecutor(min(workers, len(jobs))) as pool:
                for future in [pool.submit(fn, job) for job in jobs]:
                    future.result()

    def _fit_on_cluster(self, estimators: list[list[Any]], X: Any, y: Any, sample_weight: Any,
                        score_weight: Any, splits: list[tuple[np.ndarray, np.ndarray]],
                        scorer: Any, scores: np.ndarray, fit_times: np.ndarray,
                        score_times: np.ndarray, pack: bool) -> None:
        """Each fold's candidates in a few lock-step groups, each group one task of the
        cluster (about two tasks per worker thread in all), the data scattered once."""
        client = self.client
        data = client.scatter([X, y, sample_weight, score_weight], broadcast=True)
        n_c, n_s = len(estimators), len(splits)
        threads = max(1, sum(client.nthreads().values()))
        parts = min(n_c, max(1, -(-2 * threads // n_s)))
        size = -(-n_c // parts)
        futures = {}
        for s in range(n_s):
            for c0 in range(0, n_c, size):
                group = [estimators[c][s] for c in range(c0, min(c0 + size, n_c))]
                futures[(c0, s)] = client.submit(_fit_group_and_score, group, *data, *splits[s],
                                                 scorer, pack, pure=False)
        for (c0, s), future in futures.items():
            for j, result in enumerate(future.result()):
                scores[c0 + j, s], fit_times[c0 + j, s], score_times[c0 + j, s] = result

    def _halving(self, pruner: Any, fits: LockstepFits, estimators: list[list[Any]], X: Any,
                 y: Any, score_weight: Any, splits: list[tuple[np.ndarray, np.ndarray]],
                 scorer: Any, scores: np.ndarray, fit_times: np.ndarray,
                 score_times: np.ndarray, workers: int, verbose: int) -> np.ndarray:
        """Train the candidates a rung at a time (in lock-step), scoring every fold at
        each rung."""
        n_c, n_s = len(estimators), len(splits)
        for row in estimators:
            if row[0].solver == "lbfgs":
                raise ValueError("halving trains the candidates epoch by epoch: the solver "
                                 "of every candidate must be 'adam' or 'sgd', got 'lbfgs'")
        epochs = max(row[0].max_iter for row in estimators)
        brackets = pruner.brackets(n_c, epochs)
        rung_of: dict[int, list[tuple[list[int], int]]] = {}
        for bracket in brackets:
            for r in bracket.rungs:
                rung_of.setdefault(r, []).append((list(bracket.members), r))
        pruned_at = np.full(n_c, -1)
        alive = set(range(n_c))
        stops = sorted(rung_of) + [epochs]

        def finished(c: int) -> bool:
            return all(fits.fits[c * n_s + s].done for s in range(n_s))

        for stop in stops:
            jobs = [c * n_s + s for c in sorted(alive) for s in range(n_s)
                    if not fits.fits[c * n_s + s].done]
            started = set(jobs)
            fits.run(jobs, until=stop)
            fit_times[:] = np.reshape(fits.seconds, (n_c, n_s))
            self._score_all([[estimators[c][s] if c * n_s + s in started else None
                              for s in range(n_s)] for c in range(n_c)], X, y, score_weight,
                            splits, scorer, scores, score_times, workers, 0)
            for members, rung in rung_of.get(stop, []):
                # candidates of this bracket still training (every fold not yet done)
                ranked = [c for c in members if c in alive and not finished(c)]
                keep = {ranked[j] for j in survivors([-scores[c].mean() for c in ranked],
                                                     pruner.eta)}
                for c in ranked:
                    if c not in keep:
                        alive.discard(c)
                        pruned_at[c] = rung
                        fits.close([c * n_s + s for s in range(n_s)])
            if verbose:
                print(f"[MLPSearchCV] after {stop} epochs: {len(alive)} of {n_c} candidates "
                      "training")
        return pruned_at

    @staticmethod
    def _results(candidates: list[dict[str, Any]], scores: np.ndarray, fit_times: np.ndarray,
                 score_times: np.ndarray, pruned_at: np.ndarray | None) -> dict[str, Any]:
        """cv_results_ as scikit-learn's BaseSearchCV._format_results builds it."""
        n_c, n_s = scores.shape
        results: dict[str, Any] = {}
        for name, values in (("fit_time", fit_times), ("score_time", score_times)):
            results[f"mean_{name}"] = np.average(values, axis=1)
            results[f"std_{name}"] = np.sqrt(np.average(
                (values - results[f"mean_{name}"][:, None]) ** 2, axis=1))
        names = sorted({k for params in candidates for k in params})
        for name in names:
            column = np.ma.MaskedArray(np.empty(n_c, dtype=object), mask=True)
            for i, params in enumerate(candidates):
                if name in params:
                    column[i] = params[name]
            results[f"param_{name}"] = column
        results["params"] = candidates
        for s in range(n_s):
            results[f"split{s}_test_score"] = scores[:, s]
        # scikit-learn's formulas (np.average), for the same bits
        mean = np.average(scores, axis=1)
        results["mean_test_score"] = mean
        results["std_test_score"] = np.sqrt(np.average((scores - mean[:, None]) ** 2, axis=1))
        if np.isnan(mean).all():
            rank = np.ones(n_c, dtype=np.int32)
        else:
            lowest = np.nanmin(mean)
            rank = rankdata(-np.where(np.isnan(mean), lowest - 1, mean), method="min")
            rank = np.asarray(rank, dtype=np.int32)
        results["rank_test_score"] = rank
        if pruned_at is not None:
            results["pruned_at"] = pruned_at
        return results

    # ---------------------------------------------------------------- the best estimator
    @available_if(_estimator_has("predict"))  # type: ignore[untyped-decorator, unused-ignore]
    def predict(self, X: Any) -> Any:
        """``best_estimator_.predict(X)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray
        """
        return self.best_estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))  # type: ignore[untyped-decorator, unused-ignore]
    def predict_proba(self, X: Any) -> Any:
        """``best_estimator_.predict_proba(X)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return self.best_estimator_.predict_proba(X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The scorer on ``best_estimator_`` (as ``GridSearchCV.score``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,) or None, default None
            Passed to the scorer.

        Returns
        -------
        float
        """
        check_is_fitted(self, "best_estimator_")
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        return float(self.scorer_(self.best_estimator_, X, y, **kwargs))

    @property
    def classes_(self) -> Any:
        """``best_estimator_.classes_``."""
        return self.best_estimator_.classes_

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "cv_results_")
