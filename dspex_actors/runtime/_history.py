"""Printing a system's LM-call history the way DSPy's ``inspect_history`` does.

The history itself is a bounded deque on the runtime, appended by program actors
(``ProgramActor._note_call``) and read by ``ActorSystem.history``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["print_history"]


def _paint(code: str, text: str, *, colours: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colours else text


def print_history(entries: Sequence[dict[str, Any]], file: TextIO | None = None) -> None:
    """Print ``entries`` (oldest first): timestamp, each message, the response.

    As DSPy 3.4.1's ``pretty_print_history``: to stdout with ANSI colours, or to
    ``file`` without them; a cache hit and the call's usage are noted after the
    response (DSPy has no such line).
    """
    out = file or sys.stdout
    colours = file is None
    for entry in entries:
        print("\n\n\n", file=out)
        print(_paint("34", f"[{entry['timestamp']}]", colours=colours) + "\n", file=out)
        for message in entry["messages"]:
            role = str(message.get("role", "user")).capitalize()
            print(_paint("31", f"{role} message:", colours=colours) + "\n", file=out)
            print(str(message.get("content", "")).strip(), file=out)
            print("\n", file=out)
        print(_paint("31", "Response:", colours=colours) + "\n", file=out)
        outputs = entry.get("outputs") or [""]
        print(_paint("32", str(outputs[0]).strip(), colours=colours) + "\n", file=out)
        note = "cache hit" if entry.get("cache_hit") else f"usage: {entry.get('usage')}"
        print(f"({entry['model']}, {entry['latency_ms']} ms, {note})", file=out)
    print("\n\n\n", file=out)
