"""Serving cost from a GPU-hour price."""

from __future__ import annotations

import numpy as np

SECONDS_PER_HOUR = 3600.0


def cost_per_million_tokens_usd(gpu_hour_usd: float, gpus, output_tokens_per_s) -> np.ndarray:
    """$ per million output tokens = price x GPUs / (output tokens/s x 3600) x 1e6 (inf without output).
    ``gpus``: the GPUs the deployment ties up (stranded ones included: they are paid for)."""
    thr = np.asarray(output_tokens_per_s, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(thr > 0, gpu_hour_usd * np.asarray(gpus, dtype=np.float64) / (thr * SECONDS_PER_HOUR) * 1e6,
                        np.inf)
