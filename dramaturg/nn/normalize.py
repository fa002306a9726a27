"""Observation normalisation by running moments; its statistics travel with the policy."""

from __future__ import annotations

import torch
from torch import nn

from dramaturg.functional import update_moments
from dramaturg.types import Obs


class RunningNorm(nn.Module):
    """(x - mean) / sqrt(var + eps), clipped, as SB3's VecNormalize."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(eps, dtype=torch.float64))
        self.clip, self.eps = clip, eps

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        mean, var, count = update_moments(self.mean, self.var, self.count, x)
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.copy_(count)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = (self.var + self.eps).rsqrt()
        return ((x - self.mean) * scale).clamp(-self.clip, self.clip).to(torch.float32)


class ObsNormalizer(nn.Module):
    """Identity when disabled; otherwise one RunningNorm per observation (per key for Dict)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]] | tuple[int, ...] | None):
        super().__init__()
        self.enabled = shapes is not None
        if isinstance(shapes, dict):
            self.norms = nn.ModuleDict({k: RunningNorm(s) for k, s in shapes.items()})
        elif shapes is not None:
            self.norm = RunningNorm(shapes)

    def update(self, obs: Obs) -> None:
        if not self.enabled:
            return
        if isinstance(obs, dict):
            for k, norm in self.norms.items():
                norm.update(obs[k])
        else:
            self.norm.update(obs)

    def forward(self, obs: Obs) -> Obs:
        if not self.enabled:
            return obs
        if isinstance(obs, dict):
            return {k: self.norms[k](v) if k in self.norms else v for k, v in obs.items()}
        return self.norm(obs)
