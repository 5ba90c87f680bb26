"""``rtseg-demo``: the whole chain on one machine, with nothing to download.

1. ``rtseg-synth`` draws a small Cityscapes-layout street dataset;
2. ``rtseg-train`` trains a network on it for a few hundred iterations on the CPU (skipped with
   ``--weights``);
3. ``segment_node`` is started as its own process, and the validation frames are published to it over
   real DDS at a fixed rate; its label images come back and are matched to the ground truth by stamp.

Writes ``report.json`` (mIoU, per-class IoU, latency percentiles, frames lost) and ``overlays.png``
(input | node overlay | ground truth) to ``--out``. Until the rosbag replay tools exist, this is the
end-to-end check that training, checkpoint, node and transport fit together.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
import torch
from rclpy.qos import QoSPresetProfiles
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from rtseg_ros.data.datasets import open_dataset
from rtseg_ros.data.labels import colorize, get_dataset_info
from rtseg_ros.data.synth import write_dataset
from rtseg_ros.eval.metrics import ConfusionMatrix
from rtseg_ros.ros.conversions import fill_image
from rtseg_ros.tools.export import parse_size
from rtseg_ros.train.cli import main as train_main


def parse_args(argv):
    p = argparse.ArgumentParser(prog="rtseg-demo", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                epilog="Example: rtseg-demo --out demo_out")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="working folder (default: demo_out)")
    p.add_argument("--model", default="ddrnet23_slim", help="network to train and run (default ddrnet23_slim)")
    p.add_argument("--weights", help="use this checkpoint instead of training one")
    p.add_argument("--size", type=parse_size, default=(64, 128), help="frame size HxW of the synthetic data (default 64x128)")
    p.add_argument("--train-images", type=int, default=48, help="synthetic training images (default 48)")
    p.add_argument("--val-images", type=int, default=24, help="frames published to the node (default 24)")
    p.add_argument("--iters", type=int, default=300, help="training iterations (default 300)")
    p.add_argument("--rate", type=float, default=5.0, help="publish rate in Hz (default 5)")
    p.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", 42)),
                   help="ROS_DOMAIN_ID for the node and this process (default: $ROS_DOMAIN_ID or 42)")
    return p.parse_args(argv)


def train(args, data: Path, size: tuple[int, int]) -> Path:
    run = args.out / "run"
    if (run / "best.pt").is_file():
        print(f"[2/3] reusing {run / 'best.pt'}")
        return run / "best.pt"
    print(f"[2/3] training {args.model} for {args.iters} iterations on the CPU")
    code = train_main(["--model", args.model, "--data-root", str(data), "--out", str(run), "--device", "cpu",
                       "--batch-size", "8", "--max-iters", str(args.iters), "--set", f"train.crop=[{size[0]},{size[1]}]",
                       "--set", "optimizer.lr=0.1", "--set", "augment.scale=[0.75,1.5]"])
    if code:
        raise SystemExit(code)
    return run / "best.pt"


def start_node(weights: Path, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "rtseg_ros.ros.segment_node", "--ros-args", "-r", "__node:=rtseg_demo",
               "-r", "image:=/rtseg_demo/image_raw", "-p", f"weights:={weights}", "-p", "device:=cpu",
               "-p", "cpu_threads:=1"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_node(args, weights: Path, frames: list[dict]) -> tuple[dict, dict]:
    """Publish ``frames`` to a fresh node process; return {stamp: labels} and {stamp: latency ms}."""
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(args.domain_id)}
    os.environ.update(env)
    process = start_node(weights, env)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("rtseg_demo_player", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received, latency, sent_at = {}, {}, {}

    def on_labels(msg: Image) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        received[stamp] = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width).copy()
        latency[stamp] = 1e3 * (time.monotonic() - sent_at[stamp])

    node.create_subscription(Image, "/rtseg_demo/labels", on_labels, QoSPresetProfiles.SENSOR_DATA.value)
    publisher = node.create_publisher(Image, "/rtseg_demo/image_raw", QoSPresetProfiles.SENSOR_DATA.value)
    try:
        deadline = time.monotonic() + 120
        while publisher.get_subscription_count() == 0 or node.count_publishers("/rtseg_demo/labels") == 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"segment_node did not come up:\n{process.communicate()[0]}")
            executor.spin_once(timeout_sec=0.1)
        print(f"[3/3] publishing {len(frames)} frames at {args.rate:g} Hz to segment_node")
        for index, frame in enumerate(frames):
            stamp = (index + 1) * 10**8
            header = Header(frame_id="camera")
            header.stamp.sec, header.stamp.nanosec = divmod(stamp, 10**9)
            msg = fill_image(Image(), frame["image"], "rgb8", header)
            sent_at[stamp] = time.monotonic()
            publisher.publish(msg)
            next_frame = time.monotonic() + 1.0 / args.rate
            while time.monotonic() < next_frame:
                executor.spin_once(timeout_sec=max(0.0, next_frame - time.monotonic()))
        end = time.monotonic() + 5
        while len(received) < len(frames) and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        process.terminate()
        process.wait(timeout=30)
    return received, latency


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = args.size
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "synth"
    print(f"[1/3] drawing {args.train_images} + {args.val_images} synthetic scenes of {size[0]}x{size[1]} in {data}")
    write_dataset(data, args.train_images, size, seed=0, val_num=args.val_images, progress=False)
    weights = Path(args.weights) if args.weights else train(args, data, size)
    frames = [open_dataset("cityscapes", data, "val")[i] for i in range(args.val_images)]
    received, latency = run_node(args, weights.resolve(), frames)

    info = get_dataset_info("cityscapes")
    matrix = ConfusionMatrix(info.num_classes)
    rows = []
    for index, frame in enumerate(frames):
        labels = received.get((index + 1) * 10**8)
        if labels is None:
            continue
        matrix.update(torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(frame["label"].astype(np.int64)))
        if len(rows) < 6:
            overlay = (0.5 * frame["image"] + 0.5 * colorize(labels, info)).astype(np.uint8)
            rows.append(np.hstack([frame["image"], overlay, colorize(frame["label"], info)]))
    summary = matrix.summary(info.class_names)
    values = sorted(latency.values()) or [float("nan")]
    report = {"model": args.model, "weights": str(weights), "frames_sent": len(frames), "frames_received": len(received),
              "miou": summary["miou"], "pixel_accuracy": summary["pixel_accuracy"], "iou": summary["iou"],
              "latency_ms": {"p50": values[len(values) // 2], "p95": values[int(0.95 * (len(values) - 1))],
                             "max": values[-1]}}
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    if rows:
        cv2.imwrite(str(args.out / "overlays.png"), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    lat = report["latency_ms"]
    print(f"segment_node returned {len(received)}/{len(frames)} frames; val mIoU {100 * report['miou']:.1f} % "
          f"(pixel accuracy {100 * report['pixel_accuracy']:.1f} %); latency p50 {lat['p50']:.0f} ms, "
          f"p95 {lat['p95']:.0f} ms, max {lat['max']:.0f} ms")
    print(f"wrote {args.out / 'report.json'} and {args.out / 'overlays.png'}")
    return 0 if received else 1


if __name__ == "__main__":
    raise SystemExit(main())
