"""Claim check for the asymmetric actor-critic (Learning to Fly in Seconds #34, TacSL #24, motion
retargeting #15): on a partially observed task, a critic that sees the true state trains a better
actor than a critic that sees what the actor sees, with the same algorithm, settings and steps.

Task: Pendulum-v1 whose actor reads (cos th, sin th, thdot) through sensors with Gaussian noise of
std `--noise` (0.3 by default; shared/METHODS.md #34 names 0.1), `dramaturg.envs.privileged:
partially_observed`. The asymmetric arm's critics also read the noise-free observation
(`actor_keys=obs`); the symmetric arm's critics read the noisy one. Both arms are evaluated on the
same noisy task, deterministic policy, 10 episodes at the end. TD3 (the algorithm of #34) with
64x64 networks (the paper's widths); `--algos td3,sac` adds SAC.

Pass rule: for each algorithm, mean final return of asymmetric >= symmetric over the seeds.
Every run is its own `python -m dramaturg train` process with one torch thread; `--jobs` of them
run side by side (2 on a 2-core machine).

    python benchmarks/claims/asymmetric.py                   # TD3, seeds 1,2,3: 6 runs of 15k steps
    python benchmarks/claims/asymmetric.py --algos td3,sac --seeds 1,2,3,4,5 --json asym.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # claim_tools.py, also when imported as a module
from claim_tools import ROOT, dramaturg_cli  # noqa: E402

TASK = "dramaturg.envs.privileged:partially_observed"
COMMON = [
    "--env",
    TASK,
    "--eval-episodes",
    "10",
    "--checkpoint-every",
    "0",
    "--progress",
    "false",
    "--torch-threads",
    "1",
    "--net-arch",
    "64,64",
    "--learning-starts",
    "1000",
]
ALGO_FLAGS = {"td3": [], "sac": ["--learning-rate", "1e-3"]}  # SAC at rl-zoo3's Pendulum step size
ARMS = {
    # name: (does the env carry the privileged key, flags)
    "symmetric": (False, []),
    "asymmetric": (True, ["--actor-keys", "obs"]),
}


def run_one(algo: str, arm: str, seed: int, steps: int, noise: float, run_root: Path) -> dict:
    privileged, flags = ARMS[arm]
    run_dir = run_root / f"{algo}-{arm}-{seed}"
    kwargs = json.dumps({"env": "Pendulum-v1", "noise_std": noise, "privileged": privileged})
    argv = [
        "train",
        algo,
        *COMMON,
        *ALGO_FLAGS[algo],
        *flags,
        "--env-kwargs",
        kwargs,
        "--seed",
        str(seed),
        "--total-steps",
        str(steps),
        "--eval-every",
        str(steps),
        "--run-dir",
        str(run_dir),
        "--no-preset",
    ]
    t0 = time.perf_counter()
    dramaturg_cli(argv)
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "algo": algo,
        "arm": arm,
        "seed": seed,
        "steps": steps,
        "return": summary["final_eval"]["mean_return"],
        "train_s": summary["train_time_s"],
        "wall_s": time.perf_counter() - t0,
    }


def report(results: list[dict], algos: list[str], seeds: list[int]) -> tuple[str, bool]:
    def returns(algo: str, arm: str) -> list[float]:
        rows = sorted(
            (r for r in results if r["algo"] == algo and r["arm"] == arm), key=lambda r: r["seed"]
        )
        return [r["return"] for r in rows]

    lines = [
        "| algorithm | critic | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | std |",
        "|---" * (len(seeds) + 4) + "|",
    ]
    for algo in algos:
        for arm in ARMS:
            values = returns(algo, arm)
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            lines.append(
                f"| {algo} | {arm} | {' | '.join(f'{v:.1f}' for v in values)} | {statistics.mean(values):.1f} | {sd:.1f} |"
            )
    lines += ["", "| check | rule | measured | seeds won | result |", "|---|---|---|---|---|"]
    passed = True
    for algo in algos:
        asym, sym = returns(algo, "asymmetric"), returns(algo, "symmetric")
        ok = statistics.mean(asym) >= statistics.mean(sym)
        wins = sum(a >= s for a, s in zip(asym, sym))
        passed &= ok
        lines.append(
            f"| {algo} | mean(asymmetric) >= mean(symmetric) | {statistics.mean(asym):.1f} vs "
            f"{statistics.mean(sym):.1f} | {wins}/{len(asym)} | {'pass' if ok else 'FAIL'} |"
        )
    return "\n".join(lines), passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    parser.add_argument("--algos", default="td3", help="comma-separated, of td3, sac (default td3)")
    parser.add_argument(
        "--steps", type=int, default=15_000, help="environment steps per run (default 15000)"
    )
    parser.add_argument(
        "--noise", type=float, default=0.3, help="std of the actor's sensor noise (default 0.3)"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="runs side by side, one torch thread each (default 2)"
    )
    parser.add_argument(
        "--run-root",
        default=None,
        help="folder for the run folders (default runs/claim-asymmetric-TIME)",
    )
    parser.add_argument("--json", default=None, help="write every run's numbers here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    algos = [a for a in args.algos.split(",") if a]
    unknown = set(algos) - set(ALGO_FLAGS)
    if unknown or len(seeds) < 2:
        parser.error(
            f"unknown algorithms {sorted(unknown)}"
            if unknown
            else "give at least 2 seeds (3 or more to check)"
        )
    run_root = Path(
        args.run_root or ROOT / "runs" / time.strftime("claim-asymmetric-%Y%m%d-%H%M%S")
    )
    jobs = [(a, arm, s) for a in algos for s in seeds for arm in ARMS]
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run_one(*job, args.steps, args.noise, run_root), jobs))
    table, passed = report(results, algos, seeds)
    print(f"Pendulum-v1, actor's sensor noise std {args.noise}, {args.steps:,} steps per run\n")
    print(table)
    print(
        f"\n{len(results)} runs in {time.perf_counter() - t0:.0f} s with {args.jobs} jobs; "
        f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"results": results, "passed": passed}, indent=2) + "\n"
        )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
