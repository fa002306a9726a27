"""Target-network updates."""

from __future__ import annotations

import torch


@torch.no_grad()
def polyak_(target: list[torch.Tensor], online: list[torch.Tensor], tau: float) -> None:
    """target <- (1 - tau) * target + tau * online, in place, as one fused op over all tensors."""
    torch._foreach_lerp_(target, online, tau)
