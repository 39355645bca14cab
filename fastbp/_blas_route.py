"""Which BLAS fastbp's matrix products call: chosen once, when fastbp is imported.

NumPy's wheels bundle an OpenBLAS with a 64-bit integer interface (in
``numpy.libs`` on Linux and Windows, ``numpy/.dylibs`` on macOS); SciPy's wheels
bundle another, which ``scipy.linalg.cython_blas`` exposes. On this project's
benchmark machine NumPy's (0.3.31) ran the float32 products of medium layers up
to 10% faster than SciPy's (0.3.30), and the same elsewhere
(``benchmarks/blas_routes.py`` prints the table), so fastbp uses NumPy's when it
finds it and SciPy's otherwise (a NumPy built against MKL or a system BLAS, say).

``FASTBP_BLAS`` overrides the choice: ``numpy``, ``scipy`` or ``auto`` (the
default). The library is opened by path: it is the very copy NumPy has loaded,
so NumPy's matmul and fastbp share one thread pool.
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys

import numpy as np

from fastbp._kernels import _blas

__all__ = ["select", "numpy_openblas"]

# NumPy >= 2.0 wheels (scipy-openblas64) and the older openblas64_ builds: gemm
_SYMBOLS = (("scipy_sgemm_64_", "scipy_dgemm_64_"), ("sgemm_64_", "dgemm_64_"))
# the same library's level-1 routines of the L2 penalty (sdot, ddot, saxpy, daxpy), by the
# prefix of that library's gemm
_LEVEL1 = ("sdot", "ddot", "saxpy", "daxpy")
_PATTERNS = {"linux": "libscipy_openblas64_*.so*", "darwin": "libscipy_openblas64_*.dylib",
             "win32": "libscipy_openblas64_*.dll"}


def _address(lib: ctypes.CDLL, name: str) -> int:
    fn = getattr(lib, name, None)
    return (ctypes.cast(fn, ctypes.c_void_p).value or 0) if fn is not None else 0


def numpy_openblas() -> tuple[str, int, int, tuple[int, int, int, int]] | None:
    """(path, sgemm and dgemm addresses, (sdot, ddot, saxpy, daxpy) addresses) of NumPy's
    bundled ILP64 OpenBLAS (the level-1 ones all 0 unless all four are there), or None."""
    root = os.path.dirname(os.path.abspath(np.__file__))
    pattern = _PATTERNS.get(sys.platform, _PATTERNS["linux"])
    folders = [os.path.join(os.path.dirname(root), "numpy.libs"), os.path.join(root, ".dylibs")]
    for path in sorted(p for f in folders for p in glob.glob(os.path.join(f, pattern))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for s_name, d_name in _SYMBOLS:
            s_addr, d_addr = _address(lib, s_name), _address(lib, d_name)
            if s_addr and d_addr:
                prefix = s_name[:-len("sgemm_64_")]
                sdot, ddot, saxpy, daxpy = (_address(lib, f"{prefix}{name}_64_")
                                            for name in _LEVEL1)
                level1 = (sdot, ddot, saxpy, daxpy) if sdot and ddot and saxpy and daxpy \
                    else (0, 0, 0, 0)
                return path, s_addr, d_addr, level1
    return None


def select(choice: str | None = None) -> str:
    """Point fastbp's gemm at the chosen BLAS; returns "numpy" or "scipy".

    ``choice`` (default: the FASTBP_BLAS environment variable, else "auto"):
    "auto" takes NumPy's OpenBLAS if found, else SciPy's; "numpy" requires it."""
    source = "choice"
    if choice is None:
        choice, source = os.environ.get("FASTBP_BLAS", "auto"), "the FASTBP_BLAS variable"
    if not isinstance(choice, str) or choice.strip().lower() not in ("auto", "numpy", "scipy"):
        raise ValueError(f"{source} must be 'auto', 'numpy' or 'scipy', got {choice!r}")
    choice = choice.strip().lower()
    found = None if choice == "scipy" else numpy_openblas()
    if found is None:
        if choice == "numpy":
            raise ValueError(f"{source} asks for NumPy's OpenBLAS, but this NumPy bundles "
                             "none (it is built against another BLAS)")
        _blas.use_numpy_blas(0, 0)
        return "scipy"
    _, s_addr, d_addr, level1 = found
    _blas.use_numpy_blas(s_addr, d_addr, level1)
    return "numpy"
