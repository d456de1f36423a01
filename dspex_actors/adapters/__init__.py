"""Adapters: a signature and inputs to chat messages, and a completion back to fields.

:class:`ChatAdapter` (``[[ ## field ## ]]`` blocks) and :class:`JSONAdapter` produce
prompts byte-identical to DSPy 3.4.1's. Adapters are stateless and thread-safe; a
completion that does not parse raises :class:`~dspex_actors.AdapterParseError`.
"""

from dspex_actors.adapters._chat import ChatAdapter, JSONAdapter

__all__ = ["ChatAdapter", "JSONAdapter"]
