"""The few helpers every algorithm file uses."""

from __future__ import annotations

import gymnasium as gym
import torch

from dramaturg.envs.spaces import obs_shape
from dramaturg.nn import Policy


def scheduled(value: float, schedule: str, progress: float) -> float:
    """A hyperparameter at training progress in [0, 1]: constant, or linear to 0 (rl-zoo3 lin_)."""
    return value * (1.0 - progress) if schedule == "linear" else value


def make_policy(actor: torch.nn.Module, obs_norm, observation_space: gym.Space, action_space: gym.Space) -> Policy:
    low = high = None
    if isinstance(action_space, gym.spaces.Box):
        device = next(actor.parameters()).device
        low = torch.as_tensor(action_space.low, device=device)
        high = torch.as_tensor(action_space.high, device=device)
    return Policy(actor, obs_norm, obs_shape(observation_space), low, high)


def require_box_actions(algo: str, action_space: gym.Space) -> None:
    from dramaturg.config import ConfigError

    if not isinstance(action_space, gym.spaces.Box) or len(action_space.shape) != 1:
        raise ConfigError(
            f"{algo} needs a 1-D Box (continuous) action space; this environment has {action_space}. "
            "Use ppo or a2c for discrete actions."
        )
    if not (abs(action_space.low).max() < float("inf") and abs(action_space.high).max() < float("inf")):
        raise ConfigError(f"{algo} needs finite action bounds; this environment has {action_space}")
