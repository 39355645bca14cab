"""Every Python example in README.md runs when pasted alone into a file: each block is
written to its own script and run by a fresh interpreter in an empty folder (as a
newcomer would run it, worker processes of Dask and joblib included)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


BLOCKS = python_blocks()


def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 8
    assert all("import" in block for block in BLOCKS)   # each brings its own imports


@pytest.mark.packaging
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_readme_block_runs_alone(index, tmp_path):
    block = BLOCKS[index]
    for module in ("sklearn", "onnxruntime", "dask", "matplotlib"):
        if re.search(rf"^\s*(import|from) {module}\b", block, flags=re.M):
            pytest.importorskip(module)
    script = tmp_path / "example.py"
    script.write_text(block, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    first_line = block.strip().splitlines()[0]
    assert result.returncode == 0, (f"README block {index} ({first_line!r}) failed:\n"
                                    f"{result.stderr[-3000:]}")
