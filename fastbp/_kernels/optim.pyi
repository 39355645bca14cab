# Stub of the compiled module fastbp/_kernels/optim.pyx: its ``def`` entry points,
# each an in-place step on flat buffers, and the OptimizerLink class. Each trailing
# comment gives the exact Cython type; ``floating`` is float32 or float64, the same
# for every array of one call. ``config`` is a fastbp._optim_config record of the
# step's kind. Optional state buffers may be None only when the step does not use
# them (see each docstring).
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

# A cdef class with its own C layout: a disjoint base (PEP 800) at runtime.
@disjoint_base
class OptimizerLink:
    config: Any  # cdef public object: a fastbp._optim_config record
    state: tuple[Any, ...]  # cdef public tuple: per parameter, its state arrays by name
    step_count: int  # cdef public long long
    def __init__(
        self,
        config: Any,  # object
        state: tuple[Any, ...],  # tuple
        step_count: int = 0,  # long long
    ) -> None: ...
    def __reduce__(self) -> tuple[Any, ...]: ...

def optimizer_step_into(
    config: Any,  # object
    params: list[npt.NDArray[np.floating[Any]]],  # list (IN/OUT)
    grads: list[npt.NDArray[np.floating[Any]]],  # list
    states: list[list[npt.NDArray[np.floating[Any]] | None]],  # list (IN/OUT)
    step: int,  # long long
) -> None: ...
def sgd_step_into(
    p: npt.NDArray[np.floating[Any]],  # object (IN/OUT)
    g: npt.NDArray[np.floating[Any]],  # object
    buf: npt.NDArray[np.floating[Any]] | None,  # object (IN/OUT; None if momentum == 0)
    config: Any,  # object
    first_step: bool,  # bint
) -> None: ...
def adagrad_step_into(
    p: npt.NDArray[np.floating[Any]],  # object (IN/OUT)
    g: npt.NDArray[np.floating[Any]],  # object
    sum_sq: npt.NDArray[np.floating[Any]],  # object (IN/OUT)
    config: Any,  # object
) -> None: ...
def rmsprop_step_into(
    p: npt.NDArray[np.floating[Any]],  # object (IN/OUT)
    g: npt.NDArray[np.floating[Any]],  # object
    sq_avg: npt.NDArray[np.floating[Any]],  # object (IN/OUT)
    buf: npt.NDArray[np.floating[Any]] | None,  # object (IN/OUT; None unless momentum > 0)
    grad_avg: npt.NDArray[np.floating[Any]] | None,  # object (IN/OUT; None unless centered)
    config: Any,  # object
) -> None: ...
def adam_step_into(
    p: npt.NDArray[np.floating[Any]],  # object (IN/OUT)
    g: npt.NDArray[np.floating[Any]],  # object
    m: npt.NDArray[np.floating[Any]],  # object (IN/OUT)
    v: npt.NDArray[np.floating[Any]],  # object (IN/OUT)
    vmax: npt.NDArray[np.floating[Any]] | None,  # object (IN/OUT; None unless amsgrad)
    config: Any,  # object
    step: int,  # long long
) -> None: ...

def set_element_threads(n: int) -> None: ...  # int: 1 = off, >= 2 = two threads
def get_element_threads() -> int: ...  # 1 or 2
def split_count() -> int: ...  # long long
SPLIT_MIN_BYTES: int
