"""``python -m revivatech_actors.bench``: the same as ``revivatech-actors bench``."""

import sys

from ._run import main

sys.exit(main())
