"""Small array helpers for drawing from a chunk's random stream."""

from __future__ import annotations

import numpy as np

from ingestion.synthetic.world import US_PER_SEC, FloatArr, IntArr


def sigmoid(x: FloatArr) -> FloatArr:
    return 1.0 / (1.0 + np.exp(-x))


def uniforms(
    rng: np.random.Generator, n: int, spec: dict[str, int], rows: IntArr | None = None
) -> dict[str, FloatArr]:
    """One block of uniforms, cut into named columns.

    The block always has n rows whatever the state, so the stream stays aligned; `rows`
    then keeps only the rows the caller needs.
    """
    block = rng.random((n, sum(spec.values())))
    if rows is not None:
        block = block[rows]
    out: dict[str, FloatArr] = {}
    col = 0
    for name, width in spec.items():
        out[name] = block[:, col] if width == 1 else block[:, col : col + width]
        col += width
    return out


def pick(cdf: FloatArr, u: FloatArr) -> IntArr:
    """Inverse-CDF draw: cdf is (k,) or (n, k), u is (n,) or (n, w)."""
    if cdf.ndim == 1:
        return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1).astype(np.int64)
    if u.ndim == 1:
        return np.minimum((u[:, None] >= cdf).sum(axis=1), cdf.shape[1] - 1).astype(np.int64)
    return np.minimum((u[:, :, None] >= cdf[:, None, :]).sum(axis=2), cdf.shape[1] - 1).astype(
        np.int64
    )


def whole_seconds(us: FloatArr) -> IntArr:
    return (np.floor(us / US_PER_SEC) * US_PER_SEC).astype(np.int64)
