"""Every file of a run folder, replaced by a malicious pickle, or removed, or damaged: each command
that reads the folder refuses it with an error naming the file, never runs the payload, and leaves
every other file as it was."""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from dramaturg.cli import main
from dramaturg.envs.factory import imported_modules

CHECKPOINT = "checkpoints/step-000000001024"
# each file of a finished run -> the commands that need it and so must refuse it when damaged
RUN_FILES = {
    "config.json": {"eval", "resume", "config", "plot"},
    "spaces.json": {"eval"},
    "summary.json": set(),
    "metrics.csv": {"resume", "plot"},
    "policy/state.json": {"eval"},
    "policy/state.safetensors": {"eval"},
    "checkpoints/latest": {"resume"},
    f"{CHECKPOINT}/state.json": {"resume"},
    f"{CHECKPOINT}/state.safetensors": {"resume"},
}


class _Payload:
    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "ppo"
    code = main(["train", "ppo", "--env", "CartPole-v1", "--total-steps", "1024", "--n-steps", "256",
                 "--num-envs", "4", "--batch-size", "256", "--eval-every", "0", "--eval-episodes", "1", "--run-dir", str(run),
                 "--progress", "false"])
    assert code == 0
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and p.parent.name != "tb") == sorted(RUN_FILES)
    return run


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def _commands(run: Path, plot: Path) -> dict[str, list[str]]:
    return {
        "eval": ["eval", str(run), "--episodes", "1", "--json"],
        "resume": ["train", "--resume", str(run), "--total-steps", "2048"],
        "config": ["train", "--config", str(run / "config.json"), "--run-dir", str(run.parent / "new"),
                   "--total-steps", "256"],
        "plot": ["plot", str(run), "--out", str(plot)],
    }


def _damage(path: Path, how: str, sentinel: Path) -> None:
    if how == "pickle":
        path.write_bytes(pickle.dumps(_Payload(sentinel)))
    elif how == "missing":
        path.unlink()
    else:  # truncated
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


@pytest.mark.parametrize("how", ["pickle", "missing", "truncated"])
@pytest.mark.parametrize("name", RUN_FILES)
def test_damaged_run_file_is_refused_by_name_and_changes_nothing(finished_run: Path, tmp_path: Path, name: str, how: str, capsys):
    run = tmp_path / "ppo"
    shutil.copytree(finished_run, run)
    sentinel = tmp_path / "pwned"
    _damage(run / name, how, sentinel)
    before = _snapshot(run)
    for command, argv in _commands(run, tmp_path / "curves.png").items():
        code = main(argv)
        err = capsys.readouterr().err
        assert not sentinel.exists(), f"{command} ran the payload planted in {name}"
        assert code != 0 or command not in RUN_FILES[name], f"{command} accepted a damaged {name}"
        if code != 0:  # refused: cleanly, naming the file
            assert code in (1, 2), (command, code, err)
            assert err.startswith("dramaturg: error: ") and Path(name).name in err, (command, err)
        assert _snapshot(run) == before or (code == 0 and command == "resume"), f"{command} changed the folder"
        if command == "resume" and code == 0:  # a resume that succeeded did not need the file
            shutil.rmtree(run)
            shutil.copytree(finished_run, run)
            _damage(run / name, how, sentinel)
            before = _snapshot(run)


# -- a config.json that names code to import ------------------------------------------------------

def _planted_env(run: Path, env: str, env_kwargs: dict) -> None:
    path = run / "config.json"
    record = json.loads(path.read_text())
    record["config"]["env"], record["config"]["env_kwargs"] = env, env_kwargs
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("nested", [False, True], ids=["env", "inside-a-wrapper"])
def test_an_environment_named_by_a_file_is_not_imported_unless_allowed(finished_run: Path, tmp_path: Path, nested: bool, capsys):
    run = tmp_path / "ppo"
    shutil.copytree(finished_run, run)
    sentinel = tmp_path / "pwned"
    payload = ("subprocess:run", {"args": ["touch", str(sentinel)]})
    if nested:  # dramaturg's own trend wrapper, told to build the payload
        payload = ("dramaturg.envs.trend:trend_env", {"env": payload[0], "env_kwargs": payload[1]})
    _planted_env(run, *payload)
    before = _snapshot(run)
    for command, argv in _commands(run, tmp_path / "curves.png").items():
        if command == "plot":  # builds no environment
            continue
        assert main(argv) == 2, command
        err = capsys.readouterr().err
        assert "config.json: environment" in err and "imports 'subprocess'" in err and "--allow-import subprocess" in err, err
        assert not sentinel.exists() and _snapshot(run) == before, command


def test_kwargs_from_a_file_are_checked_when_the_command_line_names_the_environment(finished_run: Path, tmp_path: Path, capsys):
    """`--config` with `--env` on the command line: the file's env_kwargs still build the environment."""
    run = tmp_path / "ppo"
    shutil.copytree(finished_run, run)
    sentinel = tmp_path / "pwned"
    _planted_env(run, "CartPole-v1", {"env": "subprocess:run", "env_kwargs": {"args": ["touch", str(sentinel)]}})
    argv = ["train", "--config", str(run / "config.json"), "--env", "dramaturg.envs.trend:trend_env", "--run-dir", str(tmp_path / "new")]
    assert main(argv) == 2
    assert "imports 'subprocess'" in capsys.readouterr().err
    assert not sentinel.exists() and not (tmp_path / "new").exists()


def test_dramaturg_code_outside_its_environments_is_not_trusted(finished_run: Path, tmp_path: Path, monkeypatch, capsys):
    """`dramaturg.cli:main` named as the environment would run a command line from the file, whose
    `--env=module:Name` (one string, not of the checked shape) imports that module."""
    run = tmp_path / "ppo"
    shutil.copytree(finished_run, run)
    sentinel = tmp_path / "pwned"
    (tmp_path / "planted_cli_payload.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _planted_env(run, "dramaturg.cli:main", {"argv": ["train", "ppo", "--env=planted_cli_payload:Env", "--total-steps", "1"]})
    for argv in (["eval", str(run), "--episodes", "1"], ["train", "--resume", str(run)]):
        assert main(argv) == 2
        assert "imports 'dramaturg.cli'" in capsys.readouterr().err
    assert not sentinel.exists() and "planted_cli_payload" not in sys.modules


@pytest.mark.parametrize("env", ["planted_payload:x-1", "planted_payload:Env-v0", "planted_payload.sub:"])
def test_a_module_named_in_any_shape_is_not_imported(finished_run: Path, tmp_path: Path, env: str, monkeypatch, capsys):
    """Not only package.module:Name: a name that is no identifier must not get its module imported
    either (importing runs the module's code before the missing name is noticed)."""
    run = tmp_path / "ppo"
    shutil.copytree(finished_run, run)
    sentinel = tmp_path / "pwned"
    (tmp_path / "planted_payload").mkdir()
    for module in ("__init__.py", "sub.py"):
        (tmp_path / "planted_payload" / module).write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _planted_env(run, env, {})
    for command in ("eval", "resume"):
        argv = ["eval", str(run), "--episodes", "1"] if command == "eval" else ["train", "--resume", str(run)]
        assert main(argv) == 2, command
        assert "unknown environment id" in capsys.readouterr().err
        assert not sentinel.exists(), command
    assert "planted_payload" not in sys.modules


def cartpole() -> gym.Env:
    """A user's own factory, for the run folder to name."""
    return gym.make("CartPole-v1")


def test_an_allowed_package_is_imported(finished_run: Path, tmp_path: Path, capsys):
    run = tmp_path / "ppo"
    shutil.copytree(finished_run, run)
    _planted_env(run, "tests.test_planted_files:cartpole", {})
    assert main(["eval", str(run), "--episodes", "1", "--json"]) == 2
    assert "--allow-import tests" in capsys.readouterr().err
    assert main(["eval", str(run), "--episodes", "1", "--json", "--allow-import", "tests"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 1
    assert main(["train", "--resume", str(run), "--total-steps", "2048", "--allow-import=tests"]) == 0


def test_imported_modules_finds_every_import_outside_dramaturg():
    assert imported_modules("CartPole-v1", {}) == []
    assert imported_modules("dramaturg.envs.costs:CartPoleWithPositionCost", {"bound": 0.05}) == []
    assert imported_modules("dramaturg.envs.trend:trend_env", {"env": "mypkg.envs:Env", "x": ["a.b:C", {"y": "mypkg.envs:Env"}]}) == [
        "mypkg.envs", "a.b"
    ]
    assert imported_modules("not a spec: at all", {"url": "http://host:80"}) == []
    assert imported_modules("dramaturg.cli:main", {"argv": []}) == ["dramaturg.cli"]
    assert imported_modules("dramaturg:train", {}) == ["dramaturg"]
    assert imported_modules("dramaturg.envsx:Env", {}) == ["dramaturg.envsx"]
