"""Gradient clipping by global norm (clip_grad_norm) and label smoothing: train_step
and fit against PyTorch's clip_grad_norm_ and CrossEntropyLoss(label_smoothing=), the
compiled epoch against a loop of steps, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import Dense, LayerNorm, Sequential

from conftest import DTYPES


def _model(dtype="float64", loss="cross_entropy", k=3):
    return Sequential([Dense(5, 16, "tanh", dtype=dtype, seed=0), LayerNorm(16, dtype=dtype),
                       Dense(16, k, dtype=dtype, seed=1)], loss, dropout_seed=0)


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)) * 2, rng.integers(0, 3, n)


@pytest.mark.parametrize("clip, eps", [(0.3, 0.1), (0.3, 0.0), (None, 0.2), (1e-3, 1.0)])
def test_25_steps_equal_pytorchs(clip, eps):
    torch = pytest.importorskip("torch")
    X, y = _data()
    model = _model()
    net = torch.nn.Sequential(torch.nn.Linear(5, 16, dtype=torch.float64), torch.nn.Tanh(),
                              torch.nn.LayerNorm(16, dtype=torch.float64),
                              torch.nn.Linear(16, 3, dtype=torch.float64))
    with torch.no_grad():
        for mod, layer in ((net[0], model.layers[0]), (net[3], model.layers[2])):
            mod.weight[:] = torch.tensor(layer.W.T)
            mod.bias[:] = torch.tensor(layer.b)
    opt = fastbp.SGD(model.parameters(), lr=0.5, momentum=0.9)
    topt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=eps)
    rng = np.random.default_rng(1)
    clipped = 0
    for _ in range(25):
        rows = rng.choice(len(X), 16, replace=False)
        loss = model.train_step(X[rows], y[rows], opt, clip_grad_norm=clip, label_smoothing=eps)
        topt.zero_grad()
        tloss = criterion(net(torch.tensor(X[rows])), torch.tensor(y[rows]))
        tloss.backward()
        if clip is not None:
            clipped += float(torch.nn.utils.clip_grad_norm_(net.parameters(), clip)) > clip
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-10)
    assert clip is None or clipped >= 20     # the clipping was active
    for a, e in zip(model.parameters(), net.parameters()):
        e = e.detach().numpy()
        np.testing.assert_allclose(a.T if a.ndim == 2 else a, e, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_compiled_epoch_is_a_loop_of_steps(dtype):
    """fit(clip_grad_norm=, label_smoothing=) equals train_step over the same batches,
    bit for bit; a clip no step reaches changes nothing, and ε = 0 is the plain loss."""
    X, y = _data()
    fitted, stepped = _model(dtype), _model(dtype)
    fitted.fit(X, y, epochs=2, batch_size=16, shuffle=False, optimizer="adam", lr=0.01,
               clip_grad_norm=0.5, label_smoothing=0.1, progress=False)
    opt = fastbp.Adam(stepped.parameters(), lr=0.01)
    for _ in range(2):
        for start in range(0, len(X), 16):
            stepped.train_step(X[start:start + 16], y[start:start + 16], opt, clip_grad_norm=0.5,
                               label_smoothing=0.1)
    for p, q in zip(fitted.parameters(), stepped.parameters()):
        np.testing.assert_array_equal(p, q)
    plain, loose = _model(dtype), _model(dtype)
    plain.fit(X, y, epochs=2, batch_size=16, seed=3, progress=False)
    h = loose.fit(X, y, epochs=2, batch_size=16, seed=3, clip_grad_norm=1e30,
                  label_smoothing=0.0, progress=False)
    for p, q in zip(plain.parameters(), loose.parameters()):
        np.testing.assert_array_equal(p, q)
    clipped = _model(dtype)
    clipped.fit(X, y, epochs=2, batch_size=16, seed=3, clip_grad_norm=0.01, progress=False)
    assert not np.allclose(clipped.parameters()[0], plain.parameters()[0])
    assert len(h.loss) == 2


def test_smoothing_takes_probability_targets_and_leaves_validation_plain():
    X, y = _data()
    onehot = np.eye(3)[y]
    a, b = _model(), _model()
    ha = a.fit(X, y, epochs=2, batch_size=16, seed=1, label_smoothing=0.2,
               validation_data=(X[:20], y[:20]), progress=False)
    b.fit(X, onehot, epochs=2, batch_size=16, seed=1, label_smoothing=0.2, progress=False)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)
    # the validation loss is the plain cross-entropy of the final parameters
    assert ha.val_loss[-1] == pytest.approx(a.loss(X[:20], y[:20]), rel=1e-12)
    # the training loss is the smoothed one: above the plain loss of the same predictions
    assert a.loss(X, y) < ha.loss[-1]


def test_bad_training_tools_are_refused():
    X, y = _data(20)
    model = _model()
    opt = fastbp.Adam(model.parameters())
    before = [p.copy() for p in model.parameters()]
    for kwargs, err, match in [
        (dict(clip_grad_norm=0.0), ValueError, "clip_grad_norm must be > 0"),
        (dict(clip_grad_norm=-1), ValueError, "clip_grad_norm must be > 0"),
        (dict(clip_grad_norm="1"), TypeError, "clip_grad_norm must be a real number"),
        (dict(clip_grad_norm=float("inf")), ValueError, "clip_grad_norm must be finite"),
        (dict(label_smoothing="no"), TypeError, "label_smoothing must be a real number"),
        (dict(label_smoothing=-0.1), ValueError, "label_smoothing must be >= 0"),
        (dict(label_smoothing=1.5), ValueError, "label_smoothing must be <= 1"),
        (dict(label_smoothing=True), TypeError, "label_smoothing must be a real number"),
    ]:
        with pytest.raises(err, match=match):
            model.train_step(X, y, opt, **kwargs)
        with pytest.raises(err, match=match):
            model.fit(X, y, epochs=1, progress=False, **kwargs)
    for p, q in zip(model.parameters(), before):
        np.testing.assert_array_equal(p, q)
    assert opt.step_count == 0
    mse = _model(loss="mse", k=1)
    with pytest.raises(ValueError, match="label_smoothing applies to loss='cross_entropy'"):
        mse.fit(X, X[:, 0], epochs=1, label_smoothing=0.1, progress=False)
    dense = Sequential([Dense(5, 4, "tanh", dtype="float64", seed=0),
                        Dense(4, 1, dtype="float64", seed=1)], "mse")
    with pytest.raises(ValueError, match="takes no label_smoothing or clip_grad_norm"):
        dense.fit(X, X[:, 0], epochs=1, dy=np.zeros((20, 1, 5)), clip_grad_norm=1.0,
                  progress=False)
    with pytest.raises(ValueError, match="lbfgs' takes no clip_grad_norm"):
        dense.fit(X, X[:, 0], epochs=1, optimizer="lbfgs", clip_grad_norm=1.0, progress=False)
    # a call after the refused ones trains normally
    assert np.isfinite(model.train_step(X, y, opt, clip_grad_norm=1.0))
