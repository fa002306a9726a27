"""Two-Stage Constrained Actor-Critic, stage 2 (Cai et al. 2023, "Two-Stage Constrained Actor-Critic
for Short Video Recommendation", WWW 2023, arXiv:2302.01680).

Stage 2 solves  max_pi E_{a~pi}[A_1(s, a)]  s.t.  KL(pi(.|s) || pi_i(.|s)) <= eps_i, i = 1..m, with
pi_i the stage-1 policy of auxiliary signal i. With fixed multipliers lambda_i the Lagrangian's
maximiser is
    pi*(a|s) = prod_i pi_i(a|s)^(lambda_i / L) exp(A_1(s, a) / L) / Z(s),   L = sum_i lambda_i,
and pi_theta is fitted to it by min_theta E_s KL(pi*(.|s) || pi_theta(.|s)), which from samples of a
behaviour policy pi_b reads
    L(theta) = -E_{(s,a)~pi_b}[ prod_i pi_i(a|s)^(lambda_i / L) / pi_b(a|s) exp(A_1(s, a) / L) log pi_theta(a|s) ].
This is the stage-2 loss as shared/METHODS.md (#4) records the paper's; the paper's method section
could not be read here, so the equation is checked by derivation (the notes in
shared/methods-verified/props-tscac-slim.md re-derive pi* as the Lagrangian's stationary point) and
against the authors' discrete stage-2 code, which weights log pi_theta(a|s) by
pi_aux(a|s) softmax_batch(kappa A(s, a)): the same weight for m = 1, kappa = 1 / L, without 1 / pi_b.
Z(s) is dropped, as in the paper's loss: it reweights states, not the actions within a state.
The weights are self-normalised over the batch, as that code does with its softmax over the batch
(AIDefender/TSCAC `algos/MULTI_CRITIC_AWAC.py`), and clipped from above, as the authors' continuous
stage-2 code clamps its density ratios.
"""

from __future__ import annotations

import torch
from torch import Tensor


def stage2_log_weights(
    logp_aux: Tensor, adv: Tensor, logp_behaviour: Tensor, lambdas: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """log w = sum_i (lambda_i / L) log pi_i(a|s) + A_1(s, a) / L - log pi_b(a|s), [N], L = sum lambda.

    logp_aux [N, m]: log pi_i(a|s) of the m stage-1 policies; adv [N]: A_1; logp_behaviour [N]:
    log pi_b(a|s) of the policy that took a; lambdas [m] > 0. Every input is a constant here.
    """
    total = lambdas.sum()
    log_aux = (logp_aux.detach() * (lambdas / total)).sum(-1)  # [N]
    log_w = log_aux + adv.detach() / total - logp_behaviour.detach()  # [N]
    return log_w, {"train/log_weight_std": log_w.std() if log_w.numel() > 1 else torch.zeros(())}


def stage2_loss(
    logp: Tensor, log_weights: Tensor, *, weight_clip: float | Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """-mean_N[w log pi_theta(a|s)], w = N softmax_N(log_weights) clipped to <= weight_clip (the
    weights average 1 before the clip), a fit of pi_theta to pi* (the module docstring's L(theta))."""
    n = log_weights.shape[0]
    weights = (torch.softmax(log_weights.detach(), 0) * n).clamp(max=weight_clip)  # [N]
    loss = -(weights * logp).mean()
    with torch.no_grad():
        # Kish's effective sample size of the weights, as a fraction of N
        ess = weights.sum() ** 2 / (n * (weights * weights).sum()).clamp(min=1e-12)
        metrics = {
            "loss/policy": loss.detach(),
            "train/weight_max": weights.max(),
            "train/weight_ess": ess,
        }
    return loss, metrics
