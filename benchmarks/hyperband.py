"""H1: a Hyperband search over MLP classifiers on a 20,000-row tabular problem, two ways:

- fastbp: ``fastbp.sklearn.MLPSearchCV(MLPClassifier(max_iter=81), param_distributions,
  n_iter=243, cv=one 80/20 split, halving=fastbp.Hyperband(eta=3), num_threads=2)``;
- dask-ml: ``dask_ml.model_selection.HyperbandSearchCV(sklearn's MLPClassifier,
  param_distributions, max_iter=81, aggressiveness=3, test_size=0.2)`` on a local
  2-worker cluster (one thread each), the training rows as one block (so that one
  ``partial_fit`` is one epoch, as one of fastbp's halving steps).

The same parameter space (hidden width, learning rate, alpha, batch size), the same
epoch budget per configuration (81); dask-ml's Hyperband sizes its own brackets for
``max_iter=81`` (143 configurations), fastbp's shares its 243 over Li et al.'s
brackets. Each side reports its wall time, its best validation accuracy (on its own 20%
split) and its best estimator's accuracy on 5,000 held-out rows that neither search saw
(where the two are compared for "the same best score").

dask-ml 2024.4 needs a dask older than fastbp's Dask extra installs (its incremental
search relies on dask internals that dask 2025 changed), so each side runs in its own
environment, one right after the other, with nothing else running:

    env -u OPENBLAS_CORETYPE python benchmarks/hyperband.py --side fastbp --json h1-fastbp.json
    python -m venv /tmp/h1 && /tmp/h1/bin/pip install "dask[distributed,array,dataframe]<2025" \\
        dask-ml "scikit-learn<1.7" "numpy<2.3"
    env -u OPENBLAS_CORETYPE /tmp/h1/bin/python benchmarks/hyperband.py --side dask-ml \\
        --json h1-dask-ml.json
    python benchmarks/hyperband.py --table h1-fastbp.json h1-dask-ml.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import numpy as np

N_SEARCH, N_TEST = 20_000, 5_000
MAX_EPOCHS = 81
N_CONFIGS = 243
HIDDEN = [32, 64, 128, 256]   # one hidden layer (dask-ml cannot tabulate tuples of two lengths)


def problem() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X, y) of the search and the held-out (X, y): 40 features, 3 classes."""
    from sklearn.datasets import make_classification
    X, y = make_classification(N_SEARCH + N_TEST, 40, n_informative=20, n_redundant=10,
                               n_classes=3, n_clusters_per_class=3, class_sep=0.8,
                               flip_y=0.02, random_state=0)
    X = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float64)
    return X[:N_SEARCH], y[:N_SEARCH], X[N_SEARCH:], y[N_SEARCH:]


def space() -> dict[str, Any]:
    from scipy.stats import loguniform
    return {"hidden_layer_sizes": HIDDEN, "learning_rate_init": loguniform(1e-4, 3e-1),
            "alpha": loguniform(1e-6, 1e-1), "batch_size": [64, 128, 256]}


def environment() -> dict[str, Any]:
    import sklearn
    env = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
           "numpy": np.__version__, "scikit-learn": sklearn.__version__,
           "cpu": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            env["cpu"] = next(line.split(":", 1)[1].strip() for line in f
                              if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return env


def run_fastbp() -> dict[str, Any]:
    from sklearn.model_selection import ShuffleSplit
    import fastbp
    from fastbp.sklearn import MLPClassifier, MLPSearchCV
    X, y, Xt, yt = problem()
    search = MLPSearchCV(MLPClassifier(max_iter=MAX_EPOCHS, random_state=0),
                         param_distributions=space(), n_iter=N_CONFIGS,
                         cv=ShuffleSplit(1, test_size=0.2, random_state=0),
                         halving=fastbp.Hyperband(eta=3), num_threads=2, random_state=0)
    start = time.perf_counter()
    search.fit(X, y)
    seconds = time.perf_counter() - start
    return {"side": "fastbp", "version": fastbp.__version__, "seconds": seconds,
            "configurations": N_CONFIGS, "best_validation": float(search.best_score_),
            "held_out": float(search.best_estimator_.score(Xt, yt)),
            "best_params": {k: str(v) for k, v in search.best_params_.items()},
            "environment": environment()}


def run_dask_ml() -> dict[str, Any]:
    import dask
    import dask.array as da
    import dask_ml
    from dask.distributed import Client, LocalCluster
    from dask_ml.model_selection import HyperbandSearchCV
    from sklearn.neural_network import MLPClassifier
    X, y, Xt, yt = problem()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster):
        search = HyperbandSearchCV(MLPClassifier(random_state=0), space(),
                                   max_iter=MAX_EPOCHS, aggressiveness=3, test_size=0.2,
                                   random_state=0)
        Xd = da.from_array(X, chunks=X.shape)
        yd = da.from_array(y, chunks=y.shape)
        start = time.perf_counter()
        search.fit(Xd, yd, classes=np.unique(y))
        seconds = time.perf_counter() - start
        held_out = float(search.best_estimator_.score(Xt, yt))
    return {"side": "dask-ml", "version": dask_ml.__version__, "dask": dask.__version__,
            "seconds": seconds, "configurations": int(search.metadata["n_models"]),
            "partial_fit_calls": int(search.metadata["partial_fit_calls"]),
            "best_validation": float(search.best_score_), "held_out": held_out,
            "best_params": {k: str(v) for k, v in search.best_params_.items()},
            "environment": environment()}


def table(fb: dict[str, Any], dm: dict[str, Any]) -> str:
    env = fb["environment"]
    lines = [f"H1, {env['date']}, {env['cpu']}", "",
             "| search | configurations | seconds | best validation accuracy | "
             "held-out accuracy of the best | time / fastbp's |", "|---|---|---|---|---|---|"]
    for r, name in ((fb, f"fastbp {fb['version']} MLPSearchCV(halving=Hyperband), 2 threads"),
                    (dm, f"dask-ml {dm['version']} HyperbandSearchCV, 2 workers")):
        lines.append(f"| {name} | {r['configurations']} | {r['seconds']:.1f} | "
                     f"{r['best_validation']:.4f} | {r['held_out']:.4f} | "
                     f"{r['seconds'] / fb['seconds']:.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", choices=["fastbp", "dask-ml"])
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--table", nargs=2, metavar=("FASTBP_JSON", "DASK_ML_JSON"))
    args = parser.parse_args(argv)
    if args.table:
        with open(args.table[0]) as f, open(args.table[1]) as g:
            print(table(json.load(f), json.load(g)))
        return 0
    if args.side is None:
        parser.error("give --side or --table")
    report = run_fastbp() if args.side == "fastbp" else run_dask_ml()
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
