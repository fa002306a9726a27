"""The `dramaturg` command: train, eval, plot, list.

    dramaturg train ppo --env CartPole-v1 --total-steps 100000 --seed 1
    dramaturg train --resume runs/ppo-CartPole-v1-1 --total-steps 200000
    dramaturg eval runs/ppo-CartPole-v1-1 --episodes 20 --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any, Sequence

from dramaturg import algos

USAGE = """dramaturg train ALGO [--FIELD VALUE ...]     train (ALGO: {algos}); ALGO --help lists the fields
dramaturg train --config RUN_DIR/config.json  a new run from a saved config (flags override)
dramaturg train --resume RUN_DIR [--total-steps N]  continue a run from its last checkpoint
dramaturg eval RUN_DIR [--episodes N] [--env ENV] [--json]
dramaturg plot RUN_DIR... [--x steps|time] [--out curves.png]
dramaturg list
dramaturg check-env ENV [--env-kwargs JSON]      check your own environment before training on it
dramaturg bench [--quick] [--seeds 1,2,3]     benchmark suite vs the peers (source checkout, bench extra)

A run folder that names an environment of your own (package.module:Name) is only built by --config,
--resume and eval with --allow-import PACKAGE: config.json is a file, and the import runs its code."""


class UsageError(Exception):
    pass


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def field_parser(algo: str) -> argparse.ArgumentParser:
    """One option per Config field, with its docstring, type and default as help."""
    from dramaturg.config import field_docs, field_types

    module = algos.get(algo)
    parser = argparse.ArgumentParser(
        prog=f"dramaturg train {algo}",
        description=f"{algos.ALGORITHMS[algo]}. Fields default to the values below, then to the "
        "environment's rl-zoo3 preset where one exists, then to what you pass.",
        argument_default=argparse.SUPPRESS,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    docs, types = field_docs(module.Config), field_types(module.Config)
    for f in dataclasses.fields(module.Config):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kind = str(types[f.name]).replace("typing.", "").replace("<class '", "").replace("'>", "")
        parser.add_argument(
            _flag(f.name),
            *([f"--{f.name}"] if "_" in f.name else []),
            dest=f.name,
            metavar=kind.upper().replace(" ", ""),
            nargs="?" if types[f.name] is bool else None,
            const="true" if types[f.name] is bool else None,
            help=f"{docs.get(f.name, '')} (default: {default!r})",
        )
    parser.add_argument("--no-preset", dest="no_preset", action="store_true", help="ignore rl-zoo3 presets")
    return parser


def parse_fields(algo: str, argv: Sequence[str]) -> tuple[dict[str, Any], bool]:
    from dramaturg.config import ConfigError, parse_value, suggest

    module = algos.get(algo)
    parser = field_parser(algo)
    namespace, unknown = parser.parse_known_args(list(argv))
    if unknown:
        names = [_flag(f.name) for f in dataclasses.fields(module.Config)]
        first = next((u for u in unknown if u.startswith("--")), unknown[0])
        raise ConfigError(f"{algo}: unknown option {first!r}{suggest(first.split('=')[0], names)}")
    values = vars(namespace)
    no_preset = values.pop("no_preset", False)
    return {k: parse_value(module.Config, k, v) for k, v in values.items()}, no_preset


ALLOW_IMPORT_HELP = (
    "a package whose code the run folder's environment may import (its own package.module:Name); "
    "without it, dramaturg imports only Gymnasium ids and its own environments named by a file"
)


def split_packages(values: Sequence[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def take_allow_import(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(packages of every --allow-import P[,Q] or --allow-import=P, the other arguments)."""
    packages, rest, it = [], [], iter(argv)
    for arg in it:
        if arg == "--allow-import":
            value = next(it, None)
            if value is None:
                raise UsageError("--allow-import needs a package name")
            packages.append(value)
        elif arg.startswith("--allow-import="):
            packages.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return split_packages(packages), rest


def cmd_train(argv: list[str]) -> int:
    from dramaturg import api
    from dramaturg.runtime.startup import optimizers_without_compiler

    if argv and argv[0] == "--resume":
        if len(argv) < 2:
            raise UsageError("--resume needs a run folder")
        allow, rest = take_allow_import(argv[2:])
        run_dir = argv[1]
        record = api.read_run_config(run_dir)
        overrides, _ = parse_fields(record["algo"], rest)
        if not overrides.get("compile", record["config"].get("compile", False)):
            optimizers_without_compiler()
        result = api.resume(run_dir, allow_import=allow, **overrides)
    elif argv and argv[0] == "--config":
        if len(argv) < 2:
            raise UsageError("--config needs a config.json")
        allow, rest = take_allow_import(argv[2:])
        folder = argv[1].removesuffix("config.json") or "."
        record = api.read_run_config(folder)
        flags, _ = parse_fields(record["algo"], rest)
        base = {k: v for k, v in record["config"].items() if k != "run_dir"}
        from_file = {k: v for k, v in record["config"].items() if k in ("env", "env_kwargs") and k not in flags}
        api.check_run_env(folder, {"config": from_file}, allow)  # what of the environment comes from the file
        cfg, sources = api.resolve(record["algo"], flags, base=base)
        if not cfg.compile:
            optimizers_without_compiler()
        result = algos.get(record["algo"]).train(cfg, sources=sources)
    else:
        if not argv or argv[0].startswith("-"):
            if argv and argv[0] in ("-h", "--help"):
                print(USAGE.format(algos=", ".join(algos.ALGORITHMS)))
                return 0
            raise UsageError("train needs an algorithm, --config or --resume")
        algo, rest = argv[0], argv[1:]
        flags, no_preset = parse_fields(algo, rest)
        cfg, sources = api.resolve(algo, flags, preset=not no_preset)
        if not cfg.compile:
            optimizers_without_compiler()
        result = algos.get(algo).train(cfg, sources=sources)
    s = result.summary
    final = s.get("final_eval", {})
    line = f"{s['algo']} on {s['env']}: {s['steps_done']} steps in {s['train_time_s']:.1f}s"
    if final:
        line += f", eval return {final['mean_return']:.1f} +- {final['std_return']:.1f}"
    if s["solved_step"] is not None:
        line += f", reached the target at step {s['solved_step']}"
    print(f"{line}\nrun folder: {result.run_dir}")
    return 0


def cmd_eval(argv: list[str]) -> int:
    import numpy as np

    from dramaturg import api

    parser = argparse.ArgumentParser(prog="dramaturg eval", description="Evaluate a run's final policy.")
    parser.add_argument("run_dir")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    parser.add_argument("--env", default=None, help="another environment with the same spaces")
    parser.add_argument("--env-kwargs", default=None, help="JSON keyword arguments for --env")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--allow-import", action="append", default=[], metavar="PACKAGE", help=ALLOW_IMPORT_HELP)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        raise UsageError("--episodes must be >= 1")
    env_id, returns = api.evaluate_run(
        args.run_dir,
        episodes=args.episodes,
        seed=args.seed,
        env=args.env,
        env_kwargs=json.loads(args.env_kwargs) if args.env_kwargs else None,
        deterministic=not args.stochastic,
        allow_import=split_packages(args.allow_import),
    )
    report = {
        "run_dir": args.run_dir,
        "env": env_id,
        "episodes": args.episodes,
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "returns": [float(r) for r in returns],
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{env_id}: {report['mean_return']:.2f} +- {report['std_return']:.2f} over {args.episodes} episodes")
    return 0


def cmd_plot(argv: list[str]) -> int:
    from dramaturg.plotting import plot_runs

    parser = argparse.ArgumentParser(prog="dramaturg plot", description="Learning curves of one or more runs.")
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--x", choices=("steps", "time"), default="steps")
    parser.add_argument("--out", default="curves.png")
    parser.add_argument("--key", default="eval/mean_return", help="metric to draw (default eval/mean_return)")
    args = parser.parse_args(argv)
    print(plot_runs(args.run_dirs, x=args.x, out=args.out, key=args.key))
    return 0


def cmd_list(argv: list[str]) -> int:
    from dramaturg.envs.native import NATIVE, native_class
    from dramaturg.presets import PRESETS

    print("algorithms:")
    width = max(map(len, algos.ALGORITHMS))
    for name, text in algos.ALGORITHMS.items():
        print(f"  {name:<{width}} {text}")
    print("native batched environments (torch, any device; --num-envs in the thousands):")
    for env_id in NATIVE:
        task = native_class(env_id)
        same = f"steps as Gymnasium's {task.gym_id}" if task.gym_id else (task.__doc__ or "").split("\n")[0]
        print(f"  {env_id:<36} {same}")
    print("environments with tuned presets (any Gymnasium id or package.module:Name works):")
    envs = sorted({env for table in PRESETS.values() for env in table})
    for env in envs:
        have = [a for a in algos.ALGORITHMS if env in PRESETS.get(a, {})]
        print(f"  {env:<28} {', '.join(have)}")
    return 0


def cmd_bench(argv: list[str]) -> int:
    """Run benchmarks/suite.py of a source checkout (it needs the `bench` extra: the peers)."""
    import subprocess
    from pathlib import Path

    suite = Path(__file__).resolve().parents[1] / "benchmarks" / "suite.py"
    if not suite.is_file():
        print(f"error: {suite} not found: the benchmark suite ships with the source tree, "
              "not with the installed package", file=sys.stderr)
        return 1
    return subprocess.call([sys.executable, str(suite), *argv])


def cmd_check_env(argv: list[str]) -> int:
    """Print every problem `dramaturg.envs.check` finds in an environment; exit 1 if any."""
    from dramaturg.envs.check import inspect_env

    parser = argparse.ArgumentParser(prog="dramaturg check-env", description="Check an environment before training on it.")
    parser.add_argument("env", help="Gymnasium id or package.module:Name")
    parser.add_argument("--env-kwargs", default=None, help="JSON keyword arguments for the constructor")
    parser.add_argument("--steps", type=int, default=200, help="random-action steps to take (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resets and the actions")
    args = parser.parse_args(argv)
    try:
        kwargs = json.loads(args.env_kwargs) if args.env_kwargs else {}
    except json.JSONDecodeError as exc:
        raise UsageError(f"--env-kwargs is not valid JSON: {exc}") from exc
    if not isinstance(kwargs, dict):
        raise UsageError(f"--env-kwargs must be a JSON object, not {args.env_kwargs!r}")
    report = inspect_env(args.env, kwargs, steps=args.steps, seed=args.seed)
    print(report.summary())
    return 0 if report.ok else 1


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "plot": cmd_plot, "list": cmd_list, "bench": cmd_bench, "check-env": cmd_check_env}


def main(argv: Sequence[str] | None = None) -> int:
    from dramaturg.config import ConfigError
    from dramaturg.envs.factory import EnvError
    from dramaturg.runtime.checkpoint import CheckpointError
    from dramaturg.runtime.finite import NonFiniteError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.format(algos=", ".join(algos.ALGORITHMS)))
        return 0 if argv else 2
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"dramaturg: unknown command {argv[0]!r}\n{USAGE.format(algos=', '.join(algos.ALGORITHMS))}", file=sys.stderr)
        return 2
    try:
        return command(argv[1:])
    except (ConfigError, EnvError, UsageError) as exc:
        print(f"dramaturg: error: {exc}", file=sys.stderr)
        return 2
    except (CheckpointError, FileNotFoundError, NonFiniteError) as exc:
        print(f"dramaturg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dramaturg: interrupted; resume with `dramaturg train --resume RUN_DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
