"""``segment_node``: camera images in; labels, colour, overlay, confidence and camera_info out.

Latest frame wins: the subscription callback only puts the newest message into a one-frame slot
(``runtime/latest.py``, counting the one it replaces), from which a worker thread takes it, paced by
``max_fps``, segments it and publishes. Inference therefore never works through a queue of stale frames
and never blocks the executor, which stays free for parameters, QoS events and diagnostics. Every output
carries the input's header unchanged; outputs nobody subscribes to are not computed. Topics (relative to
the node):

    in   image (sensor_msgs/Image) or image/compressed (transport:=compressed); camera_info (optional,
         by default the sibling of the image topic, as image_transport does)
    out  ~/labels (mono8 train ids), ~/color (rgb8), ~/overlay (rgb8), ~/confidence (mono8, off by default),
         ~/camera_info (matches the published resolution), ~/class_info (std_msgs/String JSON, transient
         local), /diagnostics (about once per second)
"""
from __future__ import annotations

import functools
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_policy_name_from_kind
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from rtseg_ros.common import stamp_to_ns
from rtseg_ros.data.encodings import BadFrame, FrameDecoder
from rtseg_ros.models import pretrained
from rtseg_ros.ros import params
from rtseg_ros.ros.conversions import class_info_json, fill_image, scale_camera_info
from rtseg_ros.ros.diagnostics import (FrameStats, Limits, SequenceGaps, ThrottledLog, segmentation_status,
                                       to_array)
from rtseg_ros.ros.node_main import node_main
from rtseg_ros.ros.qos import DIAGNOSTICS_QOS, INPUT_QOS, LATCHED_QOS, OUTPUT_QOS
from rtseg_ros.runtime.choices import OUTPUT_ENCODINGS as ENCODING, OUTPUTS as IMAGE_OUTPUTS, resolve_device
from rtseg_ros.runtime.latest import LatestSlot
from rtseg_ros.runtime.segmenter import STAGES, Segmenter
from rtseg_ros.topics import DIAGNOSTICS_TOPIC

FLAG = {"color": "publish_color", "overlay": "publish_overlay", "confidence": "publish_confidence"}

# Start-up failures the user can fix; reported as one line, no traceback.
STARTUP_ERRORS = (ValueError, KeyError, FileNotFoundError, RuntimeError, ImportError, ParameterException)


class StartupError(RuntimeError):
    pass


@dataclass
class Received:
    """A frame message as the callback hands it to the worker."""

    msg: Image | CompressedImage
    received_ns: int  # monotonic clock at receipt


def _message(exc: BaseException) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


class SegmentNode(Node):
    """The segmentation node. Runs in-process too: ``SegmentNode(context=..., parameter_overrides=[...])``
    added to any executor; ``destroy_node()`` stops its worker thread."""

    def __init__(self, node_name: str = "segment_node", *, context=None, namespace: str | None = None,
                 cli_args: list[str] | None = None, parameter_overrides: list[Parameter] | None = None,
                 use_global_arguments: bool = True):
        super().__init__(node_name, context=context, namespace=namespace, cli_args=cli_args,
                         parameter_overrides=parameter_overrides, use_global_arguments=use_global_arguments)
        self._worker = None
        try:
            self.config = self._declare_parameters()
            self.segmenter = self._load_segmenter()
        except STARTUP_ERRORS as exc:
            super().destroy_node()
            raise StartupError(_message(exc)) from None
        self.live = {p.name: self.config[p.name] for p in params.PARAMETERS if p.live}
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self.stats = FrameStats()
        self.throttle = ThrottledLog()
        self._gaps = SequenceGaps()
        self.decoder = FrameDecoder(self.config["max_input_pixels"])
        self.latest = LatestSlot(max_fps=self.live["max_fps"])  # callback → worker; latest frame wins
        self._image: str | None = None  # the last frame segmented, as "WxH encoding", for diagnostics
        self._network_input = self.segmenter.input_size  # the last frame's network input (H, W)
        self._camera_info: CameraInfo | None = None
        self._qos_problems: dict[str, str] = {}
        self._out_msgs = {name: Image() for name in IMAGE_OUTPUTS}

        self._create_topics()
        self._publish_class_info()
        self._diagnostics_timer = self.create_timer(self.config["diagnostics_period"], self._publish_diagnostics,
                                                    clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._worker = threading.Thread(target=self._work, name=f"{node_name}-worker", daemon=True)
        self._worker.start()
        self._log_startup()

    # -- start-up ------------------------------------------------------------------------------------
    def _declare_parameters(self) -> dict:
        for param in params.PARAMETERS:
            self.declare_parameter(param.name, param.default, params.descriptor(param))
        values = {p.name: self.get_parameter(p.name).value for p in params.PARAMETERS}
        problems = params.check_config(values)
        if problems:
            raise ValueError("invalid parameters: " + "; ".join(problems))
        return params.normalise(values)

    def _load_segmenter(self) -> Segmenter:
        c = self.config
        if c["cpu_threads"]:
            torch.set_num_threads(c["cpu_threads"])
        device = resolve_device(c["device"])
        input_size = (c["input_height"], c["input_width"]) if c["input_width"] else None
        model, weights = pretrained.choose(c["model"], c["weights"])
        segmenter = Segmenter(model, weights=weights, device=device, backend=c["backend"],
                              precision=c["precision"], input_size=input_size, keep_aspect=c["keep_aspect"],
                              output_resolution=c["output_resolution"], upsample=c["upsample"], dataset=c["dataset"],
                              engine_cache_dir=c["engine_cache_dir"] or None, cpu_threads=c["cpu_threads"],
                              openvino_device=c["openvino_device"])
        if segmenter.device.type == "cuda" and segmenter.backend_name == "torch":
            # A camera's frames keep one size, so the network runs one fixed shape (input_size, or the frame
            # scaled into it): cuDNN's autotuner times each convolution once for it, on the first frame of a
            # new size (slower, once), and then runs the fastest algorithm. This process is the node's own.
            torch.backends.cudnn.benchmark = True
            self.get_logger().info("cuDNN autotuning on (one network shape per frame size): the first frame "
                                   "of each new size is slower, once")
        # Build the engine now (OpenVINO/TensorRT compile, buffers, CUDA graph), before the camera is
        # subscribed, for frames of the network's own size: a camera at that size, and every evaluation bag,
        # gets its first frame answered at once instead of dropping the frames that arrive during a compile.
        started = time.monotonic()
        height, width = segmenter.input_size
        segmenter(np.zeros((height, width, 3), np.uint8), "rgb8")
        self.get_logger().info(f"engine ready for {width}x{height} frames in {time.monotonic() - started:.1f} s")
        return segmenter

    def _create_topics(self) -> None:
        c = self.config
        input_qos = INPUT_QOS[c["input_qos"]]
        if c["transport"] == "compressed":
            # image_transport naming: the compressed stream of base topic T is T/compressed.
            self.input_topic, input_type = self.resolve_topic_name("image") + "/compressed", CompressedImage
        else:
            self.input_topic, input_type = self.resolve_topic_name("image"), Image
        self._input = (input_type, self.input_topic, input_qos)
        self.image_sub = self._subscribe_input(*self._input) if c["enabled"] else None
        self.camera_info_topic = self._camera_info_topic()
        self.camera_info_sub = self.create_subscription(CameraInfo, self.camera_info_topic, self._on_camera_info,
                                                        input_qos)

        def output(name, msg_type, qos):
            events = PublisherEventCallbacks(incompatible_qos=functools.partial(self._on_output_qos, name))
            return self.create_publisher(msg_type, f"~/{name}", qos, event_callbacks=events)

        self.image_pubs = {name: output(name, Image, OUTPUT_QOS) for name in IMAGE_OUTPUTS}
        self.camera_info_pub = output("camera_info", CameraInfo, OUTPUT_QOS)
        self.class_info_pub = output("class_info", String, LATCHED_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)

    def _subscribe_input(self, msg_type, topic: str, qos: QoSProfile):
        # Frames lost in transport are counted from sequence gaps in _on_image, not from DDS sample-lost
        # events, which count fragments and repaired samples too (286 "lost" for 200 frames sent, seen here).
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_input_qos)
        return self.create_subscription(msg_type, topic, self._on_image, qos, event_callbacks=events)

    def _camera_info_topic(self) -> str:
        remapped = self.resolve_topic_name("camera_info")
        if remapped != self.resolve_topic_name("camera_info", only_expand=True):
            return remapped
        image = self.resolve_topic_name("image")
        return image.rsplit("/", 1)[0] + "/camera_info"

    def _publish_class_info(self) -> None:
        seg = self.segmenter
        text = class_info_json(seg.dataset.to_dict(), seg.loaded.name, seg.loaded.weights_note, seg.random_weights,
                               seg.backend_name, seg.precision)
        self.class_info_pub.publish(String(data=text))

    def _log_startup(self) -> None:
        log, seg, c = self.get_logger(), self.segmenter, self.config
        facts = seg.describe()
        log.info(f"model {facts['model']} ({facts['weights']}), backend {facts['backend']} "
                 f"({facts['backend_reason']}) on {facts['device']} "
                 f"{facts['precision']}, network input {facts['input_size']} (keep_aspect={c['keep_aspect']}); "
                 f"input {self.input_topic} ({c['input_qos']}); outputs {self.resolve_topic_name('~/labels')} and "
                 f"siblings at {c['output_resolution']} resolution")
        note = pretrained.startup_note(c["model"], c["weights"])
        if note:
            log.info(note)
        if seg.random_weights:
            log.warning(f"weights:={pretrained.RANDOM}: model {facts['model']} runs with RANDOM initialisation; "
                        "its labels are meaningless (plumbing checks only). Set weights:=/path/to/checkpoint.pt, "
                        f"leave weights empty for the model's shipped weights, or weights:={pretrained.DEFAULT}")

    # -- parameters ----------------------------------------------------------------------------------
    def _check_parameters(self, changed: list[Parameter]) -> SetParametersResult:
        for param in changed:
            reason = params.check_live_change(param.name, param.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, changed: list[Parameter]) -> None:
        updates = params.normalise({p.name: p.value for p in changed if p.name in self.live})
        self.live = {**self.live, **updates}  # one assignment: the worker sees old or new, never half
        if "max_fps" in updates:
            self.latest.set_max_fps(updates["max_fps"])  # a worker waiting for its turn re-plans
        for name, value in updates.items():
            self.get_logger().info(f"{name} set to {value}")
        if "enabled" in updates:
            self._set_enabled(updates["enabled"])

    def _set_enabled(self, enabled: bool) -> None:
        """Subscribe to the camera or let go of it: a disabled node costs the camera and the network nothing."""
        if enabled and self.image_sub is None:
            self.image_sub = self._subscribe_input(*self._input)
        elif not enabled and self.image_sub is not None:
            self.destroy_subscription(self.image_sub)
            self.image_sub = None
            self.latest.clear()

    # -- input (executor thread) ---------------------------------------------------------------------
    def _on_image(self, msg, info: dict) -> None:
        # Two arguments: rclpy (Humble on) passes the message info, whose sequence numbers show frames lost on
        # the way. A plain dict: rclpy.subscription.MessageInfo, its type, exists only from Kilted on.
        gid = info.get("publisher_gid") or {}
        lost = self._gaps.missing(bytes(gid.get("data", b"")), info.get("publication_sequence_number"))
        if lost:
            self.stats.count("lost", lost)
        replaced = self.latest.put(Received(msg, time.monotonic_ns()))
        self.stats.received(replaced)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_input_qos(self, info) -> None:
        policy = qos_policy_name_from_kind(info.last_policy_kind)
        hint = ("the publisher is best effort (as cameras usually are) but input_qos is "
                f"{self.config['input_qos']}: set input_qos:=sensor_data") if policy == "RELIABILITY" else \
            "set input_qos:=sensor_data, which accepts every publisher"
        problem = (f"a publisher on {self.input_topic} offers QoS incompatible with input_qos="
                   f"{self.config['input_qos']} (policy {policy}); no frames arrive from it: {hint}")
        self._qos_problems["input"] = problem
        self.get_logger().error(problem)

    def _on_output_qos(self, name: str, info) -> None:
        policy = qos_policy_name_from_kind(info.last_policy_kind)
        qos = LATCHED_QOS if name == "class_info" else OUTPUT_QOS
        problem = (f"a subscriber of {self.resolve_topic_name('~/' + name)} requests QoS this node does not offer "
                   f"(policy {policy}); it gets nothing. The topic is {qos.reliability.name.lower()}, "
                   f"{qos.durability.name.lower()}: subscribe with a matching or weaker {policy.lower()}")
        self._qos_problems[name] = problem
        self.get_logger().warning(problem)

    # -- the worker ----------------------------------------------------------------------------------
    def _work(self) -> None:
        while (frame := self.latest.take()) is not None:  # None: the slot was closed (shutdown)
            try:
                self._process(frame.msg, frame.received_ns)
            except Exception as exc:  # never let one frame end the worker
                self._reject("inference", f"{type(exc).__name__}: {exc}")

    def _wanted_outputs(self) -> tuple[str, ...]:
        live = self.live
        return tuple(name for name in IMAGE_OUTPUTS
                     if (name == "labels" or live[FLAG[name]]) and self.image_pubs[name].get_subscription_count())

    def _process(self, msg, received_ns: int) -> None:
        t0 = time.perf_counter()
        stamp_ns = stamp_to_ns(msg.header.stamp)
        max_age_ms = self.live["max_age_ms"]
        if max_age_ms and stamp_ns and (self.get_clock().now().nanoseconds - stamp_ns) / 1e6 > max_age_ms:
            self.stats.count("stale")  # too old to act on by the time inference would start
            return
        try:
            image, encoding = self.decoder.compressed(msg) if isinstance(msg, CompressedImage) \
                else self.decoder.image(msg)
        except BadFrame as exc:
            self._reject(exc.cause, str(exc))
            return
        outputs = self._wanted_outputs()
        if not outputs:
            self.stats.count("skipped_no_subscribers")
            return
        t1 = time.perf_counter()
        result = self.segmenter(image, encoding, outputs=outputs, overlay_alpha=self.live["overlay_alpha"])
        t2 = time.perf_counter()
        as_sent = msg.format if isinstance(msg, CompressedImage) else msg.encoding
        image_text = f"{image.shape[1]}x{image.shape[0]} {as_sent}"
        if result.reallocated and self._image is not None:
            self._log_reallocation(self._image, image_text, outputs)
        self._image, self._network_input = image_text, result.network_hw
        header = msg.header
        for name in outputs:
            out = fill_image(self._out_msgs[name], getattr(result, name), ENCODING[name], header)
            self.image_pubs[name].publish(out)
        if self._camera_info is not None and self.camera_info_pub.get_subscription_count():
            info = scale_camera_info(self._camera_info, image.shape[:2], result.output_hw, header)
            self.camera_info_pub.publish(info)
        t3 = time.perf_counter()

        latency_ms = None
        if stamp_ns:
            latency_ms = (self.get_clock().now().nanoseconds - stamp_ns) / 1e6
        else:
            self.stats.count("unstamped")
        stages = {"decode": 1e3 * (t1 - t0), **{s: result.timings_ms.get(s, 0.0) for s in STAGES},
                  "publish": 1e3 * (t3 - t2)}
        self.stats.published(latency_ms, (time.monotonic_ns() - received_ns) / 1e6, stages, 1e3 * (t2 - t1))

    def _log_reallocation(self, before: str, now: str, outputs: tuple[str, ...]) -> None:
        # Throttled: a stream alternating between sizes reallocates on every frame, but says so once per period.
        held = self.throttle.check("reallocation")
        if held is not None:
            more = f" ({held} more since the last report)" if held else ""
            change = f"input changed from {before} to {now}" if now != before else \
                f"requested outputs changed to {', '.join(outputs)}"
            self.get_logger().info(f"{change}: buffers reallocated{more}")

    def _reject(self, cause: str, message: str) -> None:
        self.stats.error(cause)
        held = self.throttle.check(cause)
        if held is not None:
            more = f" ({held} more since the last report)" if held else ""
            self.get_logger().warning(f"skipping frame ({cause}): {message}{more}")

    # -- diagnostics ---------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        live = self.live
        report = self.stats.report(Limits(live["latency_warn_ms"], live["latency_error_ms"],
                                          live["errors_warn_ratio"], live["errors_error_ratio"]))
        status = segmentation_status(
            report, node_fqn=self.get_fully_qualified_name(), segmenter_facts=self.segmenter.describe(),
            random_weights=self.segmenter.random_weights, config=self.config, live=live,
            input_topic=self.input_topic, qos_problems=self._qos_problems,
            frames_received=self.stats.totals["received"], network_input=self._network_input, image=self._image)
        self.diagnostics_pub.publish(to_array(status, self.get_clock().now().to_msg()))

    # -- shutdown ------------------------------------------------------------------------------------
    def destroy_node(self) -> None:
        if self._worker is not None:
            self.latest.close()
            self._worker.join(timeout=10.0)
        super().destroy_node()


def spin(node: SegmentNode) -> int:
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    return node_main(argv, "segment_node", "ROS 2 real-time semantic segmentation node.", __doc__,
                     "segment_node --ros-args -p model:=farsee -r image:=/camera/image_raw", params.PARAMETERS,
                     SegmentNode, (StartupError,), spin)


if __name__ == "__main__":
    sys.exit(main())
