"""rtseg-bench --node: the node against bare transport at a fixed rate, and the peak-rate search."""
import json
import math
import os

from rtseg_ros.bench.node import bench_node, markdown_table, peak_rate, peak_table
from rtseg_ros.bench.peak import search_peak

DOMAIN_ID = 40 + os.getpid() % 10  # apart from the other ROS test modules' domains


def test_search_peak_doubles_then_bisects_the_bracket():
    tried = []

    def passes(rate):
        tried.append(rate)
        return rate <= 50.0

    good, bad = search_peak(passes, 5.0, 640.0, bisections=3)
    assert tried[:5] == [5.0, 10.0, 20.0, 40.0, 80.0] and len(tried) == 8
    assert 40.0 <= good <= 50.0 < bad <= 80.0 and math.isclose(bad / good, 2 ** (1 / 8))
    assert search_peak(lambda rate: False, 5.0, 640.0, 3) == (None, 5.0)
    assert search_peak(lambda rate: True, 5.0, 40.0, 3) == (40.0, None)  # the range ended first


def test_node_benchmark_times_the_node_and_bare_transport(tmp_path):
    out = tmp_path / "node.json"
    (row,) = bench_node([(48, 64)], rate_hz=20.0, frames=20, warmup=3, domain_id=DOMAIN_ID, json_path=out)
    assert row["size"] == "64x48" and row["frames"] == 20
    assert row["node_received"] > 0 and row["bare_received"] > 0
    for key in ("segmenter_p50_ms", "overhead_p50_ms", "node_processing_p50_ms", "node_own_overhead_p50_ms"):
        assert math.isfinite(row[key]), key
    assert 0 < row["node_ms"]["p50"] <= row["node_ms"]["p95"] <= row["node_ms"]["max"]
    assert row["node_rss_mb_start"] > 100  # a Python process with torch loaded
    assert json.loads(out.read_text())["rows"] == [row]
    assert "| 64x48 | 20 Hz |" in markdown_table([row])


def test_peak_search_over_the_running_node_and_bare_transport():
    (row,) = peak_rate([(48, 64)], domain_id=DOMAIN_ID, probe_s=1.0, warmup=2, low_hz=10.0, high_hz=20.0,
                       bisections=1)
    assert row["size"] == "64x48" and math.isfinite(row["node"]["segmenter_p50_ms"])
    for target in ("node", "bare"):
        search = row[target]
        probes = search["probes"]
        assert probes[0]["rate_hz"] == 10.0 and probes[0]["frames"] == 20  # at least 20 frames a probe
        for probe in probes:
            assert probe["result"] in ("pass", "drops", "publisher") and 0 <= probe["received"] <= probe["frames"]
            assert probe["drop_pct"] == 100 * (1 - probe["received"] / probe["frames"])
        passed = [p["rate_hz"] for p in probes if p["result"] == "pass"]
        assert search["peak_hz"] == (max(passed) if passed else None)
        failed = sorted((p["rate_hz"], p["result"]) for p in probes if p["result"] != "pass")
        assert search["limited_by"] == (failed[0][1] if failed else "range")  # what the lowest failure hit
    table = peak_table([row])
    assert "| 64x48 | bare transport |" in table and "| 64x48 | segment_node |" in table
