"""Every file of a run folder, replaced by a malicious pickle, or removed, or damaged: each command
that reads the folder refuses it with an error naming the file, never runs the payload, and leaves
every other file as it was."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from dramaturg.cli import main

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
