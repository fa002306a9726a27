"""Action distributions written as plain tensor maths (no torch.distributions overhead).

Each head maps features to distribution parameters and implements sample / log_prob / entropy /
mode over them. `action_map` says how an action reaches the environment: "clip" to the Box
bounds, "scale" from [-1, 1] to the bounds, or "none".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_2PI = math.log(2 * math.pi)


class CategoricalHead(nn.Module):
    action_map = "none"

    def __init__(self, in_dim: int, n: int, gain: float = 0.01):
        super().__init__()
        self.logits = nn.Linear(in_dim, n)
        nn.init.orthogonal_(self.logits.weight, gain)
        nn.init.zeros_(self.logits.bias)

    def forward(self, h: Tensor) -> Tensor:
        return F.log_softmax(self.logits(h), dim=-1)  # [N, n] normalised log-probabilities

    def sample(self, logp_all: Tensor) -> Tensor:
        return torch.multinomial(logp_all.exp(), 1).squeeze(-1)

    def log_prob(self, logp_all: Tensor, action: Tensor) -> Tensor:
        return logp_all.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, logp_all: Tensor) -> Tensor:
        return -(logp_all.exp() * logp_all).sum(-1)

    def mode(self, logp_all: Tensor) -> Tensor:
        return logp_all.argmax(-1)


class MultiCategoricalHead(nn.Module):
    """Independent categoricals, one per MultiDiscrete dimension."""

    action_map = "none"

    def __init__(self, in_dim: int, nvec: list[int], gain: float = 0.01):
        super().__init__()
        self.nvec = list(nvec)
        self.logits = nn.Linear(in_dim, sum(self.nvec))
        nn.init.orthogonal_(self.logits.weight, gain)
        nn.init.zeros_(self.logits.bias)

    def forward(self, h: Tensor) -> tuple[Tensor, ...]:
        return tuple(F.log_softmax(x, -1) for x in self.logits(h).split(self.nvec, dim=-1))

    def sample(self, parts: tuple[Tensor, ...]) -> Tensor:
        return torch.stack([torch.multinomial(p.exp(), 1).squeeze(-1) for p in parts], -1)

    def log_prob(self, parts: tuple[Tensor, ...], action: Tensor) -> Tensor:
        a = action.long()
        return sum(p.gather(-1, a[..., i : i + 1]).squeeze(-1) for i, p in enumerate(parts))

    def entropy(self, parts: tuple[Tensor, ...]) -> Tensor:
        return sum(-(p.exp() * p).sum(-1) for p in parts)

    def mode(self, parts: tuple[Tensor, ...]) -> Tensor:
        return torch.stack([p.argmax(-1) for p in parts], -1)


class GaussianHead(nn.Module):
    """Diagonal Gaussian with a state-independent log std (PPO/A2C, as in SB3 and baselines)."""

    action_map = "clip"

    def __init__(self, in_dim: int, act_dim: int, log_std_init: float = 0.0, gain: float = 0.01):
        super().__init__()
        self.mean = nn.Linear(in_dim, act_dim)
        nn.init.orthogonal_(self.mean.weight, gain)
        nn.init.zeros_(self.mean.bias)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        mean = self.mean(h)
        return mean, self.log_std.expand_as(mean)

    def sample(self, params: tuple[Tensor, Tensor]) -> Tensor:
        mean, log_std = params
        return mean + log_std.exp() * torch.randn_like(mean)

    def log_prob(self, params: tuple[Tensor, Tensor], action: Tensor) -> Tensor:
        mean, log_std = params
        z = (action - mean) * (-log_std).exp()
        return (-0.5 * z.square() - log_std - 0.5 * LOG_2PI).sum(-1)

    def entropy(self, params: tuple[Tensor, Tensor]) -> Tensor:
        return (0.5 + 0.5 * LOG_2PI + params[1]).sum(-1)

    def mode(self, params: tuple[Tensor, Tensor]) -> Tensor:
        return params[0]


class TanhGaussianHead(nn.Module):
    """Gaussian squashed by tanh, state-dependent std (SAC; Haarnoja et al. 2018, appendix C)."""

    action_map = "scale"
    LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # as the authors' code and SB3

    def __init__(self, in_dim: int, act_dim: int, log_std_init: float = 0.0):
        super().__init__()
        self.out = nn.Linear(in_dim, 2 * act_dim)
        with torch.no_grad():
            self.out.bias[act_dim:].fill_(log_std_init)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.out(h).chunk(2, dim=-1)
        return mean, log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    def rsample(self, params: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """A reparameterised action in (-1, 1) and its log-probability (eq. 21)."""
        mean, log_std = params
        noise = torch.randn_like(mean)
        u = mean + log_std.exp() * noise
        action = torch.tanh(u)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), numerically stable
        correction = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
        logp = (-0.5 * noise.square() - log_std - 0.5 * LOG_2PI - correction).sum(-1)
        return action, logp

    def sample(self, params: tuple[Tensor, Tensor]) -> Tensor:
        return self.rsample(params)[0]

    def mode(self, params: tuple[Tensor, Tensor]) -> Tensor:
        return torch.tanh(params[0])
