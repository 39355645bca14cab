# Stub of the compiled module fastbp/_kernels/derivatives.pyx. Float arrays share one
# dtype (float32 or float64) and are C-contiguous; the caller checks every shape.
from typing import Any

import numpy.typing as npt

MODE_JACOBIAN: int
MODE_HESSIAN_DIAG: int
MODE_LAPLACIAN: int

def derivatives_into(
    Ws: list[npt.NDArray[Any]],  # list of (k_in, k_out) arrays
    bs: list[npt.NDArray[Any]],  # list of (k_out,) arrays
    acts: list[int],  # list of ACTIVATIONS codes (no softmax)
    X: npt.NDArray[Any],  # floating[:, ::1] (n, n_in)
    mode: int,  # int: MODE_*
    Y: npt.NDArray[Any],  # floating[:, ::1] (n, n_out) (OUT)
    T_out: npt.NDArray[Any],  # floating[:, ::1] (n * n_in, n_out) (OUT)
    S_out: npt.NDArray[Any] | None,  # object: H (n * n_in, n_out) or L (n, n_out) (OUT)
    Z: npt.NDArray[Any],  # floating[:, ::1] (n, kmax) scratch
    A: npt.NDArray[Any],  # floating[:, ::1] (n, kmax) scratch
    D1: npt.NDArray[Any],  # floating[:, ::1] (n, kmax) scratch
    D2: npt.NDArray[Any],  # floating[:, ::1] (n, kmax) scratch
    T: npt.NDArray[Any],  # floating[:, ::1] (n * n_in, kmax) scratch
    TZ: npt.NDArray[Any],  # floating[:, ::1] (n * n_in, kmax) scratch
    S: npt.NDArray[Any] | None,  # object: scratch of S_out's row count, kmax wide
    SZ: npt.NDArray[Any] | None,  # object: the same
) -> None: ...

def input_gradient_into(
    Ws: list[npt.NDArray[Any]],  # list of (k_in, k_out) arrays
    bs: list[npt.NDArray[Any]],  # list of (k_out,) arrays
    acts: list[int],  # list of ACTIVATIONS codes (no softmax)
    X: npt.NDArray[Any],  # floating[:, ::1] (n, n_in)
    seed: npt.NDArray[Any],  # floating[:, ::1] (n, n_out)
    G: npt.NDArray[Any],  # floating[:, ::1] (n, n_in) (OUT)
    Zs: list[npt.NDArray[Any]],  # list of (n, k_l) scratch
    As: list[npt.NDArray[Any]],  # list of (n, k_l) scratch
    Ds: list[npt.NDArray[Any]],  # list of (n, k_l) scratch
) -> None: ...
