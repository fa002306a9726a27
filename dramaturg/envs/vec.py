"""A Gymnasium vector environment seen as batched torch tensors.

Observations come out normalised (if an `ObsNormalizer` is enabled) and rewards scaled (if reward
normalisation is on); episode returns and lengths are tracked on the raw rewards. Sub-environments
auto-reset in the same step; the observation that ended an episode is returned as `final_obs`.
Constraint costs that sub-environments report as `info["cost"]` (a float, or a sequence of K floats)
come out as `costs` [B, K], raw (never scaled); `costs` is None while no sub-environment has reported one.
Reward components reported as `info["reward_vector"]` (K floats, for multi-critic learning) come out
the same way as `reward_vector` [B, K], raw.
The whole state, including each sub-environment's, can be saved and restored exactly.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from dramaturg.functional import update_moments
from dramaturg.types import Obs


class StepResult(NamedTuple):
    obs: Obs  # [B, *obs] next observation (first of a new episode where one ended)
    rewards: Tensor  # [B] float32, scaled if reward normalisation is on
    terminated: Tensor  # [B] float32
    truncated: Tensor  # [B] float32
    final_obs: Obs  # [B, *obs] the true next observation: differs from obs where an episode ended
    any_done: bool | None  # None where knowing would cost a host sync (native envs)
    any_truncated: bool | None
    costs: Tensor | None = None  # [B, K] float32 info["cost"] of this step; None where the env gives none
    reward_vector: Tensor | None = None  # [B, K] float32 info["reward_vector"] of this step, raw; None where none


class TorchVecEnv:
    def __init__(self, vec: gym.vector.VectorEnv, *, device: str, gamma: float, obs_norm, normalize_reward: bool):
        self.vec, self.device, self.gamma = vec, torch.device(device), gamma
        self.num_envs = vec.num_envs
        self.observation_space = vec.single_observation_space
        self.action_space = vec.single_action_space
        self.obs_norm = obs_norm
        self.normalize_reward = normalize_reward
        self.ret_moments = np.array([0.0, 1.0, 1e-4])  # mean, var, count of the discounted return
        self.discounted = np.zeros(self.num_envs)
        self.ep_return = np.zeros(self.num_envs)
        self.ep_length = np.zeros(self.num_envs, dtype=np.int64)
        self.finished: list[tuple[float, int]] = []  # (return, length) of episodes ended since read
        self.raw_obs: Any = None
        self.num_costs: int | None = None  # K, once a sub-environment has reported info["cost"]
        self.num_reward_components: int | None = None  # K, once one has reported info["reward_vector"]
        discrete = isinstance(self.action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete))
        self._action_dtype = np.int64 if discrete else self.action_space.dtype

    # -- conversion ---------------------------------------------------------------------------

    def _tensor(self, obs: Any) -> Obs:
        if isinstance(obs, dict):
            return {k: self._tensor(v) for k, v in obs.items()}
        return torch.as_tensor(obs, device=self.device)

    def _observe(self, raw: Any, update: bool) -> Obs:
        obs = self._tensor(raw)
        if self.obs_norm is not None and self.obs_norm.enabled:
            if update:
                self.obs_norm.update(obs)
            obs = self.obs_norm(obs)
        return obs

    # -- stepping -----------------------------------------------------------------------------

    def reset(self) -> Obs:
        raw, _ = self.vec.reset()
        self.raw_obs = raw
        return self._observe(raw, update=True)

    def step(self, action: Tensor, *, update_norm: bool = True) -> StepResult:
        raw, rewards, terminated, truncated, info = self.vec.step(action.cpu().numpy().astype(self._action_dtype, copy=False))
        done = terminated | truncated
        self.ep_return += rewards
        self.ep_length += 1
        any_done = bool(done.any())
        final_raw = raw
        if any_done:
            idx = np.flatnonzero(done)
            for i in idx:
                self.finished.append((float(self.ep_return[i]), int(self.ep_length[i])))
            self.ep_return[idx] = 0.0
            self.ep_length[idx] = 0
            final_raw = _with_final(raw, info, idx)
        self.raw_obs = raw
        obs = self._observe(raw, update=update_norm)
        final_obs = self._observe(final_raw, update=False) if any_done else obs
        r = torch.as_tensor(self._scale_rewards(rewards, done), device=self.device, dtype=torch.float32)
        return StepResult(
            obs,
            r,
            torch.as_tensor(terminated, device=self.device, dtype=torch.float32),
            torch.as_tensor(truncated, device=self.device, dtype=torch.float32),
            final_obs,
            any_done,
            bool(truncated.any()),
            self._costs(info),
            self._reward_vector(info),
        )

    def _costs(self, info: dict[str, Any]) -> Tensor | None:
        costs = step_costs(info, self.num_envs, self.num_costs)
        if costs is None:
            return None
        self.num_costs = costs.shape[1]
        return torch.as_tensor(costs, device=self.device, dtype=torch.float32)

    def _reward_vector(self, info: dict[str, Any]) -> Tensor | None:
        components = step_costs(info, self.num_envs, self.num_reward_components, key="reward_vector")
        if components is None:
            return None
        self.num_reward_components = components.shape[1]
        return torch.as_tensor(components, device=self.device, dtype=torch.float32)

    def _scale_rewards(self, rewards: np.ndarray, done: np.ndarray) -> np.ndarray:
        # SB3 VecNormalize: divide by the running std of the discounted return, clip to [-10, 10]
        if not self.normalize_reward:
            return rewards
        self.discounted = self.discounted * self.gamma + rewards
        self.ret_moments = np.array(update_moments(*self.ret_moments, self.discounted))
        self.discounted[done] = 0.0
        return np.clip(rewards / np.sqrt(self.ret_moments[1] + 1e-8), -10.0, 10.0)

    def pop_finished(self) -> list[tuple[float, int]]:
        done, self.finished = self.finished, []
        return done

    def close(self) -> None:
        self.vec.close()

    # -- exact save and restore -----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "subenvs": list(self.vec.get_attr("replay_state")),
            "ret_moments": torch.as_tensor(self.ret_moments),
            "discounted": torch.as_tensor(self.discounted),
            "ep_return": torch.as_tensor(self.ep_return),
            "ep_length": torch.as_tensor(self.ep_length),
            "finished": [list(x) for x in self.finished],
        }

    def load_state_dict(self, state: dict[str, Any]) -> Obs:
        """Rebuild every sub-environment by replaying its episode; returns the current observation."""
        raw, _ = self.vec.reset(options={"replay": state["subenvs"]})
        self.raw_obs = raw
        self.ret_moments = state["ret_moments"].numpy().astype(np.float64)
        self.discounted = state["discounted"].numpy().astype(np.float64)
        self.ep_return = state["ep_return"].numpy().astype(np.float64)
        self.ep_length = state["ep_length"].numpy().astype(np.int64)
        self.finished = [(float(r), int(n)) for r, n in state["finished"]]
        return self._observe(raw, update=False)


def step_costs(info: dict[str, Any], num_envs: int, num_costs: int | None = None, *, key: str = "cost") -> np.ndarray | None:
    """[B, K] costs of one vector step from `info[key]`, 0 for sub-environments that gave none
    (`key="reward_vector"` reads reward components the same way).

    A sub-environment whose episode ended in this step was reset in the same step (Gymnasium's
    SAME_STEP autoreset), so its step's info, cost included, sits under `info["final_info"]`.
    None when no sub-environment reported a cost and `num_costs` (K seen before) is None.
    """
    sources = [info]
    if isinstance(info.get("final_info"), dict):
        sources.append(info["final_info"])
    rows: dict[int, np.ndarray] = {}
    for source in sources:
        if key not in source:
            continue
        values = source[key]
        mask = source.get(f"_{key}", np.ones(num_envs, dtype=bool))
        for i in np.flatnonzero(mask):
            rows[int(i)] = np.atleast_1d(np.asarray(values[i], dtype=np.float64))
    if not rows and num_costs is None:
        return None
    widths = {len(r) for r in rows.values()} | ({num_costs} if num_costs is not None else set())
    if len(widths) != 1 or any(r.ndim != 1 for r in rows.values()):
        raise ValueError(
            f'info["{key}"] must be a float or a flat sequence of the same length K at every step and in every '
            f"sub-environment; got lengths {sorted(widths)} (earlier steps: K = {num_costs})"
        )
    out = np.zeros((num_envs, widths.pop()), dtype=np.float64)
    for i, row in rows.items():
        out[i] = row
    if not np.isfinite(out).all():
        bad = sorted({int(i) for i in np.flatnonzero(~np.isfinite(out).all(1))})
        raise ValueError(f'info["{key}"] must be finite; sub-environments {bad} gave {out[bad].tolist()}')
    return out


def _with_final(raw: Any, info: dict[str, Any], idx: np.ndarray) -> Any:
    """A copy of the batched observation whose rows `idx` hold the episode's final observation."""
    final = info["final_obs"]
    if isinstance(raw, dict):
        out = {k: v.copy() for k, v in raw.items()}
        for i in idx:
            for k in out:
                out[k][i] = final[i][k]
        return out
    out = raw.copy()
    for i in idx:
        out[i] = final[i]
    return out
