# Stub of the compiled module fastbp/_kernels/simd_variants.pyx (test-only entry
# points: one named instruction-set variant of the optimizer and _vmath loops).
from typing import Any

import numpy as np
import numpy.typing as npt

VARIANTS: tuple[str, ...]
VMATH_KERNELS: tuple[str, ...]
FLOAT32_ONLY: tuple[str, ...]

def supported(name: str) -> bool: ...  # name: str
def optim_update(
    variant: str,  # str
    config: Any,  # object: a fastbp._optim_config record
    p: npt.NDArray[np.floating[Any]],  # cnp.ndarray (IN/OUT)
    g: npt.NDArray[np.floating[Any]],  # cnp.ndarray
    state: tuple[npt.NDArray[np.floating[Any]] | None, ...],  # tuple (IN/OUT)
    step: int,  # long long
) -> None: ...
def vmath(
    variant: str,  # str
    kernel: str,  # str
    x: npt.NDArray[np.floating[Any]],  # cnp.ndarray
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.float64] | None,
           npt.NDArray[np.float64] | None]: ...
