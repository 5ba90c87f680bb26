"""Counters, latency statistics and health levels of the segmentation node, and their DiagnosticArray form.

``FrameStats`` is fed from the node's threads and summarised once per diagnostics period: totals since
start plus statistics over the period just ended (bounded samples, so memory stays flat however long the
node runs). ``segmentation_status`` adds the node's own state (weights, QoS problems, enabled, what it runs
and on what input) and names the status after the node's fully qualified name. ``ThrottledLog`` keeps bad
input and alternating frame sizes from flooding the log: one line per cause, then at most one per period
with the count of what it held back.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from rtseg_ros.common import percentiles

OK, WARN, ERROR = 0, 1, 2
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}


@dataclass
class Limits:
    latency_warn_ms: float = 200.0
    latency_error_ms: float = 1000.0
    errors_warn_ratio: float = 0.0
    errors_error_ratio: float = 0.5


@dataclass
class Report:
    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, level: int, problem: str) -> None:
        """Raise the level to at least ``level`` and put ``problem`` in the message."""
        self.level = max(self.level, level)
        self.problems.append(problem)
        self.message = "; ".join(self.problems)


class ThrottledLog:
    """Decides when a recurring problem is logged: its first occurrence, then once per ``period_s``."""

    def __init__(self, period_s: float = 10.0, clock=time.monotonic):
        self.period_s, self._clock = period_s, clock
        self._last: dict[str, float] = {}
        self._held: Counter = Counter()

    def check(self, cause: str) -> int | None:
        """None: stay quiet. Otherwise log now; the value is how many occurrences were held back since."""
        now = self._clock()
        last = self._last.get(cause)
        if last is not None and now - last < self.period_s:
            self._held[cause] += 1
            return None
        self._last[cause] = now
        return self._held.pop(cause, 0)


def _fmt(value: float) -> str:
    return f"{value:.2f}"


class SequenceGaps:
    """Frames a publisher sent that never reached the subscription, from gaps in each publisher's
    publication sequence numbers (DDS numbers every sample a writer sends). Unlike DDS sample-lost events,
    which count fragments and repairs, a gap is exactly the frames missing, so per publisher
    received + lost = sent (from the first frame received on). Not thread-safe: call from one callback."""

    def __init__(self):
        self._last: dict[bytes, int] = {}  # publisher gid → last sequence number seen

    def missing(self, publisher: bytes, sequence: int | None) -> int:
        """Frames lost between this publisher's previous frame and this one (0 for its first, for a
        publisher that started again, and where the RMW gives no sequence number)."""
        if sequence is None:
            return 0
        last = self._last.get(publisher)
        self._last[publisher] = sequence
        return sequence - last - 1 if last is not None and sequence > last else 0


class FrameStats:
    """Thread-safe frame accounting for one node."""

    def __init__(self, max_samples: int = 4096, clock=time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self.max_samples = max_samples
        self.totals: Counter = Counter()
        self.errors: Counter = Counter()
        self._window_start = clock()
        self._reset_window()

    def _reset_window(self) -> None:
        self._window: Counter = Counter()
        self._window_errors: Counter = Counter()
        self._latency: deque[float] = deque(maxlen=self.max_samples)
        self._processing: deque[float] = deque(maxlen=self.max_samples)
        self._segmenter: deque[float] = deque(maxlen=self.max_samples)
        self._overhead: deque[float] = deque(maxlen=self.max_samples)
        self._stages: dict[str, float] = {}

    # -- events --------------------------------------------------------------------------------------
    def received(self, replaced: bool) -> None:
        with self._lock:
            for counter in (self.totals, self._window):
                counter["received"] += 1
                counter["replaced"] += replaced

    def count(self, what: str, n: int = 1) -> None:
        """Other counters: ``skipped_no_subscribers``, ``stale`` (older than ``max_age_ms``), ``lost`` (sent
        but never received: gaps in the publishers' sequence numbers, ``SequenceGaps``), ``unstamped``."""
        with self._lock:
            self.totals[what] += n
            self._window[what] += n

    def error(self, cause: str) -> None:
        with self._lock:
            self.errors[cause] += 1
            self._window_errors[cause] += 1

    def published(self, latency_ms: float | None, processing_ms: float, stages_ms: dict[str, float],
                  segmenter_ms: float) -> None:
        """One frame out. ``latency_ms``: input stamp → publish (None when the input had no stamp);
        ``processing_ms``: receipt → publish; ``stages_ms``: time per stage of this frame. The node's own
        overhead is what ``processing_ms`` holds beyond the Segmenter and the ``publish`` stage (hand-off to
        the worker, any wait for it, conversions, bookkeeping)."""
        with self._lock:
            self.totals["published"] += 1
            self._window["published"] += 1
            if latency_ms is not None:
                self._latency.append(latency_ms)
            self._processing.append(processing_ms)
            self._segmenter.append(segmenter_ms)
            self._overhead.append(processing_ms - segmenter_ms - stages_ms.get("publish", 0.0))
            for stage, ms in stages_ms.items():
                self._stages[stage] = self._stages.get(stage, 0.0) + ms

    # -- summary -------------------------------------------------------------------------------------
    def report(self, limits: Limits) -> Report:
        """Summarise the period since the last report and start a new one."""
        with self._lock:
            now = self._clock()
            elapsed = max(now - self._window_start, 1e-9)
            window, window_errors = self._window, self._window_errors
            samples = {"latency": np.array(self._latency), "processing": np.array(self._processing),
                       "segmenter": np.array(self._segmenter), "overhead": np.array(self._overhead)}
            stages, totals, errors = dict(self._stages), Counter(self.totals), Counter(self.errors)
            self._window_start = now
            self._reset_window()

        values = {"fps": _fmt(window["published"] / elapsed), "input_hz": _fmt(window["received"] / elapsed)}
        for name, series in samples.items():
            if series.size:
                p = percentiles(series)
                values.update({f"{name}_p50_ms": _fmt(p["p50"]), f"{name}_p95_ms": _fmt(p["p95"]),
                               f"{name}_max_ms": _fmt(series.max())})
        for stage, total in stages.items():
            values[f"stage_{stage}_ms"] = _fmt(total / max(window["published"], 1))
        depth_keys = tuple(key for key in ("points", "depth_unmatched", "depth_refused") if key in totals)
        for key in ("received", "published", "replaced", "skipped_no_subscribers", "stale", "lost", "unstamped",
                    *depth_keys):
            values[f"frames_{key}"] = str(totals[key])
        values["frames_replaced_period"] = str(window["replaced"])
        values["errors"] = str(sum(errors.values()))
        values["errors_period"] = str(sum(window_errors.values()))
        for cause, n in sorted(errors.items()):
            values[f"errors_{cause}"] = str(n)

        level, problems = OK, []
        n_errors, received = sum(window_errors.values()), window["received"]
        ratio = n_errors / max(received, 1)
        if n_errors:
            causes = ", ".join(f"{c} x{n}" for c, n in sorted(window_errors.items()))
            if window_errors["inference"] or ratio >= limits.errors_error_ratio:
                level = ERROR
            elif ratio > limits.errors_warn_ratio:
                level = max(level, WARN)
            problems.append(f"{n_errors} of {received} frames rejected ({causes})")
        if window["stale"]:  # frames arrive older than the user accepts: upstream or the node lags
            level = max(level, WARN)
            problems.append(f"{window['stale']} of {received} frames skipped as older than max_age_ms")
        latency = samples["latency"]
        if latency.size:
            p95 = percentiles(latency, (95,))["p95"]
            if p95 > limits.latency_error_ms:
                level = ERROR
                problems.append(f"latency p95 {p95:.0f} ms > {limits.latency_error_ms:g} ms")
            elif p95 > limits.latency_warn_ms:
                level = max(level, WARN)
                problems.append(f"latency p95 {p95:.0f} ms > {limits.latency_warn_ms:g} ms")
        message = "; ".join(problems) if problems else \
            f"{window['published'] / elapsed:.1f} fps" if window["published"] else "idle"
        return Report(level, message, values, problems)


def status_name(node_fqn: str) -> str:
    """The status name: the node's fully qualified name (``/robot1/segment_node: segmentation``), so two
    nodes of the same name in different namespaces can be told apart."""
    return f"{node_fqn}: segmentation"


def segmentation_status(report: Report, *, node_fqn: str, segmenter_facts: dict, random_weights: bool,
                        config: dict, live: dict, input_topic: str, qos_problems: dict[str, str],
                        frames_received: int, network_input: tuple[int, int],
                        image: str | None) -> DiagnosticStatus:
    """The segmentation node's status: ``report`` (the frame statistics of the period) plus the node's state.

    ``segmenter_facts``: ``Segmenter.describe()``; ``config``/``live``: the node's start-up and live
    parameters; ``qos_problems``: incompatible-QoS messages by endpoint (``input`` or an output name);
    ``network_input``: the network input of the last frame (before any: the configured input size);
    ``image``: the last frame as ``WxH encoding`` (None before any).
    """
    if random_weights:
        report.add(WARN, "RANDOM WEIGHTS (no weights given): labels are meaningless")
    if "input" in qos_problems:  # an error while it keeps frames away, a warning once others arrive
        level = WARN if float(report.values["input_hz"]) > 0 else ERROR
        report.add(level, "incompatible QoS on the input: " + qos_problems["input"])
    elif not live["enabled"]:
        report.add(OK, f"disabled (enabled=false): not subscribed to {input_topic}")
    elif not frames_received:
        report.add(WARN, f"no frames received yet on {input_topic}")
    for name, problem in qos_problems.items():
        if name != "input":
            report.add(WARN, problem)
    facts = {"model": segmenter_facts["model"], "backend": segmenter_facts["backend"],
             "backend_choice": f"{segmenter_facts['backend_requested']}: {segmenter_facts['backend_reason']}",
             "device": segmenter_facts["device"], "precision": segmenter_facts["precision"],
             "weights": segmenter_facts["weights"], "random_weights": str(random_weights).lower(),
             "network_input": "x".join(map(str, network_input)), "output_resolution": config["output_resolution"],
             "upsample": config["upsample"], "input_topic": input_topic, "transport": config["transport"],
             "input_qos": config["input_qos"], "max_fps": f"{live['max_fps']:g}",
             "enabled": str(live["enabled"]).lower(), "max_age_ms": f"{live['max_age_ms']:g}",
             "image": image or "none yet"}
    return to_status(report, status_name(node_fqn), segmenter_facts["device"], facts)


def to_status(report: Report, name: str, hardware_id: str, facts: dict[str, str]) -> DiagnosticStatus:
    values = {**facts, **report.values}
    return DiagnosticStatus(level=bytes([report.level]), name=name, message=report.message,
                            hardware_id=hardware_id, values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])


def to_array(status: DiagnosticStatus, stamp) -> DiagnosticArray:
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
