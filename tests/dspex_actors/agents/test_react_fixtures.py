"""dx.ReAct and dx.Tool against fixtures recorded from DSPy 3.4.1's ReAct.

``tests/fixtures/gen_dspy_react_fixtures.py`` ran real ``dspy.ReAct`` agents on
DSPy's ``DummyLM`` and recorded every LM call. Here the same agents (same tool
source, same signatures) run on a scripted loopback server that gives the same
completions in the same order: every request's messages must be byte-identical to
DSPy's, and the trajectory, the outputs and the saved state equal.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dspex_actors as dx
from tests.dspex_actors.lm._loopback import Reply, ScriptedServer, completion
from tests.paths import DSPY_FIXTURES

FIXTURE = json.loads((DSPY_FIXTURES / "react.json").read_text(encoding="utf-8"))
CASES = FIXTURE["cases"]


def tool_namespace() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(FIXTURE["tools_source"], "<tools>", "exec", dont_inherit=True), namespace)
    return namespace


def build_signature(spec: dict[str, Any]) -> Any:
    if "string" in spec:
        return dx.Signature(spec["string"], spec.get("instructions"))
    namespace: dict[str, Any] = {
        "Signature": dx.Signature,
        "InputField": dx.InputField,
        "OutputField": dx.OutputField,
    }
    code = compile(textwrap.dedent(spec["source"]), "<signature>", "exec", dont_inherit=True)
    exec(code, namespace)
    return namespace["Sig"]


def build_agent(case: dict[str, Any]) -> dx.ReAct:
    namespace = tool_namespace()
    tools: list[Any] = []
    for spec in case["tools"]:
        func = namespace[spec["func"]]
        if "name" in spec or "desc" in spec:
            tools.append(dx.Tool(func, name=spec.get("name"), desc=spec.get("desc")))
        else:
            tools.append(func)
    return dx.ReAct(build_signature(case["signature"]), tools=tools, max_iters=case["max_iters"])


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def scripted_system(scripted: ScriptedServer) -> Iterator[dx.ActorSystem]:
    lm = dx.LM("openai/scripted", api_base=scripted.api_base, api_key="sk-test")
    with dx.start(lm=lm, cache=False, configure_logs=False, name="react-fixtures") as system:
        yield system


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_every_prompt_of_a_react_run_is_byte_identical_to_dspy(
    case: dict[str, Any], scripted: ScriptedServer, scripted_system: dx.ActorSystem
) -> None:
    agent = build_agent(case)
    scripted.push(*[Reply(body=completion(call["completion"])) for call in case["calls"]])
    prediction = agent(**case["inputs"])
    sent = [json.loads(request["body"])["messages"] for request in scripted.requests]
    assert len(sent) == len(case["calls"])
    for index, (ours, theirs) in enumerate(zip(sent, case["calls"], strict=True)):
        assert ours == theirs["messages"], f"LM call {index} differs"
    assert prediction.trajectory == case["trajectory"]
    outputs = {k: v for k, v in prediction.items() if k != "trajectory"}
    assert outputs == case["outputs"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_tool_schemas_and_tool_list_lines_are_dspys(case: dict[str, Any]) -> None:
    agent = build_agent(case)
    assert {name: tool.args for name, tool in agent.tools.items()} == case["tool_args"]
    assert [str(tool) for tool in agent.tools.values()] == case["tool_lines"]
    assert agent.react.signature.instructions == case["react_instructions"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_a_react_program_saves_as_dspy_saves_it_and_loads_dspys_file(
    case: dict[str, Any], tmp_path: Path
) -> None:
    agent = build_agent(case)
    assert agent.dump_state() == case["saved_state"]
    dspy_file = tmp_path / "dspy_react.json"
    saved = dict(case["saved_state"])
    saved["react"] = {
        **saved["react"],
        "demos": [{"augmented": True, **{k: "d" for k in case["inputs"]}, "trajectory": "t"}],
    }
    dspy_file.write_text(json.dumps(saved), encoding="utf-8")
    loaded = build_agent(case).load(dspy_file)
    assert len(loaded.react.demos) == 1
    ours = tmp_path / "ours.json"
    loaded.save(ours)
    again = json.loads(ours.read_text(encoding="utf-8"))
    again.pop("metadata")
    assert again == saved
