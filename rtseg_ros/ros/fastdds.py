"""The Fast DDS transport profile shipped in ``config/``, and the environment that applies it to a process.

Fast DDS reads ``FASTDDS_DEFAULT_PROFILES_FILE`` (3.x, Kilted; 2.x, Jazzy's, reads only the older name
``FASTRTPS_DEFAULT_PROFILES_FILE``, and 3.x warns on every participant when that one is set) when a process
creates its first participant, so the
profile is given per process (the launch files' ``Node`` actions, the processes ``rtseg-replay``,
``rtseg-demo`` and ``rtseg-bench`` start), never process-wide: a user's own file always wins, and other
processes are untouched. No rclpy here: the launch files and tests call this without a ROS context.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE_ENVS = (PROFILE_ENV, "FASTRTPS_DEFAULT_PROFILES_FILE")  # Fast DDS 3.x, 2.x
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")
PROFILE_NAME = "fastdds_large_frames.xml"
PACKAGE = "rtseg_ros"


def shipped_profile() -> Path | None:
    """The shipped profile: the source tree's ``config/`` (a checkout or an editable install), else the
    installed ``share/rtseg_ros/config`` (colcon, pip), else the ament index. None when none is found."""
    for candidate in (Path(__file__).resolve().parents[2] / "config" / PROFILE_NAME,
                      Path(sys.prefix) / "share" / PACKAGE / "config" / PROFILE_NAME):
        if candidate.is_file():
            return candidate
    try:
        from ament_index_python.packages import get_package_share_directory

        candidate = Path(get_package_share_directory(PACKAGE)) / "config" / PROFILE_NAME
    except (ImportError, LookupError, OSError):  # not installed with colcon, or no ament environment
        return None
    return candidate if candidate.is_file() else None


def fast_dds_2(environ: Mapping[str, str]) -> bool:
    """Whether this machine's Fast DDS is 2.x: a sourced Humble/Iron/Jazzy install (``ROS_DISTRO``), or without
    one the PyPI wheels of 2.x (``ros-fastrtps``; 3.x is ``ros-fastdds``)."""
    if environ.get("ROS_DISTRO"):
        return environ["ROS_DISTRO"] in FAST_DDS_2_DISTROS
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("ros-fastrtps")
    except PackageNotFoundError:
        return False
    return True


def profile_env(environ: Mapping[str, str], enabled: bool = True, profile: str | Path | None = None
                ) -> dict[str, str]:
    """The variables to add to a child process's environment: the profile (``profile``, default the shipped
    one) under the name this Fast DDS reads, unless it is disabled, the user already named their own file in
    ``environ`` (under either name), or no file exists."""
    if not enabled or any(environ.get(name) for name in PROFILE_ENVS):
        return {}
    path = Path(profile) if profile is not None else shipped_profile()
    if path is None or not path.is_file():
        return {}
    return {PROFILE_ENVS[1] if fast_dds_2(environ) else PROFILE_ENV: str(path)}


def child_env(enabled: bool = True, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A whole environment for a child process: ``environ`` (default this process's) plus the profile."""
    base = dict(os.environ if environ is None else environ)
    return {**base, **profile_env(base, enabled)}
