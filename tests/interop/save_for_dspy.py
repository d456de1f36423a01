"""Save programs with dspex_actors for ``load_in_dspy.py`` to load with the real DSPy.

Run by .ci/run with the project's venv: ``python -m tests.interop.save_for_dspy OUT_DIR``.
Writes ``predict.json``, ``chain_of_thought.json``, ``rag_module.json`` (each with
demos and instructions of our own, not DSPy's fixtures), ``mipro_two_step.json`` (a
two-predictor module compiled by ``dx.MIPROv2`` against the rule-based server: its
proposed instructions and bootstrapped demos) and ``expected.json``: what each
predictor must hold once DSPy has loaded the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

import dspex_actors as dx
from dspex_actors.testing import RuleBasedLMServer


class Classify(dx.Signature):
    """Classify the sentiment."""

    sentence: str = dx.InputField(desc="a movie review sentence")
    sentiment: Literal["positive", "negative"] = dx.OutputField()


class RAG(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rewrite = dx.Predict("question -> search_query")
        self.generate = dx.ChainOfThought("context: list[str], question -> answer")

    def forward(self, question: str) -> Any:  # pragma: no cover - never called
        raise NotImplementedError


class TwoStep(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rewrite = dx.Predict("question -> query")
        self.answer = dx.Predict("question, query -> answer")

    def forward(self, question: str) -> Any:
        query = self.rewrite(question=question).query
        return self.answer(question=question, query=query)


def mipro_compiled() -> dx.Module:
    """``TwoStep`` compiled by a small, seeded ``dx.MIPROv2`` (well under a second)."""
    from tests.dspex_actors.optimize.test_mipro import TRAIN, VAL, _seed_with_simple_tip, exact

    student = TwoStep()
    opt = dx.MIPROv2(
        metric=exact,
        auto=None,
        num_candidates=6,
        num_trials=8,
        minibatch_size=10,
        max_bootstrapped_demos=2,
        max_labeled_demos=2,
        seed=_seed_with_simple_tip(),  # a seed whose proposals change the answer format
    )
    with RuleBasedLMServer(follow_demos=False) as server:
        lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="sk-test")
        with dx.start(lm=lm, cache=False, configure_logs=False, name="interop-mipro") as system:
            job = system.compile(opt, student=student, trainset=TRAIN, valset=VAL)
            program = job.result(timeout=300, display_progress=False)
    original = [p.signature.instructions for p in student.predictors()]
    compiled = program.predictors()
    changed = [p.signature.instructions for p in compiled] != original
    if not changed or not any(p.demos for p in compiled):
        raise SystemExit(f"MIPROv2 kept the student's instructions or chose no demos: {compiled}")
    return program


def programs() -> dict[str, dx.Module]:
    predict = dx.Predict("question -> answer")
    predict.demos = [
        dx.Example(question="What is 5+5?", answer="10").with_inputs("question"),
        dx.Example(augmented=True, question="Capital of Peru?", answer="Lima"),
    ]
    cot = dx.ChainOfThought(Classify)
    cot.predict.demos = [
        dx.Example(augmented=True, sentence="Lovely.", reasoning="Praise.", sentiment="positive")
    ]
    rag = RAG()
    rag.rewrite.demos = [dx.Example(question="who wrote hamlet", search_query="Hamlet author")]
    rag.generate.predict.demos = [
        dx.Example(context=["Oslo is in Norway."], question="Where is Oslo?", answer="Norway")
    ]
    rag.generate.predict.signature = rag.generate.predict.signature.with_instructions(
        "Answer from the context only.\nOne word."
    )
    return {
        "predict": predict,
        "chain_of_thought": cot,
        "rag_module": rag,
        "mipro_two_step": mipro_compiled(),
    }


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    expected: dict[str, Any] = {}
    for name, program in programs().items():
        program.save(out / f"{name}.json")
        expected[name] = {
            pname: {
                "instructions": p.signature.instructions,
                "demos": [d.to_dict() for d in p.demos],
            }
            for pname, p in program.named_predictors()
        }
    (out / "expected.json").write_text(json.dumps(expected, indent=2), encoding="utf-8")
    print(f"saved {len(expected)} programs to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
