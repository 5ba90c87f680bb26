"""``rtseg-replay``: bag replay + ``segment_node`` + evaluator, what ``replay.launch.py`` starts, without ``ros2``.

Three processes talk over DDS exactly as in a ROS install: ``bag_player`` publishes the bag's images, camera
info and ground truth; ``segment_node`` segments the images; ``evaluator_node`` matches its labels to the
ground truth by stamp and writes the report. The player starts when the node and the evaluator have
subscribed, and by default sends each frame once the previous one's prediction is back (lockstep: every
frame scored); ``--rate`` paces it at a fixed rate instead. The run ends when the evaluator has written its
report (its exit status is returned). The processes run with the package's Fast DDS transport profile
unless ``FASTDDS_DEFAULT_PROFILES_FILE`` is set or ``--no-transport-profile`` is given.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rtseg_ros.common import parse_size
from rtseg_ros.ros.fastdds import child_env
from rtseg_ros.ros.pacing import PACINGS
from rtseg_ros.ros.qos import INPUT_QOS
from rtseg_ros.runtime.choices import BACKENDS, PRECISIONS
from rtseg_ros.topics import IMAGE_TOPIC


@dataclass
class Replay:
    """One replay: what the three processes are given (the ``rtseg-replay`` flags, by the same names)."""

    bag: Path
    weights: str = ""  # empty: the model's shipped weights
    model: str = ""  # empty: the checkpoint's model, else the best shipped model
    device: str = "auto"
    backend: str = "auto"
    precision: str = "fp32"
    input_size: tuple[int, int] | None = None  # network input (H, W); None: the model's
    pacing: str = "lockstep"  # lockstep | rate | recorded (bag_player's pacing)
    rate: float = 0.0  # frames per second, with pacing "rate"
    transport_profile: bool = True  # the shipped Fast DDS profile (unless FASTDDS_DEFAULT_PROFILES_FILE is set)
    input_qos: str = "reliable"
    samples: int = 6
    drain_timeout: float = 10.0
    node_param: list[str] = field(default_factory=list)  # extra segment_node parameters, NAME:=VALUE
    out: Path = Path("eval_out")


def parse_args(argv) -> Replay:
    p = argparse.ArgumentParser(prog="rtseg-replay", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                epilog="Example: rtseg-replay --bag val_bag --weights best.pt --out eval_out\n"
                                       "(set ROS_DOMAIN_ID / ROS_AUTOMATIC_DISCOVERY_RANGE as for any ROS 2 run)",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bag", type=Path, required=True, help="rosbag2 folder (e.g. from rtseg-make-bag)")
    p.add_argument("--weights", default=Replay.weights,
                   help="checkpoint for segment_node, a shipped name, or random (empty: the model's shipped weights)")
    p.add_argument("--model", default=Replay.model,
                   help="registry name (default: the checkpoint's model, else the best shipped model)")
    p.add_argument("--device", default=Replay.device, help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--backend", default=Replay.backend, choices=BACKENDS)
    p.add_argument("--precision", default=Replay.precision, choices=PRECISIONS)
    p.add_argument("--input-size", type=parse_size, help="network input HxW (default: the model's)")
    p.add_argument("--pacing", choices=PACINGS,
                   help="lockstep (default): each frame once the previous one's prediction is back, every frame "
                        "scored; rate: --rate frames per second (the default when --rate is given); recorded: "
                        "the bag's timing")
    p.add_argument("--rate", type=float, default=Replay.rate, help="frames per second with --pacing rate")
    p.add_argument("--no-transport-profile", dest="transport_profile", action="store_false",
                   help="run the processes with Fast DDS's defaults instead of config/fastdds_large_frames.xml")
    p.add_argument("--input-qos", default=Replay.input_qos, choices=tuple(INPUT_QOS),
                   help="segment_node's image QoS (default reliable: measure the network, not transport losses; "
                        "sensor_data: as deployed)")
    p.add_argument("--samples", type=int, default=Replay.samples,
                   help="sample rows in samples.png (default 6; 0: none)")
    p.add_argument("--drain-timeout", type=float, default=Replay.drain_timeout,
                   help="seconds to wait for the last predictions after the bag ends (default 10)")
    p.add_argument("-p", "--node-param", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra segment_node parameter, e.g. -p cpu_threads:=1 (repeatable)")
    p.add_argument("--out", type=Path, default=Replay.out, help="report folder (default eval_out)")
    args = vars(p.parse_args(argv))
    args["pacing"] = args["pacing"] or ("rate" if args["rate"] else Replay.pacing)
    return Replay(**args)


def commands(args: Replay) -> dict[str, list[str]]:
    """The three processes, as ``replay.launch.py`` configures them."""
    python = [sys.executable, "-m"]
    node_params = {"model": args.model, "weights": args.weights, "device": args.device, "backend": args.backend,
                   "precision": args.precision, "input_qos": args.input_qos}
    if args.input_size:
        node_params.update(input_height=args.input_size[0], input_width=args.input_size[1])
    node = [*python, "rtseg_ros.ros.segment_node", "--ros-args", "-r", f"image:={IMAGE_TOPIC}"]
    for name, value in node_params.items():
        node += ["-p", f"{name}:={value}" if value != "" else f"{name}:=''"]
    for extra in args.node_param:
        node += ["-p", extra]
    player = [*python, "rtseg_ros.ros.bag_player", "--ros-args", "-p", f"bag:={args.bag.resolve()}",
              "-p", f"pacing:={args.pacing}", "-p", f"rate_hz:={float(args.rate) if args.pacing == 'rate' else 0.0}",
              "-p", "wait_for_evaluator:=true",
              "-p", f"wait_for_subscribers:={2 if args.samples else 1}"]
    evaluator = [*python, "rtseg_ros.ros.evaluator_node", "--ros-args", "-p", f"out_dir:={args.out.resolve()}",
                 "-p", f"samples:={args.samples}", "-p", f"drain_timeout_s:={float(args.drain_timeout)}"]
    return {"evaluator_node": evaluator, "segment_node": node, "bag_player": player}


def run(args: Replay) -> int:
    """Start the three processes and wait for the evaluator's report; its exit status (or the failed one's)."""
    env = child_env(args.transport_profile)
    processes = {name: subprocess.Popen(command, env=env) for name, command in commands(args).items()}
    evaluator = processes["evaluator_node"]
    try:
        while evaluator.poll() is None:
            for name in ("segment_node", "bag_player"):
                code = processes[name].poll()
                if code:  # a failed start or a crash: the evaluator would wait for nothing
                    print(f"rtseg-replay: {name} exited with status {code}; stopping", file=sys.stderr)
                    evaluator.send_signal(signal.SIGINT)  # it writes what it has
                    evaluator.wait(timeout=30)
                    return code
            time.sleep(0.2)
        return evaluator.returncode
    except KeyboardInterrupt:
        evaluator.send_signal(signal.SIGINT)
        evaluator.wait(timeout=30)
        return 130
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.bag.exists():
        print(f"rtseg-replay: error: bag {args.bag} does not exist", file=sys.stderr)
        return 1
    code = run(args)
    if code == 0:
        print(f"rtseg-replay: report in {args.out}/report.md")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
