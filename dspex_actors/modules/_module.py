"""Modules: :class:`Module`, :class:`Predict`, :class:`ChainOfThought`, and saving/loading.

A module called from ordinary code (outside the actor system) runs in a fresh
program actor of the current :class:`~dspex_actors.ActorSystem`; a module called
inside another module's ``forward`` runs in the same program actor. So a whole
composed ``forward`` is one request with one deadline, and each of its LM calls
gets its own I/O worker.
"""

from __future__ import annotations

import contextlib
import copy
import json
import stat
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from dspex_actors.modules import _async
from dspex_actors.primitives import Example, Prediction
from dspex_actors.runtime import current_program
from dspex_actors.signatures import OutputField, Signature, SignatureError, ensure_signature

if TYPE_CHECKING:
    from dspex_actors.adapters import ChatAdapter
    from dspex_actors.runtime import ActorSystem

__all__ = ["BatchError", "ChainOfThought", "Module", "Predict", "ProgramFileError"]

_DSPY_VERSION_COMPAT = "3.4.1"


class ProgramFileError(ValueError):
    """A saved program file is missing, not JSON, or does not fit this program."""


class BatchError(RuntimeError):
    """Some items of :meth:`Module.batch` failed.

    Nothing is lost: ``results`` holds, in input order, the :class:`Prediction`
    or the exception of every item; ``errors`` maps input positions to exceptions.
    """

    def __init__(self, results: list[Any]) -> None:
        self.results = results
        self.errors = {i: r for i, r in enumerate(results) if isinstance(r, BaseException)}
        first = next(iter(self.errors.values()))
        super().__init__(
            f"{len(self.errors)} of {len(results)} batch items failed; first: {first!r}"
        )


class Module:
    """Base class of composable LM programs (DSPy's ``dspy.Module``).

    Subclass it, create sub-modules in ``__init__`` and compose them in
    ``forward``. Call the module like a function: ``program(question="...")``.

    Example::

        class RAG(dx.Module):
            def __init__(self):
                self.rewrite = dx.Predict("question -> query")
                self.answer = dx.ChainOfThought("context: list[str], question -> answer")

            def forward(self, question):
                query = self.rewrite(question=question).query
                return self.answer(context=[query], question=question)

    Threading: a module instance may be called from many threads at once; calls
    do not mutate it (optimizers work on copies).
    """

    system: ActorSystem | None = None
    """Run in this system instead of :func:`~dspex_actors.current_system` (optional)."""

    def forward(self, **kwargs: Any) -> Any:
        """Compose sub-modules; runs inside the request's program actor."""
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise TypeError(
                f"{type(self).__name__} takes its inputs as keyword arguments, "
                f"e.g. {self._keyword_example()}; got {len(args)} positional argument(s)"
            )
        if current_program() is not None:
            return self.forward(**kwargs)
        self._check_inputs(kwargs)
        return self._system().run(self, kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Await the module: ``pred = await qa.acall(question="...")``.

        Same inputs, result and typed errors as calling it (``LMError`` subclasses
        with ``.attempts``, ``SystemDown``, ...), raised as they are. Runs in a
        program actor like a call; the event loop is never blocked and no thread
        waits for the answer (see docs/asyncio.md). The request deadline is the
        system's, as for a call. Cancelling the awaiting task (or an
        ``asyncio.timeout``) cancels the request: its program actor and I/O
        workers end, the task gets ``CancelledError``.
        """
        return await _async.acall(self, args, kwargs)

    async def abatch(
        self,
        inputs: Sequence[Mapping[str, Any] | Example],
        max_concurrency: int = 16,
        *,
        return_exceptions: bool = False,
        timeout: float | None = None,
    ) -> list[Any]:
        """:meth:`batch` for asyncio: at most ``max_concurrency`` program actors at once.

        Predictions in input order; :class:`BatchError` after all items finished if
        some failed (``return_exceptions=True``: the exceptions in place). Every
        item is checked before any request. Cancelling it cancels every item still
        running. No thread waits on the caller's side.
        """
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise TypeError(f"max_concurrency must be an int, got {max_concurrency!r}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency!r}")
        items = [_as_kwargs(item) for item in inputs]
        for item in items:
            self._check_inputs(item)
        system = self._system()
        results = await _async.abatch(system, self, items, max_concurrency, timeout=timeout)
        if not return_exceptions and any(isinstance(r, BaseException) for r in results):
            raise BatchError(results)
        return results

    def _keyword_example(self) -> str:
        signature = getattr(self, "signature", None)
        names = list(getattr(signature, "input_fields", {}) or ["question"])
        return f"{type(self).__name__.lower()}({', '.join(f'{n}=...' for n in names)})"

    def _check_inputs(self, inputs: Mapping[str, Any]) -> None:
        """Validate inputs before any I/O (overridden by :class:`Predict`)."""

    def _system(self) -> ActorSystem:
        from dspex_actors.runtime import current_system

        return self.system if self.system is not None else current_system()

    # --------------------------------------------------------------- batching

    def batch(
        self,
        inputs: Sequence[Mapping[str, Any] | Example],
        max_concurrency: int = 16,
        *,
        return_exceptions: bool = False,
        timeout: float | None = None,
    ) -> list[Any]:
        """Run the module on many inputs, at most ``max_concurrency`` at once.

        ``inputs`` are dicts of keyword arguments or :class:`Example` objects (their
        ``inputs()`` are used). Returns the predictions in input order. If some
        items fail, :class:`BatchError` is raised *after all items finished*, with
        every result and error in it; with ``return_exceptions=True`` the
        exceptions are returned in place instead.

        Threading: each item is one program actor; the calling thread starts them
        (never more than ``max_concurrency`` at once) and collects their answers.
        No other thread is started.
        """
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency!r}")
        items = [_as_kwargs(item) for item in inputs]
        for item in items:
            self._check_inputs(item)
        results = self._system().run_many(
            self, items, max_concurrency=max_concurrency, timeout=timeout
        )
        if not return_exceptions and any(isinstance(r, BaseException) for r in results):
            raise BatchError(results)
        return results

    # ------------------------------------------------------------- parameters

    def named_predictors(self) -> list[tuple[str, Predict]]:
        """Every :class:`Predict` inside this module, with DSPy's dotted names."""
        found: list[tuple[str, Predict]] = []
        seen: set[int] = set()

        def walk(obj: Any, prefix: str) -> None:
            if id(obj) in seen:
                return
            if isinstance(obj, Predict):
                seen.add(id(obj))
                found.append((prefix or "self", obj))
                return
            if isinstance(obj, Module):
                seen.add(id(obj))
                for name, value in vars(obj).items():
                    if name.startswith("_") or name == "system":
                        continue
                    walk(value, f"{prefix}.{name}" if prefix else name)
            elif isinstance(obj, list | tuple):
                for i, value in enumerate(obj):
                    walk(value, f"{prefix}[{i}]")
            elif isinstance(obj, dict):
                for key, value in obj.items():
                    walk(value, f"{prefix}['{key}']")

        if isinstance(self, Predict):
            return [("self", self)]
        walk(self, "")
        return found

    def predictors(self) -> list[Predict]:
        """The :class:`Predict` modules inside, in attribute order."""
        return [p for _, p in self.named_predictors()]

    def deepcopy(self) -> Self:
        """A deep copy (signatures are shared: they are immutable classes)."""
        return copy.deepcopy(self)

    def reset_copy(self) -> Self:
        """A deep copy with every predictor's demos cleared."""
        new = self.deepcopy()
        for predictor in new.predictors():
            predictor.reset()
        return new

    # ------------------------------------------------------------ save / load

    def dump_state(self) -> dict[str, Any]:
        """The JSON-able state in DSPy's layout: ``{predictor_name: state, ...}``."""
        return {name: p.dump_state() for name, p in self.named_predictors()}

    def load_state(self, state: Mapping[str, Any]) -> Self:
        """Load a state from :meth:`dump_state` (or DSPy's ``save``); returns ``self``.

        Raises:
            ProgramFileError: predictor names do not match this program.
        """
        mine = dict(self.named_predictors())
        theirs = {k: v for k, v in state.items() if k != "metadata"}
        if set(mine) != set(theirs):
            raise ProgramFileError(
                f"saved predictors {sorted(theirs)} do not match this program's {sorted(mine)}"
            )
        # Validate every predictor's state first, then apply them all: a file that
        # fails anywhere leaves the program exactly as it was.
        prepared = {}
        for name, predictor in mine.items():
            try:
                prepared[name] = predictor.prepare_state(theirs[name])
            except ProgramFileError as exc:
                raise ProgramFileError(f"predictor {name!r}: {exc}") from exc
        for name, predictor in mine.items():
            predictor.apply_state(prepared[name])
        return self

    def save(self, path: str | Path) -> None:
        """Write the program's state as JSON (DSPy's ``save(path)`` layout). Never pickle.

        Demos, signature instructions and field prefixes/descriptions per
        predictor; no API keys, no LM configuration. The file is written to a
        temporary name and renamed, so a crash never leaves half a file.
        """
        path = Path(path)
        if path.suffix != ".json":
            raise ProgramFileError(f"programs are saved as JSON; use a .json path, got {path}")
        state = self.dump_state()
        state["metadata"] = _metadata()
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)

    def load(self, path: str | Path) -> Self:
        """Load a state saved by :meth:`save` or by DSPy's ``save("x.json")``.

        Raises:
            ProgramFileError: missing file, not JSON, or not matching this program.
        """
        path = Path(path)
        text = _read_program_file(path)
        try:
            state = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProgramFileError(
                f"{path} is not JSON (pickled programs are not loaded): {exc}"
            ) from exc
        except RecursionError:
            raise ProgramFileError(f"{path}: JSON nested too deeply to be a program") from None
        if not isinstance(state, dict):
            raise ProgramFileError(f"{path}: expected a JSON object, got {type(state).__name__}")
        try:
            return self.load_state(state)
        except ProgramFileError as exc:
            raise ProgramFileError(f"{path}: {exc}") from exc


class Predict(Module):
    """One LM call: format the signature's prompt, call the LM, parse the outputs.

    ``Predict(signature, **config)``: ``signature`` is a :class:`Signature` class
    or a string such as ``"question -> answer"``; ``config`` holds request
    parameters for every call (``temperature=...``, ``max_tokens=...``).
    ``demos`` (a list of :class:`Example`) are few-shot examples put in the prompt;
    ``lm`` names the system LM to use (default ``"default"``).

    Raises, before any I/O: :class:`SignatureError` for missing or unknown inputs.
    """

    def __init__(
        self,
        signature: str | type[Signature],
        *,
        lm: str | None = None,
        adapter: ChatAdapter | None = None,
        **config: Any,
    ) -> None:
        self.signature = ensure_signature(signature)
        if not self.signature.input_fields:
            # DSPy accepts "-> answer"; a call with nothing to answer from is a mistake.
            raise SignatureError(
                f"Predict({self.signature.signature!r}) has no input fields: "
                "write the inputs before '->', e.g. 'question -> answer'"
            )
        self.demos: list[Example] = []
        self.lm = lm
        self.adapter = adapter
        self.config = dict(config)

    def __repr__(self) -> str:
        return f"Predict({self.signature.signature!r}, demos={len(self.demos)})"

    def _check_inputs(self, inputs: Mapping[str, Any]) -> None:
        self.signature.validate_inputs(inputs)

    def forward(self, **kwargs: Any) -> Prediction:
        program = current_program()
        if program is None:  # called as predict.forward(...) directly from user code
            return self(**kwargs)  # type: ignore[no-any-return]
        inputs = self.signature.validate_inputs(kwargs)
        prediction = program.lm_call(self, inputs)
        _record_trace(self, inputs, prediction)  # teleprompters' trace hook (see below)
        return prediction

    def reset(self) -> None:
        """Drop the demos."""
        self.demos = []

    def dump_state(self) -> dict[str, Any]:
        """DSPy's per-predictor state: traces, train, demos, signature, lm (always null)."""
        return {
            "traces": [],
            "train": [],
            "demos": [_demo_to_json(d) for d in self.demos],
            "signature": self.signature.dump_state(),
            "lm": None,
        }

    def load_state(self, state: Mapping[str, Any]) -> Self:
        """Load demos and signature text from a DSPy-layout state dict.

        Validated whole before anything changes: on :class:`ProgramFileError` this
        predictor is exactly as it was.
        """
        self.apply_state(self.prepare_state(state))
        return self

    def prepare_state(self, state: Any) -> tuple[type[Signature], list[Example]]:
        """Check a saved predictor state and build what :meth:`apply_state` sets (no change).

        Raises:
            ProgramFileError: the state does not have DSPy's per-predictor layout.
        """
        if isinstance(state, Mapping) and "signature" not in state and "demos" not in state:
            keys = sorted(k for k in state if k != "metadata")
            raise ProgramFileError(
                f"not the state of one predictor (keys {keys}); a file saved from a "
                "module with several predictors loads into that module"
            )
        if not isinstance(state, Mapping):
            raise ProgramFileError(
                f"a predictor state must be an object, got {type(state).__name__}"
            )
        demos = state.get("demos", [])
        if not isinstance(demos, list) or not all(isinstance(d, Mapping) for d in demos):
            raise ProgramFileError("'demos' must be a list of objects")
        signature = self.signature
        signature_state = state.get("signature")
        if signature_state is not None:
            if not isinstance(signature_state, Mapping):
                raise ProgramFileError("'signature' must be an object")
            try:
                signature = signature.load_state(signature_state)
            except (SignatureError, KeyError, TypeError, ValueError) as exc:
                raise ProgramFileError(f"bad signature state: {exc}") from exc
        try:
            examples = [Example(**{str(k): v for k, v in d.items()}) for d in demos]
        except (TypeError, ValueError) as exc:
            raise ProgramFileError(f"bad demo: {exc}") from exc
        return signature, examples

    def apply_state(self, prepared: tuple[type[Signature], list[Example]]) -> None:
        """Set what :meth:`prepare_state` built (cannot fail)."""
        self.signature, self.demos = prepared


# ----------------------------------------------------------------- trace hook
# Teleprompters (``optimize/_bootstrap.py``) need every predictor's inputs
# and outputs during a teacher run, as DSPy's ``settings.trace``. A whole
# ``forward`` runs in one program actor's thread, so a thread-local list is
# enough: ``recording_trace()`` turns recording on in the current thread and
# ``Predict.forward`` appends ``(predictor, inputs, prediction)`` to it. When no
# recording is on (the normal case) ``_record_trace`` is one getattr.
_trace_local = threading.local()

TraceStep = tuple["Predict", dict[str, Any], Prediction]


@contextlib.contextmanager
def recording_trace() -> Iterator[list[TraceStep]]:
    """Record the predictor calls made in this thread inside the ``with`` block."""
    previous = getattr(_trace_local, "trace", None)
    trace: list[TraceStep] = []
    _trace_local.trace = trace
    try:
        yield trace
    finally:
        _trace_local.trace = previous


def _record_trace(predictor: Predict, inputs: dict[str, Any], prediction: Prediction) -> None:
    trace: list[TraceStep] | None = getattr(_trace_local, "trace", None)
    if trace is not None:
        trace.append((predictor, dict(inputs), prediction))


_REASONING = "reasoning"


class ChainOfThought(Module):
    """Predict with a ``reasoning`` output field first (DSPy's ``dspy.ChainOfThought``).

    The prediction has ``.reasoning`` and the signature's outputs. Its single
    sub-predictor is ``self.predict`` (saved as ``"predict"``, as DSPy does).
    """

    def __init__(self, signature: str | type[Signature], **config: Any) -> None:
        base = ensure_signature(signature)
        extended = base.prepend(_REASONING, OutputField(desc="${reasoning}"), str)
        self.predict = Predict(extended, **config)

    @property
    def signature(self) -> type[Signature]:
        """The extended signature (with ``reasoning``)."""
        return self.predict.signature

    def __repr__(self) -> str:
        return f"ChainOfThought({self.predict.signature.signature!r})"

    def _check_inputs(self, inputs: Mapping[str, Any]) -> None:
        self.predict._check_inputs(inputs)

    def forward(self, **kwargs: Any) -> Prediction:
        result: Prediction = self.predict(**kwargs)
        return result


def _as_kwargs(item: Mapping[str, Any] | Example) -> dict[str, Any]:
    if isinstance(item, Example):
        keys = item.input_keys
        return dict(item.inputs().items()) if keys else dict(item.items())
    if isinstance(item, dict) or isinstance(item, Mapping):  # noqa: SIM101 - dict: no ABC check
        return dict(item)
    raise TypeError(f"batch items must be dicts or Examples, got {item!r}")


def _demo_to_json(demo: Any) -> dict[str, Any]:
    data = demo.to_dict() if isinstance(demo, Example) else dict(demo)
    return {k: _jsonable(v) for k, v in data.items()}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        if hasattr(value, "model_dump"):
            return value.model_dump()
        return str(value)
    return value


#: Programs larger than this are not loaded (a saved program is a few KiB to a few MiB).
MAX_PROGRAM_FILE_BYTES = 64 * 1024 * 1024


def _read_program_file(path: Path) -> str:
    """The text of a program file: a regular file (not a FIFO or device) under the size cap."""
    try:
        info = path.stat()  # follows symlinks: a link to /dev/zero is a device
    except OSError as exc:
        raise ProgramFileError(f"cannot read {path}: {exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ProgramFileError(f"{path} is not a regular file")
    if info.st_size > MAX_PROGRAM_FILE_BYTES:
        raise ProgramFileError(
            f"{path} is {info.st_size} bytes; programs over {MAX_PROGRAM_FILE_BYTES} are not loaded"
        )
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PROGRAM_FILE_BYTES + 1)
    except OSError as exc:
        raise ProgramFileError(f"cannot read {path}: {exc}") from exc
    if len(data) > MAX_PROGRAM_FILE_BYTES:
        raise ProgramFileError(f"{path} grew past {MAX_PROGRAM_FILE_BYTES} bytes while read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProgramFileError(
            f"{path} is not a JSON text file (pickled programs are not loaded): {exc}"
        ) from exc


def _metadata() -> dict[str, Any]:
    """A saved file's ``metadata``: DSPy's keys where DSPy reads them, ours beside them.

    DSPy 3.4.1's ``load()`` looks up every key of ``dependency_versions`` in its own
    table (python, dspy, cloudpickle), so only those keys may appear there.
    """
    return {
        "dependency_versions": {
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "dspy": _DSPY_VERSION_COMPAT,
        },
        "dspex_actors": {"version": _version()},
    }


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dspex-actors")
    except Exception:
        return "0+unknown"
