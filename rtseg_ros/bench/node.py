"""``rtseg-bench --node``: end-to-end latency of the running segment_node against bare rclpy transport.

Each image size is sent at a fixed rate through ``segment_node`` (its ``/diagnostics`` give the Segmenter's
own time in that run), then through a relay that only receives the image and, after holding it for that
Segmenter time, publishes same-sized outputs (bare rclpy transport under the same timing). The node's
overhead is what remains: node latency p50 - bare transport p50 - Segmenter p50. Memory is the node's
resident size after warm-up and at the end. ROS (rclpy and the message packages) is needed only when this
runs; see ``rtseg_ros.bench.node_measure`` for the method.
"""
from __future__ import annotations

import json
from pathlib import Path

from rtseg_ros.bench import SIZES, domain_id as bench_domain

# Small and fast by default, so the figure is the node's own cost rather than the network's. Frames go
# reliable: large best-effort frames between processes lose fragments with Fast DDS's default transports.
NODE_PARAMS = {"model": "farsee", "device": "cpu", "input_width": 128, "input_height": 64, "upsample": "labels",
               "cpu_threads": 1, "input_qos": "reliable"}


def bench_node(sizes=SIZES, rate_hz: float = 10.0, frames: int = 300, warmup: int = 20,
               outputs: tuple[str, ...] = ("labels",), node_params: dict | None = None,
               domain_id: int | None = None, json_path: str | Path | None = None, bare: bool = True) -> list[dict]:
    """Measure ``segment_node`` at each (H, W) in ``sizes``; returns one row per size.

    Args:
        rate_hz: input rate; keep it below what the node sustains, or latency includes waiting frames.
        frames / warmup: timed frames per size and target, after ``warmup`` untimed ones.
        outputs: node outputs subscribed (and relayed by the bare-transport target).
        node_params: ``segment_node`` parameters, over ``NODE_PARAMS`` (e.g. ``{"device": "cuda",
            "input_width": 1024, "input_height": 512}``).
        domain_id: DDS domain of the run (default: ``ROS_DOMAIN_ID`` or 0), kept on this machine.
        json_path: also write the rows there.
        bare: also measure bare transport (False: the node alone, e.g. for long memory runs).

    Row keys: ``size`` (WxH), ``rate_hz``, ``frames``, ``outputs``, ``bare_ms`` and ``node_ms`` (latency
    from input stamp to the last output's arrival: ``p50``/``p95``/``max``), ``segmenter_p50_ms``,
    ``overhead_p50_ms``, the node's own view (medians over its diagnostics periods: ``node_processing_p50_ms``
    from receipt to outputs published, ``node_own_overhead_p50_ms`` the part of it that is neither Segmenter
    nor publishing, ``node_decode_ms``, ``node_publish_ms``), ``bare_received``/
    ``node_received`` (frames whose outputs all came back), ``node_rss_mb_start``/``node_rss_mb_end``.
    """
    from rtseg_ros.bench.node_measure import measure  # needs rclpy: imported only when run

    params = {**NODE_PARAMS, **(node_params or {})}
    domain = bench_domain(domain_id)
    rows = measure(tuple(sizes), rate_hz, frames, warmup, tuple(outputs), params, domain, bare)
    if json_path is not None:
        path = Path(json_path)
        path.write_text(json.dumps({"node_params": params, "rows": rows}, indent=2))
    return rows


def peak_rate(sizes=SIZES, outputs: tuple[str, ...] = ("labels",), node_params: dict | None = None,
              domain_id: int | None = None, probe_s: float = 5.0, warmup: int = 10, low_hz: float = 5.0,
              high_hz: float = 640.0, max_drop: float = 0.05, bisections: int = 3, bare: bool = True) -> list[dict]:
    """Peak throughput per size, as ros2_benchmark defines it: the highest input rate at which fewer than
    ``max_drop`` of the frames are lost; the node's, and bare transport's (the relay holding each frame for
    the node's Segmenter p50) beside it. Each probe sends ``probe_s`` seconds of frames (at least 20).

    Row keys: ``size``, ``max_drop_pct``, ``node`` and ``bare`` (None without ``bare``), each with
    ``peak_hz`` (None when even ``low_hz`` loses too many), ``limited_by`` (``drops``: frames lost, the
    target fell behind or the transport lost them; ``publisher``: this process could not send faster;
    ``range``: ``high_hz`` passed), ``segmenter_p50_ms`` (the node's), ``probes`` (``rate_hz``, ``sent_hz``,
    ``frames``, ``received``, ``drop_pct``, ``latency_ms``, ``result`` per probe, in the order run).
    """
    from rtseg_ros.bench.node_measure import find_peak  # needs rclpy: imported only when run

    params = {**NODE_PARAMS, **(node_params or {})}
    domain = bench_domain(domain_id)
    return [find_peak(size, tuple(outputs), params, domain, probe_s, warmup, low_hz, high_hz, max_drop,
                      bisections, bare) for size in sizes]


def peak_table(rows: list[dict]) -> str:
    max_drop = rows[0]["max_drop_pct"] if rows else 5.0
    lines = [f"| image | target | peak rate (< {max_drop:g} % lost) | limited by | p50 / p95 at peak (ms) | "
             "probes (Hz: frames back) |", "|---|---|---:|---|---:|---|"]
    for r in rows:
        for target, label in (("bare", "bare transport"), ("node", "segment_node")):
            search = r[target]
            if search is None:
                continue
            at_peak = next((p["latency_ms"] for p in search["probes"] if p["rate_hz"] == search["peak_hz"]), None)
            latency = f"{at_peak['p50']:.2f} / {at_peak['p95']:.2f}" if at_peak else "–"
            peak = (f"{search['peak_hz']:.1f} Hz" if search["peak_hz"]
                    else f"below {search['probes'][0]['rate_hz']:g} Hz")
            probes = ", ".join(f"{p['rate_hz']:.0f}: {p['received']}/{p['frames']}" for p in search["probes"])
            lines.append(f"| {r['size']} | {label} | {peak} | {search['limited_by']} | {latency} | {probes} |")
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| image | rate | bare transport p50 / p95 (ms) | node p50 / p95 / max (ms) | Segmenter p50 (ms) | "
             "node overhead p50 (ms) | in node: receipt→published p50, own overhead p50, decode, publish (ms) | "
             "frames back (bare / node) | node RSS start → end (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b, n = r["bare_ms"], r["node_ms"]
        lines.append(f"| {r['size']} | {r['rate_hz']:g} Hz | {b['p50']:.2f} / {b['p95']:.2f} | "
                     f"{n['p50']:.2f} / {n['p95']:.2f} / {n['max']:.1f} | {r['segmenter_p50_ms']:.2f} | "
                     f"{r['overhead_p50_ms']:.2f} | {r['node_processing_p50_ms']:.2f}, "
                     f"{r['node_own_overhead_p50_ms']:.2f}, {r['node_decode_ms']:.2f}, "
                     f"{r['node_publish_ms']:.2f} | {r['bare_received']} / {r['node_received']} of {r['frames']} | "
                     f"{r['node_rss_mb_start']:.0f} → {r['node_rss_mb_end']:.0f} |")
    return "\n".join(lines)
