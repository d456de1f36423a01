"""Load the files ``save_for_dspy.py`` wrote, with the real DSPy 3.4.1, and compare.

Run by .ci/run in a separate venv that has only ``dspy==3.4.1``:
``python tests/interop/load_in_dspy.py OUT_DIR``. Exits non-zero, naming the file and
predictor, if DSPy cannot load a file or loads different demos or instructions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

import dspy


class Classify(dspy.Signature):
    """Classify the sentiment."""

    sentence: str = dspy.InputField(desc="a movie review sentence")
    sentiment: Literal["positive", "negative"] = dspy.OutputField()


class RAG(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rewrite = dspy.Predict("question -> search_query")
        self.generate = dspy.ChainOfThought("context: list[str], question -> answer")

    def forward(self, question: str) -> Any:  # pragma: no cover - never called
        raise NotImplementedError


class TwoStep(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rewrite = dspy.Predict("question -> query")
        self.answer = dspy.Predict("question, query -> answer")

    def forward(self, question: str) -> Any:  # pragma: no cover - never called
        raise NotImplementedError


BUILDERS = {
    "predict": lambda: dspy.Predict("question -> answer"),
    "chain_of_thought": lambda: dspy.ChainOfThought(Classify),
    "rag_module": RAG,
    "mipro_two_step": TwoStep,  # compiled by dx.MIPROv2
}


def main(out: Path) -> int:
    assert dspy.__version__ == "3.4.1", dspy.__version__
    expected = json.loads((out / "expected.json").read_text(encoding="utf-8"))
    failures = []
    for name, build in BUILDERS.items():
        program = build()
        try:
            program.load(str(out / f"{name}.json"))
        except Exception as exc:  # report any failure to load
            failures.append(f"{name}.json: DSPy cannot load it: {type(exc).__name__}: {exc}")
            continue
        got = {
            pname: {
                "instructions": p.signature.instructions,
                "demos": [dict(d) if not isinstance(d, dict) else d for d in p.demos],
            }
            for pname, p in program.named_predictors()
        }
        got = json.loads(json.dumps(got, default=dict))
        for pname, want in expected[name].items():
            if got.get(pname) != want:
                failures.append(f"{name}.json [{pname}]: DSPy loaded {got.get(pname)}, want {want}")
        print(f"DSPy {dspy.__version__} loaded {name}.json: {sorted(got)}")
    for line in failures:
        print("FAIL", line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
