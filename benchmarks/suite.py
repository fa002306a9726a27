"""The benchmark suite `dramaturg bench` runs: raw environment speed, then time to solve against
the peers, in one run.

    python benchmarks/suite.py                      # everything: PPO on 10 seeds, SAC on 3
    python benchmarks/suite.py --quick              # one seed, native contestants only vs SB3
    python benchmarks/suite.py --seeds 1,2 --json bench.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import env_steps
import sb3_vs_dramaturg


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one seed; dramaturg-native and SB3 only")
    p.add_argument("--seeds", help="comma-separated, for every task (default: each task's own, PPO 1-10, SAC 1-3)")
    p.add_argument("--tasks", default=",".join(sb3_vs_dramaturg.TASKS))
    p.add_argument("--json", help="prefix for the raw numbers: PREFIX-env_steps.json, PREFIX-solve.json")
    args, rest = p.parse_known_args(argv)
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        sys.exit("error: the benchmark needs the peers: pip install -e '.[bench]' (Stable-Baselines3)")

    print("== raw environment steps/s: random actions, native batched vs Gymnasium SyncVectorEnv ==")
    env_argv = ["--sizes", "8,256,4096"] + (["--json", f"{args.json}-env_steps.json"] if args.json else [])
    env_steps.main(env_argv)

    print("\n== time to solve: dramaturg vs the peers, same run, alternating ==")
    solve_argv = ["--tasks", args.tasks]
    if args.quick or args.seeds:
        solve_argv += ["--seeds", (args.seeds or "1").split(",")[0] if args.quick else args.seeds]
    if args.quick:
        solve_argv += ["--only", "dramaturg-native,sb3"]
    if args.json:
        solve_argv += ["--json", f"{args.json}-solve.json"]
    sb3_vs_dramaturg.main(solve_argv + rest)


if __name__ == "__main__":
    main()
