"""MIPROv2's requests that count their LM calls, and the checks of its checkpoint entries.

Entries (JSON) besides the bootstrap's ``t/``, ``v/`` and the ``e/{hash}/{j}``
evaluations (which carry ``"calls"`` here): ``p/s`` the data summary and
``p/{predictor}/{k}`` instruction proposal ``k``, each ``{"text": str, "calls": int}``
or ``{"error": {...}, "calls": int}``; ``r/{number}`` a told trial (``Trial.as_json``).
Threading: items are built in the job actor; ``forward`` runs in a program actor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dspex_actors.modules import Module
from dspex_actors.optimize._jsonable import describe_error
from dspex_actors.optimize._plan import WorkItem
from dspex_actors.optimize._scoring import Metric, Scored, ScoredRun
from dspex_actors.primitives import Example
from dspex_actors.runtime import current_program

__all__ = ["CountedItem", "calls_of", "check_mipro_entry"]


def _calls_so_far() -> int:
    program = current_program()
    return int(getattr(program, "lm_calls", 0)) if program is not None else 0


@dataclass(frozen=True)
class _CountedScored(Scored):
    calls: int = 0


class _CountedScoredRun(ScoredRun):
    """A ``ScoredRun`` that also answers the LM calls its request made."""

    def forward(self, **inputs: Any) -> Scored:
        scored = super().forward(**inputs)
        return _CountedScored(scored.prediction, scored.score, scored.error, _calls_so_far())


class _CountedRun(Module):
    """Runs ``module`` (a proposer step) and answers its text field and the LM calls made."""

    def __init__(self, module: Module, field: str) -> None:
        self.module = module
        self.field = field

    @property
    def __wrapped__(self) -> Module:
        return self.module

    def forward(self, **_inputs: Any) -> tuple[str, int]:
        prediction = self.module.forward()
        return str(getattr(prediction, self.field)), _calls_so_far()


@dataclass
class CountedItem(WorkItem):
    """A request whose entry records the LM calls it made (``cost``: what is reserved for it)."""

    cost: int = 1

    @classmethod
    def eval(
        cls, key: str, program: Module, metric: Metric, example: Example, cost: int
    ) -> CountedItem:
        return cls(key, "eval", _CountedScoredRun(program, metric, example), example, cost=cost)

    @classmethod
    def text(cls, key: str, module: Module, field: str, cost: int) -> CountedItem:
        return cls(key, "teacher", _CountedRun(module, field), Example().with_inputs(), cost=cost)

    @staticmethod
    def cost_of(item: WorkItem, per_run: int) -> int:
        return item.cost if isinstance(item, CountedItem) else per_run

    def entry(self, result: Any) -> tuple[dict[str, Any], BaseException | None]:
        if self.key.startswith("p/"):
            if isinstance(result, tuple) and len(result) == 2:
                return {"text": str(result[0]), "calls": int(result[1])}, None
            failure = result if isinstance(result, BaseException) else TypeError(repr(result))
            return {"error": describe_error(failure), "calls": self.cost}, failure
        entry, error = super().entry(result)
        calls = result.calls if isinstance(result, _CountedScored) else self.cost
        return {**entry, "calls": calls}, error


def calls_of(key: str, value: Any, default: int = 1) -> int:
    """The LM calls behind a checkpoint entry (``default`` when it does not say)."""
    if not isinstance(value, dict):
        return 0
    if "calls" in value:
        return int(value["calls"])
    if key.startswith("t/"):
        return len(value["trace"]) if value.get("ok") else default
    if key.startswith("e/"):
        return default
    return 0


_KEYS = {"p": re.compile(r"p/(s|\d+/\d+)"), "r": re.compile(r"r/\d+")}


def check_mipro_entry(key: str, value: Any) -> None:
    """``ValueError`` unless ``key``/``value`` is a ``p/`` or ``r/`` entry of the right shape."""
    pattern = _KEYS.get(key[:1])
    if pattern is None or not pattern.fullmatch(key):
        raise ValueError("not an entry this teleprompter writes")
    if not isinstance(value, dict):
        raise ValueError("the entry must be an object")
    if key.startswith("p/"):
        if not isinstance(value.get("calls"), int):
            raise ValueError("field 'calls' must be an int")
        if not isinstance(value.get("text"), str) and not isinstance(value.get("error"), dict):
            raise ValueError("a proposal entry needs 'text' (a string) or 'error' (an object)")
        return
    for name in ("instructions", "demo_sets"):
        found = value.get(name)
        if not isinstance(found, list) or not all(isinstance(i, int) for i in found):
            raise ValueError(f"field {name!r} must be a list of ints")
    if not isinstance(value.get("score"), int | float) or isinstance(value.get("score"), bool):
        raise ValueError("field 'score' must be a number")
