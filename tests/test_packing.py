"""Lock-step epochs (fastbp/_packing.py, fastbp/_kernels/_packed.pxi): members of an
Ensemble that share an architecture and a batch order step in one compiled call, and
each ends where its own fit ends, up to the rounding of the two wide products."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import _packing
from fastbp._kernels import network

from conftest import DTYPES, assert_close


def _data(dtype, loss, n=203, n_in=20, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in)).astype(dtype)
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, n)
    elif loss == "binary_cross_entropy":
        y = (rng.random((n, n_out)) < 0.4).astype(dtype)
    else:
        y = rng.normal(size=(n, n_out)).astype(dtype)
    return X, y


def _assert_members_equal(packed, own, dtype):
    for i, (a, b) in enumerate(zip(packed, own)):
        for p, q in zip(a.parameters(), b.parameters()):
            assert_close(p, q, dtype, rtol=1e-12 if dtype == np.float64 else 2e-5,
                         err_msg=f"member {i}")


CASES = [
    # (sizes, activation, loss, optimizer, per-member lr)
    ((20, 12, 3), "relu", "cross_entropy", "adam", [1e-3, 3e-3, 1e-2]),
    ((20, 16, 8, 2), "tanh", "mse", "sgd", [0.05, 0.01, 0.02]),
    ((20, 9, 3), "sigmoid", "binary_cross_entropy", "rmsprop", [1e-3, 2e-3, 5e-4]),
    ((20, 10, 3), "gelu", "cross_entropy", "adamw", [1e-3, 1e-3, 1e-3]),
    ((20, 7, 3), "elu", "mse", "adagrad", [0.05, 0.1, 0.02]),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("sizes, activation, loss, optimizer, lrs", CASES)
def test_packed_members_end_where_their_own_fits_end(packs, dtype, sizes, activation, loss,
                                                     optimizer, lrs):
    """Three epochs in batches of 32 (a partial last batch), one shared order, each
    member its own lr: the packed Ensemble's members equal their own fits, histories
    (training and validation losses) included."""
    X, y = _data(dtype, loss, n_out=sizes[-1])
    Xv, yv = _data(dtype, loss, n=50, n_out=sizes[-1], seed=1)
    packed = [fastbp.MLP(sizes, activation, loss, dtype=dtype, seed=i) for i in range(3)]
    own = [fastbp.MLP(sizes, activation, loss, dtype=dtype, seed=i) for i in range(3)]
    hist = fastbp.Ensemble(packed).fit(X, y, epochs=3, batch_size=32, optimizer=optimizer,
                                       lr=lrs, seed=5, validation_data=(Xv, yv),
                                       num_threads=1, progress=False)
    assert packs == [3, 3, 3]
    for m, lr in zip(own, lrs):
        h = m.fit(X, y, epochs=3, batch_size=32, optimizer=optimizer, lr=lr, seed=5,
                  validation_data=(Xv, yv), progress=False)
        assert len(h.loss) == 3
    _assert_members_equal(packed, own, dtype)
    for h, m in zip(hist, own):
        rtol = 1e-12 if dtype == np.float64 else 2e-5
        np.testing.assert_allclose(h.loss, m.training_state.history.loss, rtol=rtol)
        np.testing.assert_allclose(h.val_loss, m.training_state.history.val_loss, rtol=rtol)


def test_packs_are_split_over_threads_with_the_same_results(packs):
    """Two threads: the group becomes two packs (one per thread), ending as one pack."""
    X, y = _data(np.float64, "cross_entropy")
    one = [fastbp.MLP((20, 12, 3), "relu", "cross_entropy", dtype="float64", seed=i)
           for i in range(5)]
    two = [fastbp.MLP((20, 12, 3), "relu", "cross_entropy", dtype="float64", seed=i)
           for i in range(5)]
    fastbp.Ensemble(one).fit(X, y, epochs=2, seed=3, num_threads=1, progress=False)
    assert packs == [5, 5]
    packs.clear()
    fastbp.Ensemble(two).fit(X, y, epochs=2, seed=3, num_threads=2, progress=False)
    assert sorted(packs) == [2, 2, 3, 3]
    _assert_members_equal(two, one, np.float64)


def test_members_with_own_orders_or_other_shapes_step_alone(packs):
    """Different seeds (orders), a narrow or a wide first layer, dropout, another width: no pack
    among them; a pack forms only from the members that share everything."""
    X, y = _data(np.float32, "cross_entropy")
    fastbp.Ensemble([fastbp.MLP((20, 8, 3), loss="cross_entropy", seed=i) for i in range(3)]
                    ).fit(X, y, epochs=1, seed=[0, 1, 2], num_threads=1, progress=False)
    assert packs == []
    X4 = X[:, :4].copy()
    fastbp.Ensemble([fastbp.MLP((4, 8, 3), loss="cross_entropy", seed=i) for i in range(3)]
                    ).fit(X4, y, epochs=1, seed=0, num_threads=1, progress=False)
    assert packs == []   # below PACK_MIN_IN inputs
    wide = _packing.PACK_MAX_OUT + 1
    fastbp.Ensemble([fastbp.MLP((20, wide, 3), loss="cross_entropy", seed=i) for i in range(3)]
                    ).fit(X, y, epochs=1, seed=0, num_threads=1, progress=False)
    assert packs == []   # above PACK_MAX_OUT outputs
    mixed = [fastbp.MLP((20, 8, 3), loss="cross_entropy", seed=0),
             fastbp.MLP((20, 8, 3), loss="cross_entropy", seed=1, dropout=0.1),
             fastbp.MLP((20, 9, 3), loss="cross_entropy", seed=2),
             fastbp.MLP((20, 8, 3), loss="cross_entropy", seed=3)]
    fastbp.Ensemble(mixed).fit(X, y, epochs=1, seed=0, num_threads=1, progress=False)
    assert packs == [2]
    assert _packing.PACK_MIN_IN > 4


def test_a_diverging_member_stops_and_the_others_match_their_own_fits(packs):
    """One member's lr makes its loss non-finite: it is restored to its epoch's start and
    marked diverged (as an Ensemble member alone would be); the others go on."""
    X, y = _data(np.float64, "mse", n_out=2)
    X[0, 0] = 1e3
    sizes = (20, 16, 2)
    lrs = [1e-3, 1e200, 2e-3]
    packed = [fastbp.MLP(sizes, "relu", dtype="float64", seed=i) for i in range(3)]
    alone = [fastbp.MLP(sizes, "relu", dtype="float64", seed=i) for i in range(3)]
    with np.errstate(all="ignore"), pytest.raises(fastbp.TrainingDiverged,
                                                  match="1 of 3 members diverged .member 1"):
        fastbp.Ensemble(packed).fit(X, y, epochs=2, optimizer="sgd", lr=lrs, seed=0,
                                    num_threads=1, progress=False)
    assert packs and packs[0] == 3
    for i, (m, lr) in enumerate(zip(alone, lrs)):
        with np.errstate(all="ignore"):
            if i == 1:
                with pytest.raises(fastbp.TrainingDiverged):
                    m.fit(X, y, epochs=2, optimizer="sgd", lr=lr, seed=0, progress=False)
            else:
                m.fit(X, y, epochs=2, optimizer="sgd", lr=lr, seed=0, progress=False)
    assert len(packed[1].training_state.history.loss) == 0
    assert len(packed[0].training_state.history.loss) == 2
    _assert_members_equal(packed, alone, np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_members_with_their_own_l2_penalties_pack_and_end_as_their_fits(packs, dtype):
    """Each member's L2 penalty (Objective(l2=), scikit-learn's alpha) is its own in the
    pack: dW += c·W on its block, Σw² in its loss; each ends where its own fit ends
    (the loss histories to rounding: Σw² of the first layer sums the transposed block)."""
    X, y = _data(dtype, "cross_entropy")
    l2s = [0.0, 0.05, 0.5]
    # one seed: the same initial weights, so that the penalties' effect shows below
    packed = [fastbp.MLP((20, 12, 3), loss="cross_entropy", dtype=dtype, seed=0) for _ in l2s]
    own = [fastbp.MLP((20, 12, 3), loss="cross_entropy", dtype=dtype, seed=0) for _ in l2s]
    for i, m in enumerate(packed + own):
        m.objective = fastbp.Objective(l2=l2s[i % 3])
    fastbp.Ensemble(packed).fit(X, y, epochs=3, seed=0, num_threads=1, progress=False,
                                optimizer="adam", lr=1e-2)
    assert packs == [3, 3, 3]
    for m in own:
        m.fit(X, y, epochs=3, seed=0, progress=False, optimizer="adam", lr=1e-2)
    _assert_members_equal(packed, own, dtype)
    for a, b in zip(packed, own):
        np.testing.assert_allclose(a.training_state.history.loss, b.training_state.history.loss,
                                   rtol=1e-13 if dtype == np.float64 else 1e-6)
    # the penalty did act: the penalised members' weights are smaller than the free one's
    norms = [float(np.sum(m.parameters()[0].astype(np.float64) ** 2)) for m in packed]
    assert norms[2] < norms[1] < norms[0]


def test_plan_keeps_lone_runs_and_splits_groups():
    """plan: a group of 5 over 2 workers is two packs; a group of one runs alone."""
    X, y = _data(np.float64, "mse")
    data_models = [fastbp.MLP((20, 8, 3), dtype="float64", seed=i) for i in range(6)]
    from fastbp.training import TrainingData, _orders
    from fastbp.training import _new_run
    runs = [_new_run(m, batch_size=32, optimizer="sgd", lr=0.01, shuffle=True,
                     early_stopping=None, seed=0, scheduler=None) for m in data_models[:5]]
    runs.append(_new_run(data_models[5], batch_size=16, optimizer="sgd", lr=0.01,
                         shuffle=True, early_stopping=None, seed=0, scheduler=None))
    data = TrainingData(data_models[0], X, y)
    work = _packing.plan(_orders(runs, data.n), data, 2)
    assert len(work) == 3   # two packs (3 + 2) and the run with another batch size


def test_pack_false_steps_every_member_alone_bit_for_bit(packs):
    """pack=False: no lock-step call, and float32 members equal their own fits exactly;
    a flag given as a string is refused before anything changes."""
    X, y = _data(np.float32, "cross_entropy")
    ms = [fastbp.MLP((20, 12, 3), loss="cross_entropy", seed=i) for i in range(3)]
    own = [fastbp.MLP((20, 12, 3), loss="cross_entropy", seed=i) for i in range(3)]
    with pytest.raises(TypeError, match="pack"):
        fastbp.Ensemble(ms).fit(X, y, epochs=1, seed=0, pack="no", progress=False)
    assert all(m.training_state is None for m in ms)
    fastbp.Ensemble(ms).fit(X, y, epochs=2, seed=0, pack=False, num_threads=1,
                            progress=False)
    assert packs == []
    for m in own:
        m.fit(X, y, epochs=2, seed=0, progress=False)
    for a, b in zip(ms, own):
        for p, q in zip(a.parameters(), b.parameters()):
            assert p.tobytes() == q.tobytes()


def test_packed_epoch_refuses_what_it_cannot_step():
    """The compiled entry point checks its arguments (the planner never sends these)."""
    ms = [fastbp.MLP((20, 8, 3), loss="cross_entropy", dtype="float64", seed=i)
          for i in range(2)]
    engines = []
    for m in ms:
        e = m._compiled()
        m._bind(e, fastbp.Adam(m.parameters()))
        engines.append(e)
    X, y = _data(np.float64, "cross_entropy")
    labels = y.astype(np.intp)
    order = np.arange(len(X), dtype=np.intp)
    with pytest.raises(ValueError, match="distinct"):
        network.packed_epoch([engines[0], engines[0]], X, None, labels, order, 32)
    with pytest.raises(ValueError, match="X must be"):
        network.packed_epoch(engines, X.astype(np.float32), None, labels, order, 32)
    with pytest.raises(ValueError, match="batch"):
        network.packed_epoch(engines, X, None, labels, order, 0)
    bad = order.copy()
    bad[5] = len(X)   # out of range: the epoch stops there, nothing read out of bounds
    results = network.packed_epoch(engines, X, None, labels, bad, 32)
    assert [r[0] for r in results] == [network.EPOCH_BAD_INDEX] * 2
    assert network.can_pack(engines[:1]) is False
