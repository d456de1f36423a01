"""The system's heart: it watches the root supervisor and, if asked, brings it back.

Erlang's ``heart`` restarts a node whose runtime died; here the root supervisor of an
:class:`~dspex_actors.ActorSystem` is watched by a :class:`Heart` actor that lives
outside the tree. When the root ends and nobody asked it to (its restart intensity
was reached), the heart records why (``on_down``) and, with a backoff, calls
``restart`` after a growing delay; during the delay callers fail fast with
``SystemDown``. A stop of the system stops the heart first, so an ordered shutdown is
never mistaken for a crash. Threading: the heart's own actor thread.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

import supervisors as sv
from dspex_actors.primitives import logger

__all__ = ["Heart", "Watch"]


@dataclass(frozen=True, slots=True)
class Watch:
    """Heart (tell): watch this root; ``reason_of()`` says why it gave up, when it did."""

    root: pykka.ActorRef[Any]
    reason_of: Callable[[], str | None]


@dataclass(frozen=True, slots=True)
class _Stop:
    """System -> heart: an ordered shutdown is coming; stop watching."""


class Heart(sv.Actor):
    """Watches one system's root supervisor (see the module docstring).

    ``on_down(reason)`` runs in the heart's thread when the root died unasked;
    ``restart()`` (when ``backoff`` is given) rebuilds the tree and returns the new
    root's :class:`Watch`. A restart that fails is retried after the next delay.
    """

    def __init__(
        self,
        system_name: str,
        on_down: Callable[[str], None],
        restart: Callable[[], Watch] | None,
        backoff: sv.Backoff | None,
    ) -> None:
        super().__init__()
        self.system_name = system_name
        self._on_down = on_down
        self._restart = restart
        self._backoff = backoff
        self._watching: dict[sv.MonitorRef, Watch] = {}
        self._stopping = False
        self._restarts = 0
        self._up_since = time.monotonic()
        self._rng = random.Random()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Watch):
            self._watching[self.monitor(message.root)] = message
            self._up_since = time.monotonic()
        elif isinstance(message, _Stop):
            self._stopping = True
        elif isinstance(message, sv.Down) and message.ref in self._watching:
            watch = self._watching.pop(message.ref)
            if not self._stopping:
                self._root_died(watch, message.reason)
        return None

    def _root_died(self, watch: Watch, exit_reason: sv.Reason) -> None:
        reason = (
            watch.reason_of() or f"the root supervisor exited: {sv.describe_reason(exit_reason)}"
        )
        logger.error("system.down", system=self.system_name, reason=reason)
        self._on_down(reason)
        if self._restart is None or self._backoff is None:
            return
        up_for = time.monotonic() - self._up_since
        self._restarts = self._backoff.next_count(self._restarts, up_for)
        self._come_back(self._backoff.delay(self._restarts, self._rng))

    def _come_back(self, delay: float) -> None:
        """Wait ``delay`` (hearing a stop), then restart; on failure wait longer and retry."""
        assert self._restart is not None and self._backoff is not None
        attempt = self._restarts
        while not self._stopping:
            try:
                self.receive(lambda m: isinstance(m, _Stop), timeout=delay)
            except pykka.Timeout:
                pass
            else:
                self._stopping = True
                return
            try:
                watch = self._restart()
            except Exception as exc:
                attempt += 1
                delay = self._backoff.delay(attempt, self._rng)
                logger.error(
                    "system.restart_failed",
                    system=self.system_name,
                    error=sv.safe_repr(exc),
                    retry_in_s=round(delay, 3),
                )
                continue
            logger.info("system.restarted", system=self.system_name, after_s=round(delay, 3))
            self._watching[self.monitor(watch.root)] = watch
            self._up_since = time.monotonic()
            return

    @staticmethod
    def stop_message() -> Any:
        """The message that tells a heart an ordered shutdown is coming."""
        return _Stop()
