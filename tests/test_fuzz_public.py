"""The public-API fuzzer (tests/fuzz_public.py), its cases run in subprocesses with a fixed
budget: FASTBP_FUZZ_CASES cases (default 4,000, about 10 s here; CI's AddressSanitizer
stage runs it too, where any out-of-bounds access aborts the subprocess). A case that
crashes, hangs or raises an exception fastbp should never raise fails the test, naming
the case: ``python tests/fuzz_public.py N 1`` replays it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FUZZER = Path(__file__).resolve().parent / "fuzz_public.py"
CASES = int(os.environ.get("FASTBP_FUZZ_CASES", "4000"))
CHUNKS = 4


@pytest.mark.packaging
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_public_entry_points_survive_hostile_calls(chunk, tmp_path):
    size = -(-CASES // CHUNKS)
    first = chunk * size
    result = subprocess.run([sys.executable, str(FUZZER), str(first), str(size)],
                            capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    lines = result.stdout.split()
    last = next((line for line in reversed(result.stdout.splitlines())
                 if line.startswith("case ")), "no case")
    assert result.returncode == 0 and lines[-1:] == ["ok"], (
        f"{last} failed (exit {result.returncode}); replay: python tests/fuzz_public.py "
        f"{last.split()[-1]} 1\n{result.stderr[-3000:]}")
