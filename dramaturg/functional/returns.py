"""Advantage and return estimators over time-major [T, B] tensors.

Termination and truncation are kept apart: `terminated` stops bootstrapping (the next state has
value 0), `dones` (terminated or truncated) stops the recursion across the episode boundary.
Where an episode was truncated, `next_values` holds V(final observation), so the cut-off return
is still bootstrapped (Pardo et al. 2018, "Time Limits in Reinforcement Learning").
"""

from __future__ import annotations

import torch
from torch import Tensor


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    dones: Tensor,
    *,
    gamma: float,
    lam: float,
) -> Tensor:
    """Generalized advantage estimates (Schulman et al. 2016, eq. 16), shape [T, B]."""
    deltas = rewards + gamma * next_values * (1.0 - terminated) - values  # [T, B]
    carry = gamma * lam * (1.0 - dones)  # [T, B]
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])  # [B]
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        advantages[t] = running
    return advantages


def n_step_returns(
    rewards: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    dones: Tensor,
    *,
    gamma: float,
    n: int,
) -> Tensor:
    """n-step bootstrapped returns G_t = sum_{k<m} gamma^k r_{t+k} + gamma^m V(s_{t+m}), [T, B].

    The sum stops early at an episode end (m is then the steps to that end) and at the end of the
    rollout; the bootstrap value is the `next_values` of the last step taken, zeroed if terminal.
    """
    T = rewards.shape[0]
    returns = torch.empty_like(rewards)
    for t in range(T):
        total = torch.zeros_like(rewards[0])
        discount = torch.ones_like(rewards[0])
        alive = torch.ones_like(rewards[0])  # 1 while no episode end has been passed
        bootstrap = torch.zeros_like(rewards[0])
        for k in range(min(n, T - t)):
            total = total + alive * discount * rewards[t + k]
            last = (k == min(n, T - t) - 1) | dones[t + k].bool()
            take = alive * last.float()
            bootstrap = bootstrap + take * discount * gamma * next_values[t + k] * (1.0 - terminated[t + k])
            alive = alive * (1.0 - last.float())
            discount = discount * gamma
        returns[t] = total + bootstrap
    return returns
