"""Cityscapes-style rosbag2 files: writing them from a dataset folder and reading them back. No ROS install.

A bag holds one frame as three messages sharing one header stamp and one log time:

- ``/camera/image_raw``   ``sensor_msgs/msg/Image`` (rgb8 or bgr8; any encoding or a CompressedImage reads too)
- ``/camera/camera_info`` ``sensor_msgs/msg/CameraInfo`` (from Cityscapes' ``camera/*_camera.json`` when present)
- ``/camera/labels_gt``   ``sensor_msgs/msg/Image``, mono8 train ids (255 = ignore)

Messages are kept as serialized CDR bytes wherever possible: the player publishes them as they are and only
rewrites the stamp in place (``restamp``), so replay costs no per-pixel work.
"""
from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import ReaderError
from rosbags.typesys import Stores, get_typestore

from ..common import cdr_byte_order, cdr_stamp, ns_to_stamp, stamp_to_ns
from ..topics import CAMERA_INFO_TOPIC, IMAGE_TOPIC, LABELS_TOPIC
from .encodings import BadFrame, FrameDecoder


CITYSCAPES_RATE_HZ = 17.0  # Cityscapes' video sequences were recorded at about 17 Hz
# The message definitions used here are the same from Humble to Kilted; Jazzy's store also records the
# type hashes that Jazzy and newer rosbag2 expect in the metadata.
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


class BagError(ValueError):
    """The bag is missing, unreadable or lacks what the caller needs; the message says which."""


# --------------------------------------------------------------------------------------------- writing
@dataclass
class Frame:
    """One dataset frame for ``write_bag``: RGB image, train-id labels, pinhole intrinsics (or None)."""
    image: np.ndarray
    labels: np.ndarray | None
    intrinsics: dict | None = None  # {"fx", "fy", "u0", "v0"} in this image's pixels


def _image_msg(pixels: np.ndarray, encoding: str, header):
    height, width = pixels.shape[:2]
    return TYPESTORE.types["sensor_msgs/msg/Image"](
        header=header, height=height, width=width, encoding=encoding, is_bigendian=0, step=pixels[0].size,
        data=np.ascontiguousarray(pixels).reshape(-1))


def _camera_info_msg(frame: Frame, header):
    types = TYPESTORE.types
    height, width = frame.image.shape[:2]
    k = np.zeros(9)
    p = np.zeros(12)
    if frame.intrinsics:  # rectified Cityscapes images: no distortion, P = [K | 0]
        fx, fy, u0, v0 = (float(frame.intrinsics[key]) for key in ("fx", "fy", "u0", "v0"))
        k[:] = (fx, 0, u0, 0, fy, v0, 0, 0, 1)
        p[:] = (fx, 0, u0, 0, 0, fy, v0, 0, 0, 0, 1, 0)
    return types["sensor_msgs/msg/CameraInfo"](
        header=header, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5), k=k,
        r=np.eye(3).reshape(-1), p=p, binning_x=0, binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def write_bag(path: str | Path, frames: Iterable[Frame], rate_hz: float = CITYSCAPES_RATE_HZ,
              storage: str = "sqlite3", encoding: str = "rgb8", frame_id: str = "camera",
              start_ns: int = 1_700_000_000 * 10**9, version: int = 8) -> int:
    """Write ``frames`` as a rosbag2 folder at ``path``; return the number of frames written.

    Frame i has header stamp and log time ``start_ns + i / rate_hz``. The bag is written under a temporary
    name beside ``path`` and renamed when complete, so an interrupted run never leaves a bag that looks whole.
    """
    path = Path(path)
    if path.exists():
        raise BagError(f"{path} already exists; rosbag2 writers never overwrite (remove it or pick another --out)")
    if encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"encoding must be rgb8 or bgr8, got {encoding!r}")
    plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
    if storage not in plugins:
        raise ValueError(f"storage must be one of {', '.join(plugins)}, got {storage!r}")
    types = TYPESTORE.types
    count = 0
    # rosbag2 names the data file after the bag folder, so the bag is written under its final name inside a
    # hidden staging folder, then moved into place: an interrupted run never leaves a bag that looks whole.
    staging = path.with_name(f".{path.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    partial = staging / path.name
    try:
        with Writer(partial, version=version, storage_plugin=plugins[storage]) as writer:
            connections = {}  # topic → connection, added on first use (no labels topic without labels)
            for count, frame in enumerate(frames, 1):
                stamp = start_ns + round((count - 1) * 1e9 / rate_hz)
                sec, nanosec = ns_to_stamp(stamp)
                header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                                      frame_id=frame_id)
                image = frame.image if encoding == "rgb8" else frame.image[..., ::-1]
                messages = [(IMAGE_TOPIC, _image_msg(image, encoding, header), "sensor_msgs/msg/Image"),
                            (CAMERA_INFO_TOPIC, _camera_info_msg(frame, header), "sensor_msgs/msg/CameraInfo")]
                if frame.labels is not None:
                    messages.append((LABELS_TOPIC, _image_msg(frame.labels, "mono8", header), "sensor_msgs/msg/Image"))
                for topic, msg, msgtype in messages:
                    if topic not in connections:
                        connections[topic] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
                    writer.write(connections[topic], stamp, TYPESTORE.serialize_cdr(msg, msgtype))
        partial.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return count


# --------------------------------------------------------------------------------------------- reading
def restamped(raw: bytes, stamp_ns: int) -> bytes:
    """``raw`` with its header stamp replaced (the stamp is the first field after the 4-byte CDR header)."""
    out = bytearray(raw)
    struct.pack_into(cdr_byte_order(raw) + "iI", out, 4, *divmod(stamp_ns, 10**9))
    return bytes(out)


@dataclass
class BagFrameMessages:
    """The serialized messages of one frame (one header stamp), in log order, for the player."""
    stamp_ns: int
    log_time_ns: int
    messages: list[tuple[str, bytes]] = field(default_factory=list)  # (topic, CDR bytes)


@dataclass
class BagContents:
    path: Path
    topics: dict[str, str]  # topic → message type, for the topics read
    frames: list[BagFrameMessages]


def open_reader(path: str | Path) -> Reader:
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError, ValueError, KeyError) as error:
        raise BagError(f"cannot open {path} as a rosbag2 bag (a folder with metadata.yaml and a .db3 or .mcap "
                       f"file): {error}") from error
    return reader


def _messages(reader: Reader, connections: list, path: Path) -> Iterator:
    """``reader.messages``, with what a damaged file raises (e.g. sqlite's CorruptError, a truncated mcap)
    turned into one BagError that says how far reading got."""
    iterator = reader.messages(connections=connections)
    read = 0
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as error:  # the storage plugins raise their own types
            raise BagError(f"{path} is corrupt or truncated: reading failed after {read} messages "
                           f"({type(error).__name__}: {error})") from None
        read += 1
        yield item


def _connections(reader: Reader, path: Path, topics: dict[str, bool]) -> list:
    """Connections of ``topics`` (topic → required); a missing required topic names the ones that exist."""
    available = {c.topic: c.msgtype for c in reader.connections}
    missing = [topic for topic, required in topics.items() if required and topic not in available]
    if missing:
        listing = ", ".join(f"{t} ({m})" for t, m in sorted(available.items())) or "none"
        raise BagError(f"bag {path} has no topic {', '.join(missing)}; its topics: {listing}")
    return [c for c in reader.connections if c.topic in topics]


def load_frames(path: str | Path, topics: dict[str, bool], limit: int = 0) -> BagContents:
    """Read the messages of ``topics`` (topic → required) grouped into frames by header stamp."""
    path = Path(path)
    reader = open_reader(path)
    try:
        connections = _connections(reader, path, topics)
        frames: dict[int, BagFrameMessages] = {}
        for connection, log_time, raw in _messages(reader, connections, path):
            raw = bytes(raw)
            try:
                stamp = cdr_stamp(raw)
            except (struct.error, IndexError):
                raise BagError(f"{connection.topic} in {path} holds a message too short to have a header") from None
            frame = frames.get(stamp)
            if frame is None:
                if limit and len(frames) == limit:
                    break
                frame = frames[stamp] = BagFrameMessages(stamp, log_time)
            frame.messages.append((connection.topic, raw))
        return BagContents(path, {c.topic: c.msgtype for c in connections},
                           sorted(frames.values(), key=lambda f: (f.log_time_ns, f.stamp_ns)))
    finally:
        reader.close()


@dataclass
class LabelledFrame:
    stamp_ns: int
    image: np.ndarray  # H×W×C uint8 in ``encoding``
    encoding: str
    labels: np.ndarray  # H×W uint8 train ids


def labelled_frames(path: str | Path, image_topic: str = IMAGE_TOPIC, labels_topic: str = LABELS_TOPIC,
                    limit: int = 0) -> tuple[int, Iterator[LabelledFrame]]:
    """(number of images, iterator over frames with ground truth) of a bag, read lazily, paired by stamp.

    Images without labels are skipped (and counted in the first number); bad messages raise ``BagError``
    naming the topic, the stamp and the cause.
    """
    path = Path(path)
    reader = open_reader(path)
    connections = _connections(reader, path, {image_topic: True, labels_topic: True})
    for connection in connections:
        if connection.msgtype not in IMAGE_TYPES:
            reader.close()
            raise BagError(f"{connection.topic} in {path} is {connection.msgtype}, expected one of "
                           f"{', '.join(IMAGE_TYPES)}")
    image_connection = next(c for c in connections if c.topic == image_topic)
    total = image_connection.msgcount if limit == 0 else min(limit, image_connection.msgcount)

    def frames() -> Iterator[LabelledFrame]:
        decoders = {image_topic: FrameDecoder(), labels_topic: FrameDecoder()}
        pending: dict[str, dict[int, tuple[np.ndarray, str]]] = {image_topic: {}, labels_topic: {}}
        yielded = 0
        try:
            for connection, _, raw in _messages(reader, connections, path):
                try:
                    msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
                except Exception as error:  # rosbags raises assorted types for malformed CDR
                    raise BagError(f"{connection.topic} in {path}: a message after frame {yielded} does not "
                                   f"deserialize as {connection.msgtype} ({type(error).__name__}: {error})") from None
                stamp = stamp_to_ns(msg.header.stamp)
                decoder = decoders[connection.topic]
                try:
                    pixels, encoding = (decoder.compressed(msg) if connection.msgtype.endswith("CompressedImage")
                                        else decoder.image(msg))
                except BadFrame as error:
                    raise BagError(f"{connection.topic} at stamp {stamp} in {path}: {error}") from None
                if connection.topic == labels_topic and encoding != "mono8":
                    raise BagError(f"{labels_topic} at stamp {stamp} in {path} is {encoding}; ground truth must be "
                                   "mono8 train ids")
                pending[connection.topic][stamp] = (pixels.copy(), encoding)  # decoders reuse their buffers
                other = pending[labels_topic if connection.topic == image_topic else image_topic]
                if stamp in other:
                    image, encoding = pending[image_topic].pop(stamp)
                    labels, _ = pending[labels_topic].pop(stamp)
                    yield LabelledFrame(stamp, image, encoding, labels[..., 0])
                    yielded += 1
                    if limit and yielded == limit:
                        return
        finally:
            reader.close()

    return total, frames()


def bag_summary(path: str | Path) -> dict:
    """Topics, types, counts and duration of a bag (what ``ros2 bag info`` prints), as a dict."""
    reader = open_reader(path)
    try:
        return {"path": str(path), "duration_s": reader.duration / 1e9, "messages": reader.message_count,
                "topics": {c.topic: {"type": c.msgtype, "count": c.msgcount} for c in reader.connections}}
    finally:
        reader.close()


def cityscapes_intrinsics(image_path: Path) -> dict | None:
    """``fx, fy, u0, v0`` from the ``camera/<split>/<city>/*_camera.json`` beside a Cityscapes image."""
    split_dir = image_path.parent.parent
    camera = (split_dir.parent.parent / "camera" / split_dir.name / image_path.parent.name /
              image_path.name.replace("_leftImg8bit.png", "_camera.json"))
    if not camera.is_file():
        return None
    return json.loads(camera.read_text())["intrinsic"]
