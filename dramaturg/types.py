"""Typed batches that flow from the loops into the update steps.

Shapes: T rollout steps, B parallel environments, N sampled transitions. An observation is a
tensor or, for Dict observation spaces, a dict of tensors with the same leading dimensions.
"""

from __future__ import annotations

from typing import NamedTuple, Union

from torch import Tensor

Obs = Union[Tensor, dict[str, Tensor]]


class Rollout(NamedTuple):
    """On-policy experience, time-major."""

    obs: Obs  # [T, B, *obs]
    actions: Tensor  # [T, B, *act]
    logp: Tensor  # [T, B] log-probability of the action under the behaviour policy
    values: Tensor  # [T, B] V(s_t) at collection time; [T, B, H] for a critic with H heads
    rewards: Tensor  # [T, B]
    next_values: Tensor  # like values: V(s_{t+1}); V(final observation) where the episode was truncated
    terminated: Tensor  # [T, B] float, 1 where s_{t+1} is terminal (no bootstrap)
    dones: Tensor  # [T, B] float, 1 where the episode ended (terminated or truncated)
    costs: Tensor | None = None  # [T, B, K] constraint costs from info["cost"]; None where the env gives none
    reward_vector: Tensor | None = None  # [T, B, K] reward components from info["reward_vector"]; None where the env gives none


class Transition(NamedTuple):
    """Off-policy experience, a sampled minibatch."""

    obs: Obs  # [N, *obs]
    actions: Tensor  # [N, *act]
    rewards: Tensor  # [N]
    next_obs: Obs  # [N, *obs] the true next observation, also at episode ends
    terminated: Tensor  # [N] float, 1 where next_obs is terminal
    reward_vector: Tensor | None = None  # [N, K] reward components from info["reward_vector"]; None where the env gives none
