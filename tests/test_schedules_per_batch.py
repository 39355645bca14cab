"""Per-batch schedules (OneCycleLR, WarmupCosine): PyTorch's OneCycleLR learning rates,
the API's warm-up-then-cosine formula, and inside fit's compiled epoch the same steps
as a loop of train_step and schedule.step(), bit for bit; resume, the trajectory
against PyTorch, and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastbp
from fastbp.schedules import OneCycleLR, WarmupCosine, from_state_dict

ONE_CYCLE = [dict(), dict(three_phase=True), dict(anneal_strategy="linear", pct_start=0.25),
             dict(div_factor=10.0, final_div_factor=100.0)]


@pytest.mark.parametrize("kw", ONE_CYCLE)
def test_one_cycle_is_pytorchs(kw):
    torch = pytest.importorskip("torch")
    opt = fastbp.SGD([np.zeros(3)], lr=0.1)
    sched = OneCycleLR(opt, 0.5, 40, **kw)
    t = torch.nn.Parameter(torch.zeros(3))
    topt = torch.optim.SGD([t], lr=0.1)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, 0.5, total_steps=40,
                                                 cycle_momentum=False, **kw)
    for _ in range(40):
        assert opt.lr == topt.param_groups[0]["lr"]
        topt.step()
        tsched.step()
        sched.step()
    with pytest.raises(ValueError, match="Tried to step 41 times"):
        sched.step()
    assert sched.last_epoch == 40     # a refused step changes nothing


def test_warmup_cosine_is_the_formula():
    opt = fastbp.Adam([np.zeros(2)], lr=0.3)
    sched = WarmupCosine(opt, 4, 12, eta_min=0.01)
    seen = [opt.lr]
    for _ in range(15):
        sched.step()
        seen.append(opt.lr)
    want = [0.3 * (t + 1) / 4 if t < 4 else
            0.01 + (0.3 - 0.01) * (1 + math.cos(math.pi * min(1.0, (t - 4) / 8))) / 2
            for t in range(16)]
    np.testing.assert_allclose(seen, want, rtol=1e-15)
    assert seen[-1] == pytest.approx(0.01)


def _model():
    return fastbp.MLP((5, 16, 3), "tanh", "cross_entropy", dtype="float64", seed=0)


@pytest.mark.parametrize("make", [lambda o: OneCycleLR(o, 0.5, 21),
                                  lambda o: WarmupCosine(o, 5, 21, eta_min=0.001)])
def test_the_compiled_epoch_steps_the_schedule_per_batch(make):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 5)), rng.integers(0, 3, 100)
    fitted, stepped = _model(), _model()
    h = fitted.fit(X, y, epochs=3, batch_size=16, shuffle=False, optimizer="adam", lr=0.05,
                   scheduler=make, progress=False)
    opt = fastbp.Adam(stepped.parameters(), lr=0.05)
    sched = make(opt)
    firsts = []
    for _ in range(3):
        firsts.append(opt.lr)
        for start in range(0, 100, 16):
            stepped.train_step(X[start:start + 16], y[start:start + 16], opt)
            sched.step()
    for p, q in zip(fitted.parameters(), stepped.parameters()):
        np.testing.assert_array_equal(p, q)
    assert h.lr == firsts and fitted.training_state.scheduler.last_epoch == 21
    assert fitted.training_state.optimizer.lr == opt.lr


def test_resume_continues_the_schedule_exactly(tmp_path):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(90, 5)), rng.integers(0, 3, 90)
    make = lambda o: OneCycleLR(o, 0.2, 30, three_phase=True)
    whole, half = _model(), _model()
    hw = whole.fit(X, y, epochs=3, batch_size=9, seed=4, scheduler=make, progress=False)
    half.fit(X, y, epochs=2, batch_size=9, seed=4, scheduler=make, progress=False)
    half.save(tmp_path / "half.fastbp")
    hr = fastbp.load(tmp_path / "half.fastbp").fit(X, y, epochs=1, resume=True, progress=False)
    assert hr.loss == hw.loss
    state = whole.training_state.scheduler.state_dict()
    twin = from_state_dict(fastbp.SGD([np.zeros(1)], lr=1.0), state)
    assert twin.state_dict() == state


def test_a_onecycle_fit_equals_pytorchs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(64, 5)), rng.integers(0, 3, 64)
    model = _model()
    lin = [torch.nn.Linear(5, 16, dtype=torch.float64), torch.nn.Linear(16, 3, dtype=torch.float64)]
    with torch.no_grad():
        for m, layer in zip(lin, model.layers):
            m.weight[:] = torch.tensor(layer.W.T)
            m.bias[:] = torch.tensor(layer.b)
    net = torch.nn.Sequential(lin[0], torch.nn.Tanh(), lin[1])
    topt = torch.optim.AdamW(net.parameters(), lr=0.01)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, 0.05, total_steps=24,
                                                 cycle_momentum=False)
    model.fit(X, y, epochs=3, batch_size=8, shuffle=False, optimizer="adamw", lr=0.01,
              scheduler=lambda o: OneCycleLR(o, 0.05, 24), progress=False)
    for _ in range(3):
        for start in range(0, 64, 8):
            topt.zero_grad()
            torch.nn.functional.cross_entropy(net(torch.tensor(X[start:start + 8])),
                                              torch.tensor(y[start:start + 8])).backward()
            topt.step()
            tsched.step()
    for layer, m in zip(model.layers, lin):
        np.testing.assert_allclose(layer.W, m.weight.detach().numpy().T, rtol=1e-9, atol=1e-12)


def test_bad_per_batch_schedules_are_refused():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 5)), rng.integers(0, 3, 100)
    model = _model()
    before = [p.copy() for p in model.parameters()]
    with pytest.raises(ValueError, match="Tried to step 22 times"):   # before any step
        model.fit(X, y, epochs=4, batch_size=16, scheduler=lambda o: OneCycleLR(o, 0.5, 21),
                  progress=False)
    for p, q in zip(model.parameters(), before):
        np.testing.assert_array_equal(p, q)
    opt = fastbp.SGD([np.zeros(1)], lr=0.1)
    for kwargs, err, match in [
        (dict(max_lr=0.1, total_steps=0), ValueError, "total_steps must be an int >= 1"),
        (dict(max_lr=-1.0, total_steps=5), ValueError, "max_lr must be > 0"),
        (dict(max_lr=0.1, total_steps=5, pct_start=1.5), ValueError, "pct_start must be <= 1"),
        (dict(max_lr=0.1, total_steps=5, anneal_strategy="exp"), ValueError, "anneal_strategy"),
        (dict(max_lr=0.1, total_steps=5, three_phase="no"), TypeError, "three_phase"),
    ]:
        with pytest.raises(err, match=match):
            OneCycleLR(opt, **kwargs)
    with pytest.raises(ValueError, match="total_steps must be an int >= 6"):
        WarmupCosine(opt, 5, 5)
    with pytest.raises(ValueError, match="eta_min must be >= 0"):
        WarmupCosine(opt, 0, 5, eta_min=-1.0)
    assert opt.lr == 0.1     # refused constructions leave the optimizer alone
    dense = fastbp.MLP((5, 4, 1), "tanh", "mse", dtype="float64", seed=0)
    with pytest.raises(ValueError, match="per-batch schedule"):
        dense.fit(X, X[:, 0], epochs=1, dy=np.zeros((100, 1, 5)),
                  scheduler=lambda o: WarmupCosine(o, 2, 50), progress=False)
