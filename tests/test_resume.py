"""Reproducibility and exact resume: a stopped or killed run, resumed in a new process, ends
bit for bit where the uninterrupted run ends (parameters, optimiser states, buffers, metrics)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import torch

import dramaturg
from dramaturg.runtime.checkpoint import load_latest
from tests.helpers import assert_resume_is_exact, assert_same_state, dramaturg as cli, final_state, metric_rows, popen

# Short runs whose checkpoints fall mid-episode, so that resuming must rebuild environment state.
PPO = ["ppo", "--env", "CartPole-v1", "--seed", "3", "--lr-schedule", "constant", "--clip-range-schedule", "constant",
       "--eval-every", "1024", "--eval-episodes", "2", "--log-every", "256", "--checkpoint-every", "512", "--progress", "false"]
SAC = ["sac", "--env", "Pendulum-v1", "--seed", "5", "--learning-starts", "100", "--batch-size", "64",
       "--net-arch", "64,64", "--eval-every", "300", "--eval-episodes", "1", "--log-every", "50",
       "--checkpoint-every", "150", "--progress", "false", "--normalize-obs", "--normalize-reward"]


@pytest.mark.parametrize(("argv", "total", "stop_at"), [(PPO, 3072, 1536), (SAC, 600, 450)], ids=["ppo", "sac"])
def test_stop_and_resume_in_new_process_is_exact(tmp_path: Path, argv, total, stop_at):
    assert_resume_is_exact(cli, argv, total, stop_at, tmp_path)


def test_sigkill_then_resume_is_exact(tmp_path: Path):
    argv = [*PPO, "--lr-schedule", "linear", "--total-steps", "6144"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    cli("train", *argv, "--run-dir", str(whole))
    proc = popen("train", *argv, "--run-dir", str(killed))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        pointer = killed / "checkpoints" / "latest"
        if pointer.exists() and pointer.read_text().strip() >= "step-000000002048":
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = load_latest(killed / "checkpoints")["counters"]["step"]
    assert 2048 <= interrupted_at < 6144
    cli("train", "--resume", str(killed))
    assert_same_state(final_state(whole), final_state(killed))
    assert metric_rows(whole) == metric_rows(killed)


@pytest.mark.parametrize("algo", ["ppo", "a2c", "sac", "td3"])
def test_same_seed_same_parameters(tmp_path: Path, algo):
    env = "CartPole-v1" if algo in ("ppo", "a2c") else "Pendulum-v1"
    fields = dict(env=env, seed=11, total_steps=600, eval_every=300, eval_episodes=1, progress=False)
    if algo in ("sac", "td3"):
        fields |= dict(learning_starts=200, batch_size=32, net_arch=(32, 32))
    a = dramaturg.train(algo, run_dir=str(tmp_path / "a"), **fields)
    b = dramaturg.train(algo, run_dir=str(tmp_path / "b"), **fields)
    c = dramaturg.train(algo, run_dir=str(tmp_path / "c"), **(fields | {"seed": 12}))
    pa, pb, pc = (dict(r.policy.named_parameters()) for r in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa), "a different seed should give different parameters"
    assert metric_rows(a.run_dir) == metric_rows(b.run_dir)
