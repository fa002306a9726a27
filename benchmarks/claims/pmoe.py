"""Claim check for PMOE (Ren et al. 2021, arXiv:2104.09122): a mixture-of-experts policy finds one of
two separated optima where a single Gaussian settles in the broad sub-optimal basin between them,
and costs nothing on an ordinary unimodal task.

Checks (shared/METHODS.md #31): (a) on a one-step continuous bandit with two equal narrow optima at
a = +-0.75 and a broad lower hill at a = 0, the success rate (final deterministic action within
reach of an optimum: reward >= 0.9) of SAC with `--policy gmm` exceeds plain SAC's; (b) on
Pendulum-v1 after 20k steps, mean return of gmm SAC >= SAC's - 10% of |SAC's|. The final return of
a run is its deterministic evaluation at the end. Every run is its own `python -m dramaturg train`
process with one torch thread; `--jobs` of them run side by side (2 on a 2-core machine).

    python benchmarks/claims/pmoe.py                               # ~10 min on 2 idle cores
    python benchmarks/claims/pmoe.py --pendulum-seeds "" --json pmoe.json    # the bandit only, ~3 min
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # claim_tools.py, also when imported as a module
from claim_tools import ROOT, dramaturg_cli  # noqa: E402

PEAK, PEAK_WIDTH, HILL, HILL_WIDTH = 0.75, 0.08, 0.5, 0.3
SUCCESS = 0.9  # reward of an action within about 0.04 of an optimum


def bandit_reward(a: float) -> float:
    """Two narrow optima of height ~1 at +-PEAK, a broad hill of height HILL at 0, valleys between."""
    return math.exp(-((abs(a) - PEAK) ** 2) / (2 * PEAK_WIDTH**2)) + HILL * math.exp(-(a * a) / (2 * HILL_WIDTH**2))


class BimodalBandit(gym.Env):
    """One step: a constant observation, an action in [-1, 1], reward `bandit_reward(action)`.

    A single Gaussian that covers both optima is pulled to their mean, the hill at 0; reaching an
    optimum needs the policy to commit to one side, or to hold one mode per side.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        reward = bandit_reward(float(np.clip(np.asarray(action).reshape(-1)[0], -1.0, 1.0)))
        return np.zeros(1, np.float32), reward, True, False, {}


COMMON = ["--checkpoint-every", "0", "--progress", "false", "--torch-threads", "1", "--no-preset"]
BANDIT = ["--env", "benchmarks.claims.pmoe:BimodalBandit", "--eval-episodes", "1", "--learning-starts", "500",
          "--batch-size", "128", "--net-arch", "64,64", "--learning-rate", "1e-3", "--log-every", "500"]
PENDULUM = ["--env", "Pendulum-v1", "--eval-episodes", "10", "--learning-rate", "1e-3"]  # rl-zoo3's SAC Pendulum entry
SETTINGS = {
    # name: (task, flags on top of COMMON and the task's)
    "sac": ("bandit", []),
    "sac-gmm": ("bandit", ["--policy", "gmm", "--components", "4"]),
    "sac-pendulum": ("pendulum", []),
    "sac-gmm-pendulum": ("pendulum", ["--policy", "gmm", "--components", "4"]),
}
TASK_FLAGS = {"bandit": BANDIT, "pendulum": PENDULUM}


def run_one(name: str, seed: int, steps: int, run_root: Path) -> dict:
    task, flags = SETTINGS[name]
    run_dir = run_root / f"{name}-{seed}"
    argv = ["train", "sac", *COMMON, *TASK_FLAGS[task], *flags, "--seed", str(seed),
            "--total-steps", str(steps), "--eval-every", str(steps), "--run-dir", str(run_dir)]
    t0 = time.perf_counter()
    dramaturg_cli(argv)
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"setting": name, "task": task, "seed": seed, "steps": steps, "return": summary["final_eval"]["mean_return"],
            "train_s": summary["train_time_s"], "wall_s": time.perf_counter() - t0}


def report(results: list[dict]) -> tuple[str, bool]:
    by = {n: sorted((r for r in results if r["setting"] == n), key=lambda r: r["seed"]) for n in SETTINGS}
    lines = ["| setting | task | steps | seeds | final returns | mean | std | success (reward >= 0.9) |", "|---" * 8 + "|"]
    for name, runs in by.items():
        if runs:
            values = [r["return"] for r in runs]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            success = f"{sum(v >= SUCCESS for v in values)}/{len(values)}" if runs[0]["task"] == "bandit" else "-"
            cells = " ".join(f"{v:.2f}" if runs[0]["task"] == "bandit" else f"{v:.0f}" for v in values)
            lines.append(f"| {name} | {runs[0]['task']} | {runs[0]['steps']:,} | {len(runs)} | {cells} | "
                         f"{statistics.mean(values):.2f} | {sd:.2f} | {success} |")
    lines += ["", "| check | rule | measured | result |", "|---|---|---|---|"]

    def rate(name: str) -> float:
        return sum(r["return"] >= SUCCESS for r in by[name]) / len(by[name])

    passed = True
    if by["sac"] and by["sac-gmm"]:
        ok = rate("sac-gmm") > rate("sac")
        passed &= ok
        lines.append(f"| (a) bandit | success(sac-gmm) > success(sac) | {rate('sac-gmm'):.0%} vs {rate('sac'):.0%} | "
                     f"{'pass' if ok else 'FAIL'} |")
    if by["sac-pendulum"] and by["sac-gmm-pendulum"]:
        gmm, base = (statistics.mean(r["return"] for r in by[n]) for n in ("sac-gmm-pendulum", "sac-pendulum"))
        ok = gmm >= base - 0.1 * abs(base)
        passed &= ok
        lines.append(f"| (b) Pendulum | mean(gmm) >= mean(sac) - 10% | {gmm:.0f} vs {base - 0.1 * abs(base):.0f} | "
                     f"{'pass' if ok else 'FAIL'} |")
    return "\n".join(lines), passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bandit-seeds", default="1,2,3,4,5,6,7,8,9,10", help="seeds of the bandit runs (default 1..10; empty: skip)")
    parser.add_argument("--pendulum-seeds", default="1,2,3", help="seeds of the Pendulum runs (default 1,2,3; empty: skip)")
    parser.add_argument("--bandit-steps", type=int, default=2000, help="bandit budget in steps (= episodes)")
    parser.add_argument("--pendulum-steps", type=int, default=20_000, help="Pendulum budget (rl-zoo3 SAC: 20k)")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one torch thread each (default 2)")
    parser.add_argument("--run-root", default=None, help="folder for the run folders (default runs/claim-pmoe-TIME)")
    parser.add_argument("--json", default=None, help="write every run's numbers here")
    args = parser.parse_args()
    seeds = {task: [int(s) for s in text.split(",") if s.strip()]
             for task, text in (("bandit", args.bandit_seeds), ("pendulum", args.pendulum_seeds))}
    steps = {"bandit": args.bandit_steps, "pendulum": args.pendulum_steps}
    if any(0 < len(s) < 3 for s in seeds.values()) or not any(seeds.values()):
        parser.error("give each task at least 3 seeds, or none to skip it (and run at least one task)")
    run_root = Path(args.run_root or ROOT / "runs" / time.strftime("claim-pmoe-%Y%m%d-%H%M%S"))
    # the long Pendulum runs first, so the pool ends with short ones
    jobs = [(n, s) for n, (task, _) in SETTINGS.items() if task == "pendulum" for s in seeds["pendulum"]]
    jobs += [(n, s) for n, (task, _) in SETTINGS.items() if task == "bandit" for s in seeds["bandit"]]
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run_one(job[0], job[1], steps[SETTINGS[job[0]][0]], run_root), jobs))
    table, passed = report(results)
    print(table)
    print(f"\n{len(results)} runs in {time.perf_counter() - t0:.0f} s with {args.jobs} jobs; "
          f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "passed": passed}, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
