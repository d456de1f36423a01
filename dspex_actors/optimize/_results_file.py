"""The results file of an evaluation: one JSON line per finished example (JSONL).

A :class:`ResultsWriter` appends and flushes each :class:`Row` as its example
finishes; :func:`read_results` reads a file back for ``resume=True``, matching
each line to the devset by index and a hash of the example's inputs (a changed
devset raises :class:`ResultsFileError`; a last line cut short by a crash is
ignored). The consumer's thread only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dspex_actors.optimize._jsonable import RecordedError, describe_error, json_safe
from dspex_actors.primitives import Example, Prediction

__all__ = ["ResultsFileError", "ResultsWriter", "Row", "read_results"]


class ResultsFileError(ValueError):
    """A results file cannot be resumed: corrupt, or written for a different devset."""


@dataclass
class Row:
    """One finished example: its devset index, the prediction or error, its score."""

    index: int
    example: Example
    outcome: Any  # Prediction or exception
    score: float
    error: bool


def _row_json(row: Row, hash_: str) -> str:
    outcome = row.outcome
    record = {
        "index": row.index,
        "input_hash": hash_,
        "score": row.score,
        "prediction": None if row.error else json_safe(outcome.toDict()),
        "error": describe_error(outcome) if row.error else None,
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


def read_results(path: Path, devset: Sequence[Example], hashes: Sequence[str]) -> dict[int, Row]:
    """Rows already in ``path`` (missing file: none). Raises :class:`ResultsFileError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ResultsFileError(f"cannot read results file {path}: {exc}") from exc
    rows: dict[int, Row] = {}
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = _parse(line)
        except (ValueError, KeyError, TypeError) as exc:
            if all(not rest.strip() for rest in lines[number:]):
                break  # a last line cut short by a crash: that example did not finish
            raise ResultsFileError(f"{path}:{number}: not a results record ({exc})") from None
        row = _check(record, f"{path}:{number}", devset, hashes)
        rows[row.index] = row
    return rows


def _parse(line: str) -> dict[str, Any]:
    """One line as a record; ``ValueError``/``KeyError``/``TypeError`` if it is none."""
    record = json.loads(line)
    index, hash_, score = record["index"], record["input_hash"], float(record["score"])
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError("index must be an int")
    return {**record, "index": index, "input_hash": hash_, "score": score}


def _check(
    record: dict[str, Any], where: str, devset: Sequence[Example], hashes: Sequence[str]
) -> Row:
    """The row of a parsed record, checked against this devset."""
    index, hash_ = record["index"], record["input_hash"]
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
        outcome: Any = RecordedError(str(error.get("type")), str(error.get("message")))
    else:
        outcome = Prediction(**(record.get("prediction") or {}))
    return Row(index, devset[index], outcome, record["score"], error is not None)
