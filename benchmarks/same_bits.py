"""A fixed set of trainings, and the SHA-256 of the parameters each one ends with.

Run it on two commits (each installed in its own environment) and compare the
lines: a change that should not move a single bit of training (a restructure, a
faster kernel with the same arithmetic) must print the same digests.

    python benchmarks/same_bits.py            # one line per training: name, digest

It uses only names that every release since the second stage has, so the same
file runs against older commits.
"""
from __future__ import annotations

import hashlib
import warnings

import numpy as np

import fastbp


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _data(n=300, d=6, k=3, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    labels = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.intp) + (X[:, 3] > 1)
    y_reg = np.sin(X[:, :2]).astype(dtype)
    return X, labels % k, y_reg


OPTIMIZERS = {
    "sgd-nesterov": lambda p: fastbp.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    "sgd-dampening": lambda p: fastbp.SGD(p, lr=0.05, momentum=0.5, dampening=0.1),
    "adagrad": lambda p: fastbp.AdaGrad(p, lr=0.05, weight_decay=1e-3),
    "rmsprop-centered": lambda p: fastbp.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
    "adam-amsgrad": lambda p: fastbp.Adam(p, lr=0.01, amsgrad=True, weight_decay=1e-3),
    "adam-folded": lambda p: fastbp.Adam(p, lr=0.01, eps_mode="folded"),
    "adamw": lambda p: fastbp.AdamW(p, lr=0.01),
}


def trainings():
    """(name, the parameters after training) for every training of the set."""
    for dtype in ("float32", "float64"):
        X, labels, y_reg = _data(dtype=dtype)
        for name, make in OPTIMIZERS.items():
            m = fastbp.MLP((6, 16, 8, 3), "tanh", "cross_entropy", dtype=dtype, seed=1)
            m.fit(X, labels, epochs=3, batch_size=32, optimizer=make(m.parameters()), seed=2,
                  progress=False)
            yield f"{dtype}-{name}", m.parameters()
        for act in ("relu", "gelu", "sigmoid", "elu", "softplus", "silu", "leaky_relu"):
            m = fastbp.MLP((6, 12, 2), act, "mse", dtype=dtype, seed=3, dropout=0.2)
            m.fit(X, y_reg, epochs=3, batch_size=16, seed=4, progress=False)
            yield f"{dtype}-dropout-{act}", m.parameters()
        w = np.linspace(0.1, 2.0, len(X))
        for loss, y in (("huber", y_reg), ("mae", y_reg), ("cross_entropy", labels),
                        ("binary_cross_entropy", (y_reg > 0).astype(dtype)),
                        ("poisson", np.abs(y_reg))):
            out = 3 if loss == "cross_entropy" else 2
            m = fastbp.MLP((6, 10, out), "relu", loss, dtype=dtype, seed=5)
            m.fit(X, y, epochs=2, batch_size=25, seed=6, sample_weight=w, progress=False)
            yield f"{dtype}-weighted-{loss}", m.parameters()
        ens = fastbp.Ensemble.of(3, (6, 8, 3), loss="cross_entropy", dtype=dtype, seed=7,
                                 dropout=0.1)
        ens.fit(X, labels, epochs=2, seed=[1, 2, 3], lr=[1e-3, 1e-2, 3e-3], num_threads=1,
                progress=False)
        yield f"{dtype}-ensemble", [p for m in ens.models for p in m.parameters()]
    try:
        from fastbp.sklearn import MLPClassifier, MLPRegressor
    except ImportError:
        return
    X, labels, y_reg = _data(n=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for solver in ("adam", "sgd", "lbfgs"):
            for lr_rule in (("constant", "adaptive") if solver == "sgd" else ("constant",)):
                clf = MLPClassifier(hidden_layer_sizes=(12,), solver=solver, learning_rate=lr_rule, max_iter=15,
                                    random_state=0, alpha=1e-3).fit(X, labels)
                yield f"sklearn-clf-{solver}-{lr_rule}", clf.coefs_ + clf.intercepts_
            reg = MLPRegressor(hidden_layer_sizes=(10,), solver=solver, max_iter=15, random_state=0,
                               early_stopping=solver != "lbfgs").fit(X, y_reg[:, 0])
            yield f"sklearn-reg-{solver}", reg.coefs_ + reg.intercepts_


if __name__ == "__main__":
    for name, params in trainings():
        print(f"{name:32s} {_digest(params)}")
