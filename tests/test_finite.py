"""Non-finite numbers: found at the update where they appear, named, and never checkpointed."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import dramaturg
from dramaturg.runtime.checkpoint import load_latest
from dramaturg.runtime.finite import FiniteGuard, NonFiniteError
from tests.helpers import tensors


class PoisonedCartPole(gym.Wrapper):
    """CartPole whose `field` (reward or observation) turns nan at its step `at` (the checks before
    training use instances of their own, which stop long before)."""

    def __init__(self, field: str = "reward", at: int = 300):
        super().__init__(gym.make("CartPole-v1"))
        self.field, self.at, self.steps = field, at, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps >= self.at:
            if self.field == "reward":
                reward = float("nan")
            else:
                obs = np.full_like(obs, np.nan)
        return obs, reward, terminated, truncated, info


RUN = dict(env="tests.test_finite:PoisonedCartPole", num_envs=1, n_steps=64, batch_size=32, n_epochs=1,
           eval_every=0, eval_episodes=1, log_every=10_000, checkpoint_every=128, progress=False, preset=False)


@pytest.mark.parametrize(("field", "name"), [("reward", "reward"), ("observation", "observation")])
def test_poisoned_environment_stops_training_naming_the_tensor(tmp_path: Path, field: str, name: str):
    with pytest.raises(NonFiniteError, match=rf"non-finite values \(nan or inf\) in {name}\b.*environment step 300"):
        dramaturg.train("ppo", run_dir=str(tmp_path), total_steps=2_000, env_kwargs={"field": field, "at": 300}, **RUN)
    state = load_latest(tmp_path / "checkpoints")  # the last one, from before the poison
    assert state["counters"]["step"] <= 256
    assert all(torch.isfinite(t).all() for t in tensors(state).values() if t.is_floating_point())


def test_exploding_updates_are_named(tmp_path: Path):
    with pytest.raises(NonFiniteError, match=r"loss/|gradient of|state\.(actor|critic)"):
        dramaturg.train("ppo", env="CartPole-v1", run_dir=str(tmp_path), total_steps=4_000, learning_rate=1e30,
                        max_grad_norm=1e30, **{k: v for k, v in RUN.items() if k != "env"})


def test_check_finite_false_leaves_it_to_torch(tmp_path: Path):
    with pytest.raises(RuntimeError) as failure:  # the sampler meets nan probabilities, unexplained
        dramaturg.train("ppo", run_dir=str(tmp_path), total_steps=2_000, env_kwargs={"at": 300}, check_finite=False, **RUN)
    assert not isinstance(failure.value, NonFiniteError)


def test_guard_names_the_first_bad_tensor_and_when():
    w = torch.nn.Parameter(torch.ones(3))
    guard = FiniteGuard(torch.device("cpu"))
    guard.track({"state": torch.nn.Linear(2, 2)})
    guard.params.append(("state.w", w))
    guard.step = 10
    guard.watch_update({"loss/value": torch.tensor(1.0)})
    guard.verify()  # all finite
    with torch.no_grad():
        w[1] = float("inf")
    guard.step = 20
    guard.watch_update({"loss/value": torch.tensor(1.0)})
    guard.step = 30
    guard.watch_update({"loss/value": torch.tensor(float("nan"))})
    with pytest.raises(NonFiniteError, match=r"in state\.w: first seen at environment step 20 \(after 2 updates\); 1 more"):
        guard.verify()


def test_disabled_guard_reads_nothing():
    guard = FiniteGuard(torch.device("cpu"), enabled=False)
    guard.watch({"reward": torch.tensor([float("nan")])})
    guard.verify()


def test_a_name_watched_in_two_sets_is_reported_once_at_its_first_appearance():
    guard = FiniteGuard(torch.device("cpu"))
    guard.step = 5
    guard.watch({"reward": torch.tensor([float("nan")])})
    guard.step = 9
    guard.watch({"observation": torch.zeros(2), "reward": torch.tensor([float("inf")])})
    with pytest.raises(NonFiniteError, match=r"in reward: first seen at environment step 5 \(after 0 updates\)\.") as e:
        guard.verify()
    assert "more tensors" not in str(e.value)
