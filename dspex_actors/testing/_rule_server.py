"""The old home of the rule-based server, kept so existing imports and
``python -m dspex_actors.testing._rule_server`` keep working; import from
:mod:`dspex_actors.testing` instead.
"""

import sys

from dspex_actors.testing._cli import main
from dspex_actors.testing._faults import FAULT_KINDS, Fault
from dspex_actors.testing._knowledge import DEFAULT_KNOWLEDGE
from dspex_actors.testing._server import DEFAULT_MODEL, RuleBasedLMServer

__all__ = [
    "DEFAULT_KNOWLEDGE",
    "DEFAULT_MODEL",
    "FAULT_KINDS",
    "Fault",
    "RuleBasedLMServer",
    "main",
]

if __name__ == "__main__":
    sys.exit(main())
