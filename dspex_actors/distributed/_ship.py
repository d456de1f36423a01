"""What travels to a Ray worker, and back: JSON and import paths, never pickled closures.

* a program: :func:`program_spec` -- its class by import path, the constructor
  arguments a built-in ``Predict``/``ChainOfThought`` needs (the signature as
  text, or its class by path), and its ``dump_state()``; :func:`build_program`
  rebuilds it on the worker (the same state: checked once on the driver);
* a metric: :func:`object_path` -- a module-level function by import path;
* an example: :func:`example_json` / :func:`example_from_json`;
* an answer: what the worker's request gave, as JSON (:func:`encode_result`),
  turned back into an ``sv.Ok``/``sv.Exit`` outcome on the driver
  (:func:`decode_result`): predictions as ``Prediction``, errors as
  ``RecordedError`` (type name and message).

All functions are pure and thread-safe. Anything that cannot travel raises
``TypeError``/``ValueError`` naming the fix, before any request.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
from collections.abc import Mapping
from typing import Any

import supervisors as sv
from dspex_actors.modules import ChainOfThought, Module, Predict
from dspex_actors.optimize import (
    RecordedError,
    Scored,
    ScoredRun,
    TracedResult,
    TracedRun,
)
from dspex_actors.primitives import Example, Prediction
from dspex_actors.signatures import Signature, ensure_signature

__all__ = [
    "build_program",
    "decode_result",
    "encode_result",
    "example_from_json",
    "example_json",
    "object_path",
    "program_spec",
    "resolve",
    "spec_key",
]


def object_path(obj: Any, what: str) -> str:
    """``"package.module:Qualified.name"`` of a module-level function or class.

    Raises:
        TypeError: ``obj`` is not a function or class (a lambda's instance, a partial...).
        ValueError: a lambda, a local function or class, or one defined in ``__main__``
            (workers cannot import it); the message names the fix.
    """
    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)):
        raise TypeError(
            f"{what} travels to Ray workers by import path, so it must be a module-level "
            f"function or class, got {type(obj).__name__} {obj!r}: define it with `def` at "
            "the top of an importable module"
        )
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", "")
    if "<lambda>" in qualname or "<locals>" in qualname:
        kind = "class" if inspect.isclass(obj) else "function"
        raise ValueError(
            f"{what} {qualname!r} is a lambda or a local {kind}: Ray workers import it by "
            "path, so define it at module level (`def` at the top of an importable module) "
            "and pass that"
        )
    if not module or module == "__main__":
        raise ValueError(
            f"{what} {qualname!r} is defined in __main__, which Ray workers cannot import: "
            "move it to a module-level function or class of an importable module"
        )
    path = f"{module}:{qualname}"
    try:
        found = resolve(path)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"{what} {path} cannot be imported back ({exc}): define it at module level"
        ) from None
    if found is not obj:
        raise ValueError(f"{what} {path} imports as a different object: define it at module level")
    return path


def resolve(path: str) -> Any:
    """The object at ``"module:qualname"`` (``ImportError``/``AttributeError`` if absent)."""
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# ---------------------------------------------------------------------- programs


def _signature_ref(signature: type[Signature]) -> dict[str, Any]:
    """A signature as the worker rebuilds it: its class by path, or its text (all ``str``)."""
    try:
        return {"path": object_path(signature, "the signature")}
    except (TypeError, ValueError):
        pass
    text = signature.signature
    rebuilt = ensure_signature(text)
    fields = {**signature.input_fields, **signature.output_fields}
    again = {**rebuilt.input_fields, **rebuilt.output_fields}
    if list(fields) != list(again) or any(
        getattr(fields[n], "annotation", str) is not getattr(again[n], "annotation", str)
        for n in fields
    ):
        raise TypeError(
            f"signature {text!r} has typed fields that its text does not carry: define it as a "
            "module-level dx.Signature class so Ray workers import it"
        )
    return {"text": text}


def _predict_args(predict: Predict, signature: type[Signature]) -> dict[str, Any]:
    if predict.adapter is not None:
        raise TypeError(
            "a Predict with its own adapter= cannot travel to Ray workers: wrap it in a "
            "module-level dx.Module subclass that builds it in __init__"
        )
    try:
        config = json.loads(json.dumps(predict.config))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Predict config must be JSON to travel to Ray workers: {exc}") from None
    return {"signature": _signature_ref(signature), "lm": predict.lm, "config": config}


def program_spec(program: Any) -> dict[str, Any]:
    """The JSON a worker rebuilds ``program`` from (see the module docstring).

    A ``dx.Predict``/``dx.ChainOfThought`` travels with its signature and
    configuration; any other module as its class (module level, constructible
    with no arguments) and its ``dump_state()``. The rebuilt program is checked
    here to have the same state.

    Raises:
        TypeError / ValueError: the program cannot be rebuilt from JSON; the message
            says what to change.
    """
    if not isinstance(program, Module):
        raise TypeError(f"RayBackend runs dx.Module programs, got {type(program).__name__}")
    state = program.dump_state()
    if type(program) is Predict:
        spec = {"builtin": "Predict", **_predict_args(program, program.signature)}
    elif type(program) is ChainOfThought:
        base = program.signature.delete("reasoning")
        spec = {"builtin": "ChainOfThought", **_predict_args(program.predict, base)}
    else:
        cls = type(program)
        path = object_path(cls, "the program's class")
        try:
            inspect.signature(cls).bind()
        except TypeError:
            raise TypeError(
                f"{path} needs constructor arguments; Ray workers build programs as "
                f"{cls.__name__}() and then load_state(dump_state()): give its __init__ "
                "defaults"
            ) from None
        spec = {"class": path}
    spec["state"] = json.loads(json.dumps(state, ensure_ascii=False))
    rebuilt = build_program(spec)
    if rebuilt.dump_state() != spec["state"]:
        raise ValueError(
            f"{type(program).__name__}: rebuilding it from its class and dump_state() gives "
            "another state, so Ray workers would run a different program; keep everything "
            "that matters in its predictors"
        )
    return spec


def spec_key(spec: Mapping[str, Any]) -> str:
    """A short content hash of a program spec (workers cache rebuilt programs by it)."""
    text = json.dumps(spec, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def build_program(spec: Mapping[str, Any]) -> Module:
    """Rebuild a program from :func:`program_spec`'s JSON (the worker's thread)."""
    builtin = spec.get("builtin")
    program: Module
    if builtin in ("Predict", "ChainOfThought"):
        ref = spec["signature"]
        signature = resolve(ref["path"]) if "path" in ref else ref["text"]
        make = Predict if builtin == "Predict" else ChainOfThought
        program = make(signature, lm=spec.get("lm"), **dict(spec.get("config") or {}))
    else:
        program = resolve(str(spec["class"]))()
    program.load_state(spec["state"])
    return program


# ---------------------------------------------------------------------- examples


def example_json(example: Example) -> dict[str, Any]:
    """An example as ``{"data": {...}, "inputs": [...] | None}`` (``TypeError`` if not JSON)."""
    keys = example.input_keys
    data = example.toDict()
    try:
        data = json.loads(json.dumps(data, ensure_ascii=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"examples travel to Ray workers as JSON: {exc}") from None
    return {"data": data, "inputs": sorted(keys) if keys is not None else None}


def example_from_json(record: Mapping[str, Any]) -> Example:
    """The example :func:`example_json` describes."""
    example = Example(**record["data"])
    inputs = record.get("inputs")
    return example.with_inputs(*inputs) if inputs is not None else example


# ---------------------------------------------------------------------- answers


def _error_json(error: BaseException) -> dict[str, str]:
    if isinstance(error, RecordedError):
        return {"type": error.type_name, "message": str(error)}
    return {"type": type(error).__name__, "message": str(error)}


def _prediction_json(value: Any) -> Any:
    data = value.toDict() if isinstance(value, Example) else value
    return json.loads(json.dumps(data, ensure_ascii=False, default=str))


def encode_result(result: Any) -> dict[str, Any]:
    """A request's result (the value, or the exception that ended it) as JSON (the worker)."""
    if isinstance(result, BaseException):
        return {"failed": _error_json(result)}
    if isinstance(result, Scored):
        return {
            "scored": {
                "prediction": _prediction_json(result.prediction),
                "score": result.score,
                "error": _error_json(result.error) if result.error is not None else None,
            }
        }
    if isinstance(result, TracedResult):
        return {"traced": {"prediction": result.prediction, "trace": result.trace}}
    return {"value": _prediction_json(result)}


def _error(record: Mapping[str, str]) -> RecordedError:
    return RecordedError(str(record.get("type", "Exception")), str(record.get("message", "")))


def decode_result(answer: Mapping[str, Any]) -> sv.Ok[Any] | sv.Exit:
    """The fan-out outcome of a worker's :func:`encode_result` (the driver)."""
    if "failed" in answer:
        return sv.Exit(_error(answer["failed"]))
    if "scored" in answer:
        scored = answer["scored"]
        error = scored.get("error")
        prediction = scored.get("prediction")
        if isinstance(prediction, dict):
            prediction = Prediction(**prediction)
        return sv.Ok(
            Scored(prediction, scored.get("score"), _error(error) if error is not None else None)
        )
    if "traced" in answer:
        traced = answer["traced"]
        return sv.Ok(TracedResult(traced["prediction"], traced["trace"]))
    value = answer.get("value")
    return sv.Ok(Prediction(**value) if isinstance(value, dict) else value)


def call_payload(module: Any, inputs: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """What a program call sends besides the program: ``(program, payload)``.

    The payload is JSON: ``{"kind": "eval" | "traced" | "plain", "inputs": {...},
    "metric": path, "example": {...}}``; the program is the module to ship.
    """
    try:
        plain_inputs = json.loads(json.dumps(dict(inputs), ensure_ascii=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"inputs travel to Ray workers as JSON: {exc}") from None
    if isinstance(module, ScoredRun):
        payload = {
            "kind": "eval",
            "inputs": plain_inputs,
            "metric": object_path(module.metric, "the metric"),
            "example": example_json(module.example),
        }
        return module.program, payload
    if isinstance(module, TracedRun):
        return module.program, {"kind": "traced", "inputs": plain_inputs}
    return module, {"kind": "plain", "inputs": plain_inputs}


def worker_module(program: Module, payload: Mapping[str, Any]) -> Module:
    """The module a worker runs for ``payload`` around the rebuilt ``program``."""
    kind = payload["kind"]
    if kind == "eval":
        metric = resolve(str(payload["metric"]))
        return ScoredRun(program, metric, example_from_json(payload["example"]))
    if kind == "traced":
        return TracedRun(program)
    return program
