"""Small environments of our own, to exercise every space the library supports."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class DictTarget(gym.Env):
    """Dict observation {"position", "target"}; MultiDiscrete actions move a point on a grid.

    Reward is minus the distance to the target; the episode terminates on reaching it and is
    truncated after `horizon` steps.
    """

    def __init__(self, size: int = 5, horizon: int = 20):
        self.size, self.horizon = size, horizon
        box = gym.spaces.Box(0.0, float(size), (2,), np.float32)
        self.observation_space = gym.spaces.Dict({"position": box, "target": box})
        self.action_space = gym.spaces.MultiDiscrete([3, 3])

    def _obs(self):
        return {"position": self.pos.astype(np.float32), "target": self.target.astype(np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.integers(0, self.size, 2)
        self.target = self.np_random.integers(0, self.size, 2)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + np.asarray(action) - 1, 0, self.size)
        self.t += 1
        distance = float(np.abs(self.pos - self.target).sum())
        return self._obs(), -distance, distance == 0.0, self.t >= self.horizon, {}


class Corridor(gym.Env):
    """1-D Box observation, Discrete(2) actions: walk right `length` cells to terminate with +1.

    Without a time limit of its own; tests wrap it in gymnasium's TimeLimit.
    """

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 4):
        self.length = length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.x = max(0, self.x + (1 if action == 1 else -1))
        done = self.x >= self.length
        return np.array([self.x / self.length], np.float32), float(done), done, False, {}


def make_short_corridor(length: int = 4, limit: int = 3) -> gym.Env:
    """A factory: Corridor cut off by a time limit shorter than the walk (always truncated)."""
    return gym.wrappers.TimeLimit(Corridor(length), max_episode_steps=limit)
