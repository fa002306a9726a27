"""Build vectorised, replayable environments that speak torch tensors.

Subprocess workers (`vector_env="async"`) run Gymnasium's own worker loop inside `GuardedAsyncVectorEnv`,
which bounds every wait and turns a worker that raises, dies or hangs into an `EnvWorkerError` naming
the worker. This module stays free of torch at import: each worker imports it for its entry point.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

import gymnasium as gym
from gymnasium.vector.async_vector_env import _async_worker

from dramaturg.envs.factory import EnvError, EpisodeSeeding, env_factory

if TYPE_CHECKING:
    from dramaturg.envs.vec import TorchVecEnv

__all__ = ["EnvError", "EnvWorkerError", "GuardedAsyncVectorEnv", "env_factory", "make_vec_env"]

# how long stopped workers get to exit after SIGTERM before they are sent SIGKILL
_TERMINATE_GRACE_S = 0.5


def make_vec_env(
    env: str,
    env_kwargs: dict[str, Any] | None = None,
    *,
    num_envs: int = 1,
    seed: int = 0,
    vector_env: str = "sync",
    device: str = "cpu",
    gamma: float = 0.99,
    obs_norm=None,
    normalize_reward: bool = False,
    env_timeout: float = 60.0,
) -> TorchVecEnv:
    """`num_envs` copies of `env`, stepped in this process (`sync`) or one subprocess each (`async`,
    where a worker that takes longer than `env_timeout` seconds to answer stops the run)."""
    # imported here, not at the top: workers import this module, and must not pay for torch
    from dramaturg.envs.vec import TorchVecEnv

    make = env_factory(env, env_kwargs)

    def fn(i: int) -> Callable[[], gym.Env]:
        return lambda: EpisodeSeeding(make(), seed, i)

    fns = [fn(i) for i in range(num_envs)]
    mode = gym.vector.AutoresetMode.SAME_STEP
    if vector_env == "async":
        vec: gym.vector.VectorEnv = GuardedAsyncVectorEnv(fns, env_timeout=env_timeout, autoreset_mode=mode)
    else:
        vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)
    return TorchVecEnv(vec, device=device, gamma=gamma, obs_norm=obs_norm, normalize_reward=normalize_reward)


class EnvWorkerError(EnvError):
    """A subprocess environment worker raised, died or stopped answering; the message says which
    worker, in which call, and why (with the worker's traceback where it raised)."""

    def __init__(self, message: str, *, index: int, reason: str, exc_type: str | None = None, worker_traceback: str | None = None):
        super().__init__(message)
        self.index = index  # the first failing worker
        self.reason = reason  # "raised", "died" or "timeout"
        self.exc_type = exc_type  # the original exception's type name, where it raised
        self.worker_traceback = worker_traceback


class GuardedAsyncVectorEnv(gym.vector.AsyncVectorEnv):
    """Gymnasium's AsyncVectorEnv (spawned workers) whose failures are prompt, named and leave no
    processes behind.

    Gymnasium 1.4 on its own re-raises a worker's exception as `type(value)(value)` with the worker
    index and traceback only in its log, lets a constructor exception kill a worker silently, reports
    a killed worker as a bare EOFError, and waits forever on a hung one. Here every wait is bounded by
    `env_timeout`, errors travel as plain strings (an exception object may not pickle), and any failure
    stops every worker (SIGTERM, then SIGKILL) before `EnvWorkerError` is raised.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], *, env_timeout: float = 60.0, **kwargs: Any):
        if not 0 < env_timeout < float("inf"):
            raise ValueError(f"env_timeout = {env_timeout!r} is invalid: must be > 0 and finite")
        self.env_timeout = float(env_timeout)
        self._phase = "start-up (imports and the environment's constructor)"
        try:
            super().__init__(env_fns, context="spawn", worker=_guarded_worker, **kwargs)
        except EnvWorkerError:
            raise
        except Exception as exc:
            if getattr(self, "processes", None):
                self._stop_workers()
                raise
            # before any worker exists Gymnasium builds environment 0 here, to read its spaces
            kind, message = _original(exc)
            trace = traceback.format_exc()
            raise EnvWorkerError(
                f"environment worker 0 failed in its constructor (run in the main process to read the spaces): "
                f"{kind}: {message}\nworker 0 traceback:\n{trace}",
                index=0, reason="raised", exc_type=kind, worker_traceback=trace,
            ) from exc

    # -- every call to the workers goes through a guard ---------------------------------------

    def _check_spaces(self) -> None:
        # each worker first answers whether it could build its environment
        self._phase = "start-up (imports and the environment's constructor)"
        with self._guard():
            self._poll_pipe_envs()
            successes = [pipe.recv()[1] for pipe in self.parent_pipes]
            self._raise_if_errors(successes)
            self._phase = "the space check"
            super()._check_spaces()

    def reset_async(self, seed: Any = None, options: dict[str, Any] | None = None) -> None:
        self._phase = "reset"
        with self._guard():
            super().reset_async(seed=seed, options=options)

    def reset_wait(self, timeout: float | None = None) -> Any:
        with self._guard():
            return super().reset_wait(timeout)

    def step_async(self, actions: Any) -> None:
        self._phase = "step"
        with self._guard():
            super().step_async(actions)

    def step_wait(self, timeout: float | None = None) -> Any:
        with self._guard():
            return super().step_wait(timeout)

    def call_async(self, name: str, /, *args: Any, **kwargs: Any) -> None:
        self._phase = f"call({name!r})"
        with self._guard():
            super().call_async(name, *args, **kwargs)

    def call_wait(self, timeout: float | None = None) -> Any:
        with self._guard():
            return super().call_wait(timeout)

    def set_attr(self, name: str, values: Any) -> None:
        self._phase = f"set_attr({name!r})"
        with self._guard():
            super().set_attr(name, values)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """A lost connection means a dead worker: find which, stop the rest, say so."""
        try:
            yield
        except (EOFError, ConnectionError) as exc:
            raise self._fail(self._death_error()) from exc

    # -- waiting, with a deadline -------------------------------------------------------------

    def _poll_pipe_envs(self, timeout: float | None = None) -> bool:
        """Wait until every worker has answered (a dead one's pipe reads as EOF at once); a worker
        silent past the deadline stops the run."""
        self._assert_is_running()
        limit = self.env_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        pending = list(self.parent_pipes)
        while pending:
            ready = wait(pending, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                silent = [self.parent_pipes.index(p) for p in pending]
                raise self._fail(self._timeout_error(silent, limit))
            pending = [p for p in pending if p not in ready]
        return True

    # -- the three ways a worker fails ---------------------------------------------------------

    def _raise_if_errors(self, successes: Sequence[bool]) -> None:
        if all(successes):
            return
        reports = []
        for _ in range(len(successes) - sum(successes)):
            try:
                reports.append(self.error_queue.get(timeout=self.env_timeout))
            except queue.Empty:  # the report was lost with its worker
                break
        failed = [i for i, ok in enumerate(successes) if not ok]
        if not reports:
            reports = [(failed[0], "unknown error", "the worker's report was lost", "")]
        reports.sort(key=lambda r: r[0])
        if any(r[1] == "KeyboardInterrupt" for r in reports):
            self._close_now()
            raise KeyboardInterrupt  # Ctrl-C reached the workers first: an interruption, not a failure
        index, kind, _, trace = reports[0]
        lines = [f"environment worker {i} failed in {self._phase}: {k}: {m}" for i, k, m, _ in reports]
        lines += [f"worker {i} traceback:\n{t.rstrip()}" for i, _, _, t in reports if t]
        raise self._fail(EnvWorkerError("\n".join(lines), index=index, reason="raised", exc_type=kind, worker_traceback=trace))

    def _death_error(self) -> EnvWorkerError:
        ready = wait([p.sentinel for p in self.processes], timeout=_TERMINATE_GRACE_S)
        dead = [(i, p) for i, p in enumerate(self.processes) if p.sentinel in ready]
        if not dead:
            return EnvWorkerError(
                f"environment workers lost their connection during {self._phase} but are still running; "
                "they were stopped", index=0, reason="died",
            )
        lines = []
        for i, process in dead:
            process.join(_TERMINATE_GRACE_S)
            lines.append(f"environment worker {i} (pid {process.pid}) died during {self._phase}: {_exit_reason(process.exitcode)}")
        rest = "; the other workers were stopped" if len(dead) < len(self.processes) else ""
        return EnvWorkerError("\n".join(lines) + rest, index=dead[0][0], reason="died")

    def _timeout_error(self, silent: list[int], limit: float) -> EnvWorkerError:
        names = ", ".join(str(i) for i in silent)
        return EnvWorkerError(
            f"environment worker{'s' if len(silent) > 1 else ''} {names} did not finish {self._phase} within "
            f"env_timeout = {limit:g} s (a hung environment?); all workers were stopped. "
            "Raise --env-timeout if a call can legitimately take this long.",
            index=silent[0], reason="timeout",
        )

    def _fail(self, error: EnvWorkerError) -> EnvWorkerError:
        """Stop every worker and close this vector env, then hand back `error` to raise."""
        self._close_now()
        return error

    def _close_now(self) -> None:
        self._stop_workers()
        self.closed = True

    # -- shutting down -------------------------------------------------------------------------

    def close_extras(self, timeout: float | None = None, terminate: bool = False) -> None:
        """Ask idle workers to close their environments; stop any that do not within the timeout."""
        if terminate or self._state.value != "default":
            self._stop_workers()
            return
        limit = self.env_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        try:
            live = [p for p in self.parent_pipes if p is not None and not p.closed]
            for pipe in live:
                pipe.send(("close", None))
            for pipe in live:
                if pipe.poll(max(0.0, deadline - time.monotonic())):
                    pipe.recv()
        except (EOFError, OSError):
            pass
        self._stop_workers(grace=max(0.0, deadline - time.monotonic()))

    def _stop_workers(self, grace: float = 0.0) -> None:
        """Join every worker, after `grace` seconds to exit on its own then SIGTERM, then SIGKILL
        for any that ignores SIGTERM."""
        processes: list[multiprocessing.process.BaseProcess] = getattr(self, "processes", [])
        _join_all(processes, grace)
        for process in processes:
            if process.is_alive():
                process.terminate()
        _join_all(processes, _TERMINATE_GRACE_S)
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
        for pipe in getattr(self, "parent_pipes", []):
            if pipe is not None:
                pipe.close()


def _join_all(processes: Sequence[multiprocessing.process.BaseProcess], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for process in processes:
        if process.is_alive():
            process.join(max(0.0, deadline - time.monotonic()))


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the out-of-memory killer sends SIGKILL)" if -exitcode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with code {exitcode} (its stderr may say why)"


def _original(exc: BaseException) -> tuple[str, str]:
    """Type name and message of the exception the environment raised: a constructor's exception
    arrives wrapped in the factory's EnvError."""
    if isinstance(exc, EnvError) and exc.__cause__ is not None:
        exc = exc.__cause__
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return name, str(exc)


class _PlainErrors:
    """The error queue as seen by Gymnasium's worker loop: reports become strings before they travel."""

    def __init__(self, queue: Any):
        self.queue = queue

    def put(self, report: tuple[int, type, BaseException, str]) -> None:
        index, _, value, trace = report
        self.queue.put((index, *_original(value), trace))


def _guarded_worker(
    index: int,
    env_fn: Callable[[], gym.Env],
    pipe: Connection,
    parent_pipe: Connection,
    shared_memory: Any,
    error_queue: Any,
    autoreset_mode: Any,
    semaphore: Any,
) -> None:
    """Build the environment and say whether that worked, then run Gymnasium's worker loop."""
    errors = _PlainErrors(error_queue)
    try:
        env = env_fn()
    except BaseException as exc:  # noqa: BLE001 (KeyboardInterrupt included: the parent must hear of it)
        parent_pipe.close()
        errors.put((index, type(exc), exc, traceback.format_exc()))
        with contextlib.suppress(OSError):
            pipe.send((None, False))
        return
    pipe.send((None, True))
    _async_worker(index, lambda: env, pipe, parent_pipe, shared_memory, errors, autoreset_mode, semaphore)
