"""Values and errors as JSON, for results files, checkpoints and fingerprints.

:func:`json_safe` turns what a program returns into plain JSON;
:func:`describe_error` an exception into ``{"type", "message"}``, and
:class:`RecordedError` is such an error read back from a file.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["RecordedError", "describe_error", "json_default", "json_safe"]


class RecordedError(Exception):
    """An example's error as read back from a results file (the original is gone).

    ``type_name`` is the original exception's class name; ``str()`` its message.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"RecordedError({self.type_name}: {self.args[0]!r})"


def json_safe(value: Any) -> Any:
    """``value`` with everything JSON cannot hold turned into JSON (models dumped, else str)."""
    return json.loads(json.dumps(value, default=json_default, ensure_ascii=False))


def json_default(value: Any) -> Any:
    """``json.dumps``' ``default``: Examples and models as dicts, sets as lists, else str."""
    if hasattr(value, "toDict"):
        return value.toDict()
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def describe_error(error: BaseException) -> dict[str, str]:
    """An error as JSON: ``{"type": class name, "message": str(error)}``."""
    if isinstance(error, RecordedError):
        return {"type": error.type_name, "message": str(error)}
    return {"type": type(error).__name__, "message": str(error)}
