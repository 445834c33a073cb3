"""``python -m revivatech_actors.bench``: the same as ``revivatech-actors bench``."""

import sys

from ._run import main

if __name__ == "__main__":  # importing this module runs nothing
    sys.exit(main())
