"""fastbp.Ensemble: each member ends exactly where its own fit would leave it
(every optimizer kind, mixed architectures, per-member lr/weight decay/seed,
validation, early stopping, divergence), predictions, files and bad input."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

import fastbp
from fastbp import SGD, AdaGrad, Adam, AdamW, Dense, Ensemble, RMSprop, Sequential

from conftest import (assert_same_history, assert_same_params, assert_same_training,
                      param_copies, tol)


def _data(n=120, n_in=5, k=3, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 > 0.3).astype(int) + (X[:, 2] > 0.8)
    return X, y % k


def _members(dtype="float64", loss="cross_entropy", n_in=5, k=3):
    """A mix of architectures and activations, fixed seeds (built fresh each call)."""
    return [
        fastbp.MLP((n_in, 8, k), "relu", loss, dtype=dtype, seed=1),
        fastbp.MLP((n_in, 6, 4, k), "tanh", loss, dtype=dtype, seed=2),
        fastbp.MLP((n_in, k), "relu", loss, dtype=dtype, seed=3),
        Sequential([Dense(n_in, 7, "leaky_relu", dtype=dtype, seed=4),
                    Dense(7, 5, "sigmoid", dtype=dtype, seed=5), Dense(5, k, dtype=dtype, seed=6)],
                   loss),
        fastbp.MLP((n_in, 9, k), "gelu", loss, dtype=dtype, seed=7),
    ]


OPTIMIZERS = {
    "sgd-momentum": lambda p, lr, wd: SGD(p, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd),
    "adagrad": lambda p, lr, wd: AdaGrad(p, lr=lr, weight_decay=wd),
    "rmsprop": lambda p, lr, wd: RMSprop(p, lr=lr, momentum=0.5, centered=True, weight_decay=wd),
    "adam": lambda p, lr, wd: Adam(p, lr=lr, weight_decay=wd, amsgrad=True),
    "adamw": lambda p, lr, wd: AdamW(p, lr=lr, weight_decay=wd),
}

LRS = [0.01, 0.03, 0.005, 0.02, 0.015]
DECAYS = [0.0, 1e-3, 0.0, 1e-2, 1e-4]
SEEDS = [11, 12, 11, 13, 14]


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
@pytest.mark.parametrize("num_threads", [1, 2])
def test_each_member_ends_where_its_own_fit_would(kind, num_threads):
    X, y = _data()
    Xv, yv = _data(40, seed=1)
    ens_models, ref_models = _members(), _members()
    make = OPTIMIZERS[kind]
    ens_opts = [make(m.parameters(), lr, wd) for m, lr, wd in zip(ens_models, LRS, DECAYS)]
    live = [m.parameters() for m in ens_models]
    histories = Ensemble(ens_models).fit(X, y, epochs=4, batch_size=16, optimizer=ens_opts,
                                         seed=SEEDS, validation_data=(Xv, yv),
                                         num_threads=num_threads, progress=False)
    for i, (m, ref, h) in enumerate(zip(ens_models, ref_models, histories)):
        opt = make(ref.parameters(), LRS[i], DECAYS[i])
        expected = ref.fit(X, y, epochs=4, batch_size=16, optimizer=opt, seed=SEEDS[i],
                           validation_data=(Xv, yv), progress=False)
        assert_same_training(m, ref)
        assert_same_history(h, expected)
        assert ens_opts[i].step_count == opt.step_count
        for name in opt.state_names:
            np.testing.assert_allclose(ens_opts[i].state[0][name], opt.state[0][name],
                                       rtol=tol(np.float64, "path_rtol"))
        # the live parameter arrays are still the members' (and what the engine updates)
        assert all(a is b for a, b in zip(m.parameters(), live[i]))
        np.testing.assert_allclose(m.forward(X), ref.forward(X), rtol=tol(np.float64, "path_rtol"))


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_optimizer_by_name_with_per_member_lr_and_weight_decay(name):
    X, y = _data()
    ens_models, ref_models = _members(), _members()
    Ensemble(ens_models).fit(X, y, epochs=3, batch_size=10, optimizer=name, lr=LRS,
                             weight_decay=DECAYS, seed=5, progress=False)
    cls = fastbp.optim.OPTIMIZERS[name]
    for i, (m, ref) in enumerate(zip(ens_models, ref_models)):
        ref.fit(X, y, epochs=3, batch_size=10, seed=5, progress=False,
                optimizer=cls(ref.parameters(), lr=LRS[i], weight_decay=DECAYS[i]))
        assert_same_training(m, ref)


def test_defaults_match_fit_defaults():
    X, y = _data()
    ens_models, ref_models = _members(), _members()
    Ensemble(ens_models).fit(X, y, epochs=2, seed=3, progress=False)
    for m, ref in zip(ens_models, ref_models):
        ref.fit(X, y, epochs=2, seed=3, progress=False)
        assert_same_training(m, ref)


def test_float32_members_match_their_fits_to_rounding():
    X, y = _data(dtype="float32")
    ens_models, ref_models = _members("float32"), _members("float32")
    Ensemble(ens_models).fit(X, y, epochs=3, batch_size=8, lr=LRS, seed=SEEDS, num_threads=2,
                             progress=False)
    for i, (m, ref) in enumerate(zip(ens_models, ref_models)):
        ref.fit(X, y, epochs=3, batch_size=8, lr=LRS[i], seed=SEEDS[i], progress=False)
        assert_same_training(m, ref, "float32")


def test_regression_full_batch_and_no_shuffle():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((50, 3))
    y = X @ rng.standard_normal((3, 2))
    for batch, shuffle in [(None, True), (7, False)]:
        ens_models = [fastbp.MLP((3, 5, 2), "tanh", "huber", dtype="float64", seed=s)
                      for s in range(3)]
        ref_models = [fastbp.MLP((3, 5, 2), "tanh", "huber", dtype="float64", seed=s)
                      for s in range(3)]
        Ensemble(ens_models).fit(X, y, epochs=3, batch_size=batch, shuffle=shuffle,
                                 optimizer="sgd", lr=[0.1, 0.05, 0.2], progress=False)
        for m, ref, lr in zip(ens_models, ref_models, [0.1, 0.05, 0.2]):
            ref.fit(X, y, epochs=3, batch_size=batch, shuffle=shuffle, optimizer="sgd", lr=lr,
                    progress=False)
            assert_same_training(m, ref)


def test_per_member_early_stopping_keeps_each_members_best():
    X, y = _data()
    Xv, yv = _data(40, seed=1)
    lrs = [0.5, 0.001, 0.3, 0.05, 0.8]
    ens_models, ref_models = _members(), _members()
    hs = Ensemble(ens_models).fit(X, y, epochs=15, batch_size=8, optimizer="sgd", lr=lrs,
                                  seed=SEEDS, validation_data=(Xv, yv), early_stopping=2,
                                  progress=False)
    expected = []
    for i, (m, ref) in enumerate(zip(ens_models, ref_models)):
        expected.append(ref.fit(X, y, epochs=15, batch_size=8, optimizer="sgd", lr=lrs[i],
                                seed=SEEDS[i], validation_data=(Xv, yv), early_stopping=2,
                                progress=False))
        assert_same_training(m, ref)
        assert_same_history(hs[i], expected[i])
    # the members really stopped at different epochs (some went on after others stopped)
    assert len({h.epochs for h in hs}) > 1
    assert any(h.stopped_early for h in hs) and not all(h.stopped_early for h in hs)


def test_early_stopping_on_training_loss():
    X, y = _data()
    ens_models, ref_models = _members(), _members()
    hs = Ensemble(ens_models).fit(X, y, epochs=8, batch_size=30, optimizer="sgd", lr=0.9,
                                  seed=1, early_stopping=1, progress=False)
    for m, ref, h in zip(ens_models, ref_models, hs):
        assert_same_history(h, ref.fit(X, y, epochs=8, batch_size=30, optimizer="sgd", lr=0.9, seed=1,
                                 early_stopping=1, progress=False))
        assert_same_training(m, ref)


def test_a_diverging_member_is_restored_and_the_others_go_on():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)) * 100
    y = rng.standard_normal((40, 1)) * 1e3
    lrs = [1e-6, 1e3, 1e-5]  # member 1 diverges
    make = lambda: [fastbp.MLP((3, 4, 1), "relu", dtype="float64", seed=s) for s in range(3)]
    ens_models, ref_models = make(), make()
    with pytest.raises(fastbp.TrainingDiverged, match="member 1") as info:
        Ensemble(ens_models).fit(X, y, epochs=5, batch_size=8, optimizer="sgd", lr=lrs, seed=0,
                                 progress=False)
    hs = info.value.histories
    for i, (m, ref) in enumerate(zip(ens_models, ref_models)):
        if i == 1:
            with pytest.raises(fastbp.TrainingDiverged):
                ref.fit(X, y, epochs=5, batch_size=8, optimizer="sgd", lr=lrs[i], seed=0,
                        progress=False)
            assert hs[i].epochs < 5
        else:
            ref.fit(X, y, epochs=5, batch_size=8, optimizer="sgd", lr=lrs[i], seed=0,
                    progress=False)
            assert hs[i].epochs == 5
        assert_same_training(m, ref)
        assert all(np.isfinite(p).all() for p in m.parameters())


def test_shared_seed_none_gives_one_order_to_all_members():
    X, y = _data()
    twins = [fastbp.MLP((5, 6, 3), "relu", "cross_entropy", dtype="float64", seed=0)
             for _ in range(3)]
    Ensemble(twins).fit(X, y, epochs=2, batch_size=4, progress=False)
    for m in twins[1:]:
        assert_same_params(m, twins[0])
    # ... and a fresh order each call (not a fixed seed)
    other = [fastbp.MLP((5, 6, 3), "relu", "cross_entropy", dtype="float64", seed=0)]
    Ensemble(other).fit(X, y, epochs=2, batch_size=4, progress=False)
    assert not np.array_equal(other[0].parameters()[0], twins[0].parameters()[0])


def test_members_own_num_threads_is_restored():
    X, y = _data()
    models = _members()
    models[0].num_threads = 1
    before = fastbp.get_num_threads()
    Ensemble(models).fit(X, y, epochs=1, num_threads=2, progress=False)
    assert models[0].num_threads == 1 and models[1].num_threads is None
    assert fastbp.get_num_threads() == before


def test_of_builds_members_with_consecutive_seeds():
    ens = Ensemble.of(3, (4, 5, 2), activation="tanh", loss="cross_entropy", dtype="float64",
                      seed=10)
    assert len(ens.models) == 3 and isinstance(ens.models, tuple)
    for i, m in enumerate(ens.models):
        ref = fastbp.MLP((4, 5, 2), "tanh", "cross_entropy", dtype="float64", seed=10 + i)
        assert_same_params(m, ref)
        assert m.dtype == np.float64 and m.loss_name == "cross_entropy"


@pytest.mark.parametrize("num_threads", [1, 2])
def test_dropout_members_end_where_their_own_fit_would(num_threads):
    # Each member draws its masks from its own dropout seed and its optimizer's step
    # count, exactly as its own fit does; inference (predict_all) applies none.
    X, y = _data()
    ens = Ensemble.of(3, (5, 16, 8, 3), activation="tanh", loss="cross_entropy",
                      dtype="float64", seed=20, dropout=0.3)
    alone = [fastbp.MLP((5, 16, 8, 3), "tanh", "cross_entropy", dtype="float64", seed=20 + i,
                        dropout=0.3) for i in range(3)]
    assert [m.dropout_seed for m in ens.models] == [m.dropout_seed for m in alone]
    assert all(la.dropout == 0.3 for m in ens.models for la in m.layers[:-1])
    hs = ens.fit(X, y, epochs=3, batch_size=16, lr=0.01, seed=5, num_threads=num_threads,
                 progress=False)
    for m, a, h in zip(ens.models, alone, hs):
        assert_same_history(h, a.fit(X, y, epochs=3, batch_size=16, lr=0.01, seed=5, progress=False))
        assert_same_training(m, a)
        np.testing.assert_array_equal(m.forward(X), a.forward(X))
    # the masks really changed training: without dropout the members end elsewhere
    plain = Ensemble.of(3, (5, 16, 8, 3), activation="tanh", loss="cross_entropy",
                        dtype="float64", seed=20)
    plain.fit(X, y, epochs=3, batch_size=16, lr=0.01, seed=5, progress=False)
    assert not np.allclose(plain.models[0].layers[0].W, ens.models[0].layers[0].W)


def test_dropout_ensemble_round_trips_through_a_file(tmp_path):
    X, y = _data()
    ens = Ensemble.of(2, (5, 8, 3), loss="cross_entropy", dtype="float64", seed=3, dropout=0.2)
    ens.save(tmp_path / "e.fastbp")
    back = fastbp.load(tmp_path / "e.fastbp")
    for m, b in zip(ens.models, back.models):
        assert b.dropout_seed == m.dropout_seed
        assert [la.dropout for la in b.layers] == [la.dropout for la in m.layers]
    ens.fit(X, y, epochs=2, seed=1, progress=False)
    back.fit(X, y, epochs=2, seed=1, progress=False)
    for m, b in zip(ens.models, back.models):
        assert_same_params(m, b)


@pytest.mark.parametrize("bad, exc", [(1.0, ValueError), (-0.1, ValueError),
                                      (float("nan"), ValueError), ("no", TypeError),
                                      (True, TypeError)])
def test_of_refuses_bad_dropout(bad, exc):
    with pytest.raises(exc, match="dropout"):
        Ensemble.of(2, (3, 4, 2), dropout=bad)


def _weights(n, seed=7):
    """Weights with zeros and a wide spread (checked as fit checks them)."""
    w = np.random.default_rng(seed).uniform(0.0, 3.0, n)
    w[::9] = 0.0
    return w


@pytest.mark.parametrize("num_threads", [1, 2])
def test_sample_weight_members_end_where_their_own_weighted_fit_would(num_threads):
    X, y = _data()
    Xv, yv = _data(40, seed=1)
    w = _weights(len(X))
    ens_models, ref_models = _members(), _members()
    hs = Ensemble(ens_models).fit(X, y, epochs=4, batch_size=16, optimizer="adam", lr=LRS,
                                  weight_decay=DECAYS, seed=SEEDS, validation_data=(Xv, yv),
                                  early_stopping=2, sample_weight=w, num_threads=num_threads,
                                  progress=False)
    for i, (m, ref, h) in enumerate(zip(ens_models, ref_models, hs)):
        opt = Adam(ref.parameters(), lr=LRS[i], weight_decay=DECAYS[i])
        expected = ref.fit(X, y, epochs=4, batch_size=16, optimizer=opt, seed=SEEDS[i],
                           validation_data=(Xv, yv), early_stopping=2, sample_weight=w,
                           progress=False)
        assert_same_training(m, ref)
        assert_same_history(h, expected)
    # the weights changed the training: unweighted members end elsewhere
    plain = _members()
    Ensemble(plain).fit(X, y, epochs=4, batch_size=16, lr=LRS, weight_decay=DECAYS,
                        seed=SEEDS, num_threads=num_threads, progress=False)
    assert not np.allclose(plain[0].layers[0].W, ens_models[0].layers[0].W)


def test_sample_weight_with_dropout_members_and_sgd():
    X, y = _data()
    w = _weights(len(X), seed=3)
    ens = Ensemble.of(3, (5, 12, 3), activation="tanh", loss="cross_entropy",
                      dtype="float64", seed=4, dropout=0.25)
    alone = [fastbp.MLP((5, 12, 3), "tanh", "cross_entropy", dtype="float64", seed=4 + i,
                        dropout=0.25) for i in range(3)]
    ens.fit(X, y, epochs=3, batch_size=10, optimizer="sgd", lr=0.05, seed=2, sample_weight=w,
            num_threads=2, progress=False)
    for m, a in zip(ens.models, alone):
        a.fit(X, y, epochs=3, batch_size=10, optimizer="sgd", lr=0.05, seed=2,
              sample_weight=w, progress=False)
        assert_same_training(m, a)


def test_all_ones_sample_weight_is_the_unweighted_fit_bit_for_bit():
    X, y = _data(dtype="float32")
    a, b = _members("float32"), _members("float32")
    Ensemble(a).fit(X, y, epochs=2, seed=1, sample_weight=np.ones(len(X)), progress=False)
    Ensemble(b).fit(X, y, epochs=2, seed=1, progress=False)
    for m, r in zip(a, b):
        assert_same_params(m, r)


@pytest.mark.parametrize("bad, exc, match", [
    (np.ones(5), ValueError, r"sample_weight must have shape \(120,\)"),
    (np.ones((120, 1)), ValueError, r"sample_weight must have shape"),
    (np.r_[np.ones(119), -1.0], ValueError, "sample_weight must be >= 0"),
    (np.r_[np.ones(119), np.nan], ValueError, "sample_weight must be finite"),
    (np.r_[np.ones(119), np.inf], ValueError, "sample_weight must be finite"),
    (np.zeros(120), ValueError, "sample_weight must have a positive sum"),
    (np.array(["1"] * 120), TypeError, "sample_weight must hold real numbers"),
])
def test_bad_sample_weight_changes_nothing(bad, exc, match):
    X, y = _data()
    models = _members()[:3]
    snap = _snapshot(models)
    own = [Adam(m.parameters()) for m in models]
    with pytest.raises(exc, match=match):
        Ensemble(models).fit(X, y, optimizer=own, lr=0.5, sample_weight=bad, progress=False)
    _unchanged(models, snap)
    assert all(o.lr == 1e-3 and o.step_count == 0 for o in own)   # not assigned either


# ---------------------------------------------------------------- predictions

def test_predictions_are_means_over_members():
    X, y = _data()
    ens = Ensemble(_members())
    ens.fit(X, y, epochs=2, seed=0, progress=False)
    raw = ens.predict_all(X)
    assert raw.shape == (5, len(X), 3)
    for m, r in zip(ens.models, raw):
        np.testing.assert_array_equal(r, m.forward(X))
    proba = np.mean([m.predict_proba(X) for m in ens.models], axis=0)
    np.testing.assert_allclose(ens.predict_proba(X), proba, rtol=tol(np.float64, "exact_rtol"))
    np.testing.assert_array_equal(ens.predict(X), proba.argmax(axis=1))
    losses = ens.evaluate(X, y)
    assert losses.shape == (5,)
    np.testing.assert_allclose(losses, [m.loss(X, y) for m in ens.models],
                               rtol=tol(np.float64, "exact_rtol"))


def test_binary_and_regression_predictions():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 4))
    ens = Ensemble.of(4, (4, 3, 1), loss="binary_cross_entropy", dtype="float64", seed=0)
    proba = np.mean([m.predict_proba(X) for m in ens.models], axis=0)
    np.testing.assert_allclose(ens.predict_proba(X), proba, rtol=tol(np.float64, "exact_rtol"))
    np.testing.assert_array_equal(ens.predict(X), (proba[:, 0] > 0.5).astype(np.intp))
    reg = Ensemble.of(3, (4, 3, 2), loss="mse", dtype="float64", seed=0)
    np.testing.assert_allclose(reg.predict(X), np.mean([m.forward(X) for m in reg.models], 0),
                               rtol=tol(np.float64, "exact_rtol"))
    with pytest.raises(ValueError, match="predict_proba needs a cross-entropy loss"):
        reg.predict_proba(X)


# ---------------------------------------------------------------- files

def test_save_and_load_a_whole_ensemble(tmp_path):
    X, y = _data()
    ens = Ensemble(_members())
    ens.fit(X, y, epochs=1, seed=0, progress=False)
    path = tmp_path / "ens.fastbp"
    ens.save(path)
    back = fastbp.load(path)
    assert isinstance(back, Ensemble) and len(back) == 5
    for m, b in zip(ens.models, back.models):
        assert [la.activation for la in m.layers] == [la.activation for la in b.layers]
        assert_same_params(m, b)
    np.testing.assert_array_equal(back.predict_proba(X), ens.predict_proba(X))
    assert isinstance(fastbp.io.load_ensemble(path), Ensemble)
    back2, opt = fastbp.load(path, with_optimizer=True)
    assert isinstance(back2, Ensemble) and opt is None
    # a single-model file still loads as a model (and is not an ensemble)
    ens.models[0].save(tmp_path / "one.fastbp")
    assert isinstance(fastbp.load(tmp_path / "one.fastbp"), Sequential)
    with pytest.raises(ValueError, match="single model"):
        fastbp.io.load_ensemble(tmp_path / "one.fastbp")


def test_damaged_ensemble_file_is_rejected(tmp_path):
    ens = Ensemble.of(2, (3, 4, 2), dtype="float64")
    path = tmp_path / "ens.fastbp"
    ens.save(path)
    with zipfile.ZipFile(path) as zf:
        items = {n: zf.read(n) for n in zf.namelist()}
    name = "members/1/layers/0/W.npy"
    assert name in items
    raw = bytearray(items[name])
    raw[-1] ^= 1
    items[name] = bytes(raw)
    bad = tmp_path / "bad.fastbp"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, b in items.items():
            zf.writestr(n, b)
    with pytest.raises(ValueError, match="checksum mismatch"):
        fastbp.load(bad)


# ---------------------------------------------------------------- bad input

def _snapshot(models):
    return [param_copies(m) for m in models]


def _unchanged(models, snap):
    for m, s in zip(models, snap):
        assert_same_params(m, s)


def test_bad_members():
    a = fastbp.MLP((3, 2), dtype="float32")
    with pytest.raises(TypeError, match="dtype"):
        Ensemble([a, fastbp.MLP((3, 2), dtype="float64")])
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble([])
    with pytest.raises(ValueError, match=r"models\[1\] is the same object as models\[0\]"):
        Ensemble([a, a])
    with pytest.raises(TypeError, match=r"models\[1\] must be a fastbp"):
        Ensemble([a, "model"])
    with pytest.raises(TypeError, match="models must be a sequence"):
        Ensemble(a)
    with pytest.raises(ValueError, match="one loss"):
        Ensemble([a, fastbp.MLP((3, 2), loss="mae")])
    with pytest.raises(ValueError, match="in_features and out_features"):
        Ensemble([a, fastbp.MLP((3, 4))])
    b = fastbp.MLP((3, 2))
    b.layers = [a.layers[0]]  # b now shares a's layer (and its arrays)
    with pytest.raises(ValueError, match="shares parameter memory"):
        Ensemble([a, b])
    with pytest.raises(ValueError, match="n_models"):
        Ensemble.of(0, (3, 2))


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(lr=[0.1, 0.2]), ValueError, "lr must be a scalar or hold one value per member"),
    (dict(weight_decay=[0.1] * 4), ValueError, "weight_decay must be"),
    (dict(seed=[1, 2]), ValueError, "seed must be"),
    (dict(seed=[1, 2, "x"]), TypeError, r"seed\[2\]"),
    (dict(seed=True), TypeError, "seed"),
    (dict(lr=[0.1, -1.0, 0.1]), ValueError, r"lr\[1\]"),
    (dict(client="localhost:8786"), TypeError, "client must be a dask.distributed.Client"),
    (dict(optimizer="adamm"), ValueError, "optimizer must be one of"),
    (dict(num_threads=0), ValueError, "num_threads"),
    (dict(epochs=0), ValueError, "epochs"),
    (dict(shuffle="no"), TypeError, "shuffle"),
    (dict(early_stopping=0), ValueError, "early_stopping"),
    (dict(validation_data=np.zeros((3, 5))), TypeError, "validation_data"),
])
def test_bad_fit_arguments_change_nothing(kwargs, exc, match):
    X, y = _data()
    models = _members()[:3]
    snap = _snapshot(models)
    with pytest.raises(exc, match=match):
        Ensemble(models).fit(X, y, progress=False, **kwargs)
    _unchanged(models, snap)


def test_bad_optimizer_instances_change_nothing():
    X, y = _data()
    models = _members()[:2]
    snap = _snapshot(models)
    ens = Ensemble(models)
    own = [Adam(m.parameters()) for m in models]
    with pytest.raises(TypeError, match="one fastbp optimizer instance per member"):
        ens.fit(X, y, optimizer=own[0])
    with pytest.raises(ValueError, match="one instance per member"):
        ens.fit(X, y, optimizer=own[:1])
    with pytest.raises(ValueError, match=r"optimizer\[1\] must be built over models\[1\]"):
        ens.fit(X, y, optimizer=[own[0], own[0]] if False else [own[0], Adam(models[0].parameters())])
    with pytest.raises(TypeError, match=r"optimizer\[0\] must be a fastbp optimizer"):
        ens.fit(X, y, optimizer=["adam", own[1]])
    with pytest.raises(ValueError, match=r"lr\[0\]"):
        ens.fit(X, y, optimizer=own, lr=[-1.0, 0.1])
    assert own[0].lr == 1e-3 and own[0].step_count == 0  # not assigned by a failing call
    _unchanged(models, snap)
