"""Regression tests of the reliability review (one per finding): memory safety of the
compiled paths under ordinary and careless use, files fastbp writes and reads back,
exports that cannot be made to write elsewhere or emit wrong values, and calls that
fail without changing anything. Cases that could crash the interpreter on a broken
build run in a subprocess, so that a crash fails the test instead of the test run."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastbp
from fastbp import export
from conftest import param_copies, assert_same_params, tol


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (from a neutral folder, the installed fastbp)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=os.path.dirname(os.path.abspath(
                              fastbp.__file__)) + "/..")


# ---------------------------------------------------------------- 1. buffers sized by an earlier call

@pytest.mark.packaging
@pytest.mark.parametrize("trainer", ["fit", "ensemble"])
def test_labels_then_class_probabilities_do_not_overflow_the_target_buffer(trainer):
    """Integer labels first, then (n, k) class probabilities at the same or a smaller
    batch: the epoch's target buffer must grow to the new width (it was sized by the
    first call's width only, and the second fit wrote past it)."""
    result = run_python(f"""
        import numpy as np, fastbp
        rng = np.random.default_rng(0)
        X = rng.standard_normal((64, 5))
        P = rng.dirichlet(np.ones(7), 64)
        if "{trainer}" == "fit":
            m = fastbp.MLP((5, 8, 7), loss="cross_entropy", dtype="float64", seed=0)
            m.fit(X, rng.integers(0, 7, 64), epochs=1, batch_size=32, progress=False)
            for _ in range(5):
                m.fit(X, P, epochs=2, batch_size=16, progress=False)
            print(np.isfinite(m.predict_proba(X)).all())
        else:
            e = fastbp.Ensemble.of(3, (5, 8, 7), loss="cross_entropy", dtype="float64")
            e.fit(X, rng.integers(0, 7, 64), epochs=1, batch_size=32, progress=False)
            for _ in range(5):
                e.fit(X, P, epochs=2, batch_size=16, progress=False)
            print(np.isfinite(e.predict_proba(X)).all())
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "True"


def test_engine_checks_every_buffer_against_the_call():
    model = fastbp.MLP((4, 6, 3), loss="cross_entropy", dtype="float64", seed=0)
    X = np.ones((8, 4))
    model.fit(X, np.arange(8) % 3, epochs=1, progress=False)
    engine = model._engine
    opt = model.training_state.optimizer
    with pytest.raises(ValueError, match="T must be"):
        engine.epoch(X, np.ones((8, 5)), None, np.arange(8), 4)
    with pytest.raises(ValueError, match="labels must be"):
        engine.epoch(X, None, np.arange(7), np.arange(8), 4)
    with pytest.raises(ValueError, match="X"):
        engine.epoch(np.ones((8, 5)), None, np.arange(8) % 3, np.arange(8), 4)
    status, steps, _ = engine.epoch(X, None, np.arange(8) % 3, np.array([0, 1, 99]), 2)
    assert (status, steps) == (fastbp.training.EPOCH_BAD_INDEX, 1)   # stopped at row 99
    assert opt.step_count == 2


# ---------------------------------------------------------------- 2. ensembles of any size load

def test_a_large_ensemble_file_loads(tmp_path):
    """Every member is in the header: ~1,700 two-layer members passed the old fixed 1 MiB
    limit, and the saved file could not be loaded."""
    n = 2500
    members = [fastbp.MLP((2, 3, 1), seed=i) for i in range(n)]
    ens = fastbp.Ensemble(members)
    path = tmp_path / "big.fastbp"
    ens.save(path)
    back = fastbp.load(path)
    assert isinstance(back, fastbp.Ensemble) and len(back) == n
    for a, b in ((members[0], back[0]), (members[-1], back[-1])):
        assert_same_params(a, b)


# ---------------------------------------------------------------- 3. atomic writes

@pytest.mark.parametrize("writer", ["save", "onnx", "c"])
def test_writes_never_follow_a_planted_symlink(writer, tmp_path, monkeypatch):
    """The temporary file's name is unpredictable and opened exclusively: a symlink
    planted where the old code wrote (f"{path}.tmp{pid}") or at the very name the writer
    draws (made predictable here) is never followed; the writer takes another name."""
    if writer == "onnx":
        pytest.importorskip("onnx")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    model = fastbp.MLP((2, 3, 1), seed=0)
    target = tmp_path / ("model.fastbp" if writer == "save" else
                         "model.onnx" if writer == "onnx" else "fastbp_model.h")
    os.symlink(victim, f"{target}.tmp{os.getpid()}")
    tokens = iter(["0" * 16, "1" * 16, "2" * 16, "3" * 16, "4" * 16])
    monkeypatch.setattr(fastbp._storage.secrets, "token_hex", lambda n: next(tokens))
    os.symlink(victim, tmp_path / f".{target.name}.{os.getpid()}.{'0' * 16}.fastbp-tmp")
    if writer == "save":
        model.save(target)
        assert fastbp.load(target).sizes == model.sizes
    elif writer == "onnx":
        export.to_onnx(model, target)
        assert target.read_bytes() == export.to_onnx(model)
    else:
        export.to_c(model, tmp_path)
        assert target.read_text().startswith("/* Generated by fastbp")
    assert victim.read_text() == "precious"


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    model = fastbp.MLP((2, 3, 1), seed=0)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "m.fastbp")
    with pytest.raises(OSError, match="disk full"):
        export.to_c(model, tmp_path)
    assert os.listdir(tmp_path) == []


def test_temporary_files_of_a_killed_writer_are_cleaned_up(tmp_path):
    """A save killed mid-write leaves its temporary file; the next write into the folder
    removes it once its process is gone (never one of a live process)."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".m.fastbp.{dead}.{'a' * 16}.fastbp-tmp"
    live = tmp_path / f".m.fastbp.{os.getpid()}.{'b' * 16}.fastbp-tmp"
    stale.write_bytes(b"x" * 1000)
    live.write_bytes(b"y")
    fastbp.MLP((2, 3, 1), seed=0).save(tmp_path / "m.fastbp")
    assert not stale.exists() and live.exists()


def test_save_never_changes_the_umask(tmp_path, monkeypatch):
    """Reading the umask by setting it (os.umask(0), then back) let files created by
    other threads in that window get mode 0666; saving must not touch it, and a new
    file gets what a plain open would give."""
    def refuse(mask):
        raise AssertionError("save changed the process umask")

    old = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", refuse)
        path = tmp_path / "m.fastbp"
        fastbp.MLP((2, 3, 1), seed=0).save(path)
        assert path.stat().st_mode & 0o777 == 0o640
        os.chmod(path, 0o600)
        fastbp.MLP((2, 3, 1), seed=1).save(path)      # a replaced file keeps its mode
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        monkeypatch.undo()
        os.umask(old)


# ---------------------------------------------------------------- 4. labels changed during a fit

@pytest.mark.packaging
@pytest.mark.parametrize("trainer", ["fit", "ensemble"])
def test_labels_written_during_a_fit_never_reach_the_kernels_out_of_range(trainer):
    """Another thread writing out-of-range labels into y after fit checked them (from the
    end of the first epoch on): the labels are range-checked where the engine reads them,
    so the fit ends with a ValueError, never with out-of-bounds memory access."""
    result = run_python(f"""
        import threading, numpy as np, fastbp
        rng = np.random.default_rng(0)
        X = rng.standard_normal((20000, 8))
        y = rng.integers(0, 3, 20000).astype(np.intp)
        start, stop = threading.Event(), threading.Event()
        def vandal():
            start.wait()
            i = 0
            while not stop.is_set():
                y[i % len(y)] = 10**12 if i % 2 else -10**12
                i += 7
        t = threading.Thread(target=vandal); t.start()
        try:
            if "{trainer}" == "fit":
                fastbp.MLP((8, 16, 3), loss="cross_entropy", seed=0).fit(
                    X, y, epochs=4, batch_size=16, progress=False,
                    callbacks=[lambda epoch, logs: start.set()])
            else:
                threading.Timer(0.05, start.set).start()
                # (epochs enough to outlast the timer: 8 of them took 32 ms here)
                fastbp.Ensemble.of(2, (8, 16, 3), loss="cross_entropy").fit(
                    X, y, epochs=400, batch_size=16, progress=False)
            print("completed")
        except ValueError as exc:
            print("refused:", "out of range" in str(exc))
        finally:
            start.set(); stop.set(); t.join()
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "refused: True"


# ---------------------------------------------------------------- 5. train_epoch is checked

@pytest.mark.parametrize("case", ["order out of range", "negative order", "int32 order",
                                  "float order", "batch 0", "float labels", "label too big",
                                  "float64 X on float32", "short X"])
def test_train_epoch_checks_every_argument(case):
    model = fastbp.MLP((4, 5, 3), loss="cross_entropy", seed=0)
    opt = fastbp.Adam(model.parameters())
    X = np.ones((10, 4), dtype=np.float32)
    y = np.arange(10) % 3
    order = np.arange(10)
    batch = 4
    before = param_copies(model)
    if case == "order out of range":
        order = np.arange(11)
    elif case == "negative order":
        order = order - 1
    elif case == "int32 order":   # accepted: converted, not misread as 64-bit indices
        order = order.astype(np.int32)
    elif case == "float order":
        order = order.astype(float)
    elif case == "batch 0":
        batch = 0
    elif case == "float labels":
        y = y + 0.5
    elif case == "label too big":
        y = y.copy()
        y[2] = 3
    elif case == "float64 X on float32":   # accepted: converted to the model's dtype
        X = X.astype(np.float64)
    elif case == "short X":
        X = X[:5]
    if case in ("int32 order", "float64 X on float32"):
        steps, total = model.train_epoch(X, y, order, batch, opt)
        ref = fastbp.MLP((4, 5, 3), loss="cross_entropy", seed=0)
        ref_steps, ref_total = ref.train_epoch(np.ones((10, 4), np.float32), np.arange(10) % 3,
                                               np.arange(10), 4, fastbp.Adam(ref.parameters()))
        assert (steps, total) == (ref_steps, ref_total)
        assert_same_params(model, ref)
        return
    with pytest.raises((ValueError, TypeError)):
        model.train_epoch(X, y, order, batch, opt)
    for p, q in zip(model.parameters(), before):
        np.testing.assert_array_equal(p, q)
    assert opt.step_count == 0


# ---------------------------------------------------------------- 7. generated C

@pytest.mark.parametrize("name", ["_math", "_stddef", "_features", "_x", "a" * 64])
def test_c_names_the_compiler_would_choke_on_are_refused(name, tmp_path):
    model = fastbp.MLP((2, 3, 1), seed=0)
    with pytest.raises(ValueError, match="name"):
        export.to_c(model, tmp_path, name=name)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- 8. silent wrong results

def test_cross_entropy_value_for_huge_logits():
    """The loss of logits beyond ±1e12 lost log Σ's digits (1.125 for log 3 at -1e15, 0 at
    -1e17); the gradient was right all along."""
    for v in (-1e12, -1e15, -1e17, 1e15, 1e300):
        out = np.full((2, 3), v)
        loss, grad = fastbp.ops.loss_forward_backward("cross_entropy", out, np.array([0, 2]))
        assert loss == pytest.approx(np.log(3.0), rel=tol(np.float64, "exact_rtol"))
        np.testing.assert_allclose(grad, fastbp.reference.loss_forward_backward(
            "cross_entropy", out, np.array([0, 2]))[1], rtol=tol(np.float64))
    probs = np.array([[0.5, 0.5, 0.0]])
    loss, _ = fastbp.ops.loss_forward_backward("cross_entropy", np.full((1, 3), -1e16), probs)
    assert loss == pytest.approx(np.log(3.0), rel=tol(np.float64, "exact_rtol"))


def test_ensemble_members_must_not_share_parameter_memory():
    a = fastbp.MLP((3, 4, 1), seed=0)
    b = fastbp.MLP((3, 4, 1), seed=1)
    shared = np.zeros(2 * a.layers[0].W.size)
    a.layers[0]._W = shared[:a.layers[0].W.size].reshape(a.layers[0].W.shape)
    b.layers[0]._W = shared[a.layers[0].W.size - 2:][:b.layers[0].W.size].reshape(b.layers[0].W.shape)
    with pytest.raises(ValueError, match="shares parameter memory"):
        fastbp.Ensemble([a, b])


@pytest.mark.parametrize("labels", [np.array([0, 2**63 + 5], dtype=np.uint64),
                                    np.array([1, 2**64 - 1], dtype=np.uint64)])
def test_estimator_onnx_refuses_unsigned_labels_int64_cannot_hold(labels):
    pytest.importorskip("onnx")
    pytest.importorskip("sklearn")
    from fastbp.sklearn import MLPClassifier

    X = np.random.default_rng(0).standard_normal((20, 3))
    y = labels[np.arange(20) % 2]
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="2\\*\\*63"):
        est.to_onnx()


def test_float64_onnx_gelu_keeps_its_precision_in_the_negative_tail():
    """1 + erf(x/√2) cancels for x <= -8 (all relative precision lost); the export
    computes erfc directly there, as the C export and the kernels do."""
    ort = pytest.importorskip("onnxruntime")
    from scipy.special import erfc

    z = np.concatenate([-np.geomspace(1e-3, 38.0, 400), np.linspace(-1, 10, 200)])[None, :]
    layer = fastbp.Dense(z.shape[1], z.shape[1], "gelu", dtype="float64")
    layer.W = np.eye(z.shape[1])
    model = fastbp.Sequential([layer], "mse")
    sess = ort.InferenceSession(export.to_onnx(model), providers=["CPUExecutionProvider"])
    (Y,) = sess.run(None, {"X": z})
    kernel = model.forward(z)
    tiny = np.finfo(np.float64).tiny
    ok = np.abs(kernel) >= tiny   # below, both are 0 or subnormal (erfc past x = -37.5)
    rel = np.abs(Y[ok] - kernel[ok]) / np.abs(kernel[ok])
    assert rel.max() < 1e-13, (z[ok][rel.argmax()], rel.max())
    assert np.all(np.abs(Y[~ok] - kernel[~ok]) < tiny)
    # and both against SciPy's erfc, to the conditioning of erfc at x/√2 (an ulp of
    # x/√2 moves erfc by 2u²·ulp relative: 1e-13 at x = -36)
    u = z / np.sqrt(2.0)
    exact = 0.5 * z * erfc(-u)
    rel = np.abs(Y[ok] - exact[ok]) / np.abs(exact[ok])
    assert np.all(rel < 1e-15 * (4 + 4 * u[ok] ** 2)), rel.max()


# ---------------------------------------------------------------- 9. rejected calls change nothing

def test_rejected_ensemble_fit_leaves_the_optimizers_alone():
    members = [fastbp.MLP((3, 4, 1), seed=i) for i in range(2)]
    opts = [fastbp.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01) for m in members]
    X, y = np.ones((6, 3)), np.ones(6)
    with pytest.raises(TypeError, match="progress"):
        fastbp.Ensemble(members).fit(X, y, optimizer=opts, lr=[0.5, 0.6],
                                     weight_decay=[0.1, 0.2], progress="yes")
    assert [o.lr for o in opts] == [1e-3, 1e-3]
    assert [o.weight_decay for o in opts] == [0.01, 0.01]


def test_rejected_fit_leaves_the_optimizer_alone():
    model = fastbp.MLP((3, 4, 1), seed=0)
    opt = fastbp.SGD(model.parameters(), lr=0.01)
    X, y = np.ones((6, 3)), np.ones(6)
    with pytest.raises(TypeError, match="scheduler"):
        model.fit(X, y, optimizer=opt, lr=0.5, scheduler="cosine")

    def broken(o):
        raise RuntimeError("no schedule today")

    with pytest.raises(RuntimeError, match="no schedule"):
        model.fit(X, y, optimizer=opt, lr=0.5, scheduler=broken)
    assert opt.lr == 0.01 and opt.step_count == 0
    assert model.training_state is None


# ---------------------------------------------------------------- 10. memory, NaN steps, odd inputs

def test_a_one_off_large_prediction_does_not_keep_its_memory():
    """A large prediction goes through the network in blocks of rows whose workspaces
    fit in 32 MiB: it keeps a block's memory, not its rows' (20,000 rows here need
    330 MB), and a loop of such calls reuses that block (allocates once). The blocks'
    results are the whole pass's."""
    model = fastbp.MLP((64, 1024, 1024, 10), loss="cross_entropy", seed=0)
    model.predict_proba(np.ones((8, 64), np.float32))
    small = model._engine.workspace_bytes()
    X = np.random.default_rng(0).standard_normal((20_000, 64)).astype(np.float32)
    P = model.predict_proba(X)
    kept = model._engine.workspace_bytes()
    assert small < kept <= (32 << 20) + small
    for _ in range(3):
        model.predict_proba(X)
    assert model._engine.workspace_bytes() == kept   # repeated: the same block
    pieces = np.concatenate([model.predict_proba(X[i:i + 100]) for i in range(0, 20_000, 100)])
    np.testing.assert_allclose(P, pieces, rtol=1e-5, atol=1e-7)


@pytest.mark.packaging
def test_resident_memory_after_a_large_prediction():
    result = run_python("""
        import resource, numpy as np, fastbp
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * resource.getpagesize()
        m = fastbp.MLP((64, 1024, 1024, 10), loss="cross_entropy", seed=0)
        m.predict_proba(np.ones((8, 64), np.float32))
        before = rss()
        X = np.ones((100_000, 64), np.float32)
        m.predict_proba(X)
        del X
        print((rss() - before) / 2**20)
    """)
    assert result.returncode == 0, result.stderr
    # 856 MiB were kept before; what remains is the allocator's, not fastbp's workspaces
    assert float(result.stdout) < 128, f"{result.stdout} MiB kept"


def test_train_step_refuses_non_finite_input():
    model = fastbp.MLP((3, 4, 1), dtype="float64", seed=0)
    opt = fastbp.Adam(model.parameters())
    X, y = np.ones((4, 3)), np.ones(4)
    model.train_step(X, y, opt)                       # the lean path is ready now
    before = param_copies(model)
    for bad_X, bad_y in ((np.where(np.eye(4, 3) > 0, np.nan, 1.0), y),
                         (X, np.array([1.0, np.inf, 1.0, 1.0]))):
        with pytest.raises(ValueError, match="NaN or infinite"):
            model.train_step(bad_X, bad_y, opt)
    for p, q in zip(model.parameters(), before):
        np.testing.assert_array_equal(p, q)
    assert opt.step_count == 1


def test_load_takes_bytes_paths(tmp_path):
    path = tmp_path / "m.fastbp"
    fastbp.MLP((2, 3, 1), seed=0).save(path)
    assert fastbp.load(os.fsencode(path)).sizes == (2, 3, 1)
    with pytest.raises(TypeError, match="path"):
        fastbp.load(3.5)


@pytest.mark.packaging
def test_a_closed_dask_client_is_a_clear_error():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        client = distributed.Client(cluster)
        client.close()
    ens = fastbp.Ensemble.of(2, (3, 4, 1))
    before = [param_copies(m) for m in ens]
    with pytest.raises(ValueError, match="running"):
        ens.fit(np.ones((6, 3)), np.ones(6), client=client, progress=False)
    for m, b in zip(ens, before):
        for p, q in zip(m.parameters(), b):
            np.testing.assert_array_equal(p, q)
