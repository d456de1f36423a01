"""An incremental parser of server-sent events (the WHATWG ``text/event-stream`` format).

Bytes go in as they arrive from the socket, in pieces of any size (a line, an event,
even a UTF-8 character may be split across pieces); complete events come out. What
the format says and the providers rely on: lines end in ``\\n``, ``\\r\\n`` or ``\\r``;
a blank line ends an event; ``data:`` lines of one event are joined with ``\\n``
(multi-line data); a line starting with ``:`` is a comment (a keep-alive, ignored);
``event:`` names the event (``"message"`` if absent); one space after the colon is
dropped; a field without a colon has an empty value; a leading BOM is skipped. An
event with no ``data`` line is not dispatched (as a browser's ``EventSource`` does).

Pure; one parser per stream, used by one thread.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["MAX_EVENT_BYTES", "SSEEvent", "SSEParser"]

MAX_EVENT_BYTES = 8 * 1024 * 1024
"""The largest event (its buffered lines) a parser holds before it refuses the stream."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its ``event`` name (``"message"`` by default), its
    ``data`` (the ``data:`` lines joined with ``\\n``) and its last ``id``."""

    event: str
    data: str
    id: str | None = None


class SSEParser:
    """Feed it bytes with :meth:`feed`, get the events completed so far.

    Raises ``ValueError`` when a single event grows past ``max_event_bytes`` (a
    server that never ends its event must not make us hold unbounded memory).
    """

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # text after the last line end
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._size = 0
        self._started = False
        self._cr = False  # the last text ended in "\r": a following "\n" belongs to it
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events that ``chunk`` completes (possibly none)."""
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._cr and text.startswith("\n"):
            text = text[1:]
        self._cr = text.endswith("\r")
        text = self._pending + text
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._pending = lines.pop()
        if len(self._pending) > self._max:
            raise ValueError(f"a server-sent event line longer than {self._max} bytes")
        events: list[SSEEvent] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SSEEvent]:
        """The end of the stream: an unterminated last event is dropped, as the
        format says (a cut stream's half event is not an event)."""
        self._pending = ""
        self._data, self._event, self._size = [], "", 0
        return []

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._size += len(value) + 1
            if self._size > self._max:
                raise ValueError(f"a server-sent event larger than {self._max} bytes")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\x00" not in value:
            self._id = value
        return None  # "retry" and unknown fields: ignored

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(self._event or "message", "\n".join(self._data), self._id)
        self._data, self._event, self._size = [], "", 0
        return event
