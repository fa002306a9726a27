"""Vector rewards for multi-critic learning (`ppo` and `sac` with `--reward-components K`).

An environment takes part by putting K floats in `info["reward_vector"]` at every step; its scalar
reward stays what episode returns and evaluations count. The wrappers here add such a vector to a
Gymnasium task; name them as `dramaturg.envs.multi_reward:PendulumRewardComponents` or
`dramaturg.envs.multi_reward:CartPoleWithNoise`, with keyword arguments through `--env-kwargs`.
`check_reward_vector` refuses, before training, an environment whose reward vector is missing or
has the wrong length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np


class RewardVectorWrapper(gym.Wrapper):
    """Adds `info["reward_vector"] = self.components(...)` after every step and makes the scalar
    reward their weighted sum, sum_k scalar_weights[k] r_k (default: the plain sum)."""

    num_components: int

    def __init__(self, env: gym.Env, scalar_weights: Sequence[float] | None = None):
        super().__init__(env)
        weights = (
            np.ones(self.num_components)
            if scalar_weights is None
            else np.asarray(scalar_weights, dtype=np.float64)
        )
        if weights.shape != (self.num_components,) or not np.isfinite(weights).all():
            raise ValueError(
                f"{type(self).__name__}: scalar_weights = {scalar_weights!r} is invalid: "
                f"must be {self.num_components} finite numbers"
            )
        self.scalar_weights = weights

    def components(self, action: Any, reward: float) -> np.ndarray:
        """The K reward components of the step about to be taken (called before it)."""
        raise NotImplementedError

    def step(self, action: Any):
        vector = np.asarray(self.components(action, 0.0), dtype=np.float64)
        obs, reward, terminated, truncated, info = self.env.step(action)
        vector = self.after_step(vector, float(reward))
        return (
            obs,
            float(vector @ self.scalar_weights),
            terminated,
            truncated,
            {**info, "reward_vector": vector},
        )

    def after_step(self, vector: np.ndarray, reward: float) -> np.ndarray:
        """Components that need the task's own reward of the step fill them in here."""
        return vector


class PendulumRewardComponents(RewardVectorWrapper):
    """Pendulum-v1 with its reward split into the three terms it sums, of very different scales:
    angle -theta^2 (up to about -9.9), velocity -0.1 thetadot^2 (up to -6.4) and torque -0.001 u^2
    (at most -0.004 in size), theta and thetadot those before the step, u clipped to [-2, 2] as the task
    applies it. With the default scalar_weights the scalar reward is Pendulum's own."""

    num_components = 3

    def __init__(self, scalar_weights: Sequence[float] | None = None, **kwargs: Any):
        super().__init__(gym.make("Pendulum-v1", **kwargs), scalar_weights)

    def components(self, action: Any, reward: float) -> np.ndarray:
        theta, thetadot = self.env.unwrapped.state
        u = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -2.0, 2.0))
        angle = ((theta + math.pi) % (2 * math.pi)) - math.pi  # the task's angle_normalize
        return np.array([-(angle**2), -0.1 * thetadot**2, -0.001 * u**2])


class CartPoleWithNoise(RewardVectorWrapper):
    """CartPole-v1 whose reward has a second component, `scale` times a standard normal draw per step
    from the episode's seeded generator: large, with mean 0, and beyond the agent's influence (a
    stand-in for a big reward term that the policy cannot change). The expected return is CartPole's,
    but one critic on the sum sees its advantages swamped by the second component's spread."""

    num_components = 2

    def __init__(
        self, scale: float = 10.0, scalar_weights: Sequence[float] | None = None, **kwargs: Any
    ):
        if not (0.0 <= scale < math.inf):
            raise ValueError(
                f"CartPoleWithNoise: scale = {scale!r} is invalid: must be >= 0 and finite"
            )
        super().__init__(gym.make("CartPole-v1", **kwargs), scalar_weights)
        self.scale = scale

    def components(self, action: Any, reward: float) -> np.ndarray:
        return np.array([0.0, self.scale * float(self.env.unwrapped.np_random.standard_normal())])

    def after_step(self, vector: np.ndarray, reward: float) -> np.ndarray:
        vector[0] = reward
        return vector


def check_reward_vector(algo: str, cfg: Any) -> None:
    """Refuse, before anything is written, a run with `reward_components = K` whose environment does
    not put K finite floats in `info["reward_vector"]` (one reset and one random step of a fresh copy)."""
    from dramaturg.config import ConfigError
    from dramaturg.envs.factory import env_factory
    from dramaturg.envs.native import is_native

    K = cfg.reward_components
    hint = (
        "it must put a sequence of reward_components floats in info['reward_vector'] at every step, "
        "e.g. dramaturg.envs.multi_reward:CartPoleWithNoise (or set reward_components = 0)"
    )
    if is_native(cfg.env):
        raise ConfigError(
            f"{algo}: reward_components = {K} but the native environment {cfg.env!r} reports no reward vector; {hint}"
        )
    env = env_factory(cfg.env, cfg.env_kwargs)()
    try:
        env.reset(seed=cfg.seed)
        env.action_space.seed(cfg.seed)
        info = env.step(env.action_space.sample())[4]
    finally:
        env.close()
    if "reward_vector" not in info:
        raise ConfigError(
            f"{algo}: reward_components = {K} but the environment {cfg.env!r} reports no info['reward_vector']; {hint}"
        )
    found = np.atleast_1d(np.asarray(info["reward_vector"], dtype=np.float64))
    if found.shape != (K,) or not np.isfinite(found).all():
        raise ConfigError(
            f"{algo}: reward_components = {K} but the environment {cfg.env!r} reports info['reward_vector'] = "
            f"{found.tolist()} ({found.size} components); {hint}"
        )


def validate_reward_components(cfg: Any) -> None:
    """The config checks of the multi-critic option that `ppo` and `sac` share."""
    from dramaturg.config import require

    require(
        cfg,
        cfg.reward_components >= 0,
        "reward_components",
        "must be >= 0 (0: one critic on the scalar reward)",
    )
    if cfg.reward_weights:
        try:
            weights = [float(w) for w in cfg.reward_weights.split(",")]
        except ValueError:
            weights = []
        require(
            cfg, bool(weights), "reward_weights", "must be numbers separated by commas, e.g. 1,0.5"
        )
        require(
            cfg,
            len(weights) == cfg.reward_components,
            "reward_weights",
            f"must have one weight per reward component (reward_components = {cfg.reward_components})",
        )
        require(
            cfg,
            all(math.isfinite(w) and w >= 0 for w in weights) and sum(weights) > 0,
            "reward_weights",
            "must be finite and >= 0, not all 0",
        )
    if cfg.reward_components:
        require(
            cfg, cfg.policy == "gaussian", "policy", "must be gaussian when reward_components > 0"
        )


def weights_of(cfg: Any) -> list[float]:
    """w_k of the K components: reward_weights, or 1 each."""
    if cfg.reward_weights:
        return [float(w) for w in cfg.reward_weights.split(",")]
    return [1.0] * cfg.reward_components


def require_reward_vector(algo: str, cfg: Any, vector: Any) -> Any:
    """The batch's reward vector [..., K], or a ConfigError where the environment gave none or another K."""
    from dramaturg.config import ConfigError

    if vector is None or vector.shape[-1] != cfg.reward_components:
        found = (
            "no info['reward_vector']"
            if vector is None
            else f"{vector.shape[-1]} reward components per step"
        )
        raise ConfigError(
            f"{algo}: reward_components = {cfg.reward_components} but the environment {cfg.env!r} reports {found}; "
            "e.g. dramaturg.envs.multi_reward:CartPoleWithNoise gives 2"
        )
    return vector
