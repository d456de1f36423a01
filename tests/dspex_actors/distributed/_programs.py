"""Programs and metrics the Ray tests ship by import path (module level, importable on workers)."""

from __future__ import annotations

import os
from typing import Any

import dspex_actors as dx

POISON = "(#poison)"


class QA(dx.Module):
    """A one-predictor program built with no arguments, as Ray workers rebuild it."""

    def __init__(self) -> None:
        self.answer = dx.Predict("question -> answer")

    def forward(self, question: str) -> Any:
        return self.answer(question=question)


class Doomed(QA):
    """Kills its whole worker process on the poison example (a worker that keeps dying)."""

    def forward(self, question: str) -> Any:
        if POISON in question:
            os._exit(17)
        return super().forward(question=question)


def exact(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
    return bool(prediction.answer == example.answer)


def picky(example: dx.Example, prediction: Any, trace: Any = None) -> float:
    """Raises on every third example (a metric error), else scores a partial match."""
    if "(#3)" in example.question or "(#6)" in example.question:
        raise KeyError("picky metric refuses this one")
    return 1.0 if example.answer in prediction.answer else 0.25


def contains(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
    return example.answer in prediction.answer


class FailFast(QA):
    """Fails at once (no LM call) on the question ``"Which?"``; answers the others."""

    def forward(self, question: str) -> Any:
        if question == "Which?":
            raise ValueError("no such capital")
        return super().forward(question=question)
