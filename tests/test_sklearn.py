"""fastbp.sklearn: scikit-learn's estimator checks, meta-estimators, pickling, partial_fit
rules and outputs of MLPClassifier / MLPRegressor (the same numbers as scikit-learn's
are tested in test_sklearn_equivalence.py)."""
from __future__ import annotations

import copy
import os
import pickle
import subprocess
import tempfile
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from joblib import parallel_backend  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification, make_moons, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import (GridSearchCV, StratifiedKFold,  # noqa: E402
                                     cross_val_score, cross_validate)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastbp  # noqa: E402
from fastbp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

from conftest import assert_same_params, tol  # noqa: E402

# Short fits that stop at max_iter are the point of most tests here; the warning itself
# is tested in test_convergence_warning_at_max_iter (pytest.warns records regardless).
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def moons():
    X, y = make_moons(400, noise=0.15, random_state=0)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def smooth():
    """A smooth 3-feature regression problem with a 1-D target."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(400, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 2]
    return X, y


# ------------------------------------------------------------------ scikit-learn's checks
WEIGHT_CHECKS = ("check_sample_weight_equivalence_on_dense_data",
                 "check_sample_weight_equivalence_on_sparse_data")


def _sklearn_fails_too(est):
    """The weights-equal-repeated-rows check compares two fits at float64 tolerances;
    the float32 instances differ by float32 rounding (the same estimators in float64
    pass it: test_weight_check_passes_in_float64). With dropout a repeated row draws
    its own mask, where a weight scales one row's: the fits differ by design."""
    if est.dtype == "float32":
        return dict.fromkeys(WEIGHT_CHECKS, "float32 rounding; passes in float64")
    if est.dropout:
        return dict.fromkeys(WEIGHT_CHECKS, "dropout masks each repeated row on its own")
    return {}


@pytest.mark.parametrize("check", WEIGHT_CHECKS)
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_weight_check_passes_in_float64(cls, check):
    from sklearn.utils import estimator_checks

    est = cls(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(estimator_checks, check)(cls.__name__, est)


@parametrize_with_checks([
    MLPClassifier((8,), learning_rate_init=0.01, max_iter=200, random_state=0,
                  dtype="float32"),
    MLPRegressor(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=200,
                 random_state=0, dtype="float32"),
    MLPClassifier((8,), solver="sgd", activation="tanh", learning_rate_init=0.05,
                  max_iter=200, random_state=0),
    MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", activation="logistic",
                 learning_rate="adaptive", learning_rate_init=0.05, max_iter=200,
                 random_state=0),
    MLPClassifier((8,), solver="lbfgs", max_iter=100, random_state=0),
    MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=100, random_state=0),
    # fastbp's extras (class_weight: scikit-learn's check_class_weight_classifiers runs
    # for every classifier above, since the parameter exists)
    MLPClassifier((8,), dropout=0.1, learning_rate_init=0.01, max_iter=200, random_state=0),
    MLPRegressor(hidden_layer_sizes=(8,), dropout=0.1, learning_rate_init=0.01, max_iter=200,
                 random_state=0),
], expected_failed_checks=lambda est: _sklearn_fails_too(est))
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # check_array_api_input (NumPy inputs under array_api_dispatch) skips itself unless
    # SCIPY_ARRAY_API is set; it only reads the variable, so setting it here runs the check.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


# ------------------------------------------------------------------ optional dependency
@pytest.mark.packaging
def test_import_fastbp_does_not_import_sklearn():
    code = "import sys, fastbp; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    # Run outside the checkout: -c puts the working directory on sys.path.
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ),
                   cwd=tempfile.gettempdir())


# ------------------------------------------------------------------ quality
def test_classifier_accuracy_on_moons(moons):
    X, y = moons
    clf = MLPClassifier((32,), learning_rate_init=0.01, random_state=0).fit(X, y)
    assert clf.score(X, y) >= 0.95
    X2, y2 = make_classification(300, 8, n_informative=5, n_classes=3, class_sep=2.0,
                                 random_state=1)
    clf = MLPClassifier((32,), learning_rate_init=0.01, random_state=0).fit(X2, y2)
    assert clf.score(X2, y2) >= 0.9


def test_regressor_r2_on_smooth_function(smooth):
    X, y = smooth
    reg = MLPRegressor(hidden_layer_sizes=(64,), learning_rate_init=0.01, max_iter=300, random_state=0).fit(X, y)
    assert reg.score(X, y) >= 0.9


# ------------------------------------------------------------------ outputs
def test_string_labels_and_predict_proba(moons):
    X, y = moons
    names = np.array(["left", "right"])[y]
    clf = MLPClassifier((16,), learning_rate_init=0.01, max_iter=100, random_state=0)
    clf.fit(X, names)
    np.testing.assert_array_equal(clf.classes_, ["left", "right"])
    pred = clf.predict(X)
    assert pred.dtype == names.dtype and set(pred) <= {"left", "right"}
    assert np.mean(pred == names) >= 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=tol(np.float64, "formula_rtol"))
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba,
                               rtol=tol(np.float64, "formula_rtol"))
    # two classes: one logistic output, as scikit-learn
    assert clf.model_.out_features == 1 and clf.model_.loss_name == "binary_cross_entropy"
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 1


def test_predict_proba_multiclass_rows_sum_to_one():
    X, y = make_classification(200, 6, n_informative=4, n_classes=4, random_state=0)
    clf = MLPClassifier((8,), max_iter=5, random_state=0)
    proba = clf.fit(X, y).predict_proba(X)
    assert proba.shape == (200, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=tol(np.float64, "formula_rtol"))
    assert np.all(proba >= 0)


@pytest.mark.parametrize("shape", [(60,), (60, 1), (60, 3)])
def test_regression_target_shapes(shape):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = rng.normal(size=shape)
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # (60, 1) is raveled with a DataConversionWarning
        reg.fit(X, y)
    pred = reg.predict(X)
    # scikit-learn ravels a one-column target, and so one-output predictions
    assert pred.shape == (shape if shape != (60, 1) else (60,)) and pred.dtype == np.float64
    assert reg.n_outputs_ == (1 if len(shape) == 1 else shape[1])
    np.testing.assert_array_equal(pred.reshape(60, -1), reg.model_.forward(X))


def test_dtype_and_num_threads(smooth):
    X, y = smooth
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, dtype="float64", num_threads=1, random_state=0)
    reg.fit(X, y)
    assert reg.model_.dtype == np.float64 and reg.model_.num_threads == 1
    assert all(W.dtype == np.float64 for W in reg.coefs_)
    assert [W.shape for W in reg.coefs_] == [(3, 4), (4, 1)]
    assert [b.shape for b in reg.intercepts_] == [(4,), (1,)]


# ------------------------------------------------------------------ meta-estimators
def test_pipeline_with_scaler():
    X, y = make_moons(300, noise=0.15, random_state=1)
    X = X * [100.0, 0.01]  # badly scaled features: the scaler is needed
    pipe = make_pipeline(StandardScaler(), MLPClassifier((32,), learning_rate_init=0.01,
                                                         random_state=0))
    pipe.fit(X, y)
    assert pipe.score(X, y) >= 0.9


def test_cross_val_score(moons):
    X, y = moons
    scores = cross_val_score(MLPClassifier((16,), learning_rate_init=0.01, random_state=0),
                             X, y, cv=3)
    assert scores.shape == (3,) and scores.min() >= 0.85


@pytest.mark.packaging
def test_grid_search_with_process_workers(moons):
    X, y = moons
    grid = GridSearchCV(MLPClassifier(learning_rate_init=0.01, max_iter=50, random_state=0),
                        {"hidden_layer_sizes": [(4,), (16,)], "alpha": [1e-4, 1e-1]},
                        cv=2, n_jobs=2)
    with parallel_backend("loky"):  # process workers (joblib's default, made explicit)
        grid.fit(X, y)
    assert grid.best_score_ >= 0.85
    assert isinstance(grid.best_estimator_.model_, fastbp.MLP)
    # Fitted estimators travel back from the workers by pickle: each equals a local fit.
    est = MLPClassifier((8,), learning_rate_init=0.01, max_iter=30, random_state=0)
    with parallel_backend("loky"):
        res = cross_validate(est, X, y, cv=2, n_jobs=2, return_estimator=True)
    for fitted, (train, _) in zip(res["estimator"], StratifiedKFold(2).split(X, y)):
        local = clone(est).fit(X[train], y[train])
        np.testing.assert_array_equal(fitted.predict_proba(X), local.predict_proba(X))
        assert fitted.optimizer_.step_count == local.optimizer_.step_count


# ------------------------------------------------------------------ pickling
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_pickle_round_trip_keeps_predictions_and_optimizer(moons, solver):
    X, y = moons
    clf = MLPClassifier((8,), solver=solver, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    clone_ = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone_.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(clone_.predict(X), clf.predict(X))
    assert clone_.optimizer_.step_count == clf.optimizer_.step_count
    np.testing.assert_array_equal(copy.deepcopy(clf).predict_proba(X), clf.predict_proba(X))
    # Training goes on identically: the optimizer state came along.
    clf.partial_fit(X, y)
    clone_.partial_fit(X, y)
    assert_same_params(clf.model_, clone_.model_)
    assert clone_.optimizer_.params[0] is clone_.model_.parameters()[0]


def test_estimator_loaded_memory_mapped_trains_on(moons, tmp_path):
    """joblib.load(mmap_mode="r") hands the unpickler read-only memory maps, as joblib's
    process workers do: the estimator's arrays come back writable and its own, the
    optimizer over the model's parameters, and training goes on as for a plain copy."""
    import joblib
    X, y = moons
    clf = MLPClassifier((8,), random_state=0).partial_fit(X, y, classes=[0, 1])
    joblib.dump(clf, tmp_path / "clf.joblib")
    back = joblib.load(tmp_path / "clf.joblib", mmap_mode="r")
    assert all(p.flags.writeable and not isinstance(p, np.memmap) for p in back.model_.parameters())
    assert all(a is b for a, b in zip(back.optimizer_.params, back.model_.parameters()))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    back.partial_fit(X, y)
    assert_same_params(back.model_, pickle.loads(pickle.dumps(clf)).partial_fit(X, y).model_)


def _predict_then_train(est, X, y):
    """In a joblib worker: predictions of the estimator as it arrived, then after one more
    partial_fit, and whether joblib memory-mapped the arguments (read-only X)."""
    before = est.predict_proba(X)
    est.partial_fit(X, y)
    return before, est.predict_proba(X), not X.flags.writeable


@pytest.mark.packaging
@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_memory_mapped_estimator_keeps_training(moons, backend):
    """joblib's process backends memory-map every array above max_nbytes (here all of
    them) when they send arguments to a worker, read-only: an estimator that arrives so
    predicts as the original and trains on exactly as a pickled copy does here."""
    import joblib
    X, y = moons
    clf = MLPClassifier((16,), random_state=0).partial_fit(X, y, classes=[0, 1])
    here = pickle.loads(pickle.dumps(clf)).partial_fit(X, y)
    # (timeout: a worker that crashes hangs the multiprocessing backend's pool)
    results = joblib.Parallel(n_jobs=2, backend=backend, max_nbytes=1, timeout=60)(
        joblib.delayed(_predict_then_train)(clf, X, y) for _ in range(2))
    for before, after, mapped in results:
        assert mapped, "joblib did not memory-map the arguments"
        np.testing.assert_array_equal(before, clf.predict_proba(X))
        np.testing.assert_array_equal(after, here.predict_proba(X))
    assert not np.array_equal(after, before)


def test_pickle_regressor_and_unfitted(smooth):
    X, y = smooth
    unfitted = pickle.loads(pickle.dumps(MLPRegressor(hidden_layer_sizes=(3,), alpha=0.5)))
    assert unfitted.alpha == 0.5 and not hasattr(unfitted, "model_")
    reg = MLPRegressor(hidden_layer_sizes=(6,), max_iter=2, random_state=0)
    reg.fit(X, y[:, None])
    back = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))
    assert back.predict(X).shape == (len(X),)   # a one-column target is raveled
    assert back.loss_curve_ == reg.loss_curve_


def test_save_passthrough(tmp_path, moons):
    X, y = moons
    clf = MLPClassifier((8,), random_state=0).partial_fit(X, y, classes=[0, 1])
    clf.save(tmp_path / "clf.fastbp")
    model, opt = fastbp.load(tmp_path / "clf.fastbp", with_optimizer=True)
    np.testing.assert_array_equal(model.forward(X), clf.model_.forward(X))
    assert opt.step_count == clf.optimizer_.step_count


def test_partial_fit_rules(moons):
    X, y = moons
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    clf = MLPClassifier((4,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    assert clf.model_.out_features == 3 and list(clf.classes_) == [0, 1, 2]
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X, np.where(y == 1, 5, y))
    with pytest.raises(ValueError, match="not the same"):
        clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1])
    # fit starts afresh (new model, new optimizer), partial_fit goes on from fit
    # (n_iter_ counts the epochs of the last call, as in scikit-learn).
    clf.set_params(max_iter=2).fit(X, y)
    assert list(clf.classes_) == [0, 1] and clf.n_iter_ == 2
    steps = clf.optimizer_.step_count
    clf.partial_fit(X, y)
    assert clf.optimizer_.step_count == steps + 2 and clf.n_iter_ == 1 and clf.t_ == 1200
    with pytest.raises(AttributeError, match="partial_fit"):
        MLPClassifier(solver="lbfgs").partial_fit


# ------------------------------------------------------------------ training rules
def test_convergence_warning_at_max_iter(moons):
    X, y = moons
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier((4,), max_iter=1).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        MLPRegressor(hidden_layer_sizes=(4,), max_iter=1).fit(X, y.astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        MLPClassifier((4,), max_iter=1).partial_fit(X, y, classes=[0, 1])  # never warns


def test_stopping_rule_matches_sklearn(moons):
    """With a huge tol every epoch after the first is 'no improvement': scikit-learn
    stops after n_iter_no_change + 2 epochs, and so must we."""
    from sklearn.neural_network import MLPClassifier as SkMLP

    X, y = moons
    for n in (1, 3):
        ours = MLPClassifier((4,), tol=1e6, n_iter_no_change=n, random_state=0).fit(X, y)
        theirs = SkMLP((4,), tol=1e6, n_iter_no_change=n, random_state=0).fit(X, y)
        assert ours.n_iter_ == theirs.n_iter_ == n + 2
        assert len(ours.loss_curve_) == ours.n_iter_
        assert ours.best_loss_ == min(ours.loss_curve_) and ours.validation_scores_ is None


def test_early_stopping_records_validation_scores(moons):
    X, y = moons
    clf = MLPClassifier((16,), early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                        learning_rate_init=0.01, random_state=0)
    clf.fit(X, y)
    assert clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_ < clf.max_iter
    assert all(0 <= s <= 1 for s in clf.validation_scores_)
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    # the same scores as scikit-learn's (which, on this binary problem, are all 0.5 in 1.9)
    from sklearn.neural_network import MLPClassifier as SkMLP
    sk = SkMLP(**{k: v for k, v in clf.get_params().items()
                  if k not in ("dtype", "num_threads", "dropout", "class_weight")}).fit(X, y)
    assert clf.validation_scores_ == sk.validation_scores_
    assert clf.t_ == clf.n_iter_ * 320  # 80% of 400 samples per epoch

    reg = MLPRegressor(hidden_layer_sizes=(16,), early_stopping=True, learning_rate_init=0.01, max_iter=30,
                       random_state=0)
    reg.fit(X, y.astype(float))
    assert reg.best_validation_score_ == max(reg.validation_scores_)  # R²


def test_activation_names(moons):
    X, y = moons
    for name, fast in [("logistic", "sigmoid"), ("identity", "identity"), ("tanh", "tanh"),
                       ("relu", "relu"), ("gelu", "gelu"), ("leaky_relu", "leaky_relu")]:
        clf = MLPClassifier((4,), activation=name, random_state=0).partial_fit(X, y, classes=[0, 1])
        assert clf.model_.layers[0].activation == fast
        assert clf.model_.layers[-1].activation == "identity"


def test_random_state_reproducible_and_verbose(moons, capsys):
    X, y = moons
    a = MLPClassifier((8,), max_iter=3, verbose=True, random_state=7)
    b = MLPClassifier((8,), max_iter=3, random_state=7)
    a.fit(X, y)
    b.fit(X, y)
    assert a.loss_curve_ == b.loss_curve_
    assert_same_params(a.model_, b.model_)
    assert "Iteration 3, loss = " in capsys.readouterr().out


@pytest.mark.parametrize("params", [
    dict(solver="Adam"), dict(learning_rate="fast"), dict(max_fun=0), dict(power_t=-1.0), dict(hidden_layer_sizes=(10, 0)),
    dict(hidden_layer_sizes=0), dict(hidden_layer_sizes=(-1,)), dict(alpha=-1e-4),
    dict(batch_size=0), dict(batch_size="big"), dict(learning_rate_init=0.0),
    dict(learning_rate_init=-1.0), dict(validation_fraction=1.0),
    dict(validation_fraction=1.5), dict(activation="softsign"), dict(max_iter=0),
    dict(tol=-1.0), dict(n_iter_no_change=0), dict(momentum=1.5), dict(beta_1=1.0),
    dict(beta_2=-0.1), dict(epsilon=0.0), dict(num_threads=0), dict(dtype="int32"),
])
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_invalid_parameters_raise_at_fit(cls, params, moons):
    X, y = moons
    est = cls(**params)  # __init__ only stores
    assert est.get_params()[next(iter(params))] == next(iter(params.values()))
    with pytest.raises(ValueError):  # fastbp.sklearn.InvalidParameterError
        est.fit(X, y)
    assert not hasattr(est, "model_")
