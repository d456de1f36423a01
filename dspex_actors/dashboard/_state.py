"""What the dashboard knows: a ring buffer of recent events and the metrics made from them.

One bus subscription (``()``, every topic) feeds :meth:`DashboardState.on_event` in
its subscription actor's thread; the web server's threads read :meth:`snapshot`
under the same lock. Bounded everywhere: the ring keeps the last ``history`` events,
each LM endpoint its last 500 latencies, each job its last 500 candidates.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from dspex_actors.primitives import Event

__all__ = ["DashboardState", "event_json"]

_LATENCIES = 500
_TRIALS = 500
_RATE_WINDOW_S = 10.0


def _jsonable(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth < 4 and isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in list(value.items())[:50]}
    if depth < 4 and isinstance(value, list | tuple):
        return [_jsonable(v, depth + 1) for v in list(value)[:50]]
    return repr(value)[:200]


def event_json(event: Event, seq: int) -> dict[str, Any]:
    """An event as the page receives it (JSON-safe, bounded)."""
    return {
        "seq": seq,
        "topic": "/".join(event.topic),
        "time": event.time,
        "data": _jsonable(dict(event.data)),
        "span_id": event.span_id,
        "parent_id": event.parent_id,
        "trace_id": event.trace_id,
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Endpoint:
    def __init__(self) -> None:
        self.requests = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=_LATENCIES)
        self.times: collections.deque[float] = collections.deque(maxlen=10_000)
        self.errors: collections.Counter[str] = collections.Counter()
        self.input_tokens = 0
        self.output_tokens = 0
        self.breaker = "closed"

    def view(self, now: float) -> dict[str, Any]:
        recent = [t for t in self.times if now - t <= _RATE_WINDOW_S]
        latencies = list(self.latencies)
        return {
            "requests": self.requests,
            "requests_per_s": round(len(recent) / _RATE_WINDOW_S, 2),
            "p50_ms": _ms(_percentile(latencies, 0.5)),
            "p95_ms": _ms(_percentile(latencies, 0.95)),
            "errors": dict(self.errors),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "breaker": self.breaker,
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


class DashboardState:
    """Recent events and the metrics derived from them. Any thread.

    ``listeners`` are called with each event's JSON (the SSE streams); they must
    not block (each puts into its own bounded queue).
    """

    def __init__(self, history: int = 500) -> None:
        self.lock = threading.Lock()
        self.ring: collections.deque[dict[str, Any]] = collections.deque(maxlen=history)
        self.seq = 0
        self.endpoints: dict[str, _Endpoint] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.evaluations: dict[str, dict[str, Any]] = {}
        self.listeners: set[Callable[[dict[str, Any]], None]] = set()

    def on_event(self, event: Event) -> None:
        """Take one event (the dashboard subscription's thread)."""
        with self.lock:
            self.seq += 1
            item = event_json(event, self.seq)
            self.ring.append(item)
            self._fold(event)
            listeners = list(self.listeners)
        for listener in listeners:
            listener(item)

    def _fold(self, event: Event) -> None:
        topic, data = event.topic, event.data
        if topic[:2] == ("lm", "request") and len(topic) == 3 and topic[2] != "start":
            self._fold_request(event)
        elif topic == ("breaker", "state"):
            self._endpoint(data.get("lm")).breaker = str(data.get("new"))
        elif topic[0] == "compile" and "job" in data:
            self._fold_compile(event)
        elif topic[0] == "evaluate" and topic[-1] == "progress":
            self.evaluations[str(data.get("run"))] = _jsonable(dict(data))

    def _endpoint(self, name: Any) -> _Endpoint:
        key = str(name or "default")
        endpoint = self.endpoints.get(key)
        if endpoint is None:
            endpoint = self.endpoints[key] = _Endpoint()
        return endpoint

    def _fold_request(self, event: Event) -> None:
        data = event.data
        if data.get("cache_hit"):
            return
        endpoint = self._endpoint(data.get("lm"))
        endpoint.requests += 1
        endpoint.times.append(event.time)
        duration = data.get("duration_s")
        if isinstance(duration, float):
            endpoint.latencies.append(duration)
        if event.topic[2] == "exception":
            endpoint.errors[str(data.get("error.type"))] += 1
        endpoint.input_tokens += int(data.get("gen_ai.usage.input_tokens") or 0)
        endpoint.output_tokens += int(data.get("gen_ai.usage.output_tokens") or 0)

    def _fold_compile(self, event: Event) -> None:
        data = event.data
        job = self.jobs.setdefault(
            str(data["job"]),
            {"job": data["job"], "teleprompter": data.get("teleprompter"), "trials": []},
        )
        job.update(
            state=event.topic[1] if event.topic[1] in ("started", "finished") else "running",
            best_score=data.get("best_score"),
            done=data.get("done"),
            total=data.get("total"),
        )
        if event.topic[1] == "finished":
            job["state"] = data.get("state")
        trials: list[dict[str, Any]] = job["trials"]
        if event.topic[1] == "candidate.evaluated":  # random search: one row per seed
            trials.append({"label": f"seed {data.get('seed')}", "score": data.get("score")})
        elif event.topic[1] == "trial":  # MIPROv2: one row per told trial
            kind = "full" if data.get("full_eval") else "minibatch"
            trials.append(
                {"label": f"trial {data.get('number')} ({kind})", "score": data.get("score")}
            )
        del trials[:-_TRIALS]

    def snapshot(self) -> dict[str, Any]:
        """Metrics, jobs and evaluations (JSON-safe copies)."""
        now = time.time()
        with self.lock:
            return {
                "lms": {name: e.view(now) for name, e in self.endpoints.items()},
                "jobs": [{**job, "trials": list(job["trials"])} for job in self.jobs.values()],
                "evaluations": list(self.evaluations.values()),
                "seq": self.seq,
            }

    def history(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.ring)
