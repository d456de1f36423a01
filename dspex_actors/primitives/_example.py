"""``Example`` (a training/demo record) and ``Prediction`` (a module's output), as in DSPy 3.x.

An :class:`Example` is a dict-like record with attribute access::

    ex = Example(question="2+2?", answer="4").with_inputs("question")
    ex.question, ex["answer"], ex.inputs().toDict(), ex.labels().keys()

Semantics follow ``dspy.Example`` exactly: keys starting with ``dspy_`` are internal
(hidden from ``keys()``/``len()``/``repr``), equality compares the stored fields only
(not the input keys), ``with_inputs``/``copy``/``without``/``inputs``/``labels`` return
new objects, ``inputs()`` raises ``ValueError`` if ``with_inputs`` was never called.

Examples are plain mutable objects and are not locked: give each thread (actor) its own,
or treat them as read-only once shared. ``copy`` is shallow.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Self

from pydantic import BaseModel

__all__ = ["Completions", "Example", "Prediction"]


_CLASS_ATTRIBUTES: dict[type, frozenset[str]] = {}


def _class_attribute_names(cls: type) -> frozenset[str]:
    names = _CLASS_ATTRIBUTES.get(cls)
    if names is None:
        names = _CLASS_ATTRIBUTES[cls] = frozenset(dir(cls))
    return names


def _to_serializable(value: Any) -> Any:
    if hasattr(value, "toDict"):
        return value.toDict()
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_to_serializable(item) for item in value]
    if isinstance(value, dict):
        return {k: _to_serializable(v) for k, v in value.items()}
    return value


class Example:
    """A record of named fields, some of which are marked as inputs (``dspy.Example``).

    ``Example(base=None, **fields)``: ``base`` is a dict or another Example whose fields
    (and, for an Example, input keys) are copied first; ``fields`` override them.
    Attribute access reads fields (``ex.question``); setting a public attribute sets a
    field. Missing fields raise ``AttributeError`` / ``KeyError`` like an object / dict.
    """

    _store: dict[str, Any]
    _demos: list[Any]
    _input_keys: set[str] | None

    def __init__(self, base: Example | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self._store = {}
        self._demos = []
        self._input_keys = None
        if base and isinstance(base, Example):
            self._store = base._store.copy()
            base_input_keys = getattr(base, "_input_keys", None)
            if base_input_keys is not None:
                self._input_keys = set(base_input_keys)
        elif base and isinstance(base, Mapping):
            self._store = dict(base)
        self._store.update(kwargs)

    # -- attribute / item access ------------------------------------------------------

    def __getattr__(self, key: str) -> Any:
        if (key.startswith("__") and key.endswith("__")) or key == "_store":
            raise AttributeError(key)
        store = self.__dict__.get("_store", {})
        if key in store:
            return store[key]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{key}'")

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_") or key in _class_attribute_names(type(self)):
            super().__setattr__(key, value)
        else:
            self._store[key] = value

    def __getitem__(self, key: str) -> Any:
        return self._store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store[key] = value

    def __delitem__(self, key: str) -> None:
        del self._store[key]

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __len__(self) -> int:
        return len([k for k in self._store if not k.startswith("dspy_")])

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._store))

    def __repr__(self) -> str:
        d = {k: v for k, v in self._store.items() if not k.startswith("dspy_")}
        return f"Example({d})" + f" (input_keys={self._input_keys})"

    def __str__(self) -> str:
        return self.__repr__()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Example) and self._store == other._store

    def __hash__(self) -> int:
        """Hash of the fields; raises ``TypeError`` if a value is unhashable (as DSPy)."""
        return hash(frozenset(self._store.items()))

    # -- dict-like views ---------------------------------------------------------------

    def keys(self, include_dspy: bool = False) -> list[str]:
        """Field names (``dspy_*`` internal fields only with ``include_dspy``)."""
        return [k for k in self._store if not k.startswith("dspy_") or include_dspy]

    def values(self, include_dspy: bool = False) -> list[Any]:
        """Field values, in field order."""
        return [v for k, v in self._store.items() if not k.startswith("dspy_") or include_dspy]

    def items(self, include_dspy: bool = False) -> list[tuple[str, Any]]:
        """``(name, value)`` pairs, in field order."""
        return [(k, v) for k, v in self._store.items() if not k.startswith("dspy_") or include_dspy]

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when the field does not exist."""
        return self._store.get(key, default)

    # -- inputs / labels ----------------------------------------------------------------

    def with_inputs(self, *keys: str) -> Self:
        """A copy whose input fields are ``keys`` (the other fields are labels)."""
        copied = self.copy()
        copied._input_keys = set(keys)
        return copied

    @property
    def input_keys(self) -> frozenset[str] | None:
        """The names marked by :meth:`with_inputs`, or ``None`` if never marked."""
        return frozenset(self._input_keys) if self._input_keys is not None else None

    def inputs(self) -> Self:
        """A new record with only the input fields; ``ValueError`` if none were marked."""
        if self._input_keys is None:
            raise ValueError(
                "Inputs have not been set for this example. "
                "Use `example.with_inputs()` to set them."
            )
        d = {key: self._store[key] for key in self._store if key in self._input_keys}
        new_instance = type(self)(base=d)
        new_instance._input_keys = self._input_keys
        return new_instance

    def labels(self) -> Self:
        """A new record with the non-input fields; ``ValueError`` if no inputs were marked."""
        input_keys = self.inputs().keys()
        d = {key: self._store[key] for key in self._store if key not in input_keys}
        return type(self)(d)

    # -- copies ----------------------------------------------------------------------------

    def copy(self, **kwargs: Any) -> Self:
        """A shallow copy (input keys kept), with ``kwargs`` added or overriding fields."""
        return type(self)(base=self, **kwargs)

    def without(self, *keys: str) -> Self:
        """A copy without the given fields (``KeyError`` if one is absent, as DSPy)."""
        copied = self.copy()
        for key in keys:
            del copied[key]
        return copied

    def toDict(self) -> dict[str, Any]:
        """The fields as a plain dict; nested Examples and pydantic models become dicts."""
        return {k: _to_serializable(v) for k, v in self._store.items()}

    def to_dict(self) -> dict[str, Any]:
        """Same as :meth:`toDict`."""
        return self.toDict()


class Prediction(Example):
    """The output of a module call (``dspy.Prediction``): an Example of output fields.

    ``completions`` holds all the completions when the LM returned several (``n > 1``),
    or ``None``. A ``score`` field makes the prediction usable as a number (``float(p)``,
    ``p + 1``, ``p < q``...), as DSPy allows for metric results.
    """

    _completions: Completions | None
    _lm_usage: Any

    def __init__(self, base: Example | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(base, **kwargs)
        self._completions = None
        self._lm_usage = None

    @classmethod
    def from_completions(
        cls, list_or_dict: list[Mapping[str, Any]] | Mapping[str, list[Any]], signature: Any = None
    ) -> Self:
        """A prediction whose fields are the first completion's; all are in ``completions``.

        Raises ``ValueError`` when the completions are empty or ragged.
        """
        obj = cls()
        completions = Completions(list_or_dict, signature=signature)
        if len(completions) == 0:
            raise ValueError("from_completions needs at least one completion")
        obj._completions = completions
        obj._store = {k: v[0] for k, v in completions.items()}
        return obj

    @property
    def completions(self) -> Completions | None:
        """All completions, or ``None`` when the prediction was built from one."""
        return self._completions

    def get_lm_usage(self) -> Any:
        """Tokens the call that produced this prediction used, summed over its LM calls.

        Keyed by LM as DSPy's is: ``{"openai/gpt-4o-mini": {"prompt_tokens": ...,
        "completion_tokens": ..., "total_tokens": ...}}``; ``{}`` when every LM call was
        a cache hit; ``None`` for a prediction not made by a module call.
        """
        return self._lm_usage

    def set_lm_usage(self, value: Any) -> None:
        """Set what :meth:`get_lm_usage` returns (the runtime does, as DSPy's does)."""
        self._lm_usage = value

    def __repr__(self) -> str:
        store_repr = ",\n    ".join(f"{k}={v!r}" for k, v in self._store.items())
        if self._completions is None or len(self._completions) == 1:
            return f"Prediction(\n    {store_repr}\n)"
        omitted = len(self._completions) - 1
        return (
            f"Prediction(\n    {store_repr},\n    completions=Completions(...)\n)"
            f" ({omitted} completions omitted)"
        )

    def __str__(self) -> str:
        return self.__repr__()

    def __float__(self) -> float:
        if "score" not in self._store:
            raise ValueError("Prediction object does not have a 'score' field to convert to float.")
        return float(self._store["score"])

    @staticmethod
    def _number(other: object, operation: str) -> float:
        if isinstance(other, Prediction):
            return float(other)
        if isinstance(other, (int, float)):
            return float(other)
        raise TypeError(f"Unsupported type for {operation}: {type(other)}")

    def __add__(self, other: object) -> float:
        return float(self) + self._number(other, "addition")

    def __radd__(self, other: object) -> float:
        return self._number(other, "addition") + float(self)

    def __truediv__(self, other: object) -> float:
        return float(self) / self._number(other, "division")

    def __rtruediv__(self, other: object) -> float:
        return self._number(other, "division") / float(self)

    def __lt__(self, other: object) -> bool:
        return float(self) < self._number(other, "comparison")

    def __le__(self, other: object) -> bool:
        return float(self) <= self._number(other, "comparison")

    def __gt__(self, other: object) -> bool:
        return float(self) > self._number(other, "comparison")

    def __ge__(self, other: object) -> bool:
        return float(self) >= self._number(other, "comparison")


class Completions:
    """Several completions of one call: ``c.answer`` is the list of all answers, ``c[i]``
    the i-th completion as a :class:`Prediction` (``dspy.Completions``).
    """

    def __init__(
        self, list_or_dict: list[Mapping[str, Any]] | Mapping[str, list[Any]], signature: Any = None
    ) -> None:
        self.signature = signature
        kwargs: dict[str, list[Any]] = {}
        if isinstance(list_or_dict, list):
            for completion in list_or_dict:
                for k, v in completion.items():
                    kwargs.setdefault(k, []).append(v)
        else:
            kwargs = {k: list(v) for k, v in list_or_dict.items()}
        lengths = {len(v) for v in kwargs.values()}
        if len(lengths) > 1:
            raise ValueError("All lists must have the same length")
        self._completions = kwargs

    def items(self) -> Iterator[tuple[str, list[Any]]]:
        """``(field, values)`` pairs."""
        return iter(self._completions.items())

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, int):
            if key < 0 or key >= len(self):
                raise IndexError("Index out of range")
            return Prediction(**{k: v[key] for k, v in self._completions.items()})
        return self._completions[key]

    def __getattr__(self, name: str) -> list[Any]:
        if name.startswith("__") or name == "_completions":
            raise AttributeError(name)
        completions = self.__dict__.get("_completions", {})
        if name in completions:
            return list(completions[name])
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __len__(self) -> int:
        return len(next(iter(self._completions.values()), []))

    def __contains__(self, key: object) -> bool:
        return key in self._completions

    def __repr__(self) -> str:
        items_repr = ",\n    ".join(f"{k}={v!r}" for k, v in self._completions.items())
        return f"Completions(\n    {items_repr}\n)"
