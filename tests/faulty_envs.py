"""Environments that fail on purpose, to test what dramaturg promises when an environment breaks.

Each fails only inside the subprocess worker numbered `worker` (Gymnasium names its workers
`Worker<...>-INDEX`; None: every worker), so that the main process can still build one to read its
spaces, and so that a test can check that the error names the right worker.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import gymnasium as gym
import numpy as np


def in_worker(worker: int | None) -> bool:
    """True inside subprocess worker `worker` (any worker if None); never in the main process."""
    name = multiprocessing.current_process().name
    return name.startswith("Worker<") and (worker is None or name.endswith(f"-{worker}"))


class Quiet(gym.Env):
    """A well-behaved base: Box(2) observations, Discrete(2) actions, never-ending episodes."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, after: int = 3, worker: int | None = 0):
        self.after, self.worker = after, worker
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t >= self.after and in_worker(self.worker):
            self.misbehave()
        return np.zeros(2, np.float32), 0.0, False, False, {}

    def misbehave(self) -> None:
        pass


class RaiseInInit(Quiet):
    """Raises in its constructor (in the main process too when `worker` is -1)."""

    def __init__(self, after: int = 3, worker: int | None = 0):
        super().__init__(after, worker)
        if worker == -1 or in_worker(worker):
            raise ValueError(f"cannot build: no licence for worker {worker}")


class RaiseInReset(Quiet):
    def reset(self, *, seed=None, options=None):
        if in_worker(self.worker):
            raise KeyError("reset lost its map")
        return super().reset(seed=seed, options=options)


class RaiseInStep(Quiet):
    def misbehave(self) -> None:
        raise RuntimeError(f"step {self.t} went wrong")


class InterruptInStep(Quiet):
    """As if Ctrl-C reached the worker before the main process."""

    def misbehave(self) -> None:
        raise KeyboardInterrupt


class Unpicklable(Exception):
    """An exception that neither pickles (it holds a lock) nor rebuilds from its message."""

    def __init__(self, code: int, lock: object):
        super().__init__(f"failure code {code}")
        self.lock = lock


class RaiseUnpicklable(Quiet):
    def misbehave(self) -> None:
        raise Unpicklable(7, threading.Lock())


class KillInStep(Quiet):
    """SIGKILLs its own process, as the out-of-memory killer would."""

    def misbehave(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class HangInStep(Quiet):
    """Stops answering; with `ignore_sigterm` it also ignores SIGTERM, so only SIGKILL ends it."""

    def __init__(self, after: int = 3, worker: int | None = 0, ignore_sigterm: bool = False):
        super().__init__(after, worker)
        if ignore_sigterm and in_worker(worker):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def misbehave(self) -> None:
        while True:
            time.sleep(1.0)
