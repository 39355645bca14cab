"""Row-major GEMM on top of scipy.linalg.cython_blas (column-major BLAS).

Design: every matrix product of fastbp goes through ``gemm`` below, fused on
``floating`` so that float32 calls ``sgemm`` and float64 ``dgemm``. BLAS is
column-major; a row-major C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ,
so the operands and their transpose flags are swapped (as scikit-learn's _gemm).
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm

import numpy as np


cdef void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
               double alpha, const floating* A, Py_ssize_t lda,
               const floating* B, Py_ssize_t ldb,
               double beta, floating* C, Py_ssize_t ldc) noexcept nogil:
    """C(m×n) := alpha·op(A)(m×k)·op(B)(k×n) + beta·C, all row-major.

    lda, ldb, ldc are row strides in elements; callers guarantee m, n, k > 0.
    """
    # BLAS prototypes are not const (scipy#14262): cast at the call.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int im = <int>m, in_ = <int>n, ik = <int>k
    cdef int ilda = <int>lda, ildb = <int>ldb, ildc = <int>ldc
    cdef float salpha = <float>alpha, sbeta = <float>beta
    if floating is float:
        sgemm(&tb, &ta, &in_, &im, &ik, &salpha, <float*>B, &ildb,
              <float*>A, &ilda, &sbeta, C, &ildc)
    else:
        dgemm(&tb, &ta, &in_, &im, &ik, &alpha, <double*>B, &ildb,
              <double*>A, &ilda, &beta, C, &ildc)


def gemm_check(bint trans_a, bint trans_b, double alpha,
               const floating[:, ::1] A, const floating[:, ::1] B,
               double beta, floating[:, ::1] C):
    """C := alpha·op(A)·op(B) + beta·C in place (tests the wrapper against NumPy)."""
    cdef Py_ssize_t m = C.shape[0], n = C.shape[1]
    cdef Py_ssize_t k = A.shape[0] if trans_a else A.shape[1]
    if m == 0 or n == 0 or k == 0:
        raise ValueError("gemm_check needs non-empty operands")
    with nogil:
        gemm(trans_a, trans_b, m, n, k, alpha, &A[0, 0], A.shape[1],
             &B[0, 0], B.shape[1], beta, &C[0, 0], C.shape[1])
