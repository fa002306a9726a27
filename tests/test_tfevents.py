"""TensorBoard event files written without the tensorboard package: TensorBoard's own reader
gets back every scalar, and the framing checksums are CRC-32C."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dramaturg.runtime.logger import Logger
from dramaturg.runtime.tfevents import EventWriter, crc32c

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = event_accumulator.EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_crc32c_check_values():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value (RFC 3720, B.4)
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720, B.4: 32 bytes of zeros


def test_tensorboard_reads_what_the_writer_wrote(tmp_path: Path):
    writer = EventWriter(tmp_path)
    writer.scalar("train/loss", 0.5, 0)
    writer.scalar("train/loss", -2.25, 10**12)
    writer.scalar("eval/mean_return", float("inf"), 3)
    writer.scalar("eval/mean_return", float("nan"), 4)
    writer.scalar("time/ünïcode", 1e-3, 5)
    writer.close()
    scalars = read_scalars(tmp_path)
    assert scalars["train/loss"] == [(0, 0.5), (10**12, -2.25)]
    (s3, inf), (s4, nan) = scalars["eval/mean_return"]
    assert (s3, s4) == (3, 4) and inf == math.inf and math.isnan(nan)
    # float32, as TensorBoard stores it
    assert scalars["time/ünïcode"] == [(5, pytest.approx(1e-3))]


def test_a_flipped_byte_is_caught_by_the_checksum(tmp_path: Path):
    writer = EventWriter(tmp_path)
    writer.scalar("a", 1.0, 1)
    writer.close()
    data = bytearray(writer.path.read_bytes())
    data[-6] ^= 0xFF  # inside the scalar's value
    writer.path.write_bytes(bytes(data))
    assert "a" not in read_scalars(tmp_path)  # TensorBoard drops the corrupt record


def test_logger_writes_both_files(tmp_path: Path):
    logger = Logger(tmp_path)
    logger.log(100, 1.5, {"train/loss": 0.25, "eval/mean_return": 200.0})
    logger.log(200, 3.0, {"train/loss": 0.125})
    logger.close()
    assert read_scalars(tmp_path / "tb") == {
        "train/loss": [(100, 0.25), (200, 0.125)],
        "eval/mean_return": [(100, 200.0)],
    }
    assert (tmp_path / "metrics.csv").read_text().splitlines()[1:] == [
        "100,1.5000,train/loss,0.25",
        "100,1.5000,eval/mean_return,200.0",
        "200,3.0000,train/loss,0.125",
    ]
