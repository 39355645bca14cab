# Stub of the compiled module fastbp/_kernels/embed.pyx: its ``def`` entry points only.
# Each trailing comment gives the exact Cython type; ``floating`` is float32 or float64,
# the same for every array of one call. Shapes are not checked (fastbp.ops does).
from typing import Any

import numpy as np
import numpy.typing as npt

def periodic_forward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1] (n, F)
    freq: npt.NDArray[np.floating[Any]],  # const floating[::1] (F·k)
    W: npt.NDArray[np.floating[Any]],  # const floating[::1] (F·2k·d, lite: 2k·d)
    b: npt.NDArray[np.floating[Any]],  # const floating[::1] (F·d, lite: d)
    P_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT, F·n·2k)
    Z_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT, n × F·d)
    A_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT, n × F·d)
    k: int,  # Py_ssize_t
    d: int,  # Py_ssize_t
    lite: bool,  # bint
    relu: bool,  # bint
) -> None: ...
def periodic_backward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    freq: npt.NDArray[np.floating[Any]],  # const floating[::1]
    W: npt.NDArray[np.floating[Any]],  # const floating[::1]
    P: npt.NDArray[np.floating[Any]],  # const floating[::1]
    Z: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    A: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    D_work: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (IN dA, OUT dZ)
    dX_out: npt.NDArray[np.floating[Any]] | None,  # floating[:, ::1] (OUT)
    dfreq_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    dW_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    db_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    dP_work: npt.NDArray[np.floating[Any]],  # floating[::1] (scratch, n·2k)
    k: int,  # Py_ssize_t
    d: int,  # Py_ssize_t
    lite: bool,  # bint
    relu: bool,  # bint
) -> None: ...
def ple_forward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1] (n, F)
    feat: npt.NDArray[np.intp],  # const Py_ssize_t[::1] (m,), each in [0, F)
    coef: npt.NDArray[np.floating[Any]],  # const floating[::1] (4·m: w, b, lo, hi)
    A_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT, n × m)
) -> None: ...
def ple_backward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1] (n, F)
    feat: npt.NDArray[np.intp],  # const Py_ssize_t[::1] (m,)
    coef: npt.NDArray[np.floating[Any]],  # const floating[::1] (4·m)
    D: npt.NDArray[np.floating[Any]],  # const floating[:, ::1] (n, m)
    dX_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT, n × F)
) -> None: ...
def categorical_forward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1] (n, F)
    layout: npt.NDArray[np.intp],  # const Py_ssize_t[::1] (numeric columns, (col, card, dim)...)
    tables: list[npt.NDArray[np.floating[Any]]],  # list of floating[:, ::1] (card, dim)
    A_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT, n × width)
) -> None: ...
def categorical_backward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1] (n, F)
    layout: npt.NDArray[np.intp],  # const Py_ssize_t[::1]
    D: npt.NDArray[np.floating[Any]],  # const floating[:, ::1] (n, width)
    dtables_out: list[npt.NDArray[np.floating[Any]]],  # list of floating[:, ::1] (OUT)
    dX_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT, n × F)
) -> None: ...
def periodic_bias_forward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    freq: npt.NDArray[np.floating[Any]],  # const floating[::1]
    phase: npt.NDArray[np.floating[Any]],  # const floating[::1]
    W: npt.NDArray[np.floating[Any]],  # const floating[::1]
    b: npt.NDArray[np.floating[Any]],  # const floating[::1]
    P_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    A_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
    F: int,  # Py_ssize_t
    k: int,  # Py_ssize_t
    d: int,  # Py_ssize_t
) -> None: ...
def periodic_bias_backward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    freq: npt.NDArray[np.floating[Any]],  # const floating[::1]
    W: npt.NDArray[np.floating[Any]],  # const floating[::1]
    P: npt.NDArray[np.floating[Any]],  # const floating[::1]
    dA: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dX_out: npt.NDArray[np.floating[Any]] | None,  # floating[:, ::1] (OUT)
    dfreq_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    dphase_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    dW_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    db_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    dP_work: npt.NDArray[np.floating[Any]],  # floating[::1] (scratch)
    F: int,  # Py_ssize_t
    k: int,  # Py_ssize_t
    d: int,  # Py_ssize_t
) -> None: ...
