"""The few helpers every algorithm file uses, and the two ways an algorithm trains.

An algorithm file gives `make(cfg, obs_space, action_space, device) -> State` (a dataclass of
modules, optimisers and counters, with an `actor`) and `update(state, cfg, batch, ...)`; the
drivers below wire them to a session, an environment and a loop.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import gymnasium as gym
import torch

from dramaturg.data import ReplayBuffer
from dramaturg.envs.spaces import obs_shape
from dramaturg.loops import run_off_policy, run_on_policy
from dramaturg.nn import Policy
from dramaturg.runtime.session import Result, Session


def scheduled(value: float, schedule: str, progress: float) -> float:
    """A hyperparameter at training progress in [0, 1]: constant, or linear to 0 (rl-zoo3 lin_)."""
    return value * (1.0 - progress) if schedule == "linear" else value


@functools.cache
def compiled(fn: Callable) -> Callable:
    """`fn` under torch.compile, wrapped once per function (the graphs are cached per code object).

    Hyperparameters that change during a run (scheduled clip ranges, ...) must reach `fn` as
    tensors, or each new value compiles a new graph.
    """
    return torch.compile(fn)


def make_policy(actor: torch.nn.Module, obs_norm, observation_space: gym.Space, action_space: gym.Space) -> Policy:
    low = high = None
    if isinstance(action_space, gym.spaces.Box):
        device = next(actor.parameters()).device
        low = torch.as_tensor(action_space.low, device=device)
        high = torch.as_tensor(action_space.high, device=device)
    return Policy(actor, obs_norm, obs_shape(observation_space), low, high)


def actor_view(algo: str, actor_keys: str, obs_space: gym.Space) -> tuple[tuple[str, ...] | None, int]:
    """The keys of a Dict observation that an asymmetric actor reads (`actor_keys`, comma-separated;
    the critics read every key) and their flattened width; (None, the full width) when it is empty."""
    from dramaturg.config import ConfigError
    from dramaturg.envs.spaces import flat_dim

    if not actor_keys:
        return None, flat_dim(obs_space)
    keys = tuple(k.strip() for k in actor_keys.split(","))
    if not isinstance(obs_space, gym.spaces.Dict):
        raise ConfigError(
            f"{algo}: actor_keys = {actor_keys!r} is invalid: needs a Dict observation; this environment has {obs_space} "
            "(dramaturg.envs.privileged.PrivilegedObservation adds the critic's privileged key)"
        )
    for key in keys:
        if key not in obs_space.spaces:
            raise ConfigError(
                f"{algo}: actor_keys = {actor_keys!r} is invalid: {key!r} is not a key of the observation, "
                f"whose keys are {', '.join(obs_space.spaces)}"
            )
    return keys, sum(flat_dim(obs_space.spaces[k]) for k in keys)


def require_box_actions(algo: str, action_space: gym.Space) -> None:
    from dramaturg.config import ConfigError

    if not isinstance(action_space, gym.spaces.Box) or len(action_space.shape) != 1:
        raise ConfigError(
            f"{algo} needs a 1-D Box (continuous) action space; this environment has {action_space}. "
            "Use ppo or a2c for discrete actions."
        )
    if not (abs(action_space.low).max() < float("inf") and abs(action_space.high).max() < float("inf")):
        raise ConfigError(f"{algo} needs finite action bounds; this environment has {action_space}")


def train_on_policy(
    algo: str, cfg: Any, make: Callable, update: Callable, *, sources: dict[str, str] | None, resume: bool
) -> Result:
    """Actor-critic on-policy training: the state has `actor` (a StochasticActor) and `critic`
    (V); `update(state, cfg, rollout, progress)` with progress in [0, 1]."""
    session = Session(algo, cfg, sources=sources, resume=resume)
    env = session.make_env(gamma=cfg.gamma)
    state = make(cfg, env.observation_space, env.action_space, session.device)
    policy = make_policy(state.actor, env.obs_norm, env.observation_space, env.action_space)

    def act(obs):
        action, logp = state.actor.sample(obs)
        return action, logp, state.critic(obs)

    session.start(policy, {"state": state})
    with session.explaining_errors():
        run_on_policy(
            env,
            act,
            state.critic,
            lambda rollout: update(state, cfg, rollout, session.step / cfg.total_steps),
            rollout_len=cfg.n_steps,
            session=session,
        )
    return session.finish()


def train_off_policy(
    algo: str,
    cfg: Any,
    make: Callable,
    update: Callable,
    explore: Callable,
    *,
    sources: dict[str, str] | None,
    resume: bool,
    explore_sees_env: bool = False,
) -> Result:
    """Off-policy training on Box actions in [-1, 1]: `explore(state, obs)` acts while learning
    (`explore(state, obs, env)` with `explore_sees_env`, for acting that reads the environment's
    episode clocks), `update(state, cfg, batch)` learns from a replay minibatch."""
    check = lambda _, actions: require_box_actions(algo, actions)  # noqa: E731
    session = Session(algo, cfg, sources=sources, resume=resume, check_spaces=check)
    env = session.make_env(gamma=cfg.gamma)
    state = make(cfg, env.observation_space, env.action_space, session.device)
    policy = make_policy(state.actor, env.obs_norm, env.observation_space, env.action_space)
    buffer = ReplayBuffer(cfg.buffer_size, session.device)
    act_dim = int(env.action_space.shape[0])

    session.start(policy, {"state": state, "buffer": buffer})
    with session.explaining_errors():
        run_off_policy(
            env,
            (lambda obs: explore(state, obs, env)) if explore_sees_env else (lambda obs: explore(state, obs)),
            lambda n: torch.rand(n, act_dim, device=session.device) * 2.0 - 1.0,
            lambda batch: update(state, cfg, batch),
            buffer,
            batch_size=cfg.batch_size,
            learning_starts=cfg.learning_starts,
            train_freq=cfg.train_freq,
            gradient_steps=cfg.gradient_steps,
            session=session,
        )
    return session.finish()
