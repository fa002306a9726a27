"""Actors: an MLP torso over the flattened observation and an action head."""

from __future__ import annotations

from typing import Sequence

import gymnasium as gym
import torch
from torch import Tensor, nn

from dramaturg.nn.heads import (
    CategoricalHead,
    GaussianHead,
    GaussianMixtureHead,
    MultiCategoricalHead,
    TanhGaussianHead,
    TanhGaussianMixtureHead,
)
from dramaturg.nn.mlp import flatten_obs, mlp
from dramaturg.types import Obs


class StochasticActor(nn.Module):
    """pi(a|s): features from an MLP, then a distribution head chosen by the action space.

    `components` K asks for a Gaussian mixture over Box actions (PMOE, Ren et al. 2021) instead of
    one Gaussian; None keeps the single Gaussian. `obs_keys` names the keys of a Dict observation
    that the actor reads (an asymmetric actor-critic's actor); None reads them all.
    """

    def __init__(
        self,
        obs_dim: int,
        action_space: gym.Space,
        hidden: Sequence[int],
        *,
        activation: str = "tanh",
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        squash: bool = False,
        components: int | None = None,
        obs_keys: Sequence[str] | None = None,
    ):
        super().__init__()
        self.obs_keys = None if obs_keys is None else tuple(obs_keys)
        self.torso = mlp(obs_dim, hidden, None, activation=activation, ortho_init=ortho_init)
        width = hidden[-1] if hidden else obs_dim
        if isinstance(action_space, gym.spaces.Discrete):
            self.head: nn.Module = CategoricalHead(width, int(action_space.n))
        elif isinstance(action_space, gym.spaces.MultiDiscrete):
            self.head = MultiCategoricalHead(width, [int(n) for n in action_space.nvec])
        elif components is not None:
            if components < 1:
                raise ValueError(f"components = {components} is invalid: must be >= 1")
            mixture = TanhGaussianMixtureHead if squash else GaussianMixtureHead
            self.head = mixture(width, int(action_space.shape[0]), components, log_std_init)
        elif squash:
            self.head = TanhGaussianHead(width, int(action_space.shape[0]), log_std_init)
        else:
            self.head = GaussianHead(width, int(action_space.shape[0]), log_std_init)
        self.action_map = self.head.action_map

    def forward(self, obs: Obs):
        return self.head(self.torso(flatten_obs(obs, keys=self.obs_keys)))

    def sample(self, obs: Obs) -> tuple[Tensor, Tensor]:
        """An action and its log-probability; reparameterised for a squashed (tanh) head."""
        params = self(obs)
        if isinstance(self.head, (TanhGaussianHead, TanhGaussianMixtureHead)):
            return self.head.rsample(params)
        action = self.head.sample(params)
        return action, self.head.log_prob(params, action)

    def act(self, obs: Obs, deterministic: bool = False) -> Tensor:
        params = self(obs)
        return self.head.mode(params) if deterministic else self.head.sample(params)

    def log_prob_entropy(self, obs: Obs, action: Tensor) -> tuple[Tensor, Tensor]:
        params = self(obs)
        return self.head.log_prob(params, action), self.head.entropy(params)


class DeterministicActor(nn.Module):
    """mu(s) in [-1, 1]^d through tanh (DDPG/TD3); `obs_keys` as StochasticActor's."""

    action_map = "scale"

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str = "relu", obs_keys: Sequence[str] | None = None
    ):
        super().__init__()
        self.obs_keys = None if obs_keys is None else tuple(obs_keys)
        self.net = mlp(obs_dim, hidden, act_dim, activation=activation)

    def forward(self, obs: Obs) -> Tensor:
        return torch.tanh(self.net(flatten_obs(obs, keys=self.obs_keys)))

    def act(self, obs: Obs, deterministic: bool = True) -> Tensor:
        return self(obs)
