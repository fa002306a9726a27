"""Claim check for MDPO (Tomar et al. 2022): on Pendulum-v1, on-policy MDPO is no worse than PPO and
off-policy MDPO is on par with SAC, with the same environment-step budget.

Pass rules (shared/METHODS.md #27): mean final return of on-policy MDPO >= PPO - 0.5 pooled std
(200k steps, PPO at rl-zoo3's tuned Pendulum settings, MDPO with the same settings wherever the two
share a meaning); off-policy MDPO vs SAC at 20k steps (rl-zoo3's SAC settings, 64x64 networks for
both): both mean returns >= -250 and MDPO >= SAC - 0.5 pooled std. The final return of a run is its deterministic 10-episode evaluation at the end.
Every run is its own `python -m dramaturg train` process with one torch thread; `--jobs` of them
run side by side (2 on a 2-core machine).

    python benchmarks/claims/mdpo.py                      # seeds 1,2,3: ~6 min on 2 quiet cores
    python benchmarks/claims/mdpo.py --seeds 1,2,3,4,5 --json mdpo-claim.json
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
from claim_tools import ROOT, dramaturg_cli, pooled_std  # noqa: E402

COMMON = ["--env", "Pendulum-v1", "--eval-episodes", "10", "--checkpoint-every", "0", "--progress", "false",
          "--torch-threads", "1"]
# rl-zoo3's tuned PPO Pendulum-v1 entry (dramaturg/presets.py) spelled out, so that both sides read alike
PPO_PENDULUM = ["--num-envs", "4", "--n-steps", "1024", "--gamma", "0.9", "--gae-lambda", "0.95",
                "--learning-rate", "1e-3", "--lr-schedule", "constant", "--ent-coef", "0.0"]
SETTINGS = {
    # name: (algo, steps key, flags) -- flags on top of COMMON
    "ppo": ("ppo", "on", [*PPO_PENDULUM, "--n-epochs", "10", "--batch-size", "64", "--clip-range", "0.2"]),
    # the same data, optimiser steps and critic fitting as PPO; only the policy objective differs
    "mdpo": ("mdpo", "on", [*PPO_PENDULUM, "--sgd-steps", "10", "--batch-size", "64", "--vf-learning-rate", "1e-3",
                            "--vf-epochs", "10", "--vf-batch-size", "64", "--clip-range-vf", "none"]),
    # the authors' on-policy recipe: m = 10 full-batch steps per iteration
    "mdpo-fullbatch": ("mdpo", "on", [*PPO_PENDULUM, "--sgd-steps", "10", "--vf-learning-rate", "1e-3",
                                      "--vf-epochs", "10", "--vf-batch-size", "64", "--clip-range-vf", "none"]),
    # rl-zoo3's SAC Pendulum-v1 entry (lr 1e-3) with 64x64 networks for both, 4x cheaper than 256x256
    "sac": ("sac", "off", ["--learning-rate", "1e-3", "--net-arch", "64,64"]),
    "mdpo-off": ("mdpo-off", "off", ["--learning-rate", "1e-3", "--net-arch", "64,64"]),
    # diagnostics, not run by default: a constant step size t_k = 1 (no annealing); 256x256 networks
    "mdpo-t1": ("mdpo", "on", [*PPO_PENDULUM, "--sgd-steps", "10", "--batch-size", "64", "--vf-learning-rate", "1e-3",
                               "--vf-epochs", "10", "--vf-batch-size", "64", "--clip-range-vf", "none",
                               "--step-size-schedule", "constant"]),
    "sac-256": ("sac", "off", ["--learning-rate", "1e-3"]),
    "mdpo-off-256": ("mdpo-off", "off", ["--learning-rate", "1e-3"]),
}
DEFAULT_SETTINGS = ("ppo", "mdpo", "mdpo-fullbatch", "sac", "mdpo-off")
CHECKS = [
    # (candidate, baseline, floor on both means or None)
    ("mdpo", "ppo", None),
    ("mdpo-fullbatch", "ppo", None),
    ("mdpo-t1", "ppo", None),
    ("mdpo-off", "sac", -250.0),
]


def run_one(name: str, seed: int, steps: int, run_root: Path) -> dict:
    algo, _, flags = SETTINGS[name]
    run_dir = run_root / f"{name}-{seed}"
    argv = ["train", algo, *COMMON, *flags, "--seed", str(seed),
            "--total-steps", str(steps), "--eval-every", str(steps), "--run-dir", str(run_dir), "--no-preset"]
    t0 = time.perf_counter()
    dramaturg_cli(argv)
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"setting": name, "seed": seed, "steps": steps, "return": summary["final_eval"]["mean_return"],
            "train_s": summary["train_time_s"], "wall_s": time.perf_counter() - t0}


def report(results: list[dict], seeds: list[int]) -> tuple[str, bool]:
    by = {name: [r["return"] for r in sorted(results, key=lambda r: r["seed"]) if r["setting"] == name] for name in SETTINGS}
    lines = ["| setting | steps | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | std |", "|---" * (len(seeds) + 4) + "|"]
    for name, values in by.items():
        if values:
            steps = next(r["steps"] for r in results if r["setting"] == name)
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells = " | ".join(f"{v:.1f}" for v in values)
            lines.append(f"| {name} | {steps:,} | {cells} | {statistics.mean(values):.1f} | {sd:.1f} |")
    lines += ["", "| check | rule | measured | result |", "|---|---|---|---|"]
    passed = True
    for cand, base, floor in CHECKS:
        c, b = by[cand], by[base]
        if not c or not b:
            continue
        margin = 0.5 * pooled_std(c, b)
        ok = statistics.mean(c) >= statistics.mean(b) - margin
        rule = f"mean({cand}) >= mean({base}) - 0.5 pooled std"
        measured = f"{statistics.mean(c):.1f} vs {statistics.mean(b) - margin:.1f}"
        if floor is not None:
            ok = ok and min(statistics.mean(c), statistics.mean(b)) >= floor
            rule += f"; both means >= {floor:.0f}"
            measured += f"; means {statistics.mean(c):.1f}, {statistics.mean(b):.1f}"
        passed &= ok
        lines.append(f"| {cand} vs {base} | {rule} | {measured} | {'pass' if ok else 'FAIL'} |")
    return "\n".join(lines), passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one torch thread each (default 2)")
    parser.add_argument("--on-steps", type=int, default=200_000, help="on-policy budget (METHODS.md: 200k)")
    parser.add_argument("--off-steps", type=int, default=20_000, help="off-policy budget (rl-zoo3 SAC Pendulum: 20k)")
    parser.add_argument("--settings", default=",".join(DEFAULT_SETTINGS), help=f"any of {','.join(SETTINGS)}")
    parser.add_argument("--run-root", default=None, help="folder for the run folders (default runs/claim-mdpo-TIME)")
    parser.add_argument("--json", default=None, help="write every run's numbers here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    names = [n for n in args.settings.split(",") if n]
    unknown = set(names) - set(SETTINGS)
    if unknown or len(seeds) < 2:
        parser.error(f"unknown settings {sorted(unknown)}" if unknown else "give at least 2 seeds (3 or more to check)")
    run_root = Path(args.run_root or ROOT / "runs" / time.strftime("claim-mdpo-%Y%m%d-%H%M%S"))
    steps = {"on": args.on_steps, "off": args.off_steps}
    # the long off-policy runs first, so the pool ends with short ones
    jobs = sorted(((n, s) for s in seeds for n in names), key=lambda j: SETTINGS[j[0]][1] != "off")
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run_one(job[0], job[1], steps[SETTINGS[job[0]][1]], run_root), jobs))
    table, passed = report(results, seeds)
    print(table)
    print(f"\n{len(results)} runs in {time.perf_counter() - t0:.0f} s with {args.jobs} jobs; "
          f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "passed": passed}, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
