"""The engine cache stays bounded: random-weight networks never reach it, least recently used entries go
past the cap (never the one just written, never a calibrated INT8 model, never a file the cache did not
write), and rtseg-export shows and empties it. The suite's own cache is a temporary folder (conftest)."""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rtseg_ros.runtime.backends import cache
from rtseg_ros.runtime.segmenter import Segmenter
from rtseg_ros.tools.export import main as export_main

NET = (64, 96)


def frame():
    return np.random.default_rng(0).integers(0, 255, (48, 80, 3), np.uint8)


def fake_entry(folder: Path, stem: str, mb: float, age_s: float, suffixes=(".onnx",)) -> list[Path]:
    files = []
    for suffix in suffixes:
        path = folder / f"{stem}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * int(mb * 2**20))
        os.utime(path, (time.time() - age_s,) * 2)
        files.append(path)
    return files


def test_the_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RTSEG_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "rtseg_ros"
    monkeypatch.setenv("RTSEG_CACHE", str(tmp_path / "mine"))
    assert cache.cache_root() == tmp_path / "mine"
    monkeypatch.setenv("RTSEG_CACHE_MAX_MB", "0.5")
    assert cache.cache_cap_bytes() == 2**19
    monkeypatch.setenv("RTSEG_CACHE_MAX_MB", "lots")
    with pytest.raises(ValueError, match="RTSEG_CACHE_MAX_MB"):
        cache.cache_cap_bytes()


def test_random_weights_never_reach_the_cache_and_their_files_go_at_exit(tmp_path):
    # As the node starts with model:=farsee and no weights: OpenVINO exports and compiles on the first frame.
    pytest.importorskip("openvino")
    script = ("import numpy as np; from rtseg_ros.runtime.segmenter import Segmenter; "
              f"s = Segmenter('farsee', backend='openvino', input_size={NET}); "
              "s(np.zeros((48, 80, 3), np.uint8), 'rgb8'); print(s._runner.onnx_path)")
    env = {**os.environ, "RTSEG_CACHE": str(tmp_path / "cache")}
    starts = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
              for _ in range(2)]
    exports = [Path(run.stdout.strip().splitlines()[-1]) for run in starts]
    assert exports[0] != exports[1]  # each start drew new weights: nothing could have been reused
    assert not any(path.exists() for path in exports)  # removed with the process
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*"))


def test_a_killed_process_scratch_folder_goes_when_the_next_one_opens(tmp_path, monkeypatch):
    monkeypatch.setattr(cache.tempfile, "tempdir", str(tmp_path))  # where gettempdir() and mkdtemp() point
    monkeypatch.setattr(cache, "_scratch", None)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f"{cache.SCRATCH_PREFIX}{finished.stdout.strip()}-x"  # its process is gone
    live = tmp_path / f"{cache.SCRATCH_PREFIX}{os.getppid()}-y"  # its process still runs
    for folder in (orphan, live):
        (folder / "engines").mkdir(parents=True)
    mine = cache.scratch_folder()
    assert not orphan.exists() and live.exists() and mine.name.startswith(f"{cache.SCRATCH_PREFIX}{os.getpid()}-")


def test_least_recently_used_entries_go_past_the_cap(tmp_path):
    old = fake_entry(tmp_path, "farsee-19c-aaaa-fp32", 3, age_s=300)
    engine = fake_entry(tmp_path / "engines", "farsee-19c-64x96-fp32-1234", 3, age_s=200, suffixes=(".ov", ".json"))
    int8 = fake_entry(tmp_path, "sgcpnet-11c-bbbb-int8", 3, age_s=400)
    recent = fake_entry(tmp_path, "sgcpnet-11c-bbbb-fp32", 3, age_s=100)
    new = fake_entry(tmp_path, "ddrnet23_slim-19c-cccc-fp32", 3, age_s=1000)  # just written, even if older
    foreign = tmp_path / "notes.onnx"  # not a name the cache writes: never touched
    foreign.write_bytes(b"\0" * 2**20)
    assert [e.stem for e in cache.cache_entries(tmp_path)][:2] == ["ddrnet23_slim-19c-cccc-fp32",
                                                                    "sgcpnet-11c-bbbb-int8"]
    removed = cache.evict(tmp_path, 10 * 2**20, keep={new[0]})
    assert [e.stem for e in removed] == ["farsee-19c-aaaa-fp32", "farsee-19c-64x96-fp32-1234"]
    assert not any(p.exists() for p in old + engine)  # an engine goes with its sidecar
    assert all(p.exists() for p in int8 + recent + new) and foreign.exists()
    assert sum(e.size for e in cache.cache_entries(tmp_path)) <= 10 * 2**20 - 1 * 2**20 + 1


def test_a_reused_entry_counts_as_recently_used(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("RTSEG_CACHE", str(tmp_path))
    seg = Segmenter(None, weights="sgcpnet_camvid", backend="onnxruntime", input_size=NET)
    export = seg._runner.path
    assert export.parent == tmp_path and export.is_file()
    os.utime(export, (time.time() - 3600,) * 2)
    Segmenter(None, weights="sgcpnet_camvid", backend="onnxruntime", input_size=NET)
    assert time.time() - export.stat().st_mtime < 60


def test_shipped_weights_at_many_input_sizes_stay_under_the_cap(tmp_path, monkeypatch):
    # Each network input shape compiles its own OpenVINO model: with a cap of about two of them, every new
    # one pushes the least recently used out, and the cache never holds more than the cap.
    pytest.importorskip("openvino")
    monkeypatch.setenv("RTSEG_CACHE", str(tmp_path))
    Segmenter(None, weights="sgcpnet_camvid", backend="openvino", input_size=(256, 96), keep_aspect=False)(frame(),
                                                                                                        "rgb8")
    one = sum(e.size for e in cache.cache_entries(tmp_path))
    monkeypatch.setenv("RTSEG_CACHE_MAX_MB", str(2.5 * one / 2**20))
    made = []  # the engine each start compiled, in order
    for i in range(5):
        before = {e.stem for e in cache.cache_entries(tmp_path)}
        Segmenter(None, weights="sgcpnet_camvid", backend="openvino", input_size=(64 + 32 * i, 96),
                  keep_aspect=False)(frame(), "rgb8")
        entries = cache.cache_entries(tmp_path)
        assert sum(e.size for e in entries) <= cache.cache_cap_bytes()
        made += [e.stem for e in entries if e.stem not in before]
    assert len(made) == 5
    left = {e.stem for e in cache.cache_entries(tmp_path)}
    assert made[-1] in left and made[0] not in left  # the newest stays, the least recently used went


def test_rtseg_export_shows_and_clears_the_cache(tmp_path, capsys):
    fake_entry(tmp_path, "farsee-19c-aaaa-fp32", 1, age_s=10)
    fake_entry(tmp_path / "engines", "farsee-19c-64x96-fp32-1234", 1, age_s=5, suffixes=(".ov", ".json"))
    export_main(["--cache-info", "--engine-cache-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "farsee-19c-64x96-fp32-1234" in out.splitlines()[0]  # most recently used first
    assert "2 entries, 3.0 MB of 2048 MB" in out
    export_main(["--clear-cache", "--engine-cache-dir", str(tmp_path)])
    assert "removed 2 entries (3.0 MB)" in capsys.readouterr().out
    assert not cache.cache_entries(tmp_path)
