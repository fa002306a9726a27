"""Collect a rollout of T steps from B environments, update on it, repeat."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from dramaturg.data import RolloutStorage
from dramaturg.functional import tree_index
from dramaturg.types import Obs, Rollout

ActFn = Callable[[Obs], tuple[Tensor, Tensor, Tensor]]  # obs -> (action, logp, value), [B, ...]
ValueFn = Callable[[Obs], Tensor]  # obs -> V(obs), [N] (or [N, H] for a critic with H heads, as act_fn's value)
UpdateFn = Callable[[Rollout], dict[str, Tensor]]


def run_on_policy(env, act_fn: ActFn, value_fn: ValueFn, update_fn: UpdateFn, *, rollout_len: int, session) -> None:
    """`env` is a TorchVecEnv, `session` a runtime Session already started with `obs`.

    Where the environment reports constraint costs (`step.costs`) or reward components
    (`step.reward_vector`), the rollout carries them.
    """
    obs = session.obs
    storage = RolloutStorage(rollout_len)
    B = env.num_envs
    while not session.done:
        truncation_values: Tensor | None = None
        for t in range(rollout_len):
            with torch.no_grad():
                action, logp, value = act_fn(obs)
            if truncation_values is None:  # [T, B] or [T, B, H], like the critic's output
                truncation_values = torch.zeros(rollout_len, *value.shape, device=session.device)
            step = env.step(session.policy.to_env(action))
            # bootstrap from the state the time limit cut off (Pardo et al. 2018)
            if step.any_truncated is None:  # a native env does not sync to say; value every row
                with torch.no_grad():
                    truncation_values[t] = value_fn(step.final_obs) * step.truncated.reshape(B, *(1,) * (value.dim() - 1))
            elif step.any_truncated:
                idx = step.truncated.nonzero().squeeze(-1)
                with torch.no_grad():
                    truncation_values[t, idx] = value_fn(tree_index(step.final_obs, idx))
            storage.add(
                t,
                obs=obs,
                actions=action,
                logp=logp,
                values=value,
                rewards=step.rewards,
                terminated=step.terminated,
                truncated=step.truncated,
                **({} if step.costs is None else {"costs": step.costs}),
                **({} if step.reward_vector is None else {"reward_vector": step.reward_vector}),
            )
            obs = step.obs
            session.advance(B)
            session.guard.watch({"observation": step.obs, "reward": step.rewards})
        with torch.no_grad():
            last_values = value_fn(obs)
        metrics = update_fn(storage.rollout(last_values, truncation_values))
        session.guard.watch_update(metrics)
        session.updates += 1
        session.obs = obs
        session.tick(metrics, verify=True)  # one host read per rollout
