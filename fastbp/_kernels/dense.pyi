# Stub of the compiled module fastbp/_kernels/dense.pyx: its ``def`` entry points
# only. Each trailing comment gives the exact Cython type; ``floating`` is float32
# or float64, the same for every array of one call. ``act`` is the index of the
# activation name in fastbp.ACTIVATIONS. Shapes are not checked (fastbp.ops does).
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

def dense_forward_into(
    act: int,  # int
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    W: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    b: npt.NDArray[np.floating[Any]],  # const floating[::1]
    Z_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
    A_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
) -> None: ...
def dense_backward_into(
    act: int,  # int
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    W: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    Z: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    A: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dA: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dZ_work: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (scratch)
    dX_out: npt.NDArray[np.floating[Any]] | None,  # floating[:, ::1] (OUT; None unless need_dX)
    dW_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
    db_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    need_dX: bool,  # bint
) -> None: ...

@disjoint_base
class SparseRows:
    """CSR rows as the compiled kernels read them (private copies, checked once)."""
    data: npt.NDArray[np.floating[Any]]
    indptr: npt.NDArray[np.intp]
    indices: npt.NDArray[np.intp]
    n_rows: int
    n_cols: int
    def __init__(
        self,
        data: npt.ArrayLike,  # (nnz,) float32/float64
        indptr: npt.ArrayLike,  # (n_rows + 1,) integers
        indices: npt.ArrayLike,  # (nnz,) integers
        n_rows: int,  # Py_ssize_t
        n_cols: int,  # Py_ssize_t
    ) -> None: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def nnz(self) -> int: ...

def sparse_dense_forward_into(
    act: int,  # int
    X: SparseRows,  # SparseRows (its dtype: floating)
    W: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    b: npt.NDArray[np.floating[Any]],  # const floating[::1]
    Z_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
    A_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
) -> None: ...
def sparse_dense_backward_into(
    act: int,  # int
    X: SparseRows,  # SparseRows (its dtype: floating)
    Z: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    A: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dA: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dZ_work: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
    dW_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
    db_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
) -> None: ...

# ensembles (TabM): every array flat (1-D, C order); n, k, d_in, d_out > 0
def batch_ensemble_forward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[::1] (n·k·d_in, or n·d_in if shared)
    W: npt.NDArray[np.floating[Any]],  # const floating[::1] (d_in·d_out)
    r: npt.NDArray[np.floating[Any]],  # const floating[::1] (k·d_in)
    s: npt.NDArray[np.floating[Any]],  # const floating[::1] (k·d_out)
    b: npt.NDArray[np.floating[Any]] | None,  # object: floating[::1] (k·d_out) or None
    U: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT, n·k·d_in)
    V: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT, n·k·d_out)
    Y: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT, n·k·d_out)
    n: int,  # Py_ssize_t
    k: int,  # Py_ssize_t
    d_in: int,  # Py_ssize_t
    d_out: int,  # Py_ssize_t
    shared: bool,  # bint
) -> None: ...
def batch_ensemble_backward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[::1]
    W: npt.NDArray[np.floating[Any]],  # const floating[::1]
    r: npt.NDArray[np.floating[Any]],  # const floating[::1]
    s: npt.NDArray[np.floating[Any]],  # const floating[::1]
    U: npt.NDArray[np.floating[Any]],  # const floating[::1]
    V: npt.NDArray[np.floating[Any]],  # const floating[::1]
    dY: npt.NDArray[np.floating[Any]],  # const floating[::1] (n·k·d_out)
    dV_work: npt.NDArray[np.floating[Any]],  # floating[::1] (scratch, n·k·d_out)
    dU_work: npt.NDArray[np.floating[Any]],  # floating[::1] (scratch, n·k·d_in)
    dX: npt.NDArray[np.floating[Any]] | None,  # object: floating[::1] (OUT) or None
    dW: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    dr: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    ds: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    db: npt.NDArray[np.floating[Any]] | None,  # object: floating[::1] (OUT) or None
    n: int,  # Py_ssize_t
    k: int,  # Py_ssize_t
    d_in: int,  # Py_ssize_t
    d_out: int,  # Py_ssize_t
    shared: bool,  # bint
) -> None: ...
def linear_ensemble_forward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[::1] (n·k·d_in)
    W: npt.NDArray[np.floating[Any]],  # const floating[::1] (k·d_in·d_out)
    b: npt.NDArray[np.floating[Any]] | None,  # object: floating[::1] (k·d_out) or None
    Y: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT, n·k·d_out)
    n: int,  # Py_ssize_t
    k: int,  # Py_ssize_t
    d_in: int,  # Py_ssize_t
    d_out: int,  # Py_ssize_t
) -> None: ...
def linear_ensemble_backward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[::1]
    W: npt.NDArray[np.floating[Any]],  # const floating[::1]
    dY: npt.NDArray[np.floating[Any]],  # const floating[::1]
    dX: npt.NDArray[np.floating[Any]] | None,  # object: floating[::1] (OUT) or None
    dW: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
    db: npt.NDArray[np.floating[Any]] | None,  # object: floating[::1] (OUT) or None
    n: int,  # Py_ssize_t
    k: int,  # Py_ssize_t
    d_in: int,  # Py_ssize_t
    d_out: int,  # Py_ssize_t
) -> None: ...
