"""Privileged observations for asymmetric actor-critic, and a partially observed check task.

An asymmetric actor-critic trains a critic on state that the actor never sees: the true state
behind noisy sensors, disturbances, actuator states, a reference motion (Pinto et al. 2017,
arXiv:1710.06542; Learning to Fly in Seconds, Eschmann et al. 2023, arXiv:2311.13081; TacSL,
Akinola et al. 2024, arXiv:2408.06506). Here the privileged state travels as one key of a Dict
observation, `{"obs": what the actor may see, "privileged": what only the critics see}`, and the
algorithms' `actor_keys` field (e.g. `actor_keys="obs"`) names the keys the actor reads. Rollouts,
replay, normalisation and checkpoints already carry Dict observations unchanged; a saved policy
needs only the actor's keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from dramaturg.envs.factory import env_factory


class PrivilegedObservation(gym.Wrapper):
    """Observations `{"obs": the wrapped env's observation, "privileged": privileged state}`.

    The privileged state is `privileged(env)`, a function of the wrapped environment called after
    every reset and step, or else `info["privileged"]`. `privileged_space` is its Box space; by
    default the wrapped environment's `privileged_space` attribute.
    """

    def __init__(
        self,
        env: gym.Env,
        privileged: Callable[[gym.Env], Any] | None = None,
        privileged_space: gym.spaces.Box | None = None,
    ):
        super().__init__(env)
        if privileged_space is None:
            try:
                privileged_space = env.get_wrapper_attr("privileged_space")
            except AttributeError:
                raise ValueError(
                    "PrivilegedObservation needs privileged_space, or an environment with a privileged_space attribute"
                ) from None
        if not isinstance(privileged_space, gym.spaces.Box):
            raise TypeError(f"privileged_space must be a gymnasium Box; got {privileged_space!r}")
        self.privileged = privileged
        self.observation_space = gym.spaces.Dict(
            {"obs": env.observation_space, "privileged": privileged_space}
        )

    def observe(self, obs: Any, info: dict[str, Any]) -> dict[str, Any]:
        if self.privileged is not None:
            state = self.privileged(self.env)
        elif "privileged" in info:
            state = info["privileged"]
        else:
            raise KeyError(
                "PrivilegedObservation: the environment's info has no 'privileged' entry and no function was given"
            )
        space = self.observation_space["privileged"]
        return {"obs": obs, "privileged": np.asarray(state, dtype=space.dtype).reshape(space.shape)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self.observe(obs, info), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self.observe(obs, info), reward, terminated, truncated, info


class NoisyPartialObservation(gym.Wrapper):
    """The entries `keep` of a flat Box observation, each plus N(0, noise_std^2) sensor noise; the
    true observation goes to `info["privileged"]` (and `privileged_space` describes it).

    The noise has its own generator, seeded by each seeded reset, so an episode replays exactly.
    """

    def __init__(self, env: gym.Env, keep: Sequence[int] | None = None, noise_std: float = 0.0):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"NoisyPartialObservation needs a 1-D Box observation; got {space!r}")
        if not 0.0 <= noise_std < float("inf"):
            raise ValueError(f"noise_std = {noise_std!r} is invalid: must be >= 0 and finite")
        self.keep = (
            np.arange(space.shape[0]) if keep is None else np.asarray(list(keep), dtype=np.int64)
        )
        if self.keep.size == 0 or self.keep.min() < 0 or self.keep.max() >= space.shape[0]:
            raise ValueError(
                f"keep = {self.keep.tolist()} is invalid: must name entries 0..{space.shape[0] - 1}"
            )
        self.noise_std = float(noise_std)
        low, high = space.low[self.keep], space.high[self.keep]
        if noise_std > 0:
            low, high = np.full_like(low, -np.inf), np.full_like(high, np.inf)
        self.observation_space = gym.spaces.Box(low, high, dtype=space.dtype)
        self.privileged_space = space
        self.noise = np.random.default_rng(0)

    def sense(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        info["privileged"] = obs
        seen = obs[self.keep]
        if self.noise_std > 0:
            seen = seen + self.noise.normal(0.0, self.noise_std, seen.shape)
        return seen.astype(self.observation_space.dtype)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.noise = np.random.default_rng([seed, 1])
        obs, info = self.env.reset(seed=seed, options=options)
        return self.sense(obs, info), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self.sense(obs, info), reward, terminated, truncated, info


def partially_observed(
    env: str = "Pendulum-v1",
    keep: Sequence[int] | None = None,
    noise_std: float = 0.0,
    privileged: bool = True,
    **env_kwargs: Any,
) -> gym.Env:
    """`env` seen through noisy, partial sensors (`keep`, `noise_std`), with the true observation as
    the privileged key when `privileged`; without it, the actor's view alone (a symmetric baseline).

    From the command line: `--env dramaturg.envs.privileged:partially_observed --env-kwargs
    '{"keep": [0, 1]}' --actor-keys obs` hides Pendulum's angular velocity from the actor only.
    """
    sensed = NoisyPartialObservation(env_factory(env, env_kwargs)(), keep, noise_std)
    return PrivilegedObservation(sensed) if privileged else sensed
