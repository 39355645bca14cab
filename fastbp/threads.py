"""Thread control for the BLAS that fastbp's kernels call.

Matrix products run in NumPy's bundled OpenBLAS, or SciPy's where NumPy has
none (fastbp/_blas_route.py), which splits large products over threads and
keeps small ones on one. fastbp's own element-wise kernels run on the calling
thread, except the optimizer updates of buffers of 2 MiB or more (524,288
float32 or 262,144 float64 values), which at 2 threads or more are split over
the calling thread and one worker thread (_kernels/_split.h; the same bits as
on one thread). ``set_num_threads``
sets both for the whole process (the default: OPENBLAS_NUM_THREADS or
OMP_NUM_THREADS if set, else the cores available); a model's ``num_threads``
applies only during its own calls.

Determinism: for a given thread count, results are always reproducible, also with
several threads training at once (nothing here changes the BLAS thread count for a
single product: the count is process-wide, and every other thread's products would
follow it), and the split optimizer updates give the same bits as one thread.
Between thread counts, float64 results may differ in the last bits where OpenBLAS
splits a product differently: on its SkylakeX kernels dgemm was split over the
output only (the same bits) when every inner dimension (a layer's n_in in the
forward pass, the batch size for dW, n_out for dX) was at most 384 or a multiple
of 32; on its Haswell kernels (this project's AMD EPYC machine) 300-row products
with inner dimensions 32 to 384 differed at 2 threads, 256-, 512- and 1,000-row
ones did not. float32 results may differ in the last bits between thread counts,
because OpenBLAS's sgemm kernels block differently per thread count; the
differences stay within float32 rounding (the test suite checks both).
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Iterator

from fastbp import _validation as check
from fastbp._kernels import optim as _optim

__all__ = ["set_num_threads", "get_num_threads", "using_threads", "check_threads"]

_lock = threading.Lock()
MAX_THREADS = 1024
_controllers: list[Any] | None = None


def _blas_controllers() -> list[Any]:
    """threadpoolctl controllers of the BLAS libraries loaded in this process (NumPy's
    and SciPy's: fastbp's products use one, its level-1 calls the other)."""
    global _controllers
    if _controllers is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS fastbp calls)
        from threadpoolctl import ThreadpoolController

        _controllers = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _controllers


def check_threads(n: Any) -> int:
    """A checked thread count: an int in [1, MAX_THREADS] (errors name num_threads).

    Parameters
    ----------
    n : int
        The thread count to check.

    Returns
    -------
    int
        ``n`` as a Python int.

    Raises
    ------
    TypeError
        ``n`` is not an int (a bool included).
    ValueError
        ``n`` is outside [1, MAX_THREADS] (MAX_THREADS is 1024).
    """
    return check.int_in_range(n, "num_threads", 1, MAX_THREADS + 1)


def _default_threads() -> int:
    """The thread count before any set_num_threads: what OpenBLAS reads from the
    environment at load time, else the cores this process may run on."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        try:
            value = int(os.environ.get(var, "").split(",")[0])
        except ValueError:
            continue
        if value >= 1:
            return value
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_num_threads(n: int) -> None:
    """Use ``n`` threads from now on (process-wide).

    Sets the BLAS's thread count, and for the optimizer updates of large buffers
    two threads whenever n >= 2. A model's own ``num_threads`` overrides it during
    that model's calls.

    Parameters
    ----------
    n : int
        The thread count, in [1, 1024].

    Raises
    ------
    TypeError
        ``n`` is not an int (a bool included).
    ValueError
        ``n`` is outside [1, 1024].
    """
    n = check_threads(n)
    with _lock:
        for c in _blas_controllers():
            c.set_num_threads(n)
        _optim.set_element_threads(n)


_optim.set_element_threads(_default_threads())


def get_num_threads() -> int:
    """The BLAS thread count in force (the cores available if no BLAS reports one).

    Returns
    -------
    int
    """
    counts = [c.get_num_threads() for c in _blas_controllers()]
    counts = [c for c in counts if c]
    return max(counts) if counts else (os.cpu_count() or 1)


@contextlib.contextmanager
def using_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` BLAS threads (None: leave the setting alone).

    A context manager: the previous count is set back when the block ends.

    Parameters
    ----------
    n : int or None
        The thread count during the block, in [1, 1024], or None.

    Raises
    ------
    TypeError
        ``n`` is neither None nor an int.
    ValueError
        ``n`` is outside [1, 1024].
    """
    if n is None:
        yield
        return
    n = check_threads(n)
    previous = get_num_threads()
    if previous == n:
        yield
        return
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)
