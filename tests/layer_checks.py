"""Checks every layer kind's tests run on a model holding it: the compiled step against
the layers' own passes, a file round trip, the ONNX export under onnxruntime and the C
export under the system compiler, and an Ensemble whose members end where their own
fits would."""
from __future__ import annotations

import pickle
from typing import Any, Callable

import numpy as np

import fastbp
from fastbp import export

from conftest import assert_close, tol
from test_export import c_predict, compile_shared


def check_step_equals_own_passes(model: Any, X: np.ndarray, y: Any,
                                 sample_weight: Any = None) -> tuple[list[np.ndarray],
                                                                     np.ndarray]:
    """The compiled step's loss and gradients (model.backward) equal the layers' own
    forward and backward passes with loss_and_grad, and the compiled forward their
    output, to 1e-12 (float64, no dropout); (the gradients, that output)."""
    n = len(X)
    value = model.backward(X, y, sample_weight=sample_weight)
    compiled = [g.copy() for g in model.gradients()]
    out = X
    for layer in model.layers:
        out = layer.forward(out)
    own, d = model.loss_and_grad(np.ascontiguousarray(out), model.check_y(y, n),
                                 model.check_sample_weight(sample_weight, n))
    for layer in reversed(model.layers):
        d = layer.backward(d)
    assert abs(value - own) <= 1e-12 * abs(own)
    for a, b in zip(compiled, model.gradients()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.forward(X), out, rtol=1e-12, atol=1e-14)
    return compiled, out


def check_files_and_exports(model: Any, X: np.ndarray, tmp_path: Any, name: str,
                            ort: Any) -> None:
    """save/load gives the same layers and outputs; both exports equal the model."""
    dtype = model.dtype
    Xd = X.astype(dtype)
    path = tmp_path / f"{name}.fastbp"
    model.save(path)
    loaded = fastbp.load(path)
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.forward(Xd), model.forward(Xd))
    # the pickle path (Ensemble's workers): the copy trains, on arrays of its own
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.forward(Xd), model.forward(Xd))
    for mine, theirs in zip(clone.parameters(), model.parameters()):
        assert mine.flags.writeable and not np.shares_memory(mine, theirs)
    session = ort.InferenceSession(export.to_onnx(model, output="raw"))
    got = session.run(None, {session.get_inputs()[0].name: Xd})[0]
    assert_close(got, model.forward(Xd), dtype, rtol=tol(dtype, "onnx_rtol"))
    export.to_c(model, tmp_path, name=name)
    lib = compile_shared([str(tmp_path / f"{name}.c")], str(tmp_path / f"{name}.so"))
    heads = model.objective.heads   # (the exports give the heads' mean, as predict does)
    expected = model.predict_proba(Xd) if model.loss_name in ("cross_entropy",
                                                              "binary_cross_entropy") \
        else model.forward(Xd).reshape(len(Xd), heads, -1).mean(axis=1)
    assert_close(c_predict(lib, name, model, Xd), expected, dtype, rtol=tol(dtype, "onnx_rtol"))


def check_ensemble_members_end_alone(make: Callable[[int], Any], X: np.ndarray, y: np.ndarray,
                                     **fit: Any) -> None:
    """Two members (make(0), make(1)) fitted as an Ensemble with seeds 5 and 6 end with
    the parameters and buffers of their own fits, bit for bit."""
    members, solo = [make(s) for s in range(2)], [make(s) for s in range(2)]
    fastbp.Ensemble(members).fit(X, y, epochs=2, seed=[5, 6], progress=False, **fit)
    for m, alone, seed in zip(members, solo, [5, 6]):
        alone.fit(X, y, epochs=2, seed=seed, progress=False, **fit)
        arrays = lambda model: model.parameters() + [
            b for layer in model.layers for b in layer.buffers()]
        for p, q in zip(arrays(m), arrays(alone)):
            np.testing.assert_array_equal(p, q)


def check_cross_entropy_steps_equal_torch(model: Any, opt: Any, net: Any, topt: Any,
                                          X: np.ndarray, y: np.ndarray, theirs: list[Any],
                                          steps: int = 25, batch: int = 64) -> None:
    """``steps`` train_steps of ``model`` with ``opt`` and of the torch module ``net``
    with ``topt`` (cross-entropy, the same random batches) give the same losses (1e-10)
    and end with the parameters ``theirs`` (aligned with ``model.parameters()``, torch
    tensors) equal to 1e-9."""
    import torch
    rng = np.random.default_rng(1)
    for _ in range(steps):
        rows = rng.choice(X.shape[0], batch, replace=False)
        loss = model.train_step(X[rows], y[rows], opt)
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(net(torch.tensor(X[rows])),
                                                  torch.tensor(y[rows]))
        tloss.backward()
        topt.step()
        assert abs(loss - tloss.item()) <= 1e-10 * abs(tloss.item())
    for a, e in zip(model.parameters(), theirs):
        np.testing.assert_allclose(a, e.detach().numpy(), rtol=1e-9, atol=1e-12)
