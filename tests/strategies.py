"""Hypothesis strategies for the kernel tests: float matrices, shapes and memory layouts.

Arrays come from three sources, mixed by ``one_of``:
- ``hypothesis.extra.numpy.arrays`` with the dict form of ``elements`` (so that one
  spec fits float32 and float64): edge values (0, ±10, subnormals, repeated values)
  that shrink to readable counterexamples; element by element only for small arrays,
  and for large ones as a small pool of such values scattered over the array;
- a NumPy generator seeded by Hypothesis: dense, diverse data, which exercises the
  GEMM and reduction paths far better than mostly-constant arrays do.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import DTYPES

ELEMENTS = dict(min_value=-10, max_value=10, allow_nan=False, allow_infinity=False)

MAX_ROWS = 300
MAX_COLS = 300
MAX_SIZE = 20_000      # keeps one example cheap; both dimensions still reach 300

# The layouts a read-only kernel input may come in. ops must accept all of them and
# give the same result as for the C-contiguous array.
LAYOUTS = ("C", "F", "strided", "transposed", "reversed", "readonly")


def to_layout(arr: np.ndarray, layout: str) -> np.ndarray:
    """The same values as ``arr`` in the memory layout ``layout`` (never aliasing arr)."""
    arr = np.asarray(arr)
    if layout == "C":
        return arr.copy(order="C")
    if layout == "F":
        return np.asfortranarray(arr.copy())
    if layout == "strided":
        # every other element of a bigger array, along every axis: non-contiguous
        big = np.full(tuple(2 * s for s in arr.shape), 7, dtype=arr.dtype)
        view = big[tuple(slice(None, None, 2) for _ in arr.shape)]
        view[...] = arr
        return view
    if layout == "transposed":
        # a transposed view of a C array holding arr.T (F-ordered, base is C)
        return arr.T.copy(order="C").T
    if layout == "reversed":
        # negative strides: a reversed view of a reversed copy
        flip = tuple(slice(None, None, -1) for _ in arr.shape)
        return arr[flip].copy(order="C")[flip]
    if layout == "readonly":
        ro = arr.copy(order="C")
        ro.flags.writeable = False
        return ro
    raise ValueError(f"unknown layout {layout!r}")


layouts = st.sampled_from(LAYOUTS)
dtypes = st.sampled_from(DTYPES)


@st.composite
def shapes(draw, *, min_rows=1, max_rows=MAX_ROWS, min_cols=1, max_cols=MAX_COLS,
           max_size=MAX_SIZE):
    """(rows, cols) with rows in [min_rows, max_rows], cols in [min_cols, max_cols],
    rows*cols <= max_size (cols is capped once rows is drawn)."""
    rows = draw(st.integers(min_rows, max_rows))
    cap = max(min_cols, min(max_cols, max_size // max(rows, 1)))
    cols = draw(st.integers(min_cols, cap))
    return rows, cols


def seeded_uniform(dtype, shape, low=-10.0, high=10.0):
    """Dense uniform data in [low, high] from a NumPy generator seeded by Hypothesis."""
    return st.integers(0, 2**32 - 1).map(
        lambda seed: np.random.default_rng(seed).uniform(low, high, shape).astype(dtype))


@st.composite
def pooled(draw, dtype, shape, elements):
    """Hypothesis' edge values at any size: up to 16 values drawn by Hypothesis (0, ±10,
    subnormals, repeats), scattered over the array by a seeded generator. Drawing
    every element through Hypothesis costs ~30 ms per 20000-element array; this is cheap."""
    pool = draw(arrays(dtype, st.integers(1, 16), elements=elements))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).choice(pool, size=shape).astype(dtype)


SMALL = 256    # arrays up to this size are also drawn element by element


def float_arrays(dtype, shape, *, min_value=-10.0, max_value=10.0):
    """Arrays of ``shape`` with values in [min_value, max_value]: dense uniform data,
    Hypothesis edge values scattered over the array, or (small arrays) fully
    Hypothesis-built arrays."""
    elements = dict(ELEMENTS, min_value=min_value, max_value=max_value)
    options = [seeded_uniform(dtype, shape, min_value, max_value),
               pooled(dtype, shape, elements)]
    if int(np.prod(shape)) <= SMALL:
        options.append(arrays(dtype, shape, elements=elements))
    return st.one_of(options)


@st.composite
def float_matrices(draw, dtype, *, min_rows=1, max_rows=MAX_ROWS, min_cols=1,
                   max_cols=MAX_COLS, max_size=MAX_SIZE, min_value=-10.0, max_value=10.0):
    """A 2-D C-contiguous float matrix of a drawn shape (see ``shapes``)."""
    shape = draw(shapes(min_rows=min_rows, max_rows=max_rows, min_cols=min_cols,
                        max_cols=max_cols, max_size=max_size))
    return draw(float_arrays(dtype, shape, min_value=min_value, max_value=max_value))


@st.composite
def laid_out(draw, array_strategy):
    """(C-contiguous array, the same data in a drawn layout, the layout's name)."""
    arr = draw(array_strategy)
    layout = draw(layouts)
    return arr, to_layout(arr, layout), layout


def class_labels(n, k, dtype=np.int64):
    """n int class labels in [0, k) of ``dtype``: seeded, or element by element when small."""
    seeded = st.integers(0, 2**32 - 1).map(
        lambda seed: np.random.default_rng(seed).integers(0, k, n).astype(dtype))
    if n <= SMALL:
        return st.one_of(seeded, arrays(dtype, n, elements=st.integers(0, k - 1)))
    return seeded
