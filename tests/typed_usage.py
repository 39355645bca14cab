"""A typed use of fastbp's public API, checked with ``mypy --strict`` by
tests/test_typing.py (against the installed package) and also run there, so the
example stays correct. Not collected by pytest (no ``test_`` prefix).

The ``assert_type`` lines, seen only by the type checker, pin the types that
fastbp's annotations and stubs promise to users.
"""
from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

import fastbp
from fastbp import ops, reference
from fastbp.schedules import CosineAnnealingLR, ReduceLROnPlateau, StepLR

if TYPE_CHECKING:
    from typing_extensions import assert_type

FloatArray = npt.NDArray[np.floating[Any]]


def make_data(n: int, seed: int = 0) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """n points in 4-D, labelled by the sign of their first coordinate."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = (X[:, 0] > 0).astype(np.intp)
    return X, y


def train_and_reload() -> float:
    """Build an MLP, fit it with Adam and a cosine schedule, predict, save and load."""
    X, y = make_data(64)
    model = fastbp.MLP((4, 8, 2), "relu", "cross_entropy", dtype="float64", seed=0)
    opt = fastbp.Adam(model.parameters(), lr=1e-2)
    history = model.fit(X, y, epochs=4, batch_size=16, optimizer=opt,
                        scheduler=CosineAnnealingLR(opt, T_max=4), seed=0, progress=False)
    losses: list[float] = history.loss
    loss_before: float = model.train_step(X, y, opt)
    labels = model.predict(X)
    proba = model.predict_proba(X)
    check = fastbp.gradcheck(model, X[:4], y[:4])
    if TYPE_CHECKING:
        assert_type(history, fastbp.History)
        assert_type(check, fastbp.GradcheckResult)
        assert_type(model.evaluate(X, y), float)
    assert len(losses) == history.epochs == 4 and np.isfinite(loss_before)
    assert labels.shape == (64,) and proba.shape == (64, 2) and bool(check)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.fastbp")
        model.save(path, opt)
        loaded = fastbp.load(path)
        again, opt_again = fastbp.load(path, with_optimizer=True)
        if TYPE_CHECKING:
            # load reads a Sequential or an Ensemble file: callers narrow
            assert_type(loaded, fastbp.Sequential | fastbp.Ensemble)
            assert_type(opt_again, fastbp.Optimizer | None)
        assert isinstance(loaded, fastbp.Sequential) and isinstance(again, fastbp.Sequential)
    assert opt_again is not None and opt_again.step_count == opt.step_count
    np.testing.assert_array_equal(loaded.predict(X), labels)
    np.testing.assert_array_equal(again.forward(X), model.forward(X))
    return loaded.loss(X, y)


def optimizer_and_schedules() -> float:
    """An optimizer stepped by hand over a Sequential's gradients, with schedules."""
    X, y = make_data(32, seed=1)
    model = fastbp.Sequential([fastbp.Dense(4, 3, "tanh", dtype="float32", seed=0),
                               fastbp.Dense(3, 2, dtype="float32", seed=1)], loss="cross_entropy")
    opt: fastbp.Optimizer = fastbp.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step_lr = StepLR(opt, step_size=2, gamma=0.5)
    plateau = ReduceLROnPlateau(fastbp.RMSprop(model.parameters()), patience=1)
    for _ in range(4):
        loss = model.backward(X, y)
        opt.step(model.gradients())
        step_lr.step()
        plateau.step(loss)
    lr: float = step_lr.get_last_lr()
    assert lr == opt.lr == 0.025
    state: dict[str, Any] = opt.state_dict()
    opt.load_state_dict(state)
    return model.loss(X, y)


def kernels() -> float:
    """One gradient-descent step of a dense layer through fastbp.ops (and the reference)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((5, 3))
    W = rng.standard_normal((3, 2))
    b = np.zeros(2)
    target = rng.standard_normal((5, 2))
    Z, A = ops.dense_forward(X, W, b, "tanh")
    loss, d_out = ops.loss_forward_backward("mse", A, target)
    dX, dW, db = ops.dense_backward(X, W, Z, A, d_out, "identity", need_dX=False)
    if TYPE_CHECKING:
        assert_type(Z, FloatArray)
        assert_type(loss, float)
        assert_type(dX, FloatArray | None)
    assert dX is None
    m, v = np.zeros_like(W), np.zeros_like(W)
    ops.adam_step(W, dW, m, v, None, step=1, lr=1e-3)
    ops.sgd_step(b, db, None, lr=0.1)
    ce, _ = reference.loss_forward_backward("cross_entropy", A, np.array([0, 1, 1, 0, 1]))
    A_ref: FloatArray = reference.activation_forward("softmax", Z)
    assert A_ref.shape == Z.shape and np.isfinite(ce)
    return loss


def main() -> None:
    print(f"fit and reload: loss {train_and_reload():.4f}")
    print(f"optimizer and schedules: loss {optimizer_and_schedules():.4f}")
    print(f"kernels: loss {kernels():.4f}")


if __name__ == "__main__":
    main()
