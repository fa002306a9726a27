"""Critics: V(s), and an ensemble of Q(s, a) evaluated as one batched matrix product."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from dramaturg.nn.mlp import ACTIVATIONS, flatten_obs, mlp
from dramaturg.types import Obs


class ValueCritic(nn.Module):
    def __init__(self, obs_dim: int, hidden: Sequence[int], *, activation: str = "tanh", ortho_init: bool = True):
        super().__init__()
        self.net = mlp(obs_dim, hidden, 1, activation=activation, ortho_init=ortho_init, out_gain=1.0)

    def forward(self, obs: Obs) -> Tensor:
        return self.net(flatten_obs(obs)).squeeze(-1)  # [N]


class QEnsemble(nn.Module):
    """E independent Q-networks whose layers are stacked: one `baddbmm` per layer for all members.

    Each member is initialised like `nn.Linear` (Kaiming-uniform weights, uniform biases).
    """

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: Sequence[int], *, members: int = 2, activation: str = "relu"
    ):
        super().__init__()
        dims = [obs_dim + act_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims, dims[1:]):
            bound = 1.0 / math.sqrt(a)
            self.weights.append(nn.Parameter(torch.empty(members, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, b).uniform_(-bound, bound)))
        self.activation = ACTIVATIONS[activation]()
        self.members = members

    def forward(self, obs: Obs, action: Tensor, *, detach_params: bool = False) -> Tensor:
        """Q-values [E, N]; `detach_params` lets gradients reach the inputs but not the weights."""
        x = torch.cat([flatten_obs(obs), action], dim=-1)  # [N, in]
        x = x.unsqueeze(0).expand(self.members, -1, -1)  # [E, N, in]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if detach_params:
                w, b = w.detach(), b.detach()
            x = torch.baddbmm(b, x, w)  # [E, N, out]
            if i < last:
                x = self.activation(x)
        return x.squeeze(-1)  # [E, N]


class MultiValueCritic(nn.Module):
    """K state values V_k(s), one per reward component, as one [N, K] output (multi-critic
    learning, SLIM): K separate networks, or `shared` one trunk with K linear value heads."""

    def __init__(
        self, obs_dim: int, hidden: Sequence[int], heads: int, *, shared: bool = False, activation: str = "tanh", ortho_init: bool = True
    ):
        super().__init__()
        self.shared = mlp(obs_dim, hidden, heads, activation=activation, ortho_init=ortho_init, out_gain=1.0) if shared else None
        self.critics = nn.ModuleList(
            [] if shared else [ValueCritic(obs_dim, hidden, activation=activation, ortho_init=ortho_init) for _ in range(heads)]
        )

    def forward(self, obs: Obs) -> Tensor:
        if self.shared is not None:
            return self.shared(flatten_obs(obs))  # [N, K]
        return torch.stack([critic(obs) for critic in self.critics], -1)  # [N, K]
