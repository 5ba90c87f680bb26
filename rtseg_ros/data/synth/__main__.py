"""``python -m rtseg_ros.data.synth``: the same as ``rtseg-synth``."""
from .cli import main

raise SystemExit(main())
