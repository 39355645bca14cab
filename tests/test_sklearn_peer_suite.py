"""scikit-learn's own MLP tests, run against the drop-in: the installed
``sklearn/neural_network/tests/test_mlp.py`` (shipped in scikit-learn's wheel) with
its import of MLPClassifier/MLPRegressor swapped for fastbp.sklearn's, run by pytest
in a fresh process (the installed fastbp, the same Python).

Every test passes except those in PRIVATE (each reads or sets a private attribute of
scikit-learn's implementation, named here) and NOT_YET (named with what is missing).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

ORIGINAL_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
SWAPPED_IMPORT = "from fastbp.sklearn import MLPClassifier, MLPRegressor"

#: test -> the private attribute of scikit-learn's it needs (a drop-in need not have it)
PRIVATE = {
    "test_gradient": "_loss_grad_lbfgs (scikit-learn's packed loss-and-gradient)",
    "test_learning_rate_warmstart": "_optimizer.learning_rate (fastbp: optimizer_.lr)",
    "test_adaptive_learning_rate": "_optimizer.learning_rate (fastbp: optimizer_.lr)",
}
#: test id -> what fastbp does not do yet (none left)
NOT_YET: dict[str, str] = {}

# scikit-learn's conftest parametrizes this from SKLEARN_TESTS_GLOBAL_RANDOM_SEED (42 unset)
CONFTEST = '''
import os
import pytest

@pytest.fixture(params=[int(os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", "42"))])
def global_random_seed(request):
    return request.param
'''


def _scikit_learn_test_file() -> Path:
    spec = importlib.util.find_spec("sklearn")
    assert spec is not None and spec.submodule_search_locations
    path = Path(list(spec.submodule_search_locations)[0], "neural_network", "tests",
                "test_mlp.py")
    if not path.is_file():
        pytest.skip(f"this scikit-learn installation has no {path}")
    return path


def test_scikit_learns_mlp_tests_pass_on_the_drop_in(tmp_path):
    source = _scikit_learn_test_file().read_text()
    assert source.count(ORIGINAL_IMPORT) == 1, "scikit-learn's test file changed its import"
    (tmp_path / "test_mlp_on_fastbp.py").write_text(
        source.replace(ORIGINAL_IMPORT, SWAPPED_IMPORT))
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")   # not this project's settings
    for name in list(PRIVATE) + [t.split("[")[0] for t in NOT_YET]:
        assert f"def {name}(" in source, f"{name} is no longer in scikit-learn's file"
    deselect = [f"test_mlp_on_fastbp.py::{name}" for name in list(PRIVATE) + list(NOT_YET)]
    report = tmp_path / "report.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
         str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), f"--junitxml={report}",
         *(f"--deselect={d}" for d in deselect), "test_mlp_on_fastbp.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=580)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    assert counts["failures"] == counts["errors"] == 0, counts
    # the import swap really ran the suite: scikit-learn 1.9.1's file has 59 tests
    assert counts["tests"] - counts["skipped"] >= 50, counts
    ran = {case.get("name") for case in suite.iter("testcase")}
    assert {"test_fit", "test_mlp_diverging_loss"} <= ran
    assert {"test_sparse_matrices[csr_matrix]", "test_sparse_matrices[csr_array]"} <= ran
    assert "fastbp" in (tmp_path / "test_mlp_on_fastbp.py").read_text()
