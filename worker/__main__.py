"""``python -m floxide_worker TARGET``: run a workflow's worker process."""

import sys

from floxide_worker.cli import main

sys.exit(main())
