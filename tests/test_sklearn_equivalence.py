"""fastbp.sklearn reproduces scikit-learn's MLPs: against scikit-learn itself (never
copied numbers), same data, same int random_state, float64.

For every solver and learning-rate option × task (binary, multiclass with string
labels, multilabel, one- and two-output regression, Poisson) × way of training
(fit, with sample_weight, early_stopping, both, warm_start, partial_fit): the
coefs_/intercepts_ equal scikit-learn's to 1e-6 relative (atol 1e-9 where values
cross zero), n_iter_, t_ and the stopping bookkeeping are the same, loss_curve_
agrees to 1e-6, and predict gives the same labels (the same values to 1e-6 for the
regressors). Reached here (largest |ours - theirs| / max(|theirs|, 1e-3) over all
cases, measured when this was written): adam 4e-14, sgd 2e-13, lbfgs 3e-10 -- all
rounding (fastbp's fused kernels sum in another order; L-BFGS amplifies it most).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import sklearn.neural_network as skn  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402

from fastbp import sklearn as fbs  # noqa: E402

from conftest import sklearn_string_label_bug, tol, tols  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning",
                                        "ignore::sklearn.exceptions.DataConversionWarning")

RTOL, ATOL = tol(np.float64, "sklearn_rtol"), tol(np.float64, "sklearn_atol")

# name -> (parameters); small nets, few epochs, mini-batches of 16 (the last one smaller)
SOLVERS = {
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "sgd-constant": dict(solver="sgd", learning_rate_init=0.05),
    "sgd-momentum": dict(solver="sgd", learning_rate_init=0.05, nesterovs_momentum=False,
                         momentum=0.5),
    "sgd-plain": dict(solver="sgd", learning_rate_init=0.05, momentum=0.0),
    # invscaling changes lr every epoch (the momentum buffer is rescaled for it)
    "sgd-invscaling": dict(solver="sgd", learning_rate="invscaling", power_t=0.3,
                           learning_rate_init=0.1),
    # a huge tol makes every epoch "no improvement": lr /= 5 every 3 epochs until <= 1e-6
    "sgd-adaptive": dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.01,
                         tol=10.0, n_iter_no_change=2, max_iter=25),
    "lbfgs": dict(solver="lbfgs", max_iter=25),
}
MODES = ("fit", "weights", "early_stopping", "weights+early_stopping", "warm_start",
         "partial_fit")
TASKS = ("binary", "multiclass", "multilabel", "regression", "regression-2", "poisson")


def task_data(task):
    if task in ("binary", "multiclass", "multilabel"):
        X, y = make_classification(90, 5, n_informative=4, n_redundant=0,
                                   n_classes=2 if task == "binary" else 3, random_state=0)
        if task == "multilabel":
            y = np.c_[y == 0, y == 1, (y == 2) | (X[:, 0] > 0)].astype(int)
        else:
            y = np.array(["cat", "dog", "emu"])[y]   # string labels
        return X, y
    X, y = make_regression(90, 5, n_targets=2 if task == "regression-2" else 1, noise=0.5,
                           random_state=0)
    y = y / np.abs(y).max()
    if task == "poisson":
        y = np.random.RandomState(0).poisson(np.exp(y))
    return X, y


def estimator_pair(task, params):
    kind = "MLPClassifier" if task in ("binary", "multiclass", "multilabel") else "MLPRegressor"
    if task == "poisson":
        params = dict(params, loss="poisson")
    return getattr(fbs, kind)(**params), getattr(skn, kind)(**params)


def cases():
    for solver in SOLVERS:
        for task in TASKS:
            for mode in MODES:
                if solver == "lbfgs" and ("early_stopping" in mode or mode == "partial_fit"):
                    continue   # lbfgs: no early stopping, no partial_fit
                if solver.startswith("sgd-") and solver not in ("sgd-invscaling",) \
                        and mode not in ("fit", "weights") and task not in ("multiclass",
                                                                           "regression"):
                    continue   # the other sgd variants: every mode on two tasks
                yield pytest.param(solver, task, mode, id=f"{solver}-{task}-{mode}")


def train(est, mode, X, y, w, classes):
    if mode == "fit":
        return est.fit(X, y)
    if mode in ("weights", "weights+early_stopping"):
        return est.fit(X, y, sample_weight=w)
    if mode == "early_stopping":
        return est.fit(X, y)
    if mode == "warm_start":
        est.fit(X, y)
        est.set_params(max_iter=4)
        return est.fit(X[::-1], y[::-1], sample_weight=w[::-1])
    for i in range(3):   # partial_fit: three epochs, weights on the second
        est.partial_fit(X, y, sample_weight=w if i == 1 else None,
                        **({"classes": classes} if classes is not None and i == 0 else {}))
    return est


def assert_equivalent(ours, theirs, X):
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.n_layers_ == theirs.n_layers_ and ours.n_outputs_ == theirs.n_outputs_
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_features_in_ == theirs.n_features_in_
    assert len(ours.coefs_) == len(theirs.coefs_)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=RTOL)
    if hasattr(theirs, "loss_curve_"):
        assert ours.t_ == theirs.t_
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=RTOL)
        assert (ours.best_loss_ is None) == (theirs.best_loss_ is None)
        if theirs.best_loss_ is not None:
            assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=RTOL)
        assert (ours.validation_scores_ is None) == (theirs.validation_scores_ is None)
        if theirs.validation_scores_ is not None:
            np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_,
                                       rtol=RTOL)
            assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_,
                                                                rel=RTOL)
    if hasattr(theirs, "_optimizer") and hasattr(theirs._optimizer, "learning_rate") \
            and theirs.solver == "sgd":
        assert ours.optimizer_.lr == pytest.approx(theirs._optimizer.learning_rate,
                                                   rel=tol(np.float64, "formula_rtol"))
    if hasattr(theirs, "classes_"):
        np.testing.assert_array_equal(ours.classes_, theirs.classes_)
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X),
                                   rtol=RTOL, atol=ATOL)
    else:
        pred, want = ours.predict(X), theirs.predict(X)
        assert pred.shape == want.shape and pred.dtype == want.dtype
        np.testing.assert_allclose(pred, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("solver, task, mode", list(cases()))
def test_same_numbers_as_sklearn(solver, task, mode):
    X, y = task_data(task)
    w = np.random.RandomState(1).uniform(0.2, 2.0, len(X))
    w[3] = 0.0
    params = dict(dict(hidden_layer_sizes=(6, 4), activation="tanh", alpha=1e-3,
                       batch_size=16, max_iter=8, random_state=3), **SOLVERS[solver])
    if "early_stopping" in mode:
        params.update(early_stopping=True, validation_fraction=0.2, n_iter_no_change=2,
                      max_iter=12, tol=1e-3)
    if mode == "warm_start":
        params["warm_start"] = True
    ours, theirs = estimator_pair(task, params)
    classes = None
    if mode == "partial_fit" and isinstance(ours, fbs.MLPClassifier):
        classes = np.arange(y.shape[1]) if y.ndim == 2 else np.unique(y)
    with warnings.catch_warnings(), sklearn_string_label_bug(y, "early_stopping" in mode):
        warnings.simplefilter("ignore")
        train(theirs, mode, X, y, w, classes)
    train(ours, mode, X, y, w, classes)
    assert_equivalent(ours, theirs, X)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_every_sklearn_activation_and_defaults(activation, solver):
    """scikit-learn's defaults (batch_size "auto", shuffle, tol, hidden (100,))."""
    X, y = task_data("multiclass")
    ours = fbs.MLPClassifier(activation=activation, solver=solver, max_iter=5, random_state=0)
    theirs = skn.MLPClassifier(activation=activation, solver=solver, max_iter=5,
                               random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.fit(X, y)
        ours.fit(X, y)
    assert_equivalent(ours, theirs, X)


def test_stopping_on_tol_and_verbose_output(capsys):
    """The tol/n_iter_no_change rule stops at the same epoch, printing the same lines."""
    X, y = task_data("regression")
    kw = dict(hidden_layer_sizes=(5,), tol=1e-2, n_iter_no_change=3, max_iter=200,
              learning_rate_init=0.05, random_state=0, verbose=True)
    theirs = skn.MLPRegressor(**kw).fit(X, y)
    sk_out = capsys.readouterr().out
    ours = fbs.MLPRegressor(**kw).fit(X, y)
    our_out = capsys.readouterr().out
    assert ours.n_iter_ == theirs.n_iter_ < 200
    assert our_out.splitlines()[-1] == sk_out.splitlines()[-1]
    assert len(our_out.splitlines()) == len(sk_out.splitlines())
    assert_equivalent(ours, theirs, X)


def test_sample_weight_zero_and_repeat_like_sklearn():
    """Integer weights in a full batch (lbfgs) equal repeated rows, in both libraries."""
    X, y = task_data("binary")
    w = np.random.RandomState(0).randint(0, 3, len(X))
    reps = np.repeat(np.arange(len(X)), w)
    kw = dict(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = fbs.MLPClassifier(**kw).fit(X, y, sample_weight=w)
        b = fbs.MLPClassifier(**kw).fit(X[reps], y[reps])
        c = skn.MLPClassifier(**kw).fit(X, y, sample_weight=w)
    for p, q, r in zip(a.coefs_, b.coefs_, c.coefs_):
        np.testing.assert_allclose(p, q, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(p, r, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("bad", [np.ones(5), np.r_[np.ones(89), -1.0],
                                 np.r_[np.ones(89), np.nan], np.zeros(90)])
def test_bad_sample_weight_is_refused(bad):
    X, y = task_data("binary")
    with pytest.raises(ValueError, match="(?i)sample.weight"):
        fbs.MLPClassifier((3,), max_iter=1).fit(X, y, sample_weight=bad)


def test_init_matches_sklearn_draws():
    """Before any step (max_iter=1, lr tiny) the network is scikit-learn's initial one."""
    X, y = task_data("multiclass")
    for activation in ("logistic", "relu"):
        kw = dict(hidden_layer_sizes=(7, 3), activation=activation, learning_rate_init=1e-12,
                  max_iter=1, random_state=11)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = fbs.MLPClassifier(**kw).fit(X, y)
            b = skn.MLPClassifier(**kw).fit(X, y)
        for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
            np.testing.assert_allclose(p, q, **tols(np.float64, "path"))


def test_coefs_are_live_views_of_the_network():
    X, y = task_data("binary")
    est = fbs.MLPClassifier((3,), max_iter=2, random_state=0).fit(X, y)
    assert est.coefs_[0] is est.model_.layers[0].W
    est.coefs_ = [np.zeros_like(W) for W in est.coefs_]
    assert not est.model_.layers[0].W.any()


def _given_weights(rng, sizes):
    return ([rng.normal(0, 0.3, (a, b)) for a, b in zip(sizes, sizes[1:])],
            [rng.normal(0, 0.1, b) for b in sizes[1:]])


@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_weights_assigned_before_a_fit_are_its_start_as_in_scikit_learn(solver, how):
    """scikit-learn's idiom (its test_fit): coefs_/intercepts_ assigned -- as a whole
    list, then item by item -- before a warm_start fit or partial_fit are where it
    starts; nothing is drawn for them. The same weights after, and the same path."""
    X, y = task_data("multiclass")
    coefs, intercepts = _given_weights(np.random.default_rng(3), [X.shape[1], 6, 3])
    fitted = []
    for mod in (fbs, skn):
        est = mod.MLPClassifier((6,), solver=solver, max_iter=3, random_state=0,
                                learning_rate_init=0.05, warm_start=how == "warm_start")
        est.coefs_ = [None, None]
        est.intercepts_ = list(intercepts)
        for i, W in enumerate(coefs):
            est.coefs_[i] = W.copy()
        if mod is skn:   # the bookkeeping scikit-learn's own first_pass would have set
            est.n_iter_, est.t_, est.n_layers_, est.n_outputs_ = 0, 0, 3, 3
            est.out_activation_, est.loss_curve_, est.best_loss_ = "softmax", [], np.inf
            est._no_improvement_count = 0
            est.validation_scores_ = est.best_validation_score_ = None
        if how == "warm_start":
            if mod is skn:   # scikit-learn's label state, which a first fit would set
                est._label_binarizer = __import__("sklearn.preprocessing").preprocessing \
                    .LabelBinarizer().fit(y)
                est.classes_ = est._label_binarizer.classes_
            est.fit(X, y)
        else:
            est.partial_fit(X, y, classes=np.unique(y))
        fitted.append(est)
    ours, theirs = fitted
    for p, q in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(p, q, rtol=RTOL, atol=ATOL)
    # and they started from the given weights, not from drawn ones
    drawn = fbs.MLPClassifier((6,), solver=solver, max_iter=3, random_state=0,
                              learning_rate_init=0.05).fit(X, y)
    assert not np.allclose(drawn.coefs_[0], ours.coefs_[0])


def test_an_item_assigned_into_coefs_takes_effect_or_is_refused():
    """scikit-learn's coefs_ are plain lists; an item assigned here writes into the
    network (checked: shape, finite, converted to the model's dtype), all or nothing."""
    X, y = task_data("binary")
    est = fbs.MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    ref = skn.MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    for model in (est, ref):
        model.coefs_[1] = np.full((4, 1), 0.5)
        model.intercepts_[-1] = np.array([-0.25])
    np.testing.assert_allclose(est.predict_proba(X), ref.predict_proba(X), rtol=1e-6)
    assert isinstance(est.coefs_, list) and len(est.coefs_) == 2
    before = [c.copy() for c in est.coefs_]
    with pytest.raises(ValueError, match=r"coefs_\[1\] must have shape \(4, 1\)"):
        est.coefs_[1] = np.ones((3, 1))
    with pytest.raises(ValueError, match=r"coefs_\[1\] must be finite"):
        est.coefs_ = [np.zeros_like(before[0]), np.full((4, 1), np.nan)]
    for a, b in zip(est.coefs_, before):   # the whole-list assignment changed nothing
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="coefs_ must hold 2 arrays"):
        est.coefs_ = [before[0]]
    with pytest.raises(TypeError, match="length and order cannot change"):
        est.coefs_.append(before[0])
    with pytest.raises(TypeError, match="coefs_ must be a list of arrays"):
        est.coefs_ = np.zeros(3)
    with pytest.raises(TypeError, match="coefs_ must be a list of arrays"):
        fbs.MLPClassifier().coefs_ = 5
    # a float32 model converts float64 values (documented), refusing overflow
    e32 = fbs.MLPClassifier((4,), max_iter=2, random_state=0, dtype=np.float32).fit(X, y)
    e32.coefs_[0] = np.full(e32.coefs_[0].shape, 0.1)
    assert e32.coefs_[0].dtype == np.float32 and np.all(e32.coefs_[0] == np.float32(0.1))
    with pytest.raises(ValueError, match="finite in float32"):
        e32.coefs_[0] = np.full(e32.coefs_[0].shape, 1e300)
    # a copy, or a pickle, is a plain list of copies
    import copy
    snapshot = copy.deepcopy(est.coefs_)
    snapshot[0][...] = 7.0
    assert type(snapshot) is list and not (est.coefs_[0] == 7.0).any()


def test_weights_assigned_before_a_fit_are_checked_and_a_fresh_fit_discards_them():
    X, y = task_data("binary")
    coefs, intercepts = _given_weights(np.random.default_rng(0), [X.shape[1], 4, 1])
    est = fbs.MLPClassifier((4,), max_iter=2, random_state=0, warm_start=True)
    est.coefs_ = coefs
    assert est.coefs_ is coefs   # kept as given until a fit reads it
    with pytest.raises(ValueError, match="intercepts_ must be assigned too"):
        est.fit(X, y)
    assert est.coefs_ is coefs and not hasattr(est, "model_")   # as before the call
    est.intercepts_ = intercepts[:1]
    with pytest.raises(ValueError, match="intercepts_ must hold 2 arrays"):
        est.fit(X, y)
    est.intercepts_ = intercepts
    est.coefs_ = [coefs[0], np.zeros((5, 1))]
    with pytest.raises(ValueError, match=r"coefs_\[1\] must have shape \(4, 1\)"):
        est.fit(X, y)
    est.coefs_ = coefs
    est.fit(X, y)
    assert est.coefs_[0] is est.model_.layers[0].W
    # without warm_start (or partial_fit), a fit starts anew, as scikit-learn's does
    fresh = fbs.MLPClassifier((4,), max_iter=2, random_state=0)
    fresh.coefs_, fresh.intercepts_ = coefs, intercepts
    fresh.fit(X, y)
    drawn = fbs.MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    for p, q in zip(fresh.coefs_, drawn.coefs_):
        np.testing.assert_array_equal(p, q)


def test_epoch_shuffle_is_sklearns():
    from sklearn.utils import check_random_state, shuffle

    from fastbp.sklearn import _shuffle

    a, b = check_random_state(5), check_random_state(5)
    idx_a = idx_b = np.arange(37)
    for _ in range(3):
        idx_a, idx_b = _shuffle(idx_a, a), shuffle(idx_b, random_state=b)
        np.testing.assert_array_equal(idx_a, idx_b)


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_lbfgs_through_saturated_probabilities(task):
    """L-BFGS's line search tries steps whose probabilities are within float eps of 0
    or 1; scikit-learn's log loss clips them there, and its line search follows those
    values. Without the same clipping the two runs part ways (seen: 1e1 relative)."""
    X, y = make_classification(120, 6, n_informative=4, n_classes=3, random_state=0)
    if task == "multilabel":
        y = np.c_[y == 1, y == 2, y == 0].astype(int)
    kw = dict(hidden_layer_sizes=(7, 5), solver="lbfgs", max_iter=15, random_state=1,
              alpha=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = fbs.MLPClassifier(**kw).fit(X, y), skn.MLPClassifier(**kw).fit(X, y)
    assert_equivalent(ours, theirs, X)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_saturated_loss_curve(task):
    """Inputs ×30 and a big learning rate saturate the outputs: a misclassified sample
    costs -log(eps) = 36.04 in scikit-learn's clipped log loss, far less than its
    unclipped loss; loss_curve_ holds the clipped values, as scikit-learn's."""
    X, y = task_data(task)
    X = X * 30
    kw = dict(hidden_layer_sizes=(8,), activation="identity", solver="sgd", alpha=0.0,
              momentum=0.0, learning_rate_init=1.0, max_iter=6, batch_size=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = fbs.MLPClassifier(**kw).fit(X, y), skn.MLPClassifier(**kw).fit(X, y)
    assert 5 < max(theirs.loss_curve_) <= -np.log(np.finfo(float).eps)
    assert_equivalent(ours, theirs, X)
    target = ours._fast_target(ours._label_binarizer.transform(y).astype(bool))
    unclipped = ours.model_.loss(X, target)   # fastbp's own (from logits, no clip)
    assert unclipped > 2 * ours.loss_


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", ["softmax", "logistic"])
def test_engine_log_loss_is_sklearns_clipped_one(kind, weighted):
    """The engine's loss under scikit-learn's convention against scikit-learn's own
    log_loss/binary_log_loss of the same outputs: logits from moderate to far past the
    clip (-log eps = 36), so both the cheap correction and the whole recomputation run."""
    from scipy.special import expit
    from sklearn.neural_network._base import binary_log_loss, log_loss

    import fastbp

    rng = np.random.RandomState(0)
    k = 4 if kind == "softmax" else 3
    for spread in (1.0, 20.0, 60.0, 1e4):
        Z = rng.normal(size=(9, k)) * spread
        Y = np.eye(k)[rng.randint(0, k, 9)] if kind == "softmax" else \
            (rng.rand(9, k) > 0.5).astype(float)
        w = rng.uniform(0.5, 2, 9) if weighted else None
        model = fastbp.MLP((k, k), loss="cross_entropy" if kind == "softmax"
                           else "binary_cross_entropy", dtype="float64", seed=0)
        model.layers[0].W[...] = np.eye(k)
        model.layers[0].b[...] = 0.0
        eps = float(np.finfo(float).eps)
        scale = 1.0 if kind == "softmax" else float(k)
        model.objective = fastbp.Objective(grad_scale=scale, loss_scale=scale, log_loss_clip=eps)
        target = Y.argmax(axis=1) if kind == "softmax" else Y
        got = model.backward(Z, target, sample_weight=w)
        if kind == "softmax":
            P = np.exp(Z - Z.max(axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
            want = log_loss(Y, P, sample_weight=w)
        else:
            want = binary_log_loss(Y, expit(Z), sample_weight=w)
        assert got == pytest.approx(want, rel=tol(np.float64, "formula_rtol"),
                                    abs=tol(np.float64, "formula_atol")), spread


# ------------------------------------------------------------------ divergence
def _diverging_fit(mod, cls: str, **params) -> dict:
    """What a user sees of a fit that overflows: the exception, the warning kinds,
    n_iter_, the loss and validation curves (NaN where scikit-learn has NaN), the best
    validation score and whether the kept weights are finite."""
    from sklearn.datasets import load_iris
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = getattr(mod, cls)(**params)
        try:
            est.fit(X, y)
            error = None
        except ValueError as exc:
            error = str(exc).split(".")[0]
    return dict(error=error, warnings=sorted({w.category.__name__ for w in caught}),
                n_iter=getattr(est, "n_iter_", None),
                loss=np.asarray(getattr(est, "loss_curve_", []), dtype=float),
                scores=np.asarray(getattr(est, "validation_scores_", None) or [],
                                  dtype=float),
                best=getattr(est, "best_validation_score_", None),
                finite=None if error else all(np.isfinite(c).all() for c in est.coefs_))


@pytest.mark.parametrize("cls", ["MLPRegressor", "MLPClassifier"])
@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_diverging_fit_ends_as_in_scikit_learn(solver, early_stopping, cls):
    """A rate far too large: scikit-learn steps on through overflow (a RuntimeWarning),
    then raises "Solver produced non-finite parameter weights" -- or, with
    early_stopping, keeps the best finite weights; the same here, epoch for epoch."""
    params = dict(hidden_layer_sizes=100, activation="identity", max_iter=20,
                  n_iter_no_change=10, random_state=0, solver=solver,
                  early_stopping=early_stopping,
                  learning_rate_init=1.0 if solver == "sgd" else 1e3)
    theirs = _diverging_fit(skn, cls, **params)
    ours = _diverging_fit(fbs, cls, **params)
    for key in ("error", "warnings", "n_iter", "finite"):
        assert ours[key] == theirs[key], key
    for key in ("loss", "scores"):
        # non-finite where theirs is (inf or NaN: the epoch an overflow first shows can
        # give inf here and NaN there, as the batch sums run in another order), the
        # values elsewhere
        mine, ref = ours[key], theirs[key]
        assert mine.shape == ref.shape, key
        np.testing.assert_array_equal(np.isfinite(mine), np.isfinite(ref), err_msg=key)
        np.testing.assert_allclose(mine[np.isfinite(ref)], ref[np.isfinite(ref)],
                                   rtol=1e-9, err_msg=key)
    if theirs["best"] is not None:
        assert ours["best"] == pytest.approx(theirs["best"], rel=1e-9)
    # every case really runs away (not a vacuous comparison): NaN, or a loss 100x the first
    last = theirs["loss"][-1]
    assert not np.isfinite(last) or last > 100 * theirs["loss"][0]
