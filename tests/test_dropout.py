"""Dropout: the counter-based mask generator (fastbp.ops ≡ fastbp.reference, and its
statistics), the engine's dropout in train_step/fit/backward against a step written
with fastbp.reference, reproducibility from the seed, save/load continuing with the
same masks, inference untouched, gradcheck of the masked network, bad input, and a
small overfitting problem where dropout lowers the validation loss."""
from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastbp
from fastbp import MLP, SGD, Adam, Dense, RMSprop, Sequential, ops, reference

from conftest import (DTYPES, assert_model_close, assert_same_params, make_data, param_copies,
                      tol)


def reference_loss_and_grads(model, X, y, step):
    """Loss and [dW1, db1, ...] of the masked network at ``step``, through fastbp.reference
    only: dense_forward, dropout_mask/dropout_apply, the loss, then the backward with dA
    multiplied by the same masks before each dense_backward."""
    X = np.asarray(X, dtype=model.dtype)
    cache, masks = [], []
    out = X
    for i, layer in enumerate(model.layers):
        Z, A = reference.dense_forward(out, layer.W, layer.b, layer.activation)
        cache.append((out, Z, A))
        mask = None
        if layer.dropout:
            mask = reference.dropout_mask(model.dropout_seed, i, step, A.shape, layer.dropout)
            A = reference.dropout_apply(A, mask, layer.dropout)
        masks.append(mask)
        out = A
    loss, grad = reference.loss_forward_backward(model.loss_name, out, y)
    grads = []
    for i in range(len(model.layers) - 1, -1, -1):
        layer = model.layers[i]
        if masks[i] is not None:
            grad = reference.dropout_apply(grad, masks[i], layer.dropout)
        ins, Z, A = cache[i]
        grad, dW, db = reference.dense_backward(ins, layer.W, Z, A, grad, layer.activation,
                                                need_dX=i > 0)
        grads = [dW, db] + grads
    return loss, grads


# ---------------------------------------------------------------- the mask generator

@pytest.mark.parametrize("seed, layer, step, shape, p", [
    (0, 0, 0, (5, 7), 0.5),
    (2**64 - 1, 3, 2**62, (33,), 0.1),
    (12345, 1, 1, (64, 130), 0.3),
    (7, 0, 99, (), 0.9),
    (7, 0, 99, (0, 4), 0.2),
    (7, 2, 5, (3, 1, 4), 0.0),
    (np.uint64(99), np.int32(1), np.int64(2), (np.int64(10), 3), np.float32(0.25)),
    (1, 1, 1, 1000, 1 - 2**-53),
])
def test_ops_mask_equals_reference_bit_for_bit(seed, layer, step, shape, p):
    got = ops.dropout_mask(seed, layer, step, shape, p)
    want = reference.dropout_mask(seed, layer, step, shape, p)
    assert got.dtype == want.dtype == np.bool_
    assert got.shape == want.shape == (shape if isinstance(shape, tuple) else (shape,))
    np.testing.assert_array_equal(got, want)


@given(seed=st.integers(0, 2**64 - 1), layer=st.integers(0, 2**63 - 1),
       step=st.integers(0, 2**62), shape=st.lists(st.integers(0, 40), max_size=3),
       p=st.floats(0.0, 1.0, exclude_max=True))
def test_ops_mask_equals_reference_for_any_keys(seed, layer, step, shape, p):
    np.testing.assert_array_equal(ops.dropout_mask(seed, layer, step, tuple(shape), p),
                                  reference.dropout_mask(seed, layer, step, tuple(shape), p))


def test_mask_is_a_prefix_of_the_stream():
    """Element i depends on (seed, layer, step, i) only: a longer mask extends a shorter
    one, and the shape only folds the stream (C order)."""
    long = ops.dropout_mask(3, 1, 4, 600, 0.4)
    np.testing.assert_array_equal(ops.dropout_mask(3, 1, 4, 250, 0.4), long[:250])
    np.testing.assert_array_equal(ops.dropout_mask(3, 1, 4, (20, 30), 0.4).ravel(), long)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_keep_rate_within_binomial_bound(p):
    n = 400_000
    kept = int(ops.dropout_mask(2024, 0, 1, n, p).sum())
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(kept - n * (1 - p)) <= 5 * sigma, (kept, n * (1 - p), sigma)
    if p == 0:
        assert kept == n


def test_masks_are_independent_across_layers_steps_seeds_and_elements():
    """Two streams that differ in one key agree on a fraction p² + (1-p)² of their
    elements, as independent masks do; neighbouring elements are uncorrelated."""
    n, p = 200_000, 0.5
    base = ops.dropout_mask(11, 2, 7, n, p)
    others = [ops.dropout_mask(12, 2, 7, n, p), ops.dropout_mask(11, 3, 7, n, p),
              ops.dropout_mask(11, 2, 8, n, p), ops.dropout_mask(11, 1, 7, n, p),
              ops.dropout_mask(11, 2, 6, n, p)]
    expected = p * p + (1 - p) * (1 - p)
    sigma = math.sqrt(n * expected * (1 - expected))
    for other in others:
        agree = int((base == other).sum())
        assert abs(agree - n * expected) <= 5 * sigma, agree
    x = base.astype(np.float64) - base.mean()
    for lag in (1, 2, 64):
        corr = float(np.dot(x[:-lag], x[lag:]) / np.dot(x, x))
        assert abs(corr) <= 5 / math.sqrt(n), (lag, corr)
    # elements 2j and 2j + 1 are the two halves of one 64-bit output: independent too
    sigma_half = math.sqrt(n / 2 * expected * (1 - expected))
    assert abs(int((base[0::2] == base[1::2]).sum()) - n / 2 * expected) <= 5 * sigma_half
    for p_other in (0.1, 0.9):     # and so are the keep rates of the two halves
        m = ops.dropout_mask(3, 0, 1, n, p_other)
        for half in (m[0::2], m[1::2]):
            sd = math.sqrt(n / 2 * p_other * (1 - p_other))
            assert abs(int(half.sum()) - n / 2 * (1 - p_other)) <= 5 * sd


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_apply_ops_equals_reference(dtype):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(17, 9)).astype(dtype)
    A[0, :3] = [np.nan, np.inf, -np.inf]
    for p in (0.0, 0.3, 0.75):
        mask = ops.dropout_mask(5, 0, 1, A.shape, p)
        got = ops.dropout_apply(A, mask, p)
        want = reference.dropout_apply(A, mask, p)
        assert got.dtype == want.dtype == dtype
        np.testing.assert_array_equal(got, want)
        scale = np.asarray(1 / (1 - p), dtype=dtype)
        np.testing.assert_array_equal(got[mask], A[mask] * scale)
        assert np.all(np.isnan(got[~mask]) == ~np.isfinite(A[~mask]))   # NaN·0, inf·0 = NaN
    np.testing.assert_array_equal(ops.dropout_apply(A[:, ::2], mask[:, ::2], 0.75),
                                  reference.dropout_apply(A[:, ::2], mask[:, ::2], 0.75))


@pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
@pytest.mark.parametrize("args, exc, match", [
    ((-1, 0, 1, 3, 0.5), ValueError, "seed"),
    ((2**64, 0, 1, 3, 0.5), ValueError, "seed"),
    ((True, 0, 1, 3, 0.5), TypeError, "seed"),
    ((1.0, 0, 1, 3, 0.5), TypeError, "seed"),
    ((0, -1, 1, 3, 0.5), ValueError, "layer"),
    ((0, 0, -1, 3, 0.5), ValueError, "step"),
    ((0, 0, "1", 3, 0.5), TypeError, "step"),
    ((0, 0, 1, (3, -1), 0.5), ValueError, r"shape\[1\]"),
    ((0, 0, 1, [3, 4], 0.5), TypeError, "shape"),
    ((0, 0, 1, (3.0,), 0.5), TypeError, r"shape\[0\]"),
    ((0, 0, 1, 3, 1.0), ValueError, "p"),
    ((0, 0, 1, 3, -0.1), ValueError, "p"),
    ((0, 0, 1, 3, float("nan")), ValueError, "p"),
    ((0, 0, 1, 3, "0.5"), TypeError, "p"),
    ((0, 0, 1, 3, True), TypeError, "p"),
])
def test_mask_bad_arguments(module, args, exc, match):
    with pytest.raises(exc, match=match):
        module.dropout_mask(*args)


@pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
def test_apply_bad_arguments(module):
    A = np.ones((3, 4))
    with pytest.raises(TypeError, match="mask"):
        module.dropout_apply(A, np.ones((3, 4), dtype=np.uint8), 0.5)
    with pytest.raises(ValueError, match="mask"):
        module.dropout_apply(A, np.ones((4, 3), dtype=bool), 0.5)
    with pytest.raises(TypeError, match="A"):
        module.dropout_apply(A.astype(np.int64), np.ones((3, 4), dtype=bool), 0.5)
    with pytest.raises(ValueError, match="p"):
        module.dropout_apply(A, np.ones((3, 4), dtype=bool), 1.0)


# ---------------------------------------------------------------- the engine ≡ the reference

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation, loss, opt, kw", [
    ("relu", "cross_entropy", Adam, dict(lr=0.01)),
    ("tanh", "mse", SGD, dict(lr=0.05, momentum=0.9)),
    ("sigmoid", "binary_cross_entropy", RMSprop, dict(lr=0.01)),
    ("gelu", "cross_entropy", Adam, dict(lr=0.01, amsgrad=True)),
    ("leaky_relu", "huber", SGD, dict(lr=0.1)),
])
def test_train_step_matches_reference_with_dropout(dtype, activation, loss, opt, kw):
    """Each step's loss and gradients (dW/db hold the step's gradients, taken before its
    update) equal the reference's with the masks of that step, over several steps."""
    model = MLP((5, 16, 12, 3), activation, loss, dtype=dtype, seed=3, dropout=0.4)
    optimizer = opt(model.parameters(), **kw)
    X, y = make_data("cross_entropy" if loss == "cross_entropy" else "mse", 12, 5, 3, dtype)
    if loss == "binary_cross_entropy":
        y = (y > 0).astype(dtype)
    for _ in range(4):
        step = optimizer.step_count + 1
        want_loss, want_grads = reference_loss_and_grads(model, X, y, step)
        got = model.train_step(X, y, optimizer)
        assert_model_close(got, want_loss, dtype, f"loss at step {step}")
        for i, (g, r) in enumerate(zip(model.gradients(), want_grads)):
            assert_model_close(g, r, dtype, f"gradient {i} at step {step}")


def test_dropout_changes_the_step_and_drops_units():
    """The masks are really applied: gradients differ from the same network without
    dropout, and a relu hidden unit dropped for every sample gets a zero gradient row."""
    model = MLP((4, 6, 2), "relu", "mse", dtype="float64", seed=0, dropout=0.5)
    plain = Sequential([Dense(4, 6, "relu", dtype="float64"), Dense(6, 2, dtype="float64")],
                       "mse")
    for a, b in zip(plain.parameters(), model.parameters()):
        a[...] = b
    X, y = make_data("mse", 3, 4, 2, np.float64)
    # a step whose masks drop some hidden unit for all three rows
    step = next(t for t in range(1, 100)
                if (~ops.dropout_mask(model.dropout_seed, 0, t, (3, 6), 0.5).any(axis=0)).any())
    model.backward(X, y, step=step)
    plain.backward(X, y)
    assert not np.allclose(model.layers[0].dW, plain.layers[0].dW)
    dropped = ~ops.dropout_mask(model.dropout_seed, 0, step, (3, 6), 0.5).any(axis=0)
    assert np.all(model.layers[0].dW[:, dropped] == 0)
    assert np.all(model.layers[1].dW[dropped, :] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_equals_train_step_loop_bit_for_bit(dtype):
    """fit's compiled epoch loop draws the masks train_step draws at each step."""
    X, y = make_data("cross_entropy", 50, 5, 3, dtype)
    a = MLP((5, 16, 3), "relu", "cross_entropy", dtype=dtype, seed=4, dropout=0.3)
    b = MLP((5, 16, 3), "relu", "cross_entropy", dtype=dtype, seed=4, dropout=0.3)
    opt_a, opt_b = Adam(a.parameters(), lr=0.01), Adam(b.parameters(), lr=0.01)
    history = a.fit(X, y, epochs=3, batch_size=8, optimizer=opt_a, seed=9, progress=False)
    rng = np.random.default_rng(9)
    losses = []
    for _ in range(3):
        order = rng.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), 8):
            idx = order[start:start + 8]
            total += b.train_step(X[idx], y[idx], opt_b) * len(idx)
        losses.append(total / len(X))
    assert opt_a.step_count == opt_b.step_count == 21
    assert_same_params(a, b)
    np.testing.assert_allclose(history.loss, losses, rtol=tol(np.float64, "path_rtol"))


def test_backward_step_equals_train_step_masks_and_default_counts_calls():
    X, y = make_data("cross_entropy", 12, 5, 3, np.float64)
    make = lambda: MLP((5, 10, 3), "tanh", "cross_entropy", dtype="float64", seed=2,  # noqa: E731
                       dropout=0.5)
    stepped, probe = make(), make()
    opt = SGD(stepped.parameters(), lr=0.0)       # lr 0: the parameters stay put
    for t in (1, 2, 3):
        loss = stepped.train_step(X, y, opt)
        assert probe.backward(X, y, step=t) == loss
        for g, h in zip(probe.gradients(), stepped.gradients()):
            np.testing.assert_array_equal(g, h)
    counted = make()
    for t in (1, 2, 3):           # the k-th backward() without a step uses step k
        counted.backward(X, y)
        probe.backward(X, y, step=t)
        for g, h in zip(counted.gradients(), probe.gradients()):
            np.testing.assert_array_equal(g, h)
    counted.backward(X, y, step=1)  # an explicit step does not advance the count
    counted.backward(X, y)
    probe.backward(X, y, step=4)
    for g, h in zip(counted.gradients(), probe.gradients()):
        np.testing.assert_array_equal(g, h)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_fast_path_equals_checked_path_with_dropout(dtype, loss):
    fast = MLP((5, 8, 6, 3), "relu", loss, dtype=dtype, seed=1, dropout=0.25)
    slow = MLP((5, 8, 6, 3), "relu", loss, dtype=dtype, seed=1, dropout=0.25)
    opt_f, opt_s = Adam(fast.parameters(), lr=0.01), Adam(slow.parameters(), lr=0.01)
    X, y = make_data(loss, 12, 5, 3, dtype)
    fast.train_step(X, y, opt_f)
    slow.train_step(X.tolist(), y.tolist(), opt_s)
    for _ in range(5):
        assert fast._engine.train_step_fast(X, y, opt_f) \
            == slow.train_step(X.tolist(), y.tolist(), opt_s)
    assert_same_params(fast, slow)


# ---------------------------------------------------------------- reproducibility

def test_same_seed_same_run_and_other_seed_other_run():
    X, y = make_data("cross_entropy", 64, 5, 3, np.float32)

    def run(seed, **kw):
        model = MLP((5, 32, 32, 3), "relu", "cross_entropy", seed=seed, dropout=0.3, **kw)
        model.fit(X, y, epochs=3, batch_size=16, seed=0, progress=False)
        return model

    a, b = run(5), run(5)
    assert a.dropout_seed == b.dropout_seed
    assert_same_params(a, b)
    c = run(6)
    assert c.dropout_seed != a.dropout_seed
    d = MLP((5, 32, 32, 3), "relu", "cross_entropy", seed=5, dropout=0.3)
    d.dropout_seed = 1234                     # same weights, other masks
    d.fit(X, y, epochs=3, batch_size=16, seed=0, progress=False)
    assert not np.array_equal(d.layers[0].W, a.layers[0].W)


def test_seed_none_draws_a_seed_from_os_entropy_and_keeps_it():
    seeds = {MLP((3, 4, 2), dropout=0.5).dropout_seed for _ in range(4)}
    assert len(seeds) == 4 and all(0 <= s < 2**64 for s in seeds)
    seq = Sequential([Dense(3, 4, "relu", dropout=0.5), Dense(4, 2)])
    assert seq.dropout_seed == seq.dropout_seed and 0 <= seq.dropout_seed < 2**64
    assert Sequential([Dense(3, 2)], dropout_seed=2**64 - 1).dropout_seed == 2**64 - 1


def test_dropout_zero_is_the_network_without_dropout():
    """dropout=0 leaves weights, masks-free steps and results as without dropout: the
    weights are drawn before the dropout seed, and with p = 0 the seed plays no part."""
    rng = np.random.default_rng(8)
    by_hand = [Dense(5, 16, "relu", seed=rng), Dense(16, 3, seed=rng)]
    a = MLP((5, 16, 3), "relu", "cross_entropy", seed=8)
    b = MLP((5, 16, 3), "relu", "cross_entropy", seed=8, dropout=0.0)
    c = MLP((5, 16, 3), "relu", "cross_entropy", seed=8, dropout=0.5)
    for layer, x, y_, z in zip(by_hand, a.layers, b.layers, c.layers):
        np.testing.assert_array_equal(layer.W, x.W)
        np.testing.assert_array_equal(layer.W, y_.W)
        np.testing.assert_array_equal(layer.W, z.W)
    b.dropout_seed = a.dropout_seed ^ 0xFFFF
    X, y = make_data("cross_entropy", 40, 5, 3, np.float32)
    for model in (a, b):
        model.fit(X, y, epochs=2, batch_size=8, seed=1, progress=False)
    assert_same_params(a, b)


# ---------------------------------------------------------------- inference is untouched

@pytest.mark.parametrize("dtype", DTYPES)
def test_inference_never_applies_dropout(dtype):
    model = MLP((5, 16, 3), "tanh", "cross_entropy", dtype=dtype, seed=0, dropout=0.5)
    twin = Sequential([Dense(5, 16, "tanh", dtype=dtype), Dense(16, 3, dtype=dtype)],
                      "cross_entropy")
    X, y = make_data("cross_entropy", 12, 5, 3, dtype)
    model.fit(X, y, epochs=2, batch_size=4, seed=0, progress=False)
    for a, b in zip(twin.parameters(), model.parameters()):
        a[...] = b
    for _ in range(2):
        np.testing.assert_array_equal(model.forward(X), twin.forward(X))
        np.testing.assert_array_equal(model.predict(X), twin.predict(X))
        np.testing.assert_array_equal(model.predict_proba(X), twin.predict_proba(X))
        assert model.loss(X, y) == model.evaluate(X, y) == twin.loss(X, y)
    # the layer's own forward ignores it too
    np.testing.assert_array_equal(model.layers[0].forward(X), twin.layers[0].forward(X))


def test_validation_loss_in_fit_is_computed_without_dropout():
    X, y = make_data("cross_entropy", 30, 5, 3, np.float64)
    model = MLP((5, 16, 3), "relu", "cross_entropy", dtype="float64", seed=0, dropout=0.5)
    history = model.fit(X, y, epochs=2, batch_size=10, seed=0, validation_data=(X, y),
                        progress=False)
    assert history.val_loss[-1] == model.loss(X, y)


# ---------------------------------------------------------------- save / load

@pytest.mark.parametrize("dtype", DTYPES)
def test_save_load_continue_equals_uninterrupted(tmp_path, dtype):
    X, y = make_data("cross_entropy", 40, 5, 3, dtype)
    batches = [(X[i:i + 8], y[i:i + 8]) for i in range(0, 40, 8)]

    def make():
        model = MLP((5, 24, 16, 3), "relu", "cross_entropy", dtype=dtype, seed=3, dropout=0.3)
        return model, Adam(model.parameters(), lr=0.01)

    full, opt_full = make()
    for X_b, y_b in batches * 2:
        full.train_step(X_b, y_b, opt_full)
    half, opt_half = make()
    for X_b, y_b in batches:
        half.train_step(X_b, y_b, opt_half)
    path = tmp_path / "half.fastbp"
    half.save(path, optimizer=opt_half)
    loaded, opt_loaded = fastbp.load(path, with_optimizer=True)
    assert loaded.dropout_seed == half.dropout_seed
    assert [la.dropout for la in loaded.layers] == [0.3, 0.3, 0.0]
    for X_b, y_b in batches:
        loaded.train_step(X_b, y_b, opt_loaded)
    assert_same_params(loaded, full)
    # and through fit's compiled epoch loop (shuffle=False: the same batches each epoch)
    a, opt_a = make()
    a.fit(X, y, epochs=4, batch_size=8, shuffle=False, optimizer=opt_a, progress=False)
    b, opt_b = make()
    b.fit(X, y, epochs=2, batch_size=8, shuffle=False, optimizer=opt_b, progress=False)
    b.save(path, optimizer=opt_b)
    c, opt_c = fastbp.load(path, with_optimizer=True)
    c.fit(X, y, epochs=2, batch_size=8, shuffle=False, optimizer=opt_c, progress=False)
    assert_same_params(a, c)


def _rewrite_header(path, edit):
    """Rewrite the file's header.json through ``edit(header)`` (the arrays are kept)."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    header = json.loads(members["header.json"])
    edit(header)
    members["header.json"] = json.dumps(header).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    path.write_bytes(buf.getvalue())


def test_file_without_dropout_fields_loads(tmp_path):
    """Files written before dropout existed: no dropout, and a fresh seed."""
    model = MLP((4, 5, 2), "tanh", dtype="float64", seed=0)
    path = tmp_path / "old.fastbp"
    model.save(path)

    def strip(header):
        del header["dropout_seed"]
        for spec in header["layers"]:
            del spec["dropout"]

    _rewrite_header(path, strip)
    loaded = fastbp.load(path)
    assert [la.dropout for la in loaded.layers] == [0.0, 0.0]
    assert 0 <= loaded.dropout_seed < 2**64
    assert_same_params(loaded, model)


@pytest.mark.parametrize("edit", [
    lambda h: h["layers"][0].update(dropout=1.0),
    lambda h: h["layers"][0].update(dropout="0.5"),
    lambda h: h["layers"][0].update(dropout=True),
    lambda h: h["layers"][1].update(dropout=0.5),        # on the output layer
    lambda h: h.update(dropout_seed=-1),
    lambda h: h.update(dropout_seed=2**64),
    lambda h: h.update(dropout_seed=True),
    lambda h: h.update(dropout_seed="7"),
], ids=["p=1", "p-string", "p-bool", "output-layer", "seed<0", "seed-too-big", "seed-bool",
        "seed-string"])
def test_bad_dropout_fields_in_a_file_raise(tmp_path, edit):
    path = tmp_path / "bad.fastbp"
    MLP((4, 5, 2), dropout=0.2, seed=0).save(path)
    _rewrite_header(path, edit)
    with pytest.raises(ValueError, match="not a valid fastbp model file"):
        fastbp.load(path)


# ---------------------------------------------------------------- gradcheck

@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu", "elu"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_gradcheck_passes_with_dropout(activation, loss):
    model = MLP((4, 7, 6, 3), activation, loss, dtype="float64", seed=5, dropout=0.4)
    # nonzero biases: a row whose inputs are all dropped would otherwise sit on relu's kink
    rng = np.random.default_rng(1)
    for layer in model.layers:
        layer.b[...] = rng.normal(scale=0.3, size=layer.b.shape)
    X, y = make_data("cross_entropy" if loss == "cross_entropy" else "mse", 6, 4, 3, np.float64)
    result = fastbp.gradcheck(model, X, y)
    assert result.ok, result
    assert result.max_abs_error < 1e-6


def test_gradcheck_of_a_float32_model_with_dropout_leaves_it_unchanged():
    model = MLP((4, 7, 3), "tanh", "mse", seed=5, dropout=0.4)
    before = param_copies(model)
    X, y = make_data("mse", 6, 4, 3, np.float32)
    assert fastbp.gradcheck(model, X, y).ok
    assert_same_params(before, model)


class OtherMasks(Sequential):
    """A backward that uses the masks of the wrong step (as a backward that forgot
    which mask its forward drew would)."""

    def backward(self, X, y, *, step=None):
        return super().backward(X, y, step=(step or 0) + 1)


class NoMaskInBackward(Sequential):
    """A backward that ignores dropout (the gradient of the unmasked network)."""

    def backward(self, X, y, *, step=None):
        twin = Sequential([Dense(la.in_features, la.out_features, la.activation,
                                 dtype=la.dtype) for la in self.layers], self.loss_name)
        for a, b in zip(twin.parameters(), self.parameters()):
            a[...] = b
        loss = twin.backward(X, y)
        for g, h in zip(self.gradients(), twin.gradients()):
            g[...] = h
        return loss


@pytest.mark.parametrize("cls", [OtherMasks, NoMaskInBackward])
def test_gradcheck_fails_for_a_wrong_dropout_backward(cls):
    good = MLP((4, 7, 3), "tanh", "mse", dtype="float64", seed=5, dropout=0.4)
    bad = cls(good.layers, "mse", dropout_seed=good.dropout_seed)
    X, y = make_data("mse", 6, 4, 3, np.float64)
    assert fastbp.gradcheck(good, X, y).ok
    result = fastbp.gradcheck(bad, X, y)
    assert not result.ok
    assert result.max_rel_error > 1e-2


# ---------------------------------------------------------------- bad input

BAD_RATES = [
    (True, TypeError), (np.bool_(False), TypeError), ("0.5", TypeError), ("no", TypeError),
    (None, TypeError), ([0.5], TypeError), (-0.1, ValueError), (1.0, ValueError),
    (1, ValueError), (1.5, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
    (10**400, ValueError),
]


@pytest.mark.parametrize("value, exc", BAD_RATES)
def test_bad_dropout_rate_raises_and_draws_nothing(value, exc):
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    with pytest.raises(exc, match="dropout"):
        Dense(3, 4, "relu", dropout=value, seed=rng)
    with pytest.raises(exc, match="dropout"):
        MLP((3, 4, 2), dropout=value, seed=rng)
    assert rng.bit_generator.state == state


def test_good_dropout_rates():
    for value in (0, 0.0, 0.5, np.float32(0.25), np.float64(0.999), np.int64(0), 1 - 2**-53):
        assert Dense(3, 4, dropout=value).dropout == float(value)
    assert isinstance(Dense(3, 4, dropout=np.float32(0.25)).dropout, float)


def test_dropout_on_the_output_layer_is_refused():
    with pytest.raises(ValueError, match="dropout"):
        Sequential([Dense(3, 4, "relu"), Dense(4, 2, dropout=0.5)])
    with pytest.raises(ValueError, match="dropout"):
        MLP((3, 2), dropout=0.5)                  # no hidden layer to apply it to
    assert MLP((3, 2), dropout=0.0).layers[0].dropout == 0.0
    model = Sequential([Dense(3, 4, "relu"), Dense(4, 2)])
    layers = model.layers
    with pytest.raises(ValueError, match="dropout"):
        model.layers = [Dense(3, 4, "relu"), Dense(4, 2, dropout=0.1)]
    assert model.layers is layers
    # an MLP's output layer never gets it
    assert [la.dropout for la in MLP((3, 4, 5, 2), dropout=0.2).layers] == [0.2, 0.2, 0.0]


def test_dropout_is_read_only():
    layer = Dense(3, 4, dropout=0.5)
    with pytest.raises(AttributeError):
        layer.dropout = 0.1
    assert "dropout=0.5" in repr(layer)
    assert "dropout" not in repr(Dense(3, 4))


@pytest.mark.parametrize("value, exc", [(-1, ValueError), (2**64, ValueError), (True, TypeError),
                                        (1.0, TypeError), ("3", TypeError)])
def test_bad_dropout_seed(value, exc):
    with pytest.raises(exc, match="dropout_seed"):
        Sequential([Dense(3, 2)], dropout_seed=value)
    model = MLP((3, 4, 2), seed=0, dropout=0.5)
    seed = model.dropout_seed
    with pytest.raises(exc, match="dropout_seed"):
        model.dropout_seed = value
    assert model.dropout_seed == seed


@pytest.mark.parametrize("value, exc", [(0, ValueError), (-3, ValueError), (True, TypeError),
                                        (1.0, TypeError), ("2", TypeError), (2**62 + 1, ValueError)])
def test_bad_backward_step(value, exc):
    model = MLP((3, 4, 2), "tanh", dtype="float64", seed=0, dropout=0.5)
    X, y = np.ones((2, 3)), np.ones((2, 2))
    model.backward(X, y, step=3)
    before = [g.copy() for g in model.gradients()]
    with pytest.raises(exc, match="step"):
        model.backward(X, y, step=value)
    assert_same_params(before, model.gradients())
    assert model._backward_calls == 0


# ---------------------------------------------------------------- evidence that it helps

def test_dropout_lowers_validation_loss_on_an_overfitting_problem():
    """200 noisy samples of a 20-feature regression, a wide network: without dropout
    it fits the noise; with dropout=0.3 the validation loss ends lower."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=20)
    X = rng.normal(size=(1200, 20)).astype(np.float32)
    y = (np.tanh(X @ w / 4) + 0.5 * rng.normal(size=1200)).astype(np.float32).reshape(-1, 1)
    X_train, y_train, X_val, y_val = X[:200], y[:200], X[200:], y[200:]

    def val_loss(p):
        model = MLP((20, 256, 256, 1), "relu", "mse", seed=1, dropout=p)
        model.fit(X_train, y_train, epochs=60, batch_size=32, lr=1e-3, seed=2, progress=False)
        return model.loss(X_val, y_val), model.loss(X_train, y_train)

    val_plain, train_plain = val_loss(0.0)
    val_dropout, train_dropout = val_loss(0.3)
    assert train_plain < 0.5 * val_plain          # the plain network overfits
    assert val_dropout < 0.9 * val_plain, (val_dropout, val_plain)


def test_copies_and_pickles_keep_the_seed_and_the_masks():
    import copy
    import pickle

    X, y = make_data("cross_entropy", 24, 5, 3, np.float64)
    model = MLP((5, 16, 3), "tanh", "cross_entropy", dtype="float64", seed=0, dropout=0.4)
    copies = [copy.deepcopy(model), pickle.loads(pickle.dumps(model))]
    for m in [model] + copies:
        m.fit(X, y, epochs=2, batch_size=6, seed=3, progress=False)
    for c in copies:
        assert c.dropout_seed == model.dropout_seed
        assert_same_params(c, model)
