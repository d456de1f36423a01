"""``python -m dspex_actors.testing``: run the rule-based server (see ``--help``)."""

import sys

from dspex_actors.testing._cli import main

if __name__ == "__main__":
    sys.exit(main())
