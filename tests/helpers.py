"""Shared test utilities: run the CLI in a fresh process, read a run's final state."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from dramaturg.runtime.checkpoint import load_latest

ROOT = Path(__file__).resolve().parents[1]


def dramaturg(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m dramaturg ARGS` in a new process, from the repository root."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "dramaturg", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dramaturg {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def popen(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "dramaturg", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def tensors(tree: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested state, by path."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(tree, torch.Tensor):
        out[prefix] = tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            out |= tensors(v, f"{prefix}/{k}")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out |= tensors(v, f"{prefix}/{i}")
    return out


def final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    """Parameters, optimiser states, buffers and normaliser statistics of the last checkpoint."""
    state = load_latest(Path(run_dir) / "checkpoints")
    return tensors({"parts": state["parts"], "obs_norm": state["obs_norm"]})


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


def metric_rows(run_dir: Path) -> list[tuple[str, str, str]]:
    """(step, key, value) rows of metrics.csv, without wall-clock ones."""
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [(r["step"], r["key"], r["value"]) for r in rows if not r["key"].startswith("time/")]


def assert_resume_is_exact(run, argv: list[str], total: int, stop_at: int, tmp_path: Path) -> tuple[Path, Path]:
    """Train `argv` to `total` steps in one go, and to `stop_at` in another folder then resumed to
    `total`, each through `run` (a CLI runner: a new process, or in this one); both must end in the
    same state with the same metric rows. Returns (whole, part)."""
    whole, part = tmp_path / "whole", tmp_path / "part"
    run("train", *argv, "--total-steps", str(total), "--run-dir", str(whole))
    run("train", *argv, "--total-steps", str(stop_at), "--run-dir", str(part))
    run("train", "--resume", str(part), "--total-steps", str(total))
    assert_same_state(final_state(whole), final_state(part))
    assert metric_rows(whole) == metric_rows(part)
    return whole, part
