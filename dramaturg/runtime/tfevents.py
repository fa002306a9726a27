"""TensorBoard event files for scalars, written directly.

An event file is a sequence of TFRecords (length, masked CRC-32C of the length, the serialised
`Event` protobuf, masked CRC-32C of it), the first event holding the file version. dramaturg logs
scalars only, so the few protobuf fields involved are encoded here by hand instead of importing the
tensorboard package and protobuf, which costs a short run a tenth of a second or more at start-up.
`tensorboard --logdir RUN_DIR/tb` reads these files as its own.

Fields used (tensorboard/compat/proto/event.proto, summary.proto): Event.wall_time (1, double),
Event.step (2, int64), Event.file_version (3, string), Event.summary (5, Summary);
Summary.value (1, repeated Value); Value.tag (1, string), Value.simple_value (2, float).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

_CRC32C_TABLE: list[int] = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ (0x82F63B78 if _crc & 1 else 0)  # Castagnoli polynomial, reflected
    _CRC32C_TABLE.append(_crc)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 in two's complement, as protobuf encodes negative steps
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """The serialised Event of one scalar."""
    simple_value = b"\x15" + struct.pack("<f", value)  # field 2, wire type 5 (fixed32)
    summary = _field(1, _field(1, tag.encode()) + simple_value)
    return b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step) + _field(5, summary)


def record(event: bytes) -> bytes:
    """One TFRecord framing `event`."""
    length = struct.pack("<Q", len(event))
    head = length + struct.pack("<I", _masked_crc(length))
    return head + event + struct.pack("<I", _masked_crc(event))


class EventWriter:
    """Appends scalars to a new event file in `log_dir` (one per writer, as TensorBoard's own)."""

    def __init__(self, log_dir: Path | str):
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        name = f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}.{os.getpid()}.0"
        self.path = log_dir / name
        self._file = open(self.path, "ab")
        self._file.write(record(b"\x09" + struct.pack("<d", now) + _field(3, b"brain.Event:2")))

    def scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        wall_time = time.time() if wall_time is None else wall_time
        self._file.write(record(scalar_event(tag, value, step, wall_time)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
