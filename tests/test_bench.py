"""`python -m fastbp bench` (the quick table), benchmarks/suite.py (the full comparison)
and the pytest-benchmark suite run (from the installed package in CI); timings
themselves are never asserted, only their presence."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import suite as bench  # noqa: E402  (the full harness, benchmarks/suite.py)
from fastbp.bench import WORKLOADS  # noqa: E402

# runs the CLI and the benchmark suite in subprocesses: selected with -m packaging
pytestmark = pytest.mark.packaging


def _bench(tmp_path, *args):
    """The full suite, benchmarks/suite.py (cwd outside the checkout: the installed package
    is what runs)."""
    return subprocess.run([sys.executable, str(BENCHMARKS / "suite.py"), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def _quick(cwd, *args):
    """python -m fastbp bench: the quick table."""
    return subprocess.run([sys.executable, "-m", "fastbp", "bench", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_quick_bench_table_and_progress(tmp_path):
    out = tmp_path / "quick.json"
    proc = _quick(tmp_path, "--workloads", "W1,w2", "--budget", "0.02", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    threads = report["environment"]["threads"]
    assert 1 in threads
    rows = [(r["workload"], r["threads"]) for r in report["results"]]
    assert rows == [(w, t) for t in threads for w in ("W1", "W2")]
    for r in report["results"]:
        assert r["fastbp"] > 0 and r["reference"] > 0 and r["gemm-floor"] > 0
    assert "| workload | threads | fastbp | reference | GEMM floor |" in proc.stdout
    assert "timing W2 at 1 thread(s)" in proc.stderr   # progress as it goes


def test_quick_bench_points_to_the_full_suite(tmp_path):
    proc = _quick(tmp_path, "--full", "--workloads", "W1", "--threads", "1")
    assert proc.returncode == 2 and "benchmarks/suite.py" in proc.stderr
    proc = _quick(tmp_path, "--workloads", "E1")
    assert proc.returncode == 2 and "--full" in proc.stderr
    if BENCHMARKS.is_dir():   # from the checkout, --full runs the suite
        proc = _quick(BENCHMARKS.parent, "--full", "--workloads", "W1", "--threads", "1",
                      "--budget", "0.01", "--no-torch", "--no-jax", "--no-reference")
        assert proc.returncode == 0, proc.stderr
        assert "| W1 | 1 |" in proc.stdout and "torch-fused" in proc.stdout


def test_bench_json_report(tmp_path):
    out = tmp_path / "bench.json"
    proc = _bench(tmp_path, "--workloads", "W1,w3,W6,W9,W10,w11", "--threads", "1", "--budget",
                  "0.02", "--no-torch", "--no-jax", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    env = report["environment"]
    for key in ("date", "cpu", "cores", "python", "numpy", "scipy", "fastbp", "threads"):
        assert env[key] not in (None, ""), key
    assert env["threads"] == [1]
    rows = {r["workload"]: r for r in report["results"]}
    assert list(rows) == ["W1", "W3", "W6", "W9", "W10", "W11"]
    for name, row in rows.items():
        assert row["threads"] == 1
        assert row["fastbp"] > 0 and row["reference"] > 0
        assert "torch" not in row and "jax" not in row
        assert row["title"] == WORKLOADS[name].title
    # both GEMM floors for every step workload, small or not; none for the Adam update
    for name in ("W1", "W3", "W9", "W10", "W11"):
        assert rows[name]["gemm-floor"] > 0 and rows[name]["gemm-floor-fastbp-blas"] > 0
    assert "gemm-floor" not in rows["W6"]
    # the printed table has a row per workload and W6's bandwidth line
    assert "| workload | threads | fastbp |" in proc.stdout
    for name in rows:
        assert f"| {name} | 1 |" in proc.stdout
    assert "W6 at 1 thread(s): fastbp Adam moves" in proc.stdout


def test_bench_jax_column(tmp_path):
    """With jax and optax: a jax time per step workload (not the dropout rows), its thread
    count, the versions and XLA flags in the environment, the column and its ratio."""
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    out = tmp_path / "bench.json"
    proc = _bench(tmp_path, "--workloads", "W10,W11,W2-dropout", "--threads", "1", "--budget",
                  "0.02", "--no-torch", "--no-reference", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    env = report["environment"]
    for key in ("jax", "jaxlib", "optax"):
        assert env[key], key
    # at --threads 1 only, XLA's flags are set before jax is imported
    assert bench.JAX_ONE_THREAD_XLA_FLAGS in env["xla_flags"]
    assert env["jax_enable_x64"] is True            # W10 is float64
    rows = {r["workload"]: r for r in report["results"]}
    for name in ("W10", "W11"):
        assert rows[name]["jax"] > 0 and rows[name]["jax-threads"] == 1
    assert "jax" not in rows["W2-dropout"]
    assert "| torch-fused | jax | floor (NumPy BLAS) |" in proc.stdout
    assert "| vs torch-fused | vs jax |" in proc.stdout
    assert f"XLA_FLAGS '{env['xla_flags']}'" in proc.stdout
    w10 = next(line for line in proc.stdout.splitlines() if line.startswith("| W10 | 1 |"))
    ratio = f"{rows['W10']['jax'] / rows['W10']['fastbp']:.1f}x"
    assert ratio in w10.split(" | ")


def test_bench_latency_rows(tmp_path):
    # L1/L2: one row per workload and batch size, each contender's median and p99.
    pytest.importorskip("onnxruntime")
    pytest.importorskip("sklearn")
    out = tmp_path / "latency.json"
    proc = _bench(tmp_path, "--workloads", "l1,L2", "--budget", "0.005", "--no-torch",
                  "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["results"] == []
    assert report["environment"]["onnxruntime"] and report["environment"]["sklearn"]
    rows = report["latency"]
    assert [(r["workload"], r["batch"]) for r in rows] == [("L1", 1), ("L1", 16), ("L2", 1),
                                                            ("L2", 16)]
    has_cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    for row in rows:
        assert row["threads"] == 1
        expected = {"fastbp", "fastbp-unchecked", "onnxruntime", "sklearn"} | (
            {"c"} if has_cc else set())
        assert expected <= set(row) and "torch" not in row
        for impl in expected:
            assert set(row[impl]) == {"median", "p99"}
            assert 0 <= row[impl]["median"] <= row[impl]["p99"]
    assert "| workload | rows | fastbp | fastbp unchecked | onnxruntime | torch | sklearn | C |" \
        in proc.stdout
    assert "| L2 | 16 |" in proc.stdout


def test_bench_ensemble_rows(tmp_path):
    """E1 and E2: one row per thread count with the three contenders (times not asserted)."""
    out = tmp_path / "bench.json"
    # (one thread count: at 2 each timed loop waits 1 s for idle BLAS workers)
    proc = _bench(tmp_path, "--workloads", "E1,E2", "--threads", "1", "--budget", "0.01",
                  "--samples", "256", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["results"]
    assert [(r["workload"], r["threads"]) for r in rows] == [("E1", 1), ("E2", 1)]
    for r in rows:
        assert r["n_models"] == {"E1": 32, "E2": 8}[r["workload"]] and r["n_samples"] == 256
        for impl in ("ensemble", "sequential", "threadpool-2"):
            assert r[impl] > 0, impl
        assert "fastbp" not in r and "reference" not in r
    assert "| workload | threads | Ensemble.fit |" in proc.stdout
    assert "| workload | threads | fastbp |" not in proc.stdout  # no empty step table
    for name in ("E1", "E2"):
        assert f"| {name} | 1 |" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--workloads", "W99"], "unknown workloads"),
    (["--threads", "one"], "--threads takes comma-separated whole numbers"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--budget", "0"], "--budget must be a positive number"),
    (["--samples", "0"], "--samples must be at least 1"),
])
def test_bench_rejects_bad_options(tmp_path, args, message):
    proc = _bench(tmp_path, *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="needs the checkout's benchmarks/")
def test_pytest_benchmark_suite_runs(tmp_path):
    """Each selected benchmark once (--benchmark-disable), against the installed package."""
    pytest.importorskip("pytest_benchmark")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(BENCHMARKS), "-q", "-p", "no:cacheprovider",
         "--benchmark-disable", "-k",
         "W1 or W2 or W6 or matches_reference or matches_fastbp or fits_agree",
         "--rootdir", str(BENCHMARKS)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_each_contender_runs_with_the_other_blas_held_to_one_thread():
    from threadpoolctl import threadpool_info

    from fastbp.threads import using_threads

    files = bench.blas_files()
    if not files:
        pytest.skip("NumPy and SciPy share one BLAS library here")

    def threads_of(lib):
        return next(d["num_threads"] for d in threadpool_info() if d["filepath"] == files[lib])

    from fastbp._kernels._blas import blas_name

    # fastbp's contender calls the BLAS fastbp/_blas_route.py chose
    fastbp_threads = (2, 1) if blas_name() == "numpy" else (1, 2)
    with using_threads(2):
        with bench.quiet_other_blas("fastbp", files)():
            assert (threads_of("numpy"), threads_of("scipy")) == fastbp_threads
        with bench.quiet_other_blas("reference", files)():
            assert (threads_of("numpy"), threads_of("scipy")) == (2, 1)
        with bench.quiet_other_blas("torch", files)():
            assert (threads_of("numpy"), threads_of("scipy")) == (1, 1)
        assert (threads_of("numpy"), threads_of("scipy")) == (2, 2)


def test_bench_sklearn_rows(tmp_path):
    """S1-S6: scikit-learn's fit against fastbp.sklearn's, same parameters (a tiny run)."""
    pytest.importorskip("sklearn")
    out = tmp_path / "bench.json"
    proc = _bench(tmp_path, "--workloads", "S1,S2,S3,S4,S5,S6", "--threads", "1", "--budget",
                  "0.001", "--scale", "0.03", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["results"] == []
    rows = {r["case"]: r for r in report["sklearn"]}
    assert list(rows) == ["S1", "S2", "S3", "S4", "S5", "S6"]
    for row in rows.values():
        assert row["threads"] == 1 and row["fastbp"] > 0 and row["sklearn"] > 0
        assert row["speedup"] == pytest.approx(row["sklearn"] / row["fastbp"])
    assert "float32" in rows["S2"]["title"] and "lbfgs" in rows["S5"]["title"]
    # one thread whatever --threads says (two OpenBLAS builds spin against each other)
    proc = _bench(tmp_path, "--workloads", "S1", "--threads", "1,2", "--budget", "0.001",
                  "--scale", "0.03")
    assert proc.returncode == 0, proc.stderr
    assert "| case | threads | fit | scikit-learn | fastbp | speed-up |" in proc.stdout
    assert "| S1 | 2 |" not in proc.stdout
    assert "| S1 | 1 | digits" in proc.stdout


def test_bench_rejects_a_bad_scale(tmp_path):
    proc = _bench(tmp_path, "--workloads", "S1", "--scale", "2")
    assert proc.returncode == 2 and "--scale must be in (0, 1]" in proc.stderr
