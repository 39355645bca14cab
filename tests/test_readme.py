"""Every Python example in README.md runs, in order, in one namespace."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_readme_examples_run(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    pytest.importorskip("onnxruntime")  # the deployment example runs the exported graph
    blocks = python_blocks()
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)  # the examples write model files
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i}", "exec"), namespace)
    assert (tmp_path / "spirals.fastbp").exists() and (tmp_path / "checkpoint.fastbp").exists()
    assert namespace["history"].epochs >= 1
