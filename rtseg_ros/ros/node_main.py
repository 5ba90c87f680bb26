"""The console-script entry shared by the package's nodes: ``--help`` without ROS, ROS arguments passed to
rclpy, a start-up error as one ``[FATAL]`` line with exit status 1, and a clean shutdown."""
from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable

import rclpy
from rclpy.impl.implementation_singleton import rclpy_implementation

from rtseg_ros.ros.params import Param, markdown_table


def _interrupt_once(signum, frame) -> None:
    """Raise KeyboardInterrupt for the first SIGINT only.

    Ctrl-C on ``ros2 launch`` reaches a node twice: the terminal signals the whole process group, and launch
    forwards its own SIGINT. A second KeyboardInterrupt would land in the shutdown (``destroy_node``, the
    evaluator's report) and end the process with a traceback.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def node_main(argv: list[str] | None, prog: str, summary: str, doc: str, usage: str, table: tuple[Param, ...],
              make_node: Callable, startup_errors: tuple[type[BaseException], ...], run: Callable,
              add_options: Callable | None = None) -> int:
    """Parse ``--help`` (and the node's own options, added by ``add_options(parser)``), init rclpy, build the
    node with ``make_node(**options)`` and return ``run(node)``.

    ``doc`` is the module docstring; its text after the first paragraph describes the node in ``--help``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"{summary}\n\n" + doc.split("\n\n", 1)[1],
        epilog=f"usage with ROS arguments: {usage}\n\nparameters:\n" + markdown_table(table))
    try:
        own_args = rclpy.utilities.remove_ros_args([prog, *argv])[1:]
    except rclpy_implementation.RCLInvalidROSArgsError as exc:  # e.g. "-p model:=" with no value
        reason = str(exc).split(". Error:")[0].removeprefix("Failed to parse ROS arguments: ")
        parser.exit(2, f"{prog}: error: invalid ROS arguments: {reason} (an empty string is -p name:=\"''\")\n")
    if add_options is not None:
        add_options(parser)
    options = vars(parser.parse_args(own_args))
    # Before rclpy.init, whose handler calls it. Not restored: this is a console script's whole process, and a
    # late SIGINT must not turn its exit into a traceback.
    signal.signal(signal.SIGINT, _interrupt_once)
    rclpy.init(args=[prog, *argv])
    try:
        try:
            node = make_node(**options)
        except startup_errors as exc:
            rclpy.logging.get_logger(prog).fatal(f"cannot start: {exc}")
            return 1
        try:
            return run(node)
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
