"""Row-major GEMM on top of a column-major BLAS: NumPy's OpenBLAS where NumPy's
wheel bundles one, else SciPy's (scipy.linalg.cython_blas).

Design: every matrix product of fastbp goes through ``gemm`` below, fused on
``floating`` so that float32 calls ``sgemm`` and float64 ``dgemm``. BLAS is
column-major; a row-major C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ,
so the operands and their transpose flags are swapped (as scikit-learn's _gemm).

Which BLAS: fastbp/_blas_route.py finds NumPy's bundled OpenBLAS (64-bit integer
interface) and hands its sgemm/dgemm addresses to ``use_numpy_blas``; measured on
the benchmark's workloads (benchmarks/blas_routes.py), it is up to 10% faster on
float32 products of medium layers than SciPy's, and it is the library NumPy's own
matmul (and the benchmark's GEMM floor) uses, so one thread pool serves both.
Without it, or with FASTBP_BLAS=scipy, SciPy's cython_blas is used.

Threads: ``gemm`` never changes OpenBLAS's thread count. It once held small
float64 products to one thread for the call (they ran ~10% faster there), but the
count is process-wide: a product of another thread (fastbp's or the user's own
NumPy) running meanwhile ran on one thread too, and on OpenBLAS's Haswell kernels a
product split over 2 threads gives other last bits than on 1 (300 rows × 64 × 32,
measured), so two fits on two threads stopped being reproducible.
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sdot, ddot, saxpy, daxpy

import numpy as np

# The 64-bit-integer (ILP64) BLAS interface of NumPy's bundled OpenBLAS.
ctypedef void (*sgemm64_t)(const char*, const char*, const long long*, const long long*,
                           const long long*, const float*, const float*, const long long*,
                           const float*, const long long*, const float*, float*,
                           const long long*) noexcept nogil
ctypedef void (*dgemm64_t)(const char*, const char*, const long long*, const long long*,
                           const long long*, const double*, const double*, const long long*,
                           const double*, const long long*, const double*, double*,
                           const long long*) noexcept nogil

ctypedef float (*sdot64_t)(const long long*, const float*, const long long*, const float*,
                          const long long*) noexcept nogil
ctypedef double (*ddot64_t)(const long long*, const double*, const long long*, const double*,
                            const long long*) noexcept nogil
ctypedef void (*saxpy64_t)(const long long*, const float*, const float*, const long long*,
                           float*, const long long*) noexcept nogil
ctypedef void (*daxpy64_t)(const long long*, const double*, const double*, const long long*,
                           double*, const long long*) noexcept nogil

cdef sgemm64_t sgemm64 = NULL
cdef dgemm64_t dgemm64 = NULL
cdef sdot64_t sdot64 = NULL
cdef ddot64_t ddot64 = NULL
cdef saxpy64_t saxpy64 = NULL
cdef daxpy64_t daxpy64 = NULL
cdef str blas_in_use = "scipy"


def use_numpy_blas(size_t sgemm_address, size_t dgemm_address, tuple level1=(0, 0, 0, 0)):
    """From now on call the ILP64 sgemm/dgemm at these addresses (0, 0: SciPy's
    cython_blas again); ``level1``: the same library's (sdot, ddot, saxpy, daxpy), which
    ``dot_self`` and ``axpy`` call (all 0: their own loops while NumPy's gemm is in use,
    never a second library's thread pool). fastbp/_blas_route.py is the one caller
    outside the tests."""
    global sgemm64, dgemm64, blas_in_use
    global sdot64, ddot64, saxpy64, daxpy64
    if (sgemm_address == 0) != (dgemm_address == 0):
        raise ValueError("use_numpy_blas needs both addresses or neither")
    if len(level1) != 4 or any(not isinstance(a, int) or a < 0 for a in level1) \
            or (0 in level1 and any(level1)):
        raise ValueError("use_numpy_blas needs all four level-1 addresses or none")
    if any(level1) and sgemm_address == 0:
        raise ValueError("use_numpy_blas takes level-1 addresses only with gemm's")
    sgemm64 = <sgemm64_t>sgemm_address
    dgemm64 = <dgemm64_t>dgemm_address
    sdot64 = <sdot64_t><size_t>level1[0]
    ddot64 = <ddot64_t><size_t>level1[1]
    saxpy64 = <saxpy64_t><size_t>level1[2]
    daxpy64 = <daxpy64_t><size_t>level1[3]
    blas_in_use = "numpy" if sgemm_address else "scipy"


def blas_name():
    """Which BLAS gemm calls: "numpy" (NumPy's bundled OpenBLAS) or "scipy"."""
    return blas_in_use


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
    cdef long long lm = m, ln = n, lk = k, llda = lda, lldb = ldb, lldc = ldc
    if floating is float:
        if sgemm64 != NULL:
            sgemm64(&tb, &ta, &ln, &lm, &lk, &salpha, <const float*>B, &lldb,
                    <const float*>A, &llda, &sbeta, C, &lldc)
        else:
            sgemm(&tb, &ta, &in_, &im, &ik, &salpha, <float*>B, &ildb,
                  <float*>A, &ilda, &sbeta, C, &ildc)
    elif dgemm64 != NULL:
        dgemm64(&tb, &ta, &ln, &lm, &lk, &alpha, <const double*>B, &lldb,
                <const double*>A, &llda, &beta, C, &lldc)
    else:
        dgemm(&tb, &ta, &in_, &im, &ik, &alpha, <double*>B, &ildb,
              <double*>A, &ilda, &beta, C, &ildc)


cdef double dot_self(const floating* x, Py_ssize_t n) noexcept nogil:
    """Σ x² (np.dot(x, x), as scikit-learn's L2 penalty computes it): the dot of the
    BLAS gemm uses, so that one library's thread pool runs (a dot of SciPy's OpenBLAS
    next to NumPy's products woke a second pool, and on two cores their spinning
    threads made a step 30× slower); a plain loop when NumPy's gemm runs without its
    dot."""
    cdef long long ln = n, one = 1
    cdef int m = <int>n, ione = 1
    cdef Py_ssize_t i
    cdef double s = 0.0
    if sgemm64 != NULL:
        if floating is float:
            if sdot64 != NULL:
                return sdot64(&ln, x, &one, x, &one)
        elif ddot64 != NULL:
            return ddot64(&ln, x, &one, x, &one)
    elif n <= 2147483647:   # SciPy's BLAS takes int sizes
        if floating is float:
            return sdot(&m, <float*>x, &ione, <float*>x, &ione)
        return ddot(&m, <double*>x, &ione, <double*>x, &ione)
    for i in range(n):
        s += <double>x[i] * x[i]
    return s


cdef void axpy(Py_ssize_t n, double a, const floating* x, floating* y) noexcept nogil:
    """y += a·x, through the BLAS gemm uses (as dot_self), else a plain loop."""
    cdef long long ln = n, one = 1
    cdef int m = <int>n, ione = 1
    cdef float af = <float>a
    cdef Py_ssize_t i
    if sgemm64 != NULL:
        if floating is float:
            if saxpy64 != NULL:
                saxpy64(&ln, &af, x, &one, y, &one)
                return
        elif daxpy64 != NULL:
            daxpy64(&ln, &a, x, &one, y, &one)
            return
    elif n <= 2147483647:
        if floating is float:
            saxpy(&m, &af, <float*>x, &ione, <float*>y, &ione)
        else:
            daxpy(&m, &a, <double*>x, &ione, <double*>y, &ione)
        return
    for i in range(n):
        y[i] = <floating>(y[i] + a * x[i])


def level1_check(floating[::1] x, floating[::1] y, double a):
    """(Σ x², then y += a·x in place): dot_self and axpy on the current route (tests)."""
    cdef double s
    if x.shape[0] == 0 or y.shape[0] != x.shape[0]:
        raise ValueError("level1_check needs non-empty x and y of one length")
    with nogil:
        s = dot_self(&x[0], x.shape[0])
        axpy(x.shape[0], a, &x[0], &y[0])
    return s


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
