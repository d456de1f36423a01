"""Test helpers users test their programs with, as ``trio.testing`` is for trio.

:class:`RuleBasedLMServer` is a real OpenAI-compatible HTTP server on 127.0.0.1 that
answers by rules (no model), with injectable :class:`Fault`\\ s. Guide:
``docs/testing.md``.
"""

from dspex_actors.testing._rule_server import (
    DEFAULT_KNOWLEDGE,
    DEFAULT_MODEL,
    Fault,
    RuleBasedLMServer,
)

__all__ = ["DEFAULT_KNOWLEDGE", "DEFAULT_MODEL", "Fault", "RuleBasedLMServer"]
