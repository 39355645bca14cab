# Stub of the compiled module fastbp/_kernels/optim.pyx: its ``def`` entry points
# only, each an in-place step on flat buffers. Each trailing comment gives the
# exact Cython type; ``floating`` is float32 or float64, the same for every array
# of one call. Optional state buffers may be None only when the step does not use
# them (see each docstring).
from typing import Any

import numpy as np
import numpy.typing as npt

def sgd_step_into(
    p: npt.NDArray[np.floating[Any]],  # floating[::1] (IN/OUT)
    g: npt.NDArray[np.floating[Any]],  # const floating[::1]
    buf: npt.NDArray[np.floating[Any]] | None,  # floating[::1] (IN/OUT; None if momentum == 0)
    lr: float,  # double
    momentum: float,  # double
    dampening: float,  # double
    nesterov: bool,  # bint
    weight_decay: float,  # double
    first_step: bool,  # bint
) -> None: ...
def adagrad_step_into(
    p: npt.NDArray[np.floating[Any]],  # floating[::1] (IN/OUT)
    g: npt.NDArray[np.floating[Any]],  # const floating[::1]
    sum_sq: npt.NDArray[np.floating[Any]],  # floating[::1] (IN/OUT)
    lr: float,  # double
    eps: float,  # double
    weight_decay: float,  # double
) -> None: ...
def rmsprop_step_into(
    p: npt.NDArray[np.floating[Any]],  # floating[::1] (IN/OUT)
    g: npt.NDArray[np.floating[Any]],  # const floating[::1]
    sq_avg: npt.NDArray[np.floating[Any]],  # floating[::1] (IN/OUT)
    buf: npt.NDArray[np.floating[Any]] | None,  # floating[::1] (IN/OUT; None unless momentum > 0)
    grad_avg: npt.NDArray[np.floating[Any]] | None,  # floating[::1] (IN/OUT; None unless centered)
    lr: float,  # double
    alpha: float,  # double
    eps: float,  # double
    momentum: float,  # double
    centered: bool,  # bint
    weight_decay: float,  # double
) -> None: ...
def adam_step_into(
    p: npt.NDArray[np.floating[Any]],  # floating[::1] (IN/OUT)
    g: npt.NDArray[np.floating[Any]],  # const floating[::1]
    m: npt.NDArray[np.floating[Any]],  # floating[::1] (IN/OUT)
    v: npt.NDArray[np.floating[Any]],  # floating[::1] (IN/OUT)
    vmax: npt.NDArray[np.floating[Any]] | None,  # floating[::1] (IN/OUT; None unless amsgrad)
    lr: float,  # double
    beta1: float,  # double
    beta2: float,  # double
    eps: float,  # double
    weight_decay: float,  # double
    decoupled: bool,  # bint
    amsgrad: bool,  # bint
    folded: bool,  # bint
    step_size: float,  # double
    bc2_sqrt: float,  # double
) -> None: ...
