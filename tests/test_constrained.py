"""Constrained RL: the Lagrangian advantage and multiplier (hand values, properties), costs from
info["cost"] to the rollout, and PPO-Lagrangian end to end (CLI, determinism, exact resume)."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import dramaturg
from dramaturg.algos import ppo_lagrangian
from dramaturg.algos.common import train_on_policy
from dramaturg.config import ConfigError, from_dict, parse_value
from dramaturg.envs.costs import CartPoleWithPositionCost, PendulumWithTorqueCost
from dramaturg.envs.make import make_vec_env
from dramaturg.envs.vec import step_costs
from dramaturg.losses.constrained import (
    episode_cost_estimate,
    finished_episode_costs,
    lagrangian_advantage,
    multiplier_loss,
    pid_multiplier,
    project_multiplier_,
)
from dramaturg.losses.policy import ppo_clip
from tests.helpers import assert_resume_is_exact, assert_same_state, final_state, metric_rows
from tests.helpers import dramaturg as cli


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


def test_multiplier_loss_gradient_and_projection_hand_values():
    lam = torch.tensor([0.5, 2.0], requires_grad=True)
    loss, metrics = multiplier_loss(lam, torch.tensor([30.0, 4.0]), torch.tensor([25.0, 10.0]))
    assert torch.isclose(
        loss, torch.tensor(-(0.5 * 5.0 + 2.0 * -6.0))
    )  # -sum_k lambda_k (J_c,k - d_k)
    loss.backward()
    assert torch.equal(
        lam.grad, torch.tensor([-5.0, 6.0])
    )  # descent raises lambda_0, lowers lambda_1
    assert metrics["train/constraint_violation"] == 5.0
    stepped = torch.tensor([-0.3, 1.5, 7.0])
    assert torch.equal(project_multiplier_(stepped), torch.tensor([0.0, 1.5, 7.0]))
    assert torch.equal(project_multiplier_(stepped, upper=2.0), torch.tensor([0.0, 1.5, 2.0]))


def test_pid_multiplier_hand_values():
    d, prev = torch.tensor([10.0, 10.0]), torch.tensor([12.0, 4.0])
    lam, integral = pid_multiplier(
        torch.tensor([14.0, 6.0]), prev, d, torch.tensor([1.0, 0.5]), kp=0.5, ki=0.1, kd=0.25
    )
    # violation (4, -4); integral (1 + 0.4, max(0.5 - 0.4, 0)) = (1.4, 0.1); rise (2, 2)
    # lambda = (0.5 * 4 + 1.4 + 0.25 * 2, max(0.5 * -4 + 0.1 + 0.25 * 2, 0)) = (3.9, 0)
    assert torch.allclose(integral, torch.tensor([1.4, 0.1])) and torch.allclose(
        lam, torch.tensor([3.9, 0.0])
    )
    # K_P = K_D = 0: projected gradient ascent with step K_I
    lam, _ = pid_multiplier(
        torch.tensor([14.0, 6.0]), prev, d, torch.tensor([1.0, 0.3]), kp=0.0, ki=0.1, kd=0.0
    )
    assert torch.allclose(lam, torch.tensor([1.4, 0.0]))


@pytest.mark.parametrize(
    "optimizer, gains",
    [("sgd", {}), ("adam", {}), ("pid", {"multiplier_kp": 0.05, "multiplier_kd": 0.02})],
)
def test_multiplier_rises_while_violated_and_falls_to_zero_not_below(optimizer: str, gains: dict):
    # K = 2 constraints with their own limits; every multiplier starts at 1
    cfg = ppo_lagrangian.Config(
        num_envs=2,
        cost_limit=(10.0, 6.0),
        multiplier_lr=0.1,
        multiplier_init=1.0,
        multiplier_optimizer=optimizer,
        **gains,
    )
    state = ppo_lagrangian.make(
        cfg, gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2), torch.device("cpu")
    )
    dones = torch.tensor(
        [[0.0, 0.0], [1.0, 1.0]]
    )  # each rollout: one 2-step episode per environment

    def rollout(cost: list[float]) -> torch.Tensor:
        costs = torch.tensor(cost).div(2).expand(2, 2, 2)  # [T, B, K]: episode cost = `cost`
        metrics = ppo_lagrangian.update_multiplier(state, cfg, costs, dones)
        assert torch.allclose(metrics["rollout/ep_cost_0"], torch.tensor(cost[0]))
        assert torch.equal(metrics["train/lagrange_multiplier_1"], state.multiplier.detach()[1])
        return state.multiplier.detach().clone()

    # Adam's momentum carries lambda on the old way for a few steps after a switch (not sgd's or pid's)
    lag = 10 if optimizer == "adam" else 1

    def rises(h: torch.Tensor) -> bool:
        up = h[1:] > h[:-1]
        start = int(up.int().argmax())
        return start < lag and bool(up[start:].all()) and float(h[-1]) > 1.5

    def falls_to_zero(h: torch.Tensor) -> bool:
        peak = int(h.argmax())
        return (
            peak < lag
            and bool((h[peak + 1 :] <= h[peak:-1]).all())
            and h[-1] == 0.0
            and bool((h >= 0).all())
        )

    # the same cost 8 in both: within the first limit (10), over the second (6)
    first = torch.stack([rollout([8.0, 8.0]) for _ in range(40)])
    assert falls_to_zero(first[:, 0]) and rises(first[:, 1])
    # cost 12 and 4: the first limit broken, the second kept
    second = torch.stack([rollout([12.0, 4.0]) for _ in range(150)])
    assert rises(second[:, 0]) and falls_to_zero(second[:, 1])
    if optimizer == "sgd":  # lambda_k <- max(lambda_k + lr (J_c,k - d_k), 0)
        assert torch.allclose(first[-1], torch.tensor([0.0, 1.0 + 40 * 0.1 * 2]))


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
    assert torch.equal(
        episode_cost_estimate(total, torch.tensor(0.0), torch.tensor([7.0, 8.0])),
        torch.tensor([7.0, 8.0]),
    )


# -- costs from the environment to the rollout ----------------------------------------------------


def test_step_costs_reads_floats_sequences_masks_and_final_info():
    info = {
        "cost": np.array([0.0, 2.0, 3.0]),
        "_cost": np.array([False, True, True]),
        "final_info": {"cost": np.array([1.5, 0.0, 0.0]), "_cost": np.array([True, False, False])},
    }
    assert np.array_equal(step_costs(info, 3), [[1.5], [2.0], [3.0]])
    seq = np.empty(2, dtype=object)
    seq[:] = [(1.0, 2.0), None]
    assert np.array_equal(
        step_costs({"cost": seq, "_cost": np.array([True, False])}, 2), [[1.0, 2.0], [0.0, 0.0]]
    )
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
        env="tests.test_constrained:KnownCosts",
        num_envs=2,
        n_steps=6,
        batch_size=4,
        n_epochs=1,
        total_steps=24,
        cost_limit=(10.0, 50.0),
        multiplier_init=0.0,
        eval_every=0,
        eval_episodes=1,
        progress=False,
        run_dir=str(tmp_path),
    )
    train_on_policy("ppo-lagrangian", cfg, ppo_lagrangian.make, update, sources=None, resume=False)
    per_step = torch.tensor(
        [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    )  # the episode's last step's cost sits in final_info
    expected = torch.stack([per_step, 10 * per_step], -1).unsqueeze(1).expand(6, 2, 2)
    assert len(seen) == 2 and all(torch.equal(r.costs, expected) for r in seen)
    assert seen[0].values.shape == seen[0].next_values.shape == (6, 2, 3)  # V and two cost values
    rows = {(k, float(v)) for _, k, v in metric_rows(tmp_path)}
    assert ("rollout/ep_cost_0", 6.0) in rows and (
        "rollout/ep_cost_1",
        60.0,
    ) in rows  # 1 + 2 + 3 per episode
    # each against its own limit: 60 > 50 raises the second multiplier, 6 <= 10 leaves the first at 0
    assert any(k == "train/lagrange_multiplier_1" and v > 0 for k, v in rows)
    assert all(v == 0 for k, v in rows if k == "train/lagrange_multiplier_0")


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
    assert [pendulum.step(np.array([u], np.float32))[4]["cost"] for u in (0.5, -1.5, 3.0)] == [
        0.0,
        0.5,
        1.0,
    ]
    with pytest.raises(ValueError, match="bound = 3.0"):
        CartPoleWithPositionCost(bound=3.0)


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            {"cost_limit": -1.0},
            r"cost_limit = \(-1.0,\) is invalid: must be one or more limits, each >= 0 and finite",
        ),
        (
            {"cost_limit": (25.0, math.inf)},
            r"cost_limit = \(25.0, inf\) is invalid: must be one or more limits",
        ),
        ({"cost_limit": ()}, r"cost_limit = \(\) is invalid: must be one or more limits"),
        (
            {"cost_limit": (25.0, "x")},
            r"cost_limit = \(25.0, 'x'\) is invalid: must be of type tuple\[float, \.\.\.\]",
        ),
        (
            {"cost_limit": (1.0, 2.0, 3.0), "num_constraints": 2},
            r"cost_limit = \(1.0, 2.0, 3.0\) is invalid: must hold one limit or num_constraints = 2 limits",
        ),
        ({"num_constraints": 0}, r"num_constraints = 0 is invalid: must be > 0"),
        ({"multiplier_lr": 0.0}, r"multiplier_lr = 0.0 is invalid: must be > 0"),
        ({"multiplier_init": -1.0}, r"multiplier_init = -1.0 is invalid: must be >= 0"),
        (
            {"multiplier_optimizer": "rmsprop"},
            r"multiplier_optimizer = 'rmsprop' is invalid: must be one of adam, sgd, pid",
        ),
        (
            {"multiplier_kp": 0.1},
            r"multiplier_kp = 0.1 is invalid: must be 0 unless multiplier_optimizer is pid",
        ),
        (
            {"multiplier_kd": -0.1, "multiplier_optimizer": "pid"},
            r"multiplier_kd = -0.1 is invalid: must be >= 0",
        ),
    ],
)
def test_config_errors_name_field_and_range(fields: dict, message: str):
    with pytest.raises(ConfigError, match="ppo_lagrangian: " + message):
        ppo_lagrangian.Config(**fields)


def test_cost_limits_per_constraint_from_the_command_line_and_older_configs():
    assert parse_value(ppo_lagrangian.Config, "cost_limit", "25") == (25.0,)
    assert parse_value(ppo_lagrangian.Config, "cost_limit", "25,10.5") == (25.0, 10.5)
    with pytest.raises(
        ConfigError, match=r"cost_limit = '25,x' is invalid: must be of type tuple\[float, \.\.\.\]"
    ):
        parse_value(ppo_lagrangian.Config, "cost_limit", "25,x")
    assert ppo_lagrangian.Config(cost_limit=[25, 10]).limits == (25.0, 10.0)
    # a config written before limits per constraint: one float and num_constraints
    old = from_dict(ppo_lagrangian.Config, {"cost_limit": 5.0, "num_constraints": 2})
    assert old.cost_limit == (5.0,) and old.limits == (5.0, 5.0)


def test_an_env_without_costs_is_refused_by_name(tmp_path: Path):
    with pytest.raises(ConfigError, match="reports no info\\['cost'\\]"):
        dramaturg.train(
            "ppo-lagrangian",
            env="CartPole-v1",
            n_steps=8,
            batch_size=8,
            total_steps=16,
            eval_every=0,
            progress=False,
            run_dir=str(tmp_path),
        )


# -- end to end -------------------------------------------------------------------------------

ARGV = [
    "ppo-lagrangian",
    "--env",
    "dramaturg.envs.costs:CartPoleWithPositionCost",
    "--env-kwargs",
    '{"bound": 0.1}',
    "--seed",
    "3",
    "--num-envs",
    "2",
    "--n-steps",
    "64",
    "--batch-size",
    "64",
    "--n-epochs",
    "2",
    "--cost-limit",
    "3",
    "--multiplier-init",
    "0",
    "--lr-schedule",
    "constant",
    "--eval-every",
    "512",
    "--eval-episodes",
    "1",
    "--log-every",
    "128",
    "--checkpoint-every",
    "384",
    "--progress",
    "false",
    "--torch-threads",
    "1",
]


@pytest.mark.parametrize(
    "multiplier",
    [[], ["--multiplier-optimizer", "pid", "--multiplier-kp", "0.05", "--multiplier-kd", "0.1"]],
    ids=["adam", "pid"],
)
def test_cli_stop_and_resume_is_exact(tmp_path: Path, multiplier: list[str]):
    whole, _ = assert_resume_is_exact(cli, [*ARGV, *multiplier], 1024, 512, tmp_path)
    keys = {k for _, k, _ in metric_rows(whole)}
    assert {
        "rollout/ep_cost",
        "train/lagrange_multiplier",
        "loss/cost_value",
        "eval/mean_return",
    } <= keys
    multipliers = [float(v) for _, k, v in metric_rows(whole) if k == "train/lagrange_multiplier"]
    assert multipliers[-1] > 0.0  # a band of 0.1 is left within a few steps: the constraint binds


def test_same_seed_same_parameters(tmp_path: Path):
    fields = {
        "env": "dramaturg.envs.costs:CartPoleWithPositionCost",
        "env_kwargs": {"bound": 0.1},
        "seed": 11,
        "num_envs": 2,
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 2,
        "cost_limit": 3.0,
        "total_steps": 512,
        "eval_every": 0,
        "eval_episodes": 1,
        "progress": False,
        "torch_threads": 1,
    }
    a = dramaturg.train("ppo-lagrangian", run_dir=str(tmp_path / "a"), **fields)
    b = dramaturg.train("ppo-lagrangian", run_dir=str(tmp_path / "b"), **fields)
    pa, pb = dict(a.policy.named_parameters()), dict(b.policy.named_parameters())
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert_same_state(final_state(a.run_dir), final_state(b.run_dir))
    assert metric_rows(a.run_dir) == metric_rows(b.run_dir)


@pytest.mark.learning
def test_learns_to_keep_the_cost_limit(tmp_path: Path):
    """The claim-check task (benchmarks/claims/constrained.py), where unconstrained PPO ends at an
    episode cost of about 470 with this seed: within 60,000 steps the training episodes' cost falls
    under the limit of 100 after the multiplier has risen."""
    fields = {
        "env": "dramaturg.envs.costs:CartPoleWithPositionCost",
        "env_kwargs": {"bound": 0.05},
        "cost_limit": 100.0,
        "seed": 2,
        "num_envs": 8,
        "n_steps": 32,
        "batch_size": 256,
        "gae_lambda": 0.8,
        "gamma": 0.98,
        "n_epochs": 20,
        "ent_coef": 0.0,
        "learning_rate": 1e-3,
        "lr_schedule": "constant",
        "clip_range_schedule": "constant",
        "cost_gamma": 0.98,
        "cost_gae_lambda": 0.8,
        "total_steps": 60_000,
        "eval_every": 0,
        "log_every": 5_000,
        "checkpoint_every": 0,
        "progress": False,
        "torch_threads": 1,
    }
    dramaturg.train("ppo-lagrangian", preset=False, run_dir=str(tmp_path), **fields)
    rows = metric_rows(tmp_path)
    costs = [float(v) for _, k, v in rows if k == "rollout/ep_cost"]
    multipliers = [float(v) for _, k, v in rows if k == "train/lagrange_multiplier"]
    # the constraint was broken and pushed back
    assert max(costs) > 100.0 and max(multipliers) > 2.0
    assert costs[-1] <= 100.0, costs
