# Stub of the compiled module fastbp/_kernels/activations.pyx: its ``def`` entry
# points only. Each trailing comment gives the exact Cython type; ``floating`` is
# float32 or float64, the same for every array of one call. ``act`` is the index
# of the activation name in fastbp.ACTIVATIONS.
from typing import Any

import numpy as np
import numpy.typing as npt

def activation_forward_into(
    act: int,  # int
    Z: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    A_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT; may be Z itself)
) -> None: ...
def activation_backward_into(
    act: int,  # int
    Z: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    A: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dA: npt.NDArray[np.floating[Any]],  # const floating[:, ::1]
    dZ_out: npt.NDArray[np.floating[Any]],  # floating[:, ::1] (OUT)
) -> None: ...
def exp_into(
    x: npt.NDArray[np.float64],  # const double[::1]
    out: npt.NDArray[np.float64],  # double[::1] (OUT; may be x itself)
) -> None: ...
