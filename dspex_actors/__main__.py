"""``python -m dspex_actors demo``: see :mod:`dspex_actors._demo`."""

from __future__ import annotations

import sys

from dspex_actors._demo import main

if __name__ == "__main__":
    sys.exit(main())
