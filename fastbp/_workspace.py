"""Scratch arrays kept between calls of one model.

Why: the derivative kernels need several scratch matrices per call (about 6 MB for a
3-64-64-1 network on 1,024 points). Fresh NumPy arrays of that size come from mmap,
and their first touch page-faults: a measured third of a value+gradient+Laplacian
call. A model keeps its scratch here (used under the model's lock) and reuses it
when the next call asks for the same shapes.

Each ``get`` returns an array of exactly the shape and dtype asked for (a new one when
they differ from the kept one's), so a kernel never sees a buffer sized by an earlier
call. Arrays beyond ``limit_bytes`` in total are not kept (a one-off call on a
million points does not pin its scratch to the model).
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: the most scratch, in bytes, one model keeps between calls
DEFAULT_LIMIT_BYTES = 64 << 20


class Workspace:
    """Named scratch arrays reused while their shape and dtype stay the same."""

    def __init__(self, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialised C-contiguous array of this shape and dtype, kept under name."""
        kept = self._arrays.get(name)
        if kept is not None and kept.shape == shape and kept.dtype == dtype:
            return kept
        self._arrays.pop(name, None)
        out = np.empty(shape, dtype=dtype)
        if self.nbytes() + out.nbytes <= self.limit_bytes:
            self._arrays[name] = out
        return out

    def nbytes(self) -> int:
        """The bytes kept."""
        return sum(a.nbytes for a in self._arrays.values())

    def clear(self) -> None:
        """Drop every kept array."""
        self._arrays.clear()
