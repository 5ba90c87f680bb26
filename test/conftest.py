import atexit
import os
import shutil
import tempfile

import pytest
import torch

# Keep DDS on this machine and away from other runs (CI sets these too; tests must not depend on it).
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "77")
# The suite never touches the user's engine cache, and starts cold every run (as on a new machine): a test
# that passes only with warm caches fails here. Child processes (nodes, CLIs) inherit it.
os.environ["RTSEG_CACHE"] = tempfile.mkdtemp(prefix="rtseg-test-cache-")
atexit.register(shutil.rmtree, os.environ["RTSEG_CACHE"], ignore_errors=True)

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped without one; the GPU check runs -m cuda)")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
