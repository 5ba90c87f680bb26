"""What the engines keep on disk: ONNX exports, INT8 models and compiled engines, each under a key.

ONNX exports are keyed by what they are made of (model, classes, weights, precision); a compiled engine
(TensorRT plan, OpenVINO blob) also depends on the input shape, the engine's version and the device it was
compiled for, and carries a JSON sidecar with that whole key: it is reused only if every field matches.

The cache is bounded: after each new file the least recently used entries are removed until the folder
holds at most ``RTSEG_CACHE_MAX_MB`` (default 2048). A randomly initialised network is never written to it:
every start draws new weights, so its files could never be reused; they go to a temporary folder of the
process, removed when it exits.
"""
from __future__ import annotations

import atexit
import copy
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rtseg_ros.runtime.choices import PRECISION_DTYPES
from rtseg_ros.runtime.export import TRACE_SIZE, export_onnx

DEFAULT_MAX_MB = 2048
# Every file the cache writes is named "<model>-<classes>c-...": eviction and clearing touch nothing else,
# whatever folder engine_cache_dir points to.
_ENTRY = re.compile(r"^[a-z0-9_]+-\d+c-[^/]*\.(onnx|onnx\.data|ov|engine|json)$")
SCRATCH_PREFIX = "rtseg_ros-random-"
_scratch: Path | None = None


def cache_root() -> Path:
    """The user's cache: ``$RTSEG_CACHE``, else ``$XDG_CACHE_HOME/rtseg_ros``, else ``~/.cache/rtseg_ros``.
    Read at each call, so a process (or a test suite) that sets them is followed."""
    if os.environ.get("RTSEG_CACHE"):
        return Path(os.environ["RTSEG_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rtseg_ros"


def cache_cap_bytes() -> int:
    """``$RTSEG_CACHE_MAX_MB`` (default 2048) in bytes."""
    value = os.environ.get("RTSEG_CACHE_MAX_MB", "")
    try:
        return int(float(value) * 2**20) if value else DEFAULT_MAX_MB * 2**20
    except ValueError:
        raise ValueError(f"RTSEG_CACHE_MAX_MB must be a number of MB, not {value!r}") from None


def scratch_folder() -> Path:
    """This process's temporary folder for random-weight networks (``rtseg_ros-random-<pid>-*``), removed at
    exit; the folders of processes that were killed before they could remove theirs go when the next opens."""
    global _scratch
    if _scratch is None:
        remove_orphaned_scratch()
        _scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
    return _scratch


def remove_orphaned_scratch() -> None:
    for folder in Path(tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*"):
        pid = folder.name[len(SCRATCH_PREFIX):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and its folder not ours to remove
        return True
    return True


def is_random(loaded) -> bool:
    return loaded.weights_digest.startswith("random-")


def base_folder(loaded, cache_dir: str | Path | None) -> Path:
    """Where ``loaded``'s ONNX exports go: ``cache_dir`` if given, else the user cache; a random network's
    in the scratch folder."""
    if is_random(loaded):
        return scratch_folder()
    return Path(cache_dir) if cache_dir else cache_root()


def engine_folder(loaded, cache_dir: str | Path | None) -> Path:
    """Where compiled engines go: ``cache_dir`` itself if given, else ``engines/`` in the user cache (or in
    the scratch folder for a random network)."""
    if cache_dir and not is_random(loaded):
        return Path(cache_dir)
    return base_folder(loaded, None) / "engines"


def onnx_path(loaded, cache_dir: str | Path | None, precision: str) -> Path:
    """``<cache>/<model>-<classes>c-<weights digest>-<precision>.onnx``."""
    name = f"{loaded.name}-{loaded.dataset.num_classes}c-{loaded.weights_digest}-{precision}.onnx"
    return base_folder(loaded, cache_dir) / name


def int8_missing(loaded, path: Path) -> str:
    return (f"precision int8 needs an INT8 model calibrated for these weights ({loaded.weights_note}), and "
            f"{path} does not exist: make it once with `rtseg-export --weights <the same weights> --int8 "
            f"--calib-root <a dataset folder>` (with the same engine_cache_dir), or use precision:=fp32")


def cached_onnx(network: nn.Module, loaded, cache_dir: str | Path | None, precision: str = "fp32") -> Path:
    """The network's ONNX file for ``precision`` (dynamic H, W, traced at ``export.TRACE_SIZE`` whatever size
    it then runs at), exported on first use. A reduced-precision export has fp16/bf16 weights, input and
    output, which is what a strongly typed TensorRT network and ONNX Runtime then run in. INT8 models are not
    exported here but calibrated (``backends.int8``)."""
    path = onnx_path(loaded, cache_dir, precision)
    if precision == "int8":
        if not path.is_file():
            raise RuntimeError(int8_missing(loaded, path))
        return touch(path)
    if path.is_file():
        return touch(path)
    dtype = getattr(torch, PRECISION_DTYPES[precision])
    export_onnx(copy.deepcopy(network).cpu().to(dtype), path, TRACE_SIZE, dtype=dtype)
    written(path, loaded, cache_dir)
    return path


def engine_cache_key(model: str, num_classes: int, weights_digest: str, input_shape: tuple[int, ...],
                     precision: str, engine: str, engine_version: str, device: str, settings: dict | None = None) -> dict:
    """Everything a compiled engine depends on; a cached one is reused only if all of it matches.
    ``engine``: "tensorrt" or "openvino"; ``device``: the GPU's or CPU's name as the engine reports it;
    ``settings``: compile options that end up in the compiled file (OpenVINO's threading)."""
    return {"model": model, "classes": num_classes, "weights": weights_digest, "input_shape": list(input_shape),
            "precision": precision, "engine": engine, "engine_version": engine_version, "device": device,
            "settings": dict(settings or {})}


def engine_paths(cache_dir: Path, key: dict, suffix: str) -> tuple[Path, Path]:
    """The compiled engine's file (``<stem><suffix>``) and its JSON sidecar."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    shape = "x".join(map(str, key["input_shape"][-2:]))
    stem = f"{key['model']}-{key['classes']}c-{shape}-{key['precision']}-{digest}"
    return cache_dir / f"{stem}{suffix}", cache_dir / f"{stem}.json"


def cached_engine_matches(engine: Path, sidecar: Path, key: dict) -> bool:
    """True if ``engine`` exists and its sidecar records exactly ``key``."""
    if not (engine.is_file() and sidecar.is_file()):
        return False
    try:
        matches = json.loads(sidecar.read_text()) == key
    except (OSError, json.JSONDecodeError):
        return False
    if matches:
        touch(engine), touch(sidecar)
    return matches


# -- the size cap ------------------------------------------------------------------------------------
def touch(path: Path) -> Path:
    """Mark a cache file as used now (its mtime is what least-recently-used eviction reads)."""
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache still serves its files
    return path


@dataclass
class CacheEntry:
    """The files of one cached thing (an export; an engine and its sidecar), by their shared stem."""

    stem: str
    files: list[Path]
    size: int
    used: float  # the newest mtime of its files

    @property
    def calibrated(self) -> bool:
        # INT8 models are made on purpose (rtseg-export --int8, from a dataset) and cannot be remade on the fly
        return self.stem.endswith("-int8")


def cache_entries(folder: str | Path) -> list[CacheEntry]:
    """The cache's entries in ``folder`` and its ``engines/``, least recently used first."""
    groups: dict[str, list[Path]] = {}
    for sub in (Path(folder), Path(folder) / "engines"):
        if sub.is_dir():
            for path in sub.iterdir():
                if path.is_file() and _ENTRY.match(path.name):
                    groups.setdefault(str(sub / path.name.split(".")[0]), []).append(path)
    entries = []
    for stem, files in groups.items():
        stats = [f.stat() for f in files if f.exists()]
        entries.append(CacheEntry(Path(stem).name, files, sum(s.st_size for s in stats),
                                  max((s.st_mtime for s in stats), default=0.0)))
    return sorted(entries, key=lambda e: e.used)


def evict(folder: str | Path, cap_bytes: int, keep: set[Path] = frozenset()) -> list[CacheEntry]:
    """Remove least recently used entries until ``folder`` holds at most ``cap_bytes``; never the files in
    ``keep`` (the one just written) nor calibrated INT8 models. Returns what was removed."""
    entries = cache_entries(folder)
    total, removed = sum(e.size for e in entries), []
    for entry in entries:
        if total <= cap_bytes:
            break
        if entry.calibrated or keep & set(entry.files):
            continue
        for path in entry.files:
            path.unlink(missing_ok=True)  # another process may have evicted it first
        total -= entry.size
        removed.append(entry)
    return removed


def written(path: Path, loaded, cache_dir: str | Path | None) -> None:
    """After a new cache file: keep its cache under the cap (the scratch folder goes at exit anyway)."""
    if not is_random(loaded):
        evict(base_folder(loaded, cache_dir), cache_cap_bytes(), keep={path})


def clear_cache(folder: str | Path) -> list[CacheEntry]:
    """Remove every entry (INT8 models too) from ``folder``."""
    entries = cache_entries(folder)
    for entry in entries:
        for path in entry.files:
            path.unlink(missing_ok=True)
    return entries
