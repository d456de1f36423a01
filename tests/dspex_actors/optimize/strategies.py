"""Hypothesis strategies for the file property tests: JSON values and mutations of them."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)

JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON value Python's ``json`` writes (NaN and infinities included)."""


def mutate(data: st.DataObject, value: Any, depth: int = 0) -> Any:
    """``value`` (JSON) with one random change somewhere inside it: a value replaced, a
    key or item removed or added. Returns a new value; ``value`` is not changed."""
    value = copy.deepcopy(value)
    containers = isinstance(value, dict | list) and bool(value) and depth < 6
    choice = data.draw(st.sampled_from(["replace", "inside", "remove", "add"]))
    if choice == "replace" or not containers:
        return data.draw(JSON)
    if isinstance(value, dict):
        key = data.draw(st.sampled_from(sorted(value)))
        if choice == "inside":
            value[key] = mutate(data, value[key], depth + 1)
        elif choice == "remove":
            del value[key]
        else:
            value[data.draw(st.text(max_size=8))] = data.draw(JSON)
        return value
    index = data.draw(st.integers(min_value=0, max_value=len(value) - 1))
    if choice == "inside":
        value[index] = mutate(data, value[index], depth + 1)
    elif choice == "remove":
        del value[index]
    else:
        value.insert(index, data.draw(JSON))
    return value
