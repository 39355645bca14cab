"""A catalogue of malformed calls across the whole public API: none may crash.

Every entry of ``CATALOGUE`` is a small Python snippet that calls fastbp wrongly.
The snippets run in child interpreters, about 20 per child (``CHUNK``), each in a
fresh namespace (a small regression MLP ``model``, a classifier ``clf``, an Adam
optimizer ``opt`` over ``model``, data ``X``/``y``/``yc``, a Dense ``layer``, a
temporary folder ``TMP`` with garbage files, ...), wrapped in try/except that
records the exception type. The parent fails if a child dies by a signal
(segfault, abort), exits abnormally, hangs past ``TIMEOUT`` seconds, or if any
snippet raised something other than its expected exception types -- by default
``ValueError`` or ``TypeError``; entries list another type where it is the right
answer (``FileNotFoundError`` for a missing file, ``RuntimeError`` for backward
before forward, ``MemoryError`` for a 2**40-row layer, ...), or ``ok`` where the
call is accepted by design. Children run with RuntimeWarnings as errors, as the
test suite does (pyproject), so a warning escaping instead of an error is caught.

``INDIVIDUAL`` holds the calls most likely to corrupt memory (empty arrays to the
kernels, negative strides, a shape that overflows BLAS's 32-bit int, parameters
or optimizer state swapped after an optimizer was bound, layers swapped after the
compiled engine was built, labels out of range): each runs alone in its own
child, so that a crash is attributed to exactly one call.

Calls that misbehaved once and were fixed are kept in ``FIXED_BUGS`` (one
child for all of them), each with the bug it showed, and run by
``test_regression_fixed_malformed_calls``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import fastbp

TIMEOUT = 60
CHUNK = 20
VE_TE = ("ValueError", "TypeError")

# ---------------------------------------------------------------- the child interpreter
CHILD = r'''
import io, json, os, sys, tempfile, warnings, zipfile, pickle
import numpy as np
import fastbp
from fastbp import ops, reference as ref, schedules
warnings.simplefilter("error", RuntimeWarning)
TMP = os.environ["FASTBP_NOCRASH_TMP"]

def _garbage_files():
    files = {}
    def put(name, data):
        path = os.path.join(TMP, name)
        with open(path, "wb") as fh:
            fh.write(data)
        files[name] = path
    rng = np.random.default_rng(0)
    put("empty.fastbp", b"")
    put("random.fastbp", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    put("text.fastbp", b"hello, I am not a model\n" * 20)
    put("pickle.fastbp", pickle.dumps({"W": np.ones(3)}))
    buf = io.BytesIO(); np.save(buf, np.ones((3, 3))); put("array.npy", buf.getvalue())
    def zip_bytes(members):
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w") as zf:
            for k, v in members.items():
                zf.writestr(k, v)
        return b.getvalue()
    put("noheader.fastbp", zip_bytes({"layers/0/W.npy": b"x"}))
    put("badjson.fastbp", zip_bytes({"header.json": b"{not json"}))
    put("listjson.fastbp", zip_bytes({"header.json": b"[1, 2, 3]"}))
    put("deepjson.fastbp", zip_bytes({"header.json": b"[" * 100000 + b"]" * 100000}))
    m = fastbp.MLP((4, 8, 1), seed=0)
    good = os.path.join(TMP, "good.fastbp")
    m.save(good, optimizer=fastbp.Adam(m.parameters()))
    data = open(good, "rb").read()
    put("truncated.fastbp", data[: len(data) // 2])
    files["good.fastbp"] = good
    return files

FILES = _garbage_files()

def fresh():
    rng = np.random.default_rng(0)
    ns = dict(np=np, fastbp=fastbp, ops=ops, ref=ref, schedules=schedules, os=os, io=io,
              zipfile=zipfile, TMP=TMP, FILES=FILES)
    ns["X"] = rng.normal(size=(16, 4)).astype(np.float32)
    ns["y"] = rng.normal(size=16).astype(np.float32)
    ns["yc"] = rng.integers(0, 3, 16)
    ns["model"] = fastbp.MLP((4, 8, 1), seed=0)
    ns["clf"] = fastbp.MLP((4, 8, 3), loss="cross_entropy", seed=0)
    ns["opt"] = fastbp.Adam(ns["model"].parameters())
    ns["layer"] = fastbp.Dense(4, 3, activation="tanh", seed=0)
    ns["Z"] = rng.normal(size=(5, 3))
    ns["W"] = rng.normal(size=(4, 3)).astype(np.float32)
    ns["b"] = np.zeros(3, np.float32)
    ns["p"] = np.ones(6)
    ns["g"] = np.ones(6)
    ns["s"] = np.zeros(6)
    ns["grads"] = [np.zeros_like(a) for a in ns["model"].parameters()]
    return ns

snippets = json.loads(sys.stdin.read())
for sid, code in snippets:
    print(json.dumps({"start": sid}), flush=True)
    ns = fresh()
    result, msg = "ok", ""
    try:
        exec(code, ns)
    except BaseException as exc:  # noqa: BLE001 - the type is what we record
        result, msg = type(exc).__name__, str(exc)[:300]
    print(json.dumps({"id": sid, "result": result, "msg": msg}), flush=True)
print(json.dumps({"done": True}), flush=True)
'''


def run_child(snippets: list[tuple[str, str]], tmp: str, timeout: float = TIMEOUT
              ) -> tuple[dict, str]:
    """Run snippets [(id, code)] in one child (scratch files in the folder ``tmp``);
    returns ({id: (result, msg)}, diagnosis).

    diagnosis is "" for a clean exit, else a description of the crash or hang
    (naming the snippet that was running)."""
    env = dict(os.environ)
    env["FASTBP_NOCRASH_TMP"] = str(tmp)
    # The child imports the same fastbp as this process (the source tree in the dev
    # loop, the installed package otherwise) and runs outside the checkout.
    home = os.path.dirname(os.path.dirname(os.path.abspath(fastbp.__file__)))
    env["PYTHONPATH"] = home + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(snippets),
                              capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(tmp))
        out, err, code = proc.stdout, proc.stderr, proc.returncode
        hung = False
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        code, hung = None, True
    results, started, done = {}, None, False
    for line in out.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "start" in rec:
            started = rec["start"]
        elif "id" in rec:
            results[rec["id"]] = (rec["result"], rec["msg"])
            started = None
        elif rec.get("done"):
            done = True
    diagnosis = ""
    if hung:
        diagnosis = f"child hung for more than {timeout} s while running snippet {started!r}"
    elif code is not None and code < 0:
        diagnosis = f"child killed by signal {-code} while running snippet {started!r}"
    elif code != 0 or not done:
        diagnosis = f"child exited with code {code} while running snippet {started!r}"
    if diagnosis:
        diagnosis += f"\nstderr tail:\n{err[-2000:]}"
    return results, diagnosis


# ---------------------------------------------------------------- the catalogue
# (id, snippet, expected exception types or "ok")
CATALOGUE: list[tuple[str, str, tuple[str, ...]]] = [
    # ----- fastbp.ops kernels
    ("ops.act_fwd.1d", "ops.activation_forward('relu', np.ones(3))", VE_TE),
    ("ops.act_fwd.3d", "ops.activation_forward('relu', np.ones((2, 3, 4)))", VE_TE),
    ("ops.act_fwd.0cols", "ops.activation_forward('softmax', np.ones((3, 0)))", VE_TE),
    ("ops.act_fwd.name", "ops.activation_forward('swish', Z)", VE_TE),
    ("ops.act_fwd.name_none", "ops.activation_forward(None, Z)", VE_TE),
    ("ops.act_fwd.name_bytes", "ops.activation_forward(b'relu', Z)", VE_TE),
    ("ops.act_fwd.f16", "ops.activation_forward('relu', Z.astype(np.float16))", VE_TE),
    ("ops.act_fwd.complex", "ops.activation_forward('tanh', Z.astype(complex))", VE_TE),
    ("ops.act_fwd.object", "ops.activation_forward('tanh', Z.astype(object))", VE_TE),
    ("ops.act_fwd.int", "ops.activation_forward('relu', np.ones((2, 2), dtype=np.int64))", VE_TE),
    ("ops.act_fwd.list", "ops.activation_forward('relu', Z.tolist())", VE_TE),
    ("ops.act_bwd.shape", "ops.activation_backward('tanh', Z, Z[:2], Z)", VE_TE),
    ("ops.act_bwd.dtype", "ops.activation_backward('tanh', Z, Z.astype(np.float32), Z)", VE_TE),
    ("ops.act_bwd.none", "ops.activation_backward('tanh', Z, None, Z)", VE_TE),
    ("ops.dense_fwd.W", "ops.dense_forward(X, np.ones((5, 3), np.float32), b, 'relu')", VE_TE),
    ("ops.dense_fwd.b", "ops.dense_forward(X, W, np.zeros(4, np.float32), 'relu')", VE_TE),
    ("ops.dense_fwd.b2d", "ops.dense_forward(X, W, b.reshape(1, 3), 'relu')", VE_TE),
    ("ops.dense_fwd.mixed", "ops.dense_forward(X, W.astype(np.float64), b, 'relu')", VE_TE),
    ("ops.dense_fwd.act", "ops.dense_forward(X, W, b, 7)", VE_TE),
    ("ops.dense_bwd.Z", "ops.dense_backward(X, W, np.ones((16, 2), np.float32), "
     "np.ones((16, 3), np.float32), np.ones((16, 3), np.float32), 'relu')", VE_TE),
    ("ops.dense_bwd.dA_dtype", "ops.dense_backward(X, W, np.ones((16, 3), np.float32), "
     "np.ones((16, 3), np.float32), np.ones((16, 3)), 'relu')", VE_TE),
    ("ops.loss.empty", "ops.loss_forward_backward('mse', np.ones((0, 1)), np.ones((0, 1)))", VE_TE),
    ("ops.loss.name", "ops.loss_forward_backward('kl', np.ones((2, 1)), np.ones((2, 1)))", VE_TE),
    ("ops.loss.labels_high", "ops.loss_forward_backward('cross_entropy', np.ones((2, 3)), "
     "np.array([0, 3]))", VE_TE),
    ("ops.loss.labels_neg", "ops.loss_forward_backward('cross_entropy', np.ones((2, 3)), "
     "np.array([0, -1]))", VE_TE),
    ("ops.loss.labels_u64", "ops.loss_forward_backward('cross_entropy', np.ones((2, 3)), "
     "np.array([2**64 - 1, 0], dtype=np.uint64))", VE_TE),
    ("ops.loss.labels_float", "ops.loss_forward_backward('cross_entropy', np.ones((2, 3)), "
     "np.array([0.0, 1.0]))", VE_TE),
    ("ops.loss.labels_count", "ops.loss_forward_backward('cross_entropy', np.ones((2, 3)), "
     "np.array([0, 1, 2]))", VE_TE),
    ("ops.loss.target_shape", "ops.loss_forward_backward('mse', np.ones((2, 3)), np.ones((3, 2)))",
     VE_TE),
    ("ops.loss.target_list", "ops.loss_forward_backward('huber', np.ones((2, 1)), [[1.0], [2.0]])",
     VE_TE),
    ("ops.sgd.strided_p", "ops.sgd_step(p[::2], g[::2], None, lr=0.1)", VE_TE),
    ("ops.sgd.readonly_p", "p.flags.writeable = False\nops.sgd_step(p, g, None, lr=0.1)", VE_TE),
    ("ops.sgd.neg_lr", "ops.sgd_step(p, g, None, lr=-1.0)", VE_TE),
    ("ops.sgd.nan_lr", "ops.sgd_step(p, g, None, lr=float('nan'))", VE_TE),
    ("ops.sgd.str_lr", "ops.sgd_step(p, g, None, lr='0.1')", VE_TE),
    ("ops.sgd.bool_lr", "ops.sgd_step(p, g, None, lr=True)", VE_TE),
    ("ops.sgd.no_buf", "ops.sgd_step(p, g, None, lr=0.1, momentum=0.9)", VE_TE),
    ("ops.sgd.alias_buf", "ops.sgd_step(p, g, p, lr=0.1, momentum=0.9)", VE_TE),
    ("ops.sgd.overlap_buf", "ops.sgd_step(p[:4], g[:4], p[2:], lr=0.1, momentum=0.9)", VE_TE),
    ("ops.adagrad.no_state", "ops.adagrad_step(p, g, None, lr=0.1)", VE_TE),
    ("ops.rmsprop.centered", "ops.rmsprop_step(p, g, s, None, None, lr=0.1, centered=True)", VE_TE),
    ("ops.rmsprop.alpha", "ops.rmsprop_step(p, g, s, None, None, lr=0.1, alpha=1.5)", VE_TE),
    ("ops.adam.step0", "ops.adam_step(p, g, s, s.copy(), None, step=0, lr=1e-3)", VE_TE),
    ("ops.adam.step_float", "ops.adam_step(p, g, s, s.copy(), None, step=1.0, lr=1e-3)", VE_TE),
    ("ops.adam.amsgrad", "ops.adam_step(p, g, s, s.copy(), None, step=1, lr=1e-3, amsgrad=True)",
     VE_TE),
    ("ops.adam.beta1", "ops.adam_step(p, g, s, s.copy(), None, step=1, lr=1e-3, beta1=1.0)", VE_TE),
    ("ops.adam.eps_mode", "ops.adam_step(p, g, s, s.copy(), None, step=1, lr=1e-3, "
     "eps_mode='sklearn')", VE_TE),
    ("ops.adam.g_dtype", "ops.adam_step(p, g.astype(np.float32), s, s.copy(), None, step=1, lr=1e-3)",
     VE_TE),
    ("ops.adam.shape", "ops.adam_step(p.reshape(2, 3), g, s, s.copy(), None, step=1, lr=1e-3)",
     VE_TE),
    ("ops.adam.state_f32", "ops.adam_step(p, g, s.astype(np.float32), s.copy(), None, step=1, "
     "lr=1e-3)", VE_TE),
    # ----- Dense
    ("dense.in0", "fastbp.Dense(0, 3)", VE_TE),
    ("dense.out_neg", "fastbp.Dense(3, -1)", VE_TE),
    ("dense.float_size", "fastbp.Dense(2.5, 3)", VE_TE),
    ("dense.str_size", "fastbp.Dense('3', 3)", VE_TE),
    ("dense.activation", "fastbp.Dense(3, 3, activation='swish')", VE_TE),
    ("dense.init", "fastbp.Dense(3, 3, init='xavier')", VE_TE),
    ("dense.dtype16", "fastbp.Dense(3, 3, dtype='float16')", VE_TE),
    ("dense.dtype_int", "fastbp.Dense(3, 3, dtype=np.int32)", VE_TE),
    ("dense.seed", "fastbp.Dense(3, 3, seed='abc')", VE_TE),
    ("dense.huge", "fastbp.Dense(2**40, 1)", ("MemoryError",) + VE_TE),
    ("dense.too_big", "fastbp.Dense(2**62, 2**62)", ("MemoryError",) + VE_TE),
    ("dense.fwd_cols", "layer.forward(np.ones((2, 5)))", VE_TE),
    ("dense.fwd_3d", "layer.forward(np.ones((2, 4, 1)))", VE_TE),
    ("dense.fwd_str", "layer.forward('abc')", VE_TE),
    ("dense.fwd_complex", "layer.forward(np.ones((2, 4), complex))", VE_TE),
    ("dense.fwd_object", "layer.forward(np.array([[None] * 4]))", VE_TE),
    ("dense.bwd_first", "layer.backward(np.ones((5, 3)))", ("RuntimeError",)),
    ("dense.bwd_rows", "layer.forward(np.ones((2, 4)))\nlayer.backward(np.ones((5, 3)))", VE_TE),
    ("dense.bwd_cols", "layer.forward(np.ones((2, 4)))\nlayer.backward(np.ones((2, 4)))", VE_TE),
    ("dense.set_W_shape", "layer.W = np.ones((3, 4))", VE_TE),
    ("dense.set_b_shape", "layer.b = np.ones(4)", VE_TE),
    ("dense.set_W_none", "layer.W = None", VE_TE),
    ("dense.set_W_str", "layer.W = 'x'", VE_TE),
    # ----- Sequential / MLP construction
    ("seq.empty", "fastbp.Sequential([])", VE_TE),
    ("seq.mismatch", "fastbp.Sequential([fastbp.Dense(4, 3), fastbp.Dense(4, 1)])", VE_TE),
    ("seq.loss", "fastbp.Sequential([layer], loss='kl')", VE_TE),
    ("seq.str", "fastbp.Sequential('abc')", VE_TE),
    ("seq.none", "fastbp.Sequential(None)", VE_TE),
    ("seq.dtypes", "fastbp.Sequential([fastbp.Dense(4, 3), fastbp.Dense(3, 1, dtype='float64')])",
     VE_TE),
    ("mlp.one_size", "fastbp.MLP((4,))", VE_TE),
    ("mlp.zero", "fastbp.MLP((4, 0))", VE_TE),
    ("mlp.float", "fastbp.MLP((4, 3.0))", VE_TE),
    ("mlp.int", "fastbp.MLP(5)", VE_TE),
    ("mlp.activation", "fastbp.MLP((4, 3), activation='swish')", VE_TE),
    ("mlp.dtype", "fastbp.MLP((4, 3), dtype='float16')", VE_TE),
    ("mlp.threads0", "fastbp.MLP((4, 3), num_threads=0)", VE_TE),
    ("mlp.threads_str", "fastbp.MLP((4, 3), num_threads='2')", VE_TE),
    ("mlp.huge", "fastbp.MLP((2**40, 1))", ("MemoryError",) + VE_TE),
    # ----- forward / backward / train_step / predict / evaluate
    ("model.fwd_cols", "model.forward(np.ones((2, 5)))", VE_TE),
    ("model.fwd_3d", "model.forward(np.ones((2, 4, 1)))", VE_TE),
    ("model.fwd_none", "model.forward(None)", VE_TE),
    ("model.fwd_ragged", "model.forward([[1, 2, 3, 4], [3]])", VE_TE),
    ("model.fwd_str", "model.forward(np.array([['a'] * 4]))", VE_TE),
    ("model.fwd_datetime", "model.forward(np.zeros((2, 4), dtype='datetime64[s]'))", VE_TE),
    ("model.bwd_rows", "model.backward(X, y[:3])", VE_TE),
    ("model.bwd_empty", "model.backward(X[:0], y[:0])", VE_TE),
    ("model.bwd_cols", "model.backward(X, np.ones((16, 2)))", VE_TE),
    ("model.bwd_complex", "model.backward(X, y.astype(complex))", VE_TE),
    ("model.step_str_opt", "model.train_step(X, y, 'adam')", VE_TE),
    ("model.step_none_opt", "model.train_step(X, y, None)", VE_TE),
    ("model.step_foreign_opt", "model.train_step(X, y, fastbp.SGD([np.ones(3)]))", VE_TE),
    ("model.step_other_model_opt", "model.train_step(X, y, fastbp.SGD(clf.parameters()))", VE_TE),
    ("model.step_f64_opt", "m64 = fastbp.MLP((4, 8, 1), dtype='float64', seed=0)\n"
     "model.train_step(X, y, fastbp.SGD(m64.parameters()))", VE_TE),
    ("model.predict_cols", "model.predict(np.ones((2, 3)))", VE_TE),
    ("model.predict_proba_regression", "model.predict_proba(X)", VE_TE),
    ("model.evaluate_rows", "model.evaluate(X, y[:-1])", VE_TE),
    ("clf.labels_high", "clf.evaluate(X, yc + 3)", VE_TE),
    ("clf.labels_neg", "clf.evaluate(X, -yc - 1)", VE_TE),
    ("clf.labels_frac", "clf.evaluate(X, yc + 0.5)", VE_TE),
    ("clf.labels_nan", "clf.loss(X, np.full(16, np.nan))", VE_TE),
    ("clf.labels_2d_wrong", "clf.train_step(X, np.ones((16, 2)), fastbp.SGD(clf.parameters()))",
     VE_TE),
    # ----- fit
    ("fit.epochs0", "model.fit(X, y, epochs=0)", VE_TE),
    ("fit.epochs_float", "model.fit(X, y, epochs=1.5)", VE_TE),
    ("fit.batch0", "model.fit(X, y, batch_size=0)", VE_TE),
    ("fit.batch_str", "model.fit(X, y, batch_size='32')", VE_TE),
    ("fit.optimizer_name", "model.fit(X, y, optimizer='newton')", VE_TE),
    ("fit.optimizer_none", "model.fit(X, y, optimizer=None)", VE_TE),
    ("fit.foreign_optimizer", "model.fit(X, y, optimizer=fastbp.SGD(clf.parameters()))", VE_TE),
    ("fit.lr_neg", "model.fit(X, y, lr=-1.0)", VE_TE),
    ("fit.lr_nan", "model.fit(X, y, lr=float('nan'))", VE_TE),
    ("fit.val_tuple1", "model.fit(X, y, validation_data=(X,))", VE_TE),
    ("fit.val_cols", "model.fit(X, y, validation_data=(X[:, :2], y))", VE_TE),
    ("fit.val_nan", "Xv = X.copy(); Xv[0, 0] = np.nan\nmodel.fit(X, y, validation_data=(Xv, y))",
     VE_TE),
    ("fit.early0", "model.fit(X, y, early_stopping=0)", VE_TE),
    ("fit.callbacks_int", "model.fit(X, y, callbacks=[1])", VE_TE),
    ("fit.callbacks_none", "model.fit(X, y, callbacks=None)", VE_TE),
    ("fit.scheduler_int", "model.fit(X, y, scheduler=5)", VE_TE),
    ("fit.scheduler_factory", "model.fit(X, y, scheduler=lambda o: 5)", VE_TE),
    ("fit.scheduler_unbound", "model.fit(X, y, scheduler=schedules.StepLR("
     "fastbp.SGD([np.ones(2)]), 1))", VE_TE),
    ("fit.X_nan", "X[3, 1] = np.nan\nmodel.fit(X, y)", VE_TE),
    ("fit.y_inf", "y[0] = np.inf\nmodel.fit(X, y)", VE_TE),
    ("fit.seed", "model.fit(X, y, seed='abc')", VE_TE),
    # ----- gradcheck
    ("gradcheck.eps0", "fastbp.gradcheck(model, X, y, eps=0)", VE_TE),
    ("gradcheck.eps_neg", "fastbp.gradcheck(model, X, y, eps=-1e-6)", VE_TE),
    ("gradcheck.rtol", "fastbp.gradcheck(model, X, y, rtol='x')", VE_TE),
    ("gradcheck.model", "fastbp.gradcheck(None, X, y)", VE_TE),
    ("gradcheck.cols", "fastbp.gradcheck(model, X[:, :2], y)", VE_TE),
    ("gradcheck.empty", "fastbp.gradcheck(model, X[:0], y[:0])", VE_TE),
    # ----- dropout
    ("dense.dropout_str", "fastbp.Dense(3, 2, dropout='0.5')", VE_TE),
    ("dense.dropout_no", "fastbp.Dense(3, 2, dropout='no')", VE_TE),
    ("dense.dropout_one", "fastbp.Dense(3, 2, dropout=1.0)", VE_TE),
    ("dense.dropout_nan", "fastbp.Dense(3, 2, dropout=float('nan'))", VE_TE),
    ("mlp.dropout_bool", "fastbp.MLP((3, 4, 2), dropout=True)", VE_TE),
    ("mlp.dropout_neg", "fastbp.MLP((3, 4, 2), dropout=-0.1)", VE_TE),
    ("mlp.dropout_no_hidden", "fastbp.MLP((3, 2), dropout=0.5)", VE_TE),
    ("seq.dropout_last", "fastbp.Sequential([fastbp.Dense(3, 2, dropout=0.5)])", VE_TE),
    ("seq.dropout_seed", "fastbp.Sequential([fastbp.Dense(3, 2)], dropout_seed=-1)", VE_TE),
    ("model.dropout_seed", "model.dropout_seed = 2**64", VE_TE),
    ("model.backward_step0", "model.backward(X, y, step=0)", VE_TE),
    ("model.backward_step_str", "model.backward(X, y, step='1')", VE_TE),
    ("ops.dropout_mask.shape", "ops.dropout_mask(0, 0, 1, (2**40, 2**40), 0.5)", VE_TE),
    ("ops.dropout_mask.huge", "ops.dropout_mask(0, 0, 1, (2**31 - 1, 2**31 - 1), 0.5)",
     ("MemoryError",)),
    ("ops.dropout_mask.p", "ops.dropout_mask(0, 0, 1, 3, 1.0)", VE_TE),
    ("ops.dropout_mask.seed", "ops.dropout_mask(-1, 0, 1, 3, 0.5)", VE_TE),
    ("ops.dropout_apply.mask", "ops.dropout_apply(Z, Z, 0.5)", VE_TE),
    ("ops.dropout_apply.shape", "ops.dropout_apply(Z, np.ones(3, bool), 0.5)", VE_TE),
    # ----- optimizers
    ("opt.empty", "fastbp.SGD([])", VE_TE),
    ("opt.none", "fastbp.Adam(None)", VE_TE),
    ("opt.int_param", "fastbp.SGD([np.ones(3, int)])", VE_TE),
    ("opt.strided_param", "fastbp.SGD([np.ones((3, 3))[:, 0]])", VE_TE),
    ("opt.readonly_param", "a = np.ones(3); a.flags.writeable = False\nfastbp.AdaGrad([a])", VE_TE),
    ("opt.list_param", "fastbp.RMSprop([[1.0, 2.0]])", VE_TE),
    ("opt.sgd_lr", "fastbp.SGD(model.parameters(), lr=-1)", VE_TE),
    ("opt.sgd_momentum", "fastbp.SGD(model.parameters(), momentum=-0.5)", VE_TE),
    ("opt.sgd_nesterov", "fastbp.SGD(model.parameters(), nesterov=True)", VE_TE),
    ("opt.adam_betas1", "fastbp.Adam(model.parameters(), betas=(0.9,))", VE_TE),
    ("opt.adam_beta_one", "fastbp.Adam(model.parameters(), betas=(1.0, 0.999))", VE_TE),
    ("opt.adam_eps", "fastbp.Adam(model.parameters(), eps=-1.0)", VE_TE),
    ("opt.rmsprop_alpha", "fastbp.RMSprop(model.parameters(), alpha=-0.1)", VE_TE),
    ("opt.adagrad_eps", "fastbp.AdaGrad(model.parameters(), eps=float('inf'))", VE_TE),
    ("opt.adamw_wd", "fastbp.AdamW(model.parameters(), weight_decay=-0.01)", VE_TE),
    ("opt.step_empty", "opt.step([])", VE_TE),
    ("opt.step_none", "opt.step(None)", VE_TE),
    ("opt.step_nones", "opt.step([None] * 4)", VE_TE),
    ("opt.step_transposed", "opt.step([a.T for a in grads])", VE_TE),
    ("opt.step_f64", "opt.step([a.astype(np.float64) for a in grads])", VE_TE),
    ("opt.lr_neg", "opt.lr = -1.0", VE_TE),
    ("opt.lr_str", "opt.lr = '0.1'", VE_TE),
    ("opt.lr_none", "opt.lr = None", VE_TE),
    ("opt.lr_inf", "opt.lr = float('inf')", VE_TE),
    ("opt.lsd_none", "opt.load_state_dict(None)", VE_TE),
    ("opt.lsd_empty", "opt.load_state_dict({})", VE_TE),
    ("opt.lsd_other_type", "opt.load_state_dict(fastbp.SGD(model.parameters()).state_dict())", VE_TE),
    ("opt.lsd_step_neg", "d = opt.state_dict(); d['step'] = -1\nopt.load_state_dict(d)", VE_TE),
    ("opt.lsd_len", "d = opt.state_dict(); d['state'] = d['state'][:2]\nopt.load_state_dict(d)",
     VE_TE),
    ("opt.lsd_shape", "d = opt.state_dict(); d['state'][0]['exp_avg'] = np.zeros(3)\n"
     "opt.load_state_dict(d)", VE_TE),
    ("opt.lsd_dtype", "d = opt.state_dict(); d['state'][0]['exp_avg'] = "
     "d['state'][0]['exp_avg'].astype(np.float64)\nopt.load_state_dict(d)", VE_TE),
    ("opt.lsd_hyper", "d = opt.state_dict(); d['hyperparameters']['lr'] = -1\nopt.load_state_dict(d)",
     VE_TE),
    ("opt.lsd_hyper_key", "d = opt.state_dict(); d['hyperparameters']['bogus'] = 1\n"
     "opt.load_state_dict(d)", VE_TE),
    ("opt.lsd_state_int", "d = opt.state_dict(); d['state'] = 5\nopt.load_state_dict(d)", VE_TE),
    # ----- schedules
    ("sched.step_size0", "schedules.StepLR(opt, 0)", VE_TE),
    ("sched.step_size_float", "schedules.StepLR(opt, 1.5)", VE_TE),
    ("sched.gamma0", "schedules.StepLR(opt, 1, gamma=0.0)", VE_TE),
    ("sched.exp_gamma", "schedules.ExponentialLR(opt, -1.0)", VE_TE),
    ("sched.cos_T0", "schedules.CosineAnnealingLR(opt, 0)", VE_TE),
    ("sched.cos_eta", "schedules.CosineAnnealingLR(opt, 10, eta_min=-1.0)", VE_TE),
    ("sched.plateau_factor", "schedules.ReduceLROnPlateau(opt, factor=1.5)", VE_TE),
    ("sched.plateau_patience", "schedules.ReduceLROnPlateau(opt, patience=-1)", VE_TE),
    ("sched.plateau_str", "schedules.ReduceLROnPlateau(opt).step('x')", VE_TE),
    ("sched.plateau_nan", "schedules.ReduceLROnPlateau(opt).step(float('nan'))", VE_TE),
    ("sched.no_lr", "schedules.StepLR(object(), 1)", VE_TE),
    ("sched.lsd_class", "schedules.StepLR(opt, 1).load_state_dict({'class': 'ExponentialLR'})", VE_TE),
    ("sched.lsd_none", "schedules.StepLR(opt, 1).load_state_dict(None)", VE_TE),
    ("sched.exp_overflow", "s = schedules.ExponentialLR(opt, 1e300)\ns.step(); s.step()",
     ("OverflowError",)),   # documented in fastbp/schedules.py: a clear OverflowError
    # ----- save / load
    ("save.dir", "model.save(TMP)", ("IsADirectoryError",)),
    ("save.no_folder", "model.save('/nonexistent-fastbp-dir/m.fastbp')", ("FileNotFoundError",)),
    ("save.none", "model.save(None)", VE_TE),
    ("save.foreign_opt", "model.save(os.path.join(TMP, 'a.fastbp'), optimizer=fastbp.SGD([np.ones(2)]))",
     VE_TE),
    ("save.opt_str", "model.save(os.path.join(TMP, 'a.fastbp'), optimizer='adam')", VE_TE),
    ("save.not_model", "fastbp.io.save(object(), os.path.join(TMP, 'a.fastbp'))", VE_TE),
    ("load.none", "fastbp.load(None)", VE_TE),
    ("load.int", "fastbp.load(3)", VE_TE),
    ("load.missing", "fastbp.load(os.path.join(TMP, 'missing.fastbp'))", ("FileNotFoundError",)),
    ("load.dir", "fastbp.load(TMP)", ("IsADirectoryError",)),
    ("load.empty", "fastbp.load(FILES['empty.fastbp'])", VE_TE),
    ("load.random", "fastbp.load(FILES['random.fastbp'])", VE_TE),
    ("load.text", "fastbp.load(FILES['text.fastbp'])", VE_TE),
    ("load.pickle", "fastbp.load(FILES['pickle.fastbp'])", VE_TE),
    ("load.npy", "fastbp.load(FILES['array.npy'])", VE_TE),
    ("load.noheader", "fastbp.load(FILES['noheader.fastbp'])", VE_TE),
    ("load.badjson", "fastbp.load(FILES['badjson.fastbp'])", VE_TE),
    ("load.listjson", "fastbp.load(FILES['listjson.fastbp'])", VE_TE),
    ("load.deepjson", "fastbp.load(FILES['deepjson.fastbp'])", VE_TE),
    ("load.truncated", "fastbp.load(FILES['truncated.fastbp'], with_optimizer=True)", VE_TE),
    ("load.devnull", "fastbp.load('/dev/null')", VE_TE),
    # ----- threads
    ("threads.zero", "fastbp.set_num_threads(0)", VE_TE),
    ("threads.neg", "fastbp.set_num_threads(-1)", VE_TE),
    ("threads.str", "fastbp.set_num_threads('2')", VE_TE),
    ("threads.float", "fastbp.set_num_threads(2.5)", VE_TE),
    ("threads.none", "fastbp.set_num_threads(None)", VE_TE),
    ("threads.bool", "fastbp.set_num_threads(True)", VE_TE),
]

# Malformed calls that misbehaved once (fixed; kept apart as regression tests).
FIXED_BUGS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "huge_int_lr_sgd": ("fastbp.SGD(model.parameters(), lr=10**400)", VE_TE,
                        "OverflowError: _validation.finite_scalar called float() on huge ints"),
    "huge_int_lr_setter": ("opt.lr = 10**400", VE_TE, "OverflowError from finite_scalar"),
    "huge_int_lr_fit": ("model.fit(X, y, lr=10**400, epochs=1)", VE_TE,
                        "OverflowError from finite_scalar"),
    "huge_int_gradcheck_eps": ("fastbp.gradcheck(model, X, y, eps=10**400)", VE_TE,
                               "OverflowError from finite_scalar"),
    "huge_int_ops_step": ("ops.adam_step(p, g, s, s.copy(), None, step=10**400, lr=1e-3)", VE_TE,
                          "OverflowError: adam_scalars computed beta**step with a huge int"),
    "huge_int_schedule_gamma": ("schedules.StepLR(opt, 1, gamma=10**400)", VE_TE,
                                "OverflowError from schedules._check_real"),
    "huge_threads": ("fastbp.set_num_threads(10**30)", VE_TE,
                     "ctypes.ArgumentError: set_num_threads did not bound n"),
    "huge_model_threads": ("fastbp.MLP((4, 1), num_threads=10**30).predict(X)", VE_TE,
                           "ctypes.ArgumentError at predict; the constructor accepted it"),
    "step_count_overflow": ("d = opt.state_dict(); d['step'] = 2**63\nopt.load_state_dict(d)\n"
                            "model.train_step(X, y, opt)", VE_TE,
                            "OverflowError: load_state_dict accepted any step >= 0, the "
                            "engine takes a C long"),
    "float_labels_out_of_int_range": ("clf.fit(X, np.full(16, 1e30), epochs=1)", VE_TE,
                                      "RuntimeWarning ('invalid value encountered in cast') "
                                      "escaped from _convert.as_labels before the range check"),
}


def _chunks():
    ids = [c[0] for c in CATALOGUE]
    assert len(ids) == len(set(ids)), "duplicate snippet ids"
    return [CATALOGUE[i:i + CHUNK] for i in range(0, len(CATALOGUE), CHUNK)]


CHUNKS = _chunks()


def test_catalogue_size():
    """The catalogue covers the whole public API with well over 60 malformed calls."""
    print(f"\nmalformed calls: {len(CATALOGUE)} in the catalogue, {len(FIXED_BUGS)} fixed-bug "
          f"entries, {len(INDIVIDUAL)} run individually; {len(CHUNKS)} children")
    assert len(CATALOGUE) >= 60
    areas = {sid.split(".")[0] for sid, _, _ in CATALOGUE}
    assert {"ops", "dense", "seq", "mlp", "model", "clf", "fit", "gradcheck", "opt", "sched",
            "save", "load", "threads"} <= areas


@pytest.mark.packaging
@pytest.mark.parametrize("chunk", range(len(CHUNKS)), ids=lambda i: f"chunk{i}")
def test_malformed_calls_raise_cleanly(chunk, tmp_path):
    entries = CHUNKS[chunk]
    results, diagnosis = run_child([(sid, code) for sid, code, _ in entries], tmp_path)
    assert not diagnosis, diagnosis
    wrong = []
    for sid, code, expected in entries:
        result, msg = results[sid]
        if result not in expected:
            wrong.append(f"{sid}: {code!r} raised {result} ({msg}); expected one of {expected}")
    assert not wrong, "\n".join(wrong)


@pytest.fixture(scope="module")
def fixed_bug_results(tmp_path_factory):
    results, diagnosis = run_child([(k, v[0]) for k, v in FIXED_BUGS.items()],
                                   tmp_path_factory.mktemp("fixed-bugs"))
    assert not diagnosis, diagnosis
    return results


@pytest.mark.packaging
@pytest.mark.parametrize("key", sorted(FIXED_BUGS))
def test_regression_fixed_malformed_calls(key, fixed_bug_results):
    code, expected, why = FIXED_BUGS[key]  # `why`: the bug this call once showed
    result, msg = fixed_bug_results[key]
    assert result in expected, f"{code!r} raised {result} ({msg}); expected one of {expected}"


# ---------------------------------------------------------------- individually isolated calls
# Each snippet must end without raising: it asserts what the correct outcome is.
INDIVIDUAL: dict[str, str] = {
    "dropout_buffers_grow_and_odd_sizes": """
        m = fastbp.MLP((5, 7, 3), "relu", "cross_entropy", seed=0, dropout=0.5)
        o = fastbp.Adam(m.parameters())
        for n in (1, 2, 33, 3, 200, 1):
            Xn = np.random.default_rng(n).normal(size=(n, 5)).astype(np.float32)
            m.train_step(Xn, np.arange(n) % 3, o)
            m.backward(Xn, np.arange(n) % 3)
        m.fit(np.ones((7, 5)), np.arange(7) % 3, epochs=2, batch_size=3, progress=False)
        m.dropout_seed = 5
        m.train_step(np.ones((4, 5), np.float32), np.arange(4) % 3, o)
        for n in (0, 1, 2, 3, 65):
            k = ops.dropout_mask(1, 0, 1, n, 0.3)
            assert k.shape == (n,) and (k == ref.dropout_mask(1, 0, 1, n, 0.3)).all()
            assert ops.dropout_apply(np.ones(n), k, 0.3).shape == (n,)
    """,
    "empty_arrays_to_activation_kernels": """
        for name in ops.ACTIVATIONS:
            for dt in (np.float32, np.float64):
                Z = np.empty((0, 3), dt)
                A = ops.activation_forward(name, Z)
                assert A.shape == (0, 3) and A.dtype == dt
                dZ = ops.activation_backward(name, Z, Z, Z)
                assert dZ.shape == (0, 3) and dZ.dtype == dt
    """,
    "empty_arrays_to_dense_kernels": """
        for dt in (np.float32, np.float64):
            X = np.empty((0, 5), dt); W = np.ones((5, 3), dt); b = np.ones(3, dt)
            for act in ops.ACTIVATIONS:
                Zo, Ao = ops.dense_forward(X, W, b, act)
                assert Zo.shape == Ao.shape == (0, 3)
                dX, dW, db = ops.dense_backward(X, W, Zo, Ao, Ao, act)
                assert dX.shape == (0, 5) and not dW.any() and not db.any()
                dX, dW, db = ops.dense_backward(X, W, Zo, Ao, Ao, act, need_dX=False)
                assert dX is None
    """,
    "empty_arrays_to_optimizer_kernels": """
        for dt in (np.float32, np.float64):
            for shape in ((0,), (0, 5), (5, 0), (2, 0, 3)):
                e = lambda: np.zeros(shape, dt)
                ops.sgd_step(e(), e(), e(), lr=0.1, momentum=0.9, first_step=True)
                ops.adagrad_step(e(), e(), e(), lr=0.1)
                ops.rmsprop_step(e(), e(), e(), e(), e(), lr=0.1, momentum=0.9, centered=True)
                ops.adam_step(e(), e(), e(), e(), e(), step=1, lr=0.1, amsgrad=True)
        for name in ("mse", "cross_entropy"):
            try:
                ops.loss_forward_backward(name, np.empty((0, 3)), np.empty((0, 3)))
            except ValueError:
                pass
            else:
                raise AssertionError("an empty batch must be refused by the loss")
    """,
    "negative_strides_to_kernels": """
        rng = np.random.default_rng(0)
        for dt in (np.float32, np.float64):
            X = rng.normal(size=(7, 5)).astype(dt); W = rng.normal(size=(5, 4)).astype(dt)
            b = rng.normal(size=4).astype(dt)
            Xr, Wr, br = X[::-1, ::-1], W[::-1, ::-1], b[::-1]
            Z1, A1 = ops.dense_forward(Xr, Wr, br, 'tanh')
            Z2, A2 = ops.dense_forward(Xr.copy(), Wr.copy(), br.copy(), 'tanh')
            assert np.array_equal(Z1, Z2) and np.array_equal(A1, A2)
            g1 = ops.dense_backward(Xr, Wr, Z1[::-1][::-1], A1, A1[:, ::-1], 'softmax')
            g2 = ops.dense_backward(Xr.copy(), Wr.copy(), Z1, A1, A1[:, ::-1].copy(), 'softmax')
            assert all(np.array_equal(a, c) for a, c in zip(g1, g2))
            L1 = ops.loss_forward_backward('cross_entropy', Z1[::-1], np.arange(7)[::-1] % 4)
            L2 = ops.loss_forward_backward('cross_entropy', Z1[::-1].copy(), (np.arange(7)[::-1] % 4).copy())
            assert L1[0] == L2[0] and np.array_equal(L1[1], L2[1])
            p = np.ones(6, dt)
            ops.sgd_step(p, np.arange(6, dtype=dt)[::-1], None, lr=1.0)
            assert np.array_equal(p, 1 - np.arange(6, dtype=dt)[::-1])
            for bad in (p[::-1], p[::2]):
                try:
                    ops.adam_step(bad, bad.copy(), np.zeros_like(bad), np.zeros_like(bad), None,
                                  step=1, lr=0.1)
                except ValueError:
                    pass
                else:
                    raise AssertionError("a non-contiguous in-place array must be refused")
    """,
    "labels_out_of_range_to_kernels": """
        out = np.zeros((3, 4))
        for labels in (np.array([0, 1, 4]), np.array([0, -1, 2]), np.array([2**40, 0, 1]),
                       np.array([0, 1, 2**63 - 1]), np.array([-2**63, 0, 1]),
                       np.array([255, 0, 1], dtype=np.uint8), np.array([0, 1, 2**64 - 1], dtype=np.uint64)):
            for mod in (ops, ref):
                try:
                    mod.loss_forward_backward('cross_entropy', out, labels)
                except ValueError:
                    pass
                else:
                    raise AssertionError(f"labels {labels} accepted")
        clf = fastbp.MLP((4, 3), loss='cross_entropy', seed=0)
        for labels in (np.array([0, 1, 3, 0]), np.array([0, -1, 2, 0]), np.array([0, 1, 2**62, 0])):
            for call in (lambda: clf.loss(np.ones((4, 4)), labels),
                         lambda: clf.train_step(np.ones((4, 4)), labels, fastbp.SGD(clf.parameters())),
                         lambda: clf.fit(np.ones((4, 4)), labels, epochs=1)):
                try:
                    call()
                except ValueError:
                    pass
                else:
                    raise AssertionError(f"labels {labels} accepted")
    """,
    "huge_model_shapes": """
        for call in (lambda: fastbp.MLP((2**40, 1)), lambda: fastbp.Dense(1, 2**40),
                     lambda: fastbp.MLP((2**62, 2**62))):
            try:
                call()
            except (MemoryError, ValueError):
                pass
            else:
                raise AssertionError("a 2**40-wide layer cannot be allocated")
    """,
    "parameters_replaced_after_optimizer_bound": """
        rng = np.random.default_rng(0)
        X = rng.normal(size=(32, 4)).astype(np.float32); y = rng.normal(size=32).astype(np.float32)
        m = fastbp.MLP((4, 8, 1), seed=0)
        opt = fastbp.Adam(m.parameters())
        m.train_step(X, y, opt)
        live = m.layers[0].W
        for new in (live.T.copy().T, live[::-1][::-1], np.asfortranarray(live),
                    live.astype(np.float64), live[:, :], (live * 0.5).tolist()):
            expected = np.array(new, dtype=np.float32)
            m.layers[0].W = new                   # copies into the live array
            assert m.layers[0].W is live and live.flags.c_contiguous and live.dtype == np.float32
            np.testing.assert_array_equal(live, expected)
            before = live.copy()
            assert np.isfinite(m.train_step(X, y, opt))   # opt steps the same live arrays
            assert not np.array_equal(live, before)
            out = m.predict(X)                    # the engine follows the new values
            ref_out = np.maximum(X @ m.layers[0].W + m.layers[0].b, 0) @ m.layers[1].W + m.layers[1].b
            np.testing.assert_allclose(out, ref_out[:, 0], rtol=1e-5, atol=1e-5)
        for bad in (live.T, live[:, :1], np.full(live.shape, np.nan, np.float32), "x"):
            try:
                m.layers[0].W = bad
            except (ValueError, TypeError):
                pass
            else:
                raise AssertionError("a wrong replacement for W must be refused")
        opt2 = fastbp.Adam(m.parameters())
        for _ in range(3):
            assert np.isfinite(m.train_step(X, y, opt2))
        # the optimizer's own parameter list cannot be edited (the engine points into it)
        try:
            opt2.params[0] = m.layers[0].W.T
        except TypeError:
            pass
        else:
            raise AssertionError("opt.params must not be editable")
    """,
    "huge_inner_dimension_overflows_blas_int": """
        # A 1 x (2**32 + 1) by (2**32 + 1) x 1 product on sparse memory maps (no RAM used):
        # BLAS takes 32-bit ints, so the inner size must not be truncated to 1.
        K = 2**32 + 1
        def sparse(name, shape):
            path = os.path.join(TMP, name)
            with open(path, 'wb') as fh:
                fh.truncate(K * 4)
            return np.memmap(path, dtype=np.float32, mode='r+', shape=shape)
        Xm, Wm = sparse('x.bin', (1, K)), sparse('w.bin', (K, 1))
        Xm[0, 0], Wm[0, 0], Xm[0, -1], Wm[-1, 0] = 2, 3, 5, 7
        try:
            Zo, _ = ops.dense_forward(Xm, Wm, np.zeros(1, np.float32), 'identity')
        except (ValueError, MemoryError):
            pass
        else:
            assert Zo[0, 0] == 2 * 3 + 5 * 7, f"X @ W = {Zo[0, 0]}, expected 41"
    """,
    "optimizer_state_replaced_by_short_array": """
        m = fastbp.MLP((64, 256, 4), seed=0)
        opt = fastbp.Adam(m.parameters())
        try:
            opt.state[0]['exp_avg'] = np.zeros(1, np.float32)   # 64*256 elements expected
        except TypeError:
            pass
        else:
            raise AssertionError("optimizer state arrays must not be replaceable")
        X = np.ones((32, 64), np.float32); y = np.zeros((32, 4), np.float32)
        opt.step(m.gradients())
        assert np.isfinite(m.train_step(X, y, opt))
    """,
    "first_layer_swapped_after_engine_built": """
        m = fastbp.MLP((64, 8, 1), seed=0)
        m.predict(np.ones((1000, 64), np.float32))          # builds the compiled engine
        try:
            m.layers[0] = fastbp.Dense(1, 8, seed=0)        # layers is a tuple
        except TypeError:
            pass
        else:
            raise AssertionError("model.layers must not be edited in place")
        m.layers = [fastbp.Dense(1, 8, seed=0), m.layers[1]]   # the supported way
        out = m.predict(np.ones((200000, 1), np.float32))
        expected = fastbp.Sequential(m.layers, loss='mse').predict(np.ones((200000, 1), np.float32))
        np.testing.assert_array_equal(out, expected)
    """,
    "head_swapped_after_engine_built_train_step": """
        m = fastbp.MLP((4, 8, 300), seed=0)
        m.train_step(np.ones((50000, 4), np.float32), np.ones((50000, 300), np.float32),
                     fastbp.SGD(m.parameters()))
        m.layers = [*m.layers[:-1], fastbp.Dense(8, 1, seed=0)]   # a new head, as for fine-tuning
        loss = m.train_step(np.ones((50000, 4), np.float32), np.ones((50000, 1), np.float32),
                            fastbp.SGD(m.parameters()))
        assert np.isfinite(loss)
    """,
    "head_swapped_after_engine_built_predict": """
        m = fastbp.MLP((4, 8, 1), seed=0)
        X = np.ones((10, 4), np.float32)
        m.predict(X)
        m.layers = [*m.layers[:-1], fastbp.Dense(8, 5, seed=0)]
        assert m.predict(X).shape == (10, 5), m.predict(X).shape
    """,
}

@pytest.mark.packaging
@pytest.mark.parametrize("key", sorted(INDIVIDUAL))
def test_isolated_malformed_call(key, tmp_path):
    code = textwrap.dedent(INDIVIDUAL[key])
    results, diagnosis = run_child([(key, code)], tmp_path, timeout=120)
    assert not diagnosis, diagnosis
    result, msg = results[key]
    assert result == "ok", f"{key} raised {result}: {msg}"


@pytest.mark.packaging
def test_harness_detects_crashes_hangs_and_wrong_exceptions(tmp_path):
    """The runner itself: a segfault, a hang and an unexpected exception type are seen."""
    _, diagnosis = run_child([("ok", "1 + 1"), ("segv", "import ctypes; ctypes.string_at(0)")],
                             tmp_path)
    assert "killed by signal" in diagnosis and "'segv'" in diagnosis
    _, diagnosis = run_child([("hang", "import time; time.sleep(60)")], tmp_path, timeout=3)
    assert "hung" in diagnosis and "'hang'" in diagnosis
    results, diagnosis = run_child([("key", "{}['x']"), ("fine", "fastbp.MLP((2, 1))")], tmp_path)
    assert not diagnosis
    assert results == {"key": ("KeyError", "'x'"), "fine": ("ok", "")}
