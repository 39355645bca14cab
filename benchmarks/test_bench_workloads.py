"""One benchmark group per workload; correctness is checked outside the timed calls."""
import numpy as np
import pytest

import fastbp
import suite as bench
from fastbp.threads import set_num_threads

from conftest import IMPLEMENTATIONS, THREADS


def contender(impl, workload, request):
    if impl == "fastbp":
        return bench.fastbp_step(workload)
    if impl == "reference":
        if workload.kind == "fit":
            pytest.skip("a reference epoch takes seconds; see python -m fastbp bench")
        return bench.reference_step(workload)
    if impl == "jax":
        request.getfixturevalue("jax_enabled")
        # a new CPU client with an intra-op pool of this many threads (XLA_FLAGS as given)
        bench.jax_use_threads(request.node.callspec.params["threads"])
        fn = bench.jax_step(workload)
        if fn is None:
            pytest.skip("no JAX contender for the fit, ensemble and dropout workloads")
        return fn
    torch = request.getfixturevalue("torch_enabled")
    if impl == "torch-fused" and workload.kind == "forward":
        pytest.skip("no optimizer in a forward pass")
    torch.set_num_threads(request.node.callspec.params["threads"])
    return bench.torch_step(workload, fused=impl == "torch-fused")


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"threads{t}")
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", [n for n, w in bench.WORKLOADS.items() if w.kind != "ensemble"])
def test_workload(benchmark, name, impl, threads, request):
    workload = bench.WORKLOADS[name]
    set_num_threads(threads)
    fn = contender(impl, workload, request)
    benchmark.group = f"{name}: {workload.title}"
    benchmark.extra_info.update(threads=threads, blas=bench.environment([threads]).get("blas"))
    if workload.kind in ("fit", "adam"):
        # Stateful: each round continues training; rounds are few and long.
        benchmark.pedantic(fn, rounds=5 if workload.kind == "fit" else 50, warmup_rounds=1)
    else:
        benchmark(fn)


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"threads{t}")
@pytest.mark.parametrize("impl", bench.ENSEMBLE_IMPLS)
@pytest.mark.parametrize("name", [n for n, w in bench.WORKLOADS.items() if w.kind == "ensemble"])
def test_ensemble_workload(benchmark, name, impl, threads):
    """One epoch of every member: Ensemble.fit, sequential fits, fits in a pool of 2."""
    workload = bench.WORKLOADS[name]
    set_num_threads(threads)
    fn = bench.ensemble_contenders(workload, threads)[impl]
    benchmark.group = f"{name}: {workload.title}"
    benchmark.extra_info.update(threads=threads, blas=bench.environment([threads]).get("blas"))
    benchmark.pedantic(fn, rounds=3, warmup_rounds=1)


def test_jax_step_matches_fastbp_step():
    """The benchmarked JAX and fastbp steps compute the same losses (W10 f64, W11 f32)."""
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    for name, rel in (("W10", 1e-12), ("W11", 1e-5)):
        w = bench.WORKLOADS[name]
        fast, jitted = bench.fastbp_step(w), bench.jax_step(w)
        for _ in range(3):
            assert float(jitted()) == pytest.approx(fast(), rel=rel)


def test_fastbp_step_matches_reference_step():
    """The benchmarked fastbp and reference steps compute the same losses (W2, 3 steps)."""
    w = bench.WORKLOADS["W2"]
    fast, slow = bench.fastbp_step(w), bench.reference_step(w)
    for _ in range(3):
        assert fast() == pytest.approx(slow(), rel=1e-4)


@pytest.mark.parametrize("impl", ["fastbp", "fastbp-unchecked", "onnxruntime", "sklearn", "torch"])
@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("name", list(bench.LATENCY_WORKLOADS))
def test_latency(benchmark, name, batch, impl, request):
    """Prediction latency (L1, L2): one call per round; the C loop is in benchmarks/suite.py."""
    import latency as _latency
    if impl == "torch":
        request.getfixturevalue("torch_enabled")
    workload = bench.LATENCY_WORKLOADS[name]
    set_num_threads(1)
    fn = _latency.contender(impl, workload, _latency.make_model(workload),
                            _latency.make_input(workload, batch))
    if fn is None:
        pytest.skip(f"{impl} is not installed")
    benchmark.group = f"{name}: {workload.title}, {batch} row(s)"
    benchmark(fn)


@pytest.mark.parametrize("impl", ["fastbp", "sklearn"])
@pytest.mark.parametrize("name", list(bench.SKLEARN_CASES))
def test_sklearn_fit(benchmark, name, impl):
    """S1-S8: scikit-learn's MLP estimator's fit against fastbp.sklearn's, 1 thread."""
    pytest.importorskip("sklearn")
    case = bench.SKLEARN_CASES[name]
    set_num_threads(1)
    fit = bench.sklearn_fits(case)[impl]
    benchmark.group = f"{name}: {case.title}"
    benchmark.pedantic(fit, rounds=3, warmup_rounds=1)


def test_sklearn_fits_agree():
    """The two benchmarked fits of S1 (small scale) end with the same weights."""
    pytest.importorskip("sklearn")
    case = bench.SKLEARN_CASES["S1"]
    fits = bench.sklearn_fits(case, scale=0.05)
    ours, theirs = fits["fastbp"](), fits["sklearn"]()
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
