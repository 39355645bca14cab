# Stub of the compiled module fastbp/_kernels/network.pyx: its ``def`` entry points
# and the public (``def``) methods and attributes of ``Engine``. Each trailing
# comment gives the exact Cython type; float arrays all have the engine's dtype
# (float32 or float64) and are C-contiguous, which the callers guarantee.
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

# A cdef class with its own C layout: a disjoint base (PEP 800) at runtime.
@disjoint_base
class Engine:
    # Dense.generation at which the parameter arrays were last checked (-1: never)
    generation: int  # cdef public long long
    dtype: np.dtype[np.floating[Any]]  # cdef public object
    def __init__(
        self,
        Ws: list[npt.NDArray[np.floating[Any]]],  # list
        bs: list[npt.NDArray[np.floating[Any]]],  # list
        dWs: list[npt.NDArray[np.floating[Any]]],  # list
        dbs: list[npt.NDArray[np.floating[Any]]],  # list
        acts: list[int],  # list
        loss: int,  # int
        dtype: npt.DTypeLike,  # object
    ) -> None: ...
    def set_loss_convention(
        self,
        grad_scale: float,  # double
        loss_scale: float,  # double
        l2: float,  # double
        clip_eps: float = 0.0,  # double
    ) -> None: ...
    def reserve(self, n: int) -> None: ...  # n: Py_ssize_t
    def set_dropout(
        self,
        rates: list[float],  # list
        seed: int,  # uint64_t
    ) -> None: ...
    def bind_optimizer(
        self,
        optimizer: Any,  # object (a fastbp.optim.Optimizer: its engine_link)
    ) -> None: ...
    def is_bound_to(self, optimizer: Any) -> bool: ...  # optimizer: object
    def train_step_fast(
        self,
        X: Any,  # object
        y: Any,  # object
        optimizer: Any,  # object
        generation: int,  # long long
    ) -> float | None: ...  # the loss, or None for the checked path
    def predict_fast(
        self,
        X: Any,  # object
        generation: int,  # long long
        kind: int,  # int: 0 forward, 1 predict_proba, 2 predict
        lock: Any = None,  # object: the model's threading.Lock, or None
    ) -> npt.NDArray[Any] | None: ...  # a new array, or None for the checked path
    def forward(
        self,
        X: npt.NDArray[np.floating[Any]],  # cnp.ndarray
    ) -> npt.NDArray[np.floating[Any]]: ...  # a view of the output workspace
    def backward(
        self,
        X: npt.NDArray[np.floating[Any]],  # cnp.ndarray
        T: npt.NDArray[np.floating[Any]] | None,  # object
        labels: npt.NDArray[np.intp] | None,  # object
        step: int,  # long long
        sample_weight: npt.NDArray[np.float64] | None = None,  # object
    ) -> float: ...  # double
    def train_step(
        self,
        X: npt.NDArray[np.floating[Any]],  # cnp.ndarray
        T: npt.NDArray[np.floating[Any]] | None,  # object
        labels: npt.NDArray[np.intp] | None,  # object
        sample_weight: npt.NDArray[np.float64] | None = None,  # object
    ) -> float: ...  # double
    def epoch(
        self,
        X: npt.NDArray[np.floating[Any]],  # cnp.ndarray
        T: npt.NDArray[np.floating[Any]] | None,  # object
        labels: npt.NDArray[np.intp] | None,  # object
        order: npt.NDArray[np.intp],  # cnp.ndarray
        batch: int,  # Py_ssize_t
        sample_weight: npt.NDArray[np.float64] | None = None,  # object
    ) -> tuple[int, float]: ...  # (Py_ssize_t, double)
