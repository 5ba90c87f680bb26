"""``rtseg-bench --transport``: bare image transport between two processes, nothing else.

A publisher process and a subscriber process (``bench.transport_probe``) per configuration: frame size,
reliability (best effort as cameras publish, reliable), Fast DDS settings (its defaults, or the shipped
profile ``config/fastdds_large_frames.xml``) and how the subscriber takes the message (converted to a
Python ``Image`` as rclpy does by default, or serialized bytes). Delivered frames and latency (receipt −
the publisher's stamp) are what the node's own figures sit on.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tqdm import tqdm

from rtseg_ros.bench import SIZES
from rtseg_ros.ros.fastdds import PROFILE_ENVS, profile_env

RATES = {(480, 640): 30.0, (720, 1280): 30.0, (1024, 2048): 10.0}  # the camera rates the targets name
CONFIGS = (  # (Fast DDS settings, subscription) pairs measured per size and reliability
    ("defaults", "python"),
    ("profile", "python"),
    ("profile", "raw"),
)


def probe(role: str, size, count: int, rate: float, qos: str, raw: bool, topic: str, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "rtseg_ros.bench.transport_probe", role, "--size", f"{size[0]}x{size[1]}",
               "--count", str(count), "--rate", str(rate), "--qos", qos, "--topic", topic]
    return subprocess.Popen(command + (["--raw"] if raw else []), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def measure(size, count: int, rate: float, qos: str, settings: str, subscription: str) -> dict:
    """One publisher → subscriber run; the subscriber's JSON plus the configuration."""
    base = {key: value for key, value in os.environ.items() if key not in PROFILE_ENVS}
    env = {**base, **(profile_env(base) if settings == "profile" else {})}
    topic = f"rtseg_transport_{os.getpid()}_{size[0]}x{size[1]}_{qos}_{settings}_{subscription}"
    subscriber = probe("sub", size, count, rate, qos, subscription == "raw", topic, env)
    publisher = probe("pub", size, count, rate, qos, False, topic, env)
    _, pub_err = publisher.communicate(timeout=180)
    out, sub_err = subscriber.communicate(timeout=180)
    if subscriber.returncode or publisher.returncode or not out.strip():
        raise RuntimeError(f"transport probe failed ({settings}, {subscription}, {qos}): "
                           f"{(sub_err or pub_err).strip().splitlines()[-1:]}")
    return {"size": list(size), "rate_hz": rate, "qos": qos, "settings": settings, "subscription": subscription,
            "sent": count, **json.loads(out.strip().splitlines()[-1])}


def bench_transport(sizes=SIZES, count: int = 100, qos=("best_effort", "reliable"), configs=CONFIGS) -> list[dict]:
    todo = [(size, q, settings, sub) for size in sizes for settings, sub in configs for q in qos]
    return [measure(size, count, RATES.get(tuple(size), 10.0), q, settings, sub)
            for size, q, settings, sub in tqdm(todo, desc="transport", unit="run")]


def transport_table(rows: list[dict]) -> str:
    """Markdown: per size and configuration, delivered frames and latency for each reliability."""
    qos_names = sorted({r["qos"] for r in rows}, key=("best_effort", "reliable").index)
    by_key = {(tuple(r["size"]), r["settings"], r["subscription"], r["qos"]): r for r in rows}
    header = " | ".join(f"{q.replace('_', ' ')}: delivered, p50 / p95 ms" for q in qos_names)
    lines = [f"| frames | rate | Fast DDS | subscription | {header} |", "|---|---:|---|---|" + "---|" * len(qos_names)]
    seen = []
    for r in rows:
        key = (tuple(r["size"]), r["settings"], r["subscription"])
        if key in seen:
            continue
        seen.append(key)
        cells = []
        for q in qos_names:
            row = by_key.get((*key, q))
            if row is None:
                cells.append("-")
            elif not row["received"]:
                cells.append(f"**0/{row['sent']}**")
            else:
                delivered = f"{row['full']}/{row['sent']}"
                if row["full"] < 0.99 * row["sent"]:
                    delivered = f"**{delivered}**"
                cells.append(f"{delivered}, {row['p50_ms']:.1f} / {row['p95_ms']:.1f}")
        h, w = key[0]
        lines.append(f"| {w}×{h} rgb8 | {r['rate_hz']:g} Hz | {r['settings']} | {r['subscription']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)
