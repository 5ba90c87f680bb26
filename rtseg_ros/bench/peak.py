"""The search behind ``rtseg-bench --node --peak``: the highest rate a target keeps up with, no ROS.

``rtseg_ros.bench.node_measure`` runs it against the node and the relay; on its own so that neither
``bench.node`` nor ``node_measure`` imports the other for it.
"""
from __future__ import annotations


def search_peak(passes, low_hz: float, high_hz: float, bisections: int) -> tuple[float | None, float | None]:
    """(highest passing rate, lowest failing rate) of ``passes(rate)``: doubling from ``low_hz`` up to
    ``high_hz``, then ``bisections`` geometric bisections of the bracket. None where no probe passed/failed."""
    good, bad, rate = None, None, low_hz
    while rate <= high_hz:
        if not passes(rate):
            bad = rate
            break
        good, rate = rate, 2 * rate
    if good is not None and bad is not None:
        for _ in range(bisections):
            middle = (good * bad) ** 0.5
            good, bad = (middle, bad) if passes(middle) else (good, middle)
    return good, bad
