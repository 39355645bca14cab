"""TabM's members each on their own batch order (share_training_batches=False): the
engine's per-head targets (Objective(heads=k) with targets of the output's full width),
the member-stacked twin of a TabM network, and against tabm 0.0.3's TabM fed k
different batches in PyTorch (forward, loss, gradients, AdamW steps)."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import LinearBatchEnsemble, LinearEnsemble, Objective, Sequential
from fastbp.tabular._member_rows import MemberRowsTrainer, member_twin

from layer_checks import check_step_equals_own_passes

K = 4
D = 5


def _tabm_like(loss, n_out, shared=True, dtype="float64", dropout=0.0, seed=1):
    model = Sequential([
        LinearBatchEnsemble(D, 8, K, "relu", shared_input=shared,
                            scaling_init=("random-signs", "ones"), dtype=dtype, seed=seed),
        LinearBatchEnsemble(8, 8, K, "relu", dtype=dtype, seed=seed + 1, dropout=dropout),
        LinearEnsemble(8, n_out, K, dtype=dtype, seed=seed + 2)], loss=loss, dropout_seed=7)
    model.objective = Objective(heads=K)
    return model


def _per_head_targets(loss, n_out, n, rng):
    """(n, K·n_out) targets, a different one per head: one-hot or soft class
    probabilities, 0/1 values, or values."""
    if loss == "cross_entropy":
        p = rng.random((n, K, n_out)) ** 4
        return (p / p.sum(axis=2, keepdims=True)).reshape(n, -1)
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, (n, K * n_out)).astype(float)
    return rng.standard_normal((n, K * n_out))


CASES = [("cross_entropy", 3), ("mse", 2), ("binary_cross_entropy", 1)]


@pytest.mark.parametrize("loss,n_out", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_per_head_targets_step_equals_the_layers_own_passes(loss, n_out, weighted):
    """The compiled step on member-stacked rows with per-head targets equals the layers'
    own passes and loss_and_grad (each head against its own block), to 1e-12."""
    model = _tabm_like(loss, n_out, shared=False)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, K * D))
    T = _per_head_targets(loss, n_out, 30, rng)
    sw = rng.uniform(0.5, 2.0, 30) if weighted else None
    h = check_step_equals_own_passes(model, X, T, sw)[1]
    value = model.backward(X, T, sample_weight=sw)
    # the mean over the heads of each head's loss against its own targets (a model
    # whose output is that head's block alone)
    out = h.reshape(30, K, n_out)
    Th = T.reshape(30, K, n_out)
    single = Sequential([fastbp.Dense(n_out, n_out, dtype="float64")], loss=loss)
    per_head = [single.loss_and_grad(np.ascontiguousarray(out[:, m]),
                                     single.check_y(np.ascontiguousarray(Th[:, m]), 30),
                                     single.check_sample_weight(sw, 30))[0]
                for m in range(K)]
    assert value == pytest.approx(np.mean(per_head), rel=1e-12)


@pytest.mark.parametrize("loss,n_out", CASES)
def test_per_head_targets_that_repeat_the_row_equal_the_row_targets(loss, n_out):
    """Targets tiled over the heads give the step (loss, gradients) and a fitted epoch
    that the row's own targets give."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, D))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, 40)
        T = np.tile(np.eye(n_out)[y], K)
    else:
        y = _per_head_targets(loss, n_out, 40, rng)[:, :n_out]
        T = np.tile(y, K)
    a, b = _tabm_like(loss, n_out, dropout=0.2), _tabm_like(loss, n_out, dropout=0.2)
    assert a.backward(X, y) == pytest.approx(b.backward(X, T), rel=1e-12)
    for ga, gb in zip(a.gradients(), b.gradients()):
        np.testing.assert_allclose(ga, gb, rtol=1e-12, atol=1e-14)
    ha = a.fit(X, y, epochs=2, batch_size=16, seed=3, progress=False)
    hb = b.fit(X, T, epochs=2, batch_size=16, seed=3, progress=False)
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-12)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa, pb, rtol=1e-12, atol=1e-14)


def test_targets_of_a_wrong_width_are_refused_by_name():
    model = _tabm_like("mse", 2)
    X = np.zeros((6, D))
    with pytest.raises(ValueError, match="y must have shape"):
        model.fit(X, np.zeros((6, 3)), epochs=1, progress=False)
    with pytest.raises(ValueError, match="y must have shape"):
        model.backward(X, np.zeros((6, 2 * K + 1)))
    plain = Sequential([fastbp.Dense(D, 2, dtype="float64")], loss="mse")
    with pytest.raises(ValueError, match="y must have shape"):
        plain.backward(X, np.zeros((6, 4)))


@pytest.mark.parametrize("piecewise", [False, True])
def test_the_twin_reading_k_copies_of_a_row_predicts_as_the_model(piecewise):
    """member_twin: the same parameters; fed each row k times side by side, its raw
    output is the model's (the first BatchEnsemble reads member-stacked inputs, a
    piecewise-linear encoding's bins repeat per member)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((25, D))
    layers = []
    d = D
    if piecewise:
        bins = [np.sort(rng.standard_normal(6)) for _ in range(D)]
        layers.append(fastbp.PiecewiseLinearEncoding(bins, dtype="float64"))
        d = layers[0].out_features
    layers += [LinearBatchEnsemble(d, 8, K, "relu", shared_input=True,
                                   scaling_init=("normal", "ones"), dtype="float64", seed=4),
               LinearEnsemble(8, 3, K, dtype="float64", seed=5)]
    model = Sequential(layers, "cross_entropy")
    model.objective = Objective(heads=K)
    twin = member_twin(model, dropout_seed=1)
    assert twin.in_features == K * D and twin.objective == model.objective
    for a, b in zip(twin.parameters(), model.parameters()):
        np.testing.assert_array_equal(a, b)
        assert not np.shares_memory(a, b)
    np.testing.assert_allclose(twin.forward(np.tile(X, K)), model.forward(X), rtol=1e-13)


@pytest.mark.parametrize("n_classes", [3, None])
def test_each_epoch_gives_every_member_a_permutation_of_the_rows(n_classes):
    """epoch_rows: member m's block of the stacked rows is a permutation of X's rows,
    its targets those rows' (one-hot for labels), and the orders differ between the
    members and between epochs."""
    model = _tabm_like("cross_entropy" if n_classes else "mse", n_classes or 1)
    trainer = MemberRowsTrainer(model, n_classes, 0.0, seed=0)
    n = 50
    X = np.arange(n * D, dtype=np.float64).reshape(n, D)
    y = np.arange(n) % 3 if n_classes else np.arange(n, dtype=np.float64)
    Xe, Te = trainer.epoch_rows(X, y)
    assert Xe.shape == (n, K * D) and Xe.flags.c_contiguous
    rows = Xe.reshape(n, K, D)[:, :, 0] // D   # each member's row index
    for m in range(K):
        assert sorted(rows[:, m].astype(int)) == list(range(n))
        np.testing.assert_array_equal(X[rows[:, m].astype(int)], Xe[:, m * D:(m + 1) * D])
        want = y[rows[:, m].astype(int)]
        if n_classes:
            np.testing.assert_array_equal(Te.reshape(n, K, 3)[:, m], np.eye(3)[want])
        else:
            np.testing.assert_array_equal(Te[:, m], want)
    assert len({tuple(rows[:, m]) for m in range(K)}) == K
    Xe2, _ = trainer.epoch_rows(X, y)
    assert not np.array_equal(Xe, Xe2)


def test_epochs_in_separate_fits_continue_the_optimizer_and_the_dropout_masks():
    """The trainer fits one epoch at a time with one AdamW instance: two fits of one
    epoch equal one fit of two epochs on the same rows (the optimizer's state and the
    dropout masks continue)."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((48, K * D))
    T = _per_head_targets("cross_entropy", 3, 48, rng)
    a = _tabm_like("cross_entropy", 3, shared=False, dropout=0.3)
    b = _tabm_like("cross_entropy", 3, shared=False, dropout=0.3)
    opt_a = fastbp.AdamW(a.parameters(), lr=1e-2)
    for _ in range(2):
        a.fit(X, T, epochs=1, batch_size=16, optimizer=opt_a, shuffle=False, progress=False)
    opt_b = fastbp.AdamW(b.parameters(), lr=1e-2)
    b.fit(X, T, epochs=2, batch_size=16, optimizer=opt_b, shuffle=False, progress=False)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa, pb, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- against tabm's TabM

torch = pytest.importorskip("torch")
tabm = pytest.importorskip("tabm")


@pytest.mark.parametrize("loss,n_out", [("cross_entropy", 3), ("mse", 1)])
def test_equals_tabm_fed_a_batch_per_member(loss, n_out):
    """tabm 0.0.3's TabM given x of shape (n, k, d) (each member its own rows) and the
    loss on each member's own targets (tabm's and pytabkit's share_training_batches=
    False): forward, loss, every gradient and five AdamW steps equal the twin's on the
    member-stacked rows and per-head targets, to 1e-10 in float64."""
    from test_ensemble_layers import _torch_tabm, check_steps_equal_torch
    model = _tabm_like(loss, n_out)
    twin = member_twin(model, dropout_seed=1)
    rng = np.random.default_rng(5)
    n = 24
    X = rng.standard_normal((n, D))
    y = rng.integers(0, n_out, n) if loss == "cross_entropy" else rng.standard_normal(n)
    order = np.argsort(rng.random((K, n)), axis=1).T            # (n, k)
    Xe = np.ascontiguousarray(X[order].reshape(n, K * D))
    Te = np.eye(n_out)[y[order]].reshape(n, -1) if loss == "cross_entropy" \
        else np.ascontiguousarray(y[order])
    net = _torch_tabm(model, D, n_out)
    xt = torch.from_numpy(X[order])                               # (n, k, d)
    yt = torch.from_numpy(y[order].reshape(-1))                   # (n·k,), head-major rows

    def torch_loss():
        flat = net(xt).flatten(0, 1)
        if loss == "cross_entropy":
            return torch.nn.functional.cross_entropy(flat, yt)
        return torch.nn.functional.mse_loss(flat[:, 0], yt)

    check_steps_equal_torch(twin, Xe, Te, net, xt, torch_loss)
