"""What the claim checks share: dramaturg run as a process of its own, and their statistics."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def dramaturg_cli(args: Sequence[str]) -> str:
    """Run `python -m dramaturg ARGS` from this checkout with one OpenMP thread and return its
    stdout; a failed run raises with the command and the end of its stderr."""
    argv = [sys.executable, "-m", "dramaturg", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(argv, check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def pooled_std(a: list[float], b: list[float]) -> float:
    """sqrt of the mean of the two samples' variances (0 unless both have two values or more)."""
    return ((statistics.variance(a) + statistics.variance(b)) / 2) ** 0.5 if len(a) > 1 and len(b) > 1 else 0.0
