"""Gymnasium tasks with a constraint cost in `info["cost"]`, for constrained RL (`ppo-lagrangian`).

Name them as `dramaturg.envs.costs:CartPoleWithPositionCost` or
`dramaturg.envs.costs:PendulumWithTorqueCost`; their keyword arguments come through `--env-kwargs`.
Rewards, observations and episode ends are those of the Gymnasium task; only the cost is added.
Your own task takes part the same way: put a float, or a sequence of K floats, in `info["cost"]`
at every step. A recommendation CMDP with two costs (no like, no follow) lives in `envs/recsys.py`
and is named here too, as `dramaturg.envs.costs:RecommendationCMDP`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from dramaturg.envs.recsys import RecommendationCMDP  # noqa: F401  (registered next to the tasks below)


class CostWrapper(gym.Wrapper):
    """Adds `info["cost"] = self.cost(obs, action)` after every step."""

    def cost(self, obs: np.ndarray, action: Any) -> float:
        raise NotImplementedError

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "cost": self.cost(obs, action)}


class CartPoleWithPositionCost(CostWrapper):
    """CartPole-v1 with cost 1 at each step that ends with the cart further than `bound` from the
    centre (|x| > bound; the task itself ends at |x| > 2.4). Balancing earns the full return at any
    position, so a policy that keeps the cart near the centre pays nothing for it in reward."""

    def __init__(self, bound: float = 0.5, **kwargs: Any):
        if not 0.0 < bound < 2.4:
            raise ValueError(f"CartPoleWithPositionCost: bound = {bound!r} is invalid: must be in (0, 2.4)")
        super().__init__(gym.make("CartPole-v1", **kwargs))
        self.bound = bound

    def cost(self, obs: np.ndarray, action: Any) -> float:
        return float(abs(float(obs[0])) > self.bound)


class PendulumWithTorqueCost(CostWrapper):
    """Pendulum-v1 with cost max(|u| - threshold, 0) per step, u the applied torque (clipped to
    [-2, 2] as the task applies it): the swing-up must be done with less force than it may use."""

    def __init__(self, threshold: float = 1.0, **kwargs: Any):
        if not 0.0 <= threshold < 2.0:
            raise ValueError(f"PendulumWithTorqueCost: threshold = {threshold!r} is invalid: must be in [0, 2)")
        super().__init__(gym.make("Pendulum-v1", **kwargs))
        self.threshold = threshold

    def cost(self, obs: np.ndarray, action: Any) -> float:
        torque = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -2.0, 2.0))
        return max(abs(torque) - self.threshold, 0.0)
