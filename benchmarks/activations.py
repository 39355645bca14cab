"""The element-wise activations over a 128 × 512 array: float32 (evaluated in float,
_vmath.h) against float64 (in double, which is also what float32 cost before its
float kernels), forward and backward through ``fastbp.ops``, median µs of 7 rounds.

    env -u OPENBLAS_CORETYPE python benchmarks/activations.py
"""
from __future__ import annotations

import os
import platform
import timeit
from datetime import date

import numpy as np

from fastbp import ops

ACTS = ("tanh", "sigmoid", "silu", "elu", "softplus", "gelu")


def _median_us(fn, number: int = 200) -> float:
    return float(np.median(timeit.repeat(fn, number=number, repeat=7))) / number * 1e6


def main() -> None:
    rng = np.random.default_rng(0)
    Z32 = rng.normal(size=(128, 512)).astype(np.float32)
    Z64 = Z32.astype(np.float64)
    cpu = platform.processor() or platform.machine()
    print(f"activations over 128 x 512, median µs, {date.today()}, {cpu}, "
          f"{os.cpu_count()} cores")
    print("| activation | forward f32 | forward f64 | f64 / f32 | backward f32 | backward f64 "
          "| f64 / f32 |")
    print("|---|---|---|---|---|---|---|")
    for act in ACTS:
        times = []
        for Z in (Z32, Z64):
            A = ops.activation_forward(act, Z)
            dA = np.ones_like(Z)
            times.append((_median_us(lambda: ops.activation_forward(act, Z)),
                          _median_us(lambda: ops.activation_backward(act, Z, A, dA))))
        (f32, b32), (f64, b64) = times
        print(f"| {act} | {f32:.1f} | {f64:.1f} | {f64 / f32:.1f}x | {b32:.1f} | {b64:.1f} | "
              f"{b64 / b32:.1f}x |")


if __name__ == "__main__":
    main()
