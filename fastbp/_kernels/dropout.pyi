# Stub of the compiled module fastbp/_kernels/dropout.pyx. Each trailing comment
# gives the exact Cython type.
from typing import Any

import numpy as np
import numpy.typing as npt

def dropout_mask_into(
    seed: int,  # uint64_t
    layer: int,  # uint64_t
    step: int,  # uint64_t
    p: float,  # double
    out: npt.NDArray[np.uint8],  # unsigned char[::1]
) -> None: ...
def dropout_apply_into(
    keep: npt.NDArray[np.uint8],  # const unsigned char[::1]
    scale: float,  # double
    A: npt.NDArray[np.floating[Any]],  # floating[::1]
) -> None: ...
