"""Examples as the optimizers use them: checked, their call inputs, a stable hash of those.

Pure functions; any thread.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from dspex_actors.optimize._jsonable import json_default
from dspex_actors.primitives import Example

__all__ = ["check_examples", "example_inputs", "input_hash"]


def example_inputs(example: Example) -> dict[str, Any]:
    """The keyword arguments of a program call for ``example`` (its marked inputs)."""
    return dict(example.inputs().items())


def check_examples(examples: Sequence[Any], what: str) -> list[Example]:
    """``examples`` as a list of Examples with inputs marked; ``ValueError`` otherwise."""
    out = list(examples)
    for index, example in enumerate(out):
        if not isinstance(example, Example):
            raise TypeError(f"{what}[{index}] must be a dx.Example, got {type(example).__name__}")
        if example.input_keys is None:
            raise ValueError(
                f"{what}[{index}] has no input fields: build it with "
                f"Example(...).with_inputs('question', ...)"
            )
    return out


def input_hash(example: Example) -> str:
    """A short stable hash of an example's input fields (names and values)."""
    text = json.dumps(
        example_inputs(example), sort_keys=True, default=json_default, ensure_ascii=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
