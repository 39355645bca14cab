"""Fuzzing every ``fastbp.ops`` function against ``fastbp.reference`` (Hypothesis).

Each test draws an *arbitrary* call -- mostly well-formed, often not: shapes with
0-size, 0-d, 1-D and 3-D arrays, dtypes float16/float32/float64/int32/int64/bool/
complex128/object, Fortran-ordered, strided, negatively strided, transposed,
read-only and misaligned arrays, special values (nan, +-inf, +-0, float32 and
float64 subnormals, +-1e4, +-1e30), mismatched shapes between arguments,
non-array arguments, and arbitrary hyper-parameters (negative, nan, inf, bools,
strings, None, numpy scalars) -- and runs it through both modules. Property:

* both succeed and the results agree (optimizer steps are run on two identical
  copies of the arrays and the in-place results compared; read-only inputs must
  come back unmodified), or
* both raise, with the same exception type, which is ``ValueError`` or
  ``TypeError`` -- never another type, never a crash.

``fastbp.ops`` runs with RuntimeWarnings turned into errors (a warning from the
compiled path is a finding); the reference runs under ``np.errstate(all="ignore")``
with warnings suppressed (inf - inf and friends warn in NumPy by design).

Examples per test: 25 in the default run (profile ``fastbp-fuzz``); set
``FASTBP_FUZZ_EXAMPLES=2000`` (any count) for a long hunt, e.g.::

    FASTBP_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_ops.py -q -p no:cacheprovider

Tolerances. Element-wise: |ops - ref| <= rtol*|ref| + atol, NaN where the
reference has NaN, the same infinity where it has one.
* rtol is conftest.TOL's. float64: 1e-12 (the API contract).
* float32: 2e-6 (~17 float32 ulps): the kernels evaluate transcendental
  functions and reductions in double and round once, the reference uses NumPy's
  float32 loops. Because of that, a float32 result may also be matched against
  the reference run on the same values upcast to float64 (then |ops - ref64| with
  the float32 bound): where the float32 reference overflows or underflows in an
  intermediate (e.g. r*r for r = 2e30 in mse) the kernel's double evaluation is
  the better answer, and it must then agree with the float64 reference instead.
* atol is the classic rounding-error bound of the same computation, scaled by
  the magnitude of the terms: c*(m+2)*eps*(|A|@|B|) for a product with inner
  size m (the BLAS of SciPy and NumPy's matmul sum in different orders), the
  magnitude of the summed terms for losses, softmax dot products and the
  cancelling terms of gelu'/silu', and the smallest normal number times the
  magnitude of the multiplier for results that underflow (subnormals carry no
  relative precision: SciPy's erfc flushes to 0 where libm's is subnormal).
  Optimizer steps propagate first-order error bounds through their formulas
  (ill-conditioned cases such as centered RMSprop's sqrt(v - g_avg^2) widen the
  bound), and elements whose denominator is within its own error of zero (eps=0
  and a zero second moment: x/0 vs 0/0) are left unconstrained.

Regression tests at the end of this file pin bugs the fuzz found (all fixed):
* hyper-parameters given as Python ints too large for a float raised OverflowError;
* ``g`` aliasing ``p`` or a state array made ops and reference disagree (now refused);
* cross-entropy with int labels and a -inf logit: the reference gave NaN;
* optimizer flags whose truth value raises (numpy arrays) were evaluated at
  different points by ops and reference (now validated as bools).
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from scipy.special import erfc

from fastbp import ops, reference

from conftest import tol

# ---------------------------------------------------------------- settings
_ENV_EXAMPLES = os.environ.get("FASTBP_FUZZ_EXAMPLES", "").strip()
FUZZ_EXAMPLES = int(_ENV_EXAMPLES) if _ENV_EXAMPLES else 25
settings.register_profile(
    "fastbp-fuzz", max_examples=FUZZ_EXAMPLES, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])
FUZZ = settings.get_profile("fastbp-fuzz")

EPS = {np.dtype(np.float64): np.finfo(np.float64).eps, np.dtype(np.float32): np.finfo(np.float32).eps}
SUB = {np.dtype(np.float64): 5e-324, np.dtype(np.float32): 1.4e-45}   # smallest subnormal
TINY = {np.dtype(t): float(np.finfo(t).tiny) for t in (np.float32, np.float64)}  # smallest normal
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
ALLOWED = (ValueError, TypeError)

# ---------------------------------------------------------------- values and arrays
SPECIALS = (0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 20.0, 20.5, -20.5, 1e4, -1e4, 1e30, -1e30,
            1e-40, -1e-40, 5e-324, -5e-324, 1e-310, 2.2250738585072014e-308,
            np.nan, np.inf, -np.inf)
FINITE_SPECIALS = tuple(v for v in SPECIALS if math.isfinite(v))
OTHER_DTYPES = ("float16", "int32", "int64", "bool", "complex128", "object", "uint8",
                "longdouble")


@dataclass
class Arr:
    """How to build one array argument (built afresh for every call)."""
    shape: tuple
    dtype: str
    seed: int
    mode: str            # "normal" | "special" | "finite_special" | "zeros" | "positive"
    scale: float
    layout: str          # C F strided reversed transposed readonly unaligned

    def values(self, dtype: str | None = None) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        size = int(np.prod(self.shape, dtype=np.int64))
        base = rng.standard_normal(size) * self.scale
        if self.mode == "zeros":
            base[:] = 0.0
        elif self.mode == "positive":
            base = np.abs(base)
        elif self.mode in ("special", "finite_special"):
            pool = np.array(SPECIALS if self.mode == "special" else FINITE_SPECIALS)
            mask = rng.random(size) < 0.4
            base[mask] = rng.choice(pool, int(mask.sum()))
        base = base.reshape(self.shape)
        dt = np.dtype(dtype or self.dtype)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if dt.kind in "iub":
                base = np.nan_to_num(base, nan=0.0, posinf=7.0, neginf=-7.0)
                base = np.clip(base, -100, 100)
                if dt.kind == "u":
                    base = np.abs(base)
            if dt.kind == "c":
                return np.asarray((base + 0.5j).astype(dt))
            return np.asarray(np.asarray(base).astype(dt))

    def build(self, dtype: str | None = None) -> np.ndarray:
        return lay_out(self.values(dtype), self.layout)


def lay_out(a: np.ndarray, layout: str) -> np.ndarray:
    """The values of ``a`` in the given memory layout (a fresh buffer every time)."""
    if layout == "C" or a.ndim == 0:
        out = a.copy(order="C")
        if layout == "readonly":
            out.flags.writeable = False
        return out
    if layout == "F":
        return np.asfortranarray(a.copy())
    if layout == "strided":
        big = np.zeros(tuple(2 * s + 1 for s in a.shape), dtype=a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if layout == "reversed":
        flip = tuple(slice(None, None, -1) for _ in a.shape)
        return a[flip].copy(order="C")[flip]
    if layout == "transposed":
        return a.T.copy(order="C").T
    if layout == "readonly":
        out = a.copy(order="C")
        out.flags.writeable = False
        return out
    if layout == "unaligned":
        if a.dtype.kind == "O" or a.dtype.itemsize == 1:
            return a.copy(order="C")
        buf = bytearray(a.nbytes + 1)
        out = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        out[...] = a
        return out
    raise AssertionError(layout)


@dataclass
class Junk:
    """A non-array argument."""
    value: Any

    def build(self, dtype=None):
        return self.value() if callable(self.value) else self.value


@dataclass
class Alias:
    """The same array object as another argument."""
    target: str


JUNK_ARGS = (None, 1.0, "abc", 3, (1.0, 2.0), np.float64(1.5), b"\x00\x01")


@st.composite
def arr(draw, shape: tuple, dtype: np.dtype, *, bad: bool = False, inplace: bool = False,
        mode=None):
    """An array argument: valid (``shape``, ``dtype``, any layout a read-only input may
    have; in-place arrays C-contiguous and writable, possibly misaligned), or with
    ``bad`` a corrupted one (non-array, wrong shape, wrong dtype, wrong layout)."""
    dt, layout = dtype.name, None
    if bad:
        kind = draw(st.sampled_from(("junk", "shape", "dtype", "layout") if inplace
                                    else ("junk", "shape", "shape", "dtype", "dtype")))
        if kind == "junk":
            choice = draw(st.sampled_from(JUNK_ARGS + ("list",)))
            if choice == "list":
                vals = Arr(shape, dt, draw(st.integers(0, 2**32 - 1)), "normal", 1.0, "C").values()
                return Junk(lambda v=vals: v.tolist())
            return Junk(choice)
        if kind == "shape":
            ndim = draw(st.integers(0, 3))
            shape = tuple(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
        elif kind == "dtype":
            dt = draw(st.sampled_from(OTHER_DTYPES + ("float32", "float64")))
        else:
            layout = draw(st.sampled_from(("F", "strided", "reversed", "transposed", "readonly")))
    if mode is None:
        mode = draw(st.sampled_from(("normal", "special", "special", "finite_special", "zeros")))
    scale = draw(st.sampled_from((1.0, 1.0, 10.0, 100.0, 1e-3)))
    if layout is None:
        layout = draw(st.sampled_from(("C", "C", "C", "unaligned") if inplace else
                                      ("C", "C", "F", "strided", "reversed", "transposed",
                                       "readonly", "unaligned")))
    return Arr(shape, dt, draw(st.integers(0, 2**32 - 1)), mode, scale, layout)


@st.composite
def corrupted(draw, arguments: tuple[str, ...]):
    """The names of the arguments to corrupt: none in about half of the calls."""
    n = draw(st.sampled_from((0, 0, 0, 1, 1, 2)))
    return frozenset(draw(st.sets(st.sampled_from(arguments), min_size=n, max_size=n)))


float_dtypes = st.sampled_from(FLOATS)
dims = st.integers(0, 6)
pos_dims = st.one_of(st.integers(1, 6), st.integers(1, 40))
JUNK_NAMES = ("", "RELU", "relu ", "softmax\x00", "Identity", "mse ", None, 0, 3.5, b"relu",
              ("relu",), True)


def names(valid: tuple[str, ...], bad: bool = False):
    return st.sampled_from(JUNK_NAMES) if bad else st.sampled_from(valid)


HUGE_INT = 10**400           # too large for a float (see test_regression_huge_int_hyperparameter)
JUNK_SCALARS = (-1.0, -1e-300, -0.0, float("nan"), float("inf"), float("-inf"), True, False,
                "0.1", None, np.float32("nan"), np.float64(-3.0), np.int64(-3), np.int32(2),
                1e308, [0.1], 1 + 0j, HUGE_INT, -HUGE_INT, 2**70, np.array(0.1), np.bool_(True))


def hyper(valid, bad: bool = False):
    """A hyper-parameter: drawn from ``valid``, or junk with ``bad``."""
    return st.sampled_from(JUNK_SCALARS) if bad else valid


# flags are only ever tested for truth: every one of these is a valid flag
FLAGS = st.one_of(st.booleans(), st.booleans(), st.booleans(),
                  st.sampled_from((None, 0, 1, "yes", "", np.bool_(True), np.int64(0), 2.5)))


# ---------------------------------------------------------------- running both modules
def _call_ops(fn, args, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            return "ok", fn(*args, **kwargs)
        except BaseException as exc:   # noqa: BLE001 -- every type is a finding but ValueError/TypeError
            return "err", exc


def _call_ref(fn, args, kwargs):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return "ok", fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001
            return "err", exc


def _build(specs: dict, dtype: str | None = None) -> dict:
    """Fresh arguments from their specs; ``dtype`` upcasts every float32 array."""
    out = {}
    for key, spec in specs.items():
        if isinstance(spec, Arr):
            out[key] = spec.build()
        elif isinstance(spec, Junk):
            out[key] = spec.build()
        elif not isinstance(spec, Alias):
            out[key] = spec
    if dtype is not None:
        for key, value in out.items():
            if isinstance(value, np.ndarray) and value.dtype == np.float32:
                out[key] = value.astype(dtype)
    for key, spec in specs.items():
        if isinstance(spec, Alias):
            out[key] = out[spec.target]
    return out


def _snapshot(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    return None


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "O":
        return all(x is y or x == y or (x != x and y != y) for x, y in zip(a.ravel(), b.ravel()))
    return a.tobytes() == b.tobytes() or bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def check_outcomes(name: str, o_ops, o_ref) -> bool:
    """Common part: exception types. Returns True when both succeeded."""
    kind_o, val_o = o_ops
    kind_r, val_r = o_ref
    if kind_o == "err":
        note(f"ops raised {type(val_o).__name__}: {val_o}")
    if kind_r == "err":
        note(f"reference raised {type(val_r).__name__}: {val_r}")
    if kind_o == "err" and not isinstance(val_o, ALLOWED):
        raise AssertionError(f"{name}: ops raised {type(val_o).__name__} ({val_o!r}); only "
                             "ValueError/TypeError are allowed") from val_o
    if kind_r == "err" and not isinstance(val_r, ALLOWED):
        raise AssertionError(f"{name}: reference raised {type(val_r).__name__} ({val_r!r}); "
                             "only ValueError/TypeError are allowed") from val_r
    if kind_o != kind_r:
        raise AssertionError(f"{name}: ops {'raised ' + repr(val_o) if kind_o == 'err' else 'succeeded'}"
                             f" but reference {'raised ' + repr(val_r) if kind_r == 'err' else 'succeeded'}")
    if kind_o == "err":
        assert type(val_o) is type(val_r), (
            f"{name}: ops raised {type(val_o).__name__}, reference {type(val_r).__name__}")
        return False
    return True


def close_mask(got, exp, atol, rtol) -> np.ndarray:
    """Elementwise agreement (see the module docstring); arrays in float64."""
    got = np.asarray(got, dtype=np.float64)
    exp = np.asarray(exp, dtype=np.float64)
    atol = np.broadcast_to(np.asarray(atol, dtype=np.float64), exp.shape)
    with np.errstate(all="ignore"):
        free = np.isnan(atol)        # no constraint (see opt_bound)
        nan_ok = free | (np.isnan(got) & np.isnan(exp))
        inf_ok = np.isinf(exp) & (got == exp)
        bound = rtol * np.abs(exp) + np.where(free, np.inf, atol)
        fin_ok = np.isfinite(exp) & (np.abs(got - exp) <= bound)
    return nan_ok | inf_ok | fin_ok


def assert_agree(name: str, got, exp, atol, dtype, exp64=None, atol64=None):
    """ops result ``got`` against the reference ``exp`` (and, for float32, ``exp64``)."""
    dtype = np.dtype(dtype)
    rtol = tol(dtype)
    if isinstance(exp, float):
        assert isinstance(got, float), f"{name}: ops returned {type(got).__name__}, expected float"
    else:
        assert isinstance(got, np.ndarray), f"{name}: ops returned {type(got).__name__}"
        assert got.dtype == exp.dtype, f"{name}: dtype {got.dtype}, reference {exp.dtype}"
        assert got.shape == exp.shape, f"{name}: shape {got.shape}, reference {exp.shape}"
    ok = close_mask(got, exp, atol, rtol)
    if not ok.all() and exp64 is not None:
        ok |= close_mask(got, np.asarray(exp64, dtype=np.float64),
                         atol if atol64 is None else atol64, rtol)
    if not ok.all():
        g = np.asarray(got, dtype=np.float64)
        e = np.asarray(exp, dtype=np.float64)
        idx = tuple(np.argwhere(~np.asarray(ok))[0]) if np.ndim(ok) else ()
        extra = "" if exp64 is None else f", float64 reference {np.asarray(exp64)[idx]!r}"
        raise AssertionError(
            f"{name}: {int(np.size(ok) - np.count_nonzero(ok))}/{np.size(ok)} elements disagree; "
            f"first at {idx}: ops {g[idx]!r}, reference {e[idx]!r}{extra}, "
            f"atol {np.broadcast_to(np.asarray(atol, dtype=np.float64), e.shape)[idx]!r}, rtol {rtol:g}")


# ---------------------------------------------------------------- error bounds
def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _abs(a):
    with np.errstate(all="ignore"):
        return np.abs(_f64(a))


def matmul_bound(A, B, eps, extra_rel=0.0):
    """c*(m+2)*eps*(|A|@|B|) (+ extra_rel*(|A|@|B|) for an inexact operand)."""
    with np.errstate(all="ignore"):
        m = A.shape[-1]
        return (4 * (m + 2) * eps + extra_rel) * (_abs(A) @ _abs(B))


def underflow_bound(mult, z, dtype):
    """The smallest normal number, times the magnitude of a multiplier and of z: results
    that underflow into the subnormal range carry no relative precision (SciPy's erfc
    flushes to 0 where libm's returns a subnormal, and float32 exp loses bits there)."""
    with np.errstate(all="ignore"):
        return 2 * TINY[dtype] * (_abs(mult) + 1.0) * (_abs(z) + 1.0)


def activation_forward_bound(name, Z, dtype):
    eps = EPS[dtype]
    b = underflow_bound(1.0, Z, dtype)
    if name == "softmax":
        b = b + 8 * eps * Z.shape[-1] * 1.0
    return b


def activation_backward_bound(name, Z, A, dA, dtype):
    eps = EPS[dtype]
    b = underflow_bound(dA, Z, dtype)
    if name in ("gelu", "silu"):
        # f'(z) is a sum of terms that cancel for z << 0: bound by their magnitude
        with np.errstate(all="ignore"):
            z = _f64(Z)
            if name == "gelu":
                terms = 0.5 * erfc(-z * np.sqrt(0.5)) + _abs(z) * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
            else:
                s = 1.0 / (1.0 + np.exp(-z))
                terms = s * (1.0 + _abs(z) * (1.0 - s))
            b = b + 16 * eps * _abs(dA) * np.nan_to_num(terms, nan=np.inf)
    if name == "softmax":
        with np.errstate(all="ignore"):
            absA, absdA = _abs(A), _abs(dA)
            dot = (absA * absdA).sum(axis=-1, keepdims=True)
            b = b + 8 * (Z.shape[-1] + 2) * eps * absA * (absdA + dot)
    return b


# ---------------------------------------------------------------- activation_forward
@FUZZ
@given(data=st.data())
def test_fuzz_activation_forward(data):
    dt = data.draw(float_dtypes)
    bad = data.draw(corrupted(("name", "Z", "Z")))
    name = data.draw(names(ops.ACTIVATIONS, "name" in bad))
    shape = (data.draw(dims), data.draw(dims))
    specs = {"Z": data.draw(arr(shape, dt, bad="Z" in bad))}
    note(f"name={name!r} specs={specs}")
    run_and_compare("activation_forward", (name,), specs, ("Z",), dt,
                    lambda out, a: activation_forward_bound(name, a["Z"], a["Z"].dtype))


def run_and_compare(fname, lead, specs, order, dt, bound_fn, kw_specs=None, inplace=()):
    """Build the arguments twice, call ops and the reference, compare.

    ``lead`` are positional arguments before the array ones, ``order`` the array
    argument names in positional order, ``kw_specs`` keyword arguments (specs or
    plain values), ``inplace`` the names of arguments updated in place.
    """
    kw_specs = kw_specs or {}
    all_specs = dict(specs, **kw_specs)
    a_ops = _build(all_specs)
    a_ref = _build(all_specs)
    before = {k: _snapshot(v) for k, v in a_ops.items()}
    o_ops = _call_ops(getattr(ops, fname), lead + tuple(a_ops[k] for k in order),
                      {k: a_ops[k] for k in kw_specs})
    o_ref = _call_ref(getattr(reference, fname), lead + tuple(a_ref[k] for k in order),
                      {k: a_ref[k] for k in kw_specs})
    both_ok = check_outcomes(fname, o_ops, o_ref)
    event(f"{fname}: " + ("both succeeded" if both_ok else f"both raised {type(o_ops[1]).__name__}"))
    # Arguments that are only read must come back bit for bit unchanged.
    for k, v in a_ops.items():
        if k in inplace or before.get(k) is None:
            continue
        if isinstance(all_specs.get(k), Alias) or any(
                isinstance(s, Alias) and s.target == k for s in all_specs.values()):
            continue
        assert _same_bits(v, before[k]), f"{fname}: ops modified its input {k}"
    if not both_ok:
        return
    out_ops, out_ref = o_ops[1], o_ref[1]
    # The precision of the call is that of its float arrays (a drawn "wrong" dtype
    # may have made a float64 call a float32 one, or vice versa).
    dtype = np.dtype(dt)
    for k in order:
        v = a_ref.get(k)
        if isinstance(v, np.ndarray) and v.dtype in FLOATS:
            dtype = v.dtype
            break

    def ref64():
        if dtype != np.float32:
            return None, None
        a64 = _build(all_specs, "float64")
        kind, val = _call_ref(getattr(reference, fname), lead + tuple(a64[k] for k in order),
                              {k: a64[k] for k in kw_specs})
        return (val, a64) if kind == "ok" else (None, None)

    if inplace:
        assert out_ops is None and out_ref is None, f"{fname} must return None"
        bounds = bound_fn(None, a_ref, before)
        r64, a64 = (None, None)
        for k in inplace:
            if a_ops.get(k) is None:
                continue
            try:
                assert_agree(f"{fname} [{k}]", a_ops[k], a_ref[k], bounds[k], dtype)
            except AssertionError:
                if r64 is None and a64 is None:
                    r64, a64 = ref64()
                if a64 is None:
                    raise
                assert_agree(f"{fname} [{k}]", a_ops[k], a_ref[k], bounds[k], dtype,
                             exp64=a64[k])
        return
    outs_ops = out_ops if isinstance(out_ops, tuple) else (out_ops,)
    outs_ref = out_ref if isinstance(out_ref, tuple) else (out_ref,)
    assert len(outs_ops) == len(outs_ref)
    bounds = bound_fn(outs_ref, a_ref)
    bounds = bounds if isinstance(bounds, tuple) else (bounds,)
    cache = []
    for i, (g, e) in enumerate(zip(outs_ops, outs_ref)):
        if e is None or g is None:
            assert g is None and e is None, f"{fname}: output {i} is None in one module only"
            continue
        try:
            assert_agree(f"{fname} [output {i}]", g, e, bounds[i], dtype)
        except AssertionError:
            if not cache:
                cache.append(ref64())
            r64, a64 = cache[0]
            if r64 is None:
                raise
            outs64 = r64 if isinstance(r64, tuple) else (r64,)
            b64 = bound_fn(outs64, a64)
            b64 = b64 if isinstance(b64, tuple) else (b64,)
            bound = np.maximum(_f64(bounds[i]), _f64(b64[i])) if not isinstance(e, float) \
                else max(float(bounds[i]), float(b64[i]))
            assert_agree(f"{fname} [output {i}]", g, e, bound, dtype, exp64=outs64[i],
                         atol64=bound)


# ---------------------------------------------------------------- activation_backward
@FUZZ
@given(data=st.data())
def test_fuzz_activation_backward(data):
    dt = data.draw(float_dtypes)
    bad = data.draw(corrupted(("name", "Z", "A", "dA")))
    name = data.draw(names(ops.ACTIVATIONS, "name" in bad))
    shape = (data.draw(dims), data.draw(dims))
    Z = data.draw(arr(shape, dt, bad="Z" in bad))
    A = data.draw(arr(shape, dt, bad="A" in bad))
    specs = {"Z": Z, "A": A, "dA": data.draw(arr(shape, dt, bad="dA" in bad))}
    if data.draw(st.booleans()) and not bad:
        # A consistent with Z (as a forward pass would give), in a drawn layout
        specs["A"] = Junk(lambda: _consistent_A(name, Z))
    note(f"name={name!r} specs={specs}")
    run_and_compare("activation_backward", (name,), specs, ("Z", "A", "dA"), dt,
                    lambda out, a: activation_backward_bound(name, a["Z"], a["A"], a["dA"],
                                                            a["Z"].dtype))


def _consistent_A(name, Z: Arr):
    z = Z.values()
    if z.ndim != 2 or z.shape[1] == 0:
        return z
    kind, A = _call_ref(reference.activation_forward, (name, z), {})
    return A if kind == "ok" else z


# ---------------------------------------------------------------- dense_forward
@FUZZ
@given(data=st.data())
def test_fuzz_dense_forward(data):
    dt = data.draw(float_dtypes)
    bad = data.draw(corrupted(("activation", "X", "W", "b")))
    act = data.draw(names(ops.ACTIVATIONS, "activation" in bad))
    n, n_in, n_out = data.draw(dims), data.draw(pos_dims), data.draw(pos_dims)
    specs = {"X": data.draw(arr((n, n_in), dt, bad="X" in bad)),
             "W": data.draw(arr((n_in, n_out), dt, bad="W" in bad)),
             "b": data.draw(arr((n_out,), dt, bad="b" in bad))}
    note(f"activation={act!r} specs={specs}")

    def bound(out, a):
        dtype = a["X"].dtype
        eps = EPS[dtype]
        with np.errstate(all="ignore"):
            bz = matmul_bound(a["X"], a["W"], eps) + 4 * eps * _abs(a["b"]) \
                + underflow_bound(1.0, out[0], dtype)
            # A = f(Z): the activations are Lipschitz with constant <= 1.13, so A
            # inherits Z's error (softmax: the row's largest error).
            ba = 2 * bz
            if act == "softmax" and bz.size:
                ba = 2 * bz.max(axis=-1, keepdims=True) + 8 * eps * bz.shape[-1]
            ba = ba + activation_forward_bound(act, out[0], dtype)
        return bz, ba

    run_and_compare("dense_forward", (), specs, ("X", "W", "b"), dt, bound,
                    kw_specs={"activation": act})


# ---------------------------------------------------------------- dense_backward
@FUZZ
@given(data=st.data())
def test_fuzz_dense_backward(data):
    dt = data.draw(float_dtypes)
    bad = data.draw(corrupted(("activation", "X", "W", "Z", "A", "dA")))
    act = data.draw(names(ops.ACTIVATIONS, "activation" in bad))
    n, n_in, n_out = data.draw(dims), data.draw(pos_dims), data.draw(pos_dims)
    specs = {"X": data.draw(arr((n, n_in), dt, bad="X" in bad)),
             "W": data.draw(arr((n_in, n_out), dt, bad="W" in bad)),
             "Z": data.draw(arr((n, n_out), dt, bad="Z" in bad)),
             "A": data.draw(arr((n, n_out), dt, bad="A" in bad)),
             "dA": data.draw(arr((n, n_out), dt, bad="dA" in bad))}
    need_dX = data.draw(FLAGS)
    note(f"activation={act!r} need_dX={need_dX!r} specs={specs}")

    def bound(out, a):
        dtype = a["X"].dtype
        eps, rtol = EPS[dtype], tol(dtype)
        X, W = a["X"], a["W"]
        with np.errstate(all="ignore"):
            kind, dZ = _call_ref(reference.activation_backward, (act, a["Z"], a["A"], a["dA"]), {})
            dZ = _f64(dZ) if kind == "ok" else np.zeros((X.shape[0], W.shape[1]))
            # dZ itself may differ by rtol*|dZ| (+ the element-wise bound)
            ebz = activation_backward_bound(act, a["Z"], a["A"], a["dA"], dtype)
            rel = rtol + 8 * eps
            Xf, Wf = _f64(X), _f64(W)
            bw = matmul_bound(Xf.T, dZ, eps, rel) + _abs(Xf).T @ ebz
            bb = (4 * (X.shape[0] + 2) * eps + rel) * _abs(dZ).sum(axis=0) + ebz.sum(axis=0)
            bx = matmul_bound(dZ, Wf.T, eps, rel) + ebz @ _abs(Wf).T
            sub = 8 * SUB[dtype]
        return bx + sub, bw + sub, bb + sub

    run_and_compare("dense_backward", (), specs, ("X", "W", "Z", "A", "dA"), dt, bound,
                    kw_specs={"activation": act, "need_dX": need_dX})


# ---------------------------------------------------------------- loss_forward_backward
LABEL_DTYPES = ("int64", "int32", "int8", "uint8", "uint64", "intp")


@FUZZ
@given(data=st.data())
def test_fuzz_loss_forward_backward(data):
    dt = data.draw(float_dtypes)
    bad = data.draw(corrupted(("name", "output", "target")))
    name = data.draw(names(ops.LOSSES, "name" in bad))
    n, k = data.draw(dims), data.draw(st.integers(0, 6))
    output = data.draw(arr((n, k), dt, bad="output" in bad))
    form = data.draw(st.sampled_from(("matrix", "labels", "vector")))
    if name == "cross_entropy" and "target" not in bad:
        form = data.draw(st.sampled_from(("matrix", "labels", "labels")))
    elif "target" not in bad:
        form = "vector" if k == 1 and data.draw(st.booleans()) else "matrix"
    if form == "labels":
        ldt = data.draw(st.sampled_from(LABEL_DTYPES))
        lo = 0 if np.dtype(ldt).kind == "u" or "target" not in bad else \
            data.draw(st.sampled_from((0, -1)))
        hi = max(k + (data.draw(st.sampled_from((0, 1))) if "target" in bad else 0), lo + 1)
        seed = data.draw(st.integers(0, 2**32 - 1))
        lshape = (max(n - 1, 0),) if "target" in bad and data.draw(st.booleans()) else (n,)
        layout = data.draw(st.sampled_from(("C", "C", "reversed", "strided", "readonly")))

        def labels(lo=lo, hi=hi, seed=seed, ldt=ldt, lshape=lshape, layout=layout):
            v = np.random.default_rng(seed).integers(lo, hi, size=lshape).astype(ldt)
            return lay_out(v, layout)
        target = Junk(labels)
        desc = f"labels in [{lo}, {hi}) {ldt} {lshape} {layout}"
    elif form == "vector":
        target = data.draw(arr((n,), dt, bad="target" in bad))
        desc = repr(target)
    else:
        target = data.draw(arr((n, k), dt, bad="target" in bad, mode=data.draw(st.sampled_from(
            (None, "positive", "zeros")))))
        desc = repr(target)
    specs = {"output": output, "target": target}
    note(f"name={name!r} output={output} target={desc}")

    def bound(out, a):
        dtype = a["output"].dtype
        eps = EPS[dtype]
        o, t = _f64(a["output"]), a["target"]
        with np.errstate(all="ignore"):
            if t.ndim == 1 and name == "cross_entropy":
                t = np.zeros_like(o)
                t[np.arange(o.shape[0]), a["target"].astype(np.intp)] = 1.0
            t = _f64(t).reshape(o.shape)
            N = o.size
            if name == "cross_entropy":
                mx = np.max(o, axis=1, keepdims=True) if o.size else o
                lse = _abs(np.log(np.sum(np.exp(o - mx), axis=1, keepdims=True))) + _abs(mx)
                terms = (_abs(t) * (_abs(o) + lse + 1)).sum(axis=1)
                lb = 8 * (o.shape[1] + 8) * eps * terms.mean()
                p = np.exp(o - mx) / np.sum(np.exp(o - mx), axis=1, keepdims=True)
                gb = 8 * (o.shape[1] + 4) * eps * (p * _abs(t).sum(axis=1, keepdims=True)
                                                    + _abs(t)) / o.shape[0]
            elif name == "binary_cross_entropy":
                terms = _abs(1 - t) * _abs(o) + _abs(o) + 1
                lb = 8 * eps * terms.mean() * 4
                gb = 8 * eps * (1 + _abs(t)) / N
            else:
                r = _abs(o - t)
                terms = r * r if name == "mse" else r
                lb = 8 * eps * terms.mean()
                gb = 8 * eps * (r + 1) / N
            lb = lb + 8 * (N + 2) * np.finfo(np.float64).eps * (terms.mean() if N else 0)
            gb = gb + 8 * SUB[dtype]
        return float(lb), gb

    run_and_compare("loss_forward_backward", (name,), specs, ("output", "target"), dt, bound)


# ---------------------------------------------------------------- optimizer steps
def opt_shape(data):
    ndim = data.draw(st.sampled_from((1, 1, 2, 2, 3, 0)))
    return tuple(data.draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim)))


def state_arr(data, shape, dt, bad, *, mode=None):
    """A state buffer: a C array, or with ``bad`` None or a corrupted array."""
    if bad and data.draw(st.booleans()):
        return None
    return data.draw(arr(shape, dt, bad=bad, inplace=True, mode=mode))


def maybe_alias(data, specs, key, targets, bad):
    """With ``bad``, sometimes make ``specs[key]`` the same object as another argument."""
    if bad and data.draw(st.booleans()):
        options = [t for t in targets if isinstance(specs.get(t), Arr)]
        if options:
            specs[key] = Alias(data.draw(st.sampled_from(options)))


def _sqrt_err(x, dx):
    """max |sqrt(x + d) - sqrt(x)| over |d| <= dx (x >= 0)."""
    r = np.sqrt(np.maximum(x, 0.0))
    return np.minimum(np.sqrt(dx), dx / r)


def _quot_err(n, dn, den, dden):
    """max |(n + a)/(den + b) - n/den| over |a| <= dn, |b| <= dden (|den| > dden)."""
    return (dn + np.abs(n) * dden / np.abs(den)) / (np.abs(den) - dden)


def _opt_errors(fname, a, before):
    """First-order rounding-error bounds of every in-place output of one optimizer
    step, propagated through the step's formulas in float64 (|.| of each rounded
    quantity times c*eps), and the mask of elements whose denominator is within its
    own error of zero (there x/0 vs 0/0 -- inf vs NaN -- is decided by rounding, e.g.
    float32 1 - beta1 for beta1 < 6e-8, so those elements are left unconstrained).

    Likewise PyTorch's lerp (Adam's first moment, centered RMSprop's grad average)
    takes its weight w = 1 - beta in the buffer's precision: for a float32 buffer and
    0 < beta < 6e-8, 1 - float32(w) is exactly 0 in the kernel but beta in the
    reference, so an infinite old moment gives inf*0 = NaN in one and inf in the other
    (ops agrees with torch.lerp here); such elements are left unconstrained too."""
    p0 = _f64(before["p"])
    dtype = before["p"].dtype
    c = 16 * EPS[dtype]
    g = _f64(a["g"])
    st_ = {k: (None if before.get(k) is None else _f64(before[k]))
           for k in ("buf", "sum_sq", "sq_avg", "grad_avg", "m", "v", "vmax")}
    lr, wd = float(a["lr"]), float(a["weight_decay"])
    out, free = {}, np.zeros(p0.shape, dtype=bool)
    lost = {}                                # per output: elements left unconstrained

    def lerp_lost(beta, old):
        """Where lerp(old, d, 1 - beta) gives inf*0 in float32 but inf*beta in float64."""
        if dtype == np.float32 and beta != 0 and float(np.float32(1.0 - beta)) == 1.0:
            return ~np.isfinite(old)
        return np.zeros(old.shape, dtype=bool)
    coupled = wd != 0 and not (fname == "adam_step" and a["decoupled"])
    d = g + wd * p0 if coupled else g
    dd = c * (np.abs(g) + wd * np.abs(p0)) if coupled else 0.0 * g
    if fname == "sgd_step":
        mu, keep = float(a["momentum"]), 1.0 - float(a["dampening"])
        direction, ddir = d, dd
        if mu != 0:
            if a["first_step"]:
                b, db = d, dd
            else:
                b = mu * st_["buf"] + keep * d
                db = c * (mu * np.abs(st_["buf"]) + abs(keep) * np.abs(d)) + abs(keep) * dd
            out["buf"] = db
            if a["nesterov"]:
                direction = d + mu * b
                ddir = dd + mu * db + c * (np.abs(d) + mu * np.abs(b))
            else:
                direction, ddir = b, db
        out["p"] = c * (np.abs(p0) + lr * np.abs(direction)) + lr * ddir
        return out, free, lost
    if fname == "adagrad_step":
        s = st_["sum_sq"] + d * d
        ds = c * (np.abs(st_["sum_sq"]) + d * d) + 2 * np.abs(d) * dd
        den = np.sqrt(s) + float(a["eps"])
        dden = _sqrt_err(s, ds) + c * np.abs(den)
        free = ~(np.abs(den) > dden)
        q = d / den
        out["sum_sq"] = ds
        out["p"] = c * (np.abs(p0) + lr * np.abs(q)) + lr * _quot_err(d, dd, den, dden)
        return out, free, lost
    if fname == "rmsprop_step":
        al = float(a["alpha"])
        v = al * st_["sq_avg"] + (1 - al) * d * d
        dv = c * (al * np.abs(st_["sq_avg"]) + (1 - al) * d * d) + 2 * (1 - al) * np.abs(d) * dd
        out["sq_avg"] = dv
        x, dx = v, dv
        if a["centered"]:
            ga0 = st_["grad_avg"]
            ga = ga0 + (1 - al) * (d - ga0)
            dga = c * (np.abs(ga0) + np.abs(d)) + dd
            out["grad_avg"] = dga
            lost["grad_avg"] = lerp_lost(al, ga0)
            free = free | lost["grad_avg"]
            x = v - ga * ga
            dx = dv + 2 * np.abs(ga) * dga + dga * dga + c * (np.abs(v) + ga * ga)
        den = np.sqrt(x) + float(a["eps"])
        dden = _sqrt_err(x, dx) + c * np.abs(den)
        free = free | ~(np.abs(den) > dden)
        q, dq = d / den, _quot_err(d, dd, den, dden)
        stepv, dstep = q, dq
        mu = float(a["momentum"])
        if mu > 0:
            stepv = mu * st_["buf"] + q
            dstep = c * (mu * np.abs(st_["buf"]) + np.abs(q)) + dq
            out["buf"] = dstep
        out["p"] = c * (np.abs(p0) + lr * np.abs(stepv)) + lr * dstep
        return out, free, lost
    # adam_step
    b1, b2, step = float(a["beta1"]), float(a["beta2"]), float(a["step"])
    folded = a["eps_mode"] == "folded"
    bc1, bc2 = 1.0 - b1 ** step, math.sqrt(1.0 - b2 ** step)
    ss = lr * bc2 / bc1 if folded else lr / bc1
    pp = p0 * (1 - lr * wd) if (wd != 0 and a["decoupled"]) else p0
    m = b1 * st_["m"] + (1 - b1) * d
    dm = c * (np.abs(st_["m"]) + np.abs(d)) + dd
    v = b2 * st_["v"] + (1 - b2) * d * d
    dv = c * (b2 * np.abs(st_["v"]) + (1 - b2) * d * d) + 2 * (1 - b2) * np.abs(d) * dd
    out["m"], out["v"] = dm, dv
    if not folded:
        lost["m"] = lerp_lost(b1, st_["m"])
    vhat = v
    if a["amsgrad"]:
        vhat = np.maximum(st_["vmax"], v)
        out["vmax"] = dv
    root = np.sqrt(vhat) if folded else np.sqrt(vhat) / bc2
    droot = (_sqrt_err(vhat, dv) if folded else _sqrt_err(vhat, dv) / bc2) + c * np.abs(root)
    den = root + float(a["eps"])
    dden = droot + c * np.abs(den)
    free = ~(np.abs(den) > dden) | lost.get("m", False)
    q = m / den
    out["p"] = c * (2 * np.abs(pp) + ss * np.abs(q)) + ss * _quot_err(m, dm, den, dden)
    return out, free, lost


def opt_bound(fname, keys):
    """Element-wise bounds for the in-place results (see ``_opt_errors``); NaN marks an
    unconstrained element."""
    def bound(_, a_ref, before):
        with np.errstate(all="ignore"):
            errs, free, lost = _opt_errors(fname, a_ref, before)
            out = {}
            for k in keys:
                after = a_ref.get(k)
                if not isinstance(after, np.ndarray) or after.dtype not in FLOATS:
                    continue
                b = np.nan_to_num(np.broadcast_to(_f64(errs.get(k, 0.0)), after.shape), nan=np.inf)
                b = b + 16 * EPS[after.dtype] * _abs(after) + 8 * SUB[after.dtype]
                if k in ("p", "buf"):
                    b = np.where(np.broadcast_to(free, after.shape), np.nan, b)
                if k in lost:
                    b = np.where(np.broadcast_to(lost[k], after.shape), np.nan, b)
                out[k] = b
        return out
    return bound


lr_valid = st.one_of(st.floats(0, 1), st.sampled_from((0.0, 1e-3, 1e6, 1e-300)))
unit = st.floats(0, 1)
unit_open = st.floats(0, 1, exclude_max=True)
small_pos = st.one_of(st.floats(0, 1), st.sampled_from((0.0, 1e-8, 1e-300)))


@FUZZ
@given(data=st.data())
def test_fuzz_sgd_step(data):
    dt = data.draw(float_dtypes)
    shape = opt_shape(data)
    bad = data.draw(corrupted(("p", "g", "buf", "lr", "momentum", "dampening", "weight_decay")))
    specs = {"p": data.draw(arr(shape, dt, bad="p" in bad, inplace=True)),
             "g": data.draw(arr(shape, dt, bad="g" in bad)),
             "buf": state_arr(data, shape, dt, "buf" in bad)}
    maybe_alias(data, specs, "buf", ["p"], "buf" in bad)
    maybe_alias(data, specs, "g", ["p", "buf"], "g" in bad)
    kw = dict(lr=data.draw(hyper(lr_valid, "lr" in bad)),
              momentum=data.draw(hyper(unit, "momentum" in bad)),
              dampening=data.draw(hyper(unit, "dampening" in bad)), nesterov=data.draw(FLAGS),
              weight_decay=data.draw(hyper(small_pos, "weight_decay" in bad)),
              first_step=data.draw(FLAGS))
    if kw["nesterov"] and not bad:   # nesterov needs momentum > 0 and no dampening
        kw["momentum"], kw["dampening"] = max(kw["momentum"], 0.5), 0.0
    note(f"specs={specs} kwargs={kw}")
    run_and_compare("sgd_step", (), specs, ("p", "g", "buf"), dt, opt_bound("sgd_step", ("p", "buf")),
                    kw_specs=kw, inplace=("p", "buf"))


@FUZZ
@given(data=st.data())
def test_fuzz_adagrad_step(data):
    dt = data.draw(float_dtypes)
    shape = opt_shape(data)
    bad = data.draw(corrupted(("p", "g", "sum_sq", "lr", "eps", "weight_decay")))
    specs = {"p": data.draw(arr(shape, dt, bad="p" in bad, inplace=True)),
             "g": data.draw(arr(shape, dt, bad="g" in bad)),
             "sum_sq": state_arr(data, shape, dt, "sum_sq" in bad,
                                 mode=data.draw(st.sampled_from(("positive", "zeros", None))))}
    maybe_alias(data, specs, "sum_sq", ["p"], "sum_sq" in bad)
    maybe_alias(data, specs, "g", ["p", "sum_sq"], "g" in bad)
    kw = dict(lr=data.draw(hyper(lr_valid, "lr" in bad)),
              eps=data.draw(hyper(small_pos, "eps" in bad)),
              weight_decay=data.draw(hyper(small_pos, "weight_decay" in bad)))
    note(f"specs={specs} kwargs={kw}")
    run_and_compare("adagrad_step", (), specs, ("p", "g", "sum_sq"), dt, opt_bound("adagrad_step", ("p", "sum_sq")),
                    kw_specs=kw, inplace=("p", "sum_sq"))


@FUZZ
@given(data=st.data())
def test_fuzz_rmsprop_step(data):
    dt = data.draw(float_dtypes)
    shape = opt_shape(data)
    bad = data.draw(corrupted(("p", "g", "sq_avg", "buf", "grad_avg", "lr", "alpha", "eps",
                               "momentum", "weight_decay")))
    specs = {"p": data.draw(arr(shape, dt, bad="p" in bad, inplace=True)),
             "g": data.draw(arr(shape, dt, bad="g" in bad)),
             "sq_avg": state_arr(data, shape, dt, "sq_avg" in bad,
                                 mode=data.draw(st.sampled_from(("positive", "zeros", None)))),
             "buf": state_arr(data, shape, dt, "buf" in bad),
             "grad_avg": state_arr(data, shape, dt, "grad_avg" in bad)}
    maybe_alias(data, specs, "buf", ["p", "sq_avg"], "buf" in bad)
    maybe_alias(data, specs, "g", ["p", "sq_avg", "buf", "grad_avg"], "g" in bad)
    kw = dict(lr=data.draw(hyper(lr_valid, "lr" in bad)),
              alpha=data.draw(hyper(unit, "alpha" in bad)),
              eps=data.draw(hyper(small_pos, "eps" in bad)),
              momentum=data.draw(hyper(unit, "momentum" in bad)),
              centered=data.draw(FLAGS),
              weight_decay=data.draw(hyper(small_pos, "weight_decay" in bad)))
    note(f"specs={specs} kwargs={kw}")
    run_and_compare("rmsprop_step", (), specs, ("p", "g", "sq_avg", "buf", "grad_avg"), dt,
                    opt_bound("rmsprop_step", ("p", "sq_avg", "buf", "grad_avg")), kw_specs=kw,
                    inplace=("p", "sq_avg", "buf", "grad_avg"))


@FUZZ
@given(data=st.data())
def test_fuzz_adam_step(data):
    dt = data.draw(float_dtypes)
    shape = opt_shape(data)
    bad = data.draw(corrupted(("p", "g", "m", "v", "vmax", "step", "lr", "beta1", "beta2", "eps",
                               "weight_decay", "eps_mode")))
    specs = {"p": data.draw(arr(shape, dt, bad="p" in bad, inplace=True)),
             "g": data.draw(arr(shape, dt, bad="g" in bad)),
             "m": state_arr(data, shape, dt, "m" in bad),
             "v": state_arr(data, shape, dt, "v" in bad,
                            mode=data.draw(st.sampled_from(("positive", "zeros", None)))),
             "vmax": state_arr(data, shape, dt, "vmax" in bad,
                               mode=data.draw(st.sampled_from(("positive", "zeros", None))))}
    if "vmax" not in bad and data.draw(st.booleans()):
        specs["vmax"] = None          # allowed unless amsgrad
    maybe_alias(data, specs, "vmax", ["p", "m", "v"], "vmax" in bad)
    maybe_alias(data, specs, "g", ["p", "m", "v", "vmax"], "g" in bad)
    step = data.draw(st.sampled_from((0, -1, 1.0, True, None, "1", np.float64(2.0), HUGE_INT))
                     if "step" in bad else
                     st.one_of(st.integers(1, 10), st.integers(1, 10**6),
                               st.sampled_from((2**62, 2**63, 2**64, np.int64(3), np.uint8(2)))))
    kw = dict(step=step, lr=data.draw(hyper(lr_valid, "lr" in bad)),
              beta1=data.draw(hyper(unit_open, "beta1" in bad)),
              beta2=data.draw(hyper(unit_open, "beta2" in bad)),
              eps=data.draw(hyper(small_pos, "eps" in bad)),
              weight_decay=data.draw(hyper(small_pos, "weight_decay" in bad)),
              decoupled=data.draw(FLAGS), amsgrad=data.draw(FLAGS),
              eps_mode=data.draw(st.sampled_from(("Paper", None, 1, "", b"paper") if "eps_mode" in bad
                                                 else ("paper", "folded"))))
    if kw["amsgrad"] and specs["vmax"] is None and not bad:
        kw["amsgrad"] = False
    note(f"specs={specs} kwargs={kw}")
    run_and_compare("adam_step", (), specs, ("p", "g", "m", "v", "vmax"), dt,
                    opt_bound("adam_step", ("p", "m", "v", "vmax")), kw_specs=kw,
                    inplace=("p", "m", "v", "vmax"))


# ---------------------------------------------------------------- known bugs (regressions)
def _both(fname, *args, **kwargs):
    """(outcome of ops, outcome of reference) on separate copies of array arguments."""
    def copies():
        return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args), \
            {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    a1, k1 = copies()
    a2, k2 = copies()
    return (_call_ops(getattr(ops, fname), a1, k1), a1), (_call_ref(getattr(reference, fname), a2, k2), a2)


@pytest.mark.parametrize("fname, extra", [
    ("sgd_step", dict(lr=10**400)),
    ("adagrad_step", dict(lr=0.1, eps=10**400)),
    ("adam_step", dict(lr=0.1, step=10**400)),
])
def test_regression_huge_int_hyperparameter(fname, extra):
    p, g, s = np.ones(3), np.ones(3), np.zeros(3)
    args = {"sgd_step": (p, g, None), "adagrad_step": (p, g, s),
            "adam_step": (p, g, s, s.copy(), None)}[fname]
    (o_ops, _), (o_ref, _) = _both(fname, *args, **extra)
    assert o_ops[0] == "err" and type(o_ops[1]) is ValueError, o_ops
    assert o_ref[0] == "err" and type(o_ref[1]) is ValueError, o_ref


def test_regression_gradient_aliasing_param_adamw():
    """g sharing memory with p is refused alike by ops and the reference."""
    for mod in (ops, reference):
        p = np.linspace(-1.0, 1.0, 5)
        m, v = np.full(5, 0.3), np.full(5, 0.3)
        with pytest.raises(ValueError, match="share memory"):
            mod.adam_step(p, p, m, v, None, step=3, lr=0.1, weight_decay=0.5, decoupled=True)


def test_regression_gradient_aliasing_state_rmsprop():
    """g sharing memory with a state array is refused alike by ops and the reference."""
    for mod in (ops, reference):
        p = np.linspace(-1.0, 1.0, 5)
        sq = np.full(5, 0.3)
        with pytest.raises(ValueError, match="share memory"):
            mod.rmsprop_step(p, sq, sq, None, None, lr=0.1)


def test_regression_cross_entropy_labels_with_minus_inf_logit():
    out = np.array([[-np.inf, 0.0], [0.0, 0.0]])
    labels = np.array([1, 0])
    (o_ops, _), (o_ref, _) = _both("loss_forward_backward", "cross_entropy", out, labels)
    assert o_ops[0] == o_ref[0] == "ok"
    expected = 0.5 * math.log(2.0)      # sample 0 contributes 0, sample 1 log 2
    assert o_ops[1][0] == pytest.approx(expected, rel=tol(np.float64, "formula_rtol"))
    assert o_ref[1][0] == pytest.approx(expected, rel=tol(np.float64, "formula_rtol"))


def test_regression_flag_truth_value_evaluated_differently():
    p, g = np.ones(3), np.ones(3)
    (o_ops, _), (o_ref, _) = _both("sgd_step", p, g, None, lr=0.1, first_step=np.array([1, 2]))
    assert o_ops[0] == o_ref[0] == "err", (o_ops, o_ref)
    assert type(o_ops[1]) is type(o_ref[1]) is TypeError
