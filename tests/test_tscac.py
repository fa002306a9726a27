"""TSCAC: the stage-2 weights and loss against hand computations and limiting cases, the
recommendation CMDP, configuration errors, and the algorithm end to end (CLI, stages, determinism,
exact resume, learning)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import dramaturg
from dramaturg.algos import tscac
from dramaturg.config import ConfigError
from dramaturg.envs.recsys import RecommendationCMDP
from dramaturg.losses.tscac import stage2_log_weights, stage2_loss
from dramaturg.runtime.checkpoint import load_latest
from dramaturg.runtime.session import load_module_state
from dramaturg.types import Rollout
from tests.helpers import assert_resume_is_exact, assert_same_state, final_state, metric_rows
from tests.helpers import dramaturg as cli

# -- stage-2 weights and loss -------------------------------------------------------------------


def test_stage2_log_weights_hand_values():
    # two samples, m = 2 stage-1 policies, lambda = (1, 3): L = 4, exponents 1/4 and 3/4
    logp_aux = torch.tensor([[math.log(0.5), math.log(0.2)], [math.log(0.1), math.log(0.4)]])
    adv = torch.tensor([2.0, -1.0])
    logp_b = torch.tensor([math.log(0.25), math.log(0.5)])
    log_w, _ = stage2_log_weights(logp_aux, adv, logp_b, torch.tensor([1.0, 3.0]))
    expected = [
        0.25 * math.log(0.5) + 0.75 * math.log(0.2) + 2.0 / 4 - math.log(0.25),
        0.25 * math.log(0.1) + 0.75 * math.log(0.4) - 1.0 / 4 - math.log(0.5),
    ]
    torch.testing.assert_close(log_w, torch.tensor(expected))


def test_stage2_loss_hand_value_self_normalised_and_clipped():
    logp = torch.tensor([math.log(0.5), math.log(0.25), math.log(0.25)], requires_grad=True)
    log_w = torch.log(torch.tensor([1.0, 2.0, 5.0]))  # softmax * 3 = (0.375, 0.75, 1.875)
    loss, metrics = stage2_loss(logp, log_w, weight_clip=1.5)  # the last weight is clipped to 1.5
    weights = torch.tensor([0.375, 0.75, 1.5])
    expected = -(weights * logp.detach()).mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(metrics["train/weight_max"], torch.tensor(1.5))
    loss.backward()
    torch.testing.assert_close(logp.grad, -weights / 3)  # no gradient flows into the weights
    unclipped, _ = stage2_loss(logp.detach(), log_w, weight_clip=100.0)
    torch.testing.assert_close(
        unclipped, -(torch.tensor([0.375, 0.75, 1.875]) * logp.detach()).mean()
    )


def exact_stage2_loss(
    logits: torch.Tensor,
    aux_probs: torch.Tensor,
    adv: torch.Tensor,
    behaviour: torch.Tensor,
    lambdas: torch.Tensor,
) -> torch.Tensor:
    """The stage-2 loss with every action of one state as a sample, weighted by how often the
    behaviour policy takes it: the expectation over a ~ pi_b, exactly."""
    K = logits.shape[0]
    actions = torch.arange(K)
    log_w, _ = stage2_log_weights(aux_probs.log().T, adv, behaviour.log(), lambdas)  # [K]
    log_w = log_w + behaviour.log()  # a ~ pi_b: sample a's share of the batch is pi_b(a)
    logp = torch.log_softmax(logits, -1)[actions]
    loss, _ = stage2_loss(logp, log_w, weight_clip=1e9)
    return loss


def test_main_policy_equal_to_the_stage1_policy_gets_no_gradient_when_the_advantage_is_flat():
    torch.manual_seed(0)
    aux = torch.softmax(torch.randn(5), -1)
    logits = aux.log().clone().requires_grad_(True)  # pi_theta = pi_1
    behaviour = torch.softmax(
        torch.randn(5), -1
    )  # any behaviour policy: the 1 / pi_b factor corrects for it
    loss = exact_stage2_loss(logits, aux[None], torch.zeros(5), behaviour, torch.tensor([0.7]))
    loss.backward()
    torch.testing.assert_close(logits.grad, torch.zeros(5), atol=1e-6, rtol=0)
    # and away from pi_1 the gradient is not zero: the loss pulls pi_theta back toward it
    away = torch.zeros(5, requires_grad=True)
    exact_stage2_loss(away, aux[None], torch.zeros(5), behaviour, torch.tensor([0.7])).backward()
    assert away.grad.abs().max() > 1e-3


def test_fitting_with_the_stage2_weights_drives_kl_to_the_target_to_zero():
    """On one state with K actions, minimising the stage-2 loss reaches
    pi* ∝ prod_i pi_i^(lambda_i / L) exp(A / L) (shared/methods-verified: KL(pi* || pi_theta) -> 0)."""
    torch.manual_seed(1)
    K = 6
    aux = torch.softmax(torch.randn(2, K) * 2, -1)  # two stage-1 policies
    adv = torch.randn(K)
    lambdas = torch.tensor([0.5, 1.5])
    behaviour = torch.softmax(torch.randn(K), -1)
    L = lambdas.sum()
    target = torch.softmax((lambdas[:, None] / L * aux.log()).sum(0) + adv / L, -1)
    logits = torch.zeros(K, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(500):
        opt.zero_grad()
        exact_stage2_loss(logits, aux, adv, behaviour, lambdas).backward()
        opt.step()
    pi = torch.softmax(logits.detach(), -1)
    kl = (target * (target.log() - pi.log())).sum()
    assert kl < 1e-4
    # a larger lambda moves pi* toward the stage-1 policies' geometric mean, away from the advantage
    geo = torch.softmax((lambdas[:, None] / L * aux.log()).sum(0), -1)
    far = torch.softmax((lambdas[:, None] / L * aux.log()).sum(0) + adv / (100 * L), -1)
    assert (geo * (geo / far).log()).sum() < (geo * (geo / target).log()).sum()


# -- the recommendation CMDP --------------------------------------------------------------------


def test_recommendation_cmdp_costs_and_anti_correlation():
    env = RecommendationCMDP()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (9,) and env.observation_space.contains(obs)
    total = np.zeros(2)
    for t in range(20):
        obs, _, terminated, truncated, info = env.step(t % 20)
        assert len(info["cost"]) == 2 and set(info["cost"]) <= {0.0, 1.0}
        assert info["cost"] == (1.0 - info["like"], 1.0 - info["follow"])
        total += info["cost"]
        assert terminated == (t == 19) and not truncated
    # the longer an item is watched, the less it is liked or followed
    assert np.corrcoef(env.watch, env.p_like + env.p_follow)[0, 1] < -0.5
    with pytest.raises(ValueError, match="num_topics = 1 is invalid"):
        RecommendationCMDP(num_topics=1)


def test_recommendation_cmdp_is_named_with_the_cost_tasks():
    from dramaturg.envs import costs

    assert costs.RecommendationCMDP is RecommendationCMDP


# -- configuration ----------------------------------------------------------------------------


def test_config_errors_name_field_value_and_range():
    with pytest.raises(
        ConfigError, match=r"tscac: kl_coef = 0.0 is invalid: must be > 0 and finite"
    ):
        tscac.Config(kl_coef=0.0)
    with pytest.raises(
        ConfigError, match=r"tscac: weight_clip = 0.5 is invalid: must be >= 1 and finite"
    ):
        tscac.Config(weight_clip=0.5)
    with pytest.raises(
        ConfigError,
        match=r"tscac: stage1_steps = 60000 is invalid: num_constraints \* stage1_steps, in whole "
        r"rollouts of n_steps \* num_envs = 2048 steps, is 122880: it must be < total_steps = 100000",
    ):
        tscac.Config(num_constraints=2, stage1_steps=60_000, total_steps=100_000)
    with pytest.raises(
        ConfigError,
        match=r"stage1_steps = 100 is invalid: .* is 256: it must be < total_steps = 256",
    ):
        tscac.Config(
            num_constraints=2, stage1_steps=100, n_steps=128, total_steps=256
        )  # 2 x 100 < 256, in steps
    with pytest.raises(ConfigError, match=r"tscac: num_constraints = 0 is invalid: must be > 0"):
        tscac.Config(num_constraints=0)
    with pytest.raises(ConfigError, match=r"tscac: policy = 'gmm' is invalid: must be gaussian"):
        tscac.Config(policy="gmm")
    with pytest.raises(
        ConfigError, match=r"tscac: cost_gamma = 1.5 is invalid: must be in \[0, 1\]"
    ):
        tscac.Config(cost_gamma=1.5)


def test_stages_follow_the_update_count():
    cfg = tscac.Config(
        num_constraints=2, stage1_steps=1000, n_steps=100, num_envs=4, total_steps=5000
    )
    # ceil(1000 / 400) = 3 rollouts per stage-1 policy, then stage 2
    assert [tscac.stage_of(cfg, u) for u in range(8)] == [0, 0, 0, 1, 1, 1, 2, 2]


def test_an_env_with_the_wrong_number_of_costs_is_refused_by_name(tmp_path: Path):
    with pytest.raises(
        ConfigError, match="num_constraints = 3 but the environment .* reports 2 costs per step"
    ):
        dramaturg.train(
            "tscac",
            env="dramaturg.envs.recsys:RecommendationCMDP",
            num_constraints=3,
            stage1_steps=8,
            n_steps=8,
            batch_size=8,
            total_steps=64,
            eval_every=0,
            progress=False,
            run_dir=str(tmp_path),
        )
    with pytest.raises(ConfigError, match="reports no info\\['cost'\\]"):
        dramaturg.train(
            "tscac",
            env="CartPole-v1",
            stage1_steps=8,
            n_steps=8,
            batch_size=8,
            total_steps=64,
            eval_every=0,
            progress=False,
            run_dir=str(tmp_path / "b"),
        )


# -- end to end -------------------------------------------------------------------------------

ENV = "dramaturg.envs.recsys:RecommendationCMDP"
ARGV = [
    "tscac",
    "--env",
    ENV,
    "--num-constraints",
    "2",
    "--stage1-steps",
    "256",
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


def test_cli_stop_and_resume_is_exact_across_the_stages(tmp_path: Path):
    # stage 1 takes steps 0-511 (policy 0, then policy 1); the first part stops in stage 2
    whole, _ = assert_resume_is_exact(cli, ARGV, 1024, 640, tmp_path)
    rows = metric_rows(whole)
    keys = {k for _, k, _ in rows}
    assert {
        "rollout/ep_cost_0",
        "rollout/ep_cost_1",
        "loss/policy_aux",
        "loss/policy",
        "train/weight_ess",
        "eval/mean_return",
    } <= keys
    stages = {int(step): float(v) for step, k, v in rows if k == "train/stage"}
    assert all(v == (1.0 if step <= 512 else 2.0) for step, v in stages.items())


def test_each_stage_trains_only_its_own_networks():
    env = RecommendationCMDP()
    cfg = tscac.Config(
        env=ENV, num_constraints=2, stage1_steps=16, n_steps=8, num_envs=2, batch_size=8, n_epochs=2
    )
    state = tscac.make(cfg, env.observation_space, env.action_space, torch.device("cpu"))
    T, B = 8, 2
    g = torch.Generator().manual_seed(0)
    obs = torch.rand(T, B, 9, generator=g)
    rollout = Rollout(
        obs=obs,
        actions=torch.randint(0, 20, (T, B), generator=g),
        logp=torch.full((T, B), -math.log(20)),
        values=torch.zeros(T, B),
        rewards=torch.rand(T, B, generator=g),
        next_values=torch.zeros(T, B),
        terminated=torch.zeros(T, B),
        dones=torch.zeros(T, B),
        costs=torch.randint(0, 2, (T, B, 2), generator=g).float(),
    )
    nets = {
        "main": (state.actor, state.critic),
        0: (state.aux_actors[0], state.aux_critics[0]),
        1: (state.aux_actors[1], state.aux_critics[1]),
    }

    def snapshot():
        return {
            k: [p.detach().clone() for net in v for p in net.parameters()] for k, v in nets.items()
        }

    for stage, trained in ((0, 0), (1, 1), (2, "main")):
        before = snapshot()
        metrics = tscac.update(state, cfg, rollout, stage, 0.0)
        after = snapshot()
        for key in nets:
            moved = any(not torch.equal(a, b) for a, b in zip(before[key], after[key]))
            assert moved == (key == trained), (stage, key)
        assert ("loss/policy" in metrics) == (stage == 2) and ("loss/policy_aux" in metrics) == (
            stage < 2
        )


def test_same_seed_same_parameters(tmp_path: Path):
    fields = {
        "env": ENV,
        "num_constraints": 2,
        "stage1_steps": 128,
        "seed": 11,
        "num_envs": 2,
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 2,
        "total_steps": 512,
        "eval_every": 0,
        "eval_episodes": 1,
        "progress": False,
        "torch_threads": 1,
    }
    a = dramaturg.train("tscac", run_dir=str(tmp_path / "a"), **fields)
    b = dramaturg.train("tscac", run_dir=str(tmp_path / "b"), **fields)
    pa, pb = dict(a.policy.named_parameters()), dict(b.policy.named_parameters())
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert_same_state(final_state(a.run_dir), final_state(b.run_dir))
    assert metric_rows(a.run_dir) == metric_rows(b.run_dir)


@pytest.mark.learning
def test_stage2_reaches_its_target_and_trades_watch_time_for_interactions(tmp_path: Path):
    """Within 40k steps (12k per stage-1 policy): with kl_coef = 100 the advantage hardly tilts pi*,
    and the main policy ends within KL 0.05 of the stage-1 policies' geometric mean (pi* then); with
    kl_coef = 1 its sessions earn more likes and follows than with kl_coef = 0.1 and than main-only
    PPO's, and kl_coef = 0.1 earns more watch time."""
    fields = {
        "env": ENV,
        "num_constraints": 2,
        "stage1_steps": 12_288,
        "seed": 1,
        "num_envs": 8,
        "n_steps": 64,
        "batch_size": 256,
        "n_epochs": 10,
        "learning_rate": 1e-3,
        "gamma": 0.95,
        "cost_gamma": 0.95,
        "total_steps": 40_960,
        "eval_every": 0,
        "eval_episodes": 1,
        "checkpoint_every": 0,
        "progress": False,
        "torch_threads": 1,
    }
    results = {}
    for kl in (0.1, 1.0, 100.0):
        run = dramaturg.train("tscac", run_dir=str(tmp_path / f"kl{kl}"), kl_coef=kl, **fields)
        results[kl] = session_return_and_costs(run.policy, episodes=100)
    ret_small, costs_small = results[0.1]
    ret_large, costs_large = results[1.0]
    assert all(large < small - 0.5 for large, small in zip(costs_large, costs_small))
    assert (
        max(costs_large) < 17.5
    )  # main-only PPO pays (18.1, 18.8) here, the uniform recommender (17.0, 17.4)
    assert ret_small > ret_large + 1.0
    # the kl_coef = 100 run: compare its main policy with the geometric mean of its stage-1 policies
    env = RecommendationCMDP()
    state = tscac.make(
        tscac.Config(**fields), env.observation_space, env.action_space, torch.device("cpu")
    )
    load_module_state(state, load_latest(run.run_dir / "checkpoints")["parts"]["state"])
    obs = []
    for episode in range(20):  # states of sessions of the uniform recommender
        o, _ = env.reset(seed=episode)
        for _ in range(20):
            obs.append(o)
            o, *_ = env.step(env.np_random.integers(20))
    with torch.no_grad():
        obs = torch.as_tensor(np.array(obs))
        geo = torch.log_softmax(sum(0.5 * actor(obs) for actor in state.aux_actors), -1)  # [N, 20]
        main = state.actor(obs)  # [N, 20] log-probabilities
    kl_main = (geo.exp() * (geo - main)).sum(-1).mean()
    kl_uniform = (geo.exp() * (geo + math.log(20))).sum(-1).mean()
    assert kl_main < 0.05
    assert kl_uniform > 0.2  # the target is not the uniform policy


def session_return_and_costs(policy, episodes: int) -> tuple[float, list[float]]:
    import gymnasium as gym

    torch.manual_seed(0)
    envs = gym.vector.SyncVectorEnv([RecommendationCMDP for _ in range(episodes)])
    obs, _ = envs.reset(seed=list(range(episodes)))
    ret, costs = np.zeros(episodes), np.zeros((episodes, 2))
    for _ in range(20):  # every session lasts 20 steps
        obs, reward, *_, info = envs.step(policy.act(obs, False))
        ret += reward
        costs += np.array([np.asarray(c, dtype=np.float64) for c in info["cost"]])
    envs.close()
    return float(ret.mean()), costs.mean(0).tolist()
