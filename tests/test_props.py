"""PROPS: the behaviour loss by hand and at its limiting cases, the sampling-error measures, the
behaviour fit lowering sampling error against on-policy sampling, the buffer bookkeeping, config
validation, and runs that repeat and resume exactly."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from torch.distributions import Normal, kl_divergence

import dramaturg
from dramaturg import cli
from dramaturg.algos import props
from dramaturg.config import ConfigError, field_docs
from dramaturg.losses.props import (
    categorical_sampling_error,
    fitted_categorical_sampling_error,
    fitted_gaussian_sampling_error,
    props_behaviour,
)
from dramaturg.types import Rollout
from tests.helpers import assert_same_state, final_state, metric_rows
from tests.helpers import dramaturg as run_cli

F64 = torch.float64
CPU = torch.device("cpu")


def t(*xs, grad: bool = False) -> torch.Tensor:
    return torch.tensor(xs, dtype=F64, requires_grad=grad)


def close(actual, expected, atol=1e-12):
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=F64),
        torch.as_tensor(expected, dtype=F64),
        rtol=0.0,
        atol=atol,
    )


def bandit(probs: list[float], **overrides) -> tuple[props.State, props.Config]:
    """A one-state problem: constant observation 1, a linear categorical head whose logits are log probs."""
    cfg = props.Config(net_arch=(), **overrides)
    state = props.make(cfg, gym.spaces.Box(-1.0, 1.0, (1,)), gym.spaces.Discrete(len(probs)), CPU)
    with torch.no_grad():
        state.actor.head.logits.weight.zero_()
        state.actor.head.logits.bias.copy_(torch.tensor(probs).log())
        state.behaviour.load_state_dict(state.actor.state_dict())
    return state, cfg


# -- the behaviour loss ----------------------------------------------------------------------------


def test_props_behaviour_hand_value_and_gradient():
    # ratios 2, 0.5, 1 with eps 0.3: max(r, clip(r)) = 2, 0.7 (clipped from below: no gradient), 1
    logp = t(math.log(2.0), math.log(0.5), 0.0, grad=True)
    kl = t(0.1, 0.2, 0.6, grad=True)
    loss, m = props_behaviour(logp, torch.zeros(3, dtype=F64), kl, clip_eps=0.3, kl_coef=0.5)
    close(loss, (2.0 + 0.7 + 1.0) / 3 + 0.5 * 0.3)
    close(m["loss/behaviour_clip"], 3.7 / 3)
    close(m["train/behaviour_regulariser"], 0.3)
    close(m["train/behaviour_kl"], ((1.0 - math.log(2.0)) + (-0.5 - math.log(0.5)) + 0.0) / 3)
    close(m["train/behaviour_clip_fraction"], 2 / 3)
    loss.backward()
    # d r / d logp = r; no stop on the r > 1 + eps side, a stop below 1 - eps
    close(logp.grad, [2.0 / 3, 0.0, 1.0 / 3])
    close(kl.grad, [0.5 / 3] * 3)


def test_at_phi_equal_theta_the_gradient_is_the_count_mismatch_and_zero_without_sampling_error():
    state, _ = bandit([0.5, 0.25, 0.25])
    head = state.behaviour.head

    def bias_grad(actions: list[int]) -> torch.Tensor:
        a = torch.tensor(actions)
        obs = torch.ones(len(actions), 1)
        state.behaviour.zero_grad()
        params, target = state.behaviour(obs), state.actor(obs)
        kl = props.regulariser(head, params, target.detach())
        loss, _ = props_behaviour(
            head.log_prob(params, a),
            head.log_prob(target, a).detach(),
            kl,
            clip_eps=0.3,
            kl_coef=1.0,
        )
        loss.backward()
        return head.logits.bias.grad.clone()

    # frequencies equal pi_theta: zero sampling error, so zero gradient (the regulariser's is zero at phi = theta)
    close(bias_grad([0, 0, 1, 2]), [0.0, 0.0, 0.0], atol=1e-7)
    # otherwise d L / d logits = p_D - pi_theta: a step lowers the over-sampled action 1, raises action 0
    close(bias_grad([0, 1, 1, 2]), [0.25 - 0.5, 0.5 - 0.25, 0.25 - 0.25], atol=1e-7)


def test_regulariser_is_kl_behaviour_to_target_averaged_over_action_dims_with_zero_gradient_at_equality():
    torch.manual_seed(0)
    cfg = props.Config(env="Pendulum-v1", net_arch=(8,))
    state = props.make(cfg, gym.spaces.Box(-1.0, 1.0, (3,)), gym.spaces.Box(-1.0, 1.0, (2,)), CPU)
    obs = torch.randn(16, 3)
    with torch.no_grad():
        state.behaviour.head.log_std.add_(0.3)
        state.behaviour.head.mean.bias.add_(0.2)
    (mean_b, std_b), (mean_t, std_t) = (
        (m, s.exp()) for m, s in (state.behaviour(obs), state.actor(obs))
    )
    # averaged over the 2 action dimensions
    expected = kl_divergence(Normal(mean_b, std_b), Normal(mean_t, std_t)).mean(-1)
    torch.testing.assert_close(
        props.regulariser(state.behaviour.head, state.behaviour(obs), state.actor(obs)), expected
    )
    state.behaviour.load_state_dict(state.actor.state_dict())
    props.regulariser(
        state.behaviour.head, state.behaviour(obs), tuple(x.detach() for x in state.actor(obs))
    ).mean().backward()
    assert all(p.grad.abs().max() < 1e-7 for p in state.behaviour.parameters())


# -- sampling error ----------------------------------------------------------------------------------


def test_categorical_sampling_error_hand_value_and_zero_at_matching_frequencies():
    logp_all = torch.tensor([[0.5, 0.25, 0.25]] * 4, dtype=F64).log()
    close(categorical_sampling_error(torch.tensor([0, 0, 1, 2]), logp_all), 0.0)
    # frequencies (3/4, 1/4, 0): 3/4 log(3/4 / 1/2) + 1/4 log(1/4 / 1/4) + 0
    close(categorical_sampling_error(torch.tensor([0, 0, 0, 1]), logp_all), 0.75 * math.log(1.5))
    # states pooled: the target's distribution is averaged over the states before comparing
    two_states = torch.tensor([[0.9, 0.1], [0.1, 0.9]], dtype=F64).log()
    close(categorical_sampling_error(torch.tensor([0, 1]), two_states), 0.0)
    close(categorical_sampling_error(torch.tensor([0, 0]), two_states), math.log(2.0))


def test_fitted_gaussian_sampling_error_hand_values_with_and_without_features():
    mean = torch.tensor([[1.0], [1.0], [-2.0], [-2.0]], dtype=F64)
    log_std = torch.tensor([[0.0], [0.0], [1.0], [1.0]], dtype=F64)
    std = log_std.exp()
    z = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]], dtype=F64)  # mean 0, variance 1
    close(fitted_gaussian_sampling_error(mean + std * z, mean, log_std), 0.0, atol=1e-9)
    z = torch.tensor([[1.5], [0.5], [1.5], [0.5]], dtype=F64)  # c = 1, k^2 = 1/4
    expected = kl_divergence(
        Normal(torch.tensor(1.0, dtype=F64), torch.tensor(0.5, dtype=F64)), Normal(0.0, 1.0)
    )
    close(fitted_gaussian_sampling_error(mean + std * z, mean, log_std), expected, atol=1e-6)
    # a shift that follows a feature: without it the fit sees only the spread (k^2 = 5/4), with it
    # delta(s) = h(s) and k^2 = 1/4
    h = torch.tensor([[-1.0], [-1.0], [1.0], [1.0]], dtype=F64)
    z = torch.tensor([[-1.5], [-0.5], [0.5], [1.5]], dtype=F64)
    close(
        fitted_gaussian_sampling_error(mean + std * z, mean, log_std),
        0.5 * (0.25 - math.log(1.25)),
        atol=1e-6,
    )
    close(
        fitted_gaussian_sampling_error(mean + std * z, mean, log_std, h),
        0.5 * (0.25 - math.log(0.25)),
        atol=1e-5,
    )


def test_fitted_categorical_sampling_error_is_tabular_for_one_state_and_sees_errors_that_pooling_hides():
    logp_all = torch.tensor([[0.5, 0.25, 0.25]] * 5, dtype=F64).log()
    actions = torch.tensor([0, 0, 0, 1, 2])  # frequencies 0.6, 0.2, 0.2
    tabular = 0.6 * math.log(0.6 / 0.5) + 0.4 * math.log(0.2 / 0.25)
    close(categorical_sampling_error(actions, logp_all), tabular)
    close(
        fitted_categorical_sampling_error(
            actions, logp_all, torch.zeros(5, 0, dtype=F64), ridge=0.0
        ),
        tabular,
        atol=1e-7,
    )
    # two states with pi_theta = (1/2, 1/2): the data took action 0 in one and 1 in the other
    logp_all = torch.full((4, 2), 0.5, dtype=F64).log()
    state = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]], dtype=F64)
    close(categorical_sampling_error(torch.tensor([0, 0, 1, 1]), logp_all), 0.0)
    per_state = fitted_categorical_sampling_error(
        torch.tensor([0, 0, 1, 1]), logp_all, state, ridge=0.0
    )
    assert abs(float(per_state) - math.log(2.0)) < 1e-2  # pi_D -> one-hot per state, KL -> log 2
    # data that matches pi_theta in each state: W = 0 fits best
    close(
        fitted_categorical_sampling_error(torch.tensor([0, 1, 1, 0]), logp_all, state),
        0.0,
        atol=1e-9,
    )


def expected_sampling_error(
    buffer: torch.Tensor, probs: torch.Tensor, sampler: torch.Tensor, m: int
) -> float:
    """E[sampling error of the buffer plus m actions drawn from `sampler`] against `probs`, exactly:
    a sum over all K^m draws."""
    K = len(probs)
    draws = torch.cartesian_prod(*[torch.arange(K)] * m).reshape(-1, m)  # [K^m, m]
    weight = sampler[draws].prod(-1)
    logp_all = probs.log().expand(len(buffer) + m, K)
    errors = torch.stack(
        [categorical_sampling_error(torch.cat([buffer, d]), logp_all) for d in draws]
    )
    return float((weight * errors).sum())


def test_behaviour_fit_lowers_the_expected_sampling_error_of_the_next_draws_below_on_policy_sampling():
    probs = [0.4, 0.25, 0.15, 0.12, 0.08]
    state, cfg = bandit(probs, props_learning_rate=1e-2)
    # 16 actions that over-sample action 0 (9 of 16 against 6.4) and under-sample 1 and 4
    buffer = torch.tensor([0] * 9 + [1] * 2 + [2] * 3 + [3] + [4])
    metrics = props.fit_behaviour(state, cfg, torch.ones(16, 1), buffer)
    with torch.no_grad():
        target, behaviour = (
            state.actor(torch.ones(1, 1)).exp()[0].double(),
            state.behaviour(torch.ones(1, 1)).exp()[0].double(),
        )
    # stopped by delta_PROPS before the last step
    assert metrics["train/behaviour_steps"] < cfg.props_epochs * cfg.props_minibatches
    assert float(metrics["train/behaviour_kl"]) <= cfg.props_target_kl
    assert behaviour[0] < target[0] and behaviour[1] > target[1] and behaviour[4] > target[4]
    on_policy = expected_sampling_error(buffer, target, target, 4)
    with_props = expected_sampling_error(buffer, target, behaviour, 4)
    assert with_props < 0.9 * on_policy, (with_props, on_policy)


# -- buffer bookkeeping -------------------------------------------------------------------------------


def chunk(T: int, B: int, seed: int, state: props.State) -> Rollout:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, B, 1, generator=g)
    with torch.no_grad():
        actions = state.actor.head.sample(state.actor(obs.reshape(T * B, 1))).reshape(T, B)
        logp = state.actor.head.log_prob(
            state.actor(obs.reshape(T * B, 1)), actions.reshape(-1)
        ).reshape(T, B)
        values = state.critic(obs.reshape(T * B, 1)).reshape(T, B)
    dones = (torch.rand(T, B, generator=g) < 0.2).float()
    terminated = dones * (torch.rand(T, B, generator=g) < 0.5).float()
    next_values = torch.cat([values[1:], torch.randn(1, B, generator=g)])
    next_values = torch.where(dones > terminated, torch.randn(T, B, generator=g), next_values)
    return Rollout(
        obs, actions, logp, values, torch.randn(T, B, generator=g), next_values, terminated, dones
    )


def test_target_updates_every_n_steps_on_the_buffer_and_behaviour_fits_leave_the_oldest_chunk_out():
    torch.manual_seed(0)
    cfg = props.Config(
        n_steps=8,
        props_steps=4,
        buffer_batches=2,
        num_envs=1,
        batch_size=8,
        n_epochs=1,
        props_epochs=1,
        props_minibatches=64,
        props_target_kl=None,  # with 64 minibatches: one step per buffered transition
    )
    state = props.make(cfg, gym.spaces.Box(-1.0, 1.0, (1,)), gym.spaces.Discrete(3), CPU)
    first = chunk(4, 1, 0, state)
    # the buffer as one rollout, before any update: log-probabilities, values and next values as collected
    state.window.push(first)
    again = props.buffer_rollout(state, cfg)
    for got, want in zip(again[:8], first[:8]):
        torch.testing.assert_close(got, want)
    state.window = props.Window(state.window.capacity)
    sizes = []
    for k in range(6):
        metrics = props.update(state, cfg, chunk(4, 1, k, state), 0.0)
        sizes.append(float(metrics.get("train/buffer_transitions", 0.0)))
        # D: every chunk until the buffer holds b n / m = 4 of them, then the newest 3 (4 transitions each)
        assert metrics["train/behaviour_steps"] == 4 * min(k + 1, 3)
    assert state.window.capacity == 4 and len(state.window.chunks) == 4 and state.chunks_seen == 6
    # a target update after chunks 2, 4 and 6, on 8 then 16 transitions, logged until the next one
    assert sizes == [0.0, 8.0, 8.0, 16.0, 16.0, 16.0]


def test_buffer_copies_chunks_so_the_loop_may_reuse_its_storage():
    cfg = props.Config(n_steps=8, props_steps=4)
    state = props.make(cfg, gym.spaces.Box(-1.0, 1.0, (1,)), gym.spaces.Discrete(3), CPU)
    c = chunk(4, 1, 0, state)
    state.window.push(c)
    before = state.window.cat("obs").clone()
    c.obs.add_(1.0)
    assert torch.equal(state.window.cat("obs"), before)


# -- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"sampling": "uniform"},
            "props: sampling = 'uniform' is invalid: must be one of props, on_policy",
        ),
        ({"props_steps": 300}, "props: props_steps = 300 is invalid: must divide n_steps (2048)"),
        (
            {"buffer_batches": 1, "props_steps": 2048},
            "props: props_steps = 2048 is invalid: must be < buffer_batches * n_steps",
        ),
        ({"buffer_batches": 0}, "props: buffer_batches = 0 is invalid: must be > 0 and finite"),
        (
            {"props_clip_range": 0.0},
            "props: props_clip_range = 0.0 is invalid: must be > 0 and finite",
        ),
        ({"props_lambda": -0.1}, "props: props_lambda = -0.1 is invalid: must be >= 0 and finite"),
        (
            {"props_target_kl": 0.0},
            "props: props_target_kl = 0.0 is invalid: must be > 0 and finite",
        ),
        (
            {"props_learning_rate": -1e-3},
            "props: props_learning_rate = -0.001 is invalid: must be > 0 and finite",
        ),
        ({"props_epochs": 0}, "props: props_epochs = 0 is invalid: must be > 0 and finite"),
        (
            {"props_minibatches": 0},
            "props: props_minibatches = 0 is invalid: must be > 0 and finite",
        ),
        (
            {"props_max_grad_norm": 0.0},
            "props: props_max_grad_norm = 0.0 is invalid: must be > 0 and finite",
        ),
        ({"policy": "gmm"}, "props: policy = 'gmm' is invalid: must be one of gaussian"),
        ({"clip_range": 0.0}, "props: clip_range = 0.0 is invalid: must be > 0 and finite"),
    ],
)
def test_config_rejects_bad_values_naming_field_value_and_range(overrides, message):
    with pytest.raises(ConfigError) as err:
        props.Config(**overrides)
    assert str(err.value).startswith(message)


def test_on_policy_sampling_allows_one_batch_and_one_chunk_per_batch():
    assert (
        props.Config(sampling="on_policy", buffer_batches=1, props_steps=2048).buffer_batches == 1
    )


def test_every_field_has_a_one_line_doc_shown_by_help():
    docs = field_docs(props.Config)
    assert all(docs.get(f.name) for f in dataclasses.fields(props.Config))
    help_text = " ".join(cli.field_parser("props").format_help().split())
    assert "--props-lambda" in help_text and "regulariser KL(pi_phi || pi_theta)" in help_text


# -- runs ---------------------------------------------------------------------------------------------

PROPS = [
    "props",
    "--env",
    "CartPole-v1",
    "--seed",
    "3",
    "--n-steps",
    "64",
    "--props-steps",
    "32",
    "--num-envs",
    "2",
    "--batch-size",
    "32",
    "--n-epochs",
    "2",
    "--props-epochs",
    "2",
    "--props-minibatches",
    "4",
    "--eval-every",
    "512",
    "--eval-episodes",
    "1",
    "--log-every",
    "64",
    "--checkpoint-every",
    "192",
    "--progress",
    "false",
    "--torch-threads",
    "1",
]


def test_cli_stop_and_resume_in_new_process_is_exact(tmp_path: Path):
    """Stopped at an evaluation (stop_at_return is met at once) with the whole run's total_steps, the
    run is resumed from its last checkpoint, taken mid-way between target updates (192 = 3 chunks of
    32 steps x 2 envs), so the buffer, the behaviour policy and its optimiser must travel."""
    whole, part = tmp_path / "whole", tmp_path / "part"
    run_cli("train", *PROPS, "--total-steps", "1024", "--run-dir", str(whole))
    run_cli(
        "train",
        *PROPS,
        "--total-steps",
        "1024",
        "--run-dir",
        str(part),
        "--stop-at-return=-1e9",
        "--checkpoint-every",
        "192",
    )
    assert json.loads((part / "summary.json").read_text())["steps_done"] == 512
    run_cli("train", "--resume", str(part), "--stop-at-return", "none")
    a, b = final_state(whole), final_state(part)
    assert_same_state(a, b)
    assert any("behaviour_optimizer" in k for k in a) and any(
        k.startswith("/parts/buffer/chunks/3") for k in a
    )
    assert metric_rows(whole) == metric_rows(part)
    keys = {row[1] for row in metric_rows(whole)}
    assert {
        "train/sampling_error",
        "train/sampling_error_resampled",
        "train/behaviour_kl",
        "train/approx_kl",
    } <= keys


def test_same_seed_same_parameters(tmp_path: Path):
    fields = {
        "env": "CartPole-v1",
        "seed": 11,
        "total_steps": 256,
        "n_steps": 64,
        "props_steps": 32,
        "batch_size": 32,
        "n_epochs": 2,
        "props_epochs": 2,
        "eval_every": 256,
        "eval_episodes": 1,
        "progress": False,
        "torch_threads": 1,
    }
    a = dramaturg.train("props", run_dir=str(tmp_path / "a"), **fields)
    b = dramaturg.train("props", run_dir=str(tmp_path / "b"), **fields)
    c = dramaturg.train("props", run_dir=str(tmp_path / "c"), **(fields | {"seed": 12}))
    pa, pb, pc = (dict(r.policy.named_parameters()) for r in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa), (
        "a different seed should give different parameters"
    )
    assert_same_state(final_state(a.run_dir), final_state(b.run_dir))
    assert metric_rows(a.run_dir) == metric_rows(b.run_dir)


@pytest.mark.learning
def test_props_learns_cartpole(tmp_path: Path):
    result = dramaturg.train(
        "props",
        env="CartPole-v1",
        seed=0,
        total_steps=30_000,
        n_steps=256,
        props_steps=128,
        eval_every=2_500,
        eval_episodes=10,
        stop_at_return=475.0,
        run_dir=str(tmp_path / "props"),
        progress=False,
        torch_threads=1,
    )
    assert result.summary["solved_step"] is not None, result.summary
