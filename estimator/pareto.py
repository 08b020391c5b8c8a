"""Pareto fronts by mask (numpy only)."""

from __future__ import annotations

import numpy as np


def pareto_mask(x, y) -> np.ndarray:
    """True where no other point has ``x' >= x`` and ``y' >= y`` with one of them strictly greater
    (both maximised). Sort by x descending (ties: y descending); a point is on the front when its y
    exceeds every y seen before it. O(n log n)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((-y, -x))
    ys = y[order]
    prev = np.maximum.accumulate(np.r_[-np.inf, ys[:-1]])
    on = ys > prev
    mask = np.zeros(n, dtype=bool)
    mask[order] = on
    return mask
