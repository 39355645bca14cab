"""Sweeps that stop the losers: SuccessiveHalving and Hyperband in Ensemble.fit.

Each pruned member must end exactly where its own fit of ``pruned_at`` epochs ends,
each survivor where its own full fit ends, and the members pruned at a rung must be the
worst by validation loss among those still training then (computed here from the
members' own fits, not from the ensemble's records)."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp.pruning import Hyperband, SuccessiveHalving, survivors

LRS = [3e-1, 1e-4, 3e-2, 1e-3, 1e-1, 3e-4, 1e-2, 3e-3]


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 > 0.4).astype(np.intp)
    return X[:200], y[:200], X[200:], y[200:]


def _members(n):
    return fastbp.Ensemble.of(n, (5, 8, 2), activation="tanh", loss="cross_entropy",
                              dtype="float64", seed=3)


def _alone(i, epochs, X, y, val):
    model = _members(len(LRS))[i]
    history = model.fit(X, y, epochs=epochs, batch_size=32, lr=LRS[i], seed=5,
                        validation_data=val, progress=False)
    return model, history


def test_successive_halving_prunes_the_worst_and_each_member_ends_as_its_own_fit():
    X, y, Xv, yv = _data()
    ens = _members(len(LRS))
    histories = ens.fit(X, y, epochs=6, batch_size=32, lr=LRS, seed=5, validation_data=(Xv, yv),
                        prune=SuccessiveHalving(eta=2, min_epochs=1), progress=False)
    pruned = [h.pruned_at for h in histories]
    # rungs after 1, 2 and 4 epochs: 8 -> 4 -> 2 -> 1 members
    assert sorted(pruned, key=lambda p: (p is None, p)) == [1, 1, 1, 1, 2, 2, 4, None]
    alone = [_alone(i, p or 6, X, y, (Xv, yv)) for i, p in enumerate(pruned)]
    for member, (model, history), h in zip(ens, alone, histories):
        for got, want in zip(member.parameters(), model.parameters()):
            np.testing.assert_array_equal(got, want)
        assert h.val_loss == history.val_loss and h.loss == history.loss
    # who was pruned at each rung: the worst by their own fits' validation losses
    for rung in (1, 2, 4):
        still = [i for i, p in enumerate(pruned) if p is None or p >= rung]
        at = {i: alone[i][1].val_loss[rung - 1] for i in still}
        keep = sorted(still, key=lambda i: (at[i], i))[:-(-len(still) // 2)]
        assert {i for i in still if pruned[i] == rung} == set(still) - set(keep)


def test_hyperband_brackets_are_li_et_als():
    hb = Hyperband(eta=3, min_epochs=1)
    # Li et al. (2018), Table 1 (R = 81, eta = 3): n_i and r_i of each bracket
    assert hb.bracket_sizes(81) == [(81, 1), (34, 3), (15, 9), (8, 27), (5, 81)]
    brackets = hb.brackets(143, 81)
    assert [len(b.members) for b in brackets] == [81, 34, 15, 8, 5]
    assert [b.rungs for b in brackets] == [(1, 3, 9, 27), (3, 9, 27), (9, 27), (27,), ()]
    # any member count: shared out in proportion, every member in exactly one bracket
    for n in (1, 4, 10, 50):
        members = [m for b in hb.brackets(n, 81) for m in b.members]
        assert members == list(range(n))
    # R = 8 / 2 = 4, eta = 2: s_max = 2, n_s = ceil(3 · 2^s / (s + 1)) = 4, 3, 3
    assert Hyperband(eta=2, min_epochs=2, max_epochs=8).bracket_sizes(8) == [(4, 2), (3, 4),
                                                                           (3, 8)]


def test_hyperband_in_ensemble_fit_ranks_within_each_bracket():
    X, y, Xv, yv = _data(1)
    ens = _members(len(LRS))
    hb = Hyperband(eta=2, min_epochs=1, max_epochs=4)
    histories = ens.fit(X, y, epochs=4, batch_size=32, lr=LRS, seed=5, validation_data=(Xv, yv),
                        prune=hb, progress=False)
    for bracket in hb.brackets(len(LRS), 4):
        alive = list(bracket.members)
        for rung in bracket.rungs:
            scores = [histories[i].val_loss[rung - 1] for i in alive]
            kept = [alive[j] for j in survivors(scores, 2)]
            assert all(histories[i].pruned_at == rung for i in alive if i not in kept)
            alive = kept
        assert all(histories[i].pruned_at is None and histories[i].epochs == 4 for i in alive)


def test_survivors_rank_by_score_then_position_and_nan_last():
    assert survivors([0.5, 0.1, 0.1, 0.9], 2) == [1, 2]
    assert survivors([0.3, float("nan"), 0.2], 3) == [2]
    assert survivors([float("nan"), 0.4, 0.1], 2) == [1, 2]


@pytest.mark.parametrize("make", [lambda: SuccessiveHalving(eta=1),
                                  lambda: SuccessiveHalving(min_epochs=0),
                                  lambda: Hyperband(min_epochs=3, max_epochs=2)])
def test_bad_pruner_parameters_are_value_errors(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("make", [lambda: SuccessiveHalving(eta="3"),
                                  lambda: SuccessiveHalving(eta=True),
                                  lambda: Hyperband(max_epochs=2.0)])
def test_pruner_parameters_of_the_wrong_type_are_type_errors(make):
    with pytest.raises(TypeError):
        make()


def test_pruned_fit_refuses_what_it_cannot_rank_and_changes_nothing():
    X, y, Xv, yv = _data()
    ens = _members(3)
    before = [p.copy() for m in ens for p in m.parameters()]
    with pytest.raises(ValueError, match="validation_data"):
        ens.fit(X, y, epochs=2, prune=SuccessiveHalving(), progress=False)
    with pytest.raises(TypeError, match="prune"):
        ens.fit(X, y, epochs=2, prune="halving", validation_data=(Xv, yv), progress=False)
    with pytest.raises(ValueError, match="max_epochs"):
        ens.fit(X, y, epochs=2, prune=Hyperband(max_epochs=5), validation_data=(Xv, yv),
                progress=False)
    for got, want in zip([p for m in ens for p in m.parameters()], before):
        np.testing.assert_array_equal(got, want)
    # a second call after the failed ones trains
    histories = ens.fit(X, y, epochs=2, prune=SuccessiveHalving(eta=3), seed=0,
                        validation_data=(Xv, yv), progress=False)
    assert sorted(h.pruned_at or 0 for h in histories) == [0, 1, 1]
