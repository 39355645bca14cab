"""``python -m fastbp bench``: a quick table (about a minute) of fastbp's compiled step
against the NumPy reference (``fastbp.reference``) and the GEMM floor (the step's matrix
products alone, through NumPy's BLAS), at 1 thread and at the default thread count.

The workloads W1–W11 are defined here (``WORKLOADS``); the comparisons with PyTorch,
JAX, scikit-learn and onnxruntime, the ensemble and latency workloads and the
pytest-benchmark suite live in the repository's ``benchmarks/`` folder
(``python benchmarks/suite.py``; ``python -m fastbp bench --full`` runs it from a
checkout). Implementations are timed side by side in one process: each timing is the
median over several repeats of a loop of calls, after a warm-up, and the repeats of all
implementations are interleaved (``time_side_by_side``).
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

import fastbp
from fastbp import reference as ref
from fastbp._kernels._blas import blas_name, gemm_check
from fastbp.threads import get_num_threads, set_num_threads

__all__ = ["WORKLOADS", "Workload", "QUICK", "make_data", "time_side_by_side", "fastbp_step",
           "reference_step", "step_products", "floor_operands", "gemm_floor", "environment",
           "run", "table", "main"]


@dataclass(frozen=True)
class Workload:
    """One benchmark workload (the definitions of issue 4)."""

    name: str
    title: str
    sizes: tuple[int, ...]
    activation: str
    loss: str
    batch: int
    dtype: str
    kind: str = "step"          # step | adam | forward | fit | ensemble
    n_samples: int = 0          # fit, ensemble: samples per epoch; adam: parameter count
    n_models: int = 0           # ensemble: members (seeds 0..n_models-1)
    dropout: float = 0.0        # on every hidden layer's output (the -dropout rows)


WORKLOADS = {
    "W1": Workload("W1", "MLP 2-16-1 tanh, BCE, batch 32, f64", (2, 16, 1), "tanh",
                   "binary_cross_entropy", 32, "float64"),
    "W2": Workload("W2", "MLP 64-32-10 relu, CE, batch 32, f32", (64, 32, 10), "relu",
                   "cross_entropy", 32, "float32"),
    "W3": Workload("W3", "MLP 784-128-10 relu, CE, batch 64, f32", (784, 128, 10), "relu",
                   "cross_entropy", 64, "float32"),
    "W4": Workload("W4", "MLP 784-1024-1024-10 relu, CE, batch 256, f32", (784, 1024, 1024, 10),
                   "relu", "cross_entropy", 256, "float32"),
    "W5": Workload("W5", "W3 in float64", (784, 128, 10), "relu", "cross_entropy", 64, "float64"),
    "W6": Workload("W6", "one Adam update of 1,048,576 f32 parameters", (), "", "", 0, "float32",
                   kind="adam", n_samples=1 << 20),
    "W7": Workload("W7", "forward of W4's network, batch 4096, f32", (784, 1024, 1024, 10), "relu",
                   "cross_entropy", 4096, "float32", kind="forward"),
    "W8": Workload("W8", "fit of W2's network, one epoch of 50,000 samples, batch 32",
                   (64, 32, 10), "relu", "cross_entropy", 32, "float32", kind="fit",
                   n_samples=50_000),
    # The medium shapes of issue 15: a wide hidden layer, a small tanh network in float64
    # and a deep narrow one.
    "W9": Workload("W9", "MLP 256-2048-10 relu, CE, batch 512, f32", (256, 2048, 10), "relu",
                   "cross_entropy", 512, "float32"),
    "W10": Workload("W10", "MLP 20-100-50-1 tanh, BCE, batch 128, f64", (20, 100, 50, 1), "tanh",
                    "binary_cross_entropy", 128, "float64"),
    "W11": Workload("W11", "MLP 32-64-64-64-64-64-64-4 relu, CE, batch 64, f32",
                    (32, 64, 64, 64, 64, 64, 64, 4), "relu", "cross_entropy", 64, "float32"),
    # Medium float32 networks with tanh hidden layers (their activations in float: issue 22)
    "W3-tanh": Workload("W3-tanh", "W3 with tanh", (784, 128, 10), "tanh", "cross_entropy", 64,
                        "float32"),
    "W12": Workload("W12", "MLP 64-512-512-1 tanh, BCE, batch 128, f32", (64, 512, 512, 1),
                    "tanh", "binary_cross_entropy", 128, "float32"),
    "E1": Workload("E1", "32 members of W2's net, Adam lr 1e-3, one epoch of 50,000 samples, "
                   "batch 32, shared order", (64, 32, 10), "relu", "cross_entropy", 32, "float32",
                   kind="ensemble", n_samples=50_000, n_models=32),
    "E2": Workload("E2", "8 members of W3's net, Adam lr 1e-3, one epoch of 50,000 samples, "
                   "batch 64, shared order", (784, 128, 10), "relu", "cross_entropy", 64,
                   "float32", kind="ensemble", n_samples=50_000, n_models=8),
    "E3": Workload("E3", "64 members of W1's net, Adam lr 1e-3, one epoch of 50,000 samples, "
                   "batch 32, shared order", (2, 16, 1), "tanh", "binary_cross_entropy", 32,
                   "float64", kind="ensemble", n_samples=50_000, n_models=64),
    # The cost of dropout: W2 and W4 with dropout 0.1 on the hidden layers (the table
    # ends with the ratio to the row without).
    "W2-dropout": Workload("W2-dropout", "W2 with dropout 0.1", (64, 32, 10), "relu",
                           "cross_entropy", 32, "float32", dropout=0.1),
    "W4-dropout": Workload("W4-dropout", "W4 with dropout 0.1", (784, 1024, 1024, 10), "relu",
                           "cross_entropy", 256, "float32", dropout=0.1),
}



def make_data(w: Workload, rng: np.random.Generator, n: int | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    n = w.batch if n is None else n
    X = rng.standard_normal((n, w.sizes[0])).astype(w.dtype)
    if w.loss == "cross_entropy":
        y = rng.integers(0, w.sizes[-1], n).astype(np.intp)
    else:
        y = (rng.random((n, w.sizes[-1])) > 0.5).astype(w.dtype)
    return X, y


def time_side_by_side(fns: dict[str, Callable[[], Any]], budget: float = 0.25,
                      repeats: int = 7, pause: float = 0.0,
                      contexts: dict[str, Callable[[], Any]] | None = None) -> dict[str, float]:
    """Median seconds per call of each function, timed in interleaved rounds.

    Each function is warmed up (for about budget/repeats, after a first call) and its
    loop sized to take about budget/repeats;
    then every round times one loop of each function in turn. Interleaving puts
    each contender's repeats at the same moments of a shared machine's drift, so
    that ratios between them hold even when absolute times wander by several
    percent. ``pause`` seconds before each loop let the previous contender's
    worker threads (OpenMP/OpenBLAS spin after a parallel region) go idle;
    ``contexts[name]()``, if given, is entered around each of that function's loops.
    """
    contexts = contexts or {}

    def timed_loop(name: str, n: int) -> float:
        with contexts.get(name, contextlib.nullcontext)():
            t0 = time.perf_counter()
            for _ in range(n):
                fns[name]()
            return time.perf_counter() - t0

    loops = {}
    for name in fns:
        # warm-up: one call, then calls until one loop's share of the budget has passed
        # (a jitted JAX step took tens of calls to settle after its compiling first call)
        timed_loop(name, 1)
        n, spent = 1, 0.0
        while spent < budget / repeats:
            spent += timed_loop(name, n)
            n *= 2
        once = max(timed_loop(name, 1), 1e-7)
        loops[name] = max(1, int(budget / repeats / once))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name in fns:
            if pause:
                time.sleep(pause)
            times[name].append(timed_loop(name, loops[name]) / loops[name])
    return {name: statistics.median(t) for name, t in times.items()}


# ---------------------------------------------------------------- implementations

def fastbp_step(w: Workload, seed: int = 0) -> Callable[[], Any]:
    rng = np.random.default_rng(seed)
    if w.kind == "adam":
        p = rng.standard_normal(w.n_samples).astype(w.dtype)
        g = rng.standard_normal(w.n_samples).astype(w.dtype)
        opt = fastbp.Adam([p])
        return lambda: opt.step([g])
    model = fastbp.MLP(w.sizes, w.activation, w.loss, dtype=w.dtype, seed=seed,
                       dropout=w.dropout)
    if w.kind == "forward":
        X, _ = make_data(w, rng)
        return lambda: model.forward(X)
    if w.kind == "fit":
        X, y = make_data(w, rng, w.n_samples)
        opt = fastbp.Adam(model.parameters())
        return lambda: model.fit(X, y, epochs=1, batch_size=w.batch, optimizer=opt, seed=0,
                                 progress=False)
    X, y = make_data(w, rng)
    opt = fastbp.Adam(model.parameters())
    return lambda: model.train_step(X, y, opt)


def reference_step(w: Workload, seed: int = 0) -> Callable[[], Any]:
    """The same step written with fastbp.reference (NumPy) calls."""
    rng = np.random.default_rng(seed)
    if w.kind == "adam":
        p = rng.standard_normal(w.n_samples).astype(w.dtype)
        g = rng.standard_normal(w.n_samples).astype(w.dtype)
        m, v = np.zeros_like(p), np.zeros_like(p)
        counter = [0]

        def adam() -> None:
            counter[0] += 1
            ref.adam_step(p, g, m, v, None, step=counter[0], lr=1e-3)
        return adam
    model = fastbp.MLP(w.sizes, w.activation, w.loss, dtype=w.dtype, seed=seed,
                       dropout=w.dropout)
    params = model.parameters()
    acts = [layer.activation for layer in model.layers]
    counter = [0]
    masks: dict[int, np.ndarray] = {}

    def forward(X: np.ndarray, train: bool = False
                ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        cache = []
        for i, act in enumerate(acts):
            Z, A = ref.dense_forward(X, params[2 * i], params[2 * i + 1], act)
            cache.append((X, Z, A))
            X = A
            p = model.layers[i].dropout
            if train and p:
                masks[i] = ref.dropout_mask(model.dropout_seed, i, counter[0], A.shape, p)
                X = ref.dropout_apply(A, masks[i], p)
        return X, cache

    if w.kind == "forward":
        X, _ = make_data(w, rng)
        return lambda: forward(X)[0]
    state = [(np.zeros_like(p), np.zeros_like(p)) for p in params]

    def step(X: np.ndarray, y: np.ndarray) -> float:
        counter[0] += 1
        out, cache = forward(X, train=True)
        grad: Any  # dL/dA of layer i (dense_backward gives None below layer 0: need_dX=False)
        loss, grad = ref.loss_forward_backward(w.loss, out, y)
        for i in range(len(acts) - 1, -1, -1):
            Xi, Z, A = cache[i]
            if i in masks:
                grad = ref.dropout_apply(grad, masks[i], model.layers[i].dropout)
            grad, dW, db = ref.dense_backward(Xi, params[2 * i], Z, A, grad, acts[i],
                                              need_dX=i > 0)
            for p, g, (m, v) in ((params[2 * i], dW, state[2 * i]),
                                 (params[2 * i + 1], db, state[2 * i + 1])):
                ref.adam_step(p, g, m, v, None, step=counter[0], lr=1e-3)
        return loss

    if w.kind == "fit":
        X, y = make_data(w, rng, w.n_samples)

        def epoch() -> None:
            order = np.random.default_rng(0).permutation(len(X))
            for start in range(0, len(X), w.batch):
                idx = order[start:start + w.batch]
                step(X[idx], y[idx])
        return epoch
    X, y = make_data(w, rng)
    return lambda: step(X, y)


def step_products(w: Workload) -> list[tuple[str, int, bool, bool, tuple[int, int, int]]]:
    """The matrix products of one step (or forward pass) of ``w``, in the order fastbp's
    engine calls them (``fastbp/_kernels/dense.pyx``), as (what, layer, trans_a, trans_b,
    (m, n, k)) of C (m×n) := op(A)·op(B) with k the inner size.

    Layer l reads X_l (batch × in_l; the data for l = 0) and holds W_l (in_l × out_l).
    Forward, every layer: Z_l = X_l·W_l. Backward, from the last layer down: dX_l =
    dZ_l·W_lᵀ for every layer but the first (the data needs no gradient), then
    dW_l = X_lᵀ·dZ_l. A forward workload has the forward products only."""
    if w.kind not in ("step", "forward"):
        return []
    n, sizes = w.batch, w.sizes
    layers = range(len(sizes) - 1)
    out = [("Z = X·W", l, False, False, (n, sizes[l + 1], sizes[l])) for l in layers]
    if w.kind == "step":
        for l in reversed(layers):
            if l > 0:
                out.append(("dX = dZ·Wᵀ", l, False, True, (n, sizes[l], sizes[l + 1])))
            out.append(("dW = Xᵀ·dZ", l, True, False, (sizes[l], sizes[l + 1], n)))
    return out


def floor_operands(w: Workload, seed: int = 0
                   ) -> list[tuple[bool, bool, np.ndarray, np.ndarray, np.ndarray]]:
    """(trans_a, trans_b, A, B, C) of each of ``step_products(w)``, A and B as stored
    (op(A) = Aᵀ when trans_a), into preallocated outputs laid out as the engine's:
    layer l's input X_l is layer l-1's output, its dX goes into layer l-1's dZ."""
    products = step_products(w)
    if not products:
        return []
    rng = np.random.default_rng(seed)
    n, sizes, dt = w.batch, w.sizes, w.dtype
    # weights at the scale of fastbp's init (1/sqrt(fan-in)): values stay O(1) layer after layer
    Ws = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dt) for a, b in zip(sizes, sizes[1:])]
    X = [rng.standard_normal((n, sizes[0])).astype(dt)] + [np.zeros((n, s), dt) for s in sizes[1:]]
    dZ = [rng.standard_normal((n, s)).astype(dt) for s in sizes[1:]]
    dW = [np.empty_like(W) for W in Ws]
    ops = []
    for what, l, ta, tb, _ in products:
        if what.startswith("Z"):
            ops.append((ta, tb, X[l], Ws[l], X[l + 1]))
        elif what.startswith("dX"):
            ops.append((ta, tb, dZ[l], Ws[l], dZ[l - 1]))
        else:
            ops.append((ta, tb, X[l], dZ[l], dW[l]))
    return ops


def gemm_floor(w: Workload, blas: str = "numpy") -> Callable[[], Any] | None:
    """The step's matrix products alone (``step_products``), into preallocated outputs:
    through NumPy's BLAS (``blas="numpy"``, ``np.matmul(..., out=)``) or through the BLAS
    fastbp calls (``"fastbp"``, via ``gemm_check``: NumPy's OpenBLAS too when
    fastbp/_blas_route.py found it, else SciPy's ``cython_blas``). Each product
    is one call from a Python loop over prepared operands, so the floor carries that call's
    overhead, a visible part of it for the small networks."""
    ops = floor_operands(w)
    if not ops:
        return None
    if blas == "numpy":
        matmul = np.matmul
        views = [(A.T if ta else A, B.T if tb else B, C) for ta, tb, A, B, C in ops]

        def products() -> None:
            for a, b, c in views:
                matmul(a, b, out=c)
    else:
        def products() -> None:
            for ta, tb, A, B, C in ops:
                gemm_check(ta, tb, 1.0, A, B, 0.0, C)
    return products


# ---------------------------------------------------------------- driver

def print_report(report: dict[str, Any], table: Callable[[dict[str, Any]], str],
                 json_path: str | None) -> None:
    """A benchmark script's ending: its table on stdout, and the report as JSON in
    ``json_path`` (when given).

    Parameters
    ----------
    report : dict
        What the script measured (JSON-serialisable).
    table : callable
        ``table(report)``: the Markdown table.
    json_path : str or None
        Where to write the report.
    """
    print(table(report))
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(report, fh, indent=2)


def environment(threads: list[int]) -> dict[str, Any]:
    """The machine and versions a run was made on (JSON-ready)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "cpu": cpu, "cores": os.cpu_count(),
        "python": platform.python_version(), "fastbp": fastbp.__version__,
        "numpy": np.__version__, "threads": threads, "fastbp_blas": blas_name(),
    }
    # other libraries' versions from their metadata, without importing them (JAX reads
    # its flags when first imported; PyTorch takes seconds)
    for dist in ("scipy", "torch", "jax", "jaxlib", "optax"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = sorted({f"{d.get('internal_api')} {d.get('version')} ({d.get('architecture')})"
                               for d in threadpool_info() if d.get("user_api") == "blas"})
    except ImportError:
        pass
    return info


#: the quick run's workloads: the small and medium steps (seconds each, not minutes)
QUICK = ("W1", "W2", "W3", "W5", "W6", "W10", "W11")


def run(workloads: list[str], threads: list[int], budget: float = 0.25,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """fastbp, the reference and the GEMM floor on each workload at each thread count
    (µs per step, medians of interleaved repeats); a JSON-ready dict."""
    results: list[dict[str, Any]] = []
    for n_threads in threads:
        set_num_threads(n_threads)
        for name in workloads:
            w = WORKLOADS[name]
            if progress is not None:
                progress(f"timing {name} at {n_threads} thread(s): {w.title}")
            fns: dict[str, Callable[[], Any] | None] = {
                "fastbp": fastbp_step(w), "reference": reference_step(w),
                "gemm-floor": gemm_floor(w, "numpy")}
            timed = time_side_by_side({k: f for k, f in fns.items() if f is not None}, budget)
            row: dict[str, Any] = {"workload": name, "title": w.title, "threads": n_threads}
            row.update((impl, t * 1e6) for impl, t in timed.items())
            results.append(row)
            if progress is not None:
                progress(_format_row(row))
    return {"environment": environment(threads), "results": results}


def _fmt(us: float | None) -> str:
    if us is None:
        return "-"
    return f"{us / 1000:.2f} ms" if us >= 10_000 else f"{us:.1f}"


def _format_row(row: dict[str, Any]) -> str:
    fb, floor = row["fastbp"], row.get("gemm-floor")
    cells = [row["workload"], str(row["threads"]), _fmt(fb), _fmt(row.get("reference")),
             _fmt(floor), f"{row['reference'] / fb:.1f}x" if row.get("reference") else "-",
             f"{fb / floor:.3f}" if floor else "-"]
    return "| " + " | ".join(cells) + " |"


def table(report: dict[str, Any]) -> str:
    """The report as a Markdown table with its environment line."""
    env = report["environment"]
    lines = [f"fastbp {env['fastbp']} quick benchmark, {env['date']}: {env['cpu']}, "
             f"{env['cores']} cores; Python {env['python']}, NumPy {env['numpy']}, "
             f"SciPy {env['scipy']}; BLAS {', '.join(env.get('blas', []))} (fastbp calls "
             f"{env['fastbp_blas']}'s); threads {env['threads']}", "",
             "median µs per step (ms where marked); vs reference = reference / fastbp; "
             "/ floor = fastbp / its matrix products alone (NumPy's matmul)", "",
             "| workload | threads | fastbp | reference | GEMM floor | vs reference | / floor |",
             "|---|---|---|---|---|---|---|"]
    lines += [_format_row(r) for r in report["results"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The ``python -m fastbp bench`` command line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fastbp bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default=",".join(QUICK),
                        help=f"comma-separated subset of {','.join(WORKLOADS)} "
                        f"(default: {','.join(QUICK)})")
    parser.add_argument("--threads", default=None,
                        help="thread counts, e.g. 1,2 (default: 1 and the default count)")
    parser.add_argument("--budget", type=float, default=1.0,
                        help="seconds of timing per implementation and workload (default 1: "
                        "about a minute in all)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-': stdout)")
    parser.add_argument("--full", action="store_true",
                        help="run the full comparison suite instead (benchmarks/suite.py of a "
                        "checkout, run from the checkout: PyTorch, JAX, scikit-learn, "
                        "onnxruntime, ensembles, latency); other arguments go to it")
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--full" in argv:   # everything else is the suite's
        return _full_suite([a for a in argv if a != "--full"])
    args = parser.parse_args(argv)
    by_upper = {k.upper(): k for k in WORKLOADS}
    names = [by_upper.get(n.strip().upper(), n.strip()) for n in args.workloads.split(",")
             if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {list(WORKLOADS)} "
                     "(E1, E2, L1, L2 and S1-S8 are in benchmarks/suite.py: --full)")
    slow = [n for n in names if WORKLOADS[n].kind in ("fit", "ensemble")]
    if slow:
        parser.error(f"{slow} need the full suite (--full)")
    default = get_num_threads()
    try:
        threads = sorted({1, default}) if args.threads is None else \
            [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads takes comma-separated whole numbers, got {args.threads!r}")
    if not threads or min(threads) < 1:
        parser.error(f"--threads must be at least 1, got {args.threads!r}")
    if not 0 < args.budget < float("inf"):
        parser.error(f"--budget must be a positive number of seconds, got {args.budget}")
    try:
        report = run(names, threads, args.budget,
                     progress=lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        set_num_threads(default)
    if args.json == "-":
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(table(report))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(report, fh, indent=2)
    return 0


def _full_suite(argv: list[str]) -> int:
    """Run benchmarks/suite.py of the checkout in the current folder (or above it)."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        suite = folder / "benchmarks" / "suite.py"
        if suite.is_file():
            return subprocess.call([sys.executable, str(suite), *argv])
    print("python -m fastbp bench --full runs benchmarks/suite.py of a fastbp checkout: run it "
          "in the checkout (git clone, then pip install \".[test]\" there)", file=sys.stderr)
    return 2
