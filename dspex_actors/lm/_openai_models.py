"""Which OpenAI models take which ``response_format``, as DSPy 3.4.1 decides it.

Generated from DSPy 3.4.1's bundled model snapshot
(``dspy.clients.capabilities.capabilities(dspy.LM("openai/<name>"))`` for every OpenAI
chat model the snapshot names): ``"json_schema"`` where DSPy sends Structured Outputs,
``"json_object"`` where it sends JSON mode. A model not listed takes no
``response_format`` from DSPy, and none from us (set ``LM(response_format=...)`` to
say otherwise, e.g. for a local server that supports JSON mode).
"""

from __future__ import annotations

__all__ = ["OPENAI_JSON_OBJECT", "OPENAI_JSON_SCHEMA"]

OPENAI_JSON_SCHEMA: frozenset[str] = frozenset(
    (
        "chat-latest",
        "daybreak-blue-latest",
        "daybreak-red-latest",
        "ft:gpt-4.1-2025-04-14",
        "ft:gpt-4.1-mini-2025-04-14",
        "ft:gpt-4.1-nano-2025-04-14",
        "ft:gpt-4o-2024-08-06",
        "ft:gpt-4o-2024-11-20",
        "ft:gpt-4o-mini-2024-07-18",
        "ft:o4-mini-2025-04-16",
        "gpt-4.1",
        "gpt-4.1-2025-04-14",
        "gpt-4.1-mini",
        "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-nano",
        "gpt-4.1-nano-2025-04-14",
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "gpt-4o-2024-11-20",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        "gpt-4o-mini-search-preview",
        "gpt-4o-search-preview",
        "gpt-5",
        "gpt-5-2025-08-07",
        "gpt-5-chat",
        "gpt-5-chat-latest",
        "gpt-5-mini",
        "gpt-5-mini-2025-08-07",
        "gpt-5-nano",
        "gpt-5-nano-2025-08-07",
        "gpt-5-search-api",
        "gpt-5-search-api-2025-10-14",
        "gpt-5.1",
        "gpt-5.1-2025-11-13",
        "gpt-5.1-chat-latest",
        "gpt-5.2",
        "gpt-5.2-2025-12-11",
        "gpt-5.2-chat-latest",
        "gpt-5.3-chat-latest",
        "gpt-5.4",
        "gpt-5.4-2026-03-05",
        "gpt-5.4-mini",
        "gpt-5.4-mini-2026-03-17",
        "gpt-5.4-nano",
        "gpt-5.4-nano-2026-03-17",
        "gpt-5.5",
        "gpt-5.5-2026-04-23",
        "gpt-5.6",
        "gpt-5.6-cyber",
        "gpt-5.6-luna",
        "gpt-5.6-sol",
        "gpt-5.6-terra",
        "gpt-6-astra",
        "gpt-6-luna",
        "gpt-6-sol",
        "gpt-6.1-sol",
        "o1",
        "o1-2024-12-17",
        "o3",
        "o3-2025-04-16",
        "o3-mini",
        "o3-mini-2025-01-31",
        "o4-mini",
        "o4-mini-2025-04-16",
    )
)

OPENAI_JSON_OBJECT: frozenset[str] = frozenset(
    (
        "computer-use-preview",
        "ft:gpt-4-0613",
        "gpt-3.5-turbo",
        "gpt-3.5-turbo-0125",
        "gpt-3.5-turbo-1106",
        "gpt-4",
        "gpt-4-0613",
        "gpt-4-1106-preview",
        "gpt-4-turbo",
        "gpt-4-turbo-2024-04-09",
        "gpt-4o-2024-05-13",
        "gpt-4o-audio-preview-2024-12-17",
        "gpt-4o-audio-preview-2025-06-03",
        "gpt-4o-mini-audio-preview-2024-12-17",
        "gpt-audio",
        "gpt-audio-1.5",
        "gpt-audio-2025-08-28",
        "gpt-audio-mini",
        "gpt-audio-mini-2025-12-15",
    )
)
