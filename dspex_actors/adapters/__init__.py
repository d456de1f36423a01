"""Adapters: a signature and inputs to chat messages, and a completion back to fields.

:class:`ChatAdapter` (``[[ ## field ## ]]`` blocks) and :class:`JSONAdapter` produce
prompts byte-identical to DSPy 3.4.1's and parse as it does. Adapters are stateless and
thread-safe; parsing is linear in the completion's size, and a completion that does not
parse raises :class:`~dspex_actors.AdapterParseError` and nothing else. Differences from
DSPy 3.4.1, all in parsing: broken JSON longer than 256 characters or nested deeper than
64 only gets linear repairs (a cut-off end closed, a code fence dropped), and Python
literals over 16 KiB are not read (bounds that keep crafted completions from taking
seconds); an indented header line leaves no stray ``]]``.
"""

from dspex_actors.adapters._chat import ChatAdapter, JSONAdapter
from dspex_actors.adapters._response_format import Support, response_format_for

__all__ = ["ChatAdapter", "JSONAdapter", "Support", "response_format_for"]
