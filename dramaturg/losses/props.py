"""Behaviour-policy loss of PROPS and the sampling error it reduces (Corrado & Hanna, "On-Policy
Policy Gradient Reinforcement Learning Without On-Policy Sampling", arXiv:2311.08290).

PROPS collects data with a behaviour policy pi_phi that is refitted, every m environment steps, to
put more probability on actions the buffer D holds too few of under the target policy pi_theta
(and less on those it holds too many of). The loss is a clipped version of the ROS gradient
-grad sum_D log pi_phi(a|s) (Zhong et al. 2022) plus a KL term that keeps pi_phi near pi_theta.
"""

from __future__ import annotations

import torch
from torch import Tensor


def props_behaviour(
    logp_behaviour: Tensor, logp_target: Tensor, kl: Tensor, *, clip_eps: float, kl_coef: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """PROPS's behaviour objective (the paper's L_CLIP plus its regulariser), to be minimised:

        L(phi) = E_D[ max(r, clip(r, 1 - eps, 1 + eps)) ] + lambda E_D[ KL(pi_phi(.|s) || pi_theta(.|s)) ],
        r = pi_phi(a|s) / pi_theta(a|s),

    as the authors' `update_props` (PPOROS). Minimising r lowers pi_phi on every buffered action in
    proportion to its count; an action's gradient stops once r < 1 - eps, never on the r > 1 + eps
    side. At phi = theta the gradient is E_D[grad log pi_phi(a|s)], ROS's direction, which vanishes
    where D's action frequencies equal pi_theta. `kl` [N] is the per-state regulariser, held by the
    caller (closed form, zero with zero gradient at phi = theta).
    """
    log_ratio = logp_behaviour - logp_target.detach()
    ratio = log_ratio.exp()
    clipped = torch.maximum(ratio, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps))
    clip_loss, regulariser = clipped.mean(), kl.mean()
    loss = clip_loss + kl_coef * regulariser
    with torch.no_grad():
        metrics = {
            "loss/behaviour": loss.detach(),
            "loss/behaviour_clip": clip_loss.detach(),
            "train/behaviour_regulariser": regulariser.detach(),
            # k3 estimate of KL(pi_theta || pi_phi) on D (Schulman 2020), PROPS's early-stop statistic
            "train/behaviour_kl": ((ratio - 1.0) - log_ratio).mean(),
            "train/behaviour_clip_fraction": ((ratio - 1.0).abs() > clip_eps)
            .to(ratio.dtype)
            .mean(),
        }
    return loss, metrics


def categorical_sampling_error(actions: Tensor, logp_all: Tensor) -> Tensor:
    """Sampling error of N discrete actions [N] against the target's log-probabilities [N, n]:
    KL(p_D || p_theta) of the empirical action frequencies p_D and the target's action
    distribution averaged over the same states, p_theta(a) = mean_i pi_theta(a|s_i).

    For one state it is the tabular sampling error KL(pi_D || pi_theta) exactly; with many states
    it pools them (the fitted measures below keep them apart). It is finite for any sample (0 log 0 = 0), and 0 only where the
    frequencies equal p_theta."""
    n = logp_all.shape[-1]
    counts = torch.zeros(n, dtype=logp_all.dtype, device=logp_all.device)
    counts.index_add_(
        0,
        actions.long().reshape(-1),
        torch.ones(actions.numel(), dtype=logp_all.dtype, device=logp_all.device),
    )
    p_data = counts / counts.sum()
    log_p_target = torch.logsumexp(logp_all, 0) - torch.log(
        torch.tensor(float(logp_all.shape[0]), dtype=logp_all.dtype)
    )
    terms = torch.where(
        p_data > 0,
        p_data * (p_data.clamp_min(1e-30).log() - log_p_target),
        torch.zeros_like(p_data),
    )
    return terms.sum()


def _design(features: Tensor | None, n: int, like: Tensor) -> Tensor:
    """[N, F + 1]: the features and a constant column (only the constant when there are none)."""
    ones = torch.ones(n, 1, dtype=like.dtype, device=like.device)
    return ones if features is None else torch.cat([features.to(like.dtype), ones], -1)


def fitted_categorical_sampling_error(
    actions: Tensor, logp_all: Tensor, features: Tensor, *, iters: int = 50, ridge: float = 1e-4
) -> Tensor:
    """Sampling error of N discrete actions as the paper measures it: fit pi_D, the target with its
    output layer refitted to the data by maximum likelihood, and average KL(pi_D(.|s) || pi_theta(.|s))
    over the data's states. pi_D(a|s) = softmax(log pi_theta(.|s) + W [h(s), 1])_a on the target's
    last hidden features h [N, F] (held fixed, as the authors freeze the hidden layers), W fitted by
    L-BFGS from 0 with a small ridge (the fit is convex). With on-policy data it is about
    dim(W) / 2N; it is 0 when W = 0 fits best, i.e. when the data's score along every feature is 0."""
    with torch.enable_grad():
        x = _design(features.detach(), logp_all.shape[0], logp_all).double()
        base, a = logp_all.detach().double(), actions.long().reshape(-1, 1)
        w = torch.zeros(
            x.shape[1], base.shape[1], dtype=torch.float64, device=base.device, requires_grad=True
        )
        opt = torch.optim.LBFGS([w], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

        def nll() -> Tensor:
            opt.zero_grad()
            loss = (
                -(base + x @ w).log_softmax(-1).gather(-1, a).mean()
                + 0.5 * ridge * w.square().sum()
            )
            loss.backward()
            return loss

        opt.step(nll)
    with torch.no_grad():
        logq = (base + x @ w).log_softmax(-1)
        return (logq.exp() * (logq - base)).sum(-1).mean().to(logp_all.dtype)


def fitted_gaussian_sampling_error(
    actions: Tensor,
    mean: Tensor,
    log_std: Tensor,
    features: Tensor | None = None,
    *,
    ridge: float = 1e-6,
) -> Tensor:
    """The same for diagonal Gaussians, in closed form: pi_D(a|s) = N(mean + std delta(s), (std k)^2)
    with delta(s) = B [h(s), 1] fitted by least squares to the whitened actions z = (a - mean) / std
    and k^2 their residual variance, the maximum-likelihood fit of that family. The error is
    mean_s KL(pi_D || pi_theta) = sum_d ((k_d^2 - 1 - log k_d^2) + mean_s delta_d(s)^2) / 2. Without
    features delta is the constant c = mean(z): the target shifted and rescaled in its own units.
    Under the target the whitened actions are i.i.d. standard normal, so the error is about
    (F + 2) A / 2N for on-policy data."""
    z = ((actions - mean) * (-log_std).exp()).double()  # [N, A]
    x = _design(None if features is None else features.detach(), z.shape[0], z)  # [N, F + 1]
    gram = x.T @ x + ridge * z.shape[0] * torch.eye(x.shape[1], dtype=z.dtype, device=z.device)
    delta = x @ torch.linalg.solve(gram, x.T @ z)  # [N, A]
    k2 = (z - delta).square().mean(0).clamp_min(1e-12)
    return (0.5 * (k2 - 1.0 - k2.log() + delta.square().mean(0))).sum().to(actions.dtype)
