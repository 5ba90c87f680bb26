"""A one-frame hand-off between a producer (a subscription callback) and a worker thread: latest wins.

``put`` never blocks and replaces a frame nobody took yet (counting it), so the worker never works through
a queue of stale frames. ``take`` blocks until a frame is there and, with ``max_fps``, until 1/max_fps has
passed since the previous take; while it waits, newer frames keep replacing the held one, so what it hands
out is always the newest. No ROS here: the node wires it to its callback and worker, tests drive it with
threads and an injected clock.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any


class LatestSlot:
    """Holds at most one item. ``replaced`` counts items overwritten before anyone took them."""

    def __init__(self, max_fps: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self._cond = threading.Condition()
        self._clock = clock
        self._item: Any = None
        self._held = False
        self._closed = False
        self._max_fps = max_fps
        self._last_take = -math.inf
        self.replaced = 0

    # -- producer side --------------------------------------------------------------------------------
    def put(self, item: Any) -> bool:
        """Keep ``item`` as the newest; True when it replaced one that was never taken."""
        with self._cond:
            replaced = self._held
            self.replaced += replaced
            self._item, self._held = item, True
            self._cond.notify()
        return replaced

    def clear(self) -> None:
        """Drop the held item, if any (not counted as replaced)."""
        with self._cond:
            self._item, self._held = None, False

    def set_max_fps(self, max_fps: float) -> None:
        """Change the pacing; a waiting ``take`` re-plans at once (0: no limit)."""
        with self._cond:
            self._max_fps = max_fps
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every ``take`` and make it (and all later ones) return None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Make waiting takers look at the clock again (for clocks that are not wall time)."""
        with self._cond:
            self._cond.notify_all()

    # -- consumer side --------------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        return self._held

    def due_in(self) -> float:
        """Seconds until a held item may be taken under ``max_fps`` (≤ 0: now)."""
        if self._max_fps <= 0:
            return 0.0
        return self._last_take + 1.0 / self._max_fps - self._clock()

    def take(self, block: bool = True) -> Any:
        """The newest item, once there is one and it is due; None when closed (or, unblocked, when none is
        ready now)."""
        with self._cond:
            while not self._closed:
                if self._held:
                    wait = self.due_in()
                    if wait <= 0:
                        item, self._item, self._held = self._item, None, False
                        self._last_take = self._clock()
                        return item
                else:
                    wait = None
                if not block:
                    return None
                self._cond.wait(wait)
            return None
