"""Streaming: the stream worker, field listeners, and the bounded way out to the caller.

A streamed LM call runs in a :class:`StreamWorker` (an I/O worker that reads
server-sent events with :func:`~dspex_actors.lm.execute_stream`) which tells each
piece of text to its program actor as a :class:`StreamChunk`. The program feeds the
pieces to the call's field splitter (the adapter's ``[[ ## field ## ]]`` markers, or
the JSON keys on the JSON path, recognised even when split across chunks, holding
back text that may start the next marker) and puts a :class:`StreamResponse` per
listened field piece into the caller's :class:`StreamSink`.

Back-pressure end to end: the sink holds at most ``max_buffered`` items (a
semaphore the consumer releases), so a slow consumer blocks the program, which
stops granting the worker credits (:data:`CREDITS` chunks in flight), which stops
reading the socket: memory stays bounded however fast the server sends.
Listener state lives in per-call splitters (DSPy issue #8425: nothing carries over
between calls). Threading: the sink is filled from a program thread and read by
the caller's thread (or its event loop: :class:`AsyncSink`, fed with
``loop.call_soon_threadsafe``; no thread is parked per item).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pykka

import supervisors as sv
from dspex_actors.adapters import JSONAdapter
from dspex_actors.lm import Outcome, execute_stream
from dspex_actors.primitives import DeadlineExceeded, LMError
from dspex_actors.runtime._messages import Completed, Failed, Perform, Run

__all__ = [
    "CREDITS",
    "AsyncSink",
    "ChatFieldSplitter",
    "JSONFieldSplitter",
    "StreamChunk",
    "StreamListener",
    "StreamResponse",
    "StreamSink",
    "StreamWorker",
    "ThreadSink",
    "final_of",
    "start_streaming",
]

CREDITS = 32
"""Chunks a stream worker may have told its program before it waits for it."""


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """Stream worker -> program (tell): the next piece of text of call ``call_id``."""

    call_id: int
    text: str


@dataclass(frozen=True, slots=True)
class StreamResponse:
    """One piece of a listened output field, as the caller receives it (DSPy's name
    and fields): ``predict_name`` (the predictor's name in the program),
    ``signature_field_name``, ``chunk`` (text), ``is_last_chunk``."""

    predict_name: str
    signature_field_name: str
    chunk: str
    is_last_chunk: bool


@dataclass(frozen=True)
class StreamListener:
    """Listen to one output field: ``StreamListener("answer")``.

    ``predict`` (a predictor object) or ``predict_name`` pick the predictor; by
    default every predictor with that output field. ``allow_reuse``: keep listening
    after the field was streamed once in this run (a loop calling the same
    predictor again); by default a listener streams its field once per run.
    Pure configuration: immutable, reusable across calls (state is per call).
    """

    signature_field_name: str
    predict: Any = None
    predict_name: str | None = None
    allow_reuse: bool = False

    def matches(self, predictor: Any, name: str, field: str) -> bool:
        """Whether this listener wants ``field`` of ``predictor`` (named ``name``)."""
        if field != self.signature_field_name:
            return False
        if self.predict is not None and self.predict is not predictor:
            return False
        return self.predict_name is None or self.predict_name == name


# ------------------------------------------------------------------------- splitters

Piece = tuple[str, str, bool]
"""(field, text, is_last)."""

_OPEN = "[[ ## "
_CLOSE = " ## ]]"


def _hold_from(text: str) -> int:
    """Where the text that must wait starts: a suffix that may begin a marker, and
    the whitespace before it (a field's last chunk is sent without trailing space)."""
    cut = len(text)
    for k in range(min(len(_OPEN) - 1, len(text)), 0, -1):
        if text.endswith(_OPEN[:k]):
            cut = len(text) - k
            break
    return len(text[:cut].rstrip())


class ChatFieldSplitter:
    """Splits ChatAdapter output into fields at ``[[ ## name ## ]]`` markers."""

    def __init__(self) -> None:
        self._pending = ""
        self._field: str | None = None
        self._fresh = False  # at the start of a field: leading whitespace dropped

    def _emit(self, out: list[Piece], text: str, last: bool) -> None:
        if self._field is None:
            return
        if self._fresh:
            text = text.lstrip()
            self._fresh = not text
        if text or last:
            out.append((self._field, text, last))

    def feed(self, text: str) -> list[Piece]:
        """The field pieces ``text`` completes."""
        self._pending += text
        out: list[Piece] = []
        while True:
            pending = self._pending
            start = pending.find(_OPEN)
            end = pending.find(_CLOSE, start + len(_OPEN)) if start != -1 else -1
            if start == -1 or end == -1:
                hold = _hold_from(pending) if start == -1 else len(pending[:start].rstrip())
                self._emit(out, pending[:hold], False)
                self._pending = pending[hold:]
                return out
            self._emit(out, pending[:start].rstrip(), self._field is not None)
            self._field = pending[start + len(_OPEN) : end].strip()
            self._fresh = True
            self._pending = pending[end + len(_CLOSE) :]

    def close(self) -> list[Piece]:
        """The end of the text: the open field's last piece."""
        out: list[Piece] = []
        self._emit(out, self._pending.rstrip(), True)
        self._pending, self._field = "", None
        return out


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "\\": "\\", "/": "/"}


class JSONFieldSplitter:
    """Splits JSONAdapter output (one JSON object, fences and prose around it
    ignored) into fields by its top-level keys; string values are streamed decoded,
    other values as their JSON text."""

    def __init__(self) -> None:
        self._state = "seek"
        self._key: list[str] = []
        self._field = ""
        self._escape = ""  # a pending escape: "\\" or "\\uXX..."
        self._depth = 0
        self._in_string = False

    def feed(self, text: str) -> list[Piece]:
        out: list[Piece] = []
        buf: list[str] = []
        for char in text:
            self._step(char, buf, out)
        if buf:
            out.append((self._field, "".join(buf), False))
        return out

    def _end_value(self, buf: list[str], out: list[Piece], raw: bool) -> None:
        text = "".join(buf)
        buf.clear()
        out.append((self._field, text.rstrip() if raw else text, True))

    def _step(self, char: str, buf: list[str], out: list[Piece]) -> None:  # noqa: PLR0912
        state = self._state
        if state == "seek":
            if char == "{":
                self._state = "key_wait"
        elif state == "key_wait":
            if char == '"':
                self._state, self._key = "key", []
            elif char == "}":
                self._state = "seek"
        elif state == "key":
            if self._escape:
                self._key.append(char)
                self._escape = ""
            elif char == "\\":
                self._escape = "\\"
            elif char == '"':
                self._state = "colon"
            else:
                self._key.append(char)
        elif state == "colon":
            if char == ":":
                self._state, self._field = "value_wait", "".join(self._key)
        elif state == "value_wait":
            if char == '"':
                self._state = "string"
            elif not char.isspace():
                self._state, self._depth, self._in_string = "raw", 0, False
                self._raw(char, buf, out)
        elif state == "string":
            self._string(char, buf, out)
        elif state == "raw":
            self._raw(char, buf, out)
        elif state == "after" and char in ",}":
            self._state = "key_wait" if char == "," else "seek"

    def _string(self, char: str, buf: list[str], out: list[Piece]) -> None:
        if self._escape:
            self._escape += char
            if self._escape == "\\u" or (self._escape.startswith("\\u") and len(self._escape) < 6):
                return
            if self._escape.startswith("\\u"):
                try:
                    buf.append(chr(int(self._escape[2:], 16)))
                except ValueError:
                    buf.append(self._escape)
            else:
                buf.append(_ESCAPES.get(char, char))
            self._escape = ""
        elif char == "\\":
            self._escape = "\\"
        elif char == '"':
            self._end_value(buf, out, raw=False)
            self._state = "after"
        else:
            buf.append(char)

    def _raw(self, char: str, buf: list[str], out: list[Piece]) -> None:
        if self._in_string:
            self._in_string = not (char == '"' and (not buf or buf[-1] != "\\"))
        elif char == '"':
            self._in_string = True
        elif char in "[{":
            self._depth += 1
        elif char in "]}" and self._depth > 0:
            self._depth -= 1
        elif char in ",}" and self._depth == 0:
            self._end_value(buf, out, raw=True)
            self._state = "key_wait" if char == "," else "seek"
            return
        buf.append(char)

    def close(self) -> list[Piece]:
        return []


# ------------------------------------------------------------------------------ sinks


class _Final:
    __slots__ = ("error", "value")

    def __init__(self, value: Any, error: BaseException | None) -> None:
        self.value = value
        self.error = error


class StreamSink:
    """Where a streaming program puts its field pieces; the reply slot of its ``Run``.

    Subclasses deliver (:class:`ThreadSink`, :class:`AsyncSink`). ``listeners`` and
    ``names`` (predictor id -> its name in the program) decide which fields go out.
    Threading: :meth:`begin`/:meth:`feed`/:meth:`end` from the program thread only;
    ``set``/``set_exception`` once, from the program's thread at its end.
    """

    def __init__(
        self, listeners: Sequence[StreamListener], names: dict[int, str], max_buffered: int
    ) -> None:
        self.listeners = list(listeners)
        self.names = names
        self.closed = False  # the consumer went away: pieces are dropped
        self._credits = threading.Semaphore(max_buffered)
        self._splitter: ChatFieldSplitter | JSONFieldSplitter | None = None
        self._predictor: Any = None
        self._name = ""
        self._done: set[int] = set()  # listeners (by index) that streamed their field
        self.deadline = time.monotonic() + 3600.0

    # -- the program side

    def begin(self, predictor: Any, json_path: bool) -> None:
        """A new LM call of ``predictor`` starts: a fresh splitter (per-call state)."""
        self._predictor = predictor
        self._name = self.names.get(id(predictor), type(predictor).__name__.lower())
        self._splitter = JSONFieldSplitter() if json_path else ChatFieldSplitter()

    def feed(self, text: str) -> None:
        """Split ``text`` and send the listened pieces (blocks while the consumer is
        behind; raises :class:`DeadlineExceeded` if it stays behind past the deadline)."""
        if self._splitter is not None:
            self._send(self._splitter.feed(text))

    def end(self) -> None:
        """The LM call is over (answer complete): flush the open field."""
        if self._splitter is not None:
            self._send(self._splitter.close())
        self._splitter = None

    def _send(self, pieces: list[Piece]) -> None:
        for field, text, last in pieces:
            for index, listener in enumerate(self.listeners):
                if index in self._done and not listener.allow_reuse:
                    continue
                if not listener.matches(self._predictor, self._name, field):
                    continue
                if last:
                    self._done.add(index)
                self._put(StreamResponse(self._name, field, text, last))
                break

    def _put(self, item: Any) -> None:
        if self.closed:
            return
        if not self._credits.acquire(timeout=max(self.deadline - time.monotonic(), 0.001)):
            raise DeadlineExceeded("the stream's consumer fell behind past the request deadline")
        self._deliver(item)

    def _deliver(self, item: Any) -> None:
        raise NotImplementedError

    # -- the reply slot (the program's answer)

    def set(self, value: Any = None) -> None:
        self._deliver(_Final(value, None))

    def set_exception(self, exc_info: Any = None) -> None:
        error = exc_info[1] if exc_info else pykka.ActorDeadError("no reply")
        self._deliver(_Final(None, error))

    def taken(self) -> None:
        """The consumer took one piece (its slot is free again)."""
        self._credits.release()


class ThreadSink(StreamSink):
    """A sink read by a thread (``for item in stream(...)``)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.items: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def _deliver(self, item: Any) -> None:
        self.items.put(item)


class AsyncSink(StreamSink):
    """A sink read by an event loop (``async for item in stream.aiter(...)``): each
    item is handed to the loop with ``call_soon_threadsafe``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *args: Any) -> None:
        super().__init__(*args)
        self.loop = loop
        self.items: asyncio.Queue[Any] = asyncio.Queue()

    def _deliver(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.items.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.closed = True


# ----------------------------------------------------------------------------- worker


class StreamWorker(sv.Actor):
    """Runs one streamed attempt for one program actor, then exits (as ``IOWorker``).

    Each piece of text is told to the program as a :class:`StreamChunk` once a
    credit is free (the program returns one per chunk it has forwarded); the
    completion follows as :class:`Completed`. Failures crash it with the typed error.
    """

    log_crashes = False
    reuse_threads = True
    register_in_pykka = False

    def __init__(
        self,
        plan: Any,
        session: Any,
        program: pykka.ActorRef[Any],
        report: Any,
        call_id: int,
        credits: threading.Semaphore,
        deadline: float,
    ) -> None:
        super().__init__()
        self._plan, self._session, self._program = plan, session, program
        self._report, self._call_id = report, call_id
        self._credits, self._deadline = credits, deadline

    def _chunk(self, text: str) -> None:
        if not self._credits.acquire(timeout=max(self._deadline - time.monotonic(), 0.001)):
            raise DeadlineExceeded("the program did not take the stream's chunks in time")
        self._program.tell(StreamChunk(self._call_id, text))

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, Perform):
            return None
        started = time.monotonic()
        try:
            completion = execute_stream(self._session, self._plan, self._chunk)
        except LMError as exc:
            self._report(Outcome(ok=False, latency_s=time.monotonic() - started, error=exc))
            raise
        except pykka.ActorDeadError:
            self._report(Outcome(ok=True, latency_s=time.monotonic() - started))
            return None  # the program gave up meanwhile
        usage = completion.usage or None  # a stream without final usage: unknown
        self._report(Outcome(ok=True, latency_s=completion.latency_s, usage=usage))
        self.unlink(self._program)
        self.drop_monitors_of(self._program)
        program, done = self._program, Completed(self._call_id, completion)

        def hand_over() -> None:
            try:
                program.tell(done)
            except pykka.ActorDeadError:
                pass

        self.exit_then(hand_over)
        return None

    def describe(self) -> str | None:
        return f"STREAM {self._plan.model}"


def json_path(adapter: Any) -> bool:
    """Whether ``adapter`` writes JSON (the JSON adapter, or one of its subclasses)."""
    return isinstance(adapter, JSONAdapter)


def start_streaming(system: Any, module: Any, inputs: dict[str, Any], sink: StreamSink) -> Any:
    """Start a program actor running ``module(**inputs)`` that streams into ``sink``
    (also its reply slot: the final :class:`_Final` arrives there last). Returns the
    program's ref at once. Raises what ``system.run`` raises before any I/O."""
    system._check_open()
    timeout = system.request_timeout(None)
    deadline = time.monotonic() + timeout
    sink.deadline = deadline
    run = Run(module, dict(inputs), deadline, stream=sink)
    try:
        return sv.start_child(
            system._programs_name,
            system.runtime.program_spec,
            in_caller=True,
            first_message=(run, sink),
        )
    except (sv.NoProc, pykka.ActorDeadError) as exc:
        raise system._down_error() or exc from exc


def final_of(item: Any) -> tuple[bool, Any]:
    """``(True, prediction)`` for the final item of a sink (raising its error), else
    ``(False, item)``."""
    if not isinstance(item, _Final):
        return False, item
    if item.error is not None:
        raise item.error
    if isinstance(item.value, Failed):
        raise item.value.error
    return True, item.value
