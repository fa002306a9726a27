"""Faults: environment workers that raise, die or hang; a run killed at random instants; memory.

What is promised: a failing `async` worker stops the run promptly with an `EnvError` that names the
worker and what went wrong, and leaves no process behind; a run SIGKILLed at any instant and resumed
ends exactly where an uninterrupted run ends; the replay buffer's memory does not grow once full.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from dramaturg.config import ConfigError, RunConfig, field_docs
from dramaturg.data import ReplayBuffer
from dramaturg.envs.factory import EnvError
from dramaturg.envs.make import EnvWorkerError, make_vec_env
from tests.helpers import assert_same_state, final_state, metric_rows
from tests.helpers import dramaturg as cli

# -- environment workers ---------------------------------------------------------------------------


def child_pids() -> set[int]:
    """Every child of this process, zombies included (an unreaped child is a leak too), from /proc."""
    me, children = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me:
            children.add(int(entry))
    return children


@pytest.fixture
def no_leftover_processes():
    """Fails the test if it leaves a child process of its own behind."""
    multiprocessing.resource_tracker.ensure_running()  # started lazily by the first worker otherwise
    before = child_pids()
    yield
    left = child_pids() - before
    assert not left, f"processes left behind: {sorted(left)}"
    assert not multiprocessing.active_children()


@contextlib.contextmanager
def at_most(seconds: float) -> Iterator[None]:
    """Fail instead of waiting forever where a broken guard would let a call hang."""

    def expire(*_: Any) -> None:
        raise AssertionError(f"no error within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def first_error(name: str, env_kwargs: dict[str, Any], *, env_timeout: float = 30.0, kill: int | None = None) -> tuple[EnvWorkerError, float]:
    """Build two `async` workers of `tests.faulty_envs:name`, reset and step them until they fail;
    the error and the seconds between the failing call and the error. `kill`: SIGKILL that worker
    from outside after the reset."""
    start = time.monotonic()
    with at_most(20.0):
        try:
            env = make_vec_env(f"tests.faulty_envs:{name}", env_kwargs, num_envs=2, vector_env="async", env_timeout=env_timeout)
            start = time.monotonic()
            env.reset()
            if kill is not None:
                os.kill(env.vec.processes[kill].pid, signal.SIGKILL)
            for _ in range(10):
                start = time.monotonic()
                env.step(torch.zeros(2, dtype=torch.long))
        except EnvWorkerError as error:
            return error, time.monotonic() - start
        env.close()
    raise AssertionError(f"{name} did not fail")


RAISES = [
    # (environment, kwargs, worker named, where, exception type, message)
    ("RaiseInInit", {"worker": 1}, 1, "start-up", "ValueError", "cannot build: no licence for worker 1"),
    ("RaiseInInit", {"worker": -1}, 0, "its constructor (run in the main process", "ValueError", "cannot build: no licence for worker -1"),
    ("RaiseInReset", {"worker": 1}, 1, "reset", "KeyError", "'reset lost its map'"),
    ("RaiseInStep", {"worker": 1, "after": 3}, 1, "step", "RuntimeError", "step 3 went wrong"),
    ("RaiseUnpicklable", {"worker": 0}, 0, "step", "tests.faulty_envs.Unpicklable", "failure code 7"),
]


@pytest.mark.parametrize(("name", "kwargs", "index", "where", "kind", "message"), RAISES, ids=[f"{r[0]}-{r[2]}" for r in RAISES])
def test_worker_exception_names_worker_type_message_and_traceback(name, kwargs, index, where, kind, message, no_leftover_processes):
    error, seconds = first_error(name, kwargs)
    text = str(error)
    assert isinstance(error, EnvError)
    assert (error.index, error.reason, error.exc_type) == (index, "raised", kind)
    assert f"environment worker {index} failed in {where}" in text, text
    assert f"{kind}: {message}" in text, text
    assert "Traceback (most recent call last)" in text and "tests/faulty_envs.py" in text, text
    assert seconds < 5.0


def test_ctrl_c_in_a_worker_is_an_interruption(no_leftover_processes):
    env = make_vec_env("tests.faulty_envs:InterruptInStep", {"worker": 1, "after": 2}, num_envs=2, vector_env="async")
    env.reset()
    with at_most(20.0), pytest.raises(KeyboardInterrupt):
        for _ in range(3):
            env.step(torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("how", ["kills itself", "killed from outside"])
def test_killed_worker_is_named_at_once(how, no_leftover_processes):
    if how == "kills itself":
        error, seconds = first_error("KillInStep", {"worker": 1, "after": 2})
    else:
        error, seconds = first_error("Quiet", {}, kill=1)
    assert (error.index, error.reason) == (1, "died")
    assert "environment worker 1" in str(error) and "died during step: killed by SIGKILL" in str(error), str(error)
    assert seconds < 2.0  # long before env_timeout (30 s): death is seen, not waited out


@pytest.mark.parametrize("ignore_sigterm", [False, True], ids=["hangs", "hangs-ignoring-sigterm"])
def test_hung_worker_times_out(ignore_sigterm, no_leftover_processes):
    error, seconds = first_error("HangInStep", {"worker": 0, "after": 2, "ignore_sigterm": ignore_sigterm}, env_timeout=1.5)
    assert (error.index, error.reason) == (0, "timeout")
    assert "environment worker 0 did not finish step within env_timeout = 1.5 s" in str(error), str(error)
    assert 1.5 <= seconds < 2.5


def test_healthy_workers_close_cleanly(no_leftover_processes):
    env = make_vec_env("tests.faulty_envs:Quiet", {}, num_envs=2, vector_env="async", env_timeout=5.0)
    env.reset()
    env.step(torch.zeros(2, dtype=torch.long))
    assert env.vec.get_attr("t") == (1, 1)
    env.close()


def test_cli_reports_the_failing_worker(tmp_path: Path):
    proc = cli(
        "train", "ppo", "--env", "tests.faulty_envs:RaiseInStep", "--env-kwargs", '{"worker": 1, "after": 40}',
        "--vector-env", "async", "--num-envs", "2", "--n-steps", "32", "--batch-size", "32", "--total-steps", "256",
        "--eval-every", "0", "--progress", "false", "--torch-threads", "1", "--run-dir", str(tmp_path / "run"),
        check=False, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "environment worker 1 failed in step: RuntimeError: step 40 went wrong" in proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan")])
def test_env_timeout_must_be_positive_and_finite(value):
    with pytest.raises(ConfigError, match=r"env_timeout = .* is invalid: must be > 0 and finite"):
        RunConfig(env_timeout=value)
    assert RunConfig(env_timeout=0.5).env_timeout == 0.5 and RunConfig().env_timeout == 60.0
    assert field_docs(RunConfig)["env_timeout"]


# -- killed at random instants, resumed, and exactly where an uninterrupted run ends ------------------

TOTAL = 6144
RUN = ["ppo", "--env", "CartPole-v1", "--seed", "7", "--num-envs", "2", "--n-steps", "32", "--batch-size", "32",
       "--n-epochs", "2", "--total-steps", str(TOTAL), "--checkpoint-every", "64", "--log-every", "128", "--eval-every", "1024",
       "--eval-episodes", "1", "--torch-threads", "1", "--progress", "false"]
KILLS = 20


def train_cli(argv: list[str]) -> None:
    """The command line, in a process forked from a server that has torch imported already."""
    from dramaturg.cli import main

    sys.exit(main(argv))


def start(ctx: Any, argv: list[str]) -> multiprocessing.process.BaseProcess:
    process = ctx.Process(target=train_cli, args=(argv,))
    process.start()
    return process


def writes_in_progress(checkpoints: Path) -> set[tuple[str, int]]:
    """Temporary files of checkpoint writes (name, inode): a new one means a write is under way."""
    try:
        return {(e.name, e.inode()) for e in os.scandir(checkpoints) if e.name.startswith(".")}
    except FileNotFoundError:
        return set()


def latest_step(checkpoints: Path) -> int:
    try:
        return int((checkpoints / "latest").read_text().strip().removeprefix("step-"))
    except (FileNotFoundError, ValueError):
        return -1


def kill_at(process: multiprocessing.process.BaseProcess, checkpoints: Path, step: int, delay: float, mid_write: bool) -> str:
    """SIGKILL `process` once its checkpoints reach `step` and `delay` more seconds have passed, or
    (`mid_write`) at the first checkpoint write it starts after that. Returns "ended" if it ended
    first, else "mid-write" or "killed"."""
    stale = writes_in_progress(checkpoints)
    while process.is_alive() and latest_step(checkpoints) < step:
        time.sleep(0.001)
    deadline = time.monotonic() + delay
    while process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    while mid_write and process.is_alive() and not writes_in_progress(checkpoints) - stale:
        time.sleep(0.0002)
    if not process.is_alive():
        return "ended"
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    return "mid-write" if writes_in_progress(checkpoints) - stale else "killed"


def test_twenty_random_sigkills_then_resume_is_exact(tmp_path: Path):
    """Kill -9 one run at 20 random instants spread over its first half (start-up and restore,
    training, evaluation, checkpoint writes), resuming after each; it ends bit for bit where an
    uninterrupted run ends."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.test_faults"])
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    reference = start(ctx, ["train", *RUN, "--run-dir", str(whole)])
    reference.join()
    assert reference.exitcode == 0
    rng = random.Random(20)
    # the checkpoint after which each kill comes; where it is already reached, the kill lands in start-up.
    # Only the first half: after its target a kill may wait 0.2 s and then for the next checkpoint
    # write, and the run (about 0.25 s per 1,000 steps on the 2-core CPU) must not have ended by then.
    targets = sorted(rng.randrange(0, TOTAL // 2, 64) for _ in range(KILLS))
    outcomes = []
    for i, target in enumerate(targets):
        checkpoints = killed / "checkpoints"
        if (checkpoints / "latest").exists():
            argv = ["train", "--resume", str(killed)]
        else:  # killed before its first checkpoint: nothing to resume, start again
            shutil.rmtree(killed, ignore_errors=True)
            argv = ["train", *RUN, "--run-dir", str(killed)]
        outcome = kill_at(start(ctx, argv), checkpoints, target, rng.uniform(0.0, 0.2), mid_write=i % 2 == 1)
        assert outcome != "ended", f"the run ended before kill {i + 1} (after step {target})"
        outcomes.append(outcome)
    assert "mid-write" in outcomes, "no kill landed during a checkpoint write"
    last = start(ctx, ["train", "--resume", str(killed)])
    last.join()
    assert last.exitcode == 0
    assert_same_state(final_state(whole), final_state(killed))
    assert metric_rows(whole) == metric_rows(killed)


# -- memory --------------------------------------------------------------------------------------------


def resident_bytes() -> int:
    """This process's resident set size, from /proc/self/statm (second field, in pages)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def one_torch_thread():
    """Small tensors on one thread: spared the thread pool's contention on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_replay_buffer_memory_stays_bounded_past_capacity(one_torch_thread):
    capacity, batch, width = 25_600, 256, 64
    buffer = ReplayBuffer(capacity)
    gen = torch.Generator().manual_seed(0)

    def fill() -> None:
        for _ in range(capacity // batch):
            obs = {"state": torch.randn(batch, width, generator=gen), "goal": torch.randn(batch, 2, generator=gen)}
            buffer.add(obs, torch.randn(batch, 3, generator=gen), torch.randn(batch, generator=gen), obs, torch.zeros(batch))
            buffer.sample(64)

    fill()
    gc.collect()
    after_first = resident_bytes()
    for _ in range(9):
        fill()
    gc.collect()
    grown = resident_bytes() - after_first
    assert buffer.size == capacity
    assert grown < 0.05 * after_first, f"RSS grew by {grown / 2**20:.1f} MiB after the buffer was full"
