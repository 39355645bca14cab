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
