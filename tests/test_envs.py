"""The environment adapter: tensors out, termination apart from truncation, exact replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import dramaturg
from dramaturg.envs.make import make_vec_env
from dramaturg.envs.factory import EnvError, env_factory


def test_truncation_returns_the_final_observation():
    env = make_vec_env("tests.envs:make_short_corridor", {"length": 4, "limit": 3}, num_envs=2)
    obs = env.reset()
    assert torch.equal(obs, torch.zeros(2, 1))
    right = torch.ones(2, dtype=torch.long)
    for _ in range(2):
        step = env.step(right)
        assert not step.any_done
    step = env.step(right)  # third step: cut off by the time limit at x = 3
    assert step.any_done and step.any_truncated
    assert torch.equal(step.truncated, torch.ones(2)) and torch.equal(step.terminated, torch.zeros(2))
    assert torch.allclose(step.final_obs, torch.full((2, 1), 0.75))  # the state that was cut off
    assert torch.equal(step.obs, torch.zeros(2, 1))  # already the next episode's first state
    assert env.pop_finished() == [(0.0, 3), (0.0, 3)]


def test_termination_is_not_truncation():
    env = make_vec_env("tests.envs:make_short_corridor", {"length": 2, "limit": 5}, num_envs=1)
    env.reset()
    env.step(torch.ones(1, dtype=torch.long))
    step = env.step(torch.ones(1, dtype=torch.long))
    assert step.terminated.item() == 1.0 and step.truncated.item() == 0.0
    assert step.rewards.item() == 1.0 and step.final_obs.item() == 1.0


@pytest.mark.parametrize("vector_env", ["sync", "async"])
def test_replay_rebuilds_every_subenvironment(vector_env):
    a = make_vec_env("Pendulum-v1", num_envs=3, seed=7, vector_env=vector_env)
    a.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(250):  # past Pendulum's 200-step limit, so episodes have restarted
        a.step(torch.rand(3, 1, generator=gen) * 4 - 2)
    saved = a.state_dict()
    b = make_vec_env("Pendulum-v1", num_envs=3, seed=7, vector_env=vector_env)
    obs_b = b.load_state_dict(saved)
    assert np.array_equal(b.raw_obs, a.raw_obs)
    actions = torch.rand(3, 1, generator=gen) * 4 - 2
    for _ in range(60):
        sa, sb = a.step(actions), b.step(actions)
        assert torch.equal(sa.obs, sb.obs) and torch.equal(sa.rewards, sb.rewards)
    assert obs_b.shape == (3, 3)
    a.close()
    b.close()


def test_dict_observations_and_multidiscrete_actions_train(tmp_path: Path):
    result = dramaturg.train(
        "ppo", env="tests.envs:DictTarget", seed=0, total_steps=512, n_steps=64, batch_size=64, num_envs=2,
        eval_every=256, eval_episodes=2, run_dir=str(tmp_path / "run"), progress=False, normalize_obs=True,
    )
    obs = {"position": np.array([1.0, 2.0], np.float32), "target": np.array([3.0, 3.0], np.float32)}
    action = result.policy.act(obs)
    assert action.shape == (2,) and set(action.tolist()) <= {0, 1, 2}
    loaded = dramaturg.load(result.run_dir)
    assert np.array_equal(loaded.act(obs), action)
    batch = {k: np.stack([v, v]) for k, v in obs.items()}
    assert loaded.act(batch).shape == (2, 2)


def test_box_actions_are_clipped_to_the_bounds(tmp_path: Path):
    result = dramaturg.train(
        "ppo", env="Pendulum-v1", preset=False, total_steps=256, n_steps=128, eval_every=0, log_std_init=3.0,
        run_dir=str(tmp_path / "run"), progress=False,
    )
    obs = torch.randn(500, 3)
    actions = result.policy(obs, deterministic=False)
    assert actions.abs().max() <= 2.0 and actions.abs().max() > 1.9  # wide std, clipped to [-2, 2]


def test_unknown_environment_suggests_close_ids():
    with pytest.raises(EnvError, match="did you mean.*CartPole-v1"):
        env_factory("CartPol-v1")
    with pytest.raises(EnvError, match="cannot import 'Nope' from 'tests.envs'"):
        env_factory("tests.envs:Nope")
    with pytest.raises(EnvError, match="not a gymnasium.Env"):
        env_factory("pathlib:Path")


def test_async_workers_give_the_same_run_as_sync(tmp_path: Path):
    fields = dict(env="CartPole-v1", seed=4, total_steps=512, num_envs=2, n_steps=64, batch_size=64,
                  eval_every=0, progress=False)
    sync = dramaturg.train("ppo", vector_env="sync", run_dir=str(tmp_path / "sync"), **fields)
    async_ = dramaturg.train("ppo", vector_env="async", run_dir=str(tmp_path / "async"), **fields)
    a, b = dict(sync.policy.named_parameters()), dict(async_.policy.named_parameters())
    assert all(torch.equal(a[k], b[k]) for k in a)
