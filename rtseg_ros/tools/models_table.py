"""``rtseg-models``: the model zoo as a table (params, GMACs, the papers' figures)."""
from __future__ import annotations

import argparse
import json

from rtseg_ros.models import available_models, build_model, get_entry
from rtseg_ros.models import pretrained
from rtseg_ros.models.complexity import count_macs, count_params

FULL_FRAME = (1024, 2048)


def model_rows(num_classes: int = 19) -> list[dict]:
    rows = []
    for name in available_models():
        entry = get_entry(name)
        model = build_model(name, num_classes=num_classes).eval()
        paper = entry.paper
        rows.append({
            "name": name,
            "params": count_params(model),
            "input": list(entry.input_size),
            "gmacs_input": count_macs(model, entry.input_size) / 1e9,
            "gmacs_1024x2048": count_macs(model, FULL_FRAME) / 1e9,
            "paper_miou_val": paper.miou_val,
            "paper_miou_test": paper.miou_test,
            "paper_fps": paper.fps,
            "paper_fps_at": list(paper.resolution) if paper.resolution else None,
            "paper_gpu": paper.gpu,
            "paper_params_m": paper.params_m,
            "paper_gflops": paper.gflops,
        })
    return rows


def _fmt(value, spec: str = "") -> str:
    return "-" if value is None or value == "" else format(value, spec)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| model | params | input (H×W) | GMACs @input | GMACs @1024×2048 | paper mIoU val/test | paper FPS (GPU, H×W) |",
             "|---|---:|---|---:|---:|---|---|"]
    for r in rows:
        fps_at = "×".join(map(str, r["paper_fps_at"])) if r["paper_fps_at"] else "?"
        fps = f"{_fmt(r['paper_fps'])} ({r['paper_gpu'] or '?'}, {fps_at})" if r["paper_fps"] else "-"
        lines.append(f"| {r['name']} | {r['params'] / 1e6:.3f} M | {r['input'][0]}×{r['input'][1]} | "
                     f"{r['gmacs_input']:.2f} | {r['gmacs_1024x2048']:.2f} | "
                     f"{_fmt(r['paper_miou_val'])}/{_fmt(r['paper_miou_test'])} | {fps} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rtseg-models", description=__doc__.split("``: ")[-1])
    parser.add_argument("--num-classes", type=int, default=19, help="classes of the head (default: 19)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = parser.parse_args(argv)
    rows = model_rows(args.num_classes)
    if args.json:
        print(json.dumps({"models": rows, "shipped_weights": [{**vars(w), "path": str(w.path)}
                                                             for w in pretrained.SHIPPED]}, indent=2))
    else:
        print(markdown_table(rows) + "\n\nWeights shipped with the package (weights:=<name>):\n\n"
              + pretrained.markdown_table())


if __name__ == "__main__":
    main()
