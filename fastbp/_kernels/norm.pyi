# Stub of the compiled module fastbp/_kernels/norm.pyx: its ``def`` entry points
# only. Each trailing comment gives the exact Cython type; ``floating`` is float32
# or float64, the same for every array of one call. Shapes are not checked
# (fastbp.ops does).
from typing import Any

import numpy as np
import numpy.typing as npt

def layer_norm_forward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    gamma: npt.NDArray[np.floating[Any]] | None,  # const floating[::1] (None: no affine map)
    beta: npt.NDArray[np.floating[Any]] | None,  # const floating[::1]
    Xhat_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
    A_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT; may be Xhat_out)
    rstd_out: npt.NDArray[np.floating[Any]],  # floating[::1] (OUT; n·groups)
    eps: float,  # double
    groups: int = 1,  # Py_ssize_t (divides the width)
) -> None: ...
def layer_norm_backward_into(
    Xhat: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    rstd: npt.NDArray[np.floating[Any]],  # const floating[::1]
    gamma: npt.NDArray[np.floating[Any]] | None,  # const floating[::1]
    dA: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dX_out: npt.NDArray[np.floating[Any]] | None,  # floating[:, ::1] (OUT)
    dgamma_out: npt.NDArray[np.floating[Any]] | None,  # floating[::1] (OUT)
    dbeta_out: npt.NDArray[np.floating[Any]] | None,  # floating[::1] (OUT)
    groups: int = 1,  # Py_ssize_t
) -> None: ...
def batch_norm_forward_into(
    X: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    gamma: npt.NDArray[np.floating[Any]] | None,  # const floating[::1]
    beta: npt.NDArray[np.floating[Any]] | None,  # const floating[::1]
    running_mean: npt.NDArray[np.floating[Any]],  # floating[::1] (IN/OUT)
    running_var: npt.NDArray[np.floating[Any]],  # floating[::1] (IN/OUT)
    Xhat_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
    A_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
    stats_out: npt.NDArray[np.float64],  # double[::1] (OUT, 4 * n_features)
    eps: float,  # double
    momentum: float,  # double
    training: bool,  # bint
    update: bool,  # bint
) -> None: ...
def batch_norm_backward_into(
    Xhat: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    stats: npt.NDArray[np.float64],  # double[::1] (IN; its second half scratch)
    gamma: npt.NDArray[np.floating[Any]] | None,  # const floating[::1]
    dA: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dX_out: npt.NDArray[np.floating[Any]] | None,  # floating[:, ::1] (OUT)
    dgamma_out: npt.NDArray[np.floating[Any]] | None,  # floating[::1] (OUT)
    dbeta_out: npt.NDArray[np.floating[Any]] | None,  # floating[::1] (OUT)
) -> None: ...
def batch_norm_eval_backward_into(
    running_var: npt.NDArray[np.floating[Any]],  # const floating[::1]
    gamma: npt.NDArray[np.floating[Any]] | None,  # const floating[::1]
    dA: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dX_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
    eps: float,  # double
) -> None: ...
