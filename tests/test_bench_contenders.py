"""The benchmark's contenders compute what they claim (no timing is asserted): the
workloads W9-W11 are the ones defined in issue 15, the GEMM floor runs the step's own
matrix products, and the JAX step is fastbp's network, loss and Adam (its losses equal
``train_step``'s from the same weights and data)."""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import fastbp
from fastbp._kernels._blas import gemm_check

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import suite as bench  # noqa: E402  (the full harness, benchmarks/suite.py)

STEPS = [n for n, w in bench.WORKLOADS.items() if w.kind == "step"]


def test_medium_workloads_are_defined_and_listed():
    expected = {
        "W9": ((256, 2048, 10), "relu", "cross_entropy", 512, "float32"),
        "W10": ((20, 100, 50, 1), "tanh", "binary_cross_entropy", 128, "float64"),
        "W11": ((32, 64, 64, 64, 64, 64, 64, 4), "relu", "cross_entropy", 64, "float32"),
    }
    for name, spec in expected.items():
        w = bench.WORKLOADS[name]
        assert (w.sizes, w.activation, w.loss, w.batch, w.dtype) == spec
        assert w.kind == "step" and w.dropout == 0
        assert name in STEPS


def _flops(products):
    return sum(2 * m * n * k for *_, (m, n, k) in products)


@pytest.mark.parametrize("name", STEPS + ["W7"])
def test_floor_products_are_the_steps(name):
    """Forward X·W per layer; backward dX = dZ·Wᵀ for every layer but the first and
    dW = Xᵀ·dZ for every layer (fastbp/_kernels/dense.pyx), with the step's shapes."""
    w = bench.WORKLOADS[name]
    s, n, layers = w.sizes, w.batch, len(w.sizes) - 1
    products = bench.step_products(w)
    forward = [p for p in products if p[0] == "Z = X·W"]
    assert [(p[1], p[4]) for p in forward] == [(l, (n, s[l + 1], s[l])) for l in range(layers)]
    if w.kind == "forward":
        assert products == forward
        assert _flops(products) == 2 * n * sum(a * b for a, b in zip(s, s[1:]))
        return
    backward = products[layers:]
    expected = []
    for l in reversed(range(layers)):
        if l > 0:
            expected.append(("dX = dZ·Wᵀ", l, False, True, (n, s[l], s[l + 1])))
        expected.append(("dW = Xᵀ·dZ", l, True, False, (s[l], s[l + 1], n)))
    assert backward == expected
    assert _flops(products) == 2 * n * (3 * sum(a * b for a, b in zip(s, s[1:])) - s[0] * s[1])


@pytest.mark.parametrize("name", ["W1", "W10", "W11", "W2-dropout"])
def test_both_floor_routes_compute_each_product(name):
    """Every operand set of the floor, through NumPy's matmul (the "numpy" route) and
    through gemm_check (the "fastbp" route), gives op(A)·op(B) of the product's shape."""
    w = bench.WORKLOADS[name]
    ops = bench.floor_operands(w)
    assert len(ops) == len(bench.step_products(w))
    rtol = 1e-12 if w.dtype == "float64" else 2e-5
    for (*_, (m, n, k)), (ta, tb, A, B, C) in zip(bench.step_products(w), ops):
        opA, opB = (A.T if ta else A), (B.T if tb else B)
        assert opA.shape == (m, k) and opB.shape == (k, n) and C.shape == (m, n)
        expected = opA.astype(np.float64) @ opB.astype(np.float64)
        gemm_check(ta, tb, 1.0, A, B, 0.0, C)
        np.testing.assert_allclose(C, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
        np.matmul(opA, opB, out=C)
        np.testing.assert_allclose(C, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def test_every_step_workload_has_both_floors():
    for name in STEPS + ["W7"]:
        w = bench.WORKLOADS[name]
        for blas in ("numpy", "fastbp"):
            floor = bench.gemm_floor(w, blas)
            assert callable(floor), (name, blas)
            if w.sizes[0] < 128:     # the small networks' floors run (W7's and W4's take long)
                floor()
    for name in ("W6", "W8", "E1"):
        assert bench.gemm_floor(bench.WORKLOADS[name]) is None


# ---------------------------------------------------------------- JAX

@pytest.fixture
def jax():
    jax = pytest.importorskip("jax")
    pytest.importorskip("optax")
    before = bool(jax.config.jax_enable_x64)
    yield jax
    jax.config.update("jax_enable_x64", before)


# (workload, x64 on before the step is made): float32 both with and without JAX's x64 mode
# (a run with float64 workloads turns it on for all), float64 with it (jax_step turns it on)
@pytest.mark.parametrize("name, x64", [("W11", False), ("W11", True), ("W2", True),
                                       ("W10", False), ("W1", False)])
def test_jax_step_matches_fastbp_train_step(jax, name, x64):
    w = bench.WORKLOADS[name]
    jax.config.update("jax_enable_x64", x64)
    model = fastbp.MLP(w.sizes, w.activation, w.loss, dtype=w.dtype, seed=7)
    X, y = bench.make_data(w, np.random.default_rng(11))
    step = bench.jax_step(w, weights=[p.copy() for p in model.parameters()], data=(X, y))
    assert step is not None
    opt = fastbp.Adam(model.parameters(), lr=1e-3)
    ours, theirs = [], []
    for _ in range(3):
        ours.append(model.train_step(X, y, opt))
        loss = step()
        assert loss.dtype == np.dtype(w.dtype)       # float32 stays float32 under x64
        theirs.append(float(loss))
    # the first loss: the same network and loss on the same weights; the next two: the
    # same Adam update in between
    rtol = 1e-12 if w.dtype == "float64" else 1e-5
    assert theirs == pytest.approx(ours, rel=rtol)
    assert abs(ours[2] - ours[0]) > 100 * rtol * abs(ours[0])   # the steps moved the loss
    assert bool(jax.config.jax_enable_x64) == (x64 or w.dtype == "float64")


def test_jax_step_starts_where_fastbp_step_does(jax):
    """By default jax_step copies fastbp_step's model (seed) and data: the same first loss."""
    w = bench.WORKLOADS["W2"]
    assert float(bench.jax_step(w, seed=3)()) == pytest.approx(bench.fastbp_step(w, seed=3)(),
                                                              rel=1e-5)


def test_jax_forward_and_adam_workloads(jax):
    w7 = replace(bench.WORKLOADS["W7"], batch=8)
    model = fastbp.MLP(w7.sizes, w7.activation, w7.loss, dtype=w7.dtype, seed=0)
    X, _ = bench.make_data(w7, np.random.default_rng(0))
    out = np.asarray(bench.jax_step(w7)())
    expected = model.forward(X)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())

    w6 = replace(bench.WORKLOADS["W6"], n_samples=1000)
    rng = np.random.default_rng(0)
    p = rng.standard_normal(w6.n_samples).astype(w6.dtype)
    g = rng.standard_normal(w6.n_samples).astype(w6.dtype)
    opt = fastbp.Adam([p], lr=1e-3)
    update = bench.jax_step(w6)
    for _ in range(2):
        opt.step([g])
        theirs = np.asarray(update())
    np.testing.assert_allclose(theirs, p, rtol=1e-6, atol=1e-7)


def test_no_jax_step_for_fit_ensemble_and_dropout(jax):
    for name in ("W8", "E1", "W2-dropout", "W4-dropout"):
        assert bench.jax_step(bench.WORKLOADS[name]) is None
    assert bench.jax_workloads(list(bench.WORKLOADS)) == [
        "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W9", "W10", "W11", "W3-tanh", "W12"]


def test_jax_step_rejects_weights_of_another_network(jax):
    w = bench.WORKLOADS["W2"]
    other = fastbp.MLP((64, 16, 10), "relu", "cross_entropy", dtype="float32", seed=0)
    with pytest.raises(ValueError, match="weights do not fit"):
        bench.jax_step(w, weights=other.parameters())
    with pytest.raises(ValueError, match="weights must be"):
        bench.jax_step(w, weights=other.parameters()[:2])


def _cpu_ticks_per_thread():
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[tid] = int(fields[11]) + int(fields[12])     # utime + stime
    return ticks


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                    reason="reads /proc; needs 2 cores")
@pytest.mark.parametrize("n", [1, 2])
def test_jax_use_threads_sizes_the_pool(jax, n):
    """At n=1 one thread does the work of a large jitted product; at n=2 more than one."""
    import jax.numpy as jnp

    bench.jax_use_threads(n)
    f = jax.jit(lambda a, b: jnp.tanh(a @ b))
    a = jnp.ones((768, 768), jnp.float32)
    f(a, a).block_until_ready()
    before = _cpu_ticks_per_thread()
    for _ in range(40):
        f(a, a).block_until_ready()
    after = _cpu_ticks_per_thread()
    used = sorted((after[t] - before.get(t, 0) for t in after), reverse=True)
    total = sum(used)
    assert total >= 10, "too little work measured"
    busy = [u for u in used if u >= 0.1 * total]
    if n == 1:
        assert len(busy) == 1, used[:6]
    else:
        assert len(busy) >= 2, used[:6]
