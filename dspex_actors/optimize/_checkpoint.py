"""Checkpoints: where a compile job's entries survive restarts of its actor (and of Python).

:class:`Checkpoint` keeps them in memory (held by the ``Job`` handle);
:class:`FileCheckpoint` in one JSON file in ``checkpoint_dir``, rewritten
atomically. A file is named after :func:`fingerprint` (the teleprompter's
configuration, the programs and the data), so compiling the same thing again
resumes it; :func:`claim` keeps two running jobs from sharing one file.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dspex_actors.modules import Module
from dspex_actors.optimize._jsonable import json_safe
from dspex_actors.optimize._plan import Planner
from dspex_actors.primitives import Example

__all__ = [
    "CHECKPOINT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "EntryCheck",
    "FileCheckpoint",
    "claim",
    "fingerprint",
    "release",
]

CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be used (not JSON, another version or job, or
    an entry of the wrong shape: the message names the entry and the field)."""


class Checkpoint:
    """A job's entries in memory (the ``Job`` handle holds it); base of :class:`FileCheckpoint`.

    ``put`` may be called from several generations of the job actor; entries are
    facts (a finished request's outcome, a verdict) and never change once written,
    so merging them is always safe. Thread-safe.
    """

    path: Path | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Any] = {}

    def load(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._entries)

    def put(self, items: dict[str, Any]) -> None:
        if not items:
            return
        with self._lock:
            self._entries.update(items)
            self._write()

    def _write(self) -> None:
        """Persist ``_entries`` (called with the lock held). Memory: nothing to do."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


EntryCheck = Callable[[str, Any], None]
"""``check(key, value)``: raise ``ValueError`` if a file's entry is not of the shape
the teleprompter writes (``Teleprompter.check_entry``)."""


class FileCheckpoint(Checkpoint):
    """A checkpoint in one JSON file, rewritten atomically (temporary file + rename).

    Raises :class:`CheckpointError` when the file exists but is not this job's,
    or when ``check`` refuses one of its entries (so that a damaged file stops
    the compile before it starts, instead of crashing its job again and again).
    """

    def __init__(
        self, path: Path, fingerprint: str, teleprompter: str, check: EntryCheck | None = None
    ) -> None:
        super().__init__()
        self.path = path
        self.fingerprint = fingerprint
        self.teleprompter = teleprompter
        self.check = check
        self._entries = self._read()

    def _read(self) -> dict[str, Any]:
        path = self.path
        assert path is not None
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # bad UTF-8, bad JSON, too deep, huge int
            raise CheckpointError(
                f"checkpoint {path} is not JSON: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        version = data.get("version") if isinstance(data, dict) else None
        if type(version) is not int or version != CHECKPOINT_VERSION:
            raise CheckpointError(f"checkpoint {path}: not a version {CHECKPOINT_VERSION} file")
        if data.get("fingerprint") != self.fingerprint:
            raise CheckpointError(
                f"checkpoint {path} belongs to another compile (fingerprint mismatch)"
            )
        entries = data.get("entries")
        if not isinstance(entries, dict):
            raise CheckpointError(f"checkpoint {path}: 'entries' must be an object")
        if self.check is not None:
            for key, value in entries.items():
                try:
                    self.check(key, value)
                except (ValueError, TypeError) as exc:
                    raise CheckpointError(f"checkpoint {path}: entry {key!r}: {exc}") from None
        return entries

    def _write(self) -> None:
        path = self.path
        assert path is not None
        data = {
            "version": CHECKPOINT_VERSION,
            "teleprompter": self.teleprompter,
            "fingerprint": self.fingerprint,
            "updated": time.time(),
            "entries": self._entries,
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        tmp.replace(path)


_active: set[Path] = set()
_active_lock = threading.Lock()


def claim(
    path: Path, fingerprint: str, teleprompter: str, check: EntryCheck | None = None
) -> FileCheckpoint:
    """Open the checkpoint file ``path`` for a job that starts now; :func:`release` it after.

    ``check`` is applied to every entry read from the file.

    Raises:
        CheckpointError: a running job uses it, or it cannot be used.
    """
    with _active_lock:
        if path in _active:
            raise CheckpointError(f"checkpoint {path} is in use by a running compile job")
        checkpoint = FileCheckpoint(path, fingerprint, teleprompter, check)
        _active.add(path)
    return checkpoint


def release(checkpoint: Checkpoint) -> None:
    """The job using ``checkpoint`` ended: its file may be claimed again."""
    if checkpoint.path is not None:
        with _active_lock:
            _active.discard(checkpoint.path)


def _structure(program: Module | None) -> Any:
    if program is None:
        return None
    return [
        [name, predictor.signature.signature, predictor.config, predictor.dump_state()]
        for name, predictor in program.named_predictors()
    ]


def _examples_json(examples: Sequence[Example] | None) -> Any:
    if examples is None:
        return None
    return [[json_safe(ex.toDict()), sorted(ex.input_keys or ())] for ex in examples]


def fingerprint(
    teleprompter: Planner,
    student: Module,
    trainset: Sequence[Example],
    teacher: Module | None,
    valset: Sequence[Example] | None,
) -> str:
    """A hash of everything that decides a compile's result (names its checkpoint file)."""
    data = {
        "teleprompter": teleprompter.config(),
        "student": _structure(student),
        "teacher": _structure(teacher),
        "trainset": _examples_json(trainset),
        "valset": _examples_json(valset),
    }
    text = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
