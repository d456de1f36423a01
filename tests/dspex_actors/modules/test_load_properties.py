"""Property tests: any file is either loaded whole or refused with ProgramFileError.

Hypothesis generates program files: valid states with one part broken, random JSON,
random bytes. Whatever the file, ``load`` raises nothing but ``ProgramFileError``,
and a refused load leaves the program exactly as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dspex_actors as dx
from tests.paths import DSPY_FIXTURES

SAVED = DSPY_FIXTURES / "saved_programs"
SETTINGS = settings(
    max_examples=150, deadline=500, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


class RAG(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rewrite = dx.Predict("question -> search_query")
        self.generate = dx.ChainOfThought("context: list[str], question -> answer")


def _valid_state() -> dict[str, Any]:
    state: dict[str, Any] = json.loads((SAVED / "rag_module.json").read_text(encoding="utf-8"))
    return state


def _paths(state: Any) -> list[tuple[Any, ...]]:
    """Every (container path, key) inside ``state`` that can be replaced."""
    found: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                found.append((*path, key))
                walk(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                found.append((*path, index))
                walk(value, (*path, index))

    walk(state, ())
    return found


def _replace(state: Any, path: tuple[Any, ...], value: Any) -> None:
    node = state
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _load_or_refuse(tmp_path: Path, data: bytes) -> None:
    program = RAG()
    before = program.dump_state()
    path = tmp_path / "program.json"
    path.write_bytes(data)
    try:
        program.load(path)
    except dx.ProgramFileError:
        assert program.dump_state() == before  # nothing half-applied
    else:
        assert set(program.dump_state()) == {"rewrite", "generate.predict"}


@SETTINGS
@given(index=st.integers(min_value=0), value=json_values)
def test_a_valid_file_with_one_part_replaced_loads_whole_or_not_at_all(
    tmp_path: Path, index: int, value: Any
) -> None:
    state = _valid_state()
    paths = _paths(state)
    _replace(state, paths[index % len(paths)], value)

    _load_or_refuse(tmp_path, json.dumps(state).encode())


@SETTINGS
@given(value=json_values)
def test_any_json_value_loads_whole_or_not_at_all(tmp_path: Path, value: Any) -> None:
    _load_or_refuse(tmp_path, json.dumps(value).encode())


@SETTINGS
@given(data=st.binary(max_size=300))
def test_any_bytes_load_whole_or_not_at_all(tmp_path: Path, data: bytes) -> None:
    _load_or_refuse(tmp_path, data)
