"""``rtseg-export``: export a network to ONNX (optionally with argmax baked in) and check its parity,
build a TensorRT engine ahead of time, calibrate the INT8 model ``precision:=int8`` runs, write a
checkpoint without its training state, or show and empty the engine cache."""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch
from torch import nn

from rtseg_ros.common import parse_size
from rtseg_ros.models.checkpoint import inference_checkpoint, load_checkpoint, save_checkpoint
from rtseg_ros.models.pretrained import file_sha256
from rtseg_ros.data.labels import DATASET_NAMES
from rtseg_ros.runtime.backends.cache import cache_cap_bytes, cache_entries, cache_root, clear_cache
from rtseg_ros.runtime.backends.int8 import CALIBRATION_METHODS, DEFAULT_CALIBRATION_FRAMES
from rtseg_ros.runtime.choices import BACKEND_PRECISIONS, INSTALL_HINTS
from rtseg_ros.runtime.export import DEFAULT_OPSET, export_onnx, onnx_parity
from rtseg_ros.runtime.weights import load_model


class WithArgmax(nn.Module):
    """Network + bilinear upsampling to the input size + argmax: the ONNX file then outputs uint8 labels."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x):
        logits = nn.functional.interpolate(self.network(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits.argmax(1).to(torch.uint8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rtseg-export", description=__doc__.split("``: ")[-1])
    parser.add_argument("--model", help="registry name (omit when --weights is an rtseg-train checkpoint)")
    parser.add_argument("--weights", help="rtseg-train checkpoint or published state_dict (default: random init)")
    parser.add_argument("--input-size", type=parse_size, help="H x W to export at (default: the model's)")
    parser.add_argument("--num-classes", type=int, help="classes of a random-init or state_dict model")
    parser.add_argument("--out", type=Path, help="ONNX file to write (default: <model>.onnx)")
    parser.add_argument("--argmax", action="store_true", help="bake upsampling + argmax in: output uint8 labels")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--build-engine", action="store_true", help="also build (and cache) the TensorRT engine")
    parser.add_argument("--precision", default="fp16", choices=BACKEND_PRECISIONS["tensorrt"],
                        help="TensorRT precision")
    parser.add_argument("--engine-cache-dir", help="where ONNX exports, INT8 models and engines are cached "
                                                   "(default $RTSEG_CACHE, else ~/.cache/rtseg_ros)")
    parser.add_argument("--cache-info", action="store_true",
                        help="list the engine cache's entries, their sizes and its cap ($RTSEG_CACHE_MAX_MB), then exit")
    parser.add_argument("--clear-cache", action="store_true", help="remove every entry of the engine cache, then exit")
    parser.add_argument("--int8", action="store_true",
                        help="calibrate the INT8 model precision:=int8 runs (OpenVINO or ONNX Runtime) on frames "
                             "from --calib-root, and store it in the engine cache (and at --out if given)")
    parser.add_argument("--calib-root", type=Path, help="--int8: a dataset folder the readers accept")
    parser.add_argument("--calib-dataset", choices=DATASET_NAMES,
                        help="--int8: layout of --calib-root (default: the weights' dataset)")
    parser.add_argument("--calib-split", default="train", help="--int8: split to take frames from (default train)")
    parser.add_argument("--calib-frames", type=int, default=DEFAULT_CALIBRATION_FRAMES,
                        help=f"--int8: frames, spread evenly over the split (default {DEFAULT_CALIBRATION_FRAMES})")
    parser.add_argument("--calib-method", default="minmax", choices=CALIBRATION_METHODS,
                        help="--int8: how activation ranges are set (default minmax)")
    parser.add_argument("--inference-checkpoint", type=Path, metavar="OUT",
                        help="instead of ONNX: write the rtseg-train checkpoint --weights without its optimizer and "
                             "RNG state (what the package ships in rtseg_ros/models/weights)")
    args = parser.parse_args(argv)
    if args.cache_info or args.clear_cache:
        show_or_clear_cache(parser, Path(args.engine_cache_dir) if args.engine_cache_dir else cache_root(),
                            args.clear_cache)
        return
    if args.model is None and args.weights is None:
        parser.error("give --model, or --weights with an rtseg-train checkpoint")
    if args.inference_checkpoint:
        try:
            checkpoint = inference_checkpoint(load_checkpoint(args.weights))
        except (ValueError, FileNotFoundError) as exc:
            parser.exit(2, f"rtseg-export: {exc}\n")
        save_checkpoint(checkpoint, args.inference_checkpoint)
        print(f"wrote {args.inference_checkpoint} ({checkpoint['model']}, {checkpoint['num_classes']} classes, "
              f"iteration {checkpoint.get('iteration')}); sha256 {file_sha256(args.inference_checkpoint)}")
        return

    if args.int8:
        export_int8(parser, args)
        return

    try:
        loaded = load_model(args.model, args.weights, num_classes=args.num_classes)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        parser.exit(2, f"rtseg-export: {exc}\n")
    size = args.input_size or loaded.input_size
    network = loaded.model.eval()
    exported = WithArgmax(network) if args.argmax else network
    out = args.out or Path(f"{loaded.name}.onnx")
    export_onnx(exported, out, size, opset=args.opset)
    x = torch.randn(1, 3, *size)
    if args.argmax:
        import onnxruntime as ort

        labels = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
        with torch.no_grad():
            agreement = (torch.from_numpy(labels) == exported(x)).float().mean().item()
        print(f"wrote {out} ({loaded.name}, {size[0]}x{size[1]}, labels out); ONNX Runtime vs PyTorch: "
              f"{100 * agreement:.3f} % of labels equal")
    else:
        print(f"wrote {out} ({loaded.name}, {size[0]}x{size[1]}, logits out); ONNX Runtime vs PyTorch: "
              f"max relative difference {onnx_parity(network, out, x):.2e}")
    if args.build_engine:
        from rtseg_ros.runtime.segmenter import Segmenter

        segmenter = Segmenter(loaded.name, args.weights, device="cuda", backend="tensorrt", precision=args.precision,
                              input_size=size, keep_aspect=False, num_classes=args.num_classes,
                              engine_cache_dir=args.engine_cache_dir)
        import numpy as np

        segmenter(np.zeros((*size, 3), np.uint8), "rgb8")  # builds or validates the cached engine
        print(f"TensorRT engine ready in {segmenter._runner.engines}")


def show_or_clear_cache(parser: argparse.ArgumentParser, folder: Path, clear: bool) -> None:
    try:
        cap = cache_cap_bytes()
    except ValueError as exc:
        parser.exit(2, f"rtseg-export: {exc}\n")
    if clear:
        removed = clear_cache(folder)
        print(f"removed {len(removed)} entries ({sum(e.size for e in removed) / 2**20:.1f} MB) from {folder}")
        return
    entries = cache_entries(folder)
    for entry in reversed(entries):  # most recently used first
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.used))
        print(f"{entry.size / 2**20:9.1f} MB  {used}  {entry.stem}{'  (kept: calibrated INT8)' * entry.calibrated}")
    total = sum(e.size for e in entries)
    print(f"{folder}: {len(entries)} entries, {total / 2**20:.1f} MB of {cap / 2**20:.0f} MB "
          f"(RTSEG_CACHE_MAX_MB; least recently used entries are removed past it)")


def export_int8(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Calibrate with the Segmenter's own preprocessing at the network input size the node will use."""
    from rtseg_ros.data.datasets import DatasetLayoutError, open_dataset
    from rtseg_ros.runtime.backends.int8 import make_int8
    from rtseg_ros.runtime.segmenter import Segmenter

    if args.calib_root is None:
        parser.error("--int8 needs --calib-root (a dataset folder to calibrate on)")
    try:
        import onnxruntime  # noqa: F401  (the quantizer)
    except ImportError:
        parser.exit(2, f"rtseg-export: --int8 needs ONNX Runtime's quantizer: {INSTALL_HINTS['onnxruntime']}\n")
    try:
        segmenter = Segmenter(args.model, args.weights, backend="torch", input_size=args.input_size,
                              num_classes=args.num_classes)
        dataset = open_dataset(args.calib_dataset or segmenter.dataset.name, args.calib_root, args.calib_split)
    except (ValueError, KeyError, FileNotFoundError, DatasetLayoutError) as exc:
        parser.exit(2, f"rtseg-export: {exc}\n")
    path = make_int8(segmenter, dataset, args.calib_frames, args.calib_method, args.engine_cache_dir)
    print(f"wrote {path} ({segmenter.loaded.name}, INT8, calibrated on {min(args.calib_frames, len(dataset))} "
          f"frames of {args.calib_root} {args.calib_split}); run it with precision:=int8")
    if args.out:
        shutil.copyfile(path, args.out)
        print(f"copied to {args.out}")


if __name__ == "__main__":
    main()
