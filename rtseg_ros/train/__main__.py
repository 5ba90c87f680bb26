"""``python -m rtseg_ros.train`` (and ``torchrun -m rtseg_ros.train``) = ``rtseg-train``."""
import sys

from .cli import main

sys.exit(main())
