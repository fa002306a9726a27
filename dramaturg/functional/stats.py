"""Running statistics."""

from __future__ import annotations

import torch
from torch import Tensor


def update_moments(mean, var, count, batch):
    """Merge a batch [N, *shape] into running (mean, var, count) (Chan et al. 1979, parallel form).

    Works on torch tensors and on numpy arrays alike."""
    if isinstance(batch, Tensor):
        batch = batch.to(mean.dtype)
        batch_mean, batch_var = batch.mean(0), batch.var(0, unbiased=False)
    else:
        batch_mean, batch_var = batch.mean(0), batch.var(0)
    n = batch.shape[0]
    delta = batch_mean - mean
    total = count + n
    new_mean = mean + delta * (n / total)
    m2 = var * count + batch_var * n + delta * delta * (count * n / total)
    return new_mean, m2 / total, total


def explained_variance(pred: Tensor, target: Tensor) -> Tensor:
    """1 - Var[target - pred] / Var[target]; 1 is perfect, 0 is no better than the mean."""
    var = target.var()
    return torch.where(var > 0, 1.0 - (target - pred).var() / var, torch.zeros_like(var))
