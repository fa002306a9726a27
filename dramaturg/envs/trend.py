"""The trend observation of trend-based SAC (TBSAC; Chen et al. 2023, arXiv:2305.13869).

TBSAC's agent sees three consecutive readings o_{t-2}, o_{t-1}, o_t of its sensors re-written as
two first differences and the current value, [Δo_{t-1}, Δo_t, o_t] with Δo_t = o_t - o_{t-1}
(the authors' `OrbitCorrectionEnv.step`: `np.hstack((bpm_last_delta, bpm_cur_delta,
bpm_cur_observation))`). `TrendObservation` gives any environment with a flat Box observation that
input for k readings: [Δo_{t-k+2}, ..., Δo_t, o_t] (`form="differences"`, k = 3 is the paper's), or
the k readings themselves, oldest first (`form="readings"`, a plain observation history).

At a reset only o_0 exists: the earlier readings are taken to equal it, so every difference of the
first observation is 0. (The authors' beam line takes two readings at a reset, with the magnets at 0
and at +0.3, so their Δo_0 is a real difference and only Δo_{-1} is 0; a general environment has no
second reading to offer.)

With `trend = k` in any algorithm's config the session builds every environment, for training and
for evaluation, through `trend_env`. The history lives inside the sub-environment, under the
per-episode seeding wrapper, so a resumed run rebuilds it exactly by replaying the episode's actions.
`trend_env` is also a factory in its own right:

    dramaturg eval RUN_DIR --env dramaturg.envs.trend:trend_env --env-kwargs '{"env": "Pendulum-v1", "readings": 3}'
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from dramaturg.envs.factory import EnvError, env_factory

FORMS = ("differences", "readings")


class TrendObservation(gym.Wrapper):
    """Observes the last `readings` observations of a flat Box: as differences plus the current
    value (TBSAC's trend), or as they are. The output is flat, [readings * n]."""

    def __init__(self, env: gym.Env, readings: int = 3, form: str = "differences"):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise EnvError(f"trend: the observation space {space} is not a flat (1-D) Box; the trend observation stacks vectors")
        if readings < 2:
            raise EnvError(f"trend: readings = {readings!r} is invalid: must be >= 2")
        if form not in FORMS:
            raise EnvError(f"trend: form = {form!r} is invalid: must be one of {', '.join(FORMS)}")
        self.readings, self.form = int(readings), form
        low, high = space.low.astype(np.float64), space.high.astype(np.float64)
        if form == "differences":
            with np.errstate(invalid="ignore"):
                span = high - low  # a difference of two readings lies in [low - high, high - low]
            span = np.where(np.isfinite(span), span, np.inf)
            low_all = np.concatenate([*[-span] * (self.readings - 1), low])
            high_all = np.concatenate([*[span] * (self.readings - 1), high])
        else:
            low_all, high_all = np.tile(low, self.readings), np.tile(high, self.readings)
        self.observation_space = gym.spaces.Box(low_all.astype(space.dtype), high_all.astype(space.dtype), dtype=space.dtype)
        self.history = np.zeros((self.readings, space.shape[0]), dtype=space.dtype)  # [k, n] oldest first

    def observation(self) -> np.ndarray:
        if self.form == "readings":
            return self.history.reshape(-1).copy()
        return np.concatenate([np.diff(self.history, axis=0).reshape(-1), self.history[-1]])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.history[:] = np.asarray(obs, dtype=self.history.dtype)  # earlier readings equal o_0
        return self.observation(), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.history = np.roll(self.history, -1, axis=0)
        self.history[-1] = np.asarray(obs, dtype=self.history.dtype)
        return self.observation(), reward, terminated, truncated, info


def trend_env(env: str, env_kwargs: dict[str, Any] | None = None, readings: int = 3, form: str = "differences") -> gym.Env:
    """`env` (a Gymnasium id or `package.module:Name`) built with `env_kwargs`, under TrendObservation."""
    return TrendObservation(env_factory(env, env_kwargs)(), readings, form)


def with_trend(env: str, env_kwargs: dict[str, Any], readings: int, form: str) -> tuple[str, dict[str, Any]]:
    """The (env, env_kwargs) that build `env` under the trend observation; unchanged for readings 0."""
    if not readings:
        return env, env_kwargs
    return f"{__name__}:trend_env", {"env": env, "env_kwargs": dict(env_kwargs), "readings": readings, "form": form}
