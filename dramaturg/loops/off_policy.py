"""Act, store the transition, and every `train_freq` steps run `gradient_steps` updates."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from dramaturg.data import ReplayBuffer
from dramaturg.types import Obs, Transition

ActFn = Callable[[Obs], Tensor]  # obs -> action in the actor's units, [B, *act]
UpdateFn = Callable[[Transition], dict[str, Tensor]]


def run_off_policy(
    env,
    act_fn: ActFn,
    random_action_fn: Callable[[int], Tensor],
    update_fn: UpdateFn,
    buffer: ReplayBuffer,
    *,
    batch_size: int,
    learning_starts: int,
    train_freq: int,
    gradient_steps: int,
    session,
) -> None:
    """`env` is a TorchVecEnv, `session` a runtime Session already started with `obs`.

    Before `learning_starts` steps, actions come from `random_action_fn(B)`. The next observation
    stored is the true one at episode ends (`final_obs`), and only termination stops bootstrapping.
    """
    obs = session.obs
    B = env.num_envs
    metrics: dict[str, Tensor] = {}
    while not session.done:
        if session.step < learning_starts:
            action = random_action_fn(B)
        else:
            with torch.no_grad():
                action = act_fn(obs)
        step = env.step(session.policy.to_env(action))
        buffer.add(obs, action, step.rewards, step.final_obs, step.terminated, step.reward_vector)
        obs = step.obs
        session.advance(B)
        session.guard.watch({"observation": step.obs, "reward": step.rewards})
        if session.step >= learning_starts and (session.step // B) % train_freq == 0:
            for _ in range(gradient_steps):
                metrics = update_fn(buffer.sample(batch_size))
                session.guard.watch_update(metrics)
                session.updates += 1
        session.obs = obs
        session.tick(metrics)
