"""Which BLAS gives a training step's matrix products fastest, on this machine?

    cd /tmp; env -u OPENBLAS_CORETYPE python /path/to/benchmarks/blas_routes.py [--threads 1]

Times the products of one step of the benchmark's workloads (the GEMM floor of
``python -m fastbp bench``: forward, dW and dX of every layer) in C, with no
Python in the loop, through every BLAS a wheel could depend on that is installed:

* SciPy's OpenBLAS, what fastbp calls through ``scipy.linalg.cython_blas``;
* NumPy's OpenBLAS (64-bit integers), what the GEMM floor "NumPy BLAS" uses;
* the ``scipy-openblas32`` wheel (the newest OpenBLAS that NumPy and SciPy build
  against), if installed;
* BLIS from the ``blis`` package (its typed API, row-major strides), if installed.

The libraries' runs are interleaved, several rounds, and each figure is the
median of its rounds. Needs a C compiler (``cc``). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# name: (dtype, batch, sizes), as fastbp.bench.WORKLOADS defines them
SHAPES = {
    "W2": ("s", 32, (64, 32, 10)),
    "W3": ("s", 64, (784, 128, 10)),
    "W4": ("s", 256, (784, 1024, 1024, 10)),
    "W5": ("d", 64, (784, 128, 10)),
    "W9": ("s", 512, (256, 2048, 10)),
    "W10": ("d", 128, (20, 100, 50, 1)),
    "W11": ("s", 64, (32, 64, 64, 64, 64, 64, 64, 4)),
}


def libraries() -> list[tuple[str, str, str, str]]:
    """(label, path, symbol prefix, ILP64 flag) of each BLAS found."""
    import numpy
    import scipy

    site = os.path.dirname(os.path.dirname(numpy.__file__))
    found = []
    for label, pattern, prefix, ilp64 in (
            (f"SciPy {scipy.__version__}'s OpenBLAS",
             os.path.join(site, "scipy.libs", "libscipy_openblas*.so*"), "scipy_", "0"),
            (f"NumPy {numpy.__version__}'s OpenBLAS",
             os.path.join(site, "numpy.libs", "libscipy_openblas64_*.so*"), "scipy_", "1"),
            ("scipy-openblas32", os.path.join(site, "scipy_openblas32", "lib",
                                              "libscipy_openblas.so"), "scipy_", "0"),
            ("BLIS (blis package)", os.path.join(site, "blis", "cy.*.so"), "bli", "0")):
        paths = sorted(glob.glob(pattern))
        if paths:
            found.append((label, paths[0], prefix, ilp64))
    return found


def build(workdir: str) -> str:
    """Compile gemm_routes.c; linked to libpython so that BLIS's extension module loads."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        sys.exit("blas_routes.py needs a C compiler (cc)")
    exe = os.path.join(workdir, "gemm_routes")
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    version = sysconfig.get_config_var("LDVERSION") or sysconfig.get_python_version()
    cmd = [cc, "-O2", "-o", exe, os.path.join(HERE, "gemm_routes.c"), "-ldl"]
    if glob.glob(os.path.join(libdir, f"libpython{version}.so*")):
        cmd += ["-Wl,--no-as-needed", f"-L{libdir}", f"-lpython{version}", f"-Wl,-rpath,{libdir}"]
    subprocess.run(cmd, check=True)
    return exe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workloads", default=",".join(SHAPES))
    args = parser.parse_args()
    names = [n.strip().upper() for n in args.workloads.split(",") if n.strip()]
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {list(SHAPES)}")
    libs = libraries()
    env = dict(os.environ, NTH=str(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(tmp)
        rows = []
        for name in names:
            dtype, batch, sizes = SHAPES[name]
            times: dict[str, list[float]] = {label: [] for label, *_ in libs}
            for _ in range(args.rounds):
                for label, path, prefix, ilp64 in libs:
                    out = subprocess.run([exe, path, prefix, ilp64, dtype, str(batch),
                                          *map(str, sizes)], env=env, capture_output=True,
                                         text=True)
                    if out.returncode == 0:
                        times[label].append(float(out.stdout))
            med = {k: statistics.median(v) for k, v in times.items() if v}
            base = med.get(libs[0][0])
            cells = [f"{med[k]:.1f} ({med[k] / base:.2f})" if k in med and base else "-"
                     for k, *_ in libs]
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
            print(rows[-1], file=sys.stderr, flush=True)
    from fastbp._kernels._blas import blas_name

    print(f"µs per step's products at {args.threads} thread(s), median of {args.rounds} "
          f"interleaved rounds (ratio to SciPy's OpenBLAS); fastbp calls {blas_name()}'s "
          "(fastbp/_blas_route.py)\n")
    print("| workload | " + " | ".join(label for label, *_ in libs) + " |")
    print("|---|" + "---|" * len(libs))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
