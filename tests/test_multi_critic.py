"""Multi-critic learning from a vector reward (SLIM) as an option of PPO and SAC: the combinations
against hand values and their limiting cases, the reward vector from info["reward_vector"] to the
rollout and the replay buffer, the wrappers, config validation, and runs that repeat and resume exactly."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import dramaturg
from dramaturg import cli
from dramaturg.algos import ppo, ppo_lagrangian, sac
from dramaturg.algos.common import train_off_policy, train_on_policy
from dramaturg.config import ConfigError
from dramaturg.data import ReplayBuffer
from dramaturg.envs.make import make_vec_env
from dramaturg.envs.multi_reward import CartPoleWithNoise, PendulumRewardComponents
from dramaturg.envs.vec import step_costs
from dramaturg.functional import gae
from dramaturg.losses.multi_critic import (
    combine_advantages,
    combine_q,
    component_q_regression,
    component_value_loss,
)
from dramaturg.losses.q import q_regression
from dramaturg.losses.value import clipped_value, value_mse
from tests.helpers import assert_resume_is_exact, assert_same_state, final_state, metric_rows
from tests.helpers import dramaturg as run_cli

F64 = torch.float64


def close(actual, expected, atol=1e-12):
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=F64),
        torch.as_tensor(expected, dtype=F64),
        rtol=0.0,
        atol=atol,
    )


class KnownRewardVector(gym.Env):
    """Episodes of `horizon` steps (truncated); step t of an episode (from 1) has reward components
    (t, 100 t) and scalar reward 1. Discrete or (`continuous`) Box actions."""

    observation_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)

    def __init__(self, horizon: int = 3, continuous: bool = False):
        self.horizon = horizon
        self.action_space = (
            gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(2)
        )

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return (
            np.full(1, self.t, np.float32),
            1.0,
            False,
            self.t >= self.horizon,
            {"reward_vector": (float(self.t), 100.0 * self.t)},
        )


def known_continuous(**kwargs):
    return KnownRewardVector(continuous=True, **kwargs)


# -- the combinations ------------------------------------------------------------------------------


def test_combined_advantage_hand_values():
    adv = torch.tensor(
        [[1.0, 10.0], [3.0, 30.0], [2.0, 20.0]], dtype=F64
    )  # means 2, 20; stds 1, 10
    combined, metrics = combine_advantages(adv, torch.tensor([1.0, 0.5], dtype=F64), normalize=True)
    close(combined, [-1.5, 1.5, 0.0], atol=1e-7)  # (-1, 1, 0) + 0.5 (-1, 1, 0)
    close(metrics["train/component_advantage_std_max"], 10.0)
    raw, _ = combine_advantages(adv, torch.tensor([1.0, 0.5], dtype=F64), normalize=False)
    close(raw, [6.0, 18.0, 12.0])


def test_with_one_component_the_combination_is_ppos_standardised_advantage():
    adv = torch.randn(64, 1, generator=torch.Generator().manual_seed(0), dtype=F64) * 7 + 3
    combined, _ = combine_advantages(adv, torch.ones(1, dtype=F64), normalize=True)
    a = adv[:, 0]
    close(combined, (a - a.mean()) / (a.std() + 1e-8))


def test_components_on_equal_scales_give_the_normalised_sum():
    g = torch.Generator().manual_seed(1)
    adv = torch.randn(128, 3, generator=g, dtype=F64)
    adv = (adv - adv.mean(0)) / adv.std(0) * 4.0  # every component: mean 0, std 4
    combined, _ = combine_advantages(adv, torch.ones(3, dtype=F64), normalize=True)
    close(
        combined, adv.sum(-1) / (4.0 + 1e-8), atol=1e-12
    )  # 1e-8 keeps a constant component finite


def test_the_normalised_combination_ignores_each_components_scale():
    g = torch.Generator().manual_seed(2)
    adv = torch.randn(50, 3, generator=g, dtype=F64)
    scaled = adv * torch.tensor([0.1, 1.0, 1e4], dtype=F64) + torch.tensor(
        [5.0, -2.0, 300.0], dtype=F64
    )
    w = torch.tensor([0.2, 1.0, 3.0], dtype=F64)
    close(
        combine_advantages(scaled, w, normalize=True)[0],
        combine_advantages(adv, w, normalize=True)[0],
        atol=1e-6,
    )
    # without normalisation the largest component decides the sign almost everywhere
    raw = combine_advantages(scaled, w, normalize=False)[0]
    assert (raw.sign() == scaled[:, 2].sign()).all()


def test_without_normalisation_it_is_the_advantage_of_one_critic_on_the_weighted_sum():
    g = torch.Generator().manual_seed(3)
    T, B, K = 9, 4, 3
    r, v, nv = (torch.randn(T, B, K, generator=g, dtype=F64) for _ in range(3))
    terminated = (torch.rand(T, B, generator=g) < 0.2).to(F64)
    dones = torch.maximum(terminated, (torch.rand(T, B, generator=g) < 0.2).to(F64))
    w = torch.tensor([0.5, 2.0, 1.0], dtype=F64)
    per = gae(r, v, nv, terminated[..., None], dones[..., None], gamma=0.97, lam=0.9)  # [T, B, K]
    combined, _ = combine_advantages(per.reshape(-1, K), w, normalize=False)
    single = gae(
        (r * w).sum(-1), (v * w).sum(-1), (nv * w).sum(-1), terminated, dones, gamma=0.97, lam=0.9
    )
    close(combined, single.reshape(-1), atol=1e-12)


def test_combined_q_hand_values_and_limits():
    q = torch.tensor(
        [[1.0, 3.0], [10.0, 30.0]], dtype=F64
    )  # [K=2, N=2], batch stds sqrt 2 and 10 sqrt 2
    combined, metrics = combine_q(q, torch.ones(2, dtype=F64), normalize=True)
    close(combined, [20.0 / 11, 60.0 / 11], atol=1e-7)  # u = (10/11, 1/11)
    close(metrics["train/component_weight_max"], 10.0 / 11, atol=1e-8)
    plain, _ = combine_q(q, torch.tensor([1.0, 3.0], dtype=F64), normalize=False)
    close(plain, [(1 + 30) / 4, (3 + 90) / 4])  # u = w / sum w
    one = torch.randn(1, 16, generator=torch.Generator().manual_seed(4), dtype=F64) * 50
    close(
        combine_q(one, torch.full((1,), 7.0, dtype=F64), normalize=True)[0], one[0]
    )  # K = 1: SAC's Q
    # the weights are constants: the actor's gradient is sum_k u_k dQ_k
    q = q.clone().requires_grad_()
    combine_q(q, torch.ones(2, dtype=F64), normalize=True)[0].sum().backward()
    close(q.grad, [[10.0 / 11] * 2, [1.0 / 11] * 2], atol=1e-8)


def test_component_losses_reduce_to_the_single_critic_ones():
    g = torch.Generator().manual_seed(5)
    v, r, v_old = (torch.randn(32, 1, generator=g, dtype=F64) for _ in range(3))
    close(component_value_loss(v, r)[0], value_mse(v[:, 0], r[:, 0])[0])
    close(
        component_value_loss(v, r, v_old, clip=0.1)[0],
        clipped_value(v[:, 0], v_old[:, 0], r[:, 0], clip=0.1)[0],
    )
    close(
        component_value_loss(torch.zeros(1, 2, dtype=F64), torch.tensor([[1.0, 2.0]], dtype=F64))[
            0
        ],
        5.0,
    )  # 1 + 4
    q, y = torch.randn(2, 1, 32, generator=g, dtype=F64), torch.randn(1, 32, generator=g, dtype=F64)
    close(component_q_regression(q, y)[0], q_regression(q[:, 0], y[0])[0])
    close(
        component_q_regression(
            torch.zeros(2, 2, 1, dtype=F64), torch.tensor([[1.0], [2.0]], dtype=F64)
        )[0],
        5.0,
    )


# -- the vector reward from the environment to the update -------------------------------------------


def test_step_reads_reward_vectors_like_costs():
    info = {
        "reward_vector": np.array([None, (2.0, 3.0)], dtype=object),
        "_reward_vector": np.array([False, True]),
        "final_info": {
            "reward_vector": np.array([(1.0, 5.0), None], dtype=object),
            "_reward_vector": np.array([True, False]),
        },
    }
    assert np.array_equal(step_costs(info, 2, key="reward_vector"), [[1.0, 5.0], [2.0, 3.0]])
    with pytest.raises(ValueError, match=r'info\["reward_vector"\] must be finite'):
        step_costs({"reward_vector": np.array([[1.0, np.inf]])}, 1, key="reward_vector")
    env = make_vec_env("CartPole-v1", num_envs=2)
    env.reset()
    assert env.step(torch.zeros(2, dtype=torch.long)).reward_vector is None


def test_reward_vector_reaches_the_rollout_intact(tmp_path: Path):
    seen = []

    def update(state, cfg, rollout, progress):
        seen.append(rollout)
        return ppo.update(state, cfg, rollout, progress)

    cfg = ppo.Config(
        env="tests.test_multi_critic:KnownRewardVector",
        num_envs=2,
        n_steps=6,
        batch_size=4,
        n_epochs=1,
        total_steps=24,
        reward_components=2,
        eval_every=0,
        progress=False,
        run_dir=str(tmp_path),
    )
    train_on_policy("ppo", cfg, ppo.make, update, sources=None, resume=False)
    per_step = torch.tensor(
        [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    )  # the episode's last step sits in final_info
    expected = torch.stack([per_step, 100 * per_step], -1).unsqueeze(1).expand(6, 2, 2)
    assert len(seen) == 2 and all(torch.equal(r.reward_vector, expected) for r in seen)
    assert all(torch.equal(r.rewards, torch.ones(6, 2)) for r in seen)
    assert seen[0].values.shape == seen[0].next_values.shape == (6, 2, 2)
    keys = {k for _, k, _ in metric_rows(tmp_path)}
    assert {
        "train/explained_variance_0",
        "train/explained_variance_1",
        "train/component_advantage_std_max",
    } <= keys


def test_reward_vector_reaches_the_replay_buffer_intact(tmp_path: Path):
    seen = []

    def update(state, cfg, batch):
        seen.append(batch)
        return sac.update(state, cfg, batch)

    cfg = sac.Config(
        env="tests.test_multi_critic:known_continuous",
        num_envs=2,
        total_steps=40,
        learning_starts=20,
        batch_size=16,
        net_arch=(8,),
        reward_components=2,
        eval_every=0,
        progress=False,
        run_dir=str(tmp_path),
    )
    explore = lambda state, obs: state.actor.act(obs)  # noqa: E731
    train_off_policy("sac", cfg, sac.make, update, explore, sources=None, resume=False)
    assert len(seen) == 11  # at steps 20, 22, ..., 40
    for batch in seen:  # next_obs is the true one at episode ends, and t = next_obs
        t = batch.next_obs[:, 0]
        assert torch.equal(batch.reward_vector, torch.stack([t, 100 * t], -1))


def test_replay_buffer_checkpoints_the_vector_and_takes_one_that_appears_late():
    buf = ReplayBuffer(8)
    obs = torch.zeros(2, 1)
    buf.add(obs, torch.zeros(2, 1), torch.ones(2), obs, torch.zeros(2))
    buf.add(
        obs + 1,
        torch.zeros(2, 1),
        torch.ones(2),
        obs + 1,
        torch.zeros(2),
        torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
    )
    assert torch.equal(
        buf.storage["reward_vector"][:4],
        torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 2.0], [3.0, 4.0]]),
    )
    copy = ReplayBuffer(8)
    copy.load_state_dict(buf.state_dict())
    torch.manual_seed(0)
    a = buf.sample(16)
    torch.manual_seed(0)
    b = copy.sample(16)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and a.reward_vector.shape == (16, 2)


# -- the wrappers ----------------------------------------------------------------------------------


def test_pendulum_components_sum_to_pendulums_reward():
    wrapped, plain = PendulumRewardComponents(), gym.make("Pendulum-v1")
    wrapped.reset(seed=3)
    plain.reset(seed=3)
    for u in (2.0, -0.7, 5.0, 0.0, -2.0):
        _, r, *_, info = wrapped.step(np.array([u], np.float32))
        _, r_plain, *_ = plain.step(np.array([u], np.float32))
        assert info["reward_vector"].shape == (3,) and np.isclose(r, r_plain, rtol=0, atol=1e-6)
        assert np.isclose(info["reward_vector"].sum(), r)
    assert np.isclose(info["reward_vector"][2], -0.004)  # u = -2 clipped to the torque range
    rescaled = PendulumRewardComponents(scalar_weights=[1.0, 0.0, 100.0])
    rescaled.reset(seed=3)
    _, r, *_, info = rescaled.step(np.array([1.0], np.float32))
    assert np.isclose(r, info["reward_vector"] @ [1.0, 0.0, 100.0])
    with pytest.raises(ValueError, match="scalar_weights"):
        PendulumRewardComponents(scalar_weights=[1.0, 2.0])


def test_cartpole_noise_is_seeded_and_leaves_cartpoles_reward():
    def episode(scale: float) -> list[np.ndarray]:
        env = CartPoleWithNoise(scale=scale)
        env.reset(seed=7)
        return [env.step(t % 2)[4]["reward_vector"] for t in range(6)]

    a, b, quiet = episode(10.0), episode(10.0), episode(0.0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(x[0] == 1.0 for x in a) and np.std([x[1] for x in a]) > 1.0
    assert all(np.array_equal(x, [1.0, 0.0]) for x in quiet)
    with pytest.raises(ValueError, match="scale = -1"):
        CartPoleWithNoise(scale=-1)


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "overrides", "message"),
    [
        (ppo, {"reward_components": -1}, "ppo: reward_components = -1 is invalid: must be >= 0"),
        (
            ppo,
            {"reward_weights": "1"},
            "ppo: reward_weights = '1' is invalid: must have one weight per reward component",
        ),
        (
            ppo,
            {"reward_components": 2, "reward_weights": "1"},
            "ppo: reward_weights = '1' is invalid: must have one",
        ),
        (
            ppo,
            {"reward_components": 2, "reward_weights": "1,x"},
            "ppo: reward_weights = '1,x' is invalid: must be numbers",
        ),
        (
            ppo,
            {"reward_components": 2, "reward_weights": "1,-1"},
            "ppo: reward_weights = '1,-1' is invalid: must be finite and >= 0",
        ),
        (
            ppo,
            {"reward_components": 2, "policy": "gmm"},
            "ppo: policy = 'gmm' is invalid: must be gaussian when reward_components > 0",
        ),
        (
            sac,
            {"reward_components": 2, "reward_weights": "0,0"},
            "sac: reward_weights = '0,0' is invalid: must be finite and >= 0, not all 0",
        ),
        (
            ppo_lagrangian,
            {"reward_components": 2},
            "ppo_lagrangian: reward_components = 2 is invalid: must be 0: an option of ppo and sac only",
        ),
    ],
)
def test_config_rejects_bad_values_naming_field_value_and_range(module, overrides, message):
    with pytest.raises(ConfigError) as err:
        module.Config(**overrides)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("env", "env_kwargs", "message"),
    [
        (
            "CartPole-v1",
            {},
            r"ppo: reward_components = 2 but the environment 'CartPole-v1' reports no info\['reward_vector'\]",
        ),
        (
            "dramaturg.envs.multi_reward:PendulumRewardComponents",
            {},
            r"reports info\['reward_vector'\] = \[.*\] \(3 components\)",
        ),
    ],
)
def test_an_env_without_the_reward_vector_is_refused_before_training(
    tmp_path: Path, env, env_kwargs, message
):
    with pytest.raises(ConfigError, match=message):
        dramaturg.train(
            "ppo",
            env=env,
            env_kwargs=env_kwargs,
            reward_components=2,
            n_steps=8,
            batch_size=8,
            total_steps=16,
            eval_every=0,
            progress=False,
            run_dir=str(tmp_path / "run"),
        )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_the_option_is_documented_in_help(algo):
    help_text = " ".join(cli.field_parser(algo).format_help().split())
    assert "--reward-components" in help_text and 'info["reward_vector"]' in help_text
    assert "--reward-weights" in help_text and "--normalize-components" in help_text


# -- runs ------------------------------------------------------------------------------------------

PPO = [
    "ppo",
    "--env",
    "dramaturg.envs.multi_reward:CartPoleWithNoise",
    "--reward-components",
    "2",
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
    "--eval-every",
    "256",
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
SAC = [
    "sac",
    "--env",
    "dramaturg.envs.multi_reward:PendulumRewardComponents",
    "--reward-components",
    "3",
    "--seed",
    "5",
    "--learning-starts",
    "100",
    "--batch-size",
    "32",
    "--net-arch",
    "16,16",
    "--eval-every",
    "200",
    "--eval-episodes",
    "1",
    "--log-every",
    "50",
    "--checkpoint-every",
    "150",
    "--progress",
    "false",
    "--torch-threads",
    "1",
]


@pytest.mark.parametrize(
    ("argv", "total", "part"), [(PPO, 768, 384), (SAC, 400, 200)], ids=["ppo", "sac"]
)
def test_cli_stop_and_resume_is_exact(tmp_path: Path, argv, total, part):
    whole, _ = assert_resume_is_exact(run_cli, argv, total, part, tmp_path)
    keys = {k for _, k, _ in metric_rows(whole)}
    assert (
        "train/component_advantage_std_max" if argv[0] == "ppo" else "train/component_weight_max"
    ) in keys
    if argv[0] == "sac":  # the buffer in the checkpoint carries the vector
        assert any(k.endswith("buffer/rows/reward_vector") for k in final_state(whole))


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_same_seed_same_parameters(tmp_path: Path, algo):
    fields = {
        "seed": 11,
        "total_steps": 400,
        "eval_every": 0,
        "eval_episodes": 1,
        "progress": False,
        "torch_threads": 1,
    }
    if algo == "ppo":
        fields |= {
            "env": "dramaturg.envs.multi_reward:CartPoleWithNoise",
            "reward_components": 2,
            "n_steps": 100,
            "num_envs": 2,
            "batch_size": 50,
            "n_epochs": 2,
            "shared_critic_trunk": True,
        }
    else:
        fields |= {
            "env": "dramaturg.envs.multi_reward:PendulumRewardComponents",
            "reward_components": 3,
            "learning_starts": 200,
            "batch_size": 32,
            "net_arch": (16, 16),
        }
    a = dramaturg.train(algo, run_dir=str(tmp_path / "a"), **fields)
    b = dramaturg.train(algo, run_dir=str(tmp_path / "b"), **fields)
    c = dramaturg.train(algo, run_dir=str(tmp_path / "c"), **(fields | {"seed": 12}))
    pa, pb, pc = (dict(r.policy.named_parameters()) for r in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa), (
        "a different seed should give different parameters"
    )
    assert_same_state(final_state(a.run_dir), final_state(b.run_dir))
    assert metric_rows(a.run_dir) == metric_rows(b.run_dir)


@pytest.mark.learning
def test_multi_critic_ppo_balances_cartpole_under_a_large_noisy_component(tmp_path: Path):
    """CartPole's reward plus a component 30 times larger that the agent cannot influence: with one
    critic per component and normalised advantages PPO still learns to balance."""
    from dramaturg.envs.factory import env_factory
    from dramaturg.runtime.evaluation import evaluate

    result = dramaturg.train(
        "ppo",
        env="dramaturg.envs.multi_reward:CartPoleWithNoise",
        env_kwargs={"scale": 30.0},
        reward_components=2,
        seed=2,
        num_envs=8,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        learning_rate=1e-3,
        lr_schedule="linear",
        clip_range_schedule="linear",
        total_steps=50_000,
        eval_every=0,
        checkpoint_every=0,
        progress=False,
        torch_threads=1,
        run_dir=str(tmp_path),
    )
    returns = evaluate(
        result.policy,
        env_factory("dramaturg.envs.multi_reward:CartPoleWithNoise", {"scale": 0.0}),
        10,
        seed=0,
    )
    assert returns.mean() >= 400.0
