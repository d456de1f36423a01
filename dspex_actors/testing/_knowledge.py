"""The knowledge table: question phrases and their answers, and how a question finds one.

:data:`DEFAULT_KNOWLEDGE` is the built-in table; :class:`Knowledge` matches a
text against a table (a phrase match beats a keyword match, the longest key wins).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

DEFAULT_KNOWLEDGE: Final[Mapping[str, str]] = MappingProxyType(
    {
        "capital of France": "Paris",
        "capital of Germany": "Berlin",
        "capital of Italy": "Rome",
        "capital of Spain": "Madrid",
        "capital of Portugal": "Lisbon",
        "capital of the United Kingdom": "London",
        "capital of England": "London",
        "capital of Ireland": "Dublin",
        "capital of the Netherlands": "Amsterdam",
        "capital of Sweden": "Stockholm",
        "capital of Norway": "Oslo",
        "capital of Poland": "Warsaw",
        "capital of Greece": "Athens",
        "capital of Russia": "Moscow",
        "capital of Japan": "Tokyo",
        "capital of China": "Beijing",
        "capital of India": "New Delhi",
        "capital of Egypt": "Cairo",
        "capital of Kenya": "Nairobi",
        "capital of Canada": "Ottawa",
        "capital of the United States": "Washington, D.C.",
        "capital of Mexico": "Mexico City",
        "capital of Brazil": "Brasilia",
        "capital of Argentina": "Buenos Aires",
        "capital of Australia": "Canberra",
        "largest planet": "Jupiter",
        "red planet": "Mars",
        "chemical symbol for gold": "Au",
        "chemical formula of water": "H2O",
        "wrote Hamlet": "William Shakespeare",
        "author of Hamlet": "William Shakespeare",
        "first president of the United States": "George Washington",
        "largest ocean": "Pacific Ocean",
        "tallest mountain": "Mount Everest",
        "boiling point of water in Celsius": "100",
        "speed of light in km/s": "299792",
    }
)
"""The built-in knowledge table: question phrase -> answer (matched case-insensitively)."""

STOPWORDS: Final = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from",
        "how", "i", "in", "is", "it", "of", "on", "or", "s", "the", "to", "was", "were",
        "what", "when", "where", "which", "who", "whom", "whose", "why", "will", "with",
        "you", "your",
    }
)  # fmt: skip
"""Words that do not count as content words of a key or a question."""

_TOKEN_RE: Final = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    """The lower-case alphanumeric tokens of ``text``."""
    return _TOKEN_RE.findall(text.lower())


@dataclass(frozen=True)
class Entry:
    """One table row: the key as given, its tokens as a phrase, its content words, the answer."""

    key: str
    phrase: str
    content: frozenset[str]
    answer: str


class Knowledge:
    """A read-only knowledge table, safe to share between threads."""

    def __init__(self, table: Mapping[str, str]) -> None:
        entries = []
        for key, answer in table.items():
            toks = tokens(key)
            if not toks:
                continue
            content = frozenset(t for t in toks if t not in STOPWORDS) or frozenset(toks)
            entries.append(Entry(key, " ".join(toks), content, str(answer)))
        self._entries = tuple(entries)

    def lookup(self, text: str) -> Entry | None:
        """The best entry for ``text``: a key found as a phrase beats one whose content
        words are all present; among equals the longest key wins; None if none fits."""
        toks = tokens(text)
        if not toks:
            return None
        joined = f" {' '.join(toks)} "
        token_set = frozenset(toks)
        best: tuple[tuple[int, int], Entry] | None = None
        for entry in self._entries:
            if f" {entry.phrase} " in joined:
                score = (2, len(entry.phrase))
            elif entry.content <= token_set:
                score = (1, len(entry.phrase))
            else:
                continue
            if best is None or score > best[0]:
                best = (score, entry)
        return best[1] if best else None
