"""The run folder and the schedule around the learning loops.

A `Session` owns what every algorithm's run has in common: the resolved config on disk, seeding,
the environment, metrics, the progress bar, evaluations, checkpoints, resuming, the stop rule, and
the final policy and summary. The loops call `advance` after each environment step batch and
`tick` where a checkpoint may be taken; everything else they leave to the session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch

from dramaturg.config import RunConfig, to_dict
from dramaturg.envs.factory import env_factory
from dramaturg.envs.make import make_vec_env
from dramaturg.envs.native import is_native, native_class
from dramaturg.envs.spaces import obs_shape, space_to_json
from dramaturg.envs.trend import with_trend
from dramaturg.nn.normalize import ObsNormalizer
from dramaturg.runtime.checkpoint import (
    load_latest,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    write_state,
)
from dramaturg.runtime.evaluation import evaluate, evaluate_native
from dramaturg.runtime.finite import FiniteGuard
from dramaturg.runtime.logger import Logger
from dramaturg.runtime.progress import Progress


class Result(NamedTuple):
    policy: Any  # dramaturg.nn.Policy: .act(obs) gives an environment action
    run_dir: Path
    summary: dict[str, Any]


def process_start_time() -> float:
    """Wall-clock time at which this process started (Linux /proc), else now."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def module_state(obj: Any) -> dict[str, Any]:
    """State of an algorithm's dataclass of modules, optimisers, tensors and numbers."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, (torch.nn.Module, torch.optim.Optimizer)):
            out[f.name] = value.state_dict()
        elif isinstance(value, (torch.Tensor, int, float)) and not isinstance(value, bool):
            out[f.name] = value
    return out


def load_module_state(obj: Any, state: dict[str, Any]) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name not in state:
            continue
        if isinstance(value, (torch.nn.Module, torch.optim.Optimizer)):
            value.load_state_dict(state[f.name])
        elif isinstance(value, torch.Tensor):
            with torch.no_grad():
                value.copy_(state[f.name])
        else:
            setattr(obj, f.name, type(value)(state[f.name]))


class Session:
    def __init__(
        self,
        algo: str,
        cfg: RunConfig,
        *,
        sources: dict[str, str] | None = None,
        resume: bool = False,
        check_spaces: Callable[[Any, Any], None] | None = None,
    ):
        """Resolves the environment and lets `check_spaces(obs_space, action_space)` refuse its
        spaces before anything is written."""
        self.algo, self.cfg = algo, cfg
        self.native = is_native(cfg.env)
        if self.native:
            # evaluation runs on Gymnasium's own version of the task where there is one
            probe = native_class(cfg.env)(1, **cfg.env_kwargs)
            counterpart = probe.gym_id
            self.make_single_env = env_factory(counterpart) if counterpart else None
        else:
            env_factory(cfg.env, cfg.env_kwargs)  # an unknown environment is named as the user wrote it
            # training and evaluation environments alike observe the trend where cfg.trend is on
            self.env_spec = with_trend(cfg.env, cfg.env_kwargs, cfg.trend, cfg.trend_form)
            self.make_single_env = env_factory(*self.env_spec)
            probe = self.make_single_env()
        try:
            self.observation_space, self.action_space = probe.observation_space, probe.action_space
        finally:
            probe.close()
        if check_spaces is not None:
            check_spaces(self.observation_space, self.action_space)
        if not self.native:
            check_user_env(cfg.env, cfg.env_kwargs, cfg.seed)
        self.run_dir = Path(cfg.run_dir or f"runs/{algo}-{cfg.env.replace('/', '_').replace(':', '_')}-{cfg.seed}")
        self.resuming = resume
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            record = {"algo": algo, "config": to_dict(cfg), "sources": sources or {}}
            (self.run_dir / "config.json").write_text(json.dumps(record, indent=2) + "\n")
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.guard = FiniteGuard(self.device, enabled=cfg.check_finite)
        self.logger = Logger(self.run_dir, resume=resume)
        self.step = 0
        self.updates = 0
        self.solved_step: int | None = None
        self.solved_time: float | None = None
        self.solved_process_s: float | None = None
        self.stop = False
        self.last_eval: dict[str, float] | None = None
        self._elapsed_before = 0.0
        self._t0 = time.perf_counter()
        self._stateful: dict[str, Any] = {}
        self._pending_train: dict[str, Any] = {}
        self.recent_returns: list[float] = []

    # -- building -----------------------------------------------------------------------------

    def make_env(self, *, gamma: float = 0.99):
        cfg = self.cfg
        obs_space, act_space = self.observation_space, self.action_space
        self.obs_norm = ObsNormalizer(obs_shape(obs_space) if cfg.normalize_obs else None).to(self.device)
        if self.native:
            self.env = native_class(cfg.env)(
                cfg.num_envs,
                seed=cfg.seed,
                device=self.device,
                gamma=gamma,
                obs_norm=self.obs_norm,
                normalize_reward=cfg.normalize_reward,
                **cfg.env_kwargs,
            )
        else:
            self.env = make_vec_env(
                *self.env_spec,
                num_envs=cfg.num_envs,
                seed=cfg.seed,
                vector_env=cfg.vector_env,
                device=str(self.device),
                gamma=gamma,
                obs_norm=self.obs_norm,
                normalize_reward=cfg.normalize_reward,
                env_timeout=cfg.env_timeout,
            )
        spaces = {"observation": space_to_json(obs_space), "action": space_to_json(act_space)}
        (self.run_dir / "spaces.json").write_text(json.dumps(spaces) + "\n")
        return self.env

    def start(self, policy: Any, stateful: dict[str, Any]) -> Any:
        """Begin (or resume) the run; returns the current observation batch.

        `stateful` maps names to objects that are checkpointed: algorithm state dataclasses
        (modules, optimisers, counters) or anything with state_dict/load_state_dict.
        """
        self.policy = policy
        self._stateful = dict(stateful)
        self.obs = self._restore() if self.resuming else self.env.reset()
        self.guard.track(self._stateful)
        self.guard.step, self.guard.updates = self.step, self.updates
        self._progress = Progress(self.cfg.total_steps, self.step, self.cfg.progress)
        self._t0 = time.perf_counter()
        self._next_log = _next_multiple(self.step, self.cfg.log_every)
        self._next_eval = _next_multiple(self.step, self.cfg.eval_every)
        self._next_ckpt = _next_multiple(self.step, self.cfg.checkpoint_every)
        self._last_tick_time, self._last_tick_step = time.perf_counter(), self.step
        return self.obs

    # -- time ---------------------------------------------------------------------------------

    def train_time(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._t0

    # -- the schedule -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.stop or self.step >= self.cfg.total_steps

    def advance(self, steps: int) -> None:
        self.step += steps
        self.guard.step = self.step

    def tick(self, metrics: dict[str, Any] | None = None, *, verify: bool = False) -> bool:
        """Log, evaluate and checkpoint where their intervals were crossed; True when training ends.

        Call it where the loop's state is complete (after an update), so a checkpoint taken here
        resumes exactly. Non-finite values are looked for first: always when `verify`, else
        whenever something is about to be logged, evaluated or written.
        """
        if metrics:
            self._pending_train = metrics
        if verify or self.step >= min(self._next_log, self._next_eval, self._next_ckpt):
            self.guard.verify()
        if self.step >= self._next_log:
            self._log_training()
            self._next_log = _next_multiple(self.step, self.cfg.log_every)
        if self.cfg.eval_every and self.step >= self._next_eval:
            self._evaluate()
            self._next_eval = _next_multiple(self.step, self.cfg.eval_every)
        if self.cfg.checkpoint_every and self.step >= self._next_ckpt and not self.done:
            self.checkpoint()
            self._next_ckpt = _next_multiple(self.step, self.cfg.checkpoint_every)
        return self.done

    def _log_training(self) -> None:
        metrics, self._pending_train = dict(self._pending_train), {}
        finished = self.env.pop_finished()
        if finished:
            returns = [r for r, _ in finished]
            self.recent_returns = (self.recent_returns + returns)[-100:]
            metrics["rollout/ep_return"] = float(np.mean(returns))
            metrics["rollout/ep_length"] = float(np.mean([n for _, n in finished]))
            metrics["rollout/episodes"] = len(finished)
        now = time.perf_counter()
        sps = (self.step - self._last_tick_step) / max(now - self._last_tick_time, 1e-9)
        self._last_tick_time, self._last_tick_step = now, self.step
        metrics["time/steps_per_s"] = sps
        metrics["time/updates"] = self.updates
        self.logger.log(self.step, self.train_time(), metrics)
        self.logger.flush()
        recent = float(np.mean(self.recent_returns)) if self.recent_returns else None
        self._progress.update(self.step, sps, recent)

    def evaluate(self, episodes: int | None = None) -> dict[str, float]:
        episodes, seed = episodes or self.cfg.eval_episodes, 10_000 + 1_000 * self.cfg.seed
        if self.make_single_env is None:
            env = native_class(self.cfg.env)(episodes, seed=seed, device=self.device, **self.cfg.env_kwargs)
            returns = evaluate_native(self.policy, env)
        else:
            returns = evaluate(self.policy, self.make_single_env, episodes, seed=seed, device=self.device)
        return {"mean_return": float(returns.mean()), "std_return": float(returns.std()), "episodes": len(returns)}

    def _evaluate(self) -> None:
        result = self.evaluate()
        self.last_eval = result | {"step": self.step}
        metrics = {"eval/mean_return": result["mean_return"], "eval/std_return": result["std_return"]}
        self.logger.log(self.step, self.train_time(), metrics)
        self.logger.flush()
        target = self.cfg.stop_at_return
        if target is not None and result["mean_return"] >= target and self.solved_step is None:
            self.solved_step, self.solved_time = self.step, self.train_time()
            self.solved_process_s = time.time() - process_start_time()
            self.stop = True

    # -- checkpoints --------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        parts = {}
        for name, obj in self._stateful.items():
            parts[name] = obj.state_dict() if hasattr(obj, "state_dict") else module_state(obj)
        return {
            "parts": parts,
            "obs_norm": self.obs_norm.state_dict(),
            "env": self.env.state_dict(),
            "rng": rng_state(),
            "counters": {
                "step": self.step,
                "updates": self.updates,
                "train_time": self.train_time(),
                "next_log": self._next_log,
                "pending_train": self._pending_train,
                "recent_returns": self.recent_returns,
                **self.logger.mark(),
            },
        }

    @contextlib.contextmanager
    def explaining_errors(self) -> Iterator[None]:
        """Where training fails on a nan or inf that was watched earlier (a sampler fed nan
        probabilities, say), raise NonFiniteError naming it, chained to the original error."""
        try:
            yield
        except Exception:
            self.guard.verify("after training failed")
            raise

    def checkpoint(self) -> Path:
        self.guard.verify("before writing a checkpoint")
        return save_checkpoint(self.run_dir / "checkpoints", f"step-{self.step:012d}", self._state())

    def _restore(self) -> Any:
        state = load_latest(self.run_dir / "checkpoints")
        for name, obj in self._stateful.items():
            if hasattr(obj, "load_state_dict"):
                obj.load_state_dict(state["parts"][name])
            else:
                load_module_state(obj, state["parts"][name])
        self.obs_norm.load_state_dict(state["obs_norm"])
        obs = self.env.load_state_dict(state["env"])
        counters = state["counters"]
        self.step, self.updates = counters["step"], counters["updates"]
        self._elapsed_before = counters["train_time"]
        self._pending_train = counters["pending_train"]
        self.recent_returns = list(counters["recent_returns"])
        self.logger.restore(counters)
        set_rng_state(state["rng"])
        return obs

    # -- the end ------------------------------------------------------------------------------

    def finish(self) -> Result:
        # the checkpoint first: what is logged after it is dropped again if the run is resumed
        self.checkpoint()
        self._log_training()
        if self.cfg.eval_episodes and (self.last_eval is None or self.last_eval["step"] != self.step):
            self._evaluate()
        self._progress.close()
        write_state(self.run_dir / "policy", {"policy": self.policy.state_dict()})
        final = dict(self.last_eval or {})
        summary = {
            "algo": self.algo,
            "env": self.cfg.env,
            "seed": self.cfg.seed,
            "steps_done": self.step,
            "updates": self.updates,
            "stopped_early": self.stop,
            "solved_step": self.solved_step,
            "solved_time_s": self.solved_time,
            "solved_process_s": self.solved_process_s,
            "train_time_s": self.train_time(),
            "steps_per_s": self.step / max(self.train_time(), 1e-9),
            "final_eval": {k: final[k] for k in ("mean_return", "std_return", "episodes") if k in final},
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.logger.close()
        self.env.close()
        return Result(self.policy, self.run_dir, summary)


def check_user_env(env: str, env_kwargs: dict[str, Any], seed: int) -> None:
    """`dramaturg check-env`'s checks, before anything is written: any defect stops the run
    (EnvCheckError lists them all), except an environment that does not replay from its seed,
    which trains but is warned that an interrupted run will not resume exactly."""
    from dramaturg.envs.check import EnvCheckError, inspect_env

    report = inspect_env(env, env_kwargs, steps=50, seed=seed)
    for problem in report.problems:
        if problem.defect == "seeding":
            warnings.warn(f"{problem}; a resumed run will differ from an uninterrupted one", stacklevel=3)
    fatal = tuple(p for p in report.problems if p.defect != "seeding")
    if fatal:
        raise EnvCheckError(dataclasses.replace(report, problems=fatal))


def _next_multiple(step: int, every: int) -> int:
    if every <= 0:
        return 1 << 62
    return (step // every + 1) * every
