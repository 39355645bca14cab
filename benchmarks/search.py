"""G1: a 5-fold search over 16 configurations of an MLPClassifier on digits (max_iter=50),
three ways, one after another in one process:

- ``fastbp.sklearn.MLPSearchCV`` over fastbp's MLPClassifier (its threads);
- scikit-learn's ``GridSearchCV(n_jobs=2)`` over fastbp's MLPClassifier;
- scikit-learn's ``GridSearchCV(n_jobs=2)`` over scikit-learn's MLPClassifier.

Each is timed ``--repeats`` times (the median is reported, with the best mean test score
each found: the two searches over fastbp's estimator find the same numbers).

    env -u OPENBLAS_CORETYPE python benchmarks/search.py [--threads 2] [--repeats 3]

Run it with nothing else running.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any, Callable

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from fastbp.bench import environment, print_report
from fastbp.sklearn import MLPClassifier, MLPSearchCV
from fastbp.threads import set_num_threads

GRID = {"hidden_layer_sizes": [(32,), (64,)], "alpha": [1e-4, 1e-2],
        "learning_rate_init": [1e-3, 1e-2], "batch_size": [32, 128]}
BASE = dict(max_iter=50, random_state=0)


def contenders(threads: int) -> dict[str, Callable[[], Any]]:
    X, y = load_digits(return_X_y=True)
    X = X / 16
    return {
        "MLPSearchCV (fastbp)": lambda: MLPSearchCV(MLPClassifier(**BASE), GRID, cv=5,
                                                    num_threads=threads).fit(X, y),
        "GridSearchCV n_jobs=2 (fastbp)": lambda: GridSearchCV(
            MLPClassifier(**BASE), GRID, cv=5, n_jobs=2).fit(X, y),
        "GridSearchCV n_jobs=2 (scikit-learn)": lambda: GridSearchCV(
            SkMLPClassifier(**BASE), GRID, cv=5, n_jobs=2).fit(X, y),
    }


def run(threads: int, repeats: int) -> dict[str, Any]:
    set_num_threads(threads)
    results: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, fn in contenders(threads).items():
            times, score = [], float("nan")
            for _ in range(repeats):
                start = time.perf_counter()
                search = fn()
                times.append(time.perf_counter() - start)
                score = float(search.best_score_)
            results[name] = {"seconds": float(np.median(times)), "best_score": score}
            print(f"{name}: {results[name]['seconds']:.2f} s, best {score:.4f}", file=sys.stderr)
    return {"environment": environment([threads]), "results": results}


def table(report: dict[str, Any]) -> str:
    env, r = report["environment"], report["results"]
    ours = r["MLPSearchCV (fastbp)"]["seconds"]
    lines = [f"G1 (5-fold, 16 configurations, digits, max_iter=50), {env['date']}, {env['cpu']}, "
             f"{env['cores']} cores, threads {env['threads']}; seconds (median)", "",
             "| search | seconds | best mean score | time / MLPSearchCV's |", "|---|---|---|---|"]
    for name, v in r.items():
        lines.append(f"| {name} | {v['seconds']:.2f} | {v['best_score']:.4f} | "
                     f"{v['seconds'] / ours:.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    report = run(args.threads, args.repeats)
    print_report(report, table, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
