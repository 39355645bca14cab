"""A rejected call changes nothing: after any public call that raises, the model's
parameters, its optimizer's state and hyper-parameters, its training state and its
settings are byte-for-byte what they were (a property test over the public API: one
bad argument at a time, the rest valid)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp
from fastbp.schedules import StepLR
from conftest import make_data

BAD_VALUES = st.sampled_from([None, "no", -1, 0, 2.5, float("nan"), float("inf"),
                              [1, 2], object(), np.array([]), np.full((3, 3), np.nan)])


def _setup(dtype, loss, dropout):
    k = 3 if loss == "cross_entropy" else 2
    X, y = make_data(loss, 24, 4, k, dtype)
    model = fastbp.MLP((4, 6, k), "tanh", loss, dtype=dtype, seed=0, dropout=dropout)
    opt = fastbp.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    model.fit(X, y, epochs=2, optimizer=opt, batch_size=8, seed=1, progress=False,
              scheduler=lambda o: StepLR(o, 1, 0.5))
    return model, opt, X, y


def _snapshot(model, opt):
    state = model.training_state
    return {
        "params": [p.tobytes() for p in model.parameters()],
        "opt": (opt.hyperparameters(), opt.step_count,
                [{k: a.tobytes() for k, a in s.items()} for s in opt.state]),
        "settings": (model.layers, model.loss_name, model.dropout_seed, model.objective,
                     model.num_threads),
        "run": (state, state.epoch, repr(state.rng.bit_generator.state),
                state.scheduler.state_dict(), list(state.history.loss)),
    }


def _calls(model, opt, X, y, bad):
    """(name, a call with exactly one bad argument)."""
    ens = fastbp.Ensemble([model, fastbp.MLP(model.sizes, loss=model.loss_name,
                                             dtype=model.dtype, seed=9)])
    other_opt = fastbp.Adam(ens[1].parameters())
    return [
        ("fit epochs", lambda: model.fit(X, y, optimizer=opt, lr=0.3, epochs=bad)),
        ("fit batch_size", lambda: model.fit(X, y, optimizer=opt, lr=0.3, batch_size=bad)),
        ("fit shuffle", lambda: model.fit(X, y, optimizer=opt, lr=0.3, shuffle=bad)),
        ("fit scheduler", lambda: model.fit(X, y, optimizer=opt, lr=0.3, scheduler=bad)),
        ("fit early_stopping", lambda: model.fit(X, y, optimizer=opt, lr=0.3,
                                                 early_stopping=bad)),
        ("fit validation", lambda: model.fit(X, y, optimizer=opt, lr=0.3, validation_data=bad)),
        ("fit sample_weight", lambda: model.fit(X, y, optimizer=opt, lr=0.3, sample_weight=bad)),
        ("fit progress", lambda: model.fit(X, y, optimizer=opt, lr=0.3, progress=bad)),
        ("fit callbacks", lambda: model.fit(X, y, optimizer=opt, lr=0.3, callbacks=[bad])),
        ("fit resume", lambda: model.fit(X, y, resume=True, batch_size=bad)),
        ("fit X", lambda: model.fit(bad, y, optimizer=opt, lr=0.3)),
        ("fit y", lambda: model.fit(X, bad, optimizer=opt, lr=0.3)),
        ("train_step X", lambda: model.train_step(bad, y, opt)),
        ("train_step y", lambda: model.train_step(X, bad, opt)),
        ("train_step weights", lambda: model.train_step(X, y, opt, sample_weight=bad)),
        ("train_epoch order", lambda: model.train_epoch(X, y, bad, 4, opt)),
        ("train_epoch batch", lambda: model.train_epoch(X, y, np.arange(len(X)), bad, opt)),
        ("ensemble lr", lambda: ens.fit(X, y, optimizer=[opt, other_opt], lr=[0.5, bad])),
        ("ensemble progress", lambda: ens.fit(X, y, optimizer=[opt, other_opt], lr=0.5,
                                              weight_decay=0.0, progress=bad)),
        ("ensemble seed", lambda: ens.fit(X, y, optimizer=[opt, other_opt], lr=0.5, seed=[1, bad])),
        ("optimizer lr", lambda: setattr(opt, "lr", bad)),
        ("optimizer step", lambda: opt.step([bad] * len(opt.params))),
        ("optimizer load", lambda: opt.load_state_dict({"type": "adamw", "step": bad,
                                                        "hyperparameters": {}, "state": []})),
        ("layers", lambda: setattr(model, "layers", bad)),
        ("dropout_seed", lambda: setattr(model, "dropout_seed", bad)),
        ("objective", lambda: setattr(model, "objective", bad)),
        ("weights", lambda: setattr(model.layers[0], "W", bad)),
        ("save", lambda: model.save("/no/such/folder/m.fastbp", optimizer=bad)),
        ("predict", lambda: model.predict(bad)),
    ]


CALL_NAMES = [name for name, _ in _calls(*_setup("float64", "mse", 0.0), None)]


@pytest.mark.parametrize("name", CALL_NAMES)
@settings(max_examples=12)
@given(bad=BAD_VALUES, dtype=st.sampled_from(["float32", "float64"]),
       loss=st.sampled_from(["mse", "cross_entropy"]), dropout=st.sampled_from([0.0, 0.25]))
def test_a_rejected_call_changes_nothing(name, bad, dtype, loss, dropout):
    model, opt, X, y = _setup(dtype, loss, dropout)
    call = dict(_calls(model, opt, X, y, bad))[name]
    before = _snapshot(model, opt)
    try:
        call()
    except fastbp.TrainingDiverged:
        pass   # accepted, and trained until it diverged (restored to that epoch's start)
    except (ValueError, TypeError, FileNotFoundError):
        assert _snapshot(model, opt) == before, name
