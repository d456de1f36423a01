"""The LM client actor: one per configured LM, long-lived, supervised.

It owns the LM's configuration, its HTTP connection pool and its
:class:`~dspex_actors.lm.Admission` (token-bucket rate limit, circuit breaker,
statistics). It **never does HTTP itself and never crashes because a request
failed**. The request path does not message it: programs and I/O workers call the
admission it published (OTP's ETS pattern); it still answers ``PlanRequest`` and
``Outcome`` messages for callers that have no admission table.
"""

from __future__ import annotations

from typing import Any

import supervisors as sv
from dspex_actors.lm._admission import Admission, AdmissionTable, LMCounters
from dspex_actors.lm._config import LM
from dspex_actors.lm._http import make_session
from dspex_actors.lm._messages import (
    BreakerDisable,
    BreakerEnable,
    Outcome,
    Planned,
    PlanRequest,
    Refused,
    Reset,
    Wait,
)
from dspex_actors.primitives import GetState, GetStats, UnknownMessage, logger
from supervisors import Actor

__all__ = ["LMClient", "LMCounters"]


class LMClient(Actor):
    """Holds one LM's config, connection pool and admission (rate limit, breaker, stats).

    Messages: :class:`PlanRequest` (ask) -> :class:`Planned` | :class:`Wait` |
    :class:`Refused`; :class:`Outcome` (tell); :class:`GetStats` (ask) -> dict.

    ``counters`` are handed in by the system so they survive restarts of this actor;
    ``table`` is where it publishes its admission for programs to use without an ask.

    Threading: hooks and messages run in the actor's thread; the admission (and the
    ``requests.Session`` in it, whose urllib3 pool is thread-safe) is used from program
    and worker threads. On restart (a bug here, never a failed request) the pool, the
    token bucket and the breaker start afresh; the counters are kept.
    """

    def __init__(
        self,
        lm_name: str,
        lm: LM,
        counters: LMCounters | None = None,
        table: AdmissionTable | None = None,
    ) -> None:
        super().__init__()
        self.lm_name = lm_name
        self.lm = lm
        self._counters = counters if counters is not None else LMCounters()
        self._table = table
        self._admission: Admission | None = None

    @property
    def admission(self) -> Admission | None:
        """The admission this client published (``None`` before ``on_start``)."""
        return self._admission

    def on_start(self) -> None:
        with self._counters.lock:
            # Counted here, not taken from restart_count: the client's own supervisor
            # may itself be restarted (a crash storm), which starts that count afresh.
            self._counters.starts += 1
            self._counters.restarts = self._counters.starts - 1
        session = make_session(self.lm.pool_size, base_url=self.lm.chat_url)
        self._admission = Admission(
            self.lm_name, self.lm, session, self._counters, owner_stopped=self.actor_stopped
        )
        if self._table is not None:
            self._table.publish(self._admission)

    def on_stop(self) -> None:
        self._close()

    def on_failure(self, *_exc_info: Any) -> None:
        self._close()

    def _close(self) -> None:
        admission = self._admission
        if admission is None:
            return
        if self._table is not None:
            self._table.withdraw(admission)
        admission.close()
        admission.session.close()

    #: What :meth:`on_receive` handles (named by :class:`UnknownMessage` otherwise).
    ACCEPTS = (PlanRequest, Outcome, GetStats, GetState, Reset, BreakerDisable, BreakerEnable)

    def on_receive(self, message: Any) -> Any:
        admission = self._admission
        assert admission is not None
        if isinstance(message, PlanRequest):
            return self._plan(admission, message)
        if isinstance(message, Outcome):
            admission.record(message)
            return None
        if isinstance(message, GetStats):
            return self.stats()
        if isinstance(message, GetState):
            return self.state()
        if isinstance(message, Reset):
            admission.reset_breaker()
            logger.info("lm.breaker_reset", lm=self.lm_name)
            return None
        if isinstance(message, BreakerDisable | BreakerEnable):
            return self._switch_breaker(admission, isinstance(message, BreakerEnable))
        return sv.Reject(UnknownMessage(f"LM client {self.lm_name!r}", message, self.ACCEPTS))

    def _switch_breaker(self, admission: Admission, enable: bool) -> None:
        if enable:
            admission.enable_breaker()
        else:
            admission.disable_breaker()
        logger.warning("lm.breaker_enabled" if enable else "lm.breaker_disabled", lm=self.lm_name)

    def state(self) -> dict[str, Any]:
        """What this client is: LM name, model, endpoint, breaker state, restarts."""
        admission = self._admission
        return {
            "lm": self.lm_name,
            "model": self.lm.model,
            "api_base": self.lm.display_base,
            "breaker": admission.breaker_state() if admission is not None else "starting",
            "restarts": self._counters.restarts,
        }

    @staticmethod
    def _plan(admission: Admission, request: PlanRequest) -> Planned | Wait | Refused:
        return admission.plan(request.messages, request.overrides)

    def stats(self) -> dict[str, Any]:
        """A snapshot: request counts, errors by type, tokens, latency, breaker state."""
        admission = self._admission
        assert admission is not None
        out = admission.stats()
        out["client_restarts"] = self._counters.restarts
        return out

    def describe(self) -> str | None:
        admission = self._admission
        state = admission.breaker_state() if admission is not None else "starting"
        return f"{self.lm.model}  breaker={state}"
