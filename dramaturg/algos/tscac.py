"""Two-Stage Constrained Actor-Critic (Cai et al. 2023, "Two-Stage Constrained Actor-Critic for Short
Video Recommendation", WWW 2023, arXiv:2302.01680), learning online from the environment.

A CMDP with a main reward and m auxiliary signals, here the m costs the environment reports as
`info["cost"]` (each to be kept low: auxiliary reward r_i = -c_i). There is no multiplier search:
- Stage 1 (the first m * stage1_steps steps, stage1_steps per signal in turn): for each signal i,
  a policy pi_i with its own critic V_i, trained on r_i alone. The critic is fitted by TD
  (GAE(lambda) returns); the actor by the advantage policy gradient -E[A_i log pi_i], here through
  PPO's clipped surrogate, whose gradient at the rollout's policy is that one and which keeps
  several epochs per rollout stable.
- Stage 2 (the rest): the main policy pi_theta, which acts, and its critic V_1 on the reward. Each
  rollout's pi_theta is the behaviour pi_b; pi_theta is fitted to
  pi* ∝ prod_i pi_i^(lambda_i / L) exp(A_1 / L), L = sum lambda, by the weighted log-likelihood of
  `losses/tscac.py` with the stage-1 policies frozen: the main return is maximised while
  KL(pi || pi_i) is held down, lambda_i = kl_coef for every i.
The main policy is the one evaluated and saved. Everything else (schedules, minibatches, gradient
clipping, advantage normalisation) behaves as in `ppo`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor, nn

from dramaturg.algos import ppo
from dramaturg.algos.common import make_policy, scheduled
from dramaturg.config import ConfigError, positive, require, unit_interval
from dramaturg.envs.spaces import flat_dim
from dramaturg.functional import explained_variance, gae, tree_map
from dramaturg.loops import run_on_policy
from dramaturg.losses.constrained import episode_cost_estimate, finished_episode_costs
from dramaturg.losses.policy import entropy_bonus, ppo_clip
from dramaturg.losses.tscac import stage2_log_weights, stage2_loss
from dramaturg.losses.value import value_mse
from dramaturg.nn import Adam, StochasticActor, ValueCritic
from dramaturg.runtime.session import Result, Session


@dataclass(frozen=True)
class Config(ppo.Config):
    num_constraints: int = 1
    """m: how many auxiliary costs the environment reports in info["cost"]; one stage-1 policy each."""
    stage1_steps: int = 50_000
    """Environment steps each stage-1 policy trains for; stage 2 takes what is left of total_steps."""
    kl_coef: float = 1.0
    """lambda_i of every stage-1 policy: larger keeps the main policy closer to them."""
    weight_clip: float = 20.0
    """Upper bound on the stage-2 weights, which average 1 over a minibatch before the clip."""
    cost_gamma: float = 0.99
    """Discount factor of the stage-1 critics."""
    cost_gae_lambda: float = 0.95
    """GAE lambda of the stage-1 advantages."""

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "num_constraints", "stage1_steps", "kl_coef")
        require(self, 1.0 <= self.weight_clip < math.inf, "weight_clip", "must be >= 1 and finite")
        rollout = self.n_steps * self.num_envs  # stages switch between rollouts
        stage1 = self.num_constraints * math.ceil(self.stage1_steps / rollout) * rollout
        require(
            self,
            stage1 < self.total_steps,
            "stage1_steps",
            f"num_constraints * stage1_steps, in whole rollouts of n_steps * num_envs = {rollout} steps, "
            f"is {stage1}: it must be < total_steps = {self.total_steps}, to leave steps for stage 2",
        )
        # PPO's PMOE mixture needs its Q-network, which this update does not fit
        if hasattr(self, "policy"):
            require(
                self,
                self.policy == "gaussian",
                "policy",
                "must be gaussian (tscac has no mixture policy)",
            )
        unit_interval(self, "cost_gamma", "cost_gae_lambda")


@dataclass
class State:
    actor: StochasticActor  # pi_theta, the main policy (stage 2)
    critic: ValueCritic  # V_1 of the main reward
    aux_actors: nn.ModuleList  # pi_i, one per auxiliary signal (stage 1)
    aux_critics: nn.ModuleList  # V_i
    optimizer: torch.optim.Optimizer  # all; a stage's step leaves the others' parameters alone
    episode_cost: Tensor  # [m] mean cost of the episodes that ended in the last rollout with one
    running_cost: Tensor  # [B, m] cost so far of each environment's episode under way


def make(cfg: Config, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> State:
    obs_dim, m = flat_dim(obs_space), cfg.num_constraints
    kw = {"activation": cfg.activation, "ortho_init": cfg.ortho_init}
    actor_kw = {**kw, "log_std_init": cfg.log_std_init}
    arch, critic_arch = cfg.net_arch, cfg.critic_arch or cfg.net_arch
    actors = [
        StochasticActor(obs_dim, action_space, arch, **actor_kw).to(device) for _ in range(m + 1)
    ]
    critics = [ValueCritic(obs_dim, critic_arch, **kw).to(device) for _ in range(m + 1)]
    aux_actors, aux_critics = nn.ModuleList(actors[1:]), nn.ModuleList(critics[1:])
    params = [
        *actors[0].parameters(),
        *critics[0].parameters(),
        *aux_actors.parameters(),
        *aux_critics.parameters(),
    ]
    # one optimiser; its step skips the parameters without a gradient (the other stages')
    optimizer = Adam(params, lr=cfg.learning_rate, eps=1e-5)
    zeros = torch.zeros(m, device=device), torch.zeros(cfg.num_envs, m, device=device)
    return State(actors[0], critics[0], aux_actors, aux_critics, optimizer, *zeros)


def stage_of(cfg: Config, update: int) -> int:
    """Which policy acts in rollout `update` (0-based): i < m is stage-1 policy i, m is stage 2."""
    per_aux = math.ceil(cfg.stage1_steps / (cfg.n_steps * cfg.num_envs))
    return min(update // per_aux, cfg.num_constraints)


def acting(state: State, cfg: Config, stage: int) -> tuple[StochasticActor, ValueCritic]:
    if stage < cfg.num_constraints:
        return state.aux_actors[stage], state.aux_critics[stage]
    return state.actor, state.critic


def update(state: State, cfg: Config, rollout, stage: int, progress: float) -> dict[str, Tensor]:
    """GAE of the acting policy's own signal, then n_epochs of its minibatch steps: PPO's clipped
    surrogate in stage 1, the weighted fit to pi* in stage 2."""
    m = cfg.num_constraints
    if rollout.costs is None or rollout.costs.shape[-1] != m:
        found = (
            "no info['cost']"
            if rollout.costs is None
            else f"{rollout.costs.shape[-1]} costs per step"
        )
        raise ConfigError(
            f"tscac: num_constraints = {m} but the environment {cfg.env!r} reports {found}; it must put a float "
            "(or a sequence of num_constraints floats) in info['cost'] at every step, e.g. "
            "dramaturg.envs.recsys:RecommendationCMDP (2 costs)"
        )
    total, count, state.running_cost = finished_episode_costs(
        rollout.costs, rollout.dones, state.running_cost
    )
    state.episode_cost = episode_cost_estimate(total, count, state.episode_cost)
    metrics = {
        f"rollout/ep_cost{'' if m == 1 else f'_{k}'}": state.episode_cost[k].clone()
        for k in range(m)
    }
    metrics["train/stage"] = torch.tensor(1.0 if stage < m else 2.0)
    lr = scheduled(cfg.learning_rate, cfg.lr_schedule, progress)
    clip_eps = torch.tensor(scheduled(cfg.clip_range, cfg.clip_range_schedule, progress))
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    actor, critic = acting(state, cfg, stage)
    if stage < m:  # the auxiliary reward r_i = -c_i
        rewards, gamma, lam = -rollout.costs[..., stage], cfg.cost_gamma, cfg.cost_gae_lambda
    else:
        rewards, gamma, lam = rollout.rewards, cfg.gamma, cfg.gae_lambda
    adv = gae(
        rewards,
        rollout.values,
        rollout.next_values,
        rollout.terminated,
        rollout.dones,
        gamma=gamma,
        lam=lam,
    )
    returns = adv + rollout.values  # [T, B]

    def flat(x: Tensor) -> Tensor:  # [T, B, ...] -> [T*B, ...]
        return x.reshape(-1, *x.shape[2:])

    b_obs = tree_map(flat, rollout.obs)
    b_actions, b_logp, b_adv, b_returns = (
        flat(rollout.actions),
        flat(rollout.logp),
        flat(adv),
        flat(returns),
    )
    if stage == m:
        with torch.no_grad():  # log pi_i(a|s) of the frozen stage-1 policies, [T*B, m]
            b_logp_aux = torch.stack(
                [aux.log_prob_entropy(b_obs, b_actions)[0] for aux in state.aux_actors], -1
            )
        lambdas = torch.full((m,), cfg.kl_coef, device=b_adv.device)
    n = b_adv.shape[0]
    params = [*actor.parameters(), *critic.parameters()]
    for _ in range(cfg.n_epochs):
        for idx in torch.randperm(n, device=b_adv.device).split(min(cfg.batch_size, n)):
            mb_obs = tree_map(lambda x, idx=idx: x[idx], b_obs)
            logp, entropy = actor.log_prob_entropy(mb_obs, b_actions[idx])
            mb_adv = b_adv[idx]
            if cfg.normalize_advantage:
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
            if stage < m:
                pg_loss, mb_metrics = ppo_clip(logp, b_logp[idx], mb_adv, clip_eps=clip_eps)
            else:
                log_w, mb_metrics = stage2_log_weights(
                    b_logp_aux[idx], mb_adv, b_logp[idx], lambdas
                )
                pg_loss, w_metrics = stage2_loss(logp, log_w, weight_clip=cfg.weight_clip)
                mb_metrics |= w_metrics
            v_loss, v_metrics = value_mse(critic(mb_obs), b_returns[idx])
            ent_loss, ent_metrics = entropy_bonus(entropy)
            loss = pg_loss + cfg.vf_coef * v_loss + cfg.ent_coef * ent_loss
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            mb_metrics["train/grad_norm"] = torch.nn.utils.clip_grad_norm_(
                params, cfg.max_grad_norm
            )
            state.optimizer.step()
            mb_metrics |= v_metrics | ent_metrics
        if (
            stage < m
            and cfg.target_kl is not None
            and mb_metrics["train/approx_kl"] > 1.5 * cfg.target_kl
        ):
            break  # early stop as SB3 (a host sync, only when target_kl is set)
    stage_metrics = {
        f"{k}{'_aux' if stage < m else ''}": v
        for k, v in mb_metrics.items()
        if k.startswith("loss/")
    }
    metrics |= {k: v for k, v in mb_metrics.items() if not k.startswith("loss/")} | stage_metrics
    metrics["train/explained_variance"] = explained_variance(flat(rollout.values), b_returns)
    metrics["train/learning_rate"] = torch.tensor(lr)
    return metrics


def train(cfg: Config, *, sources: dict[str, str] | None = None, resume: bool = False) -> Result:
    """The on-policy loop, with the acting policy and critic chosen by the rollout's stage."""
    session = Session("tscac", cfg, sources=sources, resume=resume)
    env = session.make_env(gamma=cfg.gamma)
    state = make(cfg, env.observation_space, env.action_space, session.device)
    policy = make_policy(state.actor, env.obs_norm, env.observation_space, env.action_space)

    def act(obs):
        actor, critic = acting(state, cfg, stage_of(cfg, session.updates))
        action, logp = actor.sample(obs)
        return action, logp, critic(obs)

    def value(obs):
        return acting(state, cfg, stage_of(cfg, session.updates))[1](obs)

    def learn(rollout):
        return update(
            state, cfg, rollout, stage_of(cfg, session.updates), session.step / cfg.total_steps
        )

    session.start(policy, {"state": state})
    with session.explaining_errors():
        run_on_policy(env, act, value, learn, rollout_len=cfg.n_steps, session=session)
    return session.finish()
