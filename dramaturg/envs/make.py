"""Build vectorised, replayable environments that speak torch tensors."""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym

from dramaturg.envs.factory import EnvError, EpisodeSeeding, env_factory
from dramaturg.envs.vec import TorchVecEnv

__all__ = ["EnvError", "env_factory", "make_vec_env"]


def make_vec_env(
    env: str,
    env_kwargs: dict[str, Any] | None = None,
    *,
    num_envs: int = 1,
    seed: int = 0,
    vector_env: str = "sync",
    device: str = "cpu",
    gamma: float = 0.99,
    obs_norm=None,
    normalize_reward: bool = False,
) -> TorchVecEnv:
    make = env_factory(env, env_kwargs)

    def fn(i: int) -> Callable[[], gym.Env]:
        return lambda: EpisodeSeeding(make(), seed, i)

    fns = [fn(i) for i in range(num_envs)]
    mode = gym.vector.AutoresetMode.SAME_STEP
    if vector_env == "async":
        vec = gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode, context="spawn")
    else:
        vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)
    return TorchVecEnv(vec, device=device, gamma=gamma, obs_norm=obs_norm, normalize_reward=normalize_reward)
