"""Compiled kernels (Cython). Private: use :mod:`fastbp.ops` instead."""
