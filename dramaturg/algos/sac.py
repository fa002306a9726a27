"""Soft Actor-Critic (Haarnoja et al. 2018, arXiv:1801.01290; automatic temperature from
arXiv:1812.05905).

Twin Q-networks evaluated as one ensemble, clipped double-Q soft targets, a tanh-squashed Gaussian
actor trained through the reparameterisation trick, and the temperature alpha tuned toward a target
entropy of -dim(A). Defaults are SB3's.

`policy="gmm"` makes the actor a tanh-squashed mixture of `components` Gaussians (PMOE, Ren et al.
2021, arXiv:2104.09122): it acts by drawing an expert from the routing weights, every expert takes
SAC's actor step on its own reparameterised sample, and the routing weights are regressed toward the
expert whose sample has the highest Q-value (the paper's frequency approximate gradient).

`reward_components=K` learns from a vector reward (multi-critic, as SLIM, Emukpere et al. 2024,
arXiv:2402.00823, does for advantages): the environment puts K components in info["reward_vector"],
each component has its own twin soft Q-networks and target, and the actor maximises a convex
combination of the components' Q-values, each scaled by its batch spread (`losses/multi_critic.py`).

`actor_keys="obs"` makes it an asymmetric actor-critic (Pinto et al. 2018, arXiv:1710.06542): the
actor reads only the named keys of a Dict observation, the Q-networks read all of them, privileged
state included (`envs/privileged.py`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import gymnasium as gym
import torch

from dramaturg.algos.common import actor_view, compiled, require_box_actions, train_off_policy
from dramaturg.config import OffPolicyConfig, key_list, layer_widths, one_of, positive, require
from dramaturg.envs.multi_reward import (
    check_reward_vector,
    require_reward_vector,
    validate_reward_components,
    weights_of,
)
from dramaturg.envs.spaces import flat_dim
from dramaturg.functional import polyak_, tree_map
from dramaturg.losses.mixture import pmoe_sac_experts, routing_loss
from dramaturg.losses.multi_critic import combine_q, component_q_regression
from dramaturg.losses.q import q_regression, sac_actor, td_target, temperature
from dramaturg.nn import Adam, QEnsemble, StochasticActor
from dramaturg.runtime.session import Result


@dataclass(frozen=True)
class Config(OffPolicyConfig):
    learning_rate: float = 3e-4
    """Adam step size of actor, critics and temperature."""
    ent_coef_init: float = 1.0
    """Initial entropy temperature alpha."""
    autotune_entropy: bool = True
    """Tune alpha toward target_entropy; False keeps it at ent_coef_init."""
    target_entropy: float | None = None
    """Target entropy (None: -dim(A))."""
    net_arch: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor and critics."""
    n_critics: int = 2
    """Q-networks in the ensemble; the target takes their minimum."""
    log_std_init: float = 0.0
    """Initial bias of the actor's log standard deviation output."""
    policy: str = "gaussian"
    """Actor distribution: gaussian (tanh-squashed), or gmm, a squashed mixture of experts (PMOE)."""
    components: int = 4
    """Experts K of the gmm policy (unused by gaussian)."""
    actor_keys: str = ""
    """Dict observation keys the actor sees, comma-separated; the critics see all (asymmetric actor-critic). Empty: all."""
    reward_components: int = 0
    """K > 0: twin critics per component of the vector reward info["reward_vector"], Q-values combined (multi-critic)."""
    reward_weights: str = ""
    """Weights w_k of the K reward components in the combined Q-value, comma-separated, e.g. 1,0.5 (empty: 1 each)."""
    normalize_components: bool = True
    """Divide each component's Q-value by its batch std before the weighting; False: the weights alone."""

    def __post_init__(self) -> None:
        super().__post_init__()
        layer_widths(self, "net_arch")
        positive(self, "learning_rate", "ent_coef_init", "n_critics")
        one_of(self, "policy", ("gaussian", "gmm"))
        require(self, self.components >= 1, "components", "must be >= 1")
        validate_reward_components(self)
        key_list(self, "actor_keys")


@dataclass
class State:
    actor: StochasticActor
    critic: QEnsemble
    critic_target: QEnsemble
    log_alpha: torch.Tensor
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    alpha_opt: torch.optim.Optimizer
    target_entropy: float


def make(cfg: Config, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> State:
    require_box_actions("sac", action_space)
    obs_dim, act_dim = flat_dim(obs_space), int(action_space.shape[0])
    actor_keys, actor_dim = actor_view("sac", cfg.actor_keys, obs_space)
    actor = StochasticActor(
        actor_dim, action_space, cfg.net_arch, activation="relu", ortho_init=False, log_std_init=cfg.log_std_init, squash=True,
        components=cfg.components if cfg.policy == "gmm" else None, obs_keys=actor_keys,
    ).to(device)
    # with K reward components, members e * K + k: twin e of component k
    critic = QEnsemble(obs_dim, act_dim, cfg.net_arch, members=cfg.n_critics * max(cfg.reward_components, 1)).to(device)
    critic_target = copy.deepcopy(critic).requires_grad_(False)
    log_alpha = torch.tensor(math.log(cfg.ent_coef_init), device=device, requires_grad=True)
    return State(
        actor,
        critic,
        critic_target,
        log_alpha,
        Adam(actor.parameters(), lr=cfg.learning_rate),
        Adam(critic.parameters(), lr=cfg.learning_rate),
        Adam([log_alpha], lr=cfg.learning_rate),
        -float(act_dim) if cfg.target_entropy is None else cfg.target_entropy,
    )


def critic_loss(state: State, cfg: Config, batch, alpha: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Soft TD regression of every critic onto r + gamma (min_j Q'_j(s', a') - alpha log pi(a'|s'));
    with K reward components, each component's twins onto r_k + gamma (min_j Q'_j,k(s', a') - alpha log pi)."""
    if cfg.reward_components:
        K = cfg.reward_components
        with torch.no_grad():
            next_action, next_logp = state.actor.sample(batch.next_obs)
            next_q = state.critic_target(batch.next_obs, next_action).view(cfg.n_critics, K, -1).min(0).values  # [K, N]
            rewards = require_reward_vector("sac", cfg, batch.reward_vector).T  # [K, N]
            target = td_target(rewards, next_q - alpha * next_logp, batch.terminated, gamma=cfg.gamma)  # [K, N]
        return component_q_regression(state.critic(batch.obs, batch.actions).view(cfg.n_critics, K, -1), target)
    with torch.no_grad():
        next_action, next_logp = state.actor.sample(batch.next_obs)
        next_q = state.critic_target(batch.next_obs, next_action).min(0).values  # [N]
        target = td_target(batch.rewards, next_q - alpha * next_logp, batch.terminated, gamma=cfg.gamma)
    return q_regression(state.critic(batch.obs, batch.actions), target)


def pmoe_actor_loss(state: State, obs, alpha: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PMOE-SAC's actor step: SAC's loss on one reparameterised sample of every expert, plus the
    routing loss toward the expert whose sample has the highest min_j Q_j (Ren et al. 2021)."""
    params = state.actor(obs)
    actions, logp = state.actor.head.rsample_components(params)  # [N, K, A], [N, K]
    n, k = logp.shape
    repeated = tree_map(lambda x: x.repeat_interleave(k, dim=0), obs)  # [N*K, ...], state n at rows n*K..n*K+K-1
    q = state.critic(repeated, actions.flatten(0, 1), detach_params=True).min(0).values.view(n, k)  # [N, K]
    expert_loss, expert_metrics = pmoe_sac_experts(q, logp, alpha)
    route_loss, route_metrics = routing_loss(params[0].exp(), q)
    return expert_loss + route_loss, expert_metrics | route_metrics


def update(state: State, cfg: Config, batch) -> dict[str, torch.Tensor]:
    """One gradient step of temperature, critics and actor, then the target critics."""
    action, logp = state.actor.sample(batch.obs)  # reparameterised, [N, A], [N]
    metrics: dict[str, torch.Tensor] = {}
    if cfg.autotune_entropy:
        alpha_loss, metrics = temperature(state.log_alpha, logp, target_entropy=state.target_entropy)
        state.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        state.alpha_opt.step()
    alpha = state.log_alpha.detach().exp()

    q_loss, q_metrics = (compiled(critic_loss) if cfg.compile else critic_loss)(state, cfg, batch, alpha)
    state.critic_opt.zero_grad(set_to_none=True)
    q_loss.backward()
    state.critic_opt.step()

    if cfg.policy == "gmm":
        actor_loss, actor_metrics = pmoe_actor_loss(state, batch.obs, alpha)
    else:
        q_pi = state.critic(batch.obs, action, detach_params=True)  # gradient to the actor only
        mc_metrics: dict[str, torch.Tensor] = {}
        if cfg.reward_components:  # [E * K, N] -> the weighted combination of min_j Q_j,k, [N]
            q_k = q_pi.view(cfg.n_critics, cfg.reward_components, -1).min(0).values
            q_pi, mc_metrics = combine_q(q_k, q_k.new_tensor(weights_of(cfg)), normalize=cfg.normalize_components)
        else:
            q_pi = q_pi.min(0).values
        actor_loss, actor_metrics = sac_actor(q_pi, logp, alpha)
        actor_metrics |= mc_metrics
    state.actor_opt.zero_grad(set_to_none=True)
    actor_loss.backward()
    state.actor_opt.step()

    polyak_(list(state.critic_target.parameters()), list(state.critic.parameters()), cfg.tau)
    return metrics | q_metrics | actor_metrics


def train(cfg: Config, *, sources: dict[str, str] | None = None, resume: bool = False) -> Result:
    if cfg.reward_components:
        check_reward_vector("sac", cfg)
    explore = lambda state, obs: state.actor.act(obs)  # noqa: E731  sampling is SAC's exploration
    return train_off_policy("sac", cfg, make, update, explore, sources=sources, resume=resume)
