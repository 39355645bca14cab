"""Memory and reference leaks of the compiled entry points.

* slow: 20,000 ``train_step`` and 20,000 ``predict`` calls on a small model grow the
  resident set (``/proc/self/statm``, else ``resource``) by less than 20 MB after a
  warm-up;
* fast: 2,000 steady-state ``train_step`` calls under ``tracemalloc``: the engine
  preallocates its workspaces, so the traced Python/NumPy memory must not grow per
  call (net), and the transient peak of one call must stay within a few hundred
  bytes (no per-step array allocation); ``predict``'s only allocation is its output;
* ``sys.getrefcount`` of the inputs, of the model's parameters and gradients and of
  the optimizer's state arrays is unchanged after 1,000 train_steps, forwards,
  backwards and fit epochs (no reference leaked by the Cython wrappers).

The measured numbers are printed (run with ``-s`` to see them).
"""
from __future__ import annotations

import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import fastbp

from conftest import make_data

MB = 1 << 20


def rss_bytes() -> int:
    """The resident set size of this process."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):   # not Linux
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak * (1 if sys.platform == "darwin" else 1024)


def small_problem(dtype="float32", loss="mse", n=64):
    X, y = make_data(loss, n, 10, 3, dtype)
    activation = "relu" if loss == "cross_entropy" else "tanh"
    return fastbp.MLP((10, 32, 3), activation=activation, loss=loss, dtype=dtype, seed=0), X, y


# ---------------------------------------------------------------- resident memory (slow)
@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rss_growth_train_step_and_predict(dtype):
    model, X, y = small_problem(dtype, "cross_entropy")
    opt = fastbp.Adam(model.parameters(), lr=1e-3)
    for _ in range(1000):                       # warm-up: workspaces, allocator pools
        model.train_step(X, y, opt)
        model.predict(X)
    gc.collect()
    before = rss_bytes()
    for i in range(20_000):
        model.train_step(X[i % 8:], y[i % 8:], opt)    # batch sizes 57..64
    mid = rss_bytes()
    for i in range(20_000):
        model.predict(X[: 1 + i % 64])
        model.predict_proba(X[:5])
    gc.collect()
    after = rss_bytes()
    print(f"\n[{dtype}] RSS: {before / MB:.1f} MB after warm-up, {mid / MB:.1f} MB after 20,000 "
          f"train_steps (+{(mid - before) / MB:.2f} MB), {after / MB:.1f} MB after 20,000 "
          f"predicts (+{(after - mid) / MB:.2f} MB)")
    assert opt.step_count == 21_000
    assert mid - before < 20 * MB
    assert after - before < 20 * MB


@pytest.mark.slow
def test_rss_growth_fit_and_layers():
    model, X, y = small_problem("float64", "mse", n=256)
    layer = fastbp.Dense(10, 16, activation="gelu", dtype="float64", seed=0)
    model.fit(X, y, epochs=50, batch_size=16, seed=0)
    for _ in range(500):
        layer.backward(np.ones((256, 16)) * layer.forward(X)[:1])
    gc.collect()
    before = rss_bytes()
    for _ in range(4):
        model.fit(X, y, epochs=500, batch_size=16, seed=0, validation_data=(X[:32], y[:32]))
    for _ in range(20_000):
        layer.backward(np.ones((256, 16)) * layer.forward(X)[:1])
    gc.collect()
    after = rss_bytes()
    print(f"\nRSS: +{(after - before) / MB:.2f} MB after 2,000 fit epochs and 20,000 Dense "
          f"forward/backward pairs")
    assert after - before < 20 * MB


# ---------------------------------------------------------------- tracemalloc (fast)
def _traced_per_call(fn, calls: int) -> tuple[float, int]:
    """(net traced bytes per call over ``calls`` calls, transient peak of one call)."""
    for _ in range(200):                        # warm-up
        fn()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(50):
            fn()
        gc.collect()
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(calls):
            fn()
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
        peaks = []
        for _ in range(20):
            base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            fn()
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()
    return (end - start) / calls, int(np.median(peaks))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy", "binary_cross_entropy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_train_step_allocates_nothing_per_call(dtype, loss):
    model, X, y = small_problem(dtype, "cross_entropy" if loss == "cross_entropy" else "mse", n=256)
    if loss == "binary_cross_entropy":
        model = fastbp.MLP((10, 32, 3), activation="relu", loss=loss, dtype=dtype, seed=0)
        y = (y > 0).astype(dtype)
    opt = fastbp.Adam(model.parameters(), lr=1e-4)
    per_call, peak = _traced_per_call(lambda: model.train_step(X, y, opt), 2000)
    batch_bytes = X.nbytes
    print(f"\n[{dtype}, {loss}] train_step: {per_call:+.2f} traced bytes per call (net, 2,000 "
          f"calls), transient peak {peak} bytes per call (one batch of X is {batch_bytes} bytes)")
    assert per_call < 8, f"train_step retains {per_call:.1f} bytes per call"
    assert peak < 512, f"train_step allocates {peak} bytes per call; the engine should reuse its workspaces"


def test_fit_epoch_allocates_only_parameter_snapshots():
    model, X, y = small_problem("float32", "mse", n=256)
    opt = fastbp.SGD(model.parameters(), lr=1e-4)
    param_bytes = sum(p.nbytes for p in model.parameters())
    per_call, peak = _traced_per_call(
        lambda: model.fit(X, y, epochs=1, batch_size=32, optimizer=opt, shuffle=False), 300)
    print(f"\nfit(epochs=1): {per_call:+.2f} traced bytes per call (net), transient peak {peak} "
          f"bytes (parameters: {param_bytes} bytes)")
    assert per_call < 8
    # per epoch: a copy of the parameters (divergence restore), the History, small objects
    assert peak < 2 * param_bytes + 16_384


def test_predict_allocates_only_its_output():
    model, X, _ = small_problem("float64", "mse", n=256)
    out_bytes = model.predict(X).nbytes
    per_call, peak = _traced_per_call(lambda: model.predict(X), 2000)
    print(f"\npredict: {per_call:+.2f} traced bytes per call (net), transient peak {peak} bytes "
          f"(the output is {out_bytes} bytes)")
    assert per_call < 8
    assert peak < out_bytes + 1024


# ---------------------------------------------------------------- reference counts
def _refcounts(objs):
    return [sys.getrefcount(o) for o in objs]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt_cls", [fastbp.SGD, fastbp.AdaGrad, fastbp.RMSprop, fastbp.Adam,
                                     fastbp.AdamW])
def test_refcounts_unchanged(dtype, opt_cls):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 10)).astype(dtype)
    y = rng.integers(0, 3, 40)
    Xv = rng.normal(size=(8, 10)).astype(dtype)
    yv = rng.integers(0, 3, 8)
    model = fastbp.MLP((10, 16, 3), activation="elu", loss="cross_entropy", dtype=dtype, seed=0)
    kwargs = dict(momentum=0.9) if opt_cls is fastbp.SGD else \
        dict(momentum=0.5, centered=True) if opt_cls is fastbp.RMSprop else \
        dict(amsgrad=True) if opt_cls in (fastbp.Adam, fastbp.AdamW) else {}
    opt = opt_cls(model.parameters(), lr=1e-3, **kwargs)
    layer = fastbp.Dense(10, 4, activation="softmax", dtype=dtype, seed=0)
    dA = np.ones((40, 4), dtype)
    # warm-up: builds the engine, binds the optimizer, caches the layer's forward
    model.train_step(X, y, opt)
    model.forward(X)
    model.backward(X, y)
    model.fit(X, y, epochs=1, optimizer=opt, validation_data=(Xv, yv))
    layer.forward(X)
    layer.backward(dA)
    gc.collect()
    tracked = ([X, y, Xv, yv, dA, model, opt, layer] + model.parameters() + model.gradients()
               + [a for s in opt.state for a in s.values()] + [layer.W, layer.b, layer.dW, layer.db])
    before = _refcounts(tracked)
    for _ in range(1000):
        model.train_step(X, y, opt)
        model.forward(X)
        model.backward(X, y)
        model.predict_proba(X)
        model.loss(X, y)
        layer.forward(X)
        layer.backward(dA)
    model.fit(X, y, epochs=1000, batch_size=8, optimizer=opt, validation_data=(Xv, yv), seed=0)
    gc.collect()
    after = _refcounts(tracked)
    changed = [(i, b, a) for i, (b, a) in enumerate(zip(before, after)) if a != b]
    assert not changed, f"reference counts changed (index, before, after): {changed}"
    assert opt.step_count == 1 + 2 + 1000 + 1000 * 5   # warm-up fit: 40 rows in batches of 32
