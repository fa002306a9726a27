"""The trained policy as users call it: raw observation in, environment action out."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from dramaturg.functional import tree_map
from dramaturg.nn.normalize import ObsNormalizer
from dramaturg.types import Obs


class Policy(nn.Module):
    """Normalises the observation, asks the actor, and maps the action into the env's bounds."""

    def __init__(
        self,
        actor: nn.Module,
        obs_norm: ObsNormalizer,
        obs_shape: tuple[int, ...] | dict[str, tuple[int, ...]],
        low: Tensor | None = None,
        high: Tensor | None = None,
    ):
        super().__init__()
        self.actor, self.obs_norm, self.obs_shape = actor, obs_norm, obs_shape
        self.action_map = actor.action_map
        if low is not None:
            self.register_buffer("low", low.float())
            self.register_buffer("high", high.float())

    def to_env(self, action: Tensor) -> Tensor:
        if self.action_map == "clip":
            return torch.maximum(torch.minimum(action, self.high), self.low)
        if self.action_map == "scale":
            return self.low + 0.5 * (action + 1.0) * (self.high - self.low)
        return action

    def keyed(self, obs):
        """An actor that reads one key of a Dict observation (asymmetric actor-critic) also takes
        that key's value alone."""
        keys = getattr(self.actor, "obs_keys", None)
        return {keys[0]: obs} if keys is not None and len(keys) == 1 and not isinstance(obs, dict) else obs

    @torch.no_grad()
    def forward(self, obs: Obs, deterministic: bool = True) -> Tensor:
        obs = self.keyed(obs)
        return self.to_env(self.actor.act(self.obs_norm(obs), deterministic=deterministic))

    def act(self, obs, deterministic: bool = True):
        """One observation or a batch of them, as numpy or torch; returns the same kind."""
        device = next(self.parameters()).device
        obs = self.keyed(obs)
        key = next(iter(obs)) if isinstance(obs, dict) else None
        first = obs if key is None else obs[key]
        as_numpy = not isinstance(first, Tensor)
        x = tree_map(lambda o: torch.as_tensor(np.asarray(o), device=device), obs)
        shape = self.obs_shape if key is None else self.obs_shape[key]
        single = tuple(torch.as_tensor(np.asarray(first)).shape) == tuple(shape)
        if single:
            x = tree_map(lambda t: t.unsqueeze(0), x)
        action = self(x, deterministic=deterministic)
        if single:
            action = action[0]
        return action.cpu().numpy() if as_numpy else action
