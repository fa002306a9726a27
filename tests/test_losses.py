"""Losses, action heads, critics and actors: hand values, limiting cases and gradient flow."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch
from torch.distributions import Categorical, Normal

from dramaturg.losses.policy import entropy_bonus, policy_gradient, ppo_clip
from dramaturg.losses.q import deterministic_actor, q_regression, sac_actor, td_target, temperature
from dramaturg.losses.value import clipped_value, value_mse
from dramaturg.nn.actors import StochasticActor
from dramaturg.nn.critics import QEnsemble
from dramaturg.nn.heads import CategoricalHead, GaussianHead, MultiCategoricalHead, TanhGaussianHead

F64 = torch.float64


def t(*xs, grad: bool = False) -> torch.Tensor:
    return torch.tensor(xs, dtype=F64, requires_grad=grad)


def close(actual, expected, atol=1e-12, rtol=0.0):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=F64), torch.as_tensor(expected, dtype=F64), rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------------------------
# Policy losses
# ------------------------------------------------------------------------------------------------
def test_ppo_clip_on_policy_is_minus_mean_advantage():
    logp = t(-0.3, -1.2, -2.0, -0.1)
    adv = t(1.0, -2.0, 0.5, 3.0)
    loss, m = ppo_clip(logp, logp.clone(), adv, clip_eps=0.2)
    close(loss, -(1.0 - 2.0 + 0.5 + 3.0) / 4)  # -0.625
    close(m["loss/policy"], -0.625)
    close(m["train/approx_kl"], 0.0)
    close(m["train/clip_fraction"], 0.0)


def test_ppo_clip_hand_value_and_gradient():
    # eps = 0.2, logp_old = 0, ratios 1.5, 0.5, 1.1; advantages 2, 1, -3
    logp = torch.tensor([math.log(1.5), math.log(0.5), math.log(1.1)], dtype=F64, requires_grad=True)
    adv = t(2.0, 1.0, -3.0)
    loss, m = ppo_clip(logp, torch.zeros(3, dtype=F64), adv, clip_eps=0.2)
    # min(1.5*2, 1.2*2) = 2.4;  min(0.5*1, 0.8*1) = 0.5;  min(1.1*-3, 1.1*-3) = -3.3
    close(loss, -(2.4 + 0.5 - 3.3) / 3)  # 0.4 / 3
    # k3: mean((r - 1) - log r)
    close(m["train/approx_kl"], ((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5)) + (0.1 - math.log(1.1))) / 3)
    close(m["train/clip_fraction"], 2 / 3, atol=1e-7)  # |r - 1| = 0.5, 0.5, 0.1 against 0.2 (a float32 mean)
    loss.backward()
    # d loss / d logp_i = -(1/3) * d surr_i / d logp_i: 0 (clipped), -(0.5 * 1)/3, -(1.1 * -3)/3
    close(logp.grad, [0.0, -0.5 / 3, 1.1])


def test_ppo_clip_gradient_is_zero_when_clipped_with_positive_advantage():
    logp = torch.tensor([math.log(1.5)], dtype=F64, requires_grad=True)  # ratio 1.5 > 1.2
    loss, _ = ppo_clip(logp, torch.zeros(1, dtype=F64), t(1.0), clip_eps=0.2)
    loss.backward()
    close(loss, -1.2)
    close(logp.grad, [0.0])


def test_ppo_clip_gradient_flows_beyond_clip_with_negative_advantage():
    logp = torch.tensor([math.log(1.5)], dtype=F64, requires_grad=True)
    loss, _ = ppo_clip(logp, torch.zeros(1, dtype=F64), t(-1.0), clip_eps=0.2)
    loss.backward()
    # min(1.5 * -1, 1.2 * -1) = -1.5 (unclipped); d(-ratio * adv)/d logp = -ratio * adv = 1.5
    close(loss, 1.5)
    close(logp.grad, [1.5])


def test_ppo_clip_gradient_reaches_logp():
    logp = t(-0.5, -1.0, grad=True)
    loss, _ = ppo_clip(logp, t(-0.5, -1.0), t(1.0, 2.0), clip_eps=0.2)
    loss.backward()
    close(logp.grad, [-0.5, -1.0])  # ratio 1: -adv / N


def test_ppo_clip_no_gradient_to_logp_old():
    logp = t(-0.5, -1.0, grad=True)
    logp_old = t(-0.4, -1.1, grad=True)
    loss, _ = ppo_clip(logp, logp_old, t(1.0, 2.0), clip_eps=0.2)
    loss.backward()
    assert logp.grad is not None
    assert logp_old.grad is None or torch.all(logp_old.grad == 0)


def test_policy_gradient_gradient_is_minus_advantage_over_n():
    logp = t(-0.2, -1.5, -0.7, grad=True)
    adv = t(2.0, -1.0, 0.5)
    loss, m = policy_gradient(logp, adv)
    close(loss, -(-0.2 * 2.0 + -1.5 * -1.0 + -0.7 * 0.5) / 3)  # -(−0.4 + 1.5 − 0.35)/3 = -0.25
    close(m["loss/policy"], -0.25)
    loss.backward()
    close(logp.grad, [-2.0 / 3, 1.0 / 3, -0.5 / 3])


def test_entropy_bonus():
    loss, m = entropy_bonus(t(1.0, 2.0, 4.5))
    close(loss, -2.5)
    close(m["train/entropy"], 2.5)


# ------------------------------------------------------------------------------------------------
# Value losses
# ------------------------------------------------------------------------------------------------
def test_value_mse_hand_value():
    loss, m = value_mse(t(1.0, 2.0, 3.0), t(1.5, 2.0, 1.0))
    close(loss, (0.25 + 0.0 + 4.0) / 3)
    close(m["loss/value"], 4.25 / 3)


VALUES = t(2.0, 0.5, 1.1)
VALUES_OLD = t(1.0, 1.0, 1.0)
RETURNS = t(1.5, 0.0, 3.0)


def test_clipped_value_small_clip_takes_the_worse_error():
    loss, _ = clipped_value(VALUES, VALUES_OLD, RETURNS, clip=0.2)
    # clipped predictions 1.2, 0.8, 1.1
    # raw errors      (2 - 1.5)^2 = .25,   .5^2 = .25,  (1.1 - 3)^2 = 3.61
    # clipped errors  (1.2 - 1.5)^2 = .09, .8^2 = .64,  3.61
    close(loss, (0.25 + 0.64 + 3.61) / 3)  # 1.5


def test_clipped_value_huge_clip_equals_mse():
    loss, _ = clipped_value(VALUES, VALUES_OLD, RETURNS, clip=1e6)
    close(loss, (0.25 + 0.25 + 3.61) / 3)
    close(loss, value_mse(VALUES, RETURNS)[0])


# ------------------------------------------------------------------------------------------------
# Q losses (SAC, TD3)
# ------------------------------------------------------------------------------------------------
def test_td_target_terminal_ignores_next_q():
    rewards, term = t(1.0, 2.0), t(0.0, 1.0)
    out = td_target(rewards, t(10.0, 1e6), term, gamma=0.99)
    close(out, [1.0 + 0.99 * 10.0, 2.0])
    out2 = td_target(rewards, t(10.0, -123.0), term, gamma=0.99)
    close(out2, out)


def test_q_regression_sums_members_averages_batch():
    q = torch.tensor([[1.0, 2.0, 3.0], [0.0, 2.0, 5.0]], dtype=F64, requires_grad=True)  # [E=2, N=3]
    target = t(1.5, 2.0, 4.0, grad=True)
    loss, m = q_regression(q, target)
    # member 0: (.25 + 0 + 1)/3;  member 1: (2.25 + 0 + 1)/3;  0.5 * (1.25 + 3.25)/3 = 0.75
    close(loss, 0.5 * (1.25 / 3 + 3.25 / 3))
    close(m["train/q_mean"], 13.0 / 6)
    loss.backward()
    close(q.grad, torch.tensor([[-0.5, 0.0, -1.0], [-1.5, 0.0, 1.0]], dtype=F64) / 3)
    assert target.grad is None


def test_temperature_gradient_sign():
    # entropy estimate -mean(logp) = -1/3 is below the target 1.0: raising alpha must lower the loss
    log_alpha = torch.tensor(0.3, dtype=F64, requires_grad=True)
    logp = t(0.5, -0.5, 1.0, grad=True)
    loss, m = temperature(log_alpha, logp, target_entropy=1.0)
    close(loss, -0.3 * (1.5 + 0.5 + 2.0) / 3)  # -0.4
    close(m["train/alpha"], math.exp(0.3))
    loss.backward()
    close(log_alpha.grad, -4.0 / 3)
    assert log_alpha.grad < 0
    assert logp.grad is None

    # entropy 3.5 above the target -2: alpha must go down
    log_alpha = torch.tensor(0.0, dtype=F64, requires_grad=True)
    loss, _ = temperature(log_alpha, t(-3.0, -4.0), target_entropy=-2.0)
    loss.backward()
    close(log_alpha.grad, -(-5.0 + -6.0) / 2)  # 5.5
    assert log_alpha.grad > 0


def test_sac_actor_hand_value():
    q = t(1.0, 2.0, grad=True)
    logp = t(-1.0, 0.5, grad=True)
    alpha = torch.tensor(0.2, dtype=F64, requires_grad=True)
    loss, m = sac_actor(q, logp, alpha)
    close(loss, ((0.2 * -1.0 - 1.0) + (0.2 * 0.5 - 2.0)) / 2)  # -1.55
    close(m["train/entropy"], -(-1.0 + 0.5) / 2)
    loss.backward()
    close(q.grad, [-0.5, -0.5])
    close(logp.grad, [0.1, 0.1])
    assert alpha.grad is None


def test_deterministic_actor_hand_value():
    q = t(1.0, 2.0, -6.0, grad=True)
    loss, m = deterministic_actor(q)
    close(loss, 1.0)  # -(1 + 2 - 6)/3
    close(m["loss/actor"], 1.0)
    loss.backward()
    close(q.grad, [-1 / 3, -1 / 3, -1 / 3])


# ------------------------------------------------------------------------------------------------
# Action heads against torch.distributions
# ------------------------------------------------------------------------------------------------
def test_gaussian_head_matches_normal():
    torch.manual_seed(0)
    head = GaussianHead(5, 3, log_std_init=-0.4, gain=1.0).double()
    with torch.no_grad():
        head.log_std.copy_(t(-0.4, 0.3, 1.0))
    h = torch.randn(7, 5, dtype=F64)
    params = head(h)
    mean, log_std = params
    assert mean.shape == log_std.shape == (7, 3)
    action = torch.randn(7, 3, dtype=F64) * 2
    ref = Normal(head.mean(h), torch.tensor([-0.4, 0.3, 1.0], dtype=F64).exp())
    close(head.log_prob(params, action), ref.log_prob(action).sum(-1), atol=1e-10)
    close(head.entropy(params), ref.entropy().sum(-1).expand(7), atol=1e-10)
    close(head.mode(params), head.mean(h))


def test_gaussian_head_sample_statistics():
    torch.manual_seed(1)
    head = GaussianHead(2, 2, log_std_init=math.log(0.5)).double()
    params = (t(1.0, -3.0).expand(20000, 2), torch.full((20000, 2), math.log(0.5), dtype=F64))
    s = head.sample(params)
    close(s.mean(0), [1.0, -3.0], atol=0.02)
    close(s.std(0), [0.5, 0.5], atol=0.02)


def test_categorical_head_matches_categorical():
    torch.manual_seed(0)
    head = CategoricalHead(4, 5, gain=2.0).double()
    h = torch.randn(6, 4, dtype=F64)
    logp_all = head(h)
    ref = Categorical(logits=head.logits(h))
    action = torch.tensor([0, 1, 2, 3, 4, 2])
    close(head.log_prob(logp_all, action), ref.log_prob(action), atol=1e-10)
    close(head.log_prob(logp_all, action.double()), ref.log_prob(action), atol=1e-10)  # float actions from storage
    close(head.entropy(logp_all), ref.entropy(), atol=1e-10)
    close(logp_all.exp().sum(-1), torch.ones(6, dtype=F64))
    assert torch.equal(head.mode(logp_all), ref.probs.argmax(-1))
    s = head.sample(logp_all)
    assert s.shape == (6,) and s.min() >= 0 and s.max() < 5


def test_multicategorical_head_is_sum_of_independent_categoricals():
    torch.manual_seed(0)
    nvec = [3, 2, 4]
    head = MultiCategoricalHead(4, nvec, gain=2.0).double()
    h = torch.randn(5, 4, dtype=F64)
    parts = head(h)
    assert [p.shape for p in parts] == [(5, 3), (5, 2), (5, 4)]
    logits = head.logits(h)
    refs = [Categorical(logits=logits[:, 0:3]), Categorical(logits=logits[:, 3:5]), Categorical(logits=logits[:, 5:9])]
    action = torch.tensor([[0, 1, 3], [2, 0, 0], [1, 1, 2], [2, 1, 1], [0, 0, 3]])
    expected_lp = sum(r.log_prob(action[:, i]) for i, r in enumerate(refs))
    close(head.log_prob(parts, action), expected_lp, atol=1e-10)
    close(head.entropy(parts), sum(r.entropy() for r in refs), atol=1e-10)
    s = head.sample(parts)
    assert s.shape == (5, 3)
    assert all(0 <= s[:, i].min() and s[:, i].max() < n for i, n in enumerate(nvec))
    assert torch.equal(head.mode(parts), torch.stack([r.probs.argmax(-1) for r in refs], -1))


def test_tanh_gaussian_rsample_log_prob():
    torch.manual_seed(0)
    head = TanhGaussianHead(3, 2).double()
    mean = torch.tensor([[0.3, -0.8], [1.2, 0.0], [-0.5, 0.9], [0.0, -1.5]], dtype=F64, requires_grad=True)
    log_std = torch.tensor([[-0.5, 0.2], [-1.0, -0.3], [0.0, -2.0], [-0.7, -0.1]], dtype=F64)
    torch.manual_seed(123)
    action, logp = head.rsample((mean, log_std))
    torch.manual_seed(123)
    noise = torch.randn(4, 2, dtype=F64)
    u = mean.detach() + log_std.exp() * noise
    assert u.abs().max() < 3.5  # moderate pre-squash values
    expected = Normal(mean.detach(), log_std.exp()).log_prob(u).sum(-1) - torch.log(1 - torch.tanh(u) ** 2).sum(-1)
    close(action.detach(), torch.tanh(u), atol=1e-12)
    close(torch.atanh(action.detach()), u, atol=1e-9)
    close(logp.detach(), expected, atol=1e-9)
    assert logp.shape == (4,)
    assert (action.abs() < 1).all()
    # reparameterised: the action carries a gradient to the mean
    action.sum().backward()
    assert mean.grad is not None and (mean.grad > 0).all()


def test_tanh_gaussian_forward_clamps_log_std_and_samples_in_range():
    torch.manual_seed(0)
    head = TanhGaussianHead(3, 2, log_std_init=0.0).double()
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.copy_(t(0.5, -0.5, 5.0, -30.0))
    mean, log_std = head(torch.randn(10, 3, dtype=F64))
    close(mean, t(0.5, -0.5).expand(10, 2))
    close(log_std, t(2.0, -20.0).expand(10, 2))
    a = head.sample((mean, log_std))
    assert a.shape == (10, 2) and (a.abs() <= 1).all()
    close(head.mode((mean, log_std)), torch.tanh(t(0.5, -0.5)).expand(10, 2))


# ------------------------------------------------------------------------------------------------
# Q ensemble
# ------------------------------------------------------------------------------------------------
def _ensemble():
    torch.manual_seed(0)
    return QEnsemble(4, 2, [8, 6], members=3).double()


def test_q_ensemble_shape_and_members_differ():
    q = _ensemble()
    obs, act = torch.randn(5, 4, dtype=F64), torch.randn(5, 2, dtype=F64)
    out = q(obs, act)
    assert out.shape == (3, 5)
    for w in q.weights:
        assert not torch.allclose(w[0], w[1]) and not torch.allclose(w[1], w[2])
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])
    # nn.Linear's default init range: |w|, |b| <= 1/sqrt(fan_in)
    for w, b, fan_in in zip(q.weights, q.biases, [6, 8, 6]):
        assert w.abs().max() <= 1 / math.sqrt(fan_in) and b.abs().max() <= 1 / math.sqrt(fan_in)


def test_q_ensemble_member_equals_plain_mlp():
    q = _ensemble()
    # flatten_obs casts observations to float32: use values exactly representable there
    obs, act = torch.randn(5, 4).double(), torch.randn(5, 2, dtype=F64)
    out = q(obs, act)
    x = torch.cat([obs, act], -1)
    for e in range(3):
        (w0, w1, w2), (b0, b1, b2) = [w[e] for w in q.weights], [b[e, 0] for b in q.biases]
        # weights are stored [in, out]: nn.functional.linear wants [out, in]
        h = torch.relu(torch.nn.functional.linear(x, w0.T, b0))
        h = torch.relu(torch.nn.functional.linear(h, w1.T, b1))
        ref = torch.nn.functional.linear(h, w2.T, b2).squeeze(-1)
        close(out[e], ref, atol=1e-12)


def test_q_ensemble_detach_params():
    q = _ensemble()
    obs = torch.randn(5, 4, dtype=F64)
    act = torch.randn(5, 2, dtype=F64, requires_grad=True)
    q(obs, act, detach_params=True).sum().backward()
    assert act.grad is not None and act.grad.abs().sum() > 0
    for p in q.parameters():
        assert p.grad is None or torch.all(p.grad == 0)
    # control: without detaching, the weights do get gradients
    act2 = act.detach().clone().requires_grad_(True)
    q(obs, act2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in q.parameters())
    close(act2.grad, act.grad)


# ------------------------------------------------------------------------------------------------
# Stochastic actor
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Box(-1.0, 1.0, (3,)),
        gym.spaces.Discrete(4),
        gym.spaces.MultiDiscrete([3, 2]),
    ],
    ids=["box", "discrete", "multidiscrete"],
)
def test_stochastic_actor_sample_log_prob_consistent(space):
    torch.manual_seed(0)
    actor = StochasticActor(5, space, [16], log_std_init=-0.3)
    # move away from the near-uniform 0.01-gain init so the log-probs differ between actions
    with torch.no_grad():
        for p in actor.head.parameters():
            p.add_(torch.randn_like(p))
    obs = torch.randn(8, 5)
    action, logp = actor.sample(obs)
    assert logp.shape == (8,)
    logp2, entropy = actor.log_prob_entropy(obs, action)
    close(logp, logp2, atol=1e-6)
    assert entropy.shape == (8,)
    # against torch.distributions built from the actor's own parameters
    params = actor(obs)
    if isinstance(space, gym.spaces.Box):
        assert action.shape == (8, 3)
        ref = Normal(params[0], params[1].exp())
        close(logp, ref.log_prob(action).sum(-1), atol=1e-5)
        close(entropy, ref.entropy().sum(-1), atol=1e-5)
    elif isinstance(space, gym.spaces.Discrete):
        assert action.shape == (8,)
        ref = Categorical(logits=params)
        close(logp, ref.log_prob(action), atol=1e-5)
        close(entropy, ref.entropy(), atol=1e-5)
    else:
        assert action.shape == (8, 2)
        refs = [Categorical(logits=p) for p in params]
        close(logp, sum(r.log_prob(action[:, i]) for i, r in enumerate(refs)), atol=1e-5)
        close(entropy, sum(r.entropy() for r in refs), atol=1e-5)
