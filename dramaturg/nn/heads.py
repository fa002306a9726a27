"""Action distributions written as plain tensor maths (no torch.distributions overhead).

Each head maps features to distribution parameters and implements sample / log_prob / entropy /
mode over them. `action_map` says how an action reaches the environment: "clip" to the Box
bounds, "scale" from [-1, 1] to the bounds, or "none".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_2PI = math.log(2 * math.pi)


class CategoricalHead(nn.Module):
    action_map = "none"

    def __init__(self, in_dim: int, n: int, gain: float = 0.01):
        super().__init__()
        self.logits = nn.Linear(in_dim, n)
        nn.init.orthogonal_(self.logits.weight, gain)
        nn.init.zeros_(self.logits.bias)

    def forward(self, h: Tensor) -> Tensor:
        return F.log_softmax(self.logits(h), dim=-1)  # [N, n] normalised log-probabilities

    def sample(self, logp_all: Tensor) -> Tensor:
        return torch.multinomial(logp_all.exp(), 1).squeeze(-1)

    def log_prob(self, logp_all: Tensor, action: Tensor) -> Tensor:
        return logp_all.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, logp_all: Tensor) -> Tensor:
        return -(logp_all.exp() * logp_all).sum(-1)

    def mode(self, logp_all: Tensor) -> Tensor:
        return logp_all.argmax(-1)


class MultiCategoricalHead(nn.Module):
    """Independent categoricals, one per MultiDiscrete dimension."""

    action_map = "none"

    def __init__(self, in_dim: int, nvec: list[int], gain: float = 0.01):
        super().__init__()
        self.nvec = list(nvec)
        self.logits = nn.Linear(in_dim, sum(self.nvec))
        nn.init.orthogonal_(self.logits.weight, gain)
        nn.init.zeros_(self.logits.bias)

    def forward(self, h: Tensor) -> tuple[Tensor, ...]:
        return tuple(F.log_softmax(x, -1) for x in self.logits(h).split(self.nvec, dim=-1))

    def sample(self, parts: tuple[Tensor, ...]) -> Tensor:
        return torch.stack([torch.multinomial(p.exp(), 1).squeeze(-1) for p in parts], -1)

    def log_prob(self, parts: tuple[Tensor, ...], action: Tensor) -> Tensor:
        a = action.long()
        return sum(p.gather(-1, a[..., i : i + 1]).squeeze(-1) for i, p in enumerate(parts))

    def entropy(self, parts: tuple[Tensor, ...]) -> Tensor:
        return sum(-(p.exp() * p).sum(-1) for p in parts)

    def mode(self, parts: tuple[Tensor, ...]) -> Tensor:
        return torch.stack([p.argmax(-1) for p in parts], -1)


class GaussianHead(nn.Module):
    """Diagonal Gaussian with a state-independent log std (PPO/A2C, as in SB3 and baselines)."""

    action_map = "clip"

    def __init__(self, in_dim: int, act_dim: int, log_std_init: float = 0.0, gain: float = 0.01):
        super().__init__()
        self.mean = nn.Linear(in_dim, act_dim)
        nn.init.orthogonal_(self.mean.weight, gain)
        nn.init.zeros_(self.mean.bias)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        mean = self.mean(h)
        return mean, self.log_std.expand_as(mean)

    def sample(self, params: tuple[Tensor, Tensor]) -> Tensor:
        mean, log_std = params
        return mean + log_std.exp() * torch.randn_like(mean)

    def log_prob(self, params: tuple[Tensor, Tensor], action: Tensor) -> Tensor:
        mean, log_std = params
        z = (action - mean) * (-log_std).exp()
        return (-0.5 * z.square() - log_std - 0.5 * LOG_2PI).sum(-1)

    def entropy(self, params: tuple[Tensor, Tensor]) -> Tensor:
        return (0.5 + 0.5 * LOG_2PI + params[1]).sum(-1)

    def mode(self, params: tuple[Tensor, Tensor]) -> Tensor:
        return params[0]


class TanhGaussianHead(nn.Module):
    """Gaussian squashed by tanh, state-dependent std (SAC; Haarnoja et al. 2018, appendix C)."""

    action_map = "scale"
    LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # as the authors' code and SB3

    def __init__(self, in_dim: int, act_dim: int, log_std_init: float = 0.0):
        super().__init__()
        self.out = nn.Linear(in_dim, 2 * act_dim)
        with torch.no_grad():
            self.out.bias[act_dim:].fill_(log_std_init)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.out(h).chunk(2, dim=-1)
        return mean, log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    def rsample(self, params: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """A reparameterised action in (-1, 1) and its log-probability (eq. 21)."""
        mean, log_std = params
        noise = torch.randn_like(mean)
        u = mean + log_std.exp() * noise
        action = torch.tanh(u)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), numerically stable
        correction = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
        logp = (-0.5 * noise.square() - log_std - 0.5 * LOG_2PI - correction).sum(-1)
        return action, logp

    def sample(self, params: tuple[Tensor, Tensor]) -> Tensor:
        return self.rsample(params)[0]

    def mode(self, params: tuple[Tensor, Tensor]) -> Tensor:
        return torch.tanh(params[0])


# -- Gaussian mixtures for PMOE (Ren et al. 2021, arXiv:2104.09122) -------------------------------


def diag_gaussian_log_prob(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log N(x; mean, diag exp(log_std)^2), summed over the last (action) dimension."""
    z = (x - mean) * (-log_std).exp()
    return (-0.5 * z.square() - log_std - 0.5 * LOG_2PI).sum(-1)


def mixture_log_prob(log_w: Tensor, mean: Tensor, log_std: Tensor, x: Tensor) -> Tensor:
    """log sum_k w_k N(x; mu_k, sigma_k), the PMOE policy density (Ren et al. 2021,
    the GMM policy pi(a|s) = sum_k w_k pi_k(a|s)).

    log_w [N, K], mean and log_std [N, K, A]; x [N, A] gives [N], x [N, J, A] gives [N, J]
    (every one of J points under the whole mixture).
    """
    points = x if x.dim() == 3 else x.unsqueeze(1)  # [N, J, A]
    per_component = diag_gaussian_log_prob(points.unsqueeze(2), mean.unsqueeze(1), log_std.unsqueeze(1))  # [N, J, K]
    logp = torch.logsumexp(log_w.unsqueeze(1) + per_component, dim=-1)  # [N, J]
    return logp if x.dim() == 3 else logp.squeeze(1)


def tanh_log_det(u: Tensor) -> Tensor:
    """sum_i log(1 - tanh(u_i)^2), the change of variables of a = tanh(u) (Haarnoja et al. 2018,
    eq. 21), written as 2 (log 2 - u - softplus(-2u)) to stay finite for large |u|."""
    return (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)


def pick_component(x: Tensor, k: Tensor) -> Tensor:
    """x[n, k[n]] for x [N, K, ...] and indices k [N]."""
    index = k.view(-1, 1, *([1] * (x.dim() - 2))).expand(-1, 1, *x.shape[2:])
    return x.gather(1, index).squeeze(1)


def mixture_entropy_bound(log_w: Tensor, log_std: Tensor) -> Tensor:
    """H(w) + sum_k w_k H(N_k), an upper bound on the mixture's entropy (which has no closed form);
    exact for K = 1 and for components that do not overlap. [N]"""
    w = log_w.exp()
    component = (0.5 + 0.5 * LOG_2PI + log_std).sum(-1)  # [N, K]
    return -(w * log_w).sum(-1) + (w * component).sum(-1)


class GaussianMixtureHead(nn.Module):
    """PMOE policy for on-policy learning: pi(a|s) = sum_k w_k(s) N(a; mu_k(s), sigma_k^2)
    (Ren et al. 2021, the GMM policy), routing weights w = softmax of a linear layer, state-dependent means
    and state-independent log stds per component, as the authors' PPO version."""

    action_map = "clip"

    def __init__(self, in_dim: int, act_dim: int, components: int, log_std_init: float = 0.0, gain: float = 0.01):
        super().__init__()
        self.components, self.act_dim = components, act_dim
        self.mean = nn.Linear(in_dim, components * act_dim)
        nn.init.orthogonal_(self.mean.weight, gain)
        nn.init.zeros_(self.mean.bias)
        self.log_std = nn.Parameter(torch.full((components, act_dim), float(log_std_init)))
        self.routing = nn.Linear(in_dim, components)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log w [N, K], means [N, K, A], log stds [N, K, A])."""
        mean = self.mean(h).unflatten(-1, (self.components, self.act_dim))
        return F.log_softmax(self.routing(h), dim=-1), mean, self.log_std.expand_as(mean)

    def component_samples(self, params: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """One action from every component, [N, K, A]: the candidates the routing is fitted on."""
        _, mean, log_std = params
        return mean + log_std.exp() * torch.randn_like(mean)

    def sample(self, params: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """Acting rule: k ~ Cat(w(s)), then a ~ N(mu_k, sigma_k) (Ren et al. 2021)."""
        log_w, mean, log_std = params
        noise = torch.randn_like(mean[:, 0])  # [N, A], drawn first so that K = 1 matches GaussianHead
        k = torch.multinomial(log_w.exp(), 1).squeeze(-1)  # [N]
        return pick_component(mean, k) + pick_component(log_std, k).exp() * noise

    def log_prob(self, params: tuple[Tensor, Tensor, Tensor], action: Tensor) -> Tensor:
        return mixture_log_prob(*params, action)

    def entropy(self, params: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        return mixture_entropy_bound(params[0], params[2])

    def mode(self, params: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """The mean of the most probable component: the deterministic action."""
        return pick_component(params[1], params[0].argmax(-1))


class TanhGaussianMixtureHead(nn.Module):
    """PMOE policy for SAC: a mixture of K diagonal Gaussians over u, squashed by a = tanh(u)
    (Ren et al. 2021, the GMM policy with SAC's bounded actions, Haarnoja et al. 2018, appendix C).

    Every component has a state-dependent mean and log std, clamped as TanhGaussianHead's; the
    routing weights w(s) are a softmax over a linear layer. Because all components share the
    squashing, log pi(tanh(u)|s) = log sum_k w_k N(u; mu_k, sigma_k) - sum_i log(1 - tanh(u_i)^2).
    """

    action_map = "scale"
    LOG_STD_MIN, LOG_STD_MAX = TanhGaussianHead.LOG_STD_MIN, TanhGaussianHead.LOG_STD_MAX

    def __init__(self, in_dim: int, act_dim: int, components: int, log_std_init: float = 0.0):
        super().__init__()
        self.components, self.act_dim = components, act_dim
        self.out = nn.Linear(in_dim, 2 * components * act_dim)
        with torch.no_grad():
            self.out.bias[components * act_dim :].fill_(log_std_init)
        self.routing = nn.Linear(in_dim, components)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log w [N, K], means [N, K, A], log stds [N, K, A]) of the pre-squash mixture."""
        mean, log_std = self.out(h).unflatten(-1, (2, self.components, self.act_dim)).unbind(-3)
        return F.log_softmax(self.routing(h), dim=-1), mean, log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    def squashed_log_prob(self, params: tuple[Tensor, Tensor, Tensor], u: Tensor) -> Tensor:
        """log pi(tanh(u)|s) of the squashed mixture at pre-squash points u [N, A] or [N, J, A]."""
        return mixture_log_prob(*params, u) - tanh_log_det(u)

    def rsample_components(self, params: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One reparameterised action per expert, a~_k = tanh(mu_k + sigma_k eps_k) [N, K, A], and
        log pi(a~_k|s) under the whole mixture [N, K] with the routing weights held fixed, so
        that only the routing loss moves them (Ren et al. 2021, the frequency approximate gradient)."""
        log_w, mean, log_std = params
        u = mean + log_std.exp() * torch.randn_like(mean)  # [N, K, A]
        return torch.tanh(u), self.squashed_log_prob((log_w.detach(), mean, log_std), u)

    def rsample(self, params: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Acting rule k ~ Cat(w(s)), a = tanh(mu_k + sigma_k eps) [N, A], and log pi(a|s) [N]."""
        log_w, mean, log_std = params
        noise = torch.randn_like(mean[:, 0])  # [N, A], drawn first so that K = 1 matches TanhGaussianHead
        k = torch.multinomial(log_w.exp(), 1).squeeze(-1)  # [N]
        u = pick_component(mean, k) + pick_component(log_std, k).exp() * noise
        return torch.tanh(u), self.squashed_log_prob(params, u)

    def sample(self, params: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        return self.rsample(params)[0]

    def mode(self, params: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """tanh of the mean of the most probable component: the deterministic action."""
        return torch.tanh(pick_component(params[1], params[0].argmax(-1)))
