"""Parameter groups (per-group learning rate and weight decay) and fastbp.no_decay_groups:
against torch.optim with the same groups over 25 steps, the compiled engine against
the optimizer's own step, fit(param_groups=...) with a schedule, files, resume and
pickling; bad groups."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastbp
from fastbp import Dense, LayerNorm, Residual, Sequential, no_decay_groups

from layer_checks import check_cross_entropy_steps_equal_torch


def _model(seed=0):
    return Sequential([Dense(6, 16, "relu", dtype="float64", seed=seed + 1),
                       Residual([LayerNorm(16, dtype="float64"),
                                 Dense(16, 16, "relu", dtype="float64", seed=seed + 2)]),
                       Dense(16, 3, dtype="float64", seed=seed + 3)], "cross_entropy")


def _data(n=128):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6)), rng.integers(0, 3, n)


def test_no_decay_groups_are_dense_weights_and_the_rest():
    model = _model()
    decay, rest = no_decay_groups(model, 0.05)
    W = [model.layers[0].W, model.layers[1].layers[1].W, model.layers[2].W]
    assert [p is q for p, q in zip(decay["params"], W)] == [True] * 3
    assert decay["weight_decay"] == 0.05 and rest["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"] + rest["params"]} == \
        {id(p) for p in model.parameters()}
    assert len(rest["params"]) == 5   # three biases, gamma, beta
    only_w = Sequential([Dense(3, 2, bias=False)], "mse")
    assert len(no_decay_groups(only_w, 0.1)) == 1   # no empty group


@pytest.mark.parametrize("kind", ["adamw", "adam", "sgd"])
def test_25_steps_equal_torch_with_the_same_groups(kind):
    torch = pytest.importorskip("torch")
    X, y = _data()
    model = _model()
    groups = no_decay_groups(model, 0.1)
    groups = [groups[1], dict(groups[0], lr=3e-3)]   # the no-decay group first; own lr
    make = {"adamw": (fastbp.AdamW, torch.optim.AdamW, {}),
            "adam": (fastbp.Adam, torch.optim.Adam, {}),
            "sgd": (fastbp.SGD, torch.optim.SGD, {"momentum": 0.9})}[kind]
    opt = make[0](groups, lr=1e-2, **make[2])
    theirs = {id(p): torch.tensor(p, requires_grad=True) for p in model.parameters()}
    topt = make[1]([{"params": [theirs[id(p)] for p in g["params"]],
                     **{k: v for k, v in g.items() if k != "params"}} for g in groups],
                   lr=1e-2, **make[2])
    tp = [theirs[id(p)] for p in model.parameters()]

    def net(x):
        h = torch.relu(x @ tp[0] + tp[1])
        z = torch.nn.functional.layer_norm(h, (16,), tp[2], tp[3])
        h = h + torch.relu(z @ tp[4] + tp[5])
        return h @ tp[6] + tp[7]
    check_cross_entropy_steps_equal_torch(model, opt, net, topt, X, y, tp, batch=32)
    assert [g["lr"] for g in opt.param_groups] == [1e-2, pytest.approx(3e-3, rel=1e-15)]


def test_the_engine_equals_the_optimizers_own_step():
    """train_step (compiled, groups mapped to the model's order) and backward + opt.step
    (the optimizer's order: group order) give the same bits."""
    X, y = _data()
    a, b = _model(), _model()
    ga = no_decay_groups(a, 0.1)[::-1]
    gb = no_decay_groups(b, 0.1)[::-1]
    opt_a = fastbp.AdamW([dict(ga[0], lr=2e-3), ga[1]], lr=1e-2)
    opt_b = fastbp.AdamW([dict(gb[0], lr=2e-3), gb[1]], lr=1e-2)
    where = {id(p): i for i, p in enumerate(b.parameters())}
    for _ in range(5):
        a.train_step(X[:32], y[:32], opt_a)
        b.backward(X[:32], y[:32])
        grads = b.gradients()
        opt_b.step([grads[where[id(p)]] for p in opt_b.params])
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p, q)


def test_fit_with_groups_a_schedule_files_resume_and_pickle(tmp_path):
    X, y = _data()
    kw = dict(batch_size=16, optimizer="adamw", lr=1e-2, seed=3, progress=False)
    whole = _model()
    whole.fit(X, y, epochs=4, param_groups=no_decay_groups(whole, 0.2),
              scheduler=lambda opt: fastbp.schedules.StepLR(opt, 2, 0.5), **kw)
    part = _model()
    part.fit(X, y, epochs=2, param_groups=no_decay_groups(part, 0.2),
             scheduler=lambda opt: fastbp.schedules.StepLR(opt, 2, 0.5), **kw)
    part.save(tmp_path / "part.fastbp")
    loaded = fastbp.load(tmp_path / "part.fastbp")
    loaded.fit(X, y, epochs=2, resume=True, progress=False)
    clone = pickle.loads(pickle.dumps(part))
    clone.fit(X, y, epochs=2, resume=True, progress=False)
    for p, q, r in zip(whole.parameters(), loaded.parameters(), clone.parameters()):
        np.testing.assert_array_equal(p, q)
        np.testing.assert_array_equal(p, r)
    groups = loaded.training_state.optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.2, 0.0]
    # the decay was applied to the weights only: without groups, the biases differ
    plain = _model()
    plain.fit(X, y, epochs=4, optimizer=fastbp.AdamW(plain.parameters(), lr=1e-2,
                                                     weight_decay=0.2),
              batch_size=16, seed=3, progress=False,
              scheduler=lambda opt: fastbp.schedules.StepLR(opt, 2, 0.5))
    assert not np.array_equal(plain.layers[0].b, whole.layers[0].b)


def test_a_schedule_scales_every_group():
    model = _model()
    g = no_decay_groups(model, 0.1)
    opt = fastbp.SGD([dict(g[0], lr=0.5), g[1]], lr=0.1)
    opt.lr = 0.01                    # as a schedule does
    assert [grp["lr"] for grp in opt.param_groups] == [pytest.approx(0.05), 0.01]
    state = opt.state_dict()
    again = fastbp.SGD(model.parameters(), lr=1.0)
    again.load_state_dict(state)     # adopts the groups (over the model's order)
    assert sorted(grp["lr"] for grp in again.param_groups) == [0.01, pytest.approx(0.05)]


def test_bad_groups_are_refused():
    model = _model()
    W, b = model.layers[0].W, model.layers[0].b
    rest = model.parameters()[2:]
    with pytest.raises(ValueError, match=r"params\[0\] \(a group\) has keys \['momentum'\]"):
        fastbp.SGD([{"params": [W], "momentum": 0.9}])
    with pytest.raises(ValueError, match="holds an array twice"):
        fastbp.Adam([{"params": [W, b]}, {"params": [W]}])
    with pytest.raises(ValueError, match=r"params\[1\]\['weight_decay'\] must be >= 0"):
        fastbp.Adam([{"params": [W]}, {"params": [b], "weight_decay": -1.0}])
    with pytest.raises(TypeError, match=r"params\[0\]\['params'\] must be a non-empty list"):
        fastbp.Adam([{"params": W}])
    with pytest.raises(TypeError, match="not both"):
        fastbp.Adam([{"params": [W]}, b])
    with pytest.raises(ValueError, match="lr must be > 0 when a group sets its own lr"):
        fastbp.SGD([{"params": [W], "lr": 0.1}], lr=0.0)
    partial = fastbp.Adam([{"params": [W]}, {"params": [b]}])
    X, y = _data()
    with pytest.raises(ValueError, match="optimizer must be built over model.parameters"):
        model.train_step(X[:8], y[:8], partial)
    with pytest.raises(ValueError, match="param_groups builds a new optimizer"):
        model.fit(X, y, optimizer=fastbp.Adam(model.parameters()),
                  param_groups=no_decay_groups(model, 0.1))
    with pytest.raises(TypeError, match="param_groups must be a non-empty list of dicts"):
        model.fit(X, y, optimizer="adam", param_groups=model.parameters())
    with pytest.raises(ValueError, match="optimizer must be built over model.parameters"):
        model.fit(X, y, optimizer="adam", param_groups=[{"params": [W, b]},
                                                        {"params": rest[:-1]}])
    with pytest.raises(ValueError, match="takes no param_groups"):
        model.fit(X, y, optimizer="lbfgs", param_groups=no_decay_groups(model, 0.1))
    with pytest.raises(TypeError, match="model must be a fastbp Sequential"):
        no_decay_groups([W], 0.1)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        no_decay_groups(model, -0.1)
    before = [p.copy() for p in model.parameters()]
    for p, q in zip(model.parameters(), before):   # nothing above changed the model
        np.testing.assert_array_equal(p, q)
    model.fit(X, y, epochs=1, optimizer="adam", param_groups=no_decay_groups(model, 0.1),
              progress=False)   # a call after the failed ones
