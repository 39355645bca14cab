"""benchmarks/tabular.py (T1): the results file it keeps, resumed seed by seed, and the
epochs it records for fastbp's models. Times are never asserted, only recorded."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
pytestmark = [pytest.mark.skipif(not BENCHMARKS.is_dir(),
                                 reason="needs the checkout's benchmarks/")]
pytest.importorskip("torch")  # the script sets torch's thread count for pytabkit


@pytest.fixture(scope="module")
def t1():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import tabular
    finally:
        sys.path.remove(str(BENCHMARKS))
    return tabular


def _rows(path):
    with open(path, encoding="utf-8") as f:
        return {r["model"]: r for r in json.load(f)["rows"]}


def test_epochs_are_recorded_per_seed_and_a_resumed_file_keeps_its_seeds(t1, tmp_path):
    path = tmp_path / "t1.json"
    args = ["--datasets", "wine", "--models", "fastbp-realmlp,sklearn-hgb", "--threads", "1",
            "--json", str(path)]
    assert t1.main([*args, "--seeds", "1"]) == 0
    first = _rows(path)
    real = first["fastbp-realmlp"]
    assert len(real["scores"]) == 1 and set(real["epochs"]) == {"0"}
    epochs = real["epochs"]["0"]
    assert 1 <= epochs["best"] <= epochs["run"]
    assert "epochs" not in first["sklearn-hgb"]  # nothing to record, nothing made up

    # an older file holds no epochs: resuming it records only the seeds it runs
    del real["epochs"]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"rows": list(first.values())}, f)
    assert t1.main([*args, "--seeds", "2"]) == 0
    second = _rows(path)
    real2 = second["fastbp-realmlp"]
    assert real2["scores"][0] == real["scores"][0] and len(real2["scores"]) == 2
    assert real2["fit_s"][0] == real["fit_s"][0]  # seed 0 was not run again
    assert set(real2["epochs"]) == {"1"}
    assert len(second["sklearn-hgb"]["scores"]) == 2


def test_the_epochs_recorded_are_the_estimators_own(t1):
    from fastbp.tabular import TabMClassifier

    # patience beyond max_epochs: all three epochs run, whichever is restored
    est = TabMClassifier(k=4, n_blocks=1, d_block=32, num_embeddings=None, max_epochs=3,
                         random_state=0, num_threads=1)
    assert t1._epochs(est) is None  # not fitted: nothing to read
    X, y, _ = t1.datasets()["wine"]()
    est.fit(X, y)
    assert t1._epochs(est) == {"run": est.n_epochs_, "best": est.best_epoch_}
    assert est.n_epochs_ == 3
