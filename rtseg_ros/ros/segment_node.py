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
    with depth:=<topic> (a depth image registered to the camera, 16UC1 mm or 32FC1 m): ~/points
         (sensor_msgs/PointCloud2, x y z label confidence in the camera's optical frame, with the frame's header)

``--managed`` (launch: managed:=true) makes it a lifecycle node (``ManagedSegmentNode``): it starts
unconfigured; configure loads the weights and builds the engine, activate subscribes and publishes,
deactivate lets go of the camera and keeps the model, cleanup frees the model and the engine.
"""
from __future__ import annotations

import functools
import gc
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.task import Future
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_policy_name_from_kind
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import String

from rtseg_ros.common import stamp_to_ns
from rtseg_ros.data.encodings import BadFrame, FrameDecoder
from rtseg_ros.models import pretrained
from rtseg_ros.ros import params
from rtseg_ros.ros.conversions import class_info_json, fill_image, fill_points, scale_camera_info
from rtseg_ros.ros.diagnostics import (FrameStats, Limits, SequenceGaps, ThrottledLog, segmentation_status,
                                       to_array)
from rtseg_ros.ros.node_main import node_main
from rtseg_ros.ros.qos import DIAGNOSTICS_QOS, INPUT_QOS, LATCHED_QOS, OUTPUT_QOS
from rtseg_ros.runtime.choices import OUTPUT_ENCODINGS, OUTPUTS, resolve_device
from rtseg_ros.runtime.latest import LatestSlot
from rtseg_ros.runtime.points import BadDepth, back_project, depth_metres, fit_depth, parse_classes
from rtseg_ros.runtime.segmenter import STAGES, Segmenter
from rtseg_ros.topics import DIAGNOSTICS_TOPIC

FLAG = {"color": "publish_color", "overlay": "publish_overlay", "confidence": "publish_confidence"}
POINT_INPUTS = ("labels", "confidence")  # what ~/points needs from the Segmenter

DEPTH_QUEUE = 10  # depth images kept for matching to colour frames (a third of a second at 30 Hz)

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
                 use_global_arguments: bool = True, managed: bool = False):
        super().__init__(node_name, context=context, namespace=namespace, cli_args=cli_args,
                         parameter_overrides=parameter_overrides, use_global_arguments=use_global_arguments)
        self._worker = None
        self._active = False
        self.segmenter: Segmenter | None = None  # None while unconfigured (managed)
        self.live: dict = {}
        for param in params.PARAMETERS:
            self.declare_parameter(param.name, param.default, params.descriptor(param))
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        if managed:
            return  # the lifecycle transitions (ManagedSegmentNode) do the rest
        try:
            self._configure()
        except STARTUP_ERRORS as exc:
            super().destroy_node()
            raise StartupError(_message(exc)) from None
        self._activate()

    # -- the four phases: configure, activate, deactivate, cleanup -------------------------------------
    def _configure(self) -> None:
        """Read the parameters, load the weights, build the engine (the slow part) and create the publishers."""
        self.config = self._read_parameters()
        segmenter = self._load_segmenter()
        self.points_classes = parse_classes(self.config["points_classes"], segmenter.dataset.class_names)
        self.segmenter = segmenter
        self.live = {p.name: self.config[p.name] for p in params.PARAMETERS if p.live}
        self.stats = FrameStats()
        self.throttle = ThrottledLog()
        self._gaps = SequenceGaps()
        self.decoder = FrameDecoder(self.config["max_input_pixels"])
        self.latest = LatestSlot(max_fps=self.live["max_fps"])  # callback → worker; latest frame wins
        self._image: str | None = None  # the last frame segmented, as "WxH encoding", for diagnostics
        self._network_input = segmenter.input_size  # the last frame's network input (H, W)
        self._camera_info: CameraInfo | None = None
        self._depths: deque[Image] = deque(maxlen=DEPTH_QUEUE)
        self._depths_lock = threading.Lock()
        self._qos_problems: dict[str, str] = {}
        self._out_msgs = {name: Image() for name in OUTPUTS}
        self._points_msg = PointCloud2()
        self._create_publishers()
        self._publish_class_info()

    def _activate(self) -> None:
        """Subscribe to the camera and start the worker and /diagnostics."""
        self.latest = LatestSlot(max_fps=self.live["max_fps"])
        self._create_subscriptions()
        self._diagnostics_timer = self.create_timer(self.config["diagnostics_period"], self._publish_diagnostics,
                                                    clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._worker = threading.Thread(target=self._work, name=f"{self.get_name()}-worker", daemon=True)
        self._worker.start()
        self._active = True
        self._log_startup()

    def _deactivate(self) -> None:
        """Let go of the camera and stop computing; the model, engine and publishers stay."""
        self._active = False
        for sub in (self.image_sub, self.camera_info_sub, self.depth_sub):
            if sub is not None:
                self.destroy_subscription(sub)
        self.image_sub = self.camera_info_sub = self.depth_sub = None
        self._stop_worker()
        self.destroy_timer(self._diagnostics_timer)
        with self._depths_lock:
            self._depths.clear()

    def _cleanup(self) -> None:
        """Free the model, the engine and their buffers, and the publishers."""
        for pub in (*self.image_pubs.values(), self.camera_info_pub, self.class_info_pub, self.points_pub,
                    self.diagnostics_pub):
            self.destroy_publisher(pub)
        on_cuda = self.segmenter.device.type == "cuda"
        self.segmenter = None
        gc.collect()
        if on_cuda:
            torch.cuda.empty_cache()

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self.latest.close()
            self._worker.join(timeout=10.0)
            self._worker = None

    # -- start-up ------------------------------------------------------------------------------------
    def _read_parameters(self) -> dict:
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

    def _create_publishers(self) -> None:
        def output(name, msg_type, qos):
            events = PublisherEventCallbacks(incompatible_qos=functools.partial(self._on_output_qos, name))
            return self.create_publisher(msg_type, f"~/{name}", qos, event_callbacks=events)

        self.image_pubs = {name: output(name, Image, OUTPUT_QOS) for name in OUTPUTS}
        self.camera_info_pub = output("camera_info", CameraInfo, OUTPUT_QOS)
        self.class_info_pub = output("class_info", String, LATCHED_QOS)
        self.points_pub = output("points", PointCloud2, OUTPUT_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)

    def _create_subscriptions(self) -> None:
        c = self.config
        input_qos = INPUT_QOS[c["input_qos"]]
        if c["transport"] == "compressed":
            # image_transport naming: the compressed stream of base topic T is T/compressed.
            self.input_topic, input_type = self.resolve_topic_name("image") + "/compressed", CompressedImage
        else:
            self.input_topic, input_type = self.resolve_topic_name("image"), Image
        self._input = (input_type, self.input_topic, input_qos)
        self.image_sub = self._subscribe_input(*self._input) if self.live["enabled"] else None
        self.camera_info_topic = self._camera_info_topic()
        self.camera_info_sub = self.create_subscription(CameraInfo, self.camera_info_topic, self._on_camera_info,
                                                        input_qos)
        self.depth_sub = self.create_subscription(Image, c["depth"], self._on_depth, input_qos) \
            if c["depth"] else None

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
        # Unconfigured (managed), every parameter may change: configure reads them all.
        check = params.check_live_change if self.segmenter is not None else params.check_unconfigured_change
        for param in changed:
            reason = check(param.name, param.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, changed: list[Parameter]) -> None:
        if self.segmenter is None:
            return  # unconfigured: configure reads the values
        updates = params.normalise({p.name: p.value for p in changed if p.name in self.live})
        self.live = {**self.live, **updates}  # one assignment: the worker sees old or new, never half
        if "max_fps" in updates:
            self.latest.set_max_fps(updates["max_fps"])  # a worker waiting for its turn re-plans
        for name, value in updates.items():
            self.get_logger().info(f"{name} set to {value}")
        if "enabled" in updates and self._active:
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

    def _on_depth(self, msg: Image) -> None:
        with self._depths_lock:
            self._depths.append(msg)

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
        return tuple(name for name in OUTPUTS
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
        points = self.depth_sub is not None and self.points_pub.get_subscription_count() > 0
        if not outputs and not points:
            self.stats.count("skipped_no_subscribers")
            return
        computed = tuple(name for name in OUTPUTS if name in outputs or points and name in POINT_INPUTS)
        t1 = time.perf_counter()
        result = self.segmenter(image, encoding, outputs=computed, overlay_alpha=self.live["overlay_alpha"])
        t2 = time.perf_counter()
        as_sent = msg.format if isinstance(msg, CompressedImage) else msg.encoding
        image_text = f"{image.shape[1]}x{image.shape[0]} {as_sent}"
        if result.reallocated and self._image is not None:
            self._log_reallocation(self._image, image_text, outputs)
        self._image, self._network_input = image_text, result.network_hw
        header = msg.header
        for name in outputs:
            out = fill_image(self._out_msgs[name], getattr(result, name), OUTPUT_ENCODINGS[name], header)
            self.image_pubs[name].publish(out)
        if self._camera_info is not None and self.camera_info_pub.get_subscription_count():
            info = scale_camera_info(self._camera_info, image.shape[:2], result.output_hw, header)
            self.camera_info_pub.publish(info)
        if points:
            self._publish_points(result, image.shape[:2], header, stamp_ns)
        t3 = time.perf_counter()

        latency_ms = None
        if stamp_ns:
            latency_ms = (self.get_clock().now().nanoseconds - stamp_ns) / 1e6
        else:
            self.stats.count("unstamped")
        stages = {"decode": 1e3 * (t1 - t0), **{s: result.timings_ms.get(s, 0.0) for s in STAGES},
                  "publish": 1e3 * (t3 - t2)}
        self.stats.published(latency_ms, (time.monotonic_ns() - received_ns) / 1e6, stages, 1e3 * (t2 - t1))

    def _publish_points(self, result, image_hw: tuple[int, int], header, stamp_ns: int) -> None:
        # Matched after inference, so a depth image stamped with the frame has had the inference time to arrive.
        depth_msg = self._matching_depth(stamp_ns)
        if depth_msg is None:
            self.stats.count("depth_unmatched")
            return
        try:
            if self._camera_info is None:
                raise BadDepth(f"no camera_info on {self.camera_info_topic} yet: ~/points needs the intrinsics")
            depth = depth_metres(depth_msg.encoding, depth_msg.height, depth_msg.width, depth_msg.step,
                                 depth_msg.data, depth_msg.is_bigendian, self.config["max_input_pixels"])
            k = scale_camera_info(self._camera_info, image_hw, result.output_hw, header).k
            if depth.shape != tuple(result.output_hw) and self.throttle.check("depth_resampled") is not None:
                self.get_logger().info(f"depth {depth.shape[1]}x{depth.shape[0]} resampled (nearest) to the labels' "
                                       f"{result.output_hw[1]}x{result.output_hw[0]}")
            cloud = back_project(fit_depth(depth, result.output_hw), k, result.labels, result.confidence,
                                 self.points_classes, self.live["points_drop_invalid"])
        except BadDepth as exc:
            self.stats.count("depth_refused")
            held = self.throttle.check("depth")
            if held is not None:
                more = f" ({held} more since the last report)" if held else ""
                self.get_logger().warning(f"no ~/points for this frame: {exc}{more}")
            return
        self.points_pub.publish(fill_points(self._points_msg, cloud, header))
        self.stats.count("points")

    def _matching_depth(self, stamp_ns: int) -> Image | None:
        """The queued depth image stamped nearest to ``stamp_ns``, if within depth_tolerance_ms."""
        with self._depths_lock:
            queued = list(self._depths)
        offsets = [abs(stamp_to_ns(msg.header.stamp) - stamp_ns) for msg in queued]
        if not offsets or min(offsets) > self.config["depth_tolerance_ms"] * 1e6:
            return None
        return queued[offsets.index(min(offsets))]

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
        self._stop_worker()
        super().destroy_node()


class ManagedSegmentNode(LifecycleNodeMixin, SegmentNode):
    """segment_node as a lifecycle (managed) node, for stacks that bring their nodes up and down (Nav2's
    lifecycle manager, ``ros2 lifecycle set``). It starts unconfigured, holding nothing but its parameters.

    configure: read the parameters, load the weights, build the engine (timed in the log); a failure is one
    line and the node stays unconfigured, so a corrected parameter and a new configure work. activate:
    subscribe and publish. deactivate: let go of the camera and stop computing, keeping the model.
    cleanup: free the model, the engine and the publishers. shutdown: from any state, cleanly.
    """

    def __init__(self, node_name: str = "segment_node", **options):
        SegmentNode.__init__(self, node_name, managed=True, **options)
        LifecycleNodeMixin.__init__(self)
        self.finalized = Future()  # done after shutdown: the console script then exits

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        started = time.monotonic()
        try:
            self._configure()
        except STARTUP_ERRORS as exc:
            self.get_logger().error(f"configure failed: {_message(exc)}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"configured in {time.monotonic() - started:.1f} s: {self.segmenter.loaded.name} "
                               f"on {self.segmenter.backend_name}; activate to subscribe")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._activate()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self.get_logger().info("deactivated: camera released, model kept")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup()
        self.get_logger().info("cleaned up: model and engine freed")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.finalized.set_result(True)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()  # back to unconfigured, holding nothing
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self._active:
            self._deactivate()
        if self.segmenter is not None:
            self._cleanup()


def spin(node: SegmentNode) -> int:
    """Until Ctrl-C, or for a managed node until its shutdown transition."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if isinstance(node, ManagedSegmentNode):
            executor.spin_until_future_complete(node.finalized)
        else:
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


def make_node(managed: bool = False) -> SegmentNode:
    return ManagedSegmentNode() if managed else SegmentNode()


def add_options(parser) -> None:
    parser.add_argument("--managed", action="store_true",
                        help="start as a lifecycle node, unconfigured (ros2 lifecycle set /segment_node configure)")


def main(argv: list[str] | None = None) -> int:
    return node_main(argv, "segment_node", "ROS 2 real-time semantic segmentation node.", __doc__,
                     "segment_node --ros-args -p model:=farsee -r image:=/camera/image_raw", params.PARAMETERS,
                     make_node, (StartupError,), spin, add_options)


if __name__ == "__main__":
    sys.exit(main())
