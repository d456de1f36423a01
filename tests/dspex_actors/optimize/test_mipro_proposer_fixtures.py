"""MIPROv2's grounded proposer against prompts recorded from DSPy 3.4.1's GroundedProposer.

``tests/fixtures/gen_dspy_mipro_fixtures.py`` ran DSPy's real proposer (as MIPROv2
builds it) on a program written to a module file, a trainset and fixed demo sets, and
recorded every LM call. Here the same classes (same text, dspex_actors' names) go
through our proposer's requests against a loopback server that answers each recorded
prompt with DSPy's recorded completion: every prompt must be byte-identical to DSPy's
(the dataset summary, the program description, the module description and the
instruction proposal), the program code equal to ``get_dspy_source_code``'s, and the
summary and instructions equal. The one difference on purpose: DSPy also proposes
for demo set 0 and throws it away (MIPROv2 puts the original instruction there); we
do not make that proposal, so those recorded calls are not replayed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import defaultdict, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.optimize._mipro_propose import proposal_run, summary_batches
from dspex_actors.optimize._propose import TIPS, DataSummaryRun, program_code
from tests.dspex_actors.lm._loopback import Reply, ScriptedServer, completion
from tests.paths import DSPY_FIXTURES

pytest.importorskip("optuna")  # dx.MIPROv2 needs it (the mipro extra, in dev)

FIXTURE = json.loads((DSPY_FIXTURES / "mipro_proposer.json").read_text(encoding="utf-8"))
CASES = FIXTURE["cases"]
PREAMBLE = "from dspex_actors import ChainOfThought, InputField, Module, OutputField, Predict"
PREAMBLE += ", Signature\n"


def load_program(name: str, directory: Path) -> dx.Module:
    if name == "Predict":
        return dx.Predict("question -> answer")
    path = directory / "mipro_fixture_program_dx.py"
    path.write_text(PREAMBLE + FIXTURE["program_source"], encoding="utf-8")
    spec = importlib.util.spec_from_file_location("mipro_fixture_program_dx", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mipro_fixture_program_dx"] = module
    spec.loader.exec_module(module)
    program: dx.Module = getattr(module, name)()
    return program


class Replay:
    """Answers each recorded prompt with DSPy's completions for it, in recorded order
    (two proposals can send the same description prompt); a marker for any other."""

    def __init__(self, case: dict[str, Any]) -> None:
        replayed = [p for p in case["proposals"] if p["demo_set"] != 0]
        calls = case["summary_calls"] + [c for p in replayed for c in p["calls"]]
        self.answers: dict[str, deque[str]] = defaultdict(deque)
        for call in calls:
            self.answers[json.dumps(call["messages"])].append(call["completion"])

    def __call__(self, request: dict[str, Any]) -> Reply:
        queue = self.answers.get(json.dumps((request["json"] or {}).get("messages")))
        text = queue.popleft() if queue else "[[ ## unrecorded ## ]]\nnot DSPy's prompt"
        return Reply(body=completion(text))


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as scripted:
        yield scripted


def sent_since(server: ScriptedServer, start: int) -> list[dict[str, Any]]:
    return [request["json"] for request in server.requests[start:]]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_program_code_is_dspys_get_dspy_source_code(
    case: dict[str, Any], tmp_path: Path
) -> None:
    assert program_code(load_program(case["program"], tmp_path)) == case["program_code"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_every_proposer_prompt_is_byte_identical_to_dspys(
    case: dict[str, Any], tmp_path: Path, server: ScriptedServer
) -> None:
    program = load_program(case["program"], tmp_path)
    trainset = [dx.Example(**row).with_inputs("question") for row in FIXTURE["trainset"]]
    demo_sets = [
        [[dx.Example(**demo) for demo in demo_set] for demo_set in sets]
        for sets in case["demo_candidates"]
    ]
    server.set_default(Replay(case))
    tp = dx.MIPROv2(metric=lambda e, p, t=None: 1.0, auto=None, num_candidates=3, num_trials=3)
    lm = dx.LM("openai/replay", api_base=server.api_base, api_key="sk-test")
    with dx.start(lm=lm, cache=False, configure_logs=False, name="mipro-proposer-fixtures"):
        summary = DataSummaryRun(summary_batches(trainset, 10), None)().summary
        summary_sent = sent_since(server, 0)
        assert [body["messages"] for body in summary_sent] == [
            call["messages"] for call in case["summary_calls"]
        ]
        assert [body["temperature"] for body in summary_sent] == [
            call["temperature"] for call in case["summary_calls"]
        ]
        assert summary == case["data_summary"]
        code = program_code(program)
        predictors = program.predictors()
        made = 0
        for proposal in case["proposals"]:
            if proposal["demo_set"] == 0:
                continue  # DSPy's overwritten proposal (see the module docstring)
            i, k = proposal["predictor"], proposal["demo_set"]
            tip = next(key for key, text in TIPS.items() if text == proposal["tip"])
            start = len(server.requests)
            run = proposal_run(tp, predictors[i], demo_sets[i], k, tip, summary=summary, code=code)
            try:
                instruction = run().proposed_instruction
            except dx.AdapterParseError:  # an unrecorded prompt: the comparison below says which
                instruction = None
            sent = sent_since(server, start)
            for n, (ours, theirs) in enumerate(zip(sent, proposal["calls"], strict=False)):
                assert ours["messages"] == theirs["messages"], f"proposal {i}/{k}, call {n}"
                assert ours["temperature"] == theirs["temperature"]
            assert len(sent) == len(proposal["calls"]), f"proposal {i}/{k}: calls"
            assert instruction == case["instructions"][str(i)][k] == proposal["instruction"]
            made += 1
        assert made == sum(1 for p in case["proposals"] if p["demo_set"] != 0) > 0
