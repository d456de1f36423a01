"""The results file of an evaluation: one JSON line per finished example (JSONL).

A :class:`ResultsWriter` appends and flushes each :class:`Row` as its example
finishes; :func:`read_results` reads a file back for ``resume=True``, matching
each line to the devset by index and a hash of the example's inputs. Anything
else than a file this module wrote for this devset raises
:class:`ResultsFileError` naming the file and the line, with one exception: a
last line cut short (no newline at its end: a crash mid-write) is dropped with
one warning, and that example runs again. The consumer's thread only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dspex_actors.optimize._jsonable import RecordedError, describe_error, json_safe
from dspex_actors.primitives import Example, Prediction, logger

__all__ = ["ResultsFileError", "ResultsWriter", "Row", "read_results"]


class ResultsFileError(ValueError):
    """A results file cannot be resumed: corrupt, or written for a different devset.

    The message names the file and the line (``path:line: ...``).
    """


@dataclass
class Row:
    """One finished example: its devset index, the prediction or error, its score.

    ``metric_error``: the error is the metric's (the program answered).
    """

    index: int
    example: Example
    outcome: Any  # Prediction or exception
    score: float
    error: bool
    metric_error: bool = False


def _row_json(row: Row, hash_: str) -> str:
    outcome = row.outcome
    error: dict[str, Any] | None = None
    if row.error:
        error = dict(describe_error(outcome))
        if row.metric_error:
            error["metric"] = True
    record = {
        "index": row.index,
        "input_hash": hash_,
        "score": row.score,
        "prediction": None if row.error else json_safe(outcome.toDict()),
        "error": error,
        "example": json_safe(row.example.toDict()),
    }
    return json.dumps(record, ensure_ascii=False)


class ResultsWriter:
    """Writes the results file of one evaluation run.

    Without ``resume`` the file is started afresh; with it, the ``rows`` read back
    are rewritten first (dropping a line cut short by a crash; temporary file +
    rename, never half a file) and new rows are appended.
    """

    def __init__(
        self, path: Path, hashes: Sequence[str], *, resume: bool, rows: Sequence[Row] = ()
    ) -> None:
        self.hashes = hashes
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume:
            tmp = path.with_name(f".{path.name}.tmp")
            with tmp.open("w", encoding="utf-8") as f:
                for row in rows:
                    f.write(_row_json(row, hashes[row.index]) + "\n")
            tmp.replace(path)
        self._file: IO[str] = path.open("a" if resume else "w", encoding="utf-8")

    def write(self, row: Row, *, quiet: bool = False) -> None:
        """Append ``row`` and flush. ``quiet``: ignore write errors (while stopping)."""
        try:
            self._file.write(_row_json(row, self.hashes[row.index]) + "\n")
            self._file.flush()
        except (OSError, ValueError):
            if not quiet:
                raise

    def close(self) -> None:
        self._file.close()


class _NotJSON(ValueError):
    """A line that is not a JSON object (it may have been cut short)."""


def read_results(path: Path, devset: Sequence[Example], hashes: Sequence[str]) -> dict[int, Row]:
    """Rows already in ``path`` (missing file: none). Raises :class:`ResultsFileError`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ResultsFileError(f"cannot read results file {path}: {exc}") from exc
    rows: dict[int, Row] = {}
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = _json_object(raw)
        except _NotJSON as exc:
            if number == len(lines):  # no newline after it: cut short by a crash mid-write
                logger.warning(
                    "results_file.truncated_line",
                    path=str(path),
                    line=number,
                    note="the last line was cut short (a crash mid-write); that example runs again",
                )
                break
            raise ResultsFileError(f"{where}: not a results record ({exc})") from None
        row = _row(record, where, devset, hashes)
        rows[row.index] = row
    return rows


def _json_object(raw: bytes) -> dict[str, Any]:
    """One line as a JSON object; :class:`_NotJSON` if it is none (bad UTF-8 included)."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _NotJSON(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(record, dict):
        raise _NotJSON(f"a JSON object expected, got {type(record).__name__}")
    return record


def _field(record: dict[str, Any], name: str, where: str) -> Any:
    if name not in record:
        raise ResultsFileError(f"{where}: not a results record (no {name!r})")
    return record[name]


def _wrong(where: str, name: str, expected: str, value: Any) -> ResultsFileError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ResultsFileError(f"{where}: {name!r} must be {expected}, got {shown}")


def _row(
    record: dict[str, Any], where: str, devset: Sequence[Example], hashes: Sequence[str]
) -> Row:
    """The row of a parsed record, checked field by field and against this devset."""
    index = _field(record, "index", where)
    if not isinstance(index, int) or isinstance(index, bool):
        raise _wrong(where, "index", "an int", index)
    hash_ = _field(record, "input_hash", where)
    if not isinstance(hash_, str):
        raise _wrong(where, "input_hash", "a string", hash_)
    score = _field(record, "score", where)
    if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
        raise _wrong(where, "score", "a finite number", score)
    if not 0 <= index < len(devset):
        raise ResultsFileError(
            f"{where}: example index {index} is outside this devset of "
            f"{len(devset)}: the file was written for a different devset"
        )
    if hash_ != hashes[index]:
        raise ResultsFileError(
            f"{where}: the inputs of devset[{index}] changed since the file "
            f"was written (hash {hash_} != {hashes[index]}): resume needs the same "
            f"devset, or a new results_path"
        )
    error = record.get("error")
    if error is not None:
        return _error_row(error, where, index, devset[index], float(score))
    prediction = record.get("prediction")
    if not isinstance(prediction, dict):
        raise _wrong(where, "prediction", "an object (the record has no error)", prediction)
    return Row(index, devset[index], Prediction(prediction), float(score), False)


def _error_row(error: Any, where: str, index: int, example: Example, score: float) -> Row:
    if not isinstance(error, dict):
        raise _wrong(where, "error", "null or an object", error)
    type_name, message = error.get("type"), error.get("message")
    if not isinstance(type_name, str) or not isinstance(message, str):
        raise _wrong(where, "error", 'an object with string "type" and "message"', error)
    metric = error.get("metric", False)
    if not isinstance(metric, bool):
        raise _wrong(where, "error.metric", "a bool", metric)
    return Row(index, example, RecordedError(type_name, message), score, True, metric)
