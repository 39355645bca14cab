# Stub of the compiled module fastbp/_kernels/losses.pyx: its ``def`` entry points
# only. Each trailing comment gives the exact Cython type; ``floating`` is float32
# or float64, the same for every float array of one call. ``loss`` is the index of
# the loss name in fastbp.LOSSES.
from typing import Any

import numpy as np
import numpy.typing as npt

def loss_forward_backward_into(
    loss: int,  # int
    out: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    target: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    d_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
) -> float: ...  # double
def weighted_loss_into(
    loss: int,  # int
    out: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    target: npt.NDArray[np.floating[Any]] | None,  # const floating[:, ::1] or None
    labels: npt.NDArray[np.intp] | None,  # const Py_ssize_t[::1] or None
    w: npt.NDArray[np.float64],  # const double[::1]
    d_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
) -> float: ...  # double
def cross_entropy_labels_into(
    out: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    labels: npt.NDArray[np.intp],  # const Py_ssize_t[::1]
    d_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
) -> float: ...  # double
def labels_in_range(
    labels: npt.NDArray[np.intp],  # const Py_ssize_t[::1]
    k: int,  # Py_ssize_t
) -> bool: ...  # bint
