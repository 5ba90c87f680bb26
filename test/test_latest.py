"""The latest-frame slot between the node's callback and its worker thread, without ROS: latest wins,
replaced frames are counted, max_fps paces takes (an injected clock, no wall-clock thresholds), and a
closed slot releases its worker."""
import threading

from rtseg_ros.runtime.latest import LatestSlot


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_latest_put_wins_and_replaced_ones_are_counted():
    slot = LatestSlot()
    assert slot.take(block=False) is None
    assert slot.put("a") is False
    assert slot.put("b") is True and slot.put("c") is True
    assert slot.replaced == 2
    assert slot.take() == "c"
    assert slot.take(block=False) is None and not slot.held
    assert slot.put("d") is False  # the slot was emptied by the take: nothing replaced
    slot.clear()
    assert slot.take(block=False) is None and slot.replaced == 2


def test_none_is_a_frame_like_any_other():
    slot = LatestSlot()
    slot.put(None)
    assert slot.held and slot.put(0) is True and slot.take() == 0


def test_max_fps_paces_takes_and_newer_frames_replace_the_waiting_one():
    clock = FakeClock()
    slot = LatestSlot(max_fps=10.0, clock=clock)
    slot.put(1)
    assert slot.take(block=False) == 1  # the first frame is due at once
    slot.put(2)
    assert slot.take(block=False) is None  # 1/max_fps has not passed
    assert slot.due_in() == 0.1
    clock.now = 0.05
    slot.put(3)  # arrives while the worker waits: it replaces 2
    assert slot.take(block=False) is None
    clock.now = 0.1
    assert slot.take(block=False) == 3 and slot.replaced == 1
    slot.set_max_fps(0.0)  # no limit: due at once again
    slot.put(4)
    assert slot.take(block=False) == 4


def test_a_waiting_worker_gets_the_newest_frame_when_it_is_due():
    clock = FakeClock()
    slot = LatestSlot(max_fps=2.0, clock=clock)
    slot.put("first")
    assert slot.take() == "first"
    taken = []
    worker = threading.Thread(target=lambda: taken.append(slot.take()))
    worker.start()  # blocks: nothing held
    slot.put("second")
    slot.put("third")  # still not due on the injected clock: the worker keeps waiting, third replaces second
    worker.join(timeout=0.05)
    assert worker.is_alive() and taken == []
    clock.now = 0.5
    slot.wake()
    worker.join(timeout=10)
    assert taken == ["third"] and slot.replaced == 1


def test_lowering_max_fps_releases_a_waiting_worker():
    clock = FakeClock()
    slot = LatestSlot(max_fps=0.001, clock=clock)  # one frame per 1000 s
    slot.put("first")
    slot.take()
    slot.put("second")
    taken = []
    worker = threading.Thread(target=lambda: taken.append(slot.take()))
    worker.start()
    slot.set_max_fps(0.0)
    worker.join(timeout=10)
    assert taken == ["second"]


def test_close_releases_a_blocked_worker():
    slot = LatestSlot()
    taken = []
    worker = threading.Thread(target=lambda: taken.append(slot.take()))
    worker.start()
    slot.close()
    worker.join(timeout=10)
    assert taken == [None] and not worker.is_alive()
    slot.put("late")
    assert slot.take() is None  # closed for good
