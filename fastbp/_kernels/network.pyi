# Stub of the compiled module fastbp/_kernels/network.pyx: its ``def`` entry points
# and the public (``def``) methods and attributes of ``Engine``. Each trailing
# comment gives the exact Cython type; float arrays all have the engine's dtype
# (float32 or float64) and are C-contiguous (the engine checks every shape).
from typing import Any

import numpy as np
import numpy.typing as npt

from fastbp._kernels.dense import SparseRows
from typing_extensions import disjoint_base

EPOCH_DONE: int
EPOCH_NONFINITE: int
EPOCH_INTERRUPTED: int
EPOCH_BAD_INDEX: int
PREDICT_RAW: int
PREDICT_PROBA: int
PREDICT_LABELS: int

def interrupt_install() -> None: ...
def interrupt_remove() -> None: ...
def interrupt_pending() -> bool: ...
def interrupt_clear() -> None: ...
def _check_layer_params(
    kind: int,  # int
    n_in: int,  # Py_ssize_t
    n_out: int,  # Py_ssize_t
    hyper: tuple[float, ...],  # tuple: the kind's constants
    params: list[npt.NDArray[np.floating[Any]]],  # list
) -> None: ...
def _check_layer_buffers(
    kind: int,  # int
    n_in: int,  # Py_ssize_t
    n_out: int,  # Py_ssize_t
    buffers: tuple[npt.NDArray[Any], ...],  # tuple
    dtype: Any,  # object
    hyper: tuple[float, ...],  # tuple
    params: list[npt.NDArray[np.floating[Any]]],  # list
) -> None: ...
def _check_categorical_layout(
    n_in: int,  # Py_ssize_t
    n_out: int,  # Py_ssize_t
    buffers: tuple[npt.NDArray[Any], ...],  # tuple
    C: int,  # int
    params: list[npt.NDArray[np.floating[Any]]],  # list
) -> None: ...

# A cdef class with its own C layout: a disjoint base (PEP 800) at runtime.
@disjoint_base
class Engine:
    dtype: np.dtype[np.floating[Any]]  # cdef public object
    def __init__(
        self,
        records: list[tuple[int, int, int, int, int, tuple[float, ...]]],  # list: (kind, act, n_in, n_out, n_params, constants)
        params: list[npt.NDArray[np.floating[Any]]],  # list
        grads: list[npt.NDArray[np.floating[Any]]],  # list
        penalized: list[bool],  # list
        loss: int,  # int
        dtype: npt.DTypeLike,  # object
        dropout_rates: list[float],  # list
        dropout_seed: int,  # uint64_t
        dropout_slots: list[int] | None = None,  # list (None: the layer indices)
        buffers: list[tuple[npt.NDArray[np.floating[Any]], ...]] | None = None,  # list (None: none)
    ) -> None: ...
    def set_objective(
        self,
        grad_scale: float,  # double
        loss_scale: float,  # double
        l2: float,  # double
        clip_eps: float,  # double
        heads: int = 1,  # int
    ) -> None: ...
    @property
    def target_width(self) -> int: ...
    def reserve(self, n: int) -> None: ...  # n: Py_ssize_t
    def workspace_bytes(self) -> int: ...
    def trim(self, rows: int) -> None: ...  # rows: Py_ssize_t
    def set_dropout_rates(self, rates: list[float]) -> None: ...
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
    ) -> float | None: ...  # the loss, or None for the checked path
    def predict_fast(
        self,
        X: Any,  # object
        kind: int,  # int: PREDICT_RAW, PREDICT_PROBA or PREDICT_LABELS
        lock: Any = None,  # object: the model's threading.Lock, or None
        check_finite: bool = True,  # bint
    ) -> npt.NDArray[Any] | None: ...  # a new array, or None for the checked path
    def forward(
        self,
        X: npt.NDArray[np.floating[Any]] | SparseRows,  # object: ndarray or SparseRows
    ) -> npt.NDArray[np.floating[Any]]: ...  # a new array
    def backward(
        self,
        X: npt.NDArray[np.floating[Any]] | SparseRows,  # object: ndarray or SparseRows
        T: npt.NDArray[np.floating[Any]] | None,  # object
        labels: npt.NDArray[np.intp] | None,  # object
        step: int,  # long long
        sample_weight: npt.NDArray[np.float64] | None = None,  # object
    ) -> float: ...
    def train_step(
        self,
        X: npt.NDArray[np.floating[Any]] | SparseRows,  # object: ndarray or SparseRows
        T: npt.NDArray[np.floating[Any]] | None,  # object
        labels: npt.NDArray[np.intp] | None,  # object
        sample_weight: npt.NDArray[np.float64] | None = None,  # object
        clip_norm: float = 0.0,  # double
    ) -> float: ...
    def epoch(
        self,
        X: npt.NDArray[np.floating[Any]] | SparseRows,  # object: ndarray or SparseRows
        T: npt.NDArray[np.floating[Any]] | None,  # object
        labels: npt.NDArray[np.intp] | None,  # object
        order: npt.NDArray[np.intp],  # cnp.ndarray
        batch: int,  # Py_ssize_t
        sample_weight: npt.NDArray[np.float64] | None = None,  # object
        loss_sum0: float = 0.0,  # double
        clip_norm: float = 0.0,  # double
        lrs: npt.NDArray[np.float64] | None = None,  # object: one lr per batch, or None
    ) -> tuple[int, int, float]: ...  # (status, steps, loss_sum)
    def sobolev(
        self,
        X: npt.NDArray[np.floating[Any]],  # cnp.ndarray
        T: npt.NDArray[np.floating[Any]] | None,  # object
        labels: npt.NDArray[np.intp] | None,  # object
        dy: npt.NDArray[np.floating[Any]],  # cnp.ndarray (n, n_out, n_in)
        dy_weight: float,  # double
        sample_weight: npt.NDArray[np.float64] | None = None,  # object
        update: bool = True,  # bint
    ) -> float: ...  # the loss with the derivative term
    def _reserve_batch(
        self,
        batch: int,  # Py_ssize_t
        n_features: int,  # Py_ssize_t
        n_targets: int,  # Py_ssize_t
    ) -> None: ...

# _packed.pxi: the lock-step epoch of several engines (fastbp/_packing.py)
def can_pack(engines: list[Engine]) -> bool: ...
def packed_epoch(
    engines: list[Engine],  # list: engines that pass can_pack
    X: npt.NDArray[np.floating[Any]],  # object: dense, C-contiguous
    T: npt.NDArray[np.floating[Any]] | None,  # object
    labels: npt.NDArray[np.intp] | None,  # object
    order: npt.NDArray[np.intp],  # cnp.ndarray
    batch: int,  # Py_ssize_t
    sample_weight: npt.NDArray[np.float64] | None = None,  # object
) -> list[tuple[int, int, float]]: ...  # (status, steps, loss_sum) per engine
