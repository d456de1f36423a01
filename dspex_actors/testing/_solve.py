"""Solving a question: knowledge table, then arithmetic, then the table over all inputs,
then the question's last word. Pure functions, safe from any thread.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from dspex_actors.testing._knowledge import Knowledge

WORD_RE: Final = re.compile(r"[A-Za-z0-9][\w'-]*")
"""A word of a question (letters, digits, apostrophes and hyphens)."""

NUMBER_RE: Final = re.compile(r"-?\d+(?:\.\d+)?")
"""A decimal number in text."""

_EXPR_RUN_RE: Final = re.compile(r"[\d.\s()+\-*/%]+")
_BINOPS: Final[dict[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_WORD_OPERATORS: Final = (
    (r"\bmultiplied by\b", "*"),
    (r"\bdivided by\b", "/"),
    (r"\btimes\b", "*"),
    (r"\bplus\b", "+"),
    (r"\bminus\b", "-"),
)


@dataclass(frozen=True)
class Solution:
    """The solved question: the bare answer, the rule that found it (``"knowledge"``,
    ``"arithmetic"`` or ``"fallback"``), what matched, and the answer as a number if it is one."""

    answer: str
    how: str
    detail: str
    number: float | None


def _eval_node(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval_node(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ValueError("not arithmetic")
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval_node(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval_node(node.left), _eval_node(node.right)
        result = float(_BINOPS[type(node.op)](left, right))
        if not math.isfinite(result) or abs(result) > 1e18:
            raise ValueError("result out of range")
        return result
    raise ValueError("not arithmetic")


def format_number(value: float) -> str:
    """``value`` as an answer: an integer without ``.0``, else at most six decimals."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{round(value, 6):f}".rstrip("0").rstrip(".")
    return text or "0"


def arithmetic(text: str) -> tuple[str, float] | None:
    """The longest evaluable arithmetic expression in ``text``: (expression, value)."""
    t = text
    for pattern, symbol in _WORD_OPERATORS:
        t = re.sub(pattern, symbol, t, flags=re.IGNORECASE)
    t = re.sub(r"(?<=\d)\s*[xX\u00d7]\s*(?=\d)", " * ", t).replace("\u00f7", "/")
    best: tuple[str, float] | None = None
    for run in _EXPR_RUN_RE.findall(t):
        expr = " ".join(run.split()).strip(" .")
        if not re.search(r"\d\s*[-+*/%]+\s*[-(]*\s*\d", expr):
            continue
        try:
            value = _eval_node(ast.parse(expr, mode="eval"))
        except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
            continue
        if best is None or len(expr) > len(best[0]):
            best = (expr, value)
    return best


def solve(knowledge: Knowledge, question: str, all_text: str) -> Solution:
    """Apply the rules in order: knowledge, arithmetic, knowledge over all inputs, fallback."""
    entry = knowledge.lookup(question)
    if entry is None:
        arith = arithmetic(question)
        if arith is not None:
            expr, value = arith
            return Solution(format_number(value), "arithmetic", expr, value)
        if all_text and all_text != question:
            entry = knowledge.lookup(all_text)
    if entry is not None:
        number = None
        if NUMBER_RE.fullmatch(entry.answer.strip()):
            number = float(entry.answer)
        return Solution(entry.answer, "knowledge", entry.key, number)
    words = WORD_RE.findall(question) or WORD_RE.findall(all_text)
    last = words[-1].strip("'-") if words else "unknown"
    return Solution(last or "unknown", "fallback", last or "unknown", None)


def reasoning(sol: Solution) -> str:
    """One sentence naming the rule that produced ``sol``."""
    if sol.how == "knowledge":
        return f"Rule-based: the knowledge table entry '{sol.detail}' gives {sol.answer}."
    if sol.how == "arithmetic":
        return f"Rule-based: evaluating {sol.detail} gives {sol.answer}."
    return f"Rule-based: no rule matched, so the last word of the input, '{sol.answer}', is used."
