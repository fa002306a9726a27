"""Batched environments written in torch: all instances step as one tensor program, on any device.

A subclass holds its physical state as a [B, S] float64 tensor and implements four pure pieces:
`sample_initial(n, generator)`, `dynamics(state, action) -> (next_state, reward, terminated)`,
`observe(state)`, and its spaces. `observe` returns one tensor for a Box observation space, or a
dict of tensors, one per key, for a Dict space (e.g. an actor's view and a critic's privileged
state). The base class adds what every environment needs, without a host round trip: time-limit
truncation, auto-reset in the same step (the true final observation is returned as `final_obs`;
both key by key for a Dict space), episode returns and lengths, observation normalisation (one
running normaliser per key for a Dict space), reward scaling, and exact save/restore (state,
counters and the environment's own random generator).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from dramaturg.envs.vec import StepResult
from dramaturg.types import Obs

FINISHED_CAPACITY = 65_536  # finished episodes kept between two reads of the statistics


def where_done(done: Tensor, fresh: Obs, old: Obs) -> Obs:
    """`fresh` where `done` [B], else `old`: tensors [B, ...], or dicts of them key by key."""
    if isinstance(fresh, dict):
        return {k: where_done(done, fresh[k], old[k]) for k in fresh}
    return torch.where(done.view(-1, *([1] * (fresh.dim() - 1))), fresh, old)


class NativeVecEnv:
    observation_space: gym.spaces.Box | gym.spaces.Dict
    action_space: gym.Space
    max_episode_steps: int
    gym_id: str | None = None  # Gymnasium's own version of the task, used for evaluation

    def __init__(
        self,
        num_envs: int,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        gamma: float = 0.99,
        obs_norm=None,
        normalize_reward: bool = False,
    ):
        self.num_envs, self.device, self.gamma = num_envs, torch.device(device), gamma
        self.obs_norm, self.normalize_reward = obs_norm, normalize_reward
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        B, dev = num_envs, self.device
        self.state = torch.zeros(B, self.state_dim, dtype=torch.float64, device=dev)
        self.elapsed = torch.zeros(B, dtype=torch.long, device=dev)
        self.ep_return = torch.zeros(B, dtype=torch.float64, device=dev)
        self.discounted = torch.zeros(B, dtype=torch.float64, device=dev)
        self.ret_moments = torch.tensor([0.0, 1.0, 1e-4], dtype=torch.float64, device=dev)
        self.finished = torch.zeros(FINISHED_CAPACITY + 1, 2, dtype=torch.float64, device=dev)  # last row: discard
        self.finished_count = torch.zeros((), dtype=torch.long, device=dev)

    # -- what a task defines ------------------------------------------------------------------

    state_dim: int

    def sample_initial(self, n: int, generator: torch.Generator) -> Tensor:
        """[n, S] initial states."""
        raise NotImplementedError

    def dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(next state [B, S], reward [B], terminated [B] bool) for actions [B, ...]."""
        raise NotImplementedError

    def observe(self, state: Tensor) -> Obs:
        """[B, *obs] float32 observation of the state; for a Dict space a dict of them, one per key."""
        raise NotImplementedError

    # -- the common machinery -----------------------------------------------------------------

    def _normalised(self, obs: Obs, update: bool) -> Obs:
        if self.obs_norm is None or not self.obs_norm.enabled:
            return obs
        if update:
            self.obs_norm.update(obs)
        return self.obs_norm(obs)

    def reset(self) -> Obs:
        self.state = self.sample_initial(self.num_envs, self.generator)
        self.elapsed.zero_()
        self.ep_return.zero_()
        return self._normalised(self.observe(self.state), update=True)

    def step(self, action: Tensor, *, update_norm: bool = True) -> StepResult:
        next_state, reward, terminated = self.dynamics(self.state, action)
        self.elapsed += 1
        truncated = (self.elapsed >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        final_obs = self.observe(next_state)
        self.ep_return += reward
        self._record_finished(done)
        fresh = self.sample_initial(self.num_envs, self.generator)
        self.state = torch.where(done.unsqueeze(-1), fresh, next_state)
        self.elapsed = torch.where(done, torch.zeros_like(self.elapsed), self.elapsed)
        self.ep_return = torch.where(done, torch.zeros_like(self.ep_return), self.ep_return)
        obs = where_done(done, self.observe(self.state), final_obs)
        normed = self._normalised(obs, update=update_norm)
        normed_final = self._normalised(final_obs, update=False)
        return StepResult(
            normed,
            self._scale_rewards(reward, done).float(),
            terminated.float(),
            truncated.float(),
            normed_final,
            None,  # no host sync: loops treat None as "maybe"
            None,
        )

    def _record_finished(self, done: Tensor) -> None:
        slot = self.finished_count + torch.cumsum(done.long(), 0) - 1
        slot = torch.where(done & (slot < FINISHED_CAPACITY), slot, torch.full_like(slot, FINISHED_CAPACITY))
        values = torch.stack([self.ep_return, (self.elapsed).to(torch.float64)], -1)
        self.finished.index_copy_(0, slot, values)
        self.finished_count += done.sum()

    def _scale_rewards(self, reward: Tensor, done: Tensor) -> Tensor:
        if not self.normalize_reward:
            return reward
        from dramaturg.functional import update_moments

        self.discounted = self.discounted * self.gamma + reward
        mean, var, count = update_moments(*self.ret_moments.unbind(), self.discounted)
        self.ret_moments = torch.stack([mean, var, count])
        self.discounted = torch.where(done, torch.zeros_like(self.discounted), self.discounted)
        return (reward / (var + 1e-8).sqrt()).clamp(-10.0, 10.0)

    def pop_finished(self) -> list[tuple[float, int]]:
        """(return, length) of the episodes that ended since the last call (one host sync)."""
        n = min(int(self.finished_count), FINISHED_CAPACITY)
        rows = self.finished[:n].tolist()
        self.finished_count.zero_()
        return [(r, int(length)) for r, length in rows]

    def close(self) -> None:
        pass

    # -- exact save and restore -----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "elapsed": self.elapsed,
            "ep_return": self.ep_return,
            "discounted": self.discounted,
            "ret_moments": self.ret_moments,
            "finished": self.finished,
            "finished_count": self.finished_count,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> Obs:
        for name in ("state", "elapsed", "ep_return", "discounted", "ret_moments", "finished", "finished_count"):
            setattr(self, name, state[name].to(self.device))
        self.generator.set_state(state["generator"])
        return self._normalised(self.observe(self.state), update=False)
