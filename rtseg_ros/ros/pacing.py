"""``bag_player``'s pacings and their schedule, without rclpy: the launch files' logic and ``rtseg-replay`` check
a pacing with these before any node starts."""
from __future__ import annotations

PACINGS = ("recorded", "rate", "lockstep")


def check_pacing(pacing: str, rate_hz: float) -> str | None:
    """Why ``pacing`` and ``rate_hz`` do not go together (None: they do)."""
    if pacing == "rate" and rate_hz <= 0:
        return "pacing:=rate needs rate_hz > 0"
    if pacing != "rate" and rate_hz > 0:
        return f"rate_hz is used only with pacing:=rate (pacing is {pacing})"
    return None


def schedule(log_times_ns: list[int], rate_hz: float) -> list[float]:
    """Seconds after the start at which each frame is due: ``i / rate_hz``, or the recorded offsets (0)."""
    if rate_hz > 0:
        return [index / rate_hz for index in range(len(log_times_ns))]
    return [(t - log_times_ns[0]) / 1e9 for t in log_times_ns]
