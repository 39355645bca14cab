"""fastbp.tabular: the table encoder (numeric, categorical and missing values) and the
TabM estimators' recipe and scikit-learn API (small networks, so that the default run
stays quick; the building blocks are checked against tabm in test_ensemble_layers)."""
from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import QuantileTransformer  # noqa: E402

from fastbp.tabular import TabMClassifier, TabMRegressor  # noqa: E402
from fastbp.tabular._columns import TableEncoder  # noqa: E402

SMALL = dict(k=4, n_blocks=2, d_block=16, max_epochs=40, patience=8)


def _table(n=300, seed=0):
    """Numeric, categorical (category, object with None, pandas string) and nullable
    integer columns, some missing; a target depending on all kinds."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n)
    b = rng.choice(["x", "y", "z"], n)
    c = rng.choice(["u", "v", None], n, p=[0.45, 0.45, 0.1]).astype(object)
    d = np.where(rng.random(n) < 0.15, np.nan, rng.random(n))
    df = pd.DataFrame({"a": a, "b": pd.Categorical(b), "c": c, "d": d,
                       "e": pd.array(rng.integers(0, 4, n), dtype="Int64"),
                       "s": pd.array(rng.choice(["p", "q"], n), dtype="string")})
    df.loc[rng.choice(n, 20, replace=False), "e"] = pd.NA
    y = ((a + (b == "y") - (c == "u") + np.nan_to_num(d)) > 0.5).astype(int)
    return df, y


# ---------------------------------------------------------------- the encoder

def test_the_encoder_learns_each_kind_of_column():
    df, _ = _table()
    df["const"] = 3.0
    enc = TableEncoder().fit(df)
    kinds = [type(k).__name__ if k is not None else None for k in enc.kinds_]
    assert kinds == ["_Numeric", "_Categorical", "_Categorical", "_Numeric", "_Numeric",
                     "_Categorical", None]
    # a: 1; b: 3 categories; c: 2 + missing; d: value + indicator; e: value + indicator;
    # s: 2; const: dropped
    assert enc.chunks == [1, 3, 3, 1, 1, 1, 1, 2]
    Z = enc.transform(df)
    assert Z.shape == (300, 13) and np.isfinite(Z).all()
    d_missing = df["d"].isna().to_numpy()
    np.testing.assert_array_equal(Z[:, 8], d_missing)          # d's indicator
    assert np.allclose(Z[d_missing, 7], Z[d_missing, 7][0])    # the median's value
    np.testing.assert_array_equal(Z[:, 4:7].sum(axis=1), 1)    # c one-hot, missing included
    assert (Z[df["c"].isna().to_numpy(), 6] == 1).all()


def test_the_numeric_curve_is_sklearns_quantile_transformer_at_its_knots():
    rng = np.random.default_rng(1)
    x = rng.exponential(size=(3000, 1))
    enc = TableEncoder().fit(x)
    qt = QuantileTransformer(n_quantiles=100, output_distribution="normal",
                             subsample=10**9).fit(x)
    knots = qt.quantiles_[:, 0]
    np.testing.assert_allclose(enc.transform(knots[:, None])[:, 0], qt.transform(
        knots[:, None])[:, 0], atol=1e-9)
    # linear between the knots: close, except in the outer intervals, where the normal
    # quantile runs to ±5.2 (the 1e-7 clip)
    between = rng.exponential(size=(2000, 1))
    gap = np.abs(enc.transform(between)[:, 0] - qt.transform(between)[:, 0])
    assert np.quantile(gap, 0.5) < 1e-3 and np.quantile(gap, 0.9) < 0.01


def test_unseen_categories_missing_values_and_wrong_tables():
    df, _ = _table()
    enc = TableEncoder().fit(df)
    new = df.head(3).copy()
    new["b"] = new["b"].cat.add_categories(["w"])
    new.loc[new.index[0], "b"] = "w"               # unseen: all zeros
    new.loc[new.index[1], "a"] = np.nan            # missing where training had none
    Z = enc.transform(new)
    assert Z[0, 1:4].sum() == 0 and np.isfinite(Z).all()
    with pytest.raises(ValueError, match="columns"):
        enc.transform(df[["b", "a", "c", "d", "e", "s"]])
    with pytest.raises(ValueError, match="infinite"):
        enc.transform(df.assign(a=np.inf))
    arr = np.array([[1.0, "x"], [2.0, "y"], [3.0, "x"]], dtype=object)
    assert TableEncoder().fit(arr).chunks == [1, 2]                 # text: categorical
    assert TableEncoder([0, 1]).fit(arr).chunks == [3, 2]
    with pytest.raises(ValueError, match="categorical_features"):
        TableEncoder("yes").fit(arr)
    with pytest.raises(ValueError, match="not numbers"):
        TableEncoder([1]).fit(np.array([[1.0, "x"], [2.0, "y"]], dtype=object)[:, ::-1])
    with pytest.raises(ValueError, match="out of range"):
        TableEncoder([5]).fit(arr)


# ---------------------------------------------------------------- the estimators

@pytest.mark.parametrize("num_embeddings", [None, "piecewise"])
def test_classifier_on_a_frame_with_categories_and_missing_values(num_embeddings):
    df, y = _table()
    est = TabMClassifier(num_embeddings=num_embeddings, random_state=0, **SMALL)
    est.fit(df.iloc[:240], y[:240])
    proba = est.predict_proba(df.iloc[240:])
    assert proba.shape == (60, 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert est.score(df.iloc[240:], y[240:]) > 0.7
    assert list(est.classes_) == [0, 1]
    # the best epoch's parameters were restored: its validation score is the best one
    assert 1 <= est.best_epoch_ <= est.n_epochs_ <= SMALL["max_epochs"]
    assert est.validation_scores_[est.best_epoch_ - 1] == max(est.validation_scores_)
    again = TabMClassifier(num_embeddings=num_embeddings, random_state=0, **SMALL)
    np.testing.assert_array_equal(again.fit(df.iloc[:240], y[:240]).predict_proba(
        df.iloc[240:]), proba)                                  # random_state: the same bits


@pytest.mark.parametrize("num_embeddings", [None, "piecewise"])
def test_members_on_their_own_batch_orders(num_embeddings, tmp_path):
    """share_training_batches=False (pytabkit's TabM_D): learns, is reproducible, trains
    otherwise than shared batches, keeps the setting in its file; the regressor too."""
    import fastbp
    df, y = _table()
    params = dict(num_embeddings=num_embeddings, random_state=0, **SMALL)
    # (NumPy's bool is a bool: the file keeps it as one)
    est = TabMClassifier(share_training_batches=np.False_, **params).fit(df.iloc[:240],
                                                                         y[:240])
    assert est.score(df.iloc[240:], y[240:]) > 0.7
    assert est.validation_scores_[est.best_epoch_ - 1] == max(est.validation_scores_)
    assert len(est.loss_curve_) == est.n_epochs_
    proba = est.predict_proba(df.iloc[240:])
    again = TabMClassifier(share_training_batches=False, **params).fit(df.iloc[:240], y[:240])
    np.testing.assert_array_equal(again.predict_proba(df.iloc[240:]), proba)
    shared = TabMClassifier(**params).fit(df.iloc[:240], y[:240])
    assert not np.array_equal(shared.predict_proba(df.iloc[240:]), proba)
    est.save(tmp_path / "own.fastbp")
    loaded = fastbp.load(tmp_path / "own.fastbp")
    assert loaded.share_training_batches is False
    np.testing.assert_array_equal(loaded.predict_proba(df.iloc[240:]), proba)
    with pytest.raises(ValueError, match="share_training_batches"):
        TabMClassifier(share_training_batches="no", **SMALL).fit(df, y)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 5))
    target = 100 + 30 * (X[:, 0] - X[:, 1] ** 2)
    reg = TabMRegressor(share_training_batches=False, num_embeddings=num_embeddings,
                        random_state=0, **{**SMALL, "max_epochs": 30, "patience": 30})
    assert reg.fit(X[:300], target[:300]).score(X[300:], target[300:]) > 0.5


def test_string_labels_a_given_validation_set_and_early_stopping():
    df, y = _table()
    labels = np.array(["no", "yes"])[y]
    est = TabMClassifier(random_state=1, **{**SMALL, "max_epochs": 40, "patience": 2})
    est.fit(df.iloc[:200], labels[:200], X_val=df.iloc[200:250], y_val=labels[200:250])
    assert set(est.predict(df.iloc[250:])) <= {"no", "yes"}
    assert est.n_epochs_ - est.best_epoch_ <= 3
    with pytest.raises(ValueError, match="both"):
        est.fit(df, labels, X_val=df)
    with pytest.raises(ValueError, match="not in y"):
        est.fit(df.iloc[:200], labels[:200], X_val=df.iloc[:2], y_val=["no", "maybe"])


def test_regressor_learns_and_standardises_its_targets():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 5))
    y = 100 + 30 * (X[:, 0] - X[:, 1] ** 2)
    est = TabMRegressor(random_state=0, **{**SMALL, "max_epochs": 30, "patience": 30})
    est.fit(X[:300], y[:300])
    assert est.score(X[300:], y[300:]) > 0.6
    assert abs(est.y_mean_ - y[:300].mean()) < 1e-9


def test_the_scikit_learn_api():
    df, y = _table(200)
    est = TabMClassifier(random_state=0, **SMALL)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    est.set_params(k=2)
    assert est.k == 2
    scores = cross_val_score(TabMClassifier(random_state=0, **SMALL), df, y, cv=2)
    assert scores.shape == (2,) and (scores > 0.5).all()
    pipe = make_pipeline(TabMClassifier(random_state=0, **SMALL)).fit(df, y)
    assert pipe.predict(df).shape == (200,)
    for bad, err in (({"k": 0}, ValueError), ({"num_embeddings": "linear"}, ValueError),
                     ({"batch_size": "big"}, ValueError), ({"dropout": 1.0}, ValueError),
                     ({"lr": -1.0}, ValueError)):
        with pytest.raises(err):
            TabMClassifier(**{**SMALL, **bad}).fit(df, y)
    with pytest.raises(ValueError, match="two classes"):
        TabMClassifier(**SMALL).fit(df, np.zeros(200))


def test_save_and_load_without_pickle(tmp_path):
    import fastbp
    df, y = _table()
    labels = np.array(["no", "yes"])[y]
    for est, target in ((TabMClassifier(random_state=0, **SMALL), labels),
                        (TabMRegressor(random_state=0, **SMALL), df["a"].to_numpy() * 3)):
        est.fit(df.drop(columns="a") if target is not labels else df, target)
        X = df.drop(columns="a") if target is not labels else df
        path = tmp_path / f"{type(est).__name__}.fastbp"
        est.save(path)
        loaded = fastbp.load(path)
        assert type(loaded) is type(est) and loaded.get_params()["k"] == est.k
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
        if hasattr(est, "predict_proba"):
            np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
            assert list(loaded.classes_) == ["no", "yes"]
        assert loaded.best_epoch_ == est.best_epoch_
    raw = path.read_bytes()
    bad = tmp_path / "bad.fastbp"
    bad.write_bytes(raw[:-10])
    with pytest.raises(ValueError):
        fastbp.load(bad)


def _onnx_inputs(est, df):
    """The table as the graph's inputs: numeric columns (NaN missing), categorical ones
    as text ("" missing)."""
    from fastbp.tabular._columns import _category_key, _missing
    from fastbp.tabular._export import _TEXT_KINDS
    kinds = est.encoder_.kinds_
    num = [c for c, k in zip(df.columns, kinds) if not isinstance(k, _TEXT_KINDS)]
    cat = [c for c, k in zip(df.columns, kinds) if isinstance(k, _TEXT_KINDS)]
    feeds = {}
    if num:
        feeds["X_num"] = df[num].astype("float64").to_numpy(na_value=np.nan)
    if cat:
        values = df[cat].to_numpy(dtype=object)
        text = np.array([["" if _missing(np.array([v], dtype=object))[0] else _category_key(v)
                          for v in row] for row in values], dtype=object)
        feeds["X_cat"] = text
    return feeds


def test_onnx_export_includes_the_encoding():
    ort = pytest.importorskip("onnxruntime")
    df, y = _table()
    labels = np.array(["no", "yes"])[y]
    for est, target in ((TabMClassifier(random_state=0, **SMALL), labels),
                        (TabMRegressor(random_state=0, **SMALL), y * 2.0 + df["a"].to_numpy())):
        est.fit(df.iloc[:240], target[:240])
        test = df.iloc[240:].copy()
        test.loc[test.index[0], "b"] = np.nan          # missing and unseen at prediction
        session = ort.InferenceSession(est.to_onnx(), providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, _onnx_inputs(est, test))))
        if "probabilities" in got:
            # the encoding in float64 as TableEncoder's; the network in float32
            np.testing.assert_allclose(got["probabilities"], est.predict_proba(test),
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(got["label"], est.predict(test))
        else:
            np.testing.assert_allclose(got["variable"][:, 0], est.predict(test), rtol=1e-5,
                                       atol=1e-5)


def test_c_export_includes_the_encoding(tmp_path):
    import ctypes

    from fastbp import export
    from test_export import compile_shared
    df, y = _table()
    df["s"] = df["s"].astype(object)
    df.loc[df.index[:5], "s"] = 'q"; system("x"); //'   # a category text that is C syntax
    for est, target in ((TabMClassifier(random_state=0, **SMALL), y),
                        (TabMRegressor(random_state=0, **SMALL), y * 2.0 + df["a"].to_numpy())):
        est.fit(df.iloc[:240], target[:240])
        test = df.iloc[240:].copy()
        test.loc[test.index[0], "b"] = np.nan
        name = "tabm_" + type(est).__name__.lower()
        header, source = export.to_c(est, tmp_path, name=name)
        text = open(source).read()
        assert "system" not in text and 'q"' not in text
        lib = compile_shared([source], str(tmp_path / f"{name}.so"))
        feeds = _onnx_inputs(est, test)
        x_num = np.ascontiguousarray(feeds["X_num"], dtype=np.float64)
        cells = [None if v == "" else v.encode() for v in feeds["X_cat"].ravel()]
        x_cat = (ctypes.c_char_p * len(cells))(*cells)
        width = est.model_.target_width
        out = np.full((len(test), width), np.nan, dtype=np.float32)
        fn = getattr(lib, f"{name}_predict")
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        fn(x_num.ctypes.data, ctypes.cast(x_cat, ctypes.c_void_p), len(test), out.ctypes.data)
        want = est.predict_proba(test) if hasattr(est, "predict_proba") else \
            est.predict(test)[:, None]
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [TabMClassifier, TabMRegressor])
def test_scikit_learns_estimator_checks(cls):
    """Every check of sklearn.utils.estimator_checks passes (input validation and its
    messages, not-fitted errors, n_features_in_, pickling, idempotent fits...)."""
    import warnings

    from sklearn.utils.estimator_checks import check_estimator
    est = cls(k=4, n_blocks=2, d_block=32, max_epochs=60, patience=10, random_state=0,
              num_embeddings=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert len(results) > 40 and not failed, failed


def test_an_empty_text_is_a_missing_value():
    """"" is missing (as the exports' text inputs read it), not a category."""
    col = np.array([["", "a", None, "b"]], dtype=object).T
    enc = TableEncoder([0]).fit(col)
    assert enc.kinds_[0].categories == ["a", "b"] and enc.kinds_[0].missing
    np.testing.assert_array_equal(enc.transform(col)[[0, 2]], [[0, 0, 1], [0, 0, 1]])


def test_category_codes_keep_equal_values_of_other_types_apart():
    """Codes are worked out once per distinct value, and the values Python calls equal
    stay what the encoder makes of them: True is its own category, 1, 1.0 and "1" one;
    every NaN, None and pd.NA is missing; a value that cannot be hashed is unseen."""
    enc = TableEncoder([0]).fit(np.array([[True, 1, "a", None]], dtype=object).T)
    cats = enc.kinds_[0].categories
    assert cats == ["1", "True", "a"]
    values = [1, True, 1.0, "1", pd.NA, float("nan"), np.nan, None, "b", ["x"], True, 1,
              np.float64("nan"), "a", np.int64(1), np.bool_(True)]
    col = np.empty(len(values), dtype=object)   # (element by element: a list is a value)
    for i, v in enumerate(values):
        col[i] = v
    one, true, a = cats.index("1"), cats.index("True"), cats.index("a")
    np.testing.assert_array_equal(TableEncoder._codes(col, cats),
                                  [one, true, one, one, -2, -2, -2, -2, -1, -1, true, one,
                                   -2, a, one, true])
