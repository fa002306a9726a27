"""Checkpoints: a faithful round trip, atomic replacement, and clear refusals of damaged files."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
import torch

from dramaturg.runtime.checkpoint import (
    CheckpointError,
    flatten,
    load_latest,
    read_state,
    save_checkpoint,
    unflatten,
)
from tests.helpers import tensors

PACKAGE = Path(__file__).resolve().parents[1] / "dramaturg"


def optimiser_state() -> dict:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.8, 0.9))
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    return {"net": net.state_dict(), "opt": opt.state_dict(), "step": 7, "name": "x", "none": None, "pair": (1, 2.5)}


def test_round_trip_keeps_values_types_and_int_keys(tmp_path: Path):
    state = optimiser_state()
    save_checkpoint(tmp_path, "step-000000000007", state)
    loaded = load_latest(tmp_path)
    assert loaded["step"] == 7 and loaded["name"] == "x" and loaded["none"] is None
    assert loaded["pair"] == (1, 2.5)
    assert set(loaded["opt"]["state"]) == {0, 1}  # optimiser state is keyed by int
    assert loaded["opt"]["param_groups"][0]["betas"] == (0.8, 0.9)
    a, b = tensors(state), tensors(loaded)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    opt = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    opt.load_state_dict(loaded["opt"])  # accepted by torch as is


def test_unsupported_objects_are_refused_by_name():
    with pytest.raises(TypeError, match="cannot checkpoint a object at /thing"):
        flatten({"thing": object()}, {})
    assert unflatten(flatten({"a": [1, {"b": 2}]}, {}), {}) == {"a": [1, {"b": 2}]}


def test_latest_points_at_the_newest_and_old_ones_are_pruned(tmp_path: Path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, f"step-{step:012d}", {"step": step}, keep=2)
    assert load_latest(tmp_path)["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["step-000000000002", "step-000000000003"]


def _saved(tmp_path: Path) -> Path:
    save_checkpoint(tmp_path, "step-000000000001", {"w": torch.arange(100.0)})
    return tmp_path / "step-000000000001"


def test_truncated_tensor_file_is_refused_naming_it(tmp_path: Path):
    folder = _saved(tmp_path)
    path = folder / "state.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*checksum mismatch"):
        read_state(folder)


def test_bit_flip_is_refused(tmp_path: Path):
    folder = _saved(tmp_path)
    path = folder / "state.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        read_state(folder)


@pytest.mark.parametrize("damage", ["missing-json", "bad-json", "wrong-format", "missing-latest", "bad-latest"])
def test_damaged_metadata_is_refused_naming_the_file(tmp_path: Path, damage: str):
    folder = _saved(tmp_path)
    meta = folder / "state.json"
    if damage == "missing-json":
        meta.unlink()
        expected = "state.json: missing"
    elif damage == "bad-json":
        meta.write_text("{not json")
        expected = "state.json: not valid JSON"
    elif damage == "wrong-format":
        meta.write_text(json.dumps({"format": "other"}))
        expected = "state.json: not a dramaturg checkpoint"
    elif damage == "missing-latest":
        (tmp_path / "latest").unlink()
        expected = "latest: missing"
    else:
        (tmp_path / "latest").write_text("../../etc")
        expected = "latest: does not name a checkpoint"
    with pytest.raises(CheckpointError, match=expected):
        load_latest(tmp_path)


class _Payload:
    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def test_a_pickle_in_place_of_a_checkpoint_never_runs(tmp_path: Path):
    folder = _saved(tmp_path)
    sentinel = tmp_path / "pwned"
    blob = pickle.dumps(_Payload(sentinel))
    (folder / "state.safetensors").write_bytes(blob)
    with pytest.raises(CheckpointError):
        load_latest(tmp_path)
    (folder / "state.json").write_bytes(blob)
    with pytest.raises(CheckpointError):
        load_latest(tmp_path)
    assert not sentinel.exists()


def test_the_package_never_unpickles_or_evaluates():
    pattern = re.compile(r"pickle\.loads?\(|torch\.load\(|(^|[^.\w])eval\(|(^|[^.\w])exec\(|yaml\.load\(")
    hits = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and "weights_only=True" not in line
    ]
    assert not hits, hits
