"""Small synthetic data sets generated in the package (no downloads)."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["make_spirals"]


def make_spirals(n_samples: int = 1500, n_classes: int = 3, noise: float = 0.3,
                 seed: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved 2-D spirals, one arm per class: X (n, 2) float64, y (n,) int labels.

    Parameters
    ----------
    n_samples : int, default 1500
        The number of points, at least ``n_classes``; sample i has class
        i % n_classes.
    n_classes : int, default 3
        The number of arms (classes), at least 2.
    noise : float, default 0.3
        The standard deviation of the normal noise added to each point's angle
        (radians, >= 0).
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator, default 0
        Seeds ``numpy.random.default_rng``: the same seed gives the same data.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
        The points (float64), at radii in [0.05, 1).
    y : ndarray of shape (n_samples,)
        Their class labels, ints in [0, n_classes) (np.intp).

    Raises
    ------
    ValueError
        ``n_classes`` < 2, ``n_samples`` < ``n_classes``, or a negative ``noise``.
    """
    if n_samples < n_classes or n_classes < 2:
        raise ValueError(f"need n_classes >= 2 and n_samples >= n_classes, got "
                         f"n_samples={n_samples}, n_classes={n_classes}")
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % n_classes
    r = rng.uniform(0.05, 1.0, n_samples)
    theta = 10.0 * r + 2.0 * np.pi * y / n_classes + rng.normal(0.0, noise, n_samples)
    X = np.column_stack([r * np.sin(theta), r * np.cos(theta)])
    return X, y.astype(np.intp)
