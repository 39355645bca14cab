"""The full benchmark comparison: median µs per step of fastbp, the NumPy reference
and (when importable) PyTorch and JAX on the workloads W1–W11 (``fastbp.bench``), at 1
and 2 threads, with the GEMM floor of each step (its matrix products alone, through
NumPy's BLAS and through fastbp's); for the ensemble workloads E1–E2, the time of one
epoch of every member: ``fastbp.Ensemble.fit``, the same fits one after another, and
the same fits in a ThreadPoolExecutor of 2; the prediction latency workloads L1–L2
(fastbp, onnxruntime, PyTorch, scikit-learn and the exported C code; see latency.py),
at 1 thread; and (when scikit-learn is importable) the fit time of scikit-learn's MLP
estimators against fastbp.sklearn's, same parameters, on S1–S8.

    python benchmarks/suite.py                       # everything (tens of minutes)
    python benchmarks/suite.py --workloads W3,E1 --threads 1
    python -m fastbp bench --full ...                # the same, from the checkout

A step is forward + loss + backward + Adam update of every parameter on one fixed
mini-batch. Implementations are timed side by side in one process (see
``fastbp.bench.time_side_by_side``). JAX (jax_step) is a jitted step; at each thread
count its CPU client is created anew with an intra-op pool of that many threads
(jax_use_threads). Run it with nothing else running, and with OPENBLAS_CORETYPE unset
(``env -u OPENBLAS_CORETYPE python benchmarks/suite.py``).
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

import fastbp
from fastbp.bench import (WORKLOADS, Workload, environment, fastbp_step,  # noqa: F401
                          floor_operands, gemm_floor, make_data, reference_step,
                          step_products, time_side_by_side)
from fastbp.threads import set_num_threads

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # latency.py beside this file
from latency import (LATENCY_WORKLOADS, latency_environment, latency_table,  # noqa: E402
                     run_latency)

# (fastbp.bench's names too: the tests and the pytest-benchmark suite take them from here)
__all__ = ["WORKLOADS", "LATENCY_WORKLOADS", "Workload", "SKLEARN_CASES", "SklearnCase", "run",
           "main", "fastbp_step", "reference_step", "make_data", "time_side_by_side",
           "step_products", "floor_operands", "gemm_floor", "environment"]


@dataclass(frozen=True)
class SklearnCase:
    """A fit of scikit-learn's estimator against fastbp.sklearn's, same parameters."""

    name: str
    title: str
    data: str                   # digits | classification | regression
    estimator: str              # MLPClassifier | MLPRegressor
    params: tuple[tuple[str, Any], ...]
    dtype: str
    n_samples: int = 0          # synthetic data only


# Fixed epoch counts: n_iter_no_change = max_iter, so no case stops early.
_S_ADAM_DIGITS = (("hidden_layer_sizes", (100,)), ("max_iter", 20), ("n_iter_no_change", 20),
                  ("random_state", 0))
_S_ADAM_BIG = (("hidden_layer_sizes", (64,)), ("max_iter", 10), ("n_iter_no_change", 10),
               ("random_state", 0))
_S_LBFGS = (("hidden_layer_sizes", (64,)), ("solver", "lbfgs"), ("max_iter", 100),
            ("random_state", 0))
_S_ADAM_SPARSE = (("hidden_layer_sizes", (64,)), ("max_iter", 5), ("n_iter_no_change", 5),
                  ("random_state", 0))
SKLEARN_CASES = {
    "S1": SklearnCase("S1", "digits (1797x64, 10 classes), hidden (100,), adam, 20 epochs, f64",
                      "digits", "MLPClassifier", _S_ADAM_DIGITS, "float64"),
    "S2": SklearnCase("S2", "S1 in float32", "digits", "MLPClassifier", _S_ADAM_DIGITS,
                      "float32"),
    "S3": SklearnCase("S3", "50,000x64 classification (10 classes), hidden (64,), adam, "
                      "10 epochs, f64", "classification", "MLPClassifier", _S_ADAM_BIG,
                      "float64", 50_000),
    "S4": SklearnCase("S4", "S3 in float32", "classification", "MLPClassifier", _S_ADAM_BIG,
                      "float32", 50_000),
    "S5": SklearnCase("S5", "5,000x20 regression, hidden (64,), lbfgs, 100 iterations, f64",
                      "regression", "MLPRegressor", _S_LBFGS, "float64", 5_000),
    "S6": SklearnCase("S6", "S5 in float32", "regression", "MLPRegressor", _S_LBFGS, "float32",
                      5_000),
    # sparse X (CSR): scikit-learn's sparse first-layer products against fastbp's kernels
    "S7": SklearnCase("S7", "sparse 20,000x20,000 CSR (0.5%: 100 per row), 2 classes, "
                      "hidden (64,), adam, 5 epochs, f64", "sparse", "MLPClassifier",
                      _S_ADAM_SPARSE, "float64", 20_000),
    "S8": SklearnCase("S8", "S7 in float32", "sparse", "MLPClassifier", _S_ADAM_SPARSE,
                      "float32", 20_000),
}


def sparse_data(n_samples: int, n_features: int = 20_000, per_row: int = 100
                ) -> tuple[Any, np.ndarray]:
    """A CSR matrix with ``per_row`` stored values in each row (random columns, values in
    [0, 1), like TF-IDF weights) and binary labels from a random linear rule."""
    import scipy.sparse

    rng = np.random.default_rng(0)
    nnz = n_samples * per_row
    X = scipy.sparse.csr_matrix((rng.random(nnz), rng.integers(0, n_features, nnz),
                                 np.arange(0, nnz + 1, per_row)), shape=(n_samples, n_features))
    score = X @ rng.normal(size=n_features)
    return X, (score > np.median(score)).astype(int)


def sklearn_data(case: SklearnCase, scale: float = 1.0) -> tuple[Any, np.ndarray]:
    """The case's (X, y) in its dtype; ``scale`` < 1 keeps that fraction of the samples."""
    from sklearn.datasets import load_digits, make_classification, make_regression
    from sklearn.preprocessing import StandardScaler

    if case.data == "sparse":
        X, y = sparse_data(max(50, int(case.n_samples * scale)))
        return X.astype(case.dtype), y
    if case.data == "digits":
        X, y = load_digits(return_X_y=True)
        X = X / 16.0
    elif case.data == "classification":
        X, y = make_classification(case.n_samples, 64, n_informative=32, n_classes=10,
                                   random_state=0)
    else:
        X, y = make_regression(case.n_samples, 20, n_informative=15, noise=1.0,
                               random_state=0)
        y = (y - y.mean()) / y.std()
    X = StandardScaler().fit_transform(X) if case.data != "digits" else X
    n = max(50, int(len(X) * scale))
    return X[:n].astype(case.dtype), y[:n]


def sklearn_fits(case: SklearnCase, scale: float = 1.0) -> dict[str, Callable[[], Any]]:
    """{"fastbp": fit, "sklearn": fit}: each call fits a fresh estimator on the case."""
    import warnings

    import sklearn.neural_network as skn
    from sklearn.exceptions import ConvergenceWarning

    from fastbp import sklearn as fbs

    X, y = sklearn_data(case, scale)
    params = dict(case.params)

    def fitter(module: Any) -> Callable[[], Any]:
        cls = getattr(module, case.estimator)

        def fit() -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                return cls(**params).fit(X, y)
        return fit
    return {"fastbp": fitter(fbs), "sklearn": fitter(skn)}


# ---------------------------------------------------------------- data and timing

# Which BLAS each contender calls: "fastbp" is the one fastbp's gemm calls (NumPy's
# bundled OpenBLAS, or SciPy's; fastbp/_blas_route.py), else NumPy's; PyTorch and
# JAX bring their own.
BLAS_OF = {"fastbp": "fastbp", "fastbp-no-dropout": "fastbp", "gemm-floor-fastbp-blas": "fastbp",
           "reference": "numpy", "gemm-floor": "numpy", "torch": None, "torch-fused": None,
           "jax": None,
           "ensemble": "fastbp", "sequential": "fastbp", "threadpool-2": "fastbp"}


def blas_files() -> dict[str, str]:
    """{"numpy": path, "scipy": path} of the two BLAS libraries, when they are two
    separate files (pip wheels bundle one each, in numpy.libs and scipy.libs)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    files = {}
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            folder = os.path.basename(os.path.dirname(info["filepath"]))
            for lib in ("numpy", "scipy"):
                if folder.startswith(lib):
                    files[lib] = info["filepath"]
    return files if len(set(files.values())) == 2 else {}


def quiet_other_blas(impl: str, files: dict[str, str]) -> Callable[[], Any]:
    """A context that holds the BLAS libraries ``impl`` does not call to one thread,
    so that their idle workers cannot spin on the cores it needs."""
    from fastbp._kernels._blas import blas_name

    used = BLAS_OF.get(impl)
    used = blas_name() if used == "fastbp" else used
    others = {path: 1 for lib, path in files.items() if lib != used}
    if not others:
        return contextlib.nullcontext
    from threadpoolctl import threadpool_limits
    return lambda: threadpool_limits(limits=others)


# ---------------------------------------------------------------- implementations

def ensemble_contenders(w: Workload, n_threads: int, n_samples: int | None = None
                        ) -> dict[str, Callable[[], Any]]:
    """One epoch of every member (Adam, seed 0 for every member's order), four ways:
    one Ensemble.fit over ``n_threads`` threads (members in lock-step where they pack),
    the same with pack=False (each member its own epoch), the members' fits one after
    another, and the members' fits in a ThreadPoolExecutor of 2. Each contender has its
    own members (seeds 0..n_models-1) and optimizers."""
    from concurrent.futures import ThreadPoolExecutor

    X, y = make_data(w, np.random.default_rng(0), n_samples or w.n_samples)

    def members() -> tuple[list[fastbp.Sequential], list[fastbp.Adam]]:
        models: list[fastbp.Sequential] = [
            fastbp.MLP(w.sizes, w.activation, w.loss, dtype=w.dtype, seed=i)
            for i in range(w.n_models)]
        return models, [fastbp.Adam(m.parameters(), lr=1e-3) for m in models]

    ens_models, ens_opts = members()
    ensemble = fastbp.Ensemble(ens_models)
    alone_models, alone_opts = members()
    alone = fastbp.Ensemble(alone_models)
    seq_models, seq_opts = members()
    pool_models, pool_opts = members()
    pool = ThreadPoolExecutor(2)

    def one_fit(m: fastbp.Sequential, opt: fastbp.Adam) -> None:
        m.fit(X, y, epochs=1, batch_size=w.batch, optimizer=opt, seed=0, progress=False)

    def sequential() -> None:
        for m, opt in zip(seq_models, seq_opts):
            one_fit(m, opt)

    def threadpool() -> None:
        list(pool.map(one_fit, pool_models, pool_opts))

    return {"ensemble": lambda: ensemble.fit(X, y, epochs=1, batch_size=w.batch,
                                             optimizer=ens_opts, seed=0, num_threads=n_threads,
                                             progress=False),
            "ensemble-unpacked": lambda: alone.fit(X, y, epochs=1, batch_size=w.batch,
                                                   optimizer=alone_opts, seed=0,
                                                   num_threads=n_threads, progress=False,
                                                   pack=False),
            "sequential": sequential, "threadpool-2": threadpool}


def torch_step(w: Workload, fused: bool, seed: int = 0) -> Callable[[], Any] | None:
    """Eager PyTorch: an nn.Linear stack and torch.optim.Adam (default or fused=True)."""
    try:
        import torch
    except ImportError:
        return None
    dtype = getattr(torch, w.dtype)
    rng = np.random.default_rng(seed)
    if w.kind == "adam":
        p = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(w.n_samples).astype(w.dtype)))
        p.grad = torch.from_numpy(rng.standard_normal(w.n_samples).astype(w.dtype))
        opt = torch.optim.Adam([p], fused=True if fused else None)
        return opt.step
    layers: list[Any] = []
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[w.activation]
    for i, (a, b) in enumerate(zip(w.sizes, w.sizes[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=dtype))
        if i < len(w.sizes) - 2:
            layers.append(act())
            if w.dropout:
                layers.append(torch.nn.Dropout(w.dropout))
    net = torch.nn.Sequential(*layers)
    lossf = torch.nn.CrossEntropyLoss() if w.loss == "cross_entropy" else torch.nn.BCEWithLogitsLoss()
    opt = torch.optim.Adam(net.parameters(), fused=True if fused else None)

    def to_torch(X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        return torch.from_numpy(X), torch.from_numpy(y.astype(np.int64) if y.ndim == 1 else y)

    if w.kind == "forward":
        X, _ = make_data(w, rng)
        Xt = torch.from_numpy(X)

        def forward() -> Any:
            with torch.no_grad():
                return net(Xt)
        return forward

    def step(Xt: Any, yt: Any) -> Any:
        opt.zero_grad(set_to_none=True)
        loss = lossf(net(Xt), yt)
        loss.backward()
        opt.step()
        return loss

    if w.kind == "fit":
        Xt, yt = to_torch(*make_data(w, rng, w.n_samples))
        gen = torch.Generator().manual_seed(0)

        def epoch() -> None:
            order = torch.randperm(len(Xt), generator=gen)
            for start in range(0, len(Xt), w.batch):
                idx = order[start:start + w.batch]
                step(Xt[idx], yt[idx])
        return epoch
    Xt, yt = to_torch(*make_data(w, rng))
    return lambda: step(Xt, yt)


# JAX: imported lazily (XLA reads its flags when it starts), only by the functions below.
#: Set in XLA_FLAGS, before jax is imported, when every thread count of the run is 1: no
#: multi-threaded Eigen in XLA's CPU code. (On its own it left jaxlib 0.10.2's intra-op
#: pool busy on both cores here; the pool's size, jax_use_threads, is what holds it to one.)
JAX_ONE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def jax_available() -> bool:
    """Whether jax and optax can be imported (checked without importing them)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("jax", "optax"))


def jax_prepare(threads: list[int], float64: bool) -> dict[str, Any]:
    """Import jax, first setting JAX_ONE_THREAD_XLA_FLAGS in XLA_FLAGS when ``threads`` is
    [1] (XLA reads them once per process, so a run that also has 2-thread rows leaves them
    unset); for float64 workloads, enable JAX's x64 mode before any array is made (float32
    arrays stay float32 under it). Returns what the environment records: the versions,
    XLA_FLAGS, x64, and a note when jax was imported before the flags could be set."""
    already = "jax" in sys.modules
    flags = os.environ.get("XLA_FLAGS", "")
    one_thread = max(threads, default=1) == 1 and "xla_cpu_multi_thread_eigen" not in flags
    if one_thread and not already:
        os.environ["XLA_FLAGS"] = f"{flags} {JAX_ONE_THREAD_XLA_FLAGS}".strip()
    import jax
    import jaxlib
    import optax

    if float64:
        jax.config.update("jax_enable_x64", True)
    info: dict[str, Any] = {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
                            "optax": optax.__version__,
                            "xla_flags": os.environ.get("XLA_FLAGS", ""),
                            "jax_enable_x64": bool(jax.config.jax_enable_x64),
                            "jax_cpu_enable_async_dispatch": False}
    if one_thread and already:
        info["jax_note"] = (f"jax was imported before the bench could set XLA_FLAGS: JAX runs "
                            f"with XLA_FLAGS={flags!r}, without {JAX_ONE_THREAD_XLA_FLAGS!r} "
                            "(its intra-op pool is still sized to the row's thread count)")
    return info


def jax_use_threads(n: int, async_dispatch: bool = False) -> None:
    """Give JAX a new CPU client whose intra-op thread pool has ``n`` threads, running
    computations on the calling thread unless ``async_dispatch``.

    XLA's CPU client sizes that pool when it is created, from the environment variable
    NPROC if set, else from the cores the process may run on; threadpoolctl, OMP_NUM_THREADS
    and the XLA flags do not size it. So: drop the clients (``clear_backends``, which also
    drops every compiled function and makes earlier arrays unusable) and create the CPU
    client again with NPROC=n, restoring NPROC afterwards. Checked on jaxlib 0.10.2 by the
    CPU time of each thread: at n=1 one thread computes, at n=2 the pool's two and the
    caller.

    ``jax_cpu_enable_async_dispatch`` (read when the client is created) is off by default
    here: every timed call blocks on its result, so handing each computation to another
    thread and waiting for it buys nothing; it made W1's blocked step about twice as slow
    (two quick checks on the 2-core VM, 2026-12-01). Computations split over the pool
    are dispatched as before."""
    import jax
    from jax.extend.backend import clear_backends

    before = os.environ.get("NPROC")
    os.environ["NPROC"] = str(n)
    try:
        clear_backends()
        jax.config.update("jax_cpu_enable_async_dispatch", async_dispatch)
        jax.devices("cpu")      # creates the client now, while NPROC says n
    finally:
        if before is None:
            del os.environ["NPROC"]
        else:
            os.environ["NPROC"] = before


def jax_forward(activation: str) -> Callable[[Any, Any], Any]:
    """A JAX MLP's forward pass: params [(W, b), ...], ``activation`` on the hidden layers,
    the raw output last (the benchmark contenders' network)."""
    import jax
    import jax.numpy as jnp

    act = {"relu": jax.nn.relu, "tanh": jnp.tanh}[activation]

    def forward(params: Any, X: Any) -> Any:
        for i, (W, b) in enumerate(params):
            X = X @ W + b
            if i < len(params) - 1:
                X = act(X)
        return X

    return forward


def jax_step(w: Workload, seed: int = 0, weights: list[np.ndarray] | None = None,
             data: tuple[np.ndarray, np.ndarray] | None = None) -> Callable[[], Any] | None:
    """JAX: the same network (sizes, activation, loss, dtype), one ``jax.jit``-ted
    function of (params, optimizer state, X, y) doing ``jax.value_and_grad`` of the mean
    loss and an ``optax.adam(1e-3)`` update, params and state donated (updated in place)
    and returned; each call blocks (``jax.block_until_ready``) on everything it returns
    and returns the loss (a JAX scalar). W6: one jitted ``optax.adam`` update of the
    parameter vector; W7: the jitted forward pass. None for the fit, ensemble and dropout
    workloads, or when jax or optax is missing.

    By default the network starts from the weights of ``fastbp.MLP(..., seed=seed)`` and
    steps on ``make_data`` of ``seed``, as ``fastbp_step`` does, so both compute the same
    losses; ``weights`` ([W0, b0, W1, b1, ...]) and ``data`` (X, y) override them. A
    float64 workload turns on JAX's x64 mode (process-wide) before making its arrays."""
    if w.kind in ("fit", "ensemble") or w.dropout or not jax_available():
        return None
    from functools import partial

    import jax
    import jax.numpy as jnp
    import optax

    if w.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(seed)
    adam = optax.adam(1e-3)
    if w.kind == "adam":
        p = rng.standard_normal(w.n_samples).astype(w.dtype)
        g = jnp.array(rng.standard_normal(w.n_samples).astype(w.dtype))

        @partial(jax.jit, donate_argnums=(0, 1))
        def update(p: Any, state: Any, g: Any) -> tuple[Any, Any]:
            updates, state = adam.update(g, state, p)
            return optax.apply_updates(p, updates), state

        box: list[Any] = [jnp.array(p)]
        box.append(adam.init(box[0]))

        def adam_call() -> Any:
            box[0], box[1] = update(box[0], box[1], g)
            return jax.block_until_ready(box)[0]
        return adam_call

    if weights is None:
        weights = fastbp.MLP(w.sizes, w.activation, w.loss, dtype=w.dtype,
                             seed=seed).parameters()
    if len(weights) != 2 * (len(w.sizes) - 1):
        raise ValueError(f"weights must be [W0, b0, ...] of {len(w.sizes) - 1} layers, "
                         f"got {len(weights)} arrays")
    X, y = make_data(w, rng) if data is None else data
    # copies (jnp.array copies): donated buffers must not alias the caller's arrays
    params = [(jnp.array(weights[2 * i]), jnp.array(weights[2 * i + 1]))
              for i in range(len(weights) // 2)]
    for (W, b), a, o in zip(params, w.sizes, w.sizes[1:]):
        if W.shape != (a, o) or b.shape != (o,) or W.dtype != w.dtype or b.dtype != w.dtype:
            raise ValueError(f"weights do not fit {w.sizes} in {w.dtype}")
    forward = jax_forward(w.activation)

    Xj = jnp.array(X)
    if w.kind == "forward":
        fwd = jax.jit(forward)
        return lambda: fwd(params, Xj).block_until_ready()

    if w.loss == "cross_entropy":
        yj = jnp.array(y.astype(np.int32))

        def loss_fn(params: Any, X: Any, y: Any) -> Any:
            return optax.softmax_cross_entropy_with_integer_labels(forward(params, X), y).mean()
    elif w.loss == "binary_cross_entropy":
        yj = jnp.array(y)

        def loss_fn(params: Any, X: Any, y: Any) -> Any:
            return optax.sigmoid_binary_cross_entropy(forward(params, X), y).mean()
    else:
        raise ValueError(f"no JAX loss for {w.loss!r}")

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(params: Any, state: Any, X: Any, y: Any) -> tuple[Any, Any, Any]:
        loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
        updates, state = adam.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    carry: list[Any] = [params, adam.init(params)]

    def train_call() -> Any:
        carry[0], carry[1], loss = jax.block_until_ready(step(carry[0], carry[1], Xj, yj))
        return loss
    return train_call


# ---------------------------------------------------------------- driver

def run_sklearn(cases: list[str], threads: list[int], budget: float = 0.25,
                scale: float = 1.0) -> list[dict[str, Any]]:
    """Fit times (seconds, median of interleaved repeats) of scikit-learn's and fastbp's
    estimators on each case, at each thread count (both held to it)."""
    rows = []
    for n_threads in threads:
        set_num_threads(n_threads)
        for name in cases:
            case = SKLEARN_CASES[name]
            timed = time_side_by_side(sklearn_fits(case, scale), budget, repeats=3)
            row = {"case": name, "title": case.title, "threads": n_threads,
                   "fastbp": timed["fastbp"], "sklearn": timed["sklearn"],
                   "speedup": timed["sklearn"] / timed["fastbp"], "scale": scale}
            rows.append(row)
            print(_format_sklearn_row(row), file=sys.stderr, flush=True)
    return rows


def _format_sklearn_row(row: dict[str, Any]) -> str:
    return (f"| {row['case']} | {row['threads']} | {row['title']} | {row['sklearn'] * 1e3:.1f} ms "
            f"| {row['fastbp'] * 1e3:.1f} ms | {row['speedup']:.1f}x |")


def jax_workloads(workloads: list[str]) -> list[str]:
    """The workloads that have a JAX contender (jax_step): every one but fit, ensemble
    and dropout."""
    return [n for n in workloads if WORKLOADS[n].kind not in ("fit", "ensemble")
            and not WORKLOADS[n].dropout]


def run(workloads: list[str], threads: list[int], include_reference: bool = True,
        include_torch: bool = True, budget: float = 0.25, samples: int | None = None,
        include_jax: bool = True) -> dict[str, Any]:
    """Time every implementation on every workload; returns a JSON-ready dict."""
    try:
        import torch
    except ImportError:
        torch = None
    results: list[dict[str, Any]] = []
    files = blas_files()
    with_jax = include_jax and bool(jax_workloads(workloads)) and jax_available()
    jax_info = jax_prepare(threads, any(WORKLOADS[n].dtype == "float64"
                                        for n in jax_workloads(workloads))) if with_jax else {}
    for n_threads in threads:
        set_num_threads(n_threads)
        if torch is not None:
            torch.set_num_threads(n_threads)
        if with_jax:
            jax_use_threads(n_threads)
        for name in workloads:
            w = WORKLOADS[name]
            if w.kind == "ensemble":
                results.append(_ensemble_row(w, n_threads, budget, samples, files))
                print(_format_ensemble_row(results[-1]), file=sys.stderr, flush=True)
                continue
            contenders: dict[str, Callable[[], Any] | None] = {"fastbp": fastbp_step(w)}
            if w.dropout:  # the same step without dropout, timed side by side for the ratio
                contenders["fastbp-no-dropout"] = fastbp_step(replace(w, dropout=0.0))
            if include_reference and not (w.kind == "fit" and n_threads > 1):
                contenders["reference"] = reference_step(w)
            if include_torch and torch is not None:
                contenders["torch"] = torch_step(w, fused=False)
                if w.kind != "forward":
                    contenders["torch-fused"] = torch_step(w, fused=True)
            if with_jax:
                contenders["jax"] = jax_step(w)
            contenders["gemm-floor"] = gemm_floor(w, "numpy")
            contenders["gemm-floor-fastbp-blas"] = gemm_floor(w, "fastbp")
            row: dict[str, Any] = {"workload": name, "title": w.title, "threads": n_threads}
            scale = 3.0 if w.kind in ("fit", "forward") or w.sizes == WORKLOADS["W4"].sizes \
                else 1.0
            # At 1 thread no worker threads spin. At 2, a BLAS's idle workers keep
            # spinning for a while after its last call and steal the next contender's
            # cores: 0.3 s was not enough here (W3's floor through SciPy's OpenBLAS
            # took 152 µs after NumPy's, 92 µs after a 1 s pause).
            # Also, at 2 threads each contender runs with the other BLAS held to one thread.
            timed_fns = {k: f for k, f in contenders.items() if f is not None}
            contexts = {k: quiet_other_blas(k, files) for k in timed_fns} if n_threads > 1 else {}
            timed = time_side_by_side(timed_fns, budget * scale,
                                      pause=1.0 if n_threads > 1 else 0.0, contexts=contexts)
            row.update((impl, t * 1e6) for impl, t in timed.items())
            if "jax" in row:
                row["jax-threads"] = n_threads
                if jax_info.get("jax_note"):
                    row["jax-note"] = jax_info["jax_note"]
            results.append(row)
            print(_format_row(row), file=sys.stderr, flush=True)
    env = environment(threads)
    env.update(jax_info)
    return {"environment": env, "results": results}


def _ensemble_row(w: Workload, n_threads: int, budget: float, samples: int | None,
                  files: dict[str, str]) -> dict[str, Any]:
    """ms per epoch of all members, for each of ensemble_contenders."""
    fns: dict[str, Callable[[], Any]] = {
        k: fn for k, fn in ensemble_contenders(w, n_threads, samples).items()
        if k in ENSEMBLE_IMPLS}   # (the table's; benchmarks/ensembles.py times pack=False)
    contexts = {k: quiet_other_blas(k, files) for k in fns} if n_threads > 1 else {}
    timed = time_side_by_side(fns, budget * 3.0, repeats=5, pause=1.0 if n_threads > 1 else 0.0,
                              contexts=contexts)
    row: dict[str, Any] = {"workload": w.name, "title": w.title, "threads": n_threads,
                           "n_models": w.n_models, "n_samples": samples or w.n_samples,
                           "unit": "ms per epoch of all members"}
    row.update((impl, t * 1e3) for impl, t in timed.items())
    return row


ENSEMBLE_IMPLS = ("ensemble", "sequential", "threadpool-2")


def _format_ensemble_row(row: dict[str, Any]) -> str:
    cells = [row["workload"], str(row["threads"])] + [f"{row[k]:.1f}" for k in ENSEMBLE_IMPLS]
    cells += [f"{row['ensemble'] / row[k]:.2f}" for k in ("sequential", "threadpool-2")]
    return "| " + " | ".join(cells) + " |"


IMPLS = ("fastbp", "reference", "torch", "torch-fused", "jax", "gemm-floor",
         "gemm-floor-fastbp-blas")


def _fmt(us: float | None) -> str:
    if us is None:
        return "-"
    return f"{us / 1000:.2f} ms" if us >= 10_000 else f"{us:.1f}"


def _format_row(row: dict[str, Any]) -> str:
    cells = [row["workload"], str(row["threads"])] + [_fmt(row.get(k)) for k in IMPLS]
    fb = row["fastbp"]
    ratios = []
    for k in ("reference", "torch", "torch-fused", "jax"):
        ratios.append(f"{row[k] / fb:.1f}x" if row.get(k) else "-")
    for key in ("gemm-floor", "gemm-floor-fastbp-blas"):
        floor = row.get(key)
        ratios.append(f"{fb / floor:.3f}" if floor else "-")
    return "| " + " | ".join(cells + ratios) + " |"


def table(report: dict[str, Any]) -> str:
    env = report["environment"]
    head = (f"fastbp {env['fastbp']} benchmark, {env['date']}: {env['cpu']}, {env['cores']} cores; "
            f"Python {env['python']}, NumPy {env['numpy']}, SciPy {env['scipy']}, "
            f"PyTorch {env['torch'] or 'not installed'}, "
            f"JAX {env.get('jax') or 'not installed'} (jaxlib {env.get('jaxlib')}, "
            f"optax {env.get('optax')}); BLAS {', '.join(env.get('blas', []))}; "
            f"threads {env['threads']}")
    if env.get("xla_flags") is not None:
        head += f"; XLA_FLAGS {env['xla_flags']!r}"
    if report.get("latency"):
        head += (f"; onnxruntime {env.get('onnxruntime')}, scikit-learn {env.get('sklearn')}, "
                 f"C compiler {env.get('cc')}")
    steps = [r for r in report["results"] if WORKLOADS[r["workload"]].kind != "ensemble"]
    ensembles = [r for r in report["results"] if WORKLOADS[r["workload"]].kind == "ensemble"]
    lines = [head]
    if steps:
        lines += ["", "median µs per step (ms where marked); speed-up = other / fastbp; "
                  "floor ratio = fastbp / GEMM floor (the step's products alone, through NumPy's "
                  f"BLAS and through the BLAS fastbp calls, {env.get('fastbp_blas', 'scipy')}'s); "
                  "jax = one jax.jit-ted "
                  "value_and_grad + optax.adam step (donated params and state, blocked on; W6 the "
                  "jitted Adam update, W7 the jitted forward), its XLA CPU client's intra-op "
                  "pool sized to the row's thread count", "",
                  "| workload | threads | fastbp | reference | torch | torch-fused | jax "
                  "| floor (NumPy BLAS) | floor (fastbp BLAS) | vs reference | vs torch "
                  "| vs torch-fused | vs jax | / floor (NumPy) | / floor (fastbp BLAS) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [_format_row(r) for r in steps]
        notes = sorted({r["jax-note"] for r in steps if r.get("jax-note")})
        lines += [f"\njax: {note}" for note in notes]
    if ensembles:
        lines += ["", "ensembles: ms per epoch of all members (every member one epoch, Adam, "
                  "shared order); ratio = ensemble / other", "",
                  "| workload | threads | Ensemble.fit | fits one after another "
                  "| fits in ThreadPoolExecutor(2) | / sequential | / thread pool |",
                  "|---|---|---|---|---|---|---|"]
        lines += [_format_ensemble_row(r) for r in ensembles]
    for r in steps:
        if r.get("fastbp-no-dropout"):
            lines.append(f"\n{r['workload']} at {r['threads']} thread(s): fastbp step with "
                         f"dropout / without = {r['fastbp'] / r['fastbp-no-dropout']:.3f} "
                         f"({r['fastbp']:.1f} µs vs {r['fastbp-no-dropout']:.1f} µs, timed "
                         "side by side)")
    if report.get("sklearn"):
        lines += ["", "fit time, scikit-learn's estimator vs fastbp.sklearn's (same parameters, "
                  "same data; median of interleaved fits); speed-up = scikit-learn / fastbp", "",
                  "| case | threads | fit | scikit-learn | fastbp | speed-up |",
                  "|---|---|---|---|---|---|"]
        lines += [_format_sklearn_row(r) for r in report["sklearn"]]
    adam = [r for r in report["results"] if r["workload"] == "W6"]
    for r in adam:
        gbs = 7 * 4 * WORKLOADS["W6"].n_samples / (r["fastbp"] * 1e-6) / 1e9
        lines.append(f"\nW6 at {r['threads']} thread(s): fastbp Adam moves {gbs:.1f} GB/s "
                     "(7 × 4 bytes × N per update)")
    if report.get("latency"):
        lines += ["", latency_table(report["latency"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fastbp bench", description=__doc__)
    every = [*WORKLOADS, *LATENCY_WORKLOADS, *SKLEARN_CASES]
    parser.add_argument("--workloads", default=",".join(every),
                        help="comma-separated subset of " + ",".join(every) +
                        " (S1-S8 need scikit-learn)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of S1-S8's samples to fit on (for a quick run)")
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    parser.add_argument("--no-reference", action="store_true", help="skip the NumPy reference")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--no-jax", action="store_true",
                        help="skip JAX (jax + optax) even if installed")
    parser.add_argument("--budget", type=float, default=0.25,
                        help="seconds of timing per implementation and workload")
    parser.add_argument("--samples", type=int, default=None,
                        help="samples per epoch of the ensemble workloads (default: theirs)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-': stdout)")
    args = parser.parse_args(argv)
    by_upper = {k.upper(): k for k in every}
    names = [by_upper.get(n.strip().upper(), n.strip()) for n in args.workloads.split(",")
             if n.strip()]
    unknown = [n for n in names if n not in every]
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {every}")
    if not 0 < args.scale <= 1:
        parser.error(f"--scale must be in (0, 1], got {args.scale}")
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads takes comma-separated whole numbers, got {args.threads!r}")
    if not threads or min(threads) < 1:
        parser.error(f"--threads must be at least 1, got {args.threads!r}")
    if not 0 < args.budget < float("inf"):
        parser.error(f"--budget must be a positive number of seconds, got {args.budget}")
    if args.samples is not None and args.samples < 1:
        parser.error(f"--samples must be at least 1, got {args.samples}")
    report = run([n for n in names if n in WORKLOADS], threads, not args.no_reference,
                 not args.no_torch, args.budget, args.samples, not args.no_jax)
    latency = [n for n in names if n in LATENCY_WORKLOADS]
    if latency:
        # at one thread, whatever --threads says (single-row serving); calls per
        # contender in proportion to the budget (20,000 at the default 0.25 s)
        report["latency"] = run_latency(
            latency, not args.no_torch, calls=max(500, int(args.budget * 80_000)),
            progress=lambda line: print(line, file=sys.stderr, flush=True))
        report["environment"].update(latency_environment())
    cases = [n for n in names if n in SKLEARN_CASES]
    if cases:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            if names != every:   # asked for explicitly
                parser.error("S1-S8 need scikit-learn (pip install fastbp[sklearn])")
            cases = []
        # At one thread whatever --threads says: at two threads, with scikit-learn on
        # NumPy's OpenBLAS and fastbp on SciPy's, each one's spinning workers took the
        # other's cores (digits fits: 4.3 s instead of 11 ms for both, on 2026-12-01).
        report["sklearn"] = run_sklearn(cases, [1], args.budget * 4, args.scale)
    if args.json == "-":
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(table(report))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
