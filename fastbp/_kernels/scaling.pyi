# Stub of the compiled module fastbp/_kernels/scaling.pyx: its ``def`` entry points
# only. Each trailing comment gives the exact Cython type; ``floating`` is float32
# or float64, the same for every array of one call. Shapes are not checked
# (fastbp.ops does).
from typing import Any

import numpy as np
import numpy.typing as npt

def scale_forward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    s: npt.NDArray[np.floating[Any]],  # const floating[::1]
    A_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
) -> None: ...
def scale_backward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    s: npt.NDArray[np.floating[Any]],  # const floating[::1]
    dA: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dX_out: npt.NDArray[np.floating[Any]] | None,  # floating[:, ::1] (OUT)
    ds_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
) -> None: ...
def parametric_forward_into(
    act: int,  # int
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    alpha: npt.NDArray[np.floating[Any]],  # const floating[::1]
    F_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
    A_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
) -> None: ...
def parametric_backward_into(
    act: int,  # int
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    alpha: npt.NDArray[np.floating[Any]],  # const floating[::1]
    F: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dA: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dX_out: npt.NDArray[np.floating[Any]] | None,  # floating[:, ::1] (OUT)
    dalpha_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT)
) -> None: ...
