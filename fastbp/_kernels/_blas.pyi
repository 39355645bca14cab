# Stub of the compiled module fastbp/_kernels/_blas.pyx: its ``def`` entry points
# only (the ``cdef`` gemm wrapper is reached through _blas.pxd). Each trailing
# comment gives the exact Cython type; ``floating`` is float32 or float64, the
# same for every array of one call.
from typing import Any

import numpy as np
import numpy.typing as npt

def gemm_check(
    trans_a: bool,  # bint
    trans_b: bool,  # bint
    alpha: float,  # double
    A: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    B: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    beta: float,  # double
    C: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT, updated in place)
) -> None: ...

def use_numpy_blas(
    sgemm_address: int,  # size_t
    dgemm_address: int,  # size_t
    level1: tuple[int, int, int, int] = (0, 0, 0, 0),  # tuple: sdot, ddot, saxpy, daxpy
) -> None: ...
def level1_check(
    x: npt.NDArray[np.floating[Any]],  # floating[::1]
    y: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT, updated in place)
    a: float,  # double
) -> float: ...
def blas_name() -> str: ...
