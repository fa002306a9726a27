"""Constrained RL: the Lagrangian advantage and multiplier (hand values, properties), costs from
info["cost"] to the rollout, and PPO-Lagrangian end to end (CLI, determinism, exact resume)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import dramaturg
from dramaturg.algos import ppo_lagrangian
from dramaturg.algos.common import train_on_policy
from dramaturg.config import ConfigError
from dramaturg.envs.costs import CartPoleWithPositionCost, PendulumWithTorqueCost
from dramaturg.envs.make import make_vec_env
from dramaturg.envs.vec import step_costs
from dramaturg.losses.constrained import (
    episode_cost_estimate,
    finished_episode_costs,
    lagrangian_advantage,
    multiplier_loss,
    project_multiplier_,
)
from dramaturg.losses.policy import ppo_clip
from tests.helpers import assert_same_state, dramaturg as cli, final_state, metric_rows


class KnownCosts(gym.Env):
    """Episodes of `horizon` steps (truncated); step t of an episode (from 1) costs (t, 10 t)."""

    observation_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, horizon: int = 3):
        self.horizon = horizon

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.full(1, self.t, np.float32)
        return obs, 1.0, False, self.t >= self.horizon, {"cost": (float(self.t), 10.0 * self.t)}


# -- the losses --------------------------------------------------------------------------------


def test_lagrangian_advantage_hand_values():
    adv_r = torch.tensor([1.0, -2.0])
    adv_c = torch.tensor([[0.5, 2.0], [-1.0, 0.0]])  # [N, K=2]
    lam = torch.tensor([1.0, 0.5])
    adv, _ = lagrangian_advantage(adv_r, adv_c, lam)
    # (1 - (1*0.5 + 0.5*2)) / 2.5 = -0.2 ;  (-2 - (1*-1 + 0)) / 2.5 = -0.4
    assert torch.allclose(adv, torch.tensor([-0.2, -0.4]))


def test_lagrangian_clipped_objective_hand_value_and_no_gradient_to_multiplier():
    lam = torch.tensor([3.0], requires_grad=True)
    adv, _ = lagrangian_advantage(torch.tensor([2.0, 1.0]), torch.tensor([[1.0], [-1.0]]), lam)
    assert torch.allclose(adv, torch.tensor([-0.25, 1.0]))  # (2 - 3) / 4, (1 + 3) / 4
    logp = torch.log(torch.tensor([1.5, 1.5])).requires_grad_()
    loss, _ = ppo_clip(logp, torch.zeros(2), adv, clip_eps=0.2)
    # ratio 1.5: min(1.5 * -0.25, 1.2 * -0.25) = -0.375 ; min(1.5 * 1, 1.2 * 1) = 1.2
    assert torch.isclose(loss, torch.tensor(-(-0.375 + 1.2) / 2))
    loss.backward()
    assert lam.grad is None


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_multiplier_rises_while_violated_and_falls_to_zero_not_below(optimizer: str):
    cfg = ppo_lagrangian.Config(num_envs=2, num_constraints=2, cost_limit=10.0, multiplier_lr=0.1,
                                multiplier_optimizer=optimizer)
    state = ppo_lagrangian.make(cfg, gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2), torch.device("cpu"))
    dones = torch.tensor([[0.0, 0.0], [1.0, 1.0]])  # each rollout: one 2-step episode per environment

    def rollout(cost: list[float]) -> torch.Tensor:
        costs = torch.tensor(cost).div(2).expand(2, 2, 2)  # [T, B, K]: episode cost = `cost`
        metrics = ppo_lagrangian.update_multiplier(state, cfg, costs, dones)
        assert torch.allclose(metrics["rollout/ep_cost_0"], torch.tensor(cost[0]))
        return state.multiplier.detach().clone()

    rising = [rollout([20.0, 5.0]) for _ in range(20)]  # the first constraint violated, the second kept
    assert all(b[0] > a[0] for a, b in zip(rising, rising[1:])) and rising[-1][0] > 1.0
    assert all(h[1] == 0.0 for h in rising)
    falling = torch.stack([rollout([2.0, 5.0]) for _ in range(100)])  # both kept
    peak = int(falling[:, 0].argmax())  # Adam's momentum carries it up a few steps after the switch
    assert peak == 0 if optimizer == "sgd" else peak < 10
    assert (falling[peak + 1:, 0] <= falling[peak:-1, 0]).all()
    assert falling[-1, 0] == 0.0 and (falling >= 0).all()


def test_finished_episode_costs_match_a_step_by_step_count():
    gen = torch.Generator().manual_seed(0)
    T, B, K = 17, 5, 2
    costs = torch.rand(T, B, K, generator=gen)
    dones = (torch.rand(T, B, generator=gen) < 0.2).float()
    running = torch.rand(B, K, generator=gen)
    total, count, still = finished_episode_costs(costs, dones, running)
    acc, ref_total, ref_count = running.clone(), torch.zeros(K), 0
    for t in range(T):
        acc += costs[t]
        for b in range(B):
            if dones[t, b]:
                ref_total += acc[b]
                ref_count += 1
                acc[b] = 0.0
    assert torch.allclose(total, ref_total) and count == ref_count and torch.allclose(still, acc)
    assert torch.equal(episode_cost_estimate(total, torch.tensor(0.0), torch.tensor([7.0, 8.0])), torch.tensor([7.0, 8.0]))


# -- costs from the environment to the rollout ----------------------------------------------------


def test_step_costs_reads_floats_sequences_masks_and_final_info():
    info = {"cost": np.array([0.0, 2.0, 3.0]), "_cost": np.array([False, True, True]),
            "final_info": {"cost": np.array([1.5, 0.0, 0.0]), "_cost": np.array([True, False, False])}}
    assert np.array_equal(step_costs(info, 3), [[1.5], [2.0], [3.0]])
    seq = np.empty(2, dtype=object)
    seq[:] = [(1.0, 2.0), None]
    assert np.array_equal(step_costs({"cost": seq, "_cost": np.array([True, False])}, 2), [[1.0, 2.0], [0.0, 0.0]])
    assert step_costs({}, 2) is None
    assert np.array_equal(step_costs({}, 2, num_costs=2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="same length K"):
        step_costs({"cost": np.array([1.0, 2.0])}, 2, num_costs=2)
    with pytest.raises(ValueError, match="finite"):
        step_costs({"cost": np.array([1.0, np.nan])}, 2)


def test_costs_flow_from_info_to_the_rollout(tmp_path: Path):
    seen = []

    def update(state, cfg, rollout, progress):
        seen.append(rollout)
        return ppo_lagrangian.update(state, cfg, rollout, progress)

    cfg = ppo_lagrangian.Config(
        env="tests.test_constrained:KnownCosts", num_envs=2, n_steps=6, batch_size=4, n_epochs=1, total_steps=24,
        num_constraints=2, cost_limit=5.0, eval_every=0, eval_episodes=1, progress=False, run_dir=str(tmp_path),
    )
    train_on_policy("ppo-lagrangian", cfg, ppo_lagrangian.make, update, sources=None, resume=False)
    per_step = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 3.0])  # the episode's last step's cost sits in final_info
    expected = torch.stack([per_step, 10 * per_step], -1).unsqueeze(1).expand(6, 2, 2)
    assert len(seen) == 2 and all(torch.equal(r.costs, expected) for r in seen)
    assert seen[0].values.shape == seen[0].next_values.shape == (6, 2, 3)  # V and two cost values
    rows = {(k, float(v)) for _, k, v in metric_rows(tmp_path)}
    assert ("rollout/ep_cost_0", 6.0) in rows and ("rollout/ep_cost_1", 60.0) in rows  # 1 + 2 + 3 per episode
    assert any(k == "train/lagrange_multiplier_1" and v > 0 for k, v in rows)


def test_envs_without_costs_give_none():
    env = make_vec_env("CartPole-v1", num_envs=2)
    env.reset()
    assert env.step(torch.zeros(2, dtype=torch.long)).costs is None


def test_cost_wrappers():
    env = CartPoleWithPositionCost(bound=0.05)
    env.reset(seed=0)
    steps = [env.step(1) for _ in range(8)]
    assert [info["cost"] for *_, info in steps] == [float(abs(obs[0]) > 0.05) for obs, *_ in steps]
    assert steps[-1][4]["cost"] == 1.0  # pushed one way, the cart leaves the band
    pendulum = PendulumWithTorqueCost(threshold=1.0)
    pendulum.reset(seed=0)
    assert [pendulum.step(np.array([u], np.float32))[4]["cost"] for u in (0.5, -1.5, 3.0)] == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="bound = 3.0"):
        CartPoleWithPositionCost(bound=3.0)


# -- configuration ----------------------------------------------------------------------------


def test_config_errors_name_field_and_range():
    with pytest.raises(ConfigError, match=r"ppo_lagrangian: cost_limit = -1.0 is invalid: must be >= 0"):
        ppo_lagrangian.Config(cost_limit=-1.0)
    with pytest.raises(ConfigError, match="multiplier_lr"):
        ppo_lagrangian.Config(multiplier_lr=0.0)


def test_an_env_without_costs_is_refused_by_name(tmp_path: Path):
    with pytest.raises(ConfigError, match="reports no info\\['cost'\\]"):
        dramaturg.train("ppo-lagrangian", env="CartPole-v1", n_steps=8, batch_size=8, total_steps=16,
                        eval_every=0, progress=False, run_dir=str(tmp_path))


# -- end to end -------------------------------------------------------------------------------

ARGV = ["ppo-lagrangian", "--env", "dramaturg.envs.costs:CartPoleWithPositionCost", "--env-kwargs", '{"bound": 0.1}',
        "--seed", "3", "--num-envs", "2", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "2", "--cost-limit", "3",
        "--lr-schedule", "constant", "--eval-every", "512", "--eval-episodes", "1", "--log-every", "128",
        "--checkpoint-every", "384", "--progress", "false", "--torch-threads", "1"]


def test_cli_stop_and_resume_is_exact(tmp_path: Path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    cli("train", *ARGV, "--total-steps", "1024", "--run-dir", str(whole))
    cli("train", *ARGV, "--total-steps", "512", "--run-dir", str(part))
    cli("train", "--resume", str(part), "--total-steps", "1024")
    assert_same_state(final_state(whole), final_state(part))
    assert metric_rows(whole) == metric_rows(part)
    keys = {k for _, k, _ in metric_rows(whole)}
    assert {"rollout/ep_cost", "train/lagrange_multiplier", "loss/cost_value", "eval/mean_return"} <= keys
    multipliers = [float(v) for _, k, v in metric_rows(whole) if k == "train/lagrange_multiplier"]
    assert multipliers[-1] > 0.0  # a band of 0.1 is left within a few steps: the constraint binds


def test_same_seed_same_parameters(tmp_path: Path):
    fields = dict(env="dramaturg.envs.costs:CartPoleWithPositionCost", env_kwargs={"bound": 0.1}, seed=11, num_envs=2,
                  n_steps=64, batch_size=64, n_epochs=2, cost_limit=3.0, total_steps=512, eval_every=0,
                  eval_episodes=1, progress=False, torch_threads=1)
    a = dramaturg.train("ppo-lagrangian", run_dir=str(tmp_path / "a"), **fields)
    b = dramaturg.train("ppo-lagrangian", run_dir=str(tmp_path / "b"), **fields)
    pa, pb = dict(a.policy.named_parameters()), dict(b.policy.named_parameters())
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert_same_state(final_state(a.run_dir), final_state(b.run_dir))
    assert metric_rows(a.run_dir) == metric_rows(b.run_dir)
