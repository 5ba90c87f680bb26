"""Small helpers every layer may use: image sizes on command lines, process memory, percentiles, stamps
(header stamps of serialized CDR messages too).

Bottom layer: imports nothing from rtseg_ros (and no ROS), so any module can take these from here.
"""
from __future__ import annotations

import argparse
import struct
from typing import Iterable

import numpy as np

NS_PER_S = 1_000_000_000


def parse_size(text: str) -> tuple[int, int]:
    """``"HxW"`` (e.g. ``512x1024``) → ``(H, W)``; an ``argparse`` type, so errors read as usage errors."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like HEIGHTxWIDTH (e.g. 512x1024), got {text!r}") from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return height, width


def status_mib(key: str, pid: int | str = "self") -> float:
    """A memory figure of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``, ...) in MiB (Linux); NaN if absent."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def rss_mib(pid: int | str = "self") -> float:
    """Resident memory of a process in MiB (Linux ``/proc``); this process by default."""
    return status_mib("VmRSS", pid)


def cpuinfo_field(name: str) -> str | None:
    """The first ``name`` line of ``/proc/cpuinfo`` (``model name``, ``flags``), its value; None if absent."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def percentiles(values: Iterable[float], qs: Iterable[float] = (50, 95)) -> dict[str, float]:
    """``{"p50": ..., "p95": ...}`` for each q in ``qs``, by NumPy's default definition (linear
    interpolation between closest ranks), the one every figure in this package uses; NaN without values."""
    qs = tuple(qs)
    values = np.asarray(list(values), dtype=float)
    found = np.percentile(values, qs) if values.size else np.full(len(qs), np.nan)
    return {f"p{q:g}": float(v) for q, v in zip(qs, found)}


def stamp_to_ns(stamp) -> int:
    """A ``builtin_interfaces/Time``-like object (``sec``, ``nanosec``; rclpy or rosbags) → integer ns."""
    return stamp.sec * NS_PER_S + stamp.nanosec


def ns_to_stamp(ns: int) -> tuple[int, int]:
    """Integer ns → ``(sec, nanosec)`` for a ``builtin_interfaces/Time``."""
    return divmod(ns, NS_PER_S)


def cdr_byte_order(raw: bytes | memoryview) -> str:
    """``struct``'s byte-order prefix for a serialized CDR message (encapsulation 0x0001: little-endian,
    0x0000: big-endian)."""
    return "<" if raw[1] == 1 else ">"


def cdr_stamp(raw: bytes | memoryview) -> int:
    """Header stamp (ns) of a serialized message whose first field is a ``std_msgs/Header``."""
    sec, nanosec = struct.unpack_from(cdr_byte_order(raw) + "iI", raw, 4)
    return sec * NS_PER_S + nanosec


def cdr_header(raw: bytes | memoryview) -> tuple[int, str]:
    """Header stamp (ns) and frame_id of such a message (CDR: 4-byte encapsulation, int32 sec, uint32
    nanosec, uint32 length + frame_id bytes with its NUL)."""
    (length,) = struct.unpack_from(cdr_byte_order(raw) + "I", raw, 12)
    return cdr_stamp(raw), bytes(raw[16:16 + length - 1]).decode()
