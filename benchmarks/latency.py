"""Prediction latency (the bench's L workloads): µs per call, median and 99th
percentile, of fastbp, onnxruntime (the exported graph, one intra-op thread),
PyTorch eager under ``inference_mode``, scikit-learn's MLP and the exported C
code timed in a C loop, all with the same weights.

Each Python contender is timed call by call (``perf_counter_ns`` around one call,
the timer's own cost subtracted), in interleaved rounds so that all see the same
moments of a shared machine; the C code is timed by a small driver compiled with
``-O2`` (no ``-march``) that does the same with ``clock_gettime``. Every
contender's output is first checked against fastbp's.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import fastbp

__all__ = ["LATENCY_WORKLOADS", "LatencyWorkload", "run_latency", "latency_table",
           "latency_environment"]

BATCHES = (1, 16)
# fastbp-unchecked: predict(X, check_finite=False), the cost of the finiteness check
CONTENDERS = ("fastbp", "fastbp-unchecked", "onnxruntime", "torch", "sklearn", "c")


@dataclass(frozen=True)
class LatencyWorkload:
    name: str
    title: str
    sizes: tuple[int, ...]
    activation: str
    loss: str
    dtype: str = "float32"

    @property
    def proba(self) -> bool:
        return self.loss == "cross_entropy"


LATENCY_WORKLOADS = {
    "L1": LatencyWorkload("L1", "predict_proba of MLP 64-32-10 relu (softmax), f32",
                          (64, 32, 10), "relu", "cross_entropy"),
    "L2": LatencyWorkload("L2", "predict of MLP 20-100-50-1 tanh (regression), f32",
                          (20, 100, 50, 1), "tanh", "mse"),
}


def _percentiles(samples_ns: list[int], overhead_ns: float) -> dict[str, float]:
    us = np.maximum(np.asarray(samples_ns, dtype=np.float64) - overhead_ns, 0.0) / 1000.0
    return {"median": float(np.median(us)), "p99": float(np.percentile(us, 99))}


def _timer_overhead() -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(20000):
        t0 = clock()
        samples.append(clock() - t0)
    return float(statistics.median(samples))


def time_calls(fns: dict[str, Callable[[], Any]], calls: int, rounds: int = 5
               ) -> dict[str, dict[str, float]]:
    """Median and p99 µs per call of each function, ``calls`` timed calls each, in
    ``rounds`` interleaved rounds (after a warm-up)."""
    clock = time.perf_counter_ns
    overhead = _timer_overhead()
    samples: dict[str, list[int]] = {name: [] for name in fns}
    for fn in fns.values():
        for _ in range(200):
            fn()
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        for name, fn in fns.items():
            out = samples[name]
            for _ in range(per_round):
                t0 = clock()
                fn()
                out.append(clock() - t0)
    return {name: _percentiles(s, overhead) for name, s in samples.items()}


# ---------------------------------------------------------------- contenders

def _fastbp(model: Any, X: np.ndarray, proba: bool, check_finite: bool = True
            ) -> Callable[[], Any]:
    model.forward(X)  # builds the engine and its workspaces
    if proba:
        return lambda: model.predict_proba(X, check_finite=check_finite)
    return lambda: model.predict(X, check_finite=check_finite)


def _onnxruntime(model: Any, X: np.ndarray) -> Callable[[], Any] | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    from fastbp.export import to_onnx
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(to_onnx(model), opts, providers=["CPUExecutionProvider"])
    feed = {"X": X}
    return lambda: sess.run(None, feed)[0]


def _torch(model: Any, X: np.ndarray, proba: bool) -> Callable[[], Any] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
    mods: list[Any] = []
    for layer in model.layers:
        lin = torch.nn.Linear(layer.in_features, layer.out_features)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.W.T)))
            lin.bias.copy_(torch.from_numpy(layer.b))
        mods.append(lin)
        if layer.activation != "identity":
            mods.append(acts[layer.activation]())
    net = torch.nn.Sequential(*mods).eval()

    def call() -> Any:
        with torch.inference_mode():
            out = net(torch.from_numpy(X))
            return (torch.softmax(out, dim=1) if proba else out).numpy()
    return call


def _sklearn(model: Any, X: np.ndarray, w: LatencyWorkload) -> Callable[[], Any] | None:
    try:
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    except ImportError:
        return None
    import warnings
    hidden = tuple(w.sizes[1:-1])
    k = w.sizes[-1]
    rng = np.random.default_rng(0)
    Xi = rng.standard_normal((max(k, 2), w.sizes[0])).astype(X.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if w.proba:
            est: Any = MLPClassifier(hidden_layer_sizes=hidden, activation=w.activation)
            est.partial_fit(Xi, np.arange(len(Xi)) % k, classes=np.arange(k))
        else:
            est = MLPRegressor(hidden_layer_sizes=hidden, activation=w.activation)
            est.partial_fit(Xi, np.zeros(len(Xi)))
    est.coefs_ = [layer.W.copy() for layer in model.layers]
    est.intercepts_ = [layer.b.copy() for layer in model.layers]
    return (lambda: est.predict_proba(X)) if w.proba else (lambda: est.predict(X))


C_DRIVER = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "bench_model.h"

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    size_t rows = (size_t)atol(argv[1]), calls = (size_t)atol(argv[2]), i, j;
    size_t n_in = rows * BENCH_MODEL_N_INPUTS, n_out = rows * BENCH_MODEL_N_OUTPUTS;
    float *x = malloc(n_in * sizeof *x), *y = malloc(n_out * sizeof *y);
    double *t = malloc(calls * sizeof *t), overhead, sink = 0.0;
    (void)argc;
    for (i = 0; i < n_in; i++) x[i] = (float)((double)((i * 7919u) % 1000u) / 500.0 - 1.0);
    for (i = 0; i < calls; i++) { double a = now_ns(); t[i] = now_ns() - a; }
    qsort(t, calls, sizeof *t, cmp);
    overhead = t[calls / 2];
    for (i = 0; i < 1000; i++) bench_model_predict(x, rows, y);
    for (i = 0; i < calls; i++) {
        double a = now_ns();
        bench_model_predict(x, rows, y);
        t[i] = now_ns() - a - overhead;
        sink += y[0];
    }
    qsort(t, calls, sizeof *t, cmp);
    printf("%.1f %.1f", t[calls / 2], t[(size_t)(calls * 0.99)]);
    for (j = 0; j < n_out; j++) printf(" %a", (double)y[j]);
    printf("\n");
    free(x); free(y); free(t);
    return sink == 12345.678 ? 1 : 0;
}
"""


def compile_c_driver(model: Any, directory: str) -> str | None:
    """The exported C code and the timing driver, compiled with -O2 into an executable
    in ``directory``; None without a C compiler or for a float64 model."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None or model.dtype != np.float32:
        return None
    from fastbp.export import to_c
    _, source = to_c(model, directory, name="bench_model")
    driver = os.path.join(directory, "driver.c")
    with open(driver, "w") as fh:
        fh.write(C_DRIVER)
    exe = os.path.join(directory, "driver")
    subprocess.run([cc, "-std=c99", "-O2", driver, source, "-o", exe, "-lm"], check=True,
                   capture_output=True, timeout=120)
    return exe


def c_latency(exe: str, rows: int, calls: int) -> tuple[dict[str, float], np.ndarray]:
    """Median and p99 µs per call of the compiled driver's model in a C loop, and its
    output on the driver's input (see _c_input)."""
    out = subprocess.run([exe, str(rows), str(calls)], check=True, capture_output=True,
                         text=True, timeout=300).stdout.split()
    stats = {"median": float(out[0]) / 1000.0, "p99": float(out[1]) / 1000.0}
    return stats, np.array([float.fromhex(v) for v in out[2:]], dtype=np.float32)


def _c_input(rows: int, n_in: int) -> np.ndarray:
    """The C driver's input, computed the same way."""
    i = np.arange(rows * n_in, dtype=np.uint64)
    return ((((i * 7919) % 1000).astype(np.float64) / 500.0 - 1.0).astype(np.float32)
            .reshape(rows, n_in))


def make_model(w: LatencyWorkload) -> Any:
    return fastbp.MLP(w.sizes, w.activation, w.loss, dtype=w.dtype, seed=0)


def make_input(w: LatencyWorkload, batch: int) -> np.ndarray:
    return np.random.default_rng(batch).standard_normal((batch, w.sizes[0])).astype(w.dtype)


def contender(impl: str, w: LatencyWorkload, model: Any, X: np.ndarray
              ) -> Callable[[], Any] | None:
    """One prediction call of ``impl`` (a Python contender) on X; None if not installed."""
    if impl == "fastbp":
        return _fastbp(model, X, w.proba)
    if impl == "fastbp-unchecked":
        return _fastbp(model, X, w.proba, check_finite=False)
    if impl == "onnxruntime":
        return _onnxruntime(model, X)
    if impl == "torch":
        return _torch(model, X, w.proba)
    if impl == "sklearn":
        return _sklearn(model, X, w)
    raise ValueError(f"impl must be one of {CONTENDERS[:-1]}, got {impl!r}")


# ---------------------------------------------------------------- driver

def run_latency(names: list[str], include_torch: bool = True, calls: int = 20000,
                progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """One row per workload and batch size: {contender: {"median": µs, "p99": µs}}."""
    fastbp.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    for name in names:
        w = LATENCY_WORKLOADS[name]
        model = make_model(w)
        with tempfile.TemporaryDirectory() as tmp:
            rows += _latency_rows(w, model, compile_c_driver(model, tmp), include_torch, calls,
                                  progress)
    return rows


def _latency_rows(w: LatencyWorkload, model: Any, exe: str | None, include_torch: bool,
                  calls: int, progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    """The rows of one workload, for each batch size (exe: compile_c_driver's)."""
    rows: list[dict[str, Any]] = []
    name = w.name
    for batch in BATCHES:
        X = make_input(w, batch)
        fns = {impl: contender(impl, w, model, X) for impl in CONTENDERS[:-1]
               if include_torch or impl != "torch"}
        timed = {k: f for k, f in fns.items() if f is not None}
        want = np.asarray(timed["fastbp"]()).reshape(batch, -1)
        for k, f in timed.items():  # the same weights: the same answers
            got = np.asarray(f(), dtype=np.float64).reshape(batch, -1)
            if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
                raise AssertionError(f"{name} batch {batch}: {k} disagrees with fastbp")
        row: dict[str, Any] = {"workload": name, "title": w.title, "batch": batch,
                               "threads": 1}
        row.update(time_calls(timed, calls))
        if exe is not None:
            stats, out = c_latency(exe, batch, calls)
            Xc = _c_input(batch, w.sizes[0])
            ref = (model.predict_proba(Xc) if w.proba else model.forward(Xc)).ravel()
            if not np.allclose(out, ref, rtol=1e-4, atol=1e-5):
                raise AssertionError(f"{name} batch {batch}: the C code disagrees")
            row["c"] = stats
        rows.append(row)
        if progress:
            progress(_latency_row(row))
    return rows


def latency_environment() -> dict[str, Any]:
    """The versions of the latency contenders: onnxruntime, scikit-learn, the C compiler."""
    info: dict[str, Any] = {}
    for module in ("onnxruntime", "sklearn"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    info["cc"] = None
    if cc:
        proc = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        info["cc"] = (proc.stdout.splitlines() or [""])[0] + " (-std=c99 -O2)"
    return info


def _cell(stats: dict[str, float] | None) -> str:
    return "-" if not stats else f"{stats['median']:.2f} / {stats['p99']:.2f}"


def _latency_row(row: dict[str, Any]) -> str:
    cells = [row["workload"], str(row["batch"])] + [_cell(row.get(k)) for k in CONTENDERS]
    ort = row.get("onnxruntime")
    cells.append(f"{ort['median'] / row['fastbp']['median']:.1f}x" if ort else "-")
    return "| " + " | ".join(cells) + " |"


def latency_table(rows: list[dict[str, Any]]) -> str:
    lines = ["prediction latency, µs per call: median / p99 (1 thread; fastbp unchecked: "
             "check_finite=False; C: the exported code in a C loop, -O2); vs onnxruntime = "
             "onnxruntime median / fastbp median", "",
             "| workload | rows | fastbp | fastbp unchecked | onnxruntime | torch | sklearn | C "
             "| vs onnxruntime |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [_latency_row(r) for r in rows]
    return "\n".join(lines)
