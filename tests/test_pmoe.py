"""PMOE (Ren et al. 2021): the mixture heads' densities by hand and in their limiting cases, sampling
frequencies, the routing gradient, config validation, and command-line runs of PPO and SAC with
`--policy gmm` that repeat and resume exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import dramaturg
from dramaturg.algos import ppo, sac
from dramaturg.config import ConfigError
from dramaturg.losses.mixture import best_expert, pmoe_sac_experts, routing_loss
from dramaturg.losses.q import sac_actor
from dramaturg.nn import StochasticActor
from dramaturg.nn.heads import (
    GaussianHead,
    GaussianMixtureHead,
    TanhGaussianHead,
    TanhGaussianMixtureHead,
    mixture_entropy_bound,
    mixture_log_prob,
)
from dramaturg.runtime.session import module_state
from tests.helpers import assert_resume_is_exact, assert_same_state, dramaturg as run_cli, metric_rows

F64 = torch.float64
BOX2 = gym.spaces.Box(-1.0, 1.0, (2,))


def close(actual, expected, atol=1e-12):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=F64), torch.as_tensor(expected, dtype=F64), rtol=0.0, atol=atol)


def normal_logpdf(x: float, mean: float, std: float) -> float:
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


# -- densities -----------------------------------------------------------------------------------


def test_one_component_equals_the_gaussian_head():
    torch.manual_seed(0)
    single, mixture = GaussianHead(5, 2, log_std_init=-0.3), GaussianMixtureHead(5, 2, 1, log_std_init=-0.3)
    with torch.no_grad():
        mixture.mean.weight.copy_(single.mean.weight)
        mixture.mean.bias.copy_(single.mean.bias)
        mixture.log_std.copy_(single.log_std.view(1, 2))
    h, action = torch.randn(7, 5), torch.randn(7, 2)
    p1, pk = single(h), mixture(h)
    assert torch.equal(single.log_prob(p1, action), mixture.log_prob(pk, action))
    assert torch.equal(single.entropy(p1), mixture.entropy(pk))
    assert torch.equal(single.mode(p1), mixture.mode(pk))
    torch.manual_seed(1)
    a1 = single.sample(p1)
    torch.manual_seed(1)
    assert torch.equal(a1, mixture.sample(pk))


def test_one_component_equals_the_tanh_gaussian_head():
    torch.manual_seed(0)
    single, mixture = TanhGaussianHead(5, 2, log_std_init=-0.5), TanhGaussianMixtureHead(5, 2, 1, log_std_init=-0.5)
    with torch.no_grad():
        mixture.out.weight.copy_(single.out.weight)
        mixture.out.bias.copy_(single.out.bias)
    h = torch.randn(7, 5)
    p1, pk = single(h), mixture(h)
    torch.manual_seed(1)
    a1, logp1 = single.rsample(p1)
    torch.manual_seed(1)
    ak, logpk = mixture.rsample(pk)
    assert torch.equal(a1, ak)
    torch.testing.assert_close(logp1, logpk, rtol=0.0, atol=1e-5)
    assert torch.equal(single.mode(p1), mixture.mode(pk))
    # the one expert's SAC loss is SAC's actor loss
    q, alpha = torch.randn(7), torch.tensor(0.2)
    close(pmoe_sac_experts(q.view(7, 1), logp1.view(7, 1), alpha)[0], sac_actor(q, logp1, alpha)[0], atol=1e-6)


def test_mixture_log_prob_by_hand():
    w, means, stds = (0.3, 0.7), ((0.0, 1.0), (0.5, -1.0)), ((1.0, 0.5), (2.0, 0.25))
    x = (0.2, -0.4)
    expected = math.log(sum(
        wk * math.exp(sum(normal_logpdf(x[i], means[k][i], stds[k][i]) for i in range(2))) for k, wk in enumerate(w)
    ))
    log_w = torch.tensor([w], dtype=F64).log()
    mean, log_std = torch.tensor([means], dtype=F64), torch.tensor([stds], dtype=F64).log()
    close(mixture_log_prob(log_w, mean, log_std, torch.tensor([x], dtype=F64)), [expected])


def test_separated_components_give_log_weight_plus_own_density():
    log_w = torch.tensor([[0.25, 0.75]], dtype=F64).log()
    mean, log_std = torch.tensor([[[-5.0], [5.0]]], dtype=F64), torch.full((1, 2, 1), math.log(0.5), dtype=F64)
    for k, x in ((0, -4.8), (1, 5.3)):
        expected = math.log((0.25, 0.75)[k]) + normal_logpdf(x, (-5.0, 5.0)[k], 0.5)
        close(mixture_log_prob(log_w, mean, log_std, torch.tensor([[x]], dtype=F64)), [expected], atol=1e-9)


def test_squashed_mixture_density_integrates_to_one():
    head = TanhGaussianMixtureHead(3, 1, 3)
    with torch.no_grad():
        params = head(torch.randn(1, 3))
    a = torch.linspace(-1 + 1e-6, 1 - 1e-6, 200_001, dtype=F64)
    u = torch.atanh(a).view(1, -1, 1)
    params64 = tuple(p.double() for p in params)
    density = head.squashed_log_prob(params64, u).exp().squeeze(0)
    close(torch.trapezoid(density, a), 1.0, atol=1e-3)


def test_entropy_bound_is_exact_for_one_component_and_an_upper_bound_otherwise():
    torch.manual_seed(0)
    log_w = torch.tensor([[0.5, 0.5]]).log()
    mean, log_std = torch.tensor([[[0.0], [0.5]]]), torch.zeros(1, 2, 1)
    x = torch.cat([torch.randn(100_000, 1), 0.5 + torch.randn(100_000, 1)]).view(1, -1, 1)
    monte_carlo = -mixture_log_prob(log_w, mean, log_std, x).mean()
    bound = mixture_entropy_bound(log_w, log_std)
    assert monte_carlo < bound.item() < monte_carlo + math.log(2)
    close(mixture_entropy_bound(torch.zeros(1, 1), torch.full((1, 1, 3), 0.2)), [3 * (0.5 + 0.5 * math.log(2 * math.pi) + 0.2)], atol=1e-6)


def test_shapes():
    for head in (GaussianMixtureHead(8, 3, 4), TanhGaussianMixtureHead(8, 3, 4)):
        log_w, mean, log_std = params = head(torch.randn(6, 8))
        assert log_w.shape == (6, 4) and mean.shape == log_std.shape == (6, 4, 3)
        close(log_w.exp().sum(-1), torch.ones(6), atol=1e-6)
        assert head.sample(params).shape == head.mode(params).shape == (6, 3)
    g = GaussianMixtureHead(8, 3, 4)
    params = g(torch.randn(6, 8))
    assert g.log_prob(params, torch.randn(6, 3)).shape == g.entropy(params).shape == (6,)
    assert g.component_samples(params).shape == (6, 4, 3)
    assert mixture_log_prob(*params, torch.randn(6, 5, 3)).shape == (6, 5)
    t = TanhGaussianMixtureHead(8, 3, 4)
    actions, logp = t.rsample_components(t(torch.randn(6, 8)))
    assert actions.shape == (6, 4, 3) and logp.shape == (6, 4) and actions.abs().max() < 1
    action, logp = t.rsample(t(torch.randn(6, 8)))
    assert action.shape == (6, 3) and logp.shape == (6,)


# -- acting --------------------------------------------------------------------------------------


@pytest.mark.parametrize("head_cls", [GaussianMixtureHead, TanhGaussianMixtureHead])
def test_sampling_frequencies_match_the_weights(head_cls):
    torch.manual_seed(0)
    weights = torch.tensor([0.2, 0.5, 0.3])
    means = torch.tensor([[-3.0], [0.0], [3.0]])  # tanh keeps them apart: -0.995, 0, 0.995
    n = 40_000
    params = (weights.log().expand(n, 3), means.expand(n, 3, 1), torch.full((n, 3, 1), math.log(0.2)))
    head = head_cls(2, 1, 3)
    a = head.sample(params).squeeze(-1)
    edge = math.tanh(1.5) if head_cls is TanhGaussianMixtureHead else 1.5
    freq = torch.stack([(a < -edge).float().mean(), ((a > -edge) & (a < edge)).float().mean(), (a > edge).float().mean()])
    close(freq, weights, atol=0.01)
    # the deterministic action is the mean of the heaviest expert
    mode = head.mode(params)[0, 0].item()
    assert mode == (0.0 if head_cls is GaussianMixtureHead else math.tanh(0.0))


# -- the routing gradient ------------------------------------------------------------------------


def test_routing_loss_value_and_gradient_by_hand():
    w = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]], dtype=F64, requires_grad=True)
    q = torch.tensor([[1.0, 0.0, 2.0], [-1.0, -3.0, -2.0]], dtype=F64, requires_grad=True)
    loss, metrics = routing_loss(w, q)
    v = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=F64)  # argmax_k Q: experts 2 and 0
    assert torch.equal(best_expert(q), v)
    close(loss, ((0.01 + 0.36 + 0.49) + (0.25 + 0.0625 + 0.0625)) / 6)
    close(metrics["train/best_expert_weight"], (0.3 + 0.5) / 2)
    loss.backward()
    close(w.grad, 2 * (w.detach() - v) / 6)  # d/dw ||w - v||^2 / (N K)
    assert q.grad is None or torch.all(q.grad == 0), "Q is only read by the routing"


def test_routing_loss_vanishes_when_the_weights_match_the_best_expert():
    w = torch.tensor([[0.0, 1.0]], requires_grad=True)
    loss, _ = routing_loss(w, torch.tensor([[0.0, 5.0]]))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(w.grad == 0)


def test_expected_routing_step_moves_weights_toward_the_best_expert_frequencies():
    # with Q(s, a~_k) noisy, E[v] is the frequency with which each expert is the best; the
    # expected gradient is 2 (w - E[v]) / K, whose fixed point is w = E[v]
    torch.manual_seed(0)
    n = 100_000
    q = torch.randn(n, 2) + torch.tensor([0.0, 0.5])
    w = torch.full((n, 2), 0.5, requires_grad=True)
    routing_loss(w, q)[0].backward()
    p_best_1 = (q[:, 1] > q[:, 0]).double().mean()
    close(w.grad.sum(0), [2 * (0.5 - (1 - p_best_1)) / 2, 2 * (0.5 - p_best_1) / 2], atol=1e-6)


def test_pmoe_sac_experts_by_hand():
    q, logp = torch.tensor([[1.0, 2.0], [0.0, -1.0]]), torch.tensor([[-1.0, -2.0], [0.5, 0.0]], requires_grad=True)
    loss, metrics = pmoe_sac_experts(q, logp, torch.tensor(0.5))
    close(loss, ((-0.5 - 1.0) + (-1.0 - 2.0) + (0.25 - 0.0) + (0.0 + 1.0)) / 2, atol=1e-6)
    close(metrics["train/entropy"], -(-1.0 - 2.0 + 0.5 + 0.0) / 4, atol=1e-6)


def test_sac_routing_weights_learn_only_from_the_routing_loss():
    cfg = sac.Config(env="Pendulum-v1", policy="gmm", components=3, net_arch=(16, 16))
    state = sac.make(cfg, gym.spaces.Box(-1.0, 1.0, (3,)), gym.spaces.Box(-2.0, 2.0, (1,)), torch.device("cpu"))
    obs, alpha = torch.randn(5, 3), torch.tensor(0.2)
    params = state.actor(obs)
    actions, logp = state.actor.head.rsample_components(params)
    q = state.critic(obs.repeat_interleave(3, 0), actions.flatten(0, 1), detach_params=True).min(0).values.view(5, 3)
    pmoe_sac_experts(q, logp, alpha)[0].backward()
    assert state.actor.head.routing.weight.grad is None or torch.all(state.actor.head.routing.weight.grad == 0)
    assert state.actor.head.out.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in state.critic.parameters())
    state.actor.zero_grad(set_to_none=True)
    loss, metrics = sac.pmoe_actor_loss(state, obs, alpha)
    loss.backward()
    assert state.actor.head.routing.weight.grad.abs().sum() > 0
    assert {"loss/actor", "loss/routing", "train/best_expert_weight"} <= metrics.keys()


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [ppo, sac], ids=["ppo", "sac"])
def test_config_validation(module):
    name = module.__name__.rsplit(".", 1)[-1]
    with pytest.raises(ConfigError, match=rf"^{name}: components = 0 is invalid: must be >= 1$"):
        module.Config(policy="gmm", components=0)
    with pytest.raises(ConfigError, match=rf"^{name}: policy = 'mixture' is invalid: must be one of gaussian, gmm$"):
        module.Config(policy="mixture")
    with pytest.raises(ConfigError, match="components = 2.0 is invalid: must be of type int"):
        module.Config(components=2.0)
    assert module.Config().policy == "gaussian" and module.Config(policy="gmm", components=1).components == 1


def test_gmm_ppo_needs_box_actions():
    with pytest.raises(ConfigError, match="ppo: policy = 'gmm' needs a 1-D Box"):
        ppo.make(ppo.Config(policy="gmm"), gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), torch.device("cpu"))


def test_gaussian_runs_do_not_build_or_save_mixture_parts():
    obs_space = gym.spaces.Box(-1.0, 1.0, (3,))
    for module in (ppo, sac):
        states = []
        for components in (4, 9):  # components is unused by the gaussian policy
            torch.manual_seed(0)
            states.append(module.make(module.Config(env="Pendulum-v1", components=components), obs_space, BOX2, torch.device("cpu")))
        assert isinstance(states[0].actor.head, (GaussianHead, TanhGaussianHead))
        assert_same_state(
            {k: v for k, v in states[0].actor.state_dict().items()}, {k: v for k, v in states[1].actor.state_dict().items()}
        )
    assert "q" not in module_state(ppo.make(ppo.Config(), obs_space, BOX2, torch.device("cpu")))


def test_actor_rejects_zero_components():
    with pytest.raises(ValueError, match="components = 0"):
        StochasticActor(3, BOX2, (8,), components=0)


# -- command line: runs, repeatability, exact resume ---------------------------------------------

SAC_GMM = ["sac", "--env", "Pendulum-v1", "--seed", "5", "--policy", "gmm", "--components", "3", "--learning-starts", "100",
           "--batch-size", "64", "--net-arch", "64,64", "--eval-every", "300", "--eval-episodes", "1", "--log-every", "50",
           "--checkpoint-every", "150", "--progress", "false", "--normalize-obs", "--normalize-reward", "--torch-threads", "1"]
PPO_GMM = ["ppo", "--env", "Pendulum-v1", "--seed", "3", "--num-envs", "1", "--policy", "gmm", "--components", "3", "--n-steps", "256",
           "--batch-size", "64", "--n-epochs", "2", "--eval-every", "768", "--eval-episodes", "1", "--log-every", "256",
           "--checkpoint-every", "256", "--progress", "false", "--torch-threads", "1"]


@pytest.mark.parametrize(("argv", "total", "stop_at"), [(PPO_GMM, 1024, 512), (SAC_GMM, 600, 450)], ids=["ppo", "sac"])
def test_gmm_runs_and_resumes_exactly(tmp_path: Path, argv, total, stop_at):
    whole, _ = assert_resume_is_exact(run_cli, argv, total, stop_at, tmp_path)
    config = json.loads((whole / "config.json").read_text())
    assert "gmm" in json.dumps(config)
    keys = {key for _, key, _ in metric_rows(whole)}
    assert {"loss/routing", "train/best_expert_weight"} <= keys
    assert math.isfinite(json.loads((whole / "summary.json").read_text())["final_eval"]["mean_return"])


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_gmm_same_seed_same_parameters(tmp_path: Path, algo):
    fields = dict(env="Pendulum-v1", seed=11, total_steps=600, eval_every=300, eval_episodes=1, progress=False,
                  policy="gmm", components=3, torch_threads=1)
    fields |= dict(learning_starts=200, batch_size=32, net_arch=(32, 32)) if algo == "sac" else dict(n_steps=200, n_epochs=2)
    a = dramaturg.train(algo, run_dir=str(tmp_path / "a"), **fields)
    b = dramaturg.train(algo, run_dir=str(tmp_path / "b"), **fields)
    pa, pb = dict(a.policy.named_parameters()), dict(b.policy.named_parameters())
    assert any("routing" in k for k in pa)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert metric_rows(a.run_dir) == metric_rows(b.run_dir)
    loaded = dramaturg.load(a.run_dir)
    obs = torch.zeros(3)
    assert torch.equal(loaded.act(obs), a.policy.act(obs))
