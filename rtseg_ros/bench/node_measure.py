"""End-to-end measurement of ``segment_node`` beside bare rclpy transport of the same messages.

This process publishes camera frames at a fixed rate (stamped at publish, the frame index in
``frame_id``) and times the outputs that come back (DDS reception time). The target runs in its own
process, as on a robot: first ``segment_node``, whose ``/diagnostics`` give the Segmenter's own time in
this run, then a relay that does only what rclpy transport costs (take the image, publish prebuilt
same-sized outputs with the input's header) after holding each frame for that Segmenter time, so both
runs load the transport with the same timing (on a small CPU the output's transfer slows down when it
overlaps the input's). Then

    bare transport = relay latency p50 - Segmenter p50
    overhead       = node latency p50 - relay latency p50 = node - bare transport - Segmenter

``find_peak`` runs the same two targets at rising rates (ros2_benchmark's peak throughput: the highest
rate at which fewer than 5 % of frames are lost).

The relay is also the subcommand ``python -m rtseg_ros.bench.node_measure relay HxW OUTPUTS DELAY_MS``.
"""
from __future__ import annotations

import array
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from sensor_msgs.msg import Image

from rtseg_ros.bench.peak import search_peak
from rtseg_ros.data.encodings import DIRECT
from rtseg_ros.common import ns_to_stamp, percentiles, rss_mib, stamp_to_ns
from rtseg_ros.ros.diagnostics import status_name
from rtseg_ros.ros.qos import INPUT_QOS, OUTPUT_QOS
from rtseg_ros.runtime.choices import OUTPUT_ENCODINGS
from rtseg_ros.topics import DIAGNOSTICS_TOPIC

INPUT_TOPIC = "/rtseg_bench/image"
TARGET = "rtseg_bench_target"


@dataclass
class Run:
    """What came back from one target at one size and rate."""

    latencies_ms: list[float] = field(default_factory=list)
    diagnostics: list[dict[str, str]] = field(default_factory=list)  # the node's, one per period
    rss_mb: list[float] = field(default_factory=list)  # target's resident memory after warm-up, at the end
    sent: int = 0
    sent_hz: float = 0.0  # the rate actually achieved: above a few hundred MB/s the publisher is the limit


def _now_stamp(msg: Image) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = ns_to_stamp(time.time_ns())


class Harness:
    """Publisher and receiver of one benchmark, in their own context and domain."""

    def __init__(self, domain_id: int):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("rtseg_bench", context=self.context)
        # Reliable: large best-effort frames between processes lose fragments with Fast DDS's default
        # transports, which would measure the network stack rather than the node.
        self.publisher = self.node.create_publisher(Image, INPUT_TOPIC, INPUT_QOS["reliable"])
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._arrivals: dict[str, dict[str, int]] = {}  # frame index → output → receive time (ns)
        self._diagnostics: list[dict[str, str]] = []

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def listen(self, outputs: tuple[str, ...]) -> None:
        for name in outputs:
            self.node.create_subscription(Image, f"/{TARGET}/{name}",
                                          lambda msg, info, name=name: self._arrived(msg, info, name), OUTPUT_QOS)
        self.node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, 10)

    def _arrived(self, msg: Image, info, name: str) -> None:
        # DDS's reception time, not this callback's: the harness's own publishing must not delay the clock
        received = info["received_timestamp"] or time.time_ns()
        with self._lock:
            self._arrivals.setdefault(msg.header.frame_id, {})[name] = received - stamp_to_ns(msg.header.stamp)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == status_name(f"/{TARGET}"):
                self._diagnostics.append({kv.key: kv.value for kv in status.values})

    def run(self, process: subprocess.Popen, height: int, width: int, rate_hz: float, frames: int, warmup: int,
            outputs: tuple[str, ...], timeout_s: float = 120.0) -> Run:
        """Publish ``warmup`` + ``frames`` frames at ``rate_hz`` to a started target; time what returns."""
        pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        msg = Image(height=height, width=width, encoding="rgb8", step=width * 3,
                    data=array.array("B", pixels.tobytes()))
        with self._lock:
            self._arrivals.clear()
        self._diagnostics.clear()
        # the target is up once a warm-up frame comes back
        deadline = time.monotonic() + timeout_s
        msg.header.frame_id = "ready"
        while "ready" not in self._arrivals:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"benchmark target did not answer (exit code {process.poll()})")
            _now_stamp(msg)
            self.publisher.publish(msg)
            time.sleep(0.2)
        result, period = Run(), 1.0 / rate_hz
        next_time = started = time.monotonic()
        for index in range(-warmup, frames):
            if index == 0:
                result.rss_mb.append(rss_mib(process.pid))
                self._diagnostics.clear()
                started = time.monotonic()
            next_time += period
            msg.header.frame_id = str(index)
            _now_stamp(msg)
            self.publisher.publish(msg)
            time.sleep(max(0.0, next_time - time.monotonic()))
        result.sent_hz = frames / (time.monotonic() - started)
        time.sleep(min(2.0, max(0.5, 10 * period)))  # let the last frames come back
        result.rss_mb.append(rss_mib(process.pid))
        result.sent = frames
        with self._lock:
            for index in range(frames):
                arrival = self._arrivals.get(str(index), {})
                if len(arrival) == len(outputs):  # every output of this frame came back
                    result.latencies_ms.append(max(arrival.values()) / 1e6)
        result.diagnostics = list(self._diagnostics)
        return result

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5)
        self._thread.join(timeout=5)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _start(command: list[str], domain_id: int) -> subprocess.Popen:
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id),
           "ROS_AUTOMATIC_DISCOVERY_RANGE": os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")}
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty target never blocks on it
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    process.log = log
    return process


def _output(process: subprocess.Popen) -> str:
    process.log.seek(0)
    return process.log.read()[-2000:]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _percentiles(values: list[float]) -> dict[str, float]:
    return {**percentiles(values), "max": float(max(values)) if values else float("nan")}


@contextmanager
def _running(name: str, command: list[str], domain_id: int):
    """The target process for the ``with`` block; stopped after it, and an error if it did not exit cleanly."""
    process = _start(command, domain_id)
    try:
        yield process
    finally:
        _stop(process)
        if process.returncode not in (0, -signal.SIGINT):
            raise RuntimeError(f"{name} exited with {process.returncode}: {_output(process)}")
        process.log.close()


def _run_target(name: str, command: list[str], harness: Harness, domain_id: int, *args) -> Run:
    with _running(name, command, domain_id) as process:
        return harness.run(process, *args)


def _median_of(diagnostics: list[dict[str, str]], key: str) -> float:
    """Median over diagnostics periods of one value (periods are equally long)."""
    values = [float(d[key]) for d in diagnostics if key in d]
    return float(np.median(values)) if values else float("nan")


def _node_command(outputs: tuple[str, ...], node_params: dict) -> list[str]:
    command = [sys.executable, "-m", "rtseg_ros.ros.segment_node", "--ros-args", "-r", f"__node:={TARGET}",
               "-r", f"image:={INPUT_TOPIC}"]
    for name in ("color", "overlay", "confidence"):
        command += ["-p", f"publish_{name}:={name in outputs}"]
    for key, value in node_params.items():
        command += ["-p", f"{key}:={value}"]
    return command


def measure(sizes, rate_hz: float, frames: int, warmup: int, outputs: tuple[str, ...], node_params: dict,
            domain_id: int, bare: bool = True) -> list[dict]:
    """One row per (size): relay and node at the same rate; see ``rtseg_ros.bench.node``."""
    harness = Harness(domain_id)
    harness.listen(outputs)
    rows = []
    try:
        for height, width in sizes:
            runs = {"bare": Run()}
            timing = (height, width, rate_hz, frames, warmup, outputs)
            runs["node"] = _run_target("node", _node_command(outputs, node_params), harness, domain_id, *timing)
            inside = {key: _median_of(runs["node"].diagnostics, key) for key in
                      ("segmenter_p50_ms", "processing_p50_ms", "overhead_p50_ms", "stage_decode_ms",
                       "stage_publish_ms")}
            if bare:
                hold_ms = inside["segmenter_p50_ms"] if np.isfinite(inside["segmenter_p50_ms"]) else 0.0
                runs["bare"] = _run_target("relay", _relay_command(height, width, outputs, hold_ms), harness,
                                           domain_id, *timing)
            relay_ms, node_ms = _percentiles(runs["bare"].latencies_ms), _percentiles(runs["node"].latencies_ms)
            # the relay held each frame for the Segmenter's time: what remains is transport
            bare_ms = {key: value - inside["segmenter_p50_ms"] for key, value in relay_ms.items()}
            rows.append({
                "size": f"{width}x{height}", "rate_hz": rate_hz, "frames": frames, "outputs": list(outputs),
                "bare_ms": bare_ms, "node_ms": node_ms, "segmenter_p50_ms": inside["segmenter_p50_ms"],
                "overhead_p50_ms": node_ms["p50"] - relay_ms["p50"],
                # the node's own accounting: receipt → outputs published, and what of it is neither the
                # Segmenter nor publishing
                "node_processing_p50_ms": inside["processing_p50_ms"],
                "node_own_overhead_p50_ms": inside["overhead_p50_ms"],
                "node_decode_ms": inside["stage_decode_ms"], "node_publish_ms": inside["stage_publish_ms"],
                "bare_received": len(runs["bare"].latencies_ms), "node_received": len(runs["node"].latencies_ms),
                "node_rss_mb_start": runs["node"].rss_mb[0], "node_rss_mb_end": runs["node"].rss_mb[1],
            })
    finally:
        harness.close()
    return rows


def _relay_command(height: int, width: int, outputs: tuple[str, ...], hold_ms: float) -> list[str]:
    return [sys.executable, "-m", "rtseg_ros.bench.node_measure", "relay", f"{height}x{width}", ",".join(outputs),
            f"{hold_ms:.3f}", "--ros-args", "-r", f"__node:={TARGET}", "-r", f"image:={INPUT_TOPIC}"]


def _peak_of(name: str, command: list[str], harness: Harness, domain_id: int, size: tuple[int, int],
             outputs: tuple[str, ...], probe_s: float, warmup: int, low_hz: float, high_hz: float,
             max_drop: float, bisections: int) -> dict:
    """Peak search over one started target; every probe reuses the process."""
    height, width = size
    probes, diagnostics = [], []

    def passes(process: subprocess.Popen, rate_hz: float) -> bool:
        frames = max(20, round(rate_hz * probe_s))
        run = harness.run(process, height, width, rate_hz, frames, warmup, outputs)
        diagnostics.extend(run.diagnostics)
        received = len(run.latencies_ms)
        # a publisher that cannot reach the rate measures itself, not the target: that ends the search too
        result = ("publisher" if run.sent_hz < 0.95 * rate_hz else
                  "drops" if received < (1 - max_drop) * frames else "pass")
        probes.append({"rate_hz": rate_hz, "sent_hz": run.sent_hz, "frames": frames, "received": received,
                       "drop_pct": 100.0 * (1 - received / frames), "latency_ms": _percentiles(run.latencies_ms),
                       "result": result})
        return result == "pass"

    with _running(name, command, domain_id) as process:
        good, bad = search_peak(lambda rate_hz: passes(process, rate_hz), low_hz, high_hz, bisections)
    # what stopped the search: frames lost, the publisher, or the end of the searched range
    limited_by = next((p["result"] for p in probes if p["rate_hz"] == bad), "range")
    return {"peak_hz": good, "limited_by": limited_by, "probes": probes,
            "segmenter_p50_ms": _median_of(diagnostics, "segmenter_p50_ms")}


def find_peak(size: tuple[int, int], outputs: tuple[str, ...], node_params: dict, domain_id: int,
              probe_s: float, warmup: int, low_hz: float, high_hz: float, max_drop: float,
              bisections: int, bare: bool = True) -> dict:
    """The highest input rate at which the node returns all but ``max_drop`` of the frames (ros2_benchmark's
    peak throughput), and beside it the relay's (bare transport, each frame held for the node's Segmenter
    p50). Rates double from ``low_hz`` until a probe loses too many (or ``high_hz`` is passed), then
    ``bisections`` geometric bisections narrow the bracket."""
    harness = Harness(domain_id)
    harness.listen(outputs)
    search = (size, outputs, probe_s, warmup, low_hz, high_hz, max_drop, bisections)
    try:
        node = _peak_of("node", _node_command(outputs, node_params), harness, domain_id, *search)
        relay = None
        if bare:
            hold_ms = node["segmenter_p50_ms"] if np.isfinite(node["segmenter_p50_ms"]) else 0.0
            relay = _peak_of("relay", _relay_command(*size, outputs, hold_ms), harness, domain_id, *search)
    finally:
        harness.close()
    return {"size": f"{size[1]}x{size[0]}", "max_drop_pct": 100 * max_drop, "node": node, "bare": relay}


# -- the relay: bare rclpy transport of the same messages ------------------------------------------------
def relay_main(argv: list[str]) -> int:
    size, outputs, delay_s = argv[0], argv[1].split(","), float(argv[2]) / 1e3
    height, width = map(int, size.split("x"))
    rclpy.init(args=["rtseg_bench_relay", *argv[3:]])
    node = rclpy.create_node("rtseg_bench_relay")
    publishers = {name: node.create_publisher(Image, f"~/{name}", OUTPUT_QOS) for name in outputs}
    messages = {}
    for name in outputs:
        encoding = OUTPUT_ENCODINGS[name]
        step = width * DIRECT[encoding].channels
        messages[name] = Image(height=height, width=width, encoding=encoding, step=step,
                               data=array.array("B", bytes(step * height)))

    def relay(image: Image) -> None:
        # transport only: outputs are prebuilt, so copying results into messages counts as node overhead
        time.sleep(delay_s)  # stands in for the Segmenter
        for name in outputs:
            out = messages[name]
            out.header = image.header
            publishers[name].publish(out)

    node.create_subscription(Image, "image", relay, INPUT_QOS["reliable"])
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "relay":
        sys.exit(relay_main(sys.argv[2:]))
    sys.exit("usage: python -m rtseg_ros.bench.node_measure relay HxW OUTPUTS DELAY_MS [--ros-args ...]")
