"""PPO with gradient-boosted trees as actor and critic (GBRL: Fuhrer, Tessler & Dalal, ICML 2025,
arXiv:2407.08250), through NVIDIA's optional `gbrl` package: `pip install 'dramaturg[gbrl]'`.

The clipped surrogate, GAE, value loss and entropy bonus are PPO's, computed on the ensemble's
outputs theta(s) (logits or Gaussian means) and V(s). Each minibatch then appends one tree fitted
to the per-sample gradients N * dL/dtheta(s_i) and N * dL/dV(s_i) of the minibatch loss L (SGD in
function space, paper Sec. 4): its leaves hold -lr times the mean gradient of the
samples that reach them. With `shared_trees` one ensemble carries both outputs, each split chosen
on the joint gradient (the paper's shared actor-critic trees); otherwise actor and critic are two
ensembles. A Gaussian policy's log std is a torch parameter stepped by Adam. Defaults follow the
authors' PPO in gbrl_sb3 (`algos/ppo.py`): 512-step rollouts, minibatches of 256, 4 epochs,
depth-4 trees with cosine split scores on quantile candidates, policy and value step sizes
5.2e-3 and 9.0e-3, value loss 0.5 * MSE, log std from -2 with Adam at 3e-4.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor

from dramaturg.algos.common import make_policy
from dramaturg.config import (
    ConfigError,
    RunConfig,
    non_negative,
    one_of,
    positive,
    require,
    unit_interval,
)
from dramaturg.envs.spaces import flat_dim
from dramaturg.functional import explained_variance, gae, tree_map
from dramaturg.loops import run_on_policy
from dramaturg.losses.policy import entropy_bonus, ppo_clip
from dramaturg.losses.value import clipped_value, value_mse
from dramaturg.nn import Adam
from dramaturg.nn.trees import TreeActorCritic, clip_per_sample, import_gbrl
from dramaturg.runtime.session import Result, Session


@dataclass(frozen=True)
class Config(RunConfig):
    n_steps: int = 512
    """Rollout length per environment between updates."""
    batch_size: int = 256
    """Minibatch size; every minibatch adds one tree (the whole rollout if it is smaller)."""
    n_epochs: int = 4
    """Passes over each rollout."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda: 0 is one-step TD, 1 is Monte Carlo."""
    clip_range: float = 0.2
    """Clip range epsilon of the probability ratio."""
    clip_range_vf: float | None = None
    """Clip range of the value prediction around the old one (None: no value clipping)."""
    normalize_advantage: bool = True
    """Normalise advantages to zero mean and unit std per minibatch."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss (0.5 * squared error, as the authors' code)."""
    target_kl: float | None = None
    """Stop the epochs, before adding the minibatch's tree, once the approximate KL exceeds 1.5 times this (None: never)."""
    policy_lr: float = 5.2e-3
    """Step size of the policy outputs: each new tree's policy leaves are -policy_lr times the mean gradient."""
    value_lr: float = 9.0e-3
    """Step size of the value output: each new tree's value leaves are -value_lr times the mean gradient."""
    max_policy_grad_norm: float | None = None
    """Clip each sample's policy-output gradient (and the log std's gradient) to this L2 norm (None: no clipping)."""
    max_value_grad_norm: float | None = None
    """Clip each sample's value gradient to this magnitude (None: no clipping)."""
    shared_trees: bool = True
    """One ensemble whose trees carry policy and value leaves on one split structure; False: two ensembles."""
    max_depth: int = 4
    """Depth of every tree (2^depth leaves at most)."""
    n_bins: int = 256
    """Candidate split thresholds per feature."""
    min_data_in_leaf: int = 0
    """Fewest samples a leaf may hold."""
    split_score: str = "cosine"
    """Split criterion on the gradients: cosine or l2."""
    split_candidates: str = "quantile"
    """Candidate thresholds from quantiles of each feature, or uniform over its range."""
    log_std_init: float = -2.0
    """Initial log standard deviation of a Gaussian policy (Box actions)."""
    log_std_lr: float = 3e-4
    """Adam step size of the Gaussian policy's log standard deviation."""

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(
            self,
            "n_steps",
            "batch_size",
            "n_epochs",
            "clip_range",
            "policy_lr",
            "value_lr",
            "log_std_lr",
        )
        unit_interval(self, "gamma", "gae_lambda")
        non_negative(self, "ent_coef", "vf_coef", "min_data_in_leaf")
        one_of(self, "split_score", ("cosine", "l2"))
        one_of(self, "split_candidates", ("quantile", "uniform"))
        require(self, 1 <= self.max_depth <= 16, "max_depth", "must be in 1..16")
        require(self, self.n_bins >= 2, "n_bins", "must be >= 2")
        for name in ("clip_range_vf", "target_kl", "max_policy_grad_norm", "max_value_grad_norm"):
            if getattr(self, name) is not None:
                positive(self, name)
        require(
            self,
            not self.normalize_obs,
            "normalize_obs",
            "must be false: trees split on raw feature values, and running statistics would move every threshold already learned",
        )
        require(
            self,
            not self.compile,
            "compile",
            "must be false: the update fits trees in gbrl, which torch.compile cannot trace",
        )
        require(
            self,
            not (
                self.normalize_advantage and min(self.batch_size, self.n_steps * self.num_envs) < 2
            ),
            "batch_size",
            "must be >= 2 (with num_envs * n_steps >= 2) when normalize_advantage is on",
        )


@dataclass
class State:
    actor: TreeActorCritic  # policy and value: one tree model (api.load rebuilds it as `actor`)
    log_std_opt: torch.optim.Optimizer | None  # Adam on a Gaussian policy's log std


def check_spaces(obs_space: gym.Space, action_space: gym.Space) -> None:
    if not (
        isinstance(action_space, gym.spaces.Discrete)
        or (isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1)
    ):
        raise ConfigError(
            f"ppo-gbrl needs a Discrete or 1-D Box action space; this environment has {action_space}"
        )


def make(cfg: Config, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> State:
    check_spaces(obs_space, action_space)
    model = TreeActorCritic(
        flat_dim(obs_space),
        action_space,
        shared=cfg.shared_trees,
        max_depth=cfg.max_depth,
        n_bins=cfg.n_bins,
        min_data_in_leaf=cfg.min_data_in_leaf,
        split_score=cfg.split_score,
        generator=cfg.split_candidates,
        policy_lr=cfg.policy_lr,
        value_lr=cfg.value_lr,
        log_std_init=cfg.log_std_init,
    ).to(device)
    opt = Adam([model.log_std], lr=cfg.log_std_lr) if model.kind == "gaussian" else None
    return State(model, opt)


def minibatch_loss(
    state: State,
    cfg: Config,
    theta: Tensor,
    values: Tensor,
    actions,
    logp_old,
    adv,
    returns,
    values_old,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's loss of a minibatch on the trees' outputs theta [N, P] and values [N]."""
    params = state.actor.dist(theta)
    logp, entropy = state.actor.log_prob(params, actions), state.actor.entropy(params)
    if cfg.normalize_advantage:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss, pg_metrics = ppo_clip(logp, logp_old, adv, clip_eps=cfg.clip_range)
    if cfg.clip_range_vf is None:
        v_loss, v_metrics = value_mse(values, returns)
    else:
        v_loss, v_metrics = clipped_value(values, values_old, returns, clip=cfg.clip_range_vf)
    ent_loss, ent_metrics = entropy_bonus(entropy)
    loss = pg_loss + cfg.ent_coef * ent_loss + cfg.vf_coef * 0.5 * v_loss
    return loss, pg_metrics | v_metrics | ent_metrics


def boosting_step(
    state: State, cfg: Config, obs, actions, logp_old, adv, returns, values_old
) -> dict[str, Tensor]:
    """Loss on the current outputs, then one tree fitted to N times their gradients (the per-sample
    gradients of the minibatch mean), and an Adam step on a Gaussian's log std."""
    theta, values = state.actor.raw(obs)
    theta.requires_grad_(True)
    values.requires_grad_(True)
    loss, metrics = minibatch_loss(
        state, cfg, theta, values, actions, logp_old, adv, returns, values_old
    )
    if state.log_std_opt is not None:
        state.log_std_opt.zero_grad(set_to_none=True)
    loss.backward()
    n = values.shape[0]
    g_theta = clip_per_sample(theta.grad * n, cfg.max_policy_grad_norm)  # [N, P]
    g_value = clip_per_sample(values.grad.unsqueeze(-1) * n, cfg.max_value_grad_norm).squeeze(
        -1
    )  # [N]
    if state.log_std_opt is not None:
        if cfg.max_policy_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_([state.actor.log_std], cfg.max_policy_grad_norm)
        state.log_std_opt.step()
    state.actor.boost(obs, g_theta, g_value)
    metrics["train/policy_grad_norm"] = g_theta.norm(dim=-1).mean()
    metrics["train/value_grad_norm"] = g_value.abs().mean()
    return metrics


def update(state: State, cfg: Config, rollout, progress: float = 0.0) -> dict[str, Tensor]:
    """Advantages from the rollout, then n_epochs of minibatches, one new tree each."""
    advantages = gae(
        rollout.rewards,
        rollout.values,
        rollout.next_values,
        rollout.terminated,
        rollout.dones,
        gamma=cfg.gamma,
        lam=cfg.gae_lambda,
    )  # [T, B]
    returns = advantages + rollout.values

    def flat(x: Tensor) -> Tensor:  # [T, B, ...] -> [T*B, ...]
        return x.reshape(-1, *x.shape[2:])

    b_obs = tree_map(flat, rollout.obs)
    b_actions, b_logp, b_values = flat(rollout.actions), flat(rollout.logp), flat(rollout.values)
    b_adv, b_returns = flat(advantages), flat(returns)
    n = b_adv.shape[0]
    size = min(cfg.batch_size, n)
    metrics: dict[str, Tensor] = {}
    stop = False
    for _ in range(cfg.n_epochs):
        for idx in torch.randperm(n, device=b_adv.device).split(size):
            mb_obs = tree_map(lambda x, rows=idx: x[rows], b_obs)
            if cfg.target_kl is not None:  # checked before the tree is added, as the authors' code
                with torch.no_grad():
                    log_ratio = (
                        state.actor.log_prob(state.actor(mb_obs), b_actions[idx]) - b_logp[idx]
                    )
                    stop = bool(((log_ratio.exp() - 1) - log_ratio).mean() > 1.5 * cfg.target_kl)
                if stop:
                    break
            metrics = boosting_step(
                state,
                cfg,
                mb_obs,
                b_actions[idx],
                b_logp[idx],
                b_adv[idx],
                b_returns[idx],
                b_values[idx],
            )
        if stop:
            break
    policy_trees, value_trees = state.actor.num_trees()
    metrics["train/explained_variance"] = explained_variance(b_values, b_returns)
    metrics["train/policy_trees"] = torch.tensor(float(policy_trees))
    metrics["train/value_trees"] = torch.tensor(float(value_trees))
    return metrics


def act(state: State, obs) -> tuple[Tensor, Tensor, Tensor]:
    """An action, its log-probability and V(s) from one pass over the trees. [B, ...], [B], [B]"""
    theta, values = state.actor.raw(obs)
    params = state.actor.dist(theta)
    action = state.actor.sample_from(params)
    return action, state.actor.log_prob(params, action), values


def train(cfg: Config, *, sources: dict[str, str] | None = None, resume: bool = False) -> Result:
    import_gbrl()  # a missing extra is reported before anything is written
    session = Session("ppo-gbrl", cfg, sources=sources, resume=resume, check_spaces=check_spaces)
    env = session.make_env(gamma=cfg.gamma)
    state = make(cfg, env.observation_space, env.action_space, session.device)
    policy = make_policy(state.actor, env.obs_norm, env.observation_space, env.action_space)

    session.start(policy, {"state": state})
    with session.explaining_errors():
        run_on_policy(
            env,
            lambda obs: act(state, obs),
            lambda obs: state.actor.raw(obs)[1],
            lambda rollout: update(state, cfg, rollout),
            rollout_len=cfg.n_steps,
            session=session,
        )
    return session.finish()
