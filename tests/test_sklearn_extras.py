"""fastbp.sklearn's extras beyond scikit-learn: MLPClassifier(class_weight=...) and the
estimators' dropout=. Class weights are checked against scikit-learn's own
compute_sample_weight/compute_class_weight (fitting with class_weight is fitting with
those sample weights, bit for bit); dropout against the fastbp network it builds."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import sklearn.neural_network as skn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.utils.class_weight import (compute_class_weight,  # noqa: E402
                                        compute_sample_weight)

import fastbp  # noqa: E402
from fastbp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

from conftest import assert_same_params, sklearn_string_label_bug, tol, tols  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SOLVERS = {
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "sgd": dict(solver="sgd", learning_rate_init=0.05, learning_rate="invscaling",
                power_t=0.3),
    "lbfgs": dict(solver="lbfgs"),
}


def _data(task, n=90):
    X, y = make_classification(n, 5, n_informative=4, n_redundant=0,
                               n_classes=2 if task == "binary" else 3,
                               weights=[0.6, 0.4] if task == "binary" else [0.5, 0.3, 0.2],
                               random_state=0)
    if task == "multilabel":
        return X, np.c_[y == 0, y == 1, (y == 2) | (X[:, 0] > 0)].astype(int)
    return X, np.array(["cat", "dog", "emu"])[y]   # string labels


def _est(solver, **kw):
    params = dict(hidden_layer_sizes=(6, 4), activation="tanh", alpha=1e-3, batch_size=16,
                  max_iter=8, random_state=3, **SOLVERS[solver])
    params.update(kw)
    return MLPClassifier(**params)


def _assert_same_fit(a, b):
    """Bit for bit: the same weights, the same bookkeeping, the same outputs."""
    assert a.n_iter_ == b.n_iter_
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(p, q)
    assert a.loss_ == b.loss_
    assert getattr(a, "loss_curve_", None) == getattr(b, "loss_curve_", None)
    assert getattr(a, "validation_scores_", None) == getattr(b, "validation_scores_", None)


def _assert_differs(a, b):
    assert not all(np.array_equal(p, q) for p, q in zip(a.coefs_, b.coefs_))


# ------------------------------------------------------------------ class_weight ≡ weights
@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_class_weight_dict_is_its_sample_weight(solver, task):
    X, y = _data(task)
    cw = {"cat": 3.0, "dog": 0.5} if task == "binary" else {"cat": 0.25, "emu": 4.0}
    ours = _est(solver, class_weight=cw).fit(X, y)
    same = _est(solver).fit(X, y, sample_weight=compute_sample_weight(cw, y))
    _assert_same_fit(ours, same)
    _assert_differs(ours, _est(solver).fit(X, y))       # the weights did something
    # with sample weights too: their product
    s = np.random.RandomState(1).uniform(0.2, 2.0, len(X))
    ours = _est(solver, class_weight=cw).fit(X, y, sample_weight=s)
    same = _est(solver).fit(X, y, sample_weight=s * compute_sample_weight(cw, y))
    _assert_same_fit(ours, same)


def test_class_weight_with_early_stopping_weights_the_split_and_the_score():
    # The class weights are sample weights everywhere: the validation score too.
    X, y = _data("multiclass", 150)
    cw = {"cat": 0.3, "dog": 2.0, "emu": 5.0}
    kw = dict(early_stopping=True, validation_fraction=0.2, n_iter_no_change=2, max_iter=15,
              tol=1e-3)
    ours = _est("adam", class_weight=cw, **kw).fit(X, y)
    same = _est("adam", **kw).fit(X, y, sample_weight=compute_sample_weight(cw, y))
    _assert_same_fit(ours, same)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_class_weight_list_of_dicts_for_multilabel(solver):
    X, Y = _data("multilabel")
    cw = [{0: 1.0, 1: 3.0}, {1: 0.5}, {0: 2.0, 1: 1.5}]   # a missing label weighs 1
    ours = _est(solver, class_weight=cw).fit(X, Y)
    full = [{0: 1.0, 1: 3.0}, {0: 1.0, 1: 0.5}, {0: 2.0, 1: 1.5}]
    same = _est(solver).fit(X, Y, sample_weight=compute_sample_weight(full, Y))
    _assert_same_fit(ours, same)
    ours = _est(solver, class_weight="balanced").fit(X, Y)
    same = _est(solver).fit(X, Y, sample_weight=compute_sample_weight("balanced", Y))
    _assert_same_fit(ours, same)


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_balanced_is_compute_sample_weight(solver, task):
    X, y = _data(task)
    ours = _est(solver, class_weight="balanced").fit(X, y)
    same = _est(solver).fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    _assert_same_fit(ours, same)
    _assert_differs(ours, _est(solver).fit(X, y))


def test_balanced_with_sample_weight_counts_the_weights():
    """As scikit-learn 1.9's forests and LogisticRegression: compute_class_weight with the
    sample weights, times the sample weights; every class then holds the same total."""
    X, y = _data("multiclass")
    s = np.random.RandomState(2).uniform(0.1, 3.0, len(X))
    ours = _est("adam", class_weight="balanced").fit(X, y, sample_weight=s)
    classes = np.unique(y)
    per_class = compute_class_weight("balanced", classes=classes, y=y, sample_weight=s)
    w = s * per_class[np.searchsorted(classes, y)]
    _assert_same_fit(ours, _est("adam").fit(X, y, sample_weight=w))
    totals = [w[y == c].sum() for c in classes]
    np.testing.assert_allclose(totals, s.sum() / len(classes), rtol=tol(np.float64, "formula_rtol"))


def test_partial_fit_with_class_weight():
    X, y = _data("multiclass")
    cw = {"cat": 2.0, "emu": 0.5}
    w = compute_sample_weight(cw, y)
    a = _est("adam", class_weight=cw)
    b = _est("adam")
    for i in range(3):   # the classes_ of the first call, all epochs weighted
        a.partial_fit(X[i::2], y[i::2], classes=["cat", "dog", "emu"])
        b.partial_fit(X[i::2], y[i::2], sample_weight=w[i::2], classes=["cat", "dog", "emu"])
    _assert_same_fit(a, b)
    # a class the batch lacks but classes_ holds is a known class
    a.partial_fit(X[y != "emu"], y[y != "emu"])
    b.partial_fit(X[y != "emu"], y[y != "emu"], sample_weight=w[y != "emu"])
    _assert_same_fit(a, b)


def test_partial_fit_refuses_balanced_and_changes_nothing():
    X, y = _data("binary")
    est = _est("adam", class_weight="balanced")
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported for "
                                         "partial_fit"):
        est.partial_fit(X, y, classes=["cat", "dog"])
    assert not hasattr(est, "classes_") and not hasattr(est, "model_")
    est.set_params(class_weight=None).partial_fit(X, y, classes=["cat", "dog"])
    before = [c.copy() for c in est.coefs_]
    with pytest.raises(ValueError, match="class_weight"):
        est.set_params(class_weight="balanced").partial_fit(X, y)
    assert_same_params(est.coefs_, before)
    assert est.optimizer_.step_count == 6


# ------------------------------------------------------------------ it helps
def test_balanced_raises_balanced_accuracy_on_an_imbalanced_task():
    """1:20 imbalance, fixed seeds: class_weight='balanced' finds more of the rare class."""
    X, y = make_classification(2100, 10, n_informative=4, n_redundant=2, weights=[20 / 21],
                               flip_y=0.0, class_sep=0.6, random_state=4)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, stratify=y,
                                                        random_state=0)
    assert 18 < np.sum(y_train == 0) / np.sum(y_train == 1) < 22
    kw = dict(hidden_layer_sizes=(32,), learning_rate_init=0.003, max_iter=100,
              random_state=0)
    plain = MLPClassifier(**kw).fit(X_train, y_train)
    balanced = MLPClassifier(class_weight="balanced", **kw).fit(X_train, y_train)
    score_plain = balanced_accuracy_score(y_test, plain.predict(X_test))
    score_balanced = balanced_accuracy_score(y_test, balanced.predict(X_test))
    print(f"balanced accuracy: class_weight=None {score_plain:.4f}, "
          f"'balanced' {score_balanced:.4f}")
    assert score_balanced > score_plain + 0.05


# ------------------------------------------------------------------ bad class_weight
BAD_CLASS_WEIGHTS = [
    ({"cat": 1.0, "cow": 2.0}, ValueError, r"class_weight has classes \['cow'\]"),
    ({"cat": -1.0}, ValueError, r"class_weight\['cat'\] must be >= 0"),
    ({"dog": float("nan")}, ValueError, r"class_weight\['dog'\] must be finite"),
    ({"dog": float("inf")}, ValueError, r"class_weight\['dog'\] must be finite"),
    ({"dog": "heavy"}, TypeError, r"class_weight\['dog'\] must be a real number"),
    ({"dog": True}, TypeError, r"class_weight\['dog'\] must be a real number"),
    ({"cat": 0.0, "dog": 0.0, "emu": 0}, ValueError, "class_weight gives every sample"),
    ("balance", ValueError, "class_weight"),
    (3.0, TypeError, "class_weight"),
    (({"cat": 1.0},), TypeError, "class_weight"),
    ([{"cat": 1.0}], ValueError, "class_weight as a list of dicts is for multilabel"),
]


@pytest.mark.parametrize("bad, exc, match", BAD_CLASS_WEIGHTS)
def test_bad_class_weight_raises_and_changes_nothing(bad, exc, match):
    X, y = _data("multiclass")
    fresh = _est("adam", class_weight=bad)
    params = dict(vars(fresh))
    with pytest.raises(exc, match=match):
        fresh.fit(X, y)
    assert vars(fresh) == params   # nothing fitted, nothing set
    # a fitted estimator keeps everything, also what the data check had already set
    est = _est("adam").fit(X, y)
    state = {k: v for k, v in vars(est).items() if k not in ("model_", "optimizer_")}
    coefs = [c.copy() for c in est.coefs_]
    steps = est.optimizer_.step_count
    with pytest.raises(exc, match=match):   # (X with other features: reset, then restored)
        est.set_params(class_weight=bad).fit(X[:, :4], y)
    assert est.n_features_in_ == 5
    assert est.optimizer_.step_count == steps
    for c, b in zip(est.coefs_, coefs):
        np.testing.assert_array_equal(c, b)
    for k, v in state.items():
        if k != "class_weight":
            assert vars(est)[k] is v, k


@pytest.mark.parametrize("bad, match", [
    ({0: 1.0, 1: 2.0}, "must be 'balanced' or a list of one dict per column"),
    ([{0: 1.0}, {1: 2.0}], "one dict per column of the multilabel target"),
    ([{0: 1.0}, {2: 2.0}, {}], r"class_weight\[1\] has classes \[2\]"),
    ([{0: 1.0}, 2.0, {}], r"class_weight\[1\] must be a dict"),
    ([{0: 1.0}, {1: -2.0}, {}], r"class_weight\[1\]\[1\] must be >= 0"),
])
def test_bad_multilabel_class_weight(bad, match):
    X, Y = _data("multilabel")
    est = _est("adam", class_weight=bad)
    with pytest.raises((ValueError, TypeError), match=match):
        est.fit(X, Y)
    assert not hasattr(est, "model_") and not hasattr(est, "classes_")


def test_balanced_with_a_class_of_zero_total_weight():
    X, y = _data("multiclass")
    s = np.where(y == "emu", 0.0, 1.0)
    est = _est("adam", class_weight="balanced")
    with pytest.raises(ValueError, match="class_weight='balanced' needs a positive total"):
        est.fit(X, y, sample_weight=s)
    assert not hasattr(est, "model_")


# ------------------------------------------------------------------ defaults stay sklearn's
def test_explicit_defaults_keep_sklearn_equivalence():
    """class_weight=None and dropout=0.0 given explicitly: scikit-learn's numbers (early
    stopping and shuffles use its random stream, so no extra draw may happen)."""
    X, y = _data("multiclass", 150)
    kw = dict(hidden_layer_sizes=(6, 4), activation="tanh", batch_size=16, max_iter=12,
              early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
              learning_rate_init=0.01, random_state=5)
    ours = MLPClassifier(class_weight=None, dropout=0.0, **kw).fit(X, y)
    with sklearn_string_label_bug(y, True):
        theirs = skn.MLPClassifier(**kw).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, **tols(np.float64, "sklearn"))
    assert ours.validation_scores_ == theirs.validation_scores_
    _assert_same_fit(ours, MLPClassifier(**kw).fit(X, y))
    reg = dict(kw, early_stopping=False)
    yr = X[:, 0] + X[:, 1] ** 2
    ours_r = MLPRegressor(dropout=0.0, **reg).fit(X, yr)
    theirs_r = skn.MLPRegressor(**reg).fit(X, yr)
    for a, b in zip(ours_r.coefs_, theirs_r.coefs_):
        np.testing.assert_allclose(a, b, **tols(np.float64, "sklearn"))


def test_clone_and_get_params_carry_the_extras():
    est = MLPClassifier((5,), class_weight={"a": 2.0}, dropout=0.25, random_state=1)
    params = est.get_params()
    assert params["class_weight"] == {"a": 2.0} and params["dropout"] == 0.25
    twin = clone(est)
    assert twin.get_params()["class_weight"] == {"a": 2.0}
    assert twin.get_params()["dropout"] == 0.25
    twin.set_params(class_weight="balanced", dropout=0.1)
    assert twin.class_weight == "balanced" and twin.dropout == 0.1
    assert est.class_weight == {"a": 2.0}
    reg = MLPRegressor(dropout=0.3)
    assert clone(reg).get_params()["dropout"] == 0.3 and "class_weight" not in reg.get_params()
    assert "dropout=0.25" in repr(est)


# ------------------------------------------------------------------ dropout
def _moons(n=300):
    from sklearn.datasets import make_moons
    return make_moons(n, noise=0.2, random_state=0)


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_dropout_fits_are_reproducible_and_use_the_masks(cls):
    X, y = _moons()
    if cls is MLPRegressor:
        y = X[:, 0] * X[:, 1] + y
    kw = dict(hidden_layer_sizes=(32, 16), learning_rate_init=0.01, max_iter=15,
              batch_size=32, random_state=7)
    a = cls(dropout=0.3, **kw).fit(X, y)
    b = cls(dropout=0.3, **kw).fit(X, y)
    _assert_same_fit(a, b)
    assert a.model_.dropout_seed == b.model_.dropout_seed
    assert [la.dropout for la in a.model_.layers] == [0.3, 0.3, 0.0]
    # another random_state: other masks (and weights)
    assert cls(dropout=0.3, **dict(kw, random_state=8)).fit(X, y).model_.dropout_seed \
        != a.model_.dropout_seed
    # the masks change the fit: without shuffling the random stream is used for the
    # initial weights only, so the fits differ by the masks alone
    kw["shuffle"] = False
    with_masks, without = cls(dropout=0.3, **kw).fit(X, y), cls(**kw).fit(X, y)
    for p, q in zip(with_masks.coefs_[:1] + with_masks.intercepts_[:1],
                    without.coefs_[:1] + without.intercepts_[:1]):
        assert not np.allclose(p, q)
    # ... and the initial weights were the same: one epoch of tiny steps stays close
    tiny = dict(kw, learning_rate_init=1e-9, max_iter=1)
    for p, q in zip(cls(dropout=0.3, **tiny).fit(X, y).coefs_, cls(**tiny).fit(X, y).coefs_):
        np.testing.assert_allclose(p, q, rtol=0, atol=1e-7)


def test_dropout_training_is_the_fastbp_dropout_network():
    """One partial_fit epoch without shuffling equals fastbp's own compiled epoch on the
    MLP(dropout=p) with the estimator's initial weights and dropout seed."""
    X, y = _moons(64)
    est = MLPClassifier((8,), dropout=0.4, batch_size=16, shuffle=False, alpha=0.0,
                        learning_rate_init=0.05, random_state=2)
    init = MLPClassifier((8,), dropout=0.4, batch_size=16, shuffle=False, alpha=0.0,
                         learning_rate_init=1e-300, max_iter=1, random_state=2)
    init.partial_fit(X, y, classes=[0, 1])
    est.partial_fit(X, y, classes=[0, 1])
    assert init.model_.dropout_seed == est.model_.dropout_seed
    # the same network and masks, trained by hand with scikit-learn's Adam
    net = fastbp.MLP((2, 8, 1), "relu", "binary_cross_entropy", dtype="float64",
                     dropout=0.4)
    net.dropout_seed = est.model_.dropout_seed
    for p, q, r in zip(net.parameters(), init.model_.parameters(), est.model_.parameters()):
        p[...] = q
        assert not np.array_equal(q, r)
    net.objective = init.model_.objective
    opt = fastbp.Adam(net.parameters(), lr=0.05, eps_mode="folded")
    net.train_epoch(np.ascontiguousarray(X, dtype=np.float64),
                    np.ascontiguousarray(y[:, None], dtype=np.float64),
                    np.arange(64, dtype=np.intp), 16, opt)
    assert_same_params(net, est.model_)


def test_predictions_apply_no_dropout():
    from scipy.special import expit

    X, y = _moons()
    est = MLPClassifier((16, 16), dropout=0.5, max_iter=10, random_state=0).fit(X, y)
    # the same weights in a network without dropout
    plain = fastbp.MLP(est.model_.sizes, "relu", "binary_cross_entropy", dtype="float64")
    for p, q in zip(plain.parameters(), est.model_.parameters()):
        p[...] = q
    raw = plain.forward(X)
    np.testing.assert_array_equal(est.model_.forward(X), raw)
    proba = est.predict_proba(X)
    np.testing.assert_array_equal(proba[:, 1], expit(raw).ravel())
    np.testing.assert_array_equal(est.predict_proba(X), proba)   # no fresh masks
    np.testing.assert_array_equal(est.predict(X), (proba[:, 1] > 0.5).astype(int))
    reg = MLPRegressor(hidden_layer_sizes=(16,), dropout=0.5, max_iter=10,
                       random_state=0).fit(X, y * 1.0)
    np.testing.assert_array_equal(reg.predict(X), reg.model_.forward(X).ravel())
    np.testing.assert_array_equal(reg.predict(X), reg.predict(X))


def test_dropout_estimator_to_onnx_is_predict_proba():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    X, y = make_classification(200, 6, n_informative=4, n_classes=3, random_state=0)
    est = MLPClassifier((16, 8), dropout=0.3, max_iter=20, random_state=0).fit(X, y)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(est.to_onnx(), opts, providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {"X": X})
    np.testing.assert_allclose(proba, est.predict_proba(X), rtol=tol(np.float64, "onnx_rtol"),
                               atol=tol(np.float64, "formula_atol"))
    np.testing.assert_array_equal(label, est.predict(X))


def test_pickled_dropout_estimator_continues_with_the_same_masks():
    X, y = _moons()
    est = MLPClassifier((16,), dropout=0.3, random_state=0).partial_fit(X, y, classes=[0, 1])
    back = pickle.loads(pickle.dumps(est))
    assert back.model_.dropout_seed == est.model_.dropout_seed
    assert back.model_.layers[0].dropout == 0.3
    est.partial_fit(X, y)
    back.partial_fit(X, y)
    assert_same_params(est.model_, back.model_)


@pytest.mark.parametrize("bad, exc", [(1.0, ValueError), (-0.1, ValueError),
                                      (float("nan"), ValueError), ("no", TypeError),
                                      (True, TypeError), (False, TypeError),
                                      (None, TypeError)])
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_bad_dropout_raises_naming_it(cls, bad, exc):
    X, y = _moons(60)
    est = cls(hidden_layer_sizes=(4,), dropout=bad, max_iter=2)
    with pytest.raises(exc, match="dropout"):
        est.fit(X, y)
    assert not hasattr(est, "model_")


def test_dropout_needs_a_stochastic_solver_and_a_hidden_layer():
    X, y = _moons(60)
    with pytest.raises(ValueError, match="dropout=0.2 needs a stochastic solver"):
        MLPClassifier((4,), solver="lbfgs", dropout=0.2).fit(X, y)
    with pytest.raises(ValueError, match="dropout=0.2 needs a hidden layer"):
        MLPRegressor(hidden_layer_sizes=(), dropout=0.2).fit(X, y)
    est = MLPClassifier((4,), warm_start=True, max_iter=2, random_state=0).fit(X, y)
    coefs = [c.copy() for c in est.coefs_]
    with pytest.raises(ValueError, match="dropout=0.0; a new dropout=0.5"):
        est.set_params(dropout=0.5).fit(X, y)
    for c, b in zip(est.coefs_, coefs):
        np.testing.assert_array_equal(c, b)
    est.set_params(warm_start=False).fit(X, y)   # a fresh network takes it
    assert est.model_.layers[0].dropout == 0.5


def test_grid_search_over_the_extras():
    from sklearn.model_selection import GridSearchCV

    X, y = _moons(200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = GridSearchCV(MLPClassifier((16,), max_iter=20, random_state=0),
                            {"dropout": [0.0, 0.2], "class_weight": [None, "balanced"]},
                            cv=2).fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_estimator_.dropout in (0.0, 0.2)


def test_regression_sigmoid_is_logistic_from_its_initial_weights():
    """fastbp's "sigmoid" is scikit-learn's "logistic" unit: the same initial bound
    (scikit-learn's factor 2 for logistic units), so the same fit."""
    X, y = make_classification(120, 6, random_state=0)
    fits = [MLPClassifier(hidden_layer_sizes=(5,), activation=a, max_iter=3,
                          random_state=0).fit(X, y) for a in ("logistic", "sigmoid")]
    for a, b in zip(fits[0].coefs_ + fits[0].intercepts_, fits[1].coefs_ + fits[1].intercepts_):
        np.testing.assert_array_equal(a, b)
