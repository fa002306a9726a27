"""Losses of Sequence Reinforcement Learning (SRL; Patel & Siegelmann, arXiv:2410.08979, ICLR 2025).

SRL's actor emits J actions a_t..a_{t+J-1} from the single state s_t. Its critic and its model learn
from real primitive transitions only; the actor learns by "temporal recall": a learned model
m(s, a) -> s' predicts the intermediate states s^_{t+j} its sequence would visit, and the critic values
each action at its predicted state. The paper's body (exact loss, weights, gradient path) was not
available to check; what is assumed here is said at each function.
"""

from __future__ import annotations

from torch import Tensor


def sequence_actor(q: Tensor, logp: Tensor, alpha: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Temporal-recall actor loss E_s sum_{j<J} [alpha log pi_j(a_{t+j}|s_t, a_{<j}) - Q(s^_{t+j}, a_{t+j})].

    q and logp are [N, J]: Q at the predicted states (s^_t = s_t) and the log-probabilities of the
    reparameterised actions of the sequence. Assumed: SAC's actor loss (Haarnoja et al. 2018, eq. 7)
    at every position, summed over the sequence with equal weights (the sum of the catalogue's
    -sum_j Q and the entropy term the reviews quote for the paper's eq. 3). With J = 1 it is SAC's
    actor loss.
    """
    loss = (alpha.detach() * logp - q).sum(-1).mean()
    metrics = {
        "loss/actor": loss.detach(),
        "train/entropy": -logp.detach().mean(),
        "train/q_first": q.detach()[:, 0].mean(),
        "train/q_last": q.detach()[:, -1].mean(),
    }
    return loss, metrics


def model_regression(predicted: Tensor, next_obs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Mean squared error of the model's next state [N, D] against the observed one [N, D],
    averaged over states and dimensions (the catalogue's "MSE on replay")."""
    loss = (predicted - next_obs.detach()).square().mean()
    return loss, {"loss/model": loss.detach()}
