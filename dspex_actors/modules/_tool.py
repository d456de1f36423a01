"""``dx.Tool``: a function (or a service actor's method) an agent may call.

Name, description and JSON-schema arguments come from the function's name, docstring
and type hints, exactly as DSPy 3.4.1's ``dspy.Tool`` derives them (the agent's
prompt lists them byte for byte). Inside a program actor a call runs in its own
short-lived tool worker (``runtime.call_tool``): monitored, bounded by ``timeout``,
retried ``max_retries`` times after a crash.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, get_origin, get_type_hints

import pydantic
import pydantic_core
from pydantic import BaseModel, TypeAdapter

import supervisors as sv

__all__ = ["Tool", "ToolArgsError"]

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


class ToolArgsError(ValueError):
    """Arguments an agent gave a tool do not fit its schema (found before the call)."""


class Tool:
    """A callable an agent may use (DSPy's ``dspy.Tool``), run in its own worker.

    ``Tool(func, name=None, desc=None, args=None, arg_types=None, arg_desc=None, *,
    timeout=None, max_retries=0)``: what is not given is inferred from ``func`` as
    DSPy infers it. ``timeout`` (seconds) bounds one call (``None``: the request's
    deadline); ``max_retries`` is how many times a call that raised is tried again.
    ``async def`` functions are run with ``asyncio.run`` in the worker's thread.

    Threading: immutable after construction; call it from any thread. Inside a
    program actor the call runs in a tool worker; outside, in the caller's thread.

    Raises, at construction: ``TypeError`` for a non-callable ``func``, ``ValueError``
    for a negative ``timeout`` or ``max_retries``.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        name: str | None = None,
        desc: str | None = None,
        args: dict[str, Any] | None = None,
        arg_types: dict[str, Any] | None = None,
        arg_desc: dict[str, str] | None = None,
        *,
        timeout: float | None = None,
        max_retries: int = 0,
    ) -> None:
        if not callable(func):
            raise TypeError(f"Tool needs a callable, got {func!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"Tool timeout must be > 0 seconds or None, got {timeout!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"Tool max_retries must be an int >= 0, got {max_retries!r}")
        self.func = func
        self.timeout = timeout
        self.max_retries = max_retries
        inferred = _infer(func, arg_desc) if args is None or name is None else None
        self.name: str = name or (inferred[0] if inferred else _func_name(func))
        self.desc: str | None = desc or (inferred[1] if inferred else _func_doc(func))
        if args is not None:
            self.args: dict[str, Any] = args
            self.arg_types: dict[str, Any] = arg_types if arg_types is not None else {}
            self.has_kwargs = False
        else:
            assert inferred is not None
            self.args = inferred[2]
            self.arg_types = arg_types if arg_types is not None else inferred[3]
            self.has_kwargs = inferred[4]

    @classmethod
    def from_actor(
        cls,
        ref: Any,
        method: str,
        *,
        name: str | None = None,
        desc: str | None = None,
        timeout: float | None = None,
        max_retries: int = 0,
    ) -> Tool:
        """A tool that calls ``method`` of an actor, e.g. a service (``system.start_service``).

        ``ref`` is a registered name, a ``sv.NamedRef`` or an actor ref; a name or a
        named ref follows the actor across restarts by its supervisor. Name, description
        and arguments come from the actor class's method. The call is a proxy call made
        from the tool worker, bounded by ``timeout`` (else the request's deadline).

        Raises:
            AttributeError: the actor's class has no such method.
        """
        target = sv.named(ref) if isinstance(ref, str) else ref
        actor_class = _actor_class(target)
        unbound = getattr(actor_class, method)  # AttributeError names the method
        wait = timeout

        def call(**kwargs: Any) -> Any:
            return getattr(target.proxy(), method)(**kwargs).get(timeout=wait)

        args, arg_types, has_kwargs = _infer_args(unbound, None, skip_self=True)
        tool = cls(
            call,
            name=name or method,
            desc=desc or _func_doc(unbound),
            args=args,
            arg_types=arg_types,
            timeout=timeout,
            max_retries=max_retries,
        )
        tool.has_kwargs = has_kwargs
        return tool

    # ------------------------------------------------------------------ calling

    def validate_args(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments checked against the schema and parsed to the hinted types.

        Raises:
            ToolArgsError: an unknown or missing argument, or a value of the wrong type.
        """
        if not isinstance(kwargs, Mapping):
            raise ToolArgsError(f"Arguments of {self.name} must be an object, got {kwargs!r}")
        for key, value in kwargs.items():
            if key not in self.args:
                if self.has_kwargs:
                    continue
                raise ToolArgsError(f"Arg {key} is not in the tool's args.")
            problem = _schema_problem(self.args[key], value)
            if problem is not None:
                raise ToolArgsError(f"Arg {key} is invalid: {problem}")
        for key, schema in self.args.items():
            if key not in kwargs and isinstance(schema, dict) and "default" not in schema:
                raise ToolArgsError(f"Arg {key} is required.")
        parsed: dict[str, Any] = {}
        for key, value in kwargs.items():
            kind = self.arg_types.get(key, Any)
            if kind is Any:
                parsed[key] = value
                continue
            wrapper = pydantic.create_model("Wrapper", value=(kind, ...))
            try:
                parsed[key] = wrapper.model_validate({"value": value}).value  # type: ignore[attr-defined]
            except pydantic.ValidationError as exc:
                raise ToolArgsError(f"Arg {key} is invalid: {exc.errors()[0]['msg']}") from None
        return parsed

    def invoke(self, **parsed: Any) -> Any:
        """Run the function in this thread with already validated arguments.

        A coroutine result (an ``async def`` tool) is run to completion with
        ``asyncio.run``; refused inside a running event loop (never block a loop).
        """
        result = self.func(**parsed)
        if inspect.iscoroutine(result):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(result)
            result.close()
            raise RuntimeError(
                f"async tool {self.name} called synchronously inside an event loop; "
                "use `await tool.acall(...)`"
            )
        return result

    def __call__(self, **kwargs: Any) -> Any:
        """Validate and call: in a tool worker inside a program actor, else right here.

        Raises:
            ToolArgsError: the arguments do not fit (nothing runs).
            Exception: what the tool raised (outside a program actor).
        """
        from dspex_actors.runtime import current_program

        parsed = self.validate_args(kwargs)
        program = current_program()
        if program is None:
            return self.invoke(**parsed)
        from dspex_actors.runtime import ToolFailure, call_tool

        outcome = call_tool(
            program,
            lambda: self.invoke(**parsed),
            label=self.name,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )
        if isinstance(outcome, ToolFailure):
            if outcome.error is not None:
                raise outcome.error
            raise TimeoutError(f"tool {self.name} {outcome.detail}")
        return outcome

    async def acall(self, **kwargs: Any) -> Any:
        """Validate and call, awaiting an ``async def`` tool (a sync tool runs inline,
        as DSPy's ``acall`` does; keep it short, it runs on the event loop)."""
        parsed = self.validate_args(kwargs)
        result = self.func(**parsed)
        if inspect.iscoroutine(result):
            return await result
        return result

    # --------------------------------------------------------------- formatting

    def format(self) -> str:
        """The tool's line in an agent's tool list (``str(tool)``)."""
        return str(self)

    def __repr__(self) -> str:
        return f"Tool(name={self.name}, desc={self.desc}, args={self.args})"

    def __str__(self) -> str:
        desc = (
            f", whose description is <desc>{self.desc}</desc>.".replace("\n", "  ")
            if self.desc
            else "."
        )
        return f"{self.name}{desc} It takes arguments {self.args}."


# ------------------------------------------------------------------ inference


def _func_name(func: Any) -> str:
    return str(getattr(func, "__name__", type(func).__name__))


def _annotated(func: Any) -> Any:
    return func if inspect.isfunction(func) or inspect.ismethod(func) else func.__call__


def _func_doc(func: Any) -> str:
    doc = getattr(func, "__doc__", None) or getattr(_annotated(func), "__doc__", "")
    return str(doc or "")


def _infer(
    func: Any, arg_desc: dict[str, str] | None
) -> tuple[str, str, dict[str, Any], dict[str, Any], bool]:
    args, arg_types, has_kwargs = _infer_args(func, arg_desc)
    return _func_name(func), _func_doc(func), args, arg_types, has_kwargs


def _infer_args(
    func: Any, arg_desc: dict[str, str] | None, *, skip_self: bool = False
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """DSPy's ``Tool._parse_function``: a JSON schema and a type per parameter."""
    target = _annotated(func)
    sig = inspect.signature(target)
    hints_found = get_type_hints(target)
    params = list(sig.parameters.values())
    if skip_self and params and params[0].name == "self":
        params = params[1:]
    args: dict[str, Any] = {}
    arg_types: dict[str, Any] = {}
    for param in params:
        hint = hints_found.get(param.name, Any)
        arg_types[param.name] = hint
        origin = get_origin(hint) or hint
        if isinstance(origin, type) and issubclass(origin, BaseModel):
            schema = _resolve_refs(hint.model_json_schema())
        else:
            schema = _resolve_refs(TypeAdapter(hint).json_schema())
        if param.default is not inspect.Parameter.empty:
            schema["default"] = _to_json_default(param.default)
        if arg_desc and param.name in arg_desc:
            schema["description"] = arg_desc[param.name]
        args[param.name] = schema
    has_kwargs = any(p.kind == p.VAR_KEYWORD for p in params)
    return args, arg_types, has_kwargs


def _to_json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    try:
        return pydantic_core.to_jsonable_python(value)
    except Exception:
        return value


def _resolve_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every ``$ref`` expanded and ``$defs`` dropped (as DSPy does)."""
    if "$defs" not in schema and "definitions" not in schema:
        return schema

    def resolve(obj: Any) -> Any:
        if isinstance(obj, dict):
            if "$ref" in obj:
                return resolve(schema["$defs"][obj["$ref"].split("/")[-1]])
            return {k: resolve(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [resolve(item) for item in obj]
        return obj

    resolved: dict[str, Any] = resolve(schema)
    resolved.pop("$defs", None)
    return resolved


def _schema_problem(schema: Any, value: Any) -> str | None:
    """Why ``value`` breaks the top-level JSON type of ``schema`` (``None``: it fits).

    The type check DSPy makes with ``jsonschema`` before a call; nested structure is
    checked by the pydantic parse that follows.
    """
    if not isinstance(schema, dict):
        return None
    instance = value.model_dump() if hasattr(value, "model_dump") else value
    options = schema.get("anyOf")
    if isinstance(options, list) and options:
        if any(_schema_problem(option, instance) is None for option in options):
            return None
        return f"{instance!r} is not valid under any of the given schemas"
    kind = schema.get("type")
    if not isinstance(kind, str) or kind not in _JSON_TYPES:
        return None
    ok = isinstance(instance, _JSON_TYPES[kind]) and not (
        isinstance(instance, bool) and kind in ("integer", "number")
    )
    if kind == "integer" and isinstance(instance, float) and instance.is_integer():
        ok = True
    if not ok:
        return f"{instance!r} is not of type {kind!r}"
    enum = schema.get("enum")
    if isinstance(enum, list) and instance not in enum:
        return f"{instance!r} is not one of {enum!r}"
    return None


def _actor_class(target: Any) -> type[Any]:
    ref = target.resolve() if isinstance(target, sv.NamedRef) else target
    actor_class: type[Any] | None = getattr(ref, "actor_class", None)
    if actor_class is None:
        raise TypeError(f"Tool.from_actor needs an actor ref or name, got {target!r}")
    return actor_class
