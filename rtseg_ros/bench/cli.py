"""``rtseg-bench``: speed and memory, always beside a baseline measured in the same run.

  --pipeline  the Segmenter against a naive loop (per-frame tensors, OpenCV/NumPy pre- and
              post-processing on the CPU, eager fp32, full-resolution logits brought back), same frames
  --models    network forward speed by the papers' protocol (batch 1, warm-up, synchronised timing):
              on CUDA per model, precision and CUDA-graph setting; on the CPU the engines side by side
              (--engines: eager torch, the torch path, ONNX Runtime, OpenVINO, INT8), idle and with a
              CPU-busy neighbour process (--neighbour), and what backend:=auto picks
  --node      the running ROS node: end-to-end latency vs bare rclpy transport and the Segmenter alone,
              at fixed input rates (--rates); with --peak, the highest rate losing < 5 % of frames.
              This process and the node run with the package's Fast DDS transport profile
              (config/fastdds_large_frames.xml) unless FASTDDS_DEFAULT_PROFILES_FILE is set or
              --no-transport-profile is given
  --transport bare image transport between two processes (publisher → subscriber, no node): 640×480 and
              1280×720 at 30 Hz, 2048×1024 at 10 Hz; best effort and reliable; Fast DDS defaults vs the
              shipped profile; the subscription converting to a Python Image vs taking serialized bytes
  --lifecycle segment_node --managed in each lifecycle state (unconfigured, inactive, active, inactive
              again, cleaned up) with a camera publishing all along: resident memory, CPU, frames answered
  --points    the node with a depth camera, ~/labels only vs ~/labels and ~/points subscribed, same frames
  --memory    resident memory one frame adds, per frame size (default 640x480, 1920x1080, 4096x4096),
              with the Segmenter's banded upsampling against whole-frame logits, and the labels they
              disagree on
  --accuracy  the shipped weights (--weights, default sgcpnet_camvid) on a dataset's val split
              (--data-root) per engine and precision: mIoU, pixel accuracy, labels equal to torch fp32;
              and which reduced-precision instructions the CPU has
  --gpu-check all of the GPU figures in one run of at most 9 minutes (scripts/gpu_check.sh installs
              TensorRT first); --quick rehearses it on a CPU with small sizes
Prints a Markdown table and writes JSON (``--json``).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from rtseg_ros.bench import SIZES
from rtseg_ros.bench.engines import ENGINES, EXTRA_ENGINES, NEIGHBOURS, bench_engines, engines_table, load_table
from rtseg_ros.bench.models import bench_models, models_table
from rtseg_ros.bench.pipeline import bench_pipeline, pipeline_table
from rtseg_ros.common import parse_size
from rtseg_ros.models import available_models
from rtseg_ros.ros.fastdds import profile_env
from rtseg_ros.runtime.backends import resolve_backend
from rtseg_ros.runtime.choices import BACKENDS, PRECISIONS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rtseg-bench", description=__doc__.split("``: ")[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--pipeline", action="store_true", help="Segmenter vs naive loop on the same frames")
    mode.add_argument("--models", nargs="*", metavar="MODEL", help="forward speed per model (none named: all)")
    mode.add_argument("--node", action="store_true", help="the ROS node vs bare transport and the Segmenter")
    mode.add_argument("--transport", action="store_true", help="bare transport between two processes")
    mode.add_argument("--lifecycle", action="store_true", help="RSS and CPU of the managed node in each state")
    mode.add_argument("--points", action="store_true", help="the node with and without ~/points subscribed")
    mode.add_argument("--memory", action="store_true", help="resident memory per frame size, banded vs whole")
    mode.add_argument("--accuracy", action="store_true", help="val mIoU and agreement per engine and precision")
    mode.add_argument("--gpu-check", action="store_true",
                      help="the one GPU check: CUDA tests, --models, --pipeline, allocations, fp16 agreement, "
                           "TensorRT; writes gpu_check.json and gpu_check.md into --out")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"), help="--gpu-check: output folder")
    parser.add_argument("--quick", action="store_true", help="--gpu-check: small sizes (the CPU rehearsal)")
    parser.add_argument("--budget", type=float, default=540.0, help="--gpu-check: seconds for the whole run (default 540)")
    parser.add_argument("--model", default="farsee", help="model for --pipeline/--node/--lifecycle/--points (default farsee: its shipped weights)")
    parser.add_argument("--size", type=parse_size, nargs="+",
                        help="frame size(s) H x W (default: 1024x2048; --node: 480x640 720x1280 1024x2048)")
    parser.add_argument("--input-size", type=parse_size, help="network input H x W (default: the model's)")
    parser.add_argument("--frames", type=int,
                        help="timed frames per configuration (default 20; --transport: 100 sent per run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=PRECISIONS)
    parser.add_argument("--graphs", nargs="+", default=["off"], choices=("on", "off"), help="CUDA graphs (--models)")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES + EXTRA_ENGINES,
                        help=f"--models on the CPU: engines to compare (default: {' '.join(ENGINES)})")
    parser.add_argument("--neighbour", nargs="+", default=["none"], choices=tuple(NEIGHBOURS),
                        help="--models on the CPU: also measure beside a process keeping the cores busy: torch "
                             "(a matrix loop on all cores, like another network) or busy (Python loops)")
    parser.add_argument("--seconds", type=float,
                        help="--models: timed seconds per configuration, at least 5 calls on the CPU (default 3); "
                             "--lifecycle/--points: seconds measured per state (default 10)")
    parser.add_argument("--threads", type=int, help="CPU threads of every engine (default: torch's, one per core)")
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0], help="input rates in Hz (--node, default 10)")
    parser.add_argument("--peak", action="store_true",
                        help="--node: search the highest input rate with < 5 %% of frames lost, per size")
    parser.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="segment_node parameter for --node, --lifecycle, --points (repeatable), "
                             "e.g. device:=cuda")
    parser.add_argument("--no-transport-profile", dest="transport_profile", action="store_false",
                        help="--node with Fast DDS's default transports (the shipped profile is the default)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="--memory: the Segmenter's engine (default auto, as the node)")
    parser.add_argument("--weights", default="", help="--memory, --accuracy: weights (default: the model's shipped weights, "
                        "--accuracy: sgcpnet_camvid; random for a 19-class network)")
    parser.add_argument("--data-root", type=Path, help="--accuracy: the dataset folder (CamVid layout)")
    parser.add_argument("--engine-cache-dir", help="--accuracy: where rtseg-export put the INT8 model")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    sizes = args.size or [(1024, 2048)]

    if args.gpu_check:
        from rtseg_ros.bench.gpu_check import run_gpu_check

        report = run_gpu_check(args.out, quick=args.quick, budget_s=args.budget)
        print((args.out / "gpu_check.md").read_text())
        rows = [report]
    elif args.accuracy:
        from rtseg_ros.bench.precision import accuracy_table, bench_accuracy

        if args.data_root is None:
            parser.error("--accuracy needs --data-root (a CamVid folder)")
        rows = bench_accuracy(args.weights or "sgcpnet_camvid", str(args.data_root),
                              engine_cache_dir=args.engine_cache_dir)
        print(accuracy_table(rows))
    elif args.memory:
        from rtseg_ros.bench.memory import bench_memory, memory_table

        backend = resolve_backend(args.backend, args.device)[0]
        rows = bench_memory(args.model, args.size or [(480, 640), (1080, 1920), (4096, 4096)], backend,
                            weights=args.weights)
        print(memory_table(rows))
    elif args.lifecycle or args.points:
        from rtseg_ros.bench.stack import bench_lifecycle, bench_points, lifecycle_table, points_table

        os.environ.update(profile_env(os.environ, args.transport_profile))
        params = {"model": args.model, **dict(p.split(":=", 1) for p in args.node_param)}
        size = (args.size or [(480, 640)])[0]
        if args.lifecycle:
            rows = bench_lifecycle(params, size, args.rates[0], seconds=args.seconds or 10.0)
            print(lifecycle_table(rows))
        else:
            rows = bench_points(params, size, args.rates[0], seconds=args.seconds or 10.0)
            print(points_table(rows))
    elif args.transport:
        from rtseg_ros.bench.transport import bench_transport, transport_table

        rows = bench_transport(args.size or SIZES, args.frames or 100)
        print(transport_table(rows))
    elif args.pipeline:
        rows = [bench_pipeline(args.model, size, args.frames or 20, args.device, p, args.input_size)
                for size in sizes for p in args.precision]
        print(pipeline_table(rows))
    elif args.models is not None and args.device == "cpu":
        if args.threads:
            torch.set_num_threads(args.threads)
        rows = bench_engines(args.models or available_models(), sizes, args.engines, args.neighbour, args.seconds or 3.0)
        print(engines_table(rows, args.engines))
        if any(n != "none" for n in args.neighbour):
            print("\n" + load_table(rows, args.engines))
    elif args.models is not None:
        rows = bench_models(args.models or available_models(), sizes, args.device, args.precision,
                            [g == "on" for g in args.graphs], args.seconds or 3.0)
        print(models_table(rows))
    else:
        from rtseg_ros.bench.node import bench_node, markdown_table, peak_rate, peak_table

        # Before rclpy starts here: the profile applies to this process's publisher and to the node started.
        os.environ.update(profile_env(os.environ, args.transport_profile))
        params = {"model": args.model, **dict(p.split(":=", 1) for p in args.node_param)}
        if args.peak:
            rows = peak_rate(args.size or SIZES, node_params=params)
            print(peak_table(rows))
        else:
            rows = [row for rate in args.rates
                    for row in bench_node(args.size or SIZES, rate_hz=rate, frames=args.frames or 20, node_params=params)]
            print(markdown_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
