"""Thread control for the BLAS that fastbp's kernels call.

fastbp's own element-wise kernels are single-threaded (small problems gain
nothing from threads and must not oversubscribe the cores BLAS uses); matrix
products run in the BLAS that ``scipy.linalg.cython_blas`` links (OpenBLAS in
SciPy's wheels), which splits large products over threads and keeps small
ones on one. ``set_num_threads`` sets that BLAS's thread count for the whole
process; a model's ``num_threads`` applies only during its own calls.

Determinism: float64 results are bit-identical for 1 and 2 threads (OpenBLAS's
dgemm splits over the output only). float32 results may differ in the last
bits between thread counts, because OpenBLAS's sgemm kernels block differently
per thread count; the differences stay within float32 rounding (the test suite
checks both). For a given thread count, results are always reproducible.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Iterator

from fastbp import _validation as check

__all__ = ["set_num_threads", "get_num_threads", "using_threads"]

_lock = threading.Lock()
MAX_THREADS = 1024
_controllers: list[Any] | None = None


def _blas_controllers() -> list[Any]:
    """threadpoolctl controllers of the BLAS libraries loaded in this process."""
    global _controllers
    if _controllers is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS fastbp calls)
        from threadpoolctl import ThreadpoolController

        _controllers = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _controllers


def _check(n: Any) -> int:
    return check.int_in_range(n, "num_threads", 1, MAX_THREADS + 1)


def set_num_threads(n: int) -> None:
    """Use ``n`` BLAS threads from now on (process-wide)."""
    n = _check(n)
    with _lock:
        for c in _blas_controllers():
            c.set_num_threads(n)


def get_num_threads() -> int:
    """The BLAS thread count in force (the cores available if no BLAS reports one)."""
    counts = [c.get_num_threads() for c in _blas_controllers()]
    counts = [c for c in counts if c]
    return max(counts) if counts else (os.cpu_count() or 1)


@contextlib.contextmanager
def using_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` BLAS threads (None: leave the setting alone)."""
    if n is None:
        yield
        return
    previous = get_num_threads()
    if previous == n:
        yield
        return
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)
