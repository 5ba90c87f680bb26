"""``rtseg-bench --lifecycle`` and ``--points``: segment_node as a robot stack runs it, in its own process.

A camera is simulated here: colour frames at a fixed rate (with a registered 16UC1 depth image of the same
stamp and a camera_info), published all the time, as a driver does whatever the node's state.

  --lifecycle  ``segment_node --managed`` walked through unconfigured → configure → activate →
               deactivate → cleanup; in each state, after it settles, the node's resident memory, its CPU
               use (share of one core, from /proc) and the frames it answered per second
  --points     the node with ``depth:=`` set, once with only ``~/labels`` subscribed and once with
               ``~/points`` too, same frames: latency from frame stamp to labels, CPU, answered frames
"""
from __future__ import annotations

import array
import os
import subprocess
import sys
import threading
import time

import numpy as np
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from rtseg_ros.bench import domain_id as bench_domain
from rtseg_ros.bench.node_measure import _running
from rtseg_ros.common import ns_to_stamp, percentiles, rss_mib, stamp_to_ns
from rtseg_ros.ros.qos import INPUT_QOS, OUTPUT_QOS

TARGET = "rtseg_bench_stack"
CAMERA = "/rtseg_bench_camera"
TRANSITIONS = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP}
# (state label, transition into it); the first is the state the managed node starts in
LIFECYCLE_PLAN = (("unconfigured", None), ("inactive", "configure"), ("active", "activate"),
                  ("inactive again", "deactivate"), ("unconfigured again", "cleanup"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Camera:
    """Publishes colour, depth and camera_info at ``rate_hz`` from a thread; counts and times the labels and
    points that come back."""

    def __init__(self, domain_id: int, size: tuple[int, int], rate_hz: float):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("rtseg_bench_camera", context=self.context)
        qos = INPUT_QOS["reliable"]
        self._pubs = {name: self.node.create_publisher(kind, f"{CAMERA}/{name}", qos)
                      for name, kind in (("image", Image), ("depth", Image), ("camera_info", CameraInfo))}
        height, width = size
        pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        self._image = Image(height=height, width=width, encoding="rgb8", step=width * 3,
                            data=array.array("B", pixels.tobytes()))
        depth = np.full((height, width), 2500, np.uint16)
        self._depth = Image(height=height, width=width, encoding="16UC1", step=width * 2,
                            data=array.array("B", depth.tobytes()))
        f = 0.8 * width
        self._info = CameraInfo(height=height, width=width, k=[f, 0.0, width / 2, 0.0, f, height / 2, 0.0, 0.0, 1.0])
        self._period = 1.0 / rate_hz
        self._lock = threading.Lock()
        self.latencies_ms: list[float] = []
        self.points = 0
        self._subscriptions = []
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._running = True
        self._threads = [threading.Thread(target=self._spin, daemon=True),
                         threading.Thread(target=self._publish, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def _publish(self) -> None:
        next_time = time.monotonic()
        while self._running:
            stamp = ns_to_stamp(time.time_ns())
            for msg in (self._image, self._depth, self._info):
                msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
                msg.header.frame_id = "camera_color_optical_frame"
            self._pubs["depth"].publish(self._depth)
            self._pubs["camera_info"].publish(self._info)
            self._pubs["image"].publish(self._image)
            next_time += self._period
            time.sleep(max(0.0, next_time - time.monotonic()))

    def listen(self, points: bool) -> None:
        """Subscribe to the target's labels (and points); drops earlier subscriptions."""
        for sub in self._subscriptions:
            self.node.destroy_subscription(sub)
        self._subscriptions = [self.node.create_subscription(Image, f"/{TARGET}/labels", self._on_labels, OUTPUT_QOS)]
        if points:
            self._subscriptions.append(self.node.create_subscription(PointCloud2, f"/{TARGET}/points",
                                                                     self._on_points, OUTPUT_QOS))

    def _on_labels(self, msg: Image) -> None:
        with self._lock:
            self.latencies_ms.append((time.time_ns() - stamp_to_ns(msg.header.stamp)) / 1e6)

    def _on_points(self, msg: PointCloud2) -> None:
        with self._lock:
            self.points += 1

    def take(self) -> tuple[list[float], int]:
        with self._lock:
            taken = self.latencies_ms, self.points
            self.latencies_ms, self.points = [], 0
        return taken

    def transition(self, label: str, timeout_s: float = 300.0) -> bool:
        client = self.node.create_client(ChangeState, f"/{TARGET}/change_state")
        try:
            if not client.wait_for_service(timeout_sec=60.0):
                raise RuntimeError(f"segment_node --managed offers no /{TARGET}/change_state service")
            future = client.call_async(ChangeState.Request(transition=Transition(id=TRANSITIONS[label])))
            deadline = time.monotonic() + timeout_s
            while not future.done():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{label} did not finish within {timeout_s:.0f} s")
                time.sleep(0.05)
            return future.result().success
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self._running = False
        self.executor.shutdown(timeout_sec=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _node_command(node_params: dict, managed: bool) -> list[str]:
    command = [sys.executable, "-m", "rtseg_ros.ros.segment_node", *(["--managed"] if managed else []),
               "--ros-args", "-r", f"__node:={TARGET}", "-r", f"image:={CAMERA}/image", "-p", "input_qos:=reliable"]
    for key, value in node_params.items():
        command += ["-p", f"{key}:={value}"]
    return command


def _window(process: subprocess.Popen, camera: Camera, seconds: float) -> dict:
    """Resident memory, CPU share and answers of the target over ``seconds``."""
    camera.take()
    cpu0, wall0 = cpu_seconds(process.pid), time.monotonic()
    time.sleep(seconds)
    cpu1, wall1 = cpu_seconds(process.pid), time.monotonic()
    latencies, points = camera.take()
    p = percentiles(latencies)
    return {"rss_mb": round(rss_mib(process.pid), 1), "cpu_percent": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
            "answered_hz": round(len(latencies) / (wall1 - wall0), 2), "points_hz": round(points / (wall1 - wall0), 2),
            "latency_p50_ms": round(p["p50"], 1), "latency_p95_ms": round(p["p95"], 1)}


def bench_lifecycle(node_params: dict, size=(480, 640), rate_hz: float = 15.0, seconds: float = 10.0,
                    settle_s: float = 3.0, domain_id: int | None = None) -> list[dict]:
    """One row per state of ``LIFECYCLE_PLAN``: state, transition time, RSS, CPU, answered frames."""
    domain = bench_domain(domain_id)
    camera = Camera(domain, size, rate_hz)
    rows = []
    try:
        camera.listen(points=False)
        with _running("segment_node --managed", _node_command(node_params, managed=True), domain) as process:
            time.sleep(settle_s)
            for state, transition in LIFECYCLE_PLAN:
                took = None
                if transition is not None:
                    started = time.monotonic()
                    if not camera.transition(transition):
                        raise RuntimeError(f"segment_node refused {transition} (see its log)")
                    took = round(time.monotonic() - started, 2)
                time.sleep(settle_s)
                rows.append({"state": state, "transition": transition, "transition_s": took,
                             "size": f"{size[1]}x{size[0]}", "rate_hz": rate_hz, **_window(process, camera, seconds)})
    finally:
        camera.close()
    return rows


def bench_points(node_params: dict, size=(480, 640), rate_hz: float = 10.0, seconds: float = 15.0,
                 settle_s: float = 5.0, domain_id: int | None = None) -> list[dict]:
    """Two rows, same node, same frames: ``~/labels`` only, then ``~/labels`` and ``~/points``."""
    domain = bench_domain(domain_id)
    camera = Camera(domain, size, rate_hz)
    params = {**node_params, "depth": f"{CAMERA}/depth"}
    rows = []
    try:
        with _running("segment_node", _node_command(params, managed=False), domain) as process:
            for points in (False, True):
                camera.listen(points)
                time.sleep(settle_s)
                rows.append({"outputs": "labels + points" if points else "labels", "size": f"{size[1]}x{size[0]}",
                             "rate_hz": rate_hz, **_window(process, camera, seconds)})
    finally:
        camera.close()
    return rows


def lifecycle_table(rows: list[dict]) -> str:
    lines = ["| state | transition into it | RSS | CPU (one core = 100 %) | frames answered |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        into = f"{r['transition']} ({r['transition_s']:.1f} s)" if r["transition"] else "start"
        lines.append(f"| {r['state']} | {into} | {r['rss_mb']:.0f} MiB | {r['cpu_percent']:.0f} % | "
                     f"{r['answered_hz']:.1f} /s |")
    return "\n".join(lines)


def points_table(rows: list[dict]) -> str:
    lines = ["| subscribed | frames answered | points clouds | labels latency p50 / p95 | CPU | RSS |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['outputs']} | {r['answered_hz']:.1f} /s | {r['points_hz']:.1f} /s | "
                     f"{r['latency_p50_ms']:.1f} / {r['latency_p95_ms']:.1f} ms | {r['cpu_percent']:.0f} % | "
                     f"{r['rss_mb']:.0f} MiB |")
    return "\n".join(lines)
