"""Mirror-descent policy losses (MDPO; Tomar et al. 2022, "Mirror Descent Policy Optimization",
ICLR, arXiv:2005.09814) and the closed-form KL divergences they use as the Bregman proximity term.

Each MDPO iteration k approximately solves the mirror-descent step (paper Sec. 3)
    pi_{k+1} = argmax_pi  E_{s ~ rho_k} [ <A^{pi_k}(s, .), pi(.|s)> - (1/t_k) KL(pi(.|s) || pi_k(.|s)) ],
a linearised objective plus a proximity term with step size t_k, by a few gradient steps on theta.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

LOG_2 = math.log(2.0)


def categorical_kl(logp_all: Tensor, logp_all_old: Tensor) -> Tensor:
    """KL(p || q) = sum_a p(a) (log p(a) - log q(a)) of normalised log-probabilities [N, n] -> [N]."""
    return (logp_all.exp() * (logp_all - logp_all_old)).sum(-1)


def gaussian_kl(mean: Tensor, log_std: Tensor, mean_old: Tensor, log_std_old: Tensor) -> Tensor:
    """KL(N(mean, std^2) || N(mean_old, std_old^2)) of diagonal Gaussians [N, A] -> [N], closed form:
    sum_i log(std_old/std) + (std^2 + (mean - mean_old)^2) / (2 std_old^2) - 1/2."""
    var_ratio = (2.0 * (log_std - log_std_old)).exp()
    mean_term = ((mean - mean_old) * (-log_std_old).exp()).square()
    return (log_std_old - log_std + 0.5 * (var_ratio + mean_term) - 0.5).sum(-1)


def tanh_gaussian_log_prob(mean: Tensor, log_std: Tensor, pre_tanh: Tensor) -> Tensor:
    """log pi(tanh(u)|s) of a tanh-squashed diagonal Gaussian at pre-squash u [N, A] -> [N]
    (Haarnoja et al. 2018, eq. 21): Gaussian log-density minus log(1 - tanh(u)^2), the latter as
    2 (log 2 - u - softplus(-2u)) for numerical stability. Evaluating the old policy's density at the
    current policy's reparameterised u keeps the gradient path through the action."""
    z = (pre_tanh - mean) * (-log_std).exp()
    correction = 2.0 * (LOG_2 - pre_tanh - F.softplus(-2.0 * pre_tanh))
    return (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi) - correction).sum(-1)


def mdpo_kl(
    logp: Tensor, logp_old: Tensor, advantages: Tensor, kl: Tensor, *, step_size: float | Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """On-policy MDPO objective Psi(theta, theta_k) (paper Sec. 4.1), negated to be minimised:
        L(theta) = -E[(pi_theta(a|s) / pi_theta_k(a|s)) A(s, a)] + (1/t_k) E_s[KL(pi_theta || pi_theta_k)].
    The ratio is the importance weight of actions sampled from pi_theta_k; there is no clipping, the
    KL term alone keeps consecutive policies close. `kl` is KL(pi_theta(.|s) || pi_theta_k(.|s)) per
    state [N]; its gradient is zero at theta = theta_k, so the first step is the vanilla policy
    gradient (paper Sec. 4.1, the gradient of Psi at theta = theta_k)."""
    log_ratio = logp - logp_old.detach()
    ratio = log_ratio.exp()
    surrogate = (ratio * advantages).mean()
    kl_mean = kl.mean()
    loss = -surrogate + kl_mean / step_size
    metrics = {
        "loss/policy": loss.detach(),
        "loss/surrogate": -surrogate.detach(),
        "train/kl": kl_mean.detach(),
        # k3 estimator of KL(old || new) from the sampled actions (Schulman 2020), comparable to PPO's
        "train/approx_kl": ((ratio - 1.0) - log_ratio).detach().mean(),
    }
    return loss, metrics


def mdpo_off_actor(
    q: Tensor, logp: Tensor, logp_old: Tensor, alpha: Tensor, *, kl_coef: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Off-policy MDPO actor loss (paper Sec. 4.2, entropy-regularised form), a ~ pi_theta
    reparameterised:
        L(theta) = E_{s ~ D, a ~ pi_theta}[ (1/t_k) (log pi_theta(a|s) - log pi_theta_k(a|s))
                                            + lambda log pi_theta_k(a|s) - Q(s, a) ],
    with kl_coef = 1/t_k and alpha = lambda. The first term is a one-sample estimate of
    (1/t_k) KL(pi_theta || pi_theta_k); the entropy regulariser is linearised at pi_theta_k as mirror
    descent prescribes, which is why it reads log pi_theta_k. With pi_theta_k = pi_theta its value is SAC's
    actor loss (`losses/q.py:sac_actor`) and its gradient differs by a term of zero expectation."""
    log_ratio = logp - logp_old
    loss = (kl_coef * log_ratio + alpha.detach() * logp_old - q).mean()
    metrics = {
        "loss/actor": loss.detach(),
        "train/kl": log_ratio.detach().mean(),
        "train/entropy": -logp.detach().mean(),
    }
    return loss, metrics
