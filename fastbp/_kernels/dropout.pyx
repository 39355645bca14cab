"""Dropout kernels behind ``fastbp.ops.dropout_mask`` and ``fastbp.ops.dropout_apply``.

Design: the mask generator and both loops are C in ``_dropout.h`` (a counter-based
generator: see its comment), shared with the engine in ``network.pyx`` through
``dropout.pxd``. Arguments are checked by the caller (``fastbp._validation``).
"""
from cython cimport floating
from libc.stdint cimport uint64_t

from fastbp._kernels.dropout cimport (
    dropout_layer_key, dropout_step_key, dropout_threshold, dropout_mask, dropout_backward_ptr,
)


def dropout_mask_into(uint64_t seed, uint64_t layer, uint64_t step, double p,
                      unsigned char[::1] out):
    """out[i] := 1 if element i of the (seed, layer, step) stream is kept, else 0."""
    cdef uint64_t key = dropout_step_key(dropout_layer_key(seed, layer), step)
    if out.shape[0] == 0:
        return
    with nogil:
        dropout_mask(key, dropout_threshold(p), &out[0], out.shape[0])


def dropout_apply_into(const unsigned char[::1] keep, double scale, floating[::1] A):
    """A := A·m in place, m = scale where keep is 1 and 0 where it is 0."""
    if A.shape[0] != keep.shape[0]:
        raise ValueError("keep and A must have the same length")
    if A.shape[0] == 0:
        return
    with nogil:
        dropout_backward_ptr(scale, &keep[0], &A[0], A.shape[0])
