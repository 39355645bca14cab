"""TabM's members each on their own batch order (tabm's ``share_training_batches=False``,
pytabkit's TabM_D default).

Every epoch draws k permutations of the training rows; row i of the epoch holds member
m's row ``order_m[i]``, its input at columns [m·d, (m+1)·d) and its target at head m's
(``Objective(heads=k)`` with per-head targets). The rows go through a twin of the
estimator's network whose first BatchEnsemble reads member-stacked inputs (a
piecewise-linear encoding's bins repeated for each member): the same parameters, copied
back into the estimator's network (which reads one shared input, as the k members do
at prediction) after each epoch.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fastbp.groups import no_decay_groups
from fastbp.layers import layer_from_spec
from fastbp.models import Sequential
from fastbp.optim import AdamW

__all__ = ["member_twin", "MemberRowsTrainer"]


def member_twin(model: Sequential, dropout_seed: int) -> Sequential:
    """A twin of a TabM network ``model`` that reads each row as the k members' own
    encoded rows side by side, its parameters set to ``model``'s."""
    k = model.objective.heads
    layers = []
    for layer in model.layers:
        spec = layer.spec()
        if spec["kind"] == "piecewise_linear_encoding":
            spec = {**spec, "bins": spec["bins"] * k}
        elif spec["kind"] == "batch_ensemble" and spec.get("shared_input"):
            spec = {**spec, "shared_input": False}
        layers.append(layer_from_spec(spec, model.dtype))
    twin = Sequential(layers, model.loss_name, dropout_seed=dropout_seed)
    twin.objective = model.objective
    twin.num_threads = model.num_threads
    for mine, theirs in zip(twin.parameters(), model.parameters()):
        mine[...] = theirs
    return twin


class MemberRowsTrainer:
    """Runs a TabM estimator's epochs with each member on its own batch order
    (``TabularEstimator._fit_keeping_best``'s ``trainer``).

    Parameters
    ----------
    model : Sequential
        The estimator's network (shared input); it gets each epoch's parameters.
    n_classes : int or None
        The classes of a classifier's labels (their per-head targets are one-hot), None
        for a regressor's values.
    weight_decay : float
        AdamW's decay of the linear weights (``no_decay_groups``).
    seed : int
        The batch orders' and the twin's dropout seed.
    """

    def __init__(self, model: Sequential, n_classes: int | None, weight_decay: float,
                 seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.model = model
        self.n_classes = n_classes
        self.weight_decay = weight_decay
        self.rng = rng
        self.twin = member_twin(model, int(rng.integers(0, 2**31 - 1)))

    def epoch_rows(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One epoch's member-stacked rows (n, k·d) and per-head targets (n, k·w):
        k orders as pytabkit draws them (argsort of uniform draws)."""
        n, k = X.shape[0], self.model.objective.heads
        order = np.argsort(self.rng.random((k, n)), axis=1).T   # [i, m]: member m's row
        Xe = np.ascontiguousarray(X[order].reshape(n, -1))
        if self.n_classes is None:
            return Xe, np.ascontiguousarray(y[order], dtype=X.dtype)
        T = np.zeros((n, k, self.n_classes), dtype=X.dtype)
        T[np.arange(n)[:, None], np.arange(k)[None, :], y[order]] = 1.0
        return Xe, T.reshape(n, -1)

    def __call__(self, X: np.ndarray, y: np.ndarray,
                 after_epoch: Callable[[int, dict[str, float]], bool], *, epochs: int,
                 batch_size: int, lr: float, **fit_args: Any) -> list[float]:
        """The epochs (each one twin fit of one epoch in the drawn order, then its
        parameters into ``model``); their losses."""
        twin = self.twin
        opt = AdamW(no_decay_groups(twin, self.weight_decay), lr=lr)
        losses: list[float] = []
        for epoch in range(epochs):
            Xe, Te = self.epoch_rows(X, y)
            history = twin.fit(Xe, Te, epochs=1, batch_size=batch_size, optimizer=opt,
                               shuffle=False, progress=False, **fit_args)
            losses.append(float(history.loss[-1]))
            for mine, theirs in zip(self.model.parameters(), twin.parameters()):
                mine[...] = theirs
            if after_epoch(epoch, {"loss": losses[-1]}):
                break
        return losses
