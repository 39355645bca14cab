"""T1: tabular models side by side -- fastbp.tabular's TabM and RealMLP against pytabkit's
TabM_D and RealMLP_TD (their PyTorch references, on this machine's CPU) and scikit-learn's
MLPClassifier/Regressor and HistGradientBoosting* -- on datasets that ship with
scikit-learn or that this script
generates, each with one fixed train/test split and ``--seeds`` model seeds.

Reported per dataset and model: the test score (accuracy; R² for regression) as mean ±
std over the seeds, the fit time and the time to predict 1,000 rows (medians over the
seeds; for fastbp's models the file also records, per seed, the epochs run and the
epoch restored). pytabkit refuses missing numeric values: it gets the numeric columns
with the training median filled in (its categorical columns stay categorical);
scikit-learn's MLP gets median-imputed, standardised numeric columns and one-hot
categories; HistGradientBoosting takes the table as it is (NaN, categorical dtype).

    env -u OPENBLAS_CORETYPE python benchmarks/tabular.py --json t1.json \\
        [--datasets breast_cancer,wine] [--models fastbp-realmlp,pytabkit-realmlp] [--seeds 5]
    python benchmarks/tabular.py --table t1.json

An existing ``--json`` file is extended: a (dataset, model) pair it holds runs only the
seeds it lacks up to ``--seeds``, and the file is rewritten after each seed (a long run
can be stopped and resumed).

Run it with nothing else running (pytabkit and fastbp each use ``--threads``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.datasets import (load_breast_cancer, load_diabetes, load_digits, load_wine,
                              make_classification, make_regression)
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from fastbp.bench import environment
from fastbp.tabular import RealMLPClassifier, RealMLPRegressor, TabMClassifier, TabMRegressor


def _with_categories(X: np.ndarray, rng: np.random.Generator, n_cat: int,
                     missing: float) -> pd.DataFrame:
    """X as a DataFrame whose first n_cat columns are binned into categories (text) and
    whose numeric cells are missing with probability ``missing``."""
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    for j in range(n_cat):
        edges = np.quantile(X[:, j], [0.2, 0.4, 0.6, 0.8])
        df[f"x{j}"] = pd.Categorical(np.array(list("abcde"))[np.searchsorted(edges, X[:, j])])
    for col in df.columns[n_cat:]:
        df.loc[rng.random(len(df)) < missing, col] = np.nan
    return df


def datasets() -> dict[str, Callable[[], tuple[Any, np.ndarray, str]]]:
    """name -> () -> (X, y, "classification" or "regression")."""
    def sk(loader: Any, task: str) -> Callable[[], tuple[Any, np.ndarray, str]]:
        return lambda: (*loader(return_X_y=True), task)

    def cls(n: int, n_features: int, n_classes: int, seed: int) -> Callable[..., Any]:
        def make() -> tuple[Any, np.ndarray, str]:
            X, y = make_classification(n, n_features, n_informative=n_features // 2,
                                       n_classes=n_classes, random_state=seed)
            return _with_categories(X, np.random.default_rng(seed), 2, 0.1), y, \
                "classification"
        return make

    def reg(n: int, n_features: int, seed: int) -> Callable[..., Any]:
        def make() -> tuple[Any, np.ndarray, str]:
            X, y = make_regression(n, n_features, n_informative=n_features // 2, noise=10.0,
                                   random_state=seed)
            return _with_categories(X, np.random.default_rng(seed), 2, 0.1), y, "regression"
        return make

    return {"breast_cancer": sk(load_breast_cancer, "classification"),
            "wine": sk(load_wine, "classification"),
            "digits": sk(load_digits, "classification"),
            "diabetes": sk(load_diabetes, "regression"),
            "cls_cat_missing_6k": cls(6_000, 20, 3, 1),
            "reg_cat_missing_6k": reg(6_000, 20, 2),
            "cls_cat_missing_20k": cls(20_000, 30, 2, 3),
            "cls_cat_missing_100k": cls(100_000, 20, 2, 4)}


def _numeric_filled(X_train: Any, X_test: Any) -> tuple[Any, Any]:
    """pytabkit's input: numeric columns with the training median filled in."""
    if not isinstance(X_train, pd.DataFrame):
        return X_train, X_test
    num = [c for c in X_train.columns if X_train[c].dtype.kind in "fiu"]
    med = X_train[num].median()
    return X_train.fillna(med), X_test.fillna(med)


def _sk_mlp(task: str, X: Any, seed: int) -> Any:
    num = [c for c in X.columns if X[c].dtype.kind in "fiu"] if isinstance(
        X, pd.DataFrame) else list(range(X.shape[1]))
    cat = [c for c in X.columns if c not in num] if isinstance(X, pd.DataFrame) else []
    pre = make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
        *([(OneHotEncoder(handle_unknown="ignore"), cat)] if cat else []))
    net = (MLPClassifier if task == "classification" else MLPRegressor)(
        hidden_layer_sizes=(256, 256), early_stopping=True, random_state=seed, max_iter=500)
    return make_pipeline(pre, net)


def models(threads: int) -> dict[str, Callable[[str, Any, int], Any]]:
    def pytabkit_tabm(task: str, X: Any, seed: int) -> Any:
        from pytabkit import TabM_D_Classifier, TabM_D_Regressor
        cls = TabM_D_Classifier if task == "classification" else TabM_D_Regressor
        return cls(device="cpu", random_state=seed, n_threads=threads, verbosity=0)

    def pytabkit_realmlp(task: str, X: Any, seed: int) -> Any:
        from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor
        cls = RealMLP_TD_Classifier if task == "classification" else RealMLP_TD_Regressor
        return cls(device="cpu", random_state=seed, n_threads=threads, verbosity=0)

    return {
        "fastbp-realmlp": lambda task, X, seed: (
            RealMLPClassifier if task == "classification" else RealMLPRegressor)(
            random_state=seed, num_threads=threads),
        "pytabkit-realmlp": pytabkit_realmlp,
        "fastbp-tabm": lambda task, X, seed: (TabMClassifier if task == "classification"
                                              else TabMRegressor)(random_state=seed,
                                                                  num_threads=threads),
        "fastbp-tabm-noemb": lambda task, X, seed: (
            TabMClassifier if task == "classification" else TabMRegressor)(
            num_embeddings=None, random_state=seed, num_threads=threads),
        # pytabkit's TabM_D configuration: no embeddings, each member on its own order
        "fastbp-tabm-own": lambda task, X, seed: (
            TabMClassifier if task == "classification" else TabMRegressor)(
            num_embeddings=None, share_training_batches=False, random_state=seed,
            num_threads=threads),
        "pytabkit-tabm": pytabkit_tabm,
        "sklearn-mlp": _sk_mlp,
        "sklearn-hgb": lambda task, X, seed: (
            HistGradientBoostingClassifier if task == "classification"
            else HistGradientBoostingRegressor)(random_state=seed,
                                                categorical_features="from_dtype"),
    }


def _epochs(est: Any) -> dict[str, int] | None:
    """How many epochs a fastbp estimator ran and which it restored: a fit's time is
    epochs times the time of one, and early stopping makes the first vary by seed."""
    if not hasattr(est, "n_epochs_"):
        return None
    return {"run": int(est.n_epochs_), "best": int(est.best_epoch_)}


def run(names: list[str], model_names: list[str], seeds: int, threads: int,
        path: str | None = None) -> dict[str, Any]:
    import torch
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    out: dict[str, Any] = {"environment": environment([threads]), "threads": threads,
                           "rows": []}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                out["rows"] = json.load(f)["rows"]
        except FileNotFoundError:
            pass
    held = {(r["dataset"], r["model"]): r for r in out["rows"]}
    all_models = models(threads)
    for name in names:
        X, y, task = datasets()[name]()
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.2, random_state=0,
            stratify=y if task == "classification" else None)
        predict_rows = (X_test.iloc if isinstance(X_test, pd.DataFrame) else X_test)[
            np.arange(1000) % len(X_test)]
        for model_name in model_names:
            row = held.get((name, model_name))
            if row is None:
                row = {"dataset": name, "task": task, "model": model_name,
                       "n_train": len(y_train), "scores": [], "fit_s": [], "predict_s": []}
                held[name, model_name] = row
                out["rows"].append(row)
            for seed in range(len(row["scores"]), seeds):
                est = all_models[model_name](task, X_train, seed)
                Xtr, Xte = (_numeric_filled(X_train, X_test) if model_name.startswith(
                    "pytabkit") else (X_train, X_test))
                pr = _numeric_filled(X_train, predict_rows)[1] if model_name.startswith(
                    "pytabkit") else predict_rows
                start = time.perf_counter()
                est.fit(Xtr, y_train)
                fit_s = time.perf_counter() - start
                score = float(est.score(Xte, y_test))
                start = time.perf_counter()
                est.predict(pr)
                predict_s = time.perf_counter() - start
                row["scores"].append(score)
                row["fit_s"].append(fit_s)
                row["predict_s"].append(predict_s)
                epochs = _epochs(est)
                if epochs is not None:  # keyed by seed: files from before this hold none
                    row.setdefault("epochs", {})[str(seed)] = epochs
                print(f"{name} {model_name} seed {seed}: score {score:.4f}, fit "
                      f"{fit_s:.2f} s, predict 1,000 rows {predict_s * 1e3:.1f} ms"
                      + (f", epochs run {epochs['run']}, best {epochs['best']}"
                         if epochs else ""), file=sys.stderr, flush=True)
                if path is not None:  # after each seed: a stopped run loses one seed at most
                    with open(path, "w", encoding="utf-8") as f:
                        json.dump(out, f, indent=1)
    return out


def table(results: dict[str, Any]) -> str:
    lines = ["| dataset | rows (train) | model | seeds | score (mean ± std) | fit s | "
             "predict 1,000 ms |", "|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        s = np.asarray(r["scores"])
        # one seed has no spread: "± 0.0000" would read as a measured one
        score = f"{s.mean():.4f} ± {s.std():.4f}" if len(s) > 1 else f"{s[0]:.4f}"
        lines.append(f"| {r['dataset']} | {r['n_train']:,} | {r['model']} | {len(s)} | "
                     f"{score} | {np.median(r['fit_s']):.2f} | "
                     f"{np.median(r['predict_s']) * 1e3:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(datasets()))
    parser.add_argument("--models", default="fastbp-tabm,pytabkit-tabm,fastbp-realmlp,"
                                            "pytabkit-realmlp,sklearn-mlp,sklearn-hgb")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--table", help="print the table of a results file and exit")
    args = parser.parse_args(argv)
    if args.table:
        with open(args.table, encoding="utf-8") as f:
            print(table(json.load(f)))
        return 0
    names = args.datasets.split(",")
    unknown = set(names) - set(datasets()) | set(args.models.split(",")) - set(models(1))
    if unknown:
        parser.error(f"unknown datasets or models: {sorted(unknown)}")
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    results = run(names, args.models.split(","), args.seeds, args.threads, args.json)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
