"""MDPO, on- and off-policy: loss values by hand, the limiting cases of the mirror-descent step, the
step-size schedule, config validation, and runs from the command line that repeat and resume exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence

import dramaturg
from dramaturg import cli
from dramaturg.algos import mdpo, mdpo_off
from dramaturg.config import ConfigError, field_docs
from dramaturg.losses.mirror import categorical_kl, gaussian_kl, mdpo_kl, mdpo_off_actor, tanh_gaussian_log_prob
from dramaturg.losses.policy import policy_gradient
from dramaturg.losses.q import sac_actor
from dramaturg.nn import StochasticActor
from dramaturg.nn.heads import TanhGaussianHead
from tests.helpers import assert_same_state, dramaturg as run_cli, final_state, metric_rows

F64 = torch.float64


def t(*xs, grad: bool = False) -> torch.Tensor:
    return torch.tensor(xs, dtype=F64, requires_grad=grad)


def close(actual, expected, atol=1e-12):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=F64), torch.as_tensor(expected, dtype=F64), rtol=0.0, atol=atol)


# -- losses --------------------------------------------------------------------------------------


def test_mdpo_kl_hand_value_and_gradient():
    # ratios 2, 0.5, 1; advantages 1, 2, -1; KL 0.1, 0.3, 0.2; t_k = 0.5
    logp = t(math.log(2.0), math.log(0.5), 0.0, grad=True)
    adv, kl = t(1.0, 2.0, -1.0), t(0.1, 0.3, 0.2)
    loss, m = mdpo_kl(logp, torch.zeros(3, dtype=F64), adv, kl, step_size=0.5)
    surrogate = (2.0 * 1.0 + 0.5 * 2.0 + 1.0 * -1.0) / 3  # 2/3
    close(loss, -surrogate + 0.2 / 0.5)  # -2/3 + 0.4
    close(m["loss/surrogate"], -surrogate)
    close(m["train/kl"], 0.2)
    close(m["train/approx_kl"], ((1.0 - math.log(2.0)) + (-0.5 - math.log(0.5)) + 0.0) / 3)
    loss.backward()
    close(logp.grad, [-2.0 / 3, -1.0 / 3, 1.0 / 3])  # -ratio_i * A_i / N; kl here is a constant


def test_mdpo_off_actor_hand_value_and_sac_limit():
    q, logp, logp_old = t(1.0, -2.0), t(-0.5, -1.5, grad=True), t(-1.0, -1.0)
    alpha = torch.tensor(0.2, dtype=F64)
    loss, m = mdpo_off_actor(q, logp, logp_old, alpha, kl_coef=2.0)
    # mean(2 (logp - logp_old) + 0.2 logp_old - q) = mean(1 - 0.2 - 1, -1 - 0.2 + 2)
    close(loss, ((1.0 - 0.2 - 1.0) + (-1.0 - 0.2 + 2.0)) / 2)
    close(m["train/kl"], (0.5 - 0.5) / 2)
    loss.backward()
    close(logp.grad, [1.0, 1.0])  # kl_coef / N
    # with pi_theta_k = pi_theta the value is SAC's actor loss, whatever the KL weight
    same, _ = mdpo_off_actor(q, logp.detach(), logp.detach(), alpha, kl_coef=5.0)
    close(same, sac_actor(q, logp.detach(), alpha)[0])


def test_gaussian_and_categorical_kl_match_torch():
    g = torch.Generator().manual_seed(0)
    mean, mean_old = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(5, 3, generator=g, dtype=F64)
    log_std, log_std_old = torch.randn(5, 3, generator=g, dtype=F64) * 0.5, torch.randn(5, 3, generator=g, dtype=F64) * 0.5
    expected = kl_divergence(Normal(mean, log_std.exp()), Normal(mean_old, log_std_old.exp())).sum(-1)
    close(gaussian_kl(mean, log_std, mean_old, log_std_old), expected, atol=1e-10)
    logits, logits_old = torch.randn(5, 4, generator=g, dtype=F64), torch.randn(5, 4, generator=g, dtype=F64)
    p, q = logits.log_softmax(-1), logits_old.log_softmax(-1)
    close(categorical_kl(p, q), kl_divergence(Categorical(logits=logits), Categorical(logits=logits_old)), atol=1e-10)


def test_kl_is_positive_and_zero_exactly_when_the_policies_are_equal():
    g = torch.Generator().manual_seed(1)
    mean, log_std = torch.randn(64, 2, generator=g, dtype=F64), torch.randn(64, 2, generator=g, dtype=F64)
    logp_all = torch.randn(64, 3, generator=g, dtype=F64).log_softmax(-1)
    assert torch.equal(gaussian_kl(mean, log_std, mean, log_std), torch.zeros(64, dtype=F64))
    assert torch.equal(categorical_kl(logp_all, logp_all), torch.zeros(64, dtype=F64))
    # any change of mean, std or probabilities gives a strictly positive KL
    assert (gaussian_kl(mean + 1e-3, log_std, mean, log_std) > 0).all()
    assert (gaussian_kl(mean, log_std + 1e-3, mean, log_std) > 0).all()
    other = (logp_all + 0.1 * torch.randn(64, 3, generator=g, dtype=F64)).log_softmax(-1)
    assert (categorical_kl(other, logp_all) > 0).all()


@pytest.mark.parametrize("space", [gym.spaces.Box(-1.0, 1.0, (2,)), gym.spaces.Discrete(3), gym.spaces.MultiDiscrete([2, 3])],
                         ids=["gaussian", "categorical", "multicategorical"])
def test_mdpo_gradient_at_the_old_policy_is_the_vanilla_policy_gradient(space):
    torch.manual_seed(0)
    actor = StochasticActor(4, space, (16,), ortho_init=False)  # float32, as actors run
    obs, adv = torch.randn(32, 4), torch.randn(32)
    with torch.no_grad():
        params_old = actor(obs)
        actions = actor.head.sample(params_old)
        logp_old = actor.head.log_prob(params_old, actions)

    def grads(loss_fn):
        actor.zero_grad()
        params = actor(obs)
        loss_fn(params, actor.head.log_prob(params, actions)).backward()
        return [p.grad.clone() for p in actor.parameters()]

    pg = grads(lambda params, logp: policy_gradient(logp, adv)[0])
    md = grads(lambda params, logp: mdpo_kl(logp, logp_old, adv, mdpo.policy_kl(actor.head, params, params_old), step_size=0.1)[0])
    kl_only = grads(lambda params, logp: mdpo.policy_kl(actor.head, params, params_old).mean())
    for a, b, k in zip(pg, md, kl_only):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(k, torch.zeros_like(k), rtol=0.0, atol=1e-7)
    # away from theta_k the KL pulls back: its gradient is no longer zero
    with torch.no_grad():
        next(actor.parameters()).add_(0.1)
    assert any(g.abs().max() > 1e-6 for g in grads(lambda params, logp: mdpo.policy_kl(actor.head, params, params_old).mean()))


def test_tanh_gaussian_log_prob_matches_the_head():
    head = TanhGaussianHead(4, 2).double()
    params = head(torch.randn(8, 4, dtype=F64))
    torch.manual_seed(3)
    _, logp = head.rsample(params)
    torch.manual_seed(3)
    mean, log_std = params
    u = mean + log_std.exp() * torch.randn_like(mean)
    close(tanh_gaussian_log_prob(mean, log_std, u), logp, atol=1e-10)


# -- the step-size schedule -----------------------------------------------------------------------


def test_step_size_schedule_anneals_linearly_over_the_iterations():
    K = 5
    assert [mdpo.mirror_step_size(1.0, "linear", k, K) for k in range(K)] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    assert mdpo.mirror_step_size(2.0, "linear", 1, 4) == pytest.approx(1.5)
    assert mdpo.mirror_step_size(1.0, "linear", 7, K) == pytest.approx(0.2)  # floored at t_0 / K past the end
    assert mdpo.mirror_step_size(0.3, "constant", 4, K) == 0.3
    assert mdpo.iterations(mdpo.Config(total_steps=10_000, n_steps=1000, num_envs=2)) == 5
    assert mdpo.iterations(mdpo.Config(total_steps=10_001, n_steps=1000, num_envs=2)) == 6


def test_update_advances_the_iteration_and_logs_the_step_size():
    from dramaturg.types import Rollout

    cfg = mdpo.Config(env="Pendulum-v1", total_steps=64, n_steps=16, num_envs=2, sgd_steps=2, vf_epochs=1)
    state = mdpo.make(cfg, gym.spaces.Box(-1.0, 1.0, (3,)), gym.spaces.Box(-2.0, 2.0, (1,)), torch.device("cpu"))
    T, B = 16, 2
    rollout = Rollout(torch.randn(T, B, 3), torch.randn(T, B, 1), torch.full((T, B), -1.0), torch.zeros(T, B),
                      torch.randn(T, B), torch.zeros(T, B), torch.zeros(T, B), torch.zeros(T, B))
    with torch.no_grad():
        logp = state.actor.log_prob_entropy(rollout.obs.reshape(T * B, 3), rollout.actions.reshape(T * B, 1))[0]
        rollout = rollout._replace(logp=logp.reshape(T, B))
    steps = [float(mdpo.update(state, cfg, rollout, 0.0)["train/step_size"]) for _ in range(3)]
    # K = 64 / (16 * 2) = 2 iterations: t_0 = 1, t_1 = 1/2, then the floor t_0 / K
    assert steps == pytest.approx([1.0, 0.5, 0.5]) and state.iteration == 3


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "overrides", "message"),
    [
        (mdpo, {"sgd_steps": 0}, "mdpo: sgd_steps = 0 is invalid: must be > 0 and finite"),
        (mdpo, {"step_size": 0.0}, "mdpo: step_size = 0.0 is invalid: must be > 0 and finite"),
        (mdpo, {"step_size_schedule": "cosine"}, "mdpo: step_size_schedule = 'cosine' is invalid: must be one of constant, linear"),
        (mdpo, {"batch_size": 0}, "mdpo: batch_size = 0 is invalid: must be > 0 and finite"),
        (mdpo, {"vf_batch_size": -1}, "mdpo: vf_batch_size = -1 is invalid: must be > 0 and finite"),
        (mdpo, {"clip_range_vf": 0.0}, "mdpo: clip_range_vf = 0.0 is invalid: must be > 0 and finite"),
        (mdpo, {"gamma": 1.5}, "mdpo: gamma = 1.5 is invalid: must be in [0, 1]"),
        (mdpo, {"n_steps": 1}, "mdpo: normalize_advantage = True is invalid: needs num_envs * n_steps >= 2"),
        (mdpo_off, {"kl_coef": -1.0}, "mdpo_off: kl_coef = -1.0 is invalid: must be >= 0 and finite"),
        (mdpo_off, {"old_policy_every": 0}, "mdpo_off: old_policy_every = 0 is invalid: must be > 0 and finite"),
        (mdpo_off, {"ent_coef_init": 0.0}, "mdpo_off: ent_coef_init = 0.0 is invalid: must be > 0 and finite"),
        (mdpo_off, {"tau": 0.0}, "mdpo_off: tau = 0.0 is invalid: must be in (0, 1]"),
    ],
)
def test_config_rejects_bad_values_naming_field_value_and_range(module, overrides, message):
    with pytest.raises(ConfigError) as err:
        module.Config(**overrides)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("module", [mdpo, mdpo_off])
def test_every_field_has_a_one_line_doc_shown_by_help(module):
    import dataclasses

    docs = field_docs(module.Config)
    assert all(docs.get(f.name) for f in dataclasses.fields(module.Config))
    name = "mdpo" if module is mdpo else "mdpo-off"
    help_text = cli.field_parser(name).format_help()
    flag, doc = ("--kl-coef", "previous policy") if module is mdpo_off else ("--sgd-steps", "(the paper's m)")
    assert flag in help_text and doc in " ".join(help_text.split())


# -- runs ------------------------------------------------------------------------------------------

MDPO = ["mdpo", "--env", "Pendulum-v1", "--seed", "3", "--n-steps", "128", "--num-envs", "2", "--sgd-steps", "3",
        "--batch-size", "64", "--vf-epochs", "2", "--eval-every", "768", "--eval-episodes", "1", "--log-every", "128",
        "--checkpoint-every", "256", "--progress", "false", "--torch-threads", "1"]
MDPO_OFF = ["mdpo-off", "--env", "Pendulum-v1", "--seed", "5", "--learning-starts", "100", "--batch-size", "32",
            "--net-arch", "32,32", "--old-policy-every", "64", "--eval-every", "300", "--eval-episodes", "1",
            "--log-every", "50", "--checkpoint-every", "150", "--progress", "false", "--torch-threads", "1"]


@pytest.mark.parametrize(("argv", "total", "stop_at"), [(MDPO, 1536, 768), (MDPO_OFF, 600, 300)], ids=["mdpo", "mdpo-off"])
def test_cli_stop_and_resume_in_new_process_is_exact(tmp_path: Path, argv, total, stop_at):
    """The run stops at an evaluation (stop_at_return is met at once) with the whole run's total_steps,
    so the step-size schedule is the same; the resume drops the stop rule and continues."""
    whole, part = tmp_path / "whole", tmp_path / "part"
    out = run_cli("train", *argv, "--total-steps", str(total), "--run-dir", str(whole)).stdout
    assert f"{argv[0]} on Pendulum-v1: {total} steps" in out
    run_cli("train", *argv, "--total-steps", str(total), "--run-dir", str(part), "--stop-at-return=-1e9")
    summary = json.loads((part / "summary.json").read_text())
    assert summary["stopped_early"] and summary["steps_done"] == stop_at
    run_cli("train", "--resume", str(part), "--stop-at-return", "none")
    assert_same_state(final_state(whole), final_state(part))
    assert metric_rows(whole) == metric_rows(part)
    keys = {row[1] for row in metric_rows(whole)}
    assert {"train/kl", "eval/mean_return"} <= keys
    assert ("train/step_size" in keys) == (argv[0] == "mdpo")


@pytest.mark.parametrize("algo", ["mdpo", "mdpo-off"])
def test_same_seed_same_parameters(tmp_path: Path, algo):
    fields = dict(env="Pendulum-v1", seed=11, total_steps=400, eval_every=400, eval_episodes=1, progress=False, torch_threads=1)
    if algo == "mdpo":
        fields |= dict(n_steps=100, num_envs=2, sgd_steps=2, batch_size=50, vf_epochs=1)
    else:
        fields |= dict(learning_starts=200, batch_size=32, net_arch=(32, 32), old_policy_every=50)
    a = dramaturg.train(algo, run_dir=str(tmp_path / "a"), **fields)
    b = dramaturg.train(algo, run_dir=str(tmp_path / "b"), **fields)
    c = dramaturg.train(algo, run_dir=str(tmp_path / "c"), **(fields | {"seed": 12}))
    pa, pb, pc = (dict(r.policy.named_parameters()) for r in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa), "a different seed should give different parameters"
    assert_same_state(final_state(a.run_dir), final_state(b.run_dir))
    assert metric_rows(a.run_dir) == metric_rows(b.run_dir)


def test_checkpoint_holds_the_old_policy_and_the_schedule(tmp_path: Path):
    from dramaturg.runtime.checkpoint import load_latest

    common = dict(env="Pendulum-v1", eval_every=0, eval_episodes=1, progress=False, torch_threads=1)
    on = dramaturg.train("mdpo", run_dir=str(tmp_path / "on"), total_steps=256, n_steps=64, num_envs=2, sgd_steps=1,
                         vf_epochs=1, **common)
    assert load_latest(on.run_dir / "checkpoints")["parts"]["state"]["iteration"] == 2
    off = dramaturg.train("mdpo-off", run_dir=str(tmp_path / "off"), total_steps=200, learning_starts=100, batch_size=16,
                          net_arch=(16,), old_policy_every=30, **common)
    parts = load_latest(off.run_dir / "checkpoints")["parts"]["state"]
    assert parts["updates"] == 101 and "actor_old" in parts and "value_target" in parts
    # the copy is the policy of the last multiple of old_policy_every, not the current one
    assert not all(torch.equal(parts["actor_old"][k], parts["actor"][k]) for k in parts["actor"])
