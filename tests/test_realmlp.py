"""fastbp.tabular.RealMLPClassifier / RealMLPRegressor: RealMLP's table encoding, its
schedules and parametrisation against pytabkit 1.8, its initialisation, and the
estimators (DataFrames with categories and missing values, reproducibility, files,
both exports, scikit-learn's checks)."""
from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402

import fastbp  # noqa: E402
from fastbp import export  # noqa: E402
from fastbp.schedules import CosLog, flat_cosine  # noqa: E402
from fastbp.tabular import RealMLPClassifier, RealMLPRegressor  # noqa: E402
from fastbp.tabular._columns import TableEncoder, _Binary, _Categorical, _Coded  # noqa: E402
from fastbp.tabular.realmlp import data_init, parameter_groups  # noqa: E402

SMALL = dict(hidden_sizes=(32, 32), n_epochs=24, batch_size=64)


def _table(n=400, seed=0):
    """Numeric columns (one with missing values), a two-category, a five-category (with
    missing) and a twelve-category column; a target depending on each kind."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n)
    d = np.where(rng.random(n) < 0.15, np.nan, rng.random(n) * 10)
    two = rng.choice(["p", "q"], n)
    five = rng.choice(["v", "w", "x", "y", "z", None], n).astype(object)
    many = rng.choice([f"k{i}" for i in range(12)], n).astype(object)
    df = pd.DataFrame({"a": a, "two": pd.Categorical(two), "d": d, "five": five,
                       "many": many, "e": rng.standard_normal(n) * 100 + 5})
    score = a + (two == "p") - (five == "v") + 0.2 * np.nan_to_num(d, nan=5.0) \
        + np.isin(many, ["k1", "k2", "k3"])
    return df, (score > np.median(score)).astype(int), score


# ---------------------------------------------------------------- encoding

def test_the_robust_encoding_of_each_kind_of_column():
    torch = pytest.importorskip("torch")
    pytest.importorskip("pytabkit")
    from pytabkit.models.nn_models.models import smooth_clip_func
    df, _, _ = _table()
    enc = TableEncoder(scheme="robust").fit(df)
    kinds = enc.kinds_
    assert isinstance(kinds[1], _Binary) and isinstance(kinds[3], _Categorical) \
        and not kinds[3].missing and isinstance(kinds[4], _Coded)
    X = enc.transform(df)
    # the numeric values first (a, d, e), then in table order: ±1, d's indicator,
    # one-hot, the code
    assert enc.n_numeric_first == 3 and X.shape[1] == 3 + 1 + 1 + 5 + 1
    for col, name in enumerate(["a", "d", "e"]):
        v = df[name].to_numpy()
        seen = v[~np.isnan(v)]
        med = np.median(seen)
        scaled = (np.where(np.isnan(v), med, v) - med) / (np.quantile(seen, 0.75)
                                                          - np.quantile(seen, 0.25))
        want = smooth_clip_func(torch.tensor(scaled)).numpy()   # pytabkit's
        np.testing.assert_allclose(X[:, col], want, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(X[:, 3], np.where(df["two"] == "p", 1.0, -1.0))
    np.testing.assert_array_equal(X[:, 4], np.isnan(df["d"]))
    missing = df["five"].isna().to_numpy()
    hot = X[:, 5:10]
    assert missing.any() and (hot[missing].sum(axis=1) == 0).all()   # missing: zeros
    np.testing.assert_array_equal(hot[~missing].sum(axis=1), 1)
    codes = X[:, 10]
    assert set(codes) == set(range(1, 13))
    other = df.iloc[:3].copy()
    other["many"] = ["k99", None, "k1"]          # unseen and missing: code 0
    other["two"] = pd.Categorical(["r", None, "q"])
    Y = enc.transform(other)
    np.testing.assert_array_equal(Y[:, 10], [0, 0, enc.kinds_[4].categories.index("k1") + 1])
    np.testing.assert_array_equal(Y[:, 3], [0, 0, -1])
    spec, arrays = enc.to_spec()
    np.testing.assert_array_equal(TableEncoder.from_spec(spec, dict(arrays)).transform(df), X)


def test_a_constant_column_is_dropped_and_the_quartile_fallback():
    rng = np.random.default_rng(1)
    col = np.concatenate([np.zeros(90), rng.random(10) * 4])   # quartiles tie at 0
    X = np.column_stack([col, np.ones(100), rng.standard_normal(100)])
    enc = TableEncoder(scheme="robust").fit(X)
    assert enc.kinds_[1] is None and enc.n_outputs == 2
    assert enc.kinds_[0].factor == pytest.approx(2 / (col.max() - col.min()))


# ---------------------------------------------------------------- training tools

def test_schedules_equal_pytabkit():
    pytest.importorskip("pytabkit")
    from pytabkit.models.training.scheduling import get_schedule
    coslog, flat = get_schedule("coslog4"), get_schedule("flat_cos")
    opt = fastbp.AdamW([np.zeros(3)], lr=0.04)
    sched = CosLog(opt, total_steps=1000)
    lrs = sched.lrs(1001)
    for t in range(0, 1001, 7):
        assert lrs[t] == pytest.approx(0.04 * coslog.call_time_(t / 1000), rel=1e-12, abs=1e-15)
        assert flat_cosine(t / 1000) == pytest.approx(flat.call_time_(t / 1000), rel=1e-12)
    assert opt.lr == 0.0   # batch 0's
    with pytest.raises(ValueError, match="total_steps"):
        CosLog(opt, total_steps=0)


def test_the_ntk_parametrisation_is_a_learning_rate_factor():
    """pytabkit's NTK layer (raw weights W, forward x·W/√fan_in) trained by Adam (eps 0)
    moves x·W/√fan_in exactly as fastbp's Dense layer (weights W/√fan_in) with the
    learning rate times 1/√fan_in, and AdamW's decay wd/c of the effective weights is
    pytabkit's decay wd of the raw ones."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    n_in, n_out, lr, wd = 9, 4, 0.05, 0.02
    c = 1 / math.sqrt(n_in)
    X, T = rng.standard_normal((30, n_in)), rng.standard_normal((30, n_out))
    raw = torch.tensor(rng.standard_normal((n_in, n_out)), requires_grad=True)
    model = fastbp.Sequential([fastbp.Dense(n_in, n_out, bias=False, dtype="float64")], "mse")
    model.layers[0].W = raw.detach().numpy() * c
    opt = fastbp.AdamW([{"params": [model.layers[0].W], "lr": lr * c, "weight_decay": wd / c}],
                       lr=lr, eps=0.0, betas=(0.9, 0.95))
    topt = torch.optim.Adam([raw], lr=lr, eps=0.0, betas=(0.9, 0.95))
    xt, tt = torch.tensor(X), torch.tensor(T)
    for _ in range(6):
        model.train_step(X, T, opt)
        topt.zero_grad()
        loss = 0.5 * ((xt @ raw * c - tt) ** 2).sum(dim=1).mean()   # fastbp's mse
        loss.backward()
        with torch.no_grad():   # pytabkit's OptimizerBase: decay, then the Adam step
            raw.mul_(1 - wd * lr)
        topt.step()
    np.testing.assert_allclose(model.layers[0].W, raw.detach().numpy() * c, rtol=1e-12)


def test_drop_last_steps_the_whole_batches_only():
    """fit(drop_last=True) steps the first n − n % batch rows of each epoch's order (in
    order: a fit on those rows), reports their mean loss, counts its steps for per-batch
    schedules, and a resumed fit keeps the setting."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((29, 4)), rng.integers(0, 3, 29)

    def model():
        return fastbp.Sequential([fastbp.Dense(4, 6, "tanh", dtype="float64", seed=1),
                                  fastbp.Dense(6, 3, dtype="float64", seed=2)],
                                 "cross_entropy")
    a, b = model(), model()
    ha = a.fit(X, y, epochs=3, batch_size=8, shuffle=False, drop_last=True, progress=False)
    hb = b.fit(X[:24], y[:24], epochs=3, batch_size=8, shuffle=False, progress=False)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p, q)
    assert ha.loss == hb.loss
    c = model()
    opt = fastbp.Adam(c.parameters(), lr=0.01)
    c.fit(X, y, epochs=2, batch_size=8, optimizer=opt, drop_last=True, progress=False,
          scheduler=CosLog(opt, total_steps=2 * 3))   # 3 steps an epoch, not 4
    assert opt.step_count == 6
    with pytest.raises(ValueError, match="drop_last"):   # b's run steps every row
        b.fit(X[:24], y[:24], epochs=1, batch_size=8, drop_last=True, resume=True,
              progress=False)
    with pytest.raises(TypeError, match="drop_last"):
        model().fit(X, y, epochs=1, drop_last="yes", progress=False)


def test_the_group_factors_and_decays():
    df, y, _ = _table()
    est = RealMLPClassifier(random_state=0, **SMALL)
    est.encoder_ = TableEncoder(scheme="robust").fit(df)
    model = est._network(est.encoder_.n_outputs, 2, np.random.RandomState(0))
    groups, decays = parameter_groups(model, 0.04, 0.02)
    by_id = {id(p): (g["lr"] / 0.04, g["weight_decay"]) for g in groups for p in g["params"]}
    kinds = {type(layer).__name__: layer for layer in model.layers}
    dense = [la for la in model.layers if isinstance(la, fastbp.Dense)]
    for layer in dense:
        c = 1 / math.sqrt(layer.in_features)
        assert by_id[id(layer.W)] == pytest.approx((c, 0.02 / c))
        assert by_id[id(layer.b)] == (0.1, 0.0)
    assert by_id[id(kinds["Scale"].scale)] == pytest.approx((6.0, 0.12))
    assert by_id[id(kinds["ParametricActivation"].alpha)] == pytest.approx((0.1, 0.002))
    for p in kinds["PeriodicBiasEmbedding"].parameters():
        assert by_id[id(p)] == pytest.approx((0.1, 0.002))
    for p in kinds["CategoricalEmbedding"].parameters():
        assert by_id[id(p)] == (1.0, 0.02)
    assert len(by_id) == len(model.parameters()) and decays == [g["weight_decay"] for g in groups]


def test_the_data_dependent_initialisation():
    """Each Dense layer's pre-activations have unit standard deviation on the training
    rows ("std"), and each bias is minus a convex combination of a column's
    pre-activations ("he+5"): inside [−max, −min] of the column."""
    df, y, _ = _table()
    est = RealMLPClassifier(random_state=0, **SMALL)
    est.encoder_ = TableEncoder(scheme="robust").fit(df)
    X = est.encoder_.transform(df, np.float32)
    model = est._network(X.shape[1], 2, np.random.RandomState(0))
    data_init(model, X, np.random.RandomState(1))
    h = X
    for layer in model.layers:
        if isinstance(layer, fastbp.Dense):
            z = h.astype(np.float64) @ layer.W.astype(np.float64)
            np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-4)
            assert np.all(-layer.b >= z.min(axis=0) - 1e-5) and np.all(-layer.b <= z.max(axis=0) + 1e-5)
        h = layer.forward(h)


# ---------------------------------------------------------------- the estimators

def test_classifier_on_a_frame_with_categories_and_missing_values():
    df, y, _ = _table()
    est = RealMLPClassifier(random_state=0, **SMALL).fit(df.iloc[:300], y[:300])
    assert est.score(df.iloc[300:], y[300:]) > 0.8
    assert len(est.validation_scores_) == 24 and est.n_epochs_ == 24
    best = max(est.validation_scores_)
    # the best epoch's parameters are kept: the later of tied epochs
    assert est.best_epoch_ == 24 - est.validation_scores_[::-1].index(best)
    again = RealMLPClassifier(random_state=0, **SMALL).fit(df.iloc[:300], y[:300])
    np.testing.assert_array_equal(again.predict_proba(df), est.predict_proba(df))
    p = est.predict_proba(df.iloc[300:])
    assert p.shape == (100, 2) and np.allclose(p.sum(axis=1), 1)
    names = [type(la).__name__ for la in est.model_.layers]
    assert names[:3] == ["CategoricalEmbedding", "PeriodicBiasEmbedding", "Scale"]
    assert [la.dropout for la in est.model_.layers if la.dropout] == [0.15, 0.15]


def test_regressor_clips_to_the_training_range():
    df, _, score = _table()
    est = RealMLPRegressor(random_state=0, **SMALL).fit(df.iloc[:300], score[:300])
    pred = est.predict(df.iloc[300:])
    assert np.corrcoef(pred, score[300:])[0, 1] > 0.8
    assert est.y_range_ is not None and pred.min() >= est.y_range_[0] - 1e-12 \
        and pred.max() <= est.y_range_[1] + 1e-12
    assert est.model_.layers[4].activation == "mish"


def test_the_scikit_learn_api():
    df, y, _ = _table()
    est = RealMLPClassifier(random_state=0, hidden_sizes=(16,), n_epochs=5, batch_size=64)
    assert clone(est).get_params() == est.get_params()
    scores = cross_val_score(est, df, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.5)
    with pytest.raises(ValueError, match="hidden_sizes"):
        RealMLPClassifier(hidden_sizes=(0,)).fit(df, y)
    with pytest.raises(ValueError, match="activation"):
        RealMLPClassifier(activation="softmax").fit(df, y)


@pytest.mark.parametrize("cls", [RealMLPClassifier, RealMLPRegressor])
def test_scikit_learns_estimator_checks(cls):
    import warnings

    from sklearn.utils.estimator_checks import check_estimator
    est = cls(hidden_sizes=(32,), n_epochs=30, batch_size=32, random_state=0)
    # float32: OpenBLAS sums a row's product with a narrow output layer in an order that
    # depends on how many rows the call has (one row: a dot product), so predicting a
    # subset may differ by an ulp or two from predicting it within the whole table,
    # beyond the check's 1e-7
    expected = {"check_methods_subset_invariance": "float32 sums differ by <= 2 ulp"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None, expected_failed_checks=expected)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert len(results) > 40 and not failed, failed


def test_save_and_load_without_pickle(tmp_path):
    df, y, score = _table()
    for est, target in ((RealMLPClassifier(random_state=0, **SMALL), np.array(["n", "y"])[y]),
                        (RealMLPRegressor(random_state=0, **SMALL), score)):
        est.fit(df, target)
        path = tmp_path / f"{type(est).__name__}.fastbp"
        est.save(path)
        loaded = fastbp.load(path)
        assert type(loaded) is type(est) and loaded.best_epoch_ == est.best_epoch_
        np.testing.assert_array_equal(loaded.predict(df), est.predict(df))
        assert loaded.get_params()["hidden_sizes"] == [32, 32]   # (a JSON list)
        theirs = {k: v for k, v in est.get_params().items() if k != "hidden_sizes"}
        assert {k: v for k, v in loaded.get_params().items() if k != "hidden_sizes"} == theirs
    cats = ["two", "five", "many"]
    est = RealMLPRegressor(random_state=np.random.RandomState(0), categorical_features=cats,
                           **SMALL).fit(df, score)
    est.save(tmp_path / "rs.fastbp")
    loaded = fastbp.load(tmp_path / "rs.fastbp")   # (a RandomState is not kept)
    assert loaded.random_state is None and loaded.categorical_features == cats


def _inputs(est, df):
    from fastbp.tabular._columns import _category_key, _missing
    from fastbp.tabular._export import _TEXT_KINDS
    kinds = est.encoder_.kinds_
    num = [c for c, k in zip(df.columns, kinds) if not isinstance(k, _TEXT_KINDS)]
    cat = [c for c, k in zip(df.columns, kinds) if isinstance(k, _TEXT_KINDS)]
    values = df[cat].to_numpy(dtype=object)
    text = np.array([["" if _missing(np.array([v], dtype=object))[0] else _category_key(v)
                      for v in row] for row in values], dtype=object)
    return {"X_num": df[num].astype("float64").to_numpy(na_value=np.nan), "X_cat": text}


def test_both_exports_include_the_encoding(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from test_export import compile_shared
    df, y, score = _table()
    df.loc[df.index[:5], "many"] = 'k"; system("x"); //'   # a category text that is C syntax
    for est, target in ((RealMLPClassifier(random_state=0, **SMALL), y),
                        (RealMLPRegressor(random_state=0, **SMALL), score)):
        est.fit(df.iloc[:300], target[:300])
        test = df.iloc[300:].copy()
        test.loc[test.index[0], "five"] = "unseen"
        test.loc[test.index[1], "two"] = np.nan
        want = est.predict_proba(test) if hasattr(est, "predict_proba") else \
            est.predict(test)[:, None]
        feeds = _inputs(est, test)
        session = ort.InferenceSession(est.to_onnx(), providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        onnx_out = got.get("probabilities", got.get("variable"))
        np.testing.assert_allclose(onnx_out, want, rtol=1e-5, atol=1e-5)
        name = "realmlp_" + type(est).__name__.lower()
        _, source = export.to_c(est, tmp_path, name=name)
        assert "system" not in open(source).read()
        lib = compile_shared([source], str(tmp_path / f"{name}.so"))
        x_num = np.ascontiguousarray(feeds["X_num"])
        cells = [None if v == "" else v.encode() for v in feeds["X_cat"].ravel()]
        x_cat = (ctypes.c_char_p * len(cells))(*cells)
        out = np.full(want.shape, np.nan, dtype=np.float32)
        fn = getattr(lib, f"{name}_predict")
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        fn(x_num.ctypes.data, ctypes.cast(x_cat, ctypes.c_void_p), len(test), out.ctypes.data)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_bool_labels_stay_bool_in_files_and_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    df, y, _ = _table()
    labels = y.astype(bool)
    est = RealMLPClassifier(random_state=0, hidden_sizes=(16,), n_epochs=4).fit(df, labels)
    assert est.predict(df).dtype == bool
    est.save(tmp_path / "b.fastbp")
    assert fastbp.load(tmp_path / "b.fastbp").classes_.dtype == bool
    session = ort.InferenceSession(est.to_onnx(), providers=["CPUExecutionProvider"])
    label = session.run(["label"], _inputs(est, df))[0]
    assert label.dtype == bool
    np.testing.assert_array_equal(label, est.predict(df))
