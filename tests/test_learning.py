"""Learning thresholds: each algorithm reaches the stated evaluation return within its step
budget, with a fixed seed, on CPU. Training stops at the first evaluation that reaches it."""

from __future__ import annotations

from pathlib import Path

import pytest

import dramaturg

pytestmark = pytest.mark.learning

CASES = [
    # algo, env, threshold, step budget, evaluation interval
    ("ppo", "CartPole-v1", 475.0, 100_000, 5_000),
    ("a2c", "CartPole-v1", 400.0, 300_000, 10_000),
    ("sac", "Pendulum-v1", -200.0, 20_000, 1_000),
    ("td3", "Pendulum-v1", -200.0, 30_000, 1_000),
]


@pytest.mark.parametrize(("algo", "env", "threshold", "budget", "every"), CASES, ids=[c[0] for c in CASES])
def test_reaches_threshold_within_budget(tmp_path: Path, algo, env, threshold, budget, every):
    result = dramaturg.train(
        algo, env=env, seed=0, total_steps=budget, eval_every=every, eval_episodes=10,
        stop_at_return=threshold, run_dir=str(tmp_path / algo), progress=False,
    )
    summary = result.summary
    assert summary["solved_step"] is not None, f"{algo} on {env}: best eval below {threshold} after {budget} steps"
    assert summary["solved_step"] <= budget
    assert summary["final_eval"]["mean_return"] >= threshold


@pytest.mark.mujoco
def test_sac_inverted_pendulum_mujoco(tmp_path: Path):
    pytest.importorskip("mujoco")
    result = dramaturg.train(
        "sac", env="InvertedPendulum-v5", seed=0, total_steps=20_000, eval_every=1_000, eval_episodes=10,
        stop_at_return=900.0, run_dir=str(tmp_path / "sac"), progress=False,
    )
    assert result.summary["solved_step"] is not None and result.summary["solved_step"] <= 20_000
