"""The Fast DDS profile shipped in config/: well-formed and sized for 4K frames, applied only where it should
be (never over a user's own file, never process-wide here), and accepted by Fast DDS: camera-sized frames
cross two processes best effort with it."""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rtseg_ros.ros.fastdds import PROFILE_ENV, PROFILE_ENVS, PROFILE_NAME, child_env, profile_env, shipped_profile

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / PROFILE_NAME
NS = {"dds": "http://www.eprosima.com"}
FRAME_4K_RGB8 = 3840 * 2160 * 3


def test_profile_is_a_default_participant_with_large_shared_memory_and_udp():
    root = ET.parse(PROFILE).getroot()
    assert root.tag == "{http://www.eprosima.com}dds"
    descriptors = {d.findtext("dds:transport_id", namespaces=NS): d
                   for d in root.findall("dds:profiles/dds:transport_descriptors/dds:transport_descriptor", NS)}
    kinds = {name: d.findtext("dds:type", namespaces=NS) for name, d in descriptors.items()}
    assert sorted(kinds.values()) == ["SHM", "UDPv4"]  # same host: shared memory; other hosts, discovery: UDP
    shm = next(d for d in descriptors.values() if d.findtext("dds:type", namespaces=NS) == "SHM")
    assert int(shm.findtext("dds:segment_size", namespaces=NS)) >= 2 * FRAME_4K_RGB8
    assert int(shm.findtext("dds:port_queue_capacity", namespaces=NS)) * 65000 >= FRAME_4K_RGB8
    participants = root.findall("dds:profiles/dds:participant", NS)
    assert len(participants) == 1 and participants[0].get("is_default_profile") == "true"
    rtps = participants[0].find("dds:rtps", NS)
    used = [t.text for t in rtps.findall("dds:userTransports/dds:transport_id", NS)]
    assert sorted(used) == sorted(descriptors)  # every transport declared is used, and only those
    assert rtps.findtext("dds:useBuiltinTransports", namespaces=NS) == "false"


def test_without_ros_distro_the_installed_wheels_decide_the_name():
    pytest.importorskip("rclpy", reason="ROS 2 wheels not installed")
    from importlib.metadata import version

    jazzy_wheels = version("ros-rclpy").startswith("7.")  # rclpy 7.x: Jazzy, with Fast DDS 2.x
    assert profile_env({}) == {PROFILE_ENVS[1] if jazzy_wheels else PROFILE_ENV: str(PROFILE)}


def test_profile_applies_unless_disabled_or_the_user_has_their_own():
    assert shipped_profile() == PROFILE
    # the name this Fast DDS reads: 3.x (Kilted) warns on every participant when the 2.x name is set too
    assert profile_env({"ROS_DISTRO": "kilted"}) == {PROFILE_ENV: str(PROFILE)}
    assert profile_env({"ROS_DISTRO": "jazzy"}) == {PROFILE_ENVS[1]: str(PROFILE)}
    assert profile_env({PROFILE_ENV: "/mine.xml"}) == {}  # the user's file wins
    assert profile_env({"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"}) == {}  # under either name
    assert profile_env({}, enabled=False) == {}
    assert profile_env({}, profile="/nonexistent/profile.xml") == {}
    assert child_env(environ={"A": "1", "ROS_DISTRO": "kilted"}) == {"A": "1", "ROS_DISTRO": "kilted",
                                                                     PROFILE_ENV: str(PROFILE)}
    # the test suite itself runs without it: only the processes the tools start get it
    assert os.environ.get(PROFILE_ENV) != str(PROFILE)


def probe(role, count, env, *extra):
    return subprocess.Popen([sys.executable, "-m", "rtseg_ros.bench.transport_probe", role, "--size", "1024x2048",
                             "--count", str(count), "--qos", "best_effort", "--topic", f"probe_{os.getpid()}", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_2048x1024_frames_cross_two_processes_best_effort_with_the_profile():
    pytest.importorskip("rclpy", reason="ROS 2 wheels not installed")
    domain = 65 + os.getpid() % 5
    env = child_env(environ={**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE":
                             "LOCALHOST"})
    assert str(PROFILE) in (env.get(name) for name in PROFILE_ENVS)  # under the name this Fast DDS reads
    count = 5
    subscriber = probe("sub", count, env)
    publisher = probe("pub", count, env)
    _, pub_err = publisher.communicate(timeout=90)
    out, sub_err = subscriber.communicate(timeout=90)
    for stderr in (pub_err, sub_err):
        assert "XMLPARSER" not in stderr and "Error" not in stderr, stderr  # Fast DDS accepted the profile
    assert publisher.returncode == subscriber.returncode == 0, pub_err + sub_err
    result = json.loads(out)
    assert (result["received"], result["full"], result["distinct"]) == (count, count, count)
    assert result["p50_ms"] > 0  # receipt after the publisher's stamp, on one clock


def test_a_raw_subscription_reads_stamp_and_frame_id_from_the_serialized_image():
    pytest.importorskip("rclpy", reason="ROS 2 wheels not installed")
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from rtseg_ros.common import cdr_header

    msg = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(18))
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = 1_700_000_000, 123_456_789, "41"
    assert cdr_header(serialize_message(msg)) == (1_700_000_000_123_456_789, "41")


def test_transport_bench_measures_one_configuration_and_tabulates_it():
    pytest.importorskip("rclpy", reason="ROS 2 wheels not installed")
    from rtseg_ros.bench.transport import bench_transport, transport_table

    (row,) = bench_transport(sizes=[(48, 64)], count=3, qos=("reliable",), configs=(("profile", "raw"),))
    assert (row["sent"], row["received"], row["full"], row["settings"], row["subscription"]) == \
        (3, 3, 3, "profile", "raw")
    assert row["rate_hz"] == 10.0 and row["p95_ms"] >= row["p50_ms"] > 0
    assert transport_table([row]).splitlines()[2].startswith("| 64×48 rgb8 | 10 Hz | profile | raw | 3/3, ")
