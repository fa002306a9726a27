"""Deterministic evaluation: N episodes, each from its own fixed seed."""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np
import torch


@torch.inference_mode()  # the policy's outputs go to the environment only: no autograd bookkeeping
def evaluate(
    policy: Callable[[torch.Tensor], torch.Tensor],
    make_env: Callable[[], gym.Env],
    episodes: int,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    deterministic: bool = True,
    envs: gym.vector.VectorEnv | None = None,
) -> np.ndarray:
    """Returns of `episodes` episodes, run side by side, each sub-environment for one episode.

    `policy(obs_batch, deterministic)` maps raw observations to environment actions.
    """
    own = envs is None
    if own:
        envs = gym.vector.SyncVectorEnv([make_env for _ in range(episodes)])
    try:
        obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
        returns = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        discrete = isinstance(envs.single_action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete))
        while running.any():
            x = {k: torch.as_tensor(v, device=device) for k, v in obs.items()} if isinstance(obs, dict) else torch.as_tensor(obs, device=device)
            action = policy(x, deterministic).cpu().numpy()
            if not discrete:
                action = action.astype(envs.single_action_space.dtype, copy=False)
            obs, rewards, terminated, truncated, _ = envs.step(action)
            returns += rewards * running
            running &= ~(terminated | truncated)
        return returns
    finally:
        if own:
            envs.close()


@torch.no_grad()
def evaluate_native(policy: Callable[[torch.Tensor, bool], torch.Tensor], env, deterministic: bool = True) -> np.ndarray:
    """Returns of the first episode of each instance of a native batched environment (built
    without normalisation: the policy normalises its own input)."""
    obs = env.reset()
    returns = torch.zeros(env.num_envs, dtype=torch.float64, device=env.device)
    running = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)
    for _ in range(env.max_episode_steps):
        step = env.step(policy(obs, deterministic))
        returns += step.rewards.double() * running
        running &= ~(step.terminated.bool() | step.truncated.bool())
        obs = step.obs
    return returns.cpu().numpy()
