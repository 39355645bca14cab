"""Build the compiled kernels in ``fastbp/_kernels``.

Everything that is static lives in ``pyproject.toml``; this file only holds
what needs code: one ``Extension`` per ``.pyx``, the compiler flags and the
Cython directives (set once, here, for every module).
"""
import os
import runpy
import sys
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

KERNELS = Path("fastbp") / "_kernels"

# FASTBP_CYTHON_DEBUG=1 turns the safety checks back on (a slower build that
# raises IndexError instead of reading out of bounds).
DEBUG = os.environ.get("FASTBP_CYTHON_DEBUG", "0") not in ("", "0")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "cdivision": True,
    "embedsignature": True,
}

if sys.platform == "win32":
    COMPILE_ARGS = ["/O2"]
else:
    # -fno-math-errno lets sqrt vectorise (we never read errno); -fno-trapping-math
    # lets branches on floats become blends (we never read FP exception flags);
    # neither changes a result. -ffp-contract=off
    # keeps a*b+c as two roundings, as NumPy computes it, so that the compiled
    # kernels agree with the reference to the last bit wherever the formulas match.
    COMPILE_ARGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
    if DEBUG:
        COMPILE_ARGS = ["-O1", "-g", "-ffp-contract=off"]
# Extra flags for sanitizer or profiling builds, e.g. "-fsanitize=address".
COMPILE_ARGS += os.environ.get("FASTBP_EXTRA_CFLAGS", "").split()
LINK_ARGS = os.environ.get("FASTBP_EXTRA_LDFLAGS", "").split()


def write_table():
    """_kernels/_table.h and _table.pxi from fastbp/_table.py, the one table of codes and
    constants (rewritten only when they change, so that an unchanged build stays cached)."""
    table = runpy.run_path(str(Path("fastbp") / "_table.py"))
    for name, text in (("_table.h", table["c_header"]()), ("_table.pxi", table["cython_include"]())):
        path = KERNELS / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def extensions():
    write_table()
    exts = []
    for pyx in sorted(KERNELS.glob("*.pyx")):
        name = ".".join(pyx.with_suffix("").parts)
        exts.append(
            Extension(
                name,
                [str(pyx)],
                include_dirs=[numpy.get_include(), str(KERNELS)],
                # the C headers the kernels include: a change to one rebuilds them
                depends=[str(h) for h in sorted(KERNELS.glob("*.h"))]
                + [str(KERNELS / "_table.pxi")],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_22_API_VERSION")],
                extra_compile_args=COMPILE_ARGS,
                extra_link_args=LINK_ARGS,
            )
        )
    return cythonize(exts, compiler_directives=DIRECTIVES, quiet=True)


setup(ext_modules=extensions())
