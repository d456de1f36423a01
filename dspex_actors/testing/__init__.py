"""Test helpers to test your programs with, as ``trio.testing`` is for trio.

:class:`RuleBasedLMServer` is a real OpenAI-compatible HTTP server on 127.0.0.1 that
answers by rules (no model), with injectable :class:`Fault`\\ s. Guide:
``docs/testing.md``; command line: ``python -m dspex_actors.testing --help``.
"""

from dspex_actors.testing._faults import FAULT_KINDS, Fault
from dspex_actors.testing._knowledge import DEFAULT_KNOWLEDGE
from dspex_actors.testing._server import DEFAULT_MODEL, RuleBasedLMServer

__all__ = ["DEFAULT_KNOWLEDGE", "DEFAULT_MODEL", "FAULT_KINDS", "Fault", "RuleBasedLMServer"]
