"""Policy-gradient losses."""

from __future__ import annotations

import torch
from torch import Tensor


def policy_gradient(logp: Tensor, advantages: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Vanilla policy gradient, -E[log pi(a|s) A] (Williams 1992; A2C, Mnih et al. 2016)."""
    loss = -(logp * advantages).mean()
    return loss, {"loss/policy": loss.detach()}


def ppo_clip(
    logp: Tensor, logp_old: Tensor, advantages: Tensor, *, clip_eps: float | Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate objective (Schulman et al. 2017, eq. 7), negated to be minimised."""
    log_ratio = logp - logp_old.detach()
    ratio = log_ratio.exp()
    surrogate = torch.minimum(
        ratio * advantages, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages
    )
    loss = -surrogate.mean()
    with torch.no_grad():
        metrics = {
            "loss/policy": loss.detach(),
            # k3 estimator of KL(old || new) (Schulman 2020, "Approximating KL divergence")
            "train/approx_kl": ((ratio - 1.0) - log_ratio).mean(),
            "train/clip_fraction": ((ratio - 1.0).abs() > clip_eps).float().mean(),
        }
    return loss, metrics


def entropy_bonus(entropy: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """-E[H(pi(.|s))]: minimising it raises entropy."""
    loss = -entropy.mean()
    return loss, {"train/entropy": -loss.detach()}
