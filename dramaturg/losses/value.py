"""State-value losses."""

from __future__ import annotations

import torch
from torch import Tensor


def value_mse(values: Tensor, returns: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Mean squared error to the return targets."""
    loss = (values - returns).square().mean()
    return loss, {"loss/value": loss.detach()}


def clipped_value(
    values: Tensor, values_old: Tensor, returns: Tensor, *, clip: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's clipped value loss: the worse of the raw and the clipped prediction's error
    (Schulman et al. 2017, baselines ppo2; Andrychowicz et al. 2021, sec. 3.2)."""
    clipped = values_old + (values - values_old).clamp(-clip, clip)
    loss = torch.maximum((values - returns).square(), (clipped - returns).square()).mean()
    return loss, {"loss/value": loss.detach()}
