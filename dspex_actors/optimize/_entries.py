"""The checkpoint entries the bootstrapping plans write, and the checks a file's entries pass.

Keys and values (JSON), as ``_plan.WorkItem.entry`` and ``_bootstrap.Teacher``
write them:

* ``t/{i}/{r}`` teacher run of trainset ``i``, round ``r``:
  ``{"ok": true, "prediction": {...}, "trace": [[name | null, {inputs}, {outputs}], ...]}``
  or ``{"ok": false, "error": {"type", "message"}}``;
* ``v/{i}/{r}`` verdict: ``{"ok": bool, "error": null | {...}, "demos": {name: [{...}]},
  "metric_error": bool}`` (``demos`` when ``ok``; ``metric_error`` when the metric raised);
* ``e/{hash}/{j}`` valset ``j`` scored for the candidate with state hash ``hash``:
  ``{"score": number, "error": null | {...}, "metric_error": bool}``;
* ``c/{seed}`` a candidate's score: ``{"score": number, "hash": str}``.

:func:`check_entry` raises ``ValueError`` naming the field when a value is not of
that shape, so a checkpoint file edited or damaged by hand is refused when it is
read (``CheckpointError``) instead of crashing the job that uses it. Pure
functions; any thread.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container
from typing import Any

__all__ = ["KINDS_BOOTSTRAP", "KINDS_SEARCH", "check_entry"]

_KEYS = {
    "t": re.compile(r"t/\d+/\d+"),
    "v": re.compile(r"v/\d+/\d+"),
    "e": re.compile(r"e/[0-9A-Za-z]+/\d+"),
    "c": re.compile(r"c/-?\d+"),
}

KINDS_BOOTSTRAP = frozenset("tv")
"""The entry kinds of ``BootstrapFewShot``."""

KINDS_SEARCH = frozenset("tvec")
"""The entry kinds of the random search."""


def check_entry(key: str, value: Any, kinds: Container[str]) -> None:
    """Raise ``ValueError`` unless ``key`` is of one of ``kinds`` and ``value`` has its shape."""
    kind = key[:1]
    pattern = _KEYS.get(kind)
    if kind not in kinds or pattern is None or not pattern.fullmatch(key):
        raise ValueError("not an entry this teleprompter writes")
    _CHECKS[kind](_object(value, "the entry"))


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bool(entry: dict[str, Any], name: str, *, required: bool = True) -> bool:
    if name not in entry and not required:
        return False
    value = entry.get(name)
    if not isinstance(value, bool):
        raise ValueError(f"field {name!r} must be a bool, got {_shown(value)}")
    return value


def _number(entry: dict[str, Any], name: str) -> None:
    value = entry.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"field {name!r} must be a finite number, got {_shown(value)}")


def _error(entry: dict[str, Any], *, required: bool) -> None:
    value = entry.get("error")
    if value is None and not required:
        return
    error = _object(value, "field 'error'")
    for name in ("type", "message"):
        value = error.get(name)
        if not isinstance(value, str):
            raise ValueError(f"field 'error.{name}' must be a string, got {_shown(value)}")


def _fields(value: Any, what: str) -> None:
    """A JSON object of fields (inputs, outputs, a demo): string keys, any values."""
    _object(value, what)


def _teacher(entry: dict[str, Any]) -> None:
    if not _bool(entry, "ok"):
        _error(entry, required=True)
        return
    _fields(entry.get("prediction"), "field 'prediction'")
    trace = entry.get("trace")
    if not isinstance(trace, list):
        raise ValueError(f"field 'trace' must be a list, got {_shown(trace)}")
    for n, step in enumerate(trace):
        if not isinstance(step, list) or len(step) != 3:
            raise ValueError(f"trace[{n}] must be [name, inputs, outputs], got {_shown(step)}")
        if step[0] is not None and not isinstance(step[0], str):
            raise ValueError(f"trace[{n}][0] must be a predictor name or null")
        _fields(step[1], f"trace[{n}][1]")
        _fields(step[2], f"trace[{n}][2]")


def _verdict(entry: dict[str, Any]) -> None:
    ok = _bool(entry, "ok")
    _bool(entry, "metric_error", required=False)
    _error(entry, required=False)
    if not ok:
        return
    demos = _object(entry.get("demos"), "field 'demos'")
    for name, found in demos.items():
        if not isinstance(found, list):
            raise ValueError(f"demos[{name!r}] must be a list, got {_shown(found)}")
        for n, demo in enumerate(found):
            _fields(demo, f"demos[{name!r}][{n}]")


def _scored(entry: dict[str, Any]) -> None:
    _number(entry, "score")
    _bool(entry, "metric_error", required=False)
    _error(entry, required=False)


def _candidate(entry: dict[str, Any]) -> None:
    _number(entry, "score")
    if not isinstance(entry.get("hash"), str):
        raise ValueError(f"field 'hash' must be a string, got {_shown(entry.get('hash'))}")


_CHECKS = {"t": _teacher, "v": _verdict, "e": _scored, "c": _candidate}
